"""Recovering the ``queued`` messages a crashed process left: send leases and the recovery plan.

A message is logged ``queued`` just before its request leaves (the write-ahead, see
:mod:`smsgate.core.deliver`); its answer replaces that status. A process killed in
between (SIGKILL, a power cut, the OOM killer) leaves it ``queued``: its request *may*
have left. The write-ahead does not record whether it did (``send()`` logs each message
just before its request; ``send_many`` a chunk at a time just before the chunk's first
request, so most of a chunk may never have left), so nothing in the log tells the two
apart, and recovery marks every such message ``unknown`` ("may have left"): the status
poller (:func:`smsgate.core.reconcile.sync`) then resolves it by client reference where
a provider keeps them (found: the vendor's status; never received by any provider that
could have it: ``failed`` with raw status ``not_received``, safe to send again).

Recovery must never touch a message whose process is alive: it may still send it (a
chunk logged ahead waits for its turn; a request waits for a rate limit), and a status
set under it would be wrong. So every process that logs messages ahead holds a **send
lease** per tenant in the store (:class:`SendLease`): until when it lives (renewed every
``LEASE / 3`` seconds while its gateway is open) and ``oldest``, a time before which it
logged none of the messages still waiting for their answer. A ``queued`` message logged
before the ``oldest`` of every live lease (and ``older_than`` ago: a grace for clocks and
for processes without a lease) belongs to no live process: :func:`recover` marks it
``unknown``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from datetime import datetime, timedelta

from smsgate.core.policy import TenantPolicy
from smsgate.core.steps import Log, Plan, Query
from smsgate.errors import NotFound
from smsgate.ids import new_id
from smsgate.lifecycle import Status
from smsgate.models import MessageRecord, utcnow
from smsgate.store.base import LogResult, LogWrite, MessageUpdate, Store

__all__ = ["LEASE", "MARGIN", "RECOVER_AFTER", "RECOVER_LIMIT", "SendLease", "recover"]

log = logging.getLogger("smsgate")

#: How long a send lease lasts unless renewed (renewed every third of it).
LEASE = 60.0
#: How much earlier than its oldest waiting message a lease's ``oldest`` is written (the time
#: between a write-ahead's timestamp and its registration with the lease).
MARGIN = 5.0
#: Default grace: only messages ``queued`` at least this long are recovered (seconds).
RECOVER_AFTER = 600.0
#: Default number of messages one call recovers at most.
RECOVER_LIMIT = 1000
#: The raw status and history source of a recovered message.
RECOVERED = "recovered"


class SendLease:
    """One process's send lease on one tenant: the messages it logged ahead whose answer is
    not written yet, and the lease row that tells recovery to leave them alone.

    The log writers call :meth:`logging` as a write is handed to them (before it can be
    committed), :meth:`ensure` in the writing thread before a transaction that logs messages
    ahead, and :meth:`answered` once a transaction is committed.
    """

    def __init__(self, store: Store, tenant: str, owner: str, lease: float | None = None) -> None:
        self.store = store
        self.tenant = tenant
        self.owner = owner
        #: seconds the lease lasts unless renewed (default :data:`LEASE`)
        self.lease = LEASE if lease is None else lease
        self._lock = threading.Lock()
        #: message id -> when it was logged ahead, for the messages waiting for their answer
        self._waiting: dict[str, datetime] = {}
        self._renewed: float | None = None  # time.monotonic() of the last lease write
        self._ended = False
        self._unsupported = False  # the store keeps no send leases
        _LEASES.add(self)

    @property
    def held(self) -> bool:
        """Whether the lease row was written (and not ended)."""
        return self._renewed is not None and not self._ended

    def logging(self, write: LogWrite) -> None:
        """``write`` is about to be written: its ``queued`` messages wait for their answers."""
        queued = [(m.message_id, m.created_at) for m in write.inserts if m.status is Status.QUEUED]
        if queued:
            with self._lock:
                self._waiting.update(queued)

    def ensure(self, write: LogWrite) -> None:
        """Before a transaction: the lease is written first if ``write`` logs messages ahead and
        the lease is not written yet, or is a third of its length old."""
        if not write.inserts:
            return
        renewed = self._renewed
        if self._unsupported:
            return
        if renewed is None or self._ended or time.monotonic() - renewed >= self.lease / 3:
            self.renew()

    def failed(self, writes: list[LogWrite]) -> None:
        """The transaction of ``writes`` failed: their messages were not logged ahead (or, if the
        commit itself was lost, will never be sent: their plans got the error), so none waits."""
        if not self._waiting:
            return
        with self._lock:
            for write in writes:
                for m in write.inserts:
                    self._waiting.pop(m.message_id, None)

    def _forked(self) -> None:
        """In a child process just forked: a lease of its own (the parent's row and waiting
        messages stay the parent's)."""
        self._lock = threading.Lock()
        self._waiting = {}
        self._renewed = None
        self.owner = new_id("snd")

    def answered(self, write: LogWrite, result: LogResult | None) -> None:
        """``write`` is committed: its answered messages (and those not inserted) wait no more."""
        if not self._waiting:
            return
        with self._lock:
            for u in write.updates:
                self._waiting.pop(u.message_id, None)
            if result is not None:
                for mid in (*result.replays, *result.lost):
                    self._waiting.pop(mid, None)

    def renew(self) -> None:
        """Write the lease row: alive for ``lease`` seconds more; nothing waiting logged before ``oldest``."""
        now = utcnow()
        with self._lock:
            oldest = min(self._waiting.values(), default=now)
            self._ended = False
        try:
            self.store.put_send_lease(self.tenant, self.owner, now + timedelta(seconds=self.lease),
                                      min(oldest, now) - timedelta(seconds=MARGIN))
        except NotImplementedError:  # a store of another library's making: recovery relies on its grace alone
            self._unsupported = True
            log.warning("tenant %s: the store (%s) keeps no send leases: recover_queued() then tells a crashed "
                        "process's queued messages from a live one's by their age alone", self.tenant,
                        type(self.store).__name__)
            return
        self._renewed = time.monotonic()

    def end(self) -> None:
        """Remove the lease row (the process sends nothing more): what it left ``queued`` can be recovered."""
        if self._renewed is not None and not self._ended:
            self._ended = True
            self.store.end_send_lease(self.tenant, self.owner)


#: Every send lease of this process (a forked child gets leases of its own).
_LEASES: weakref.WeakSet[SendLease] = weakref.WeakSet()


def _after_fork() -> None:
    for lease in list(_LEASES):
        lease._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def recover(policy: TenantPolicy, *, older_than: float, limit: int) -> Plan[list[str]]:
    """Mark ``unknown`` the ``queued`` messages no live process will answer; their ids.

    Candidates are logged at least ``older_than`` seconds ago and before the ``oldest`` of
    every live send lease of the tenant, oldest first, at most ``limit``. Messages of a
    stored campaign are left to its runs (their recovery resolves claimed recipients
    themselves). Each is marked ``unknown`` (raw status ``recovered``): its request may
    have left; :func:`smsgate.core.reconcile.sync` resolves it where a provider can say.
    """
    now = utcnow()
    horizon = now - timedelta(seconds=older_than)
    try:
        leases: dict[str, tuple[datetime, datetime]] = yield Query("send_leases", policy.name)
    except NotImplementedError:  # a store that keeps none: the grace alone
        leases = {}
    for until, oldest in leases.values():
        if until > now:
            horizon = min(horizon, oldest)
    found: list[MessageRecord] = yield Query("in_flight", policy.name, [Status.QUEUED], created_before=horizon,
                                             limit=limit)
    campaigns: dict[str, bool] = {}
    chosen = []
    for rec in found:
        cid = rec.campaign_id
        if cid is not None and cid not in campaigns:
            try:
                yield Query("get_campaign", policy.name, cid)
                campaigns[cid] = True
            except NotFound:
                campaigns[cid] = False
        if cid is None or not campaigns[cid]:
            chosen.append(rec)
    if not chosen:
        return []
    error = ("the process sending it ended before its answer was logged (a crash): its request may have left; "
             "sync_statuses resolves it where the provider keeps client references")
    write = LogWrite(updates=[MessageUpdate(rec.message_id, Status.UNKNOWN, now, raw_status=RECOVERED,
                                            source=RECOVERED, error=error) for rec in chosen])
    yield Log(write)
    log.warning("tenant %s: %d queued messages left by a process that ended were marked unknown",
                policy.name, len(chosen))
    return [rec.message_id for rec in chosen]
