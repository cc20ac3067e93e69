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
lease** per tenant in the store (:class:`SendLease`): until when it lives and ``oldest``,
a time before which it logged none of the messages still waiting for their answer. A
``queued`` message logged before the ``oldest`` of every live lease (and ``older_than``
ago: a grace for clocks and for processes without a lease) belongs to no live process:
:func:`recover` marks it ``unknown``.

The guarantee, and what it rests on:

* A lease is renewed every ``LEASE / 3`` seconds (60 s / 3) by one thread per process
  (:func:`_beat`; a forked child starts its own at its first write-ahead, with a lease
  row of its own: the parent's is never used by the child).
* The row says it lives ``LEASE + GRACE`` seconds (120 s) past the renewal's start, but
  the holder counts on it for ``LEASE`` seconds only: a request of a message logged ahead
  leaves (:meth:`SendLease.fence`, checked when its call starts and again after each
  rate-limit wait) only if the lease was renewed less than ``LEASE`` ago by the process's
  own monotonic clock; otherwise it renews first (a store still down: the call raises
  :class:`~smsgate.errors.StoreError`, nothing leaves).
* If that renewal comes more than ``LEASE + GRACE - skew`` after the last one (the store
  was down, or the process suspended, that long: the row may have ended, and another
  process may have recovered what it protected), the messages it protected are forfeit:
  none of them is ever sent by this process (their call raises
  :class:`~smsgate.errors.LeaseLost`), they no longer hold back recovery, and recovery
  marks them ``unknown``, the poller then ``failed`` / ``not_received``: true.
* So a message recovery marks ``unknown`` is never sent afterwards by a live process,
  provided the clocks of the processes agree within ``skew`` (``min(MARGIN, GRACE / 2)``,
  5 s) and a request that left reaches the vendor within ``GRACE`` (60 s) of the last
  renewal's end (HTTP timeouts are shorter). A request already sent when the store went
  away is unaffected: its answer, written once the store is back, replaces ``unknown``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from datetime import datetime, timedelta

from smsgate.core import received
from smsgate.core.policy import TenantPolicy
from smsgate.core.steps import Log, Plan, Query
from smsgate.errors import LeaseLost, NotFound
from smsgate.ids import new_id
from smsgate.lifecycle import Status
from smsgate.models import MessageRecord, utcnow
from smsgate.store.base import LogResult, LogWrite, MessageUpdate, Store

__all__ = ["GRACE", "LEASE", "MARGIN", "RECOVER_AFTER", "RECOVER_LIMIT", "SendLease", "recover", "recover_one"]

log = logging.getLogger("smsgate")

#: How long a process counts on its send lease unless renewed (renewed every third of it).
LEASE = 60.0
#: How much longer the lease row says it lives than its holder counts on it (the share of
#: ``expiry + grace`` that covers a request in flight and clocks apart; default: ``LEASE``).
GRACE: float | None = None
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

    def __init__(self, store: Store, tenant: str, owner: str, lease: float | None = None,
                 grace: float | None = None) -> None:
        self.store = store
        self.tenant = tenant
        self.owner = owner
        #: seconds the holder counts on the lease unless renewed (default :data:`LEASE`)
        self.lease = LEASE if lease is None else lease
        #: seconds more the lease row says it lives (default :data:`GRACE`, else ``lease``)
        self.grace = (GRACE if GRACE is not None else self.lease) if grace is None else grace
        self._lock = threading.Lock()
        #: message id -> when it was logged ahead, for the messages waiting for their answer
        self._waiting: dict[str, datetime] = {}
        self._renewed: float | None = None  # time.monotonic() at the start of the last lease write
        self._ended = False
        self._unsupported = False  # the store keeps no send leases
        #: messages this process must never send: their lease lapsed past its row's end
        self._forfeit: set[str] = set()
        _LEASES.add(self)

    @property
    def held(self) -> bool:
        """Whether the lease row was written (and not ended)."""
        return self._renewed is not None and not self._ended

    def logging(self, write: LogWrite) -> None:
        """``write`` is about to be written: its ``queued`` messages wait for their answers."""
        if not write.inserts:  # answers and recipient states: nothing logged ahead
            return
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
        messages stay the parent's); the child's first write-ahead writes its row and starts
        the child's renewing thread."""
        self._lock = threading.Lock()
        self._waiting = {}
        self._forfeit = set()
        self._renewed = None
        self._ended = False
        self.owner = new_id("snd")

    def due(self) -> bool:
        """Whether the lease is written and a third of its length old (time to renew)."""
        renewed = self._renewed
        return renewed is not None and not self._ended and time.monotonic() - renewed >= self.lease / 3

    def fresh(self) -> bool:
        """Whether :meth:`fence` has nothing to do (no I/O, no forfeit message): a clock read."""
        renewed = self._renewed
        return (renewed is None or self._unsupported
                or (not self._forfeit and (self._ended or time.monotonic() - renewed < self.lease)))

    def fence(self, messages: tuple[str, ...]) -> None:
        """Before a request of ``messages`` (logged ahead) leaves: the lease must be one the
        process can count on (renewed less than ``lease`` ago), else it is renewed first (a
        :class:`~smsgate.errors.StoreError` when the store is still down: nothing leaves), and
        none of them may be forfeit (:class:`~smsgate.errors.LeaseLost`). Costs a clock read
        while the lease is fresh."""
        renewed = self._renewed
        if renewed is None or self._unsupported:
            return  # nothing logged ahead under a lease (a store that keeps none: the grace alone)
        if time.monotonic() - renewed >= self.lease and not self._ended:
            self.renew()
        if self._forfeit:
            lost = [m for m in messages if m in self._forfeit]
            if lost:
                raise LeaseLost(
                    f"tenant {self.tenant}: {len(lost)} message(s) logged ahead were not sent (e.g. {lost[0]}): this "
                    f"process could not renew its send lease for longer than the lease lasts ({self.lease + self.grace:g} "
                    "s; the store was unreachable, or the process suspended), so another process may have recovered "
                    "them as unknown; sending them now could deliver a message the log says was not received. "
                    "Recovery and the status poller settle them (failed, not_received: safe to send again)")

    def answered(self, write: LogWrite, result: LogResult | None) -> None:
        """``write`` is committed: its answered messages (and those not inserted, or refused) wait no more."""
        if not self._waiting:
            return
        with self._lock:
            for u in write.updates:
                self._waiting.pop(u.message_id, None)
            for mid in write.withdrawn:  # taken back: never sent
                self._waiting.pop(mid, None)
            if result is not None:  # (refused: its opt-out read again in the transaction, never sent)
                for mid in (*result.replays, *result.lost, *result.refused):
                    self._waiting.pop(mid, None)

    def renew(self) -> None:
        """Write the lease row: alive for ``lease + grace`` seconds more; nothing waiting logged
        before ``oldest``. A renewal that comes after the last one's row may have ended makes the
        messages it protected forfeit (see the module docstring)."""
        start = time.monotonic()
        now = utcnow()
        with self._lock:
            oldest = min(self._waiting.values(), default=now)
            self._ended = False
        try:
            self.store.put_send_lease(self.tenant, self.owner, now + timedelta(seconds=self.lease + self.grace),
                                      min(oldest, now) - timedelta(seconds=MARGIN))
        except NotImplementedError:  # a store of another library's making: recovery relies on its grace alone
            self._unsupported = True
            log.warning("tenant %s: the store (%s) keeps no send leases: recover_queued() then tells a crashed "
                        "process's queued messages from a live one's by their age alone", self.tenant,
                        type(self.store).__name__)
            return
        done = time.monotonic()
        with self._lock:
            last = self._renewed
            skew = min(MARGIN, self.grace / 2)
            if last is not None and done - last >= self.lease + self.grace - skew and self._waiting:
                # the row may have ended meanwhile: what it protected may be recovered; never send it
                self._forfeit.update(self._waiting)
                log.error("tenant %s: the send lease was not renewed for %.0f s (longer than its %g s): %d message(s) "
                          "logged ahead will not be sent (another process may have recovered them)", self.tenant,
                          done - last, self.lease + self.grace, len(self._waiting))
                self._waiting.clear()
            if last is None or start > last:
                self._renewed = start
        _start_beat()

    def end(self) -> None:
        """Remove the lease row (the process sends nothing more): what it left ``queued`` can be recovered."""
        if self._renewed is not None and not self._ended:
            self._ended = True
            self.store.end_send_lease(self.tenant, self.owner)


#: Every send lease of this process (a forked child gets leases of its own).
_LEASES: weakref.WeakSet[SendLease] = weakref.WeakSet()
#: The thread renewing them (one per process; ends when no lease is held), and its lock.
_beating: threading.Thread | None = None
_beat_lock = threading.Lock()


def _start_beat() -> None:
    """Start this process's renewing thread unless it runs (a lease was just written)."""
    global _beating
    with _beat_lock:
        if _beating is None or not _beating.is_alive():
            _beating = threading.Thread(target=_beat, name="smsgate-send-lease", daemon=True)
            _beating.start()


def _beat() -> None:
    """Renew every held lease of this process a third of its length after its last renewal;
    end when none is held (the gateways closed). A failed renewal is tried again at the next
    pass (every sixth of the shortest lease)."""
    global _beating
    while True:
        with _beat_lock:
            held = [lease for lease in list(_LEASES) if lease.held]
            if not held:
                if _beating is threading.current_thread():
                    _beating = None
                return
        for lease in held:
            if lease.due():
                try:
                    lease.renew()
                except Exception as exc:  # the store is down for a moment: the next pass tries again
                    log.warning("tenant %s: could not renew the send lease (%s)", lease.tenant, exc)
        time.sleep(max(0.01, min(lease.lease for lease in held) / 6))


def _after_fork() -> None:
    global _beating, _beat_lock
    _beating, _beat_lock = None, threading.Lock()  # the parent's thread does not run in the child
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
    horizon = yield from _horizon(policy, older_than, now)
    found: list[MessageRecord] = yield Query("in_flight", policy.name, [Status.QUEUED], created_before=horizon,
                                             limit=limit)
    chosen = yield from _not_campaigns(policy, found)
    if not chosen:
        return []
    yield from _mark_unknown(policy, chosen, now)
    log.warning("tenant %s: %d queued messages left by a process that ended were marked unknown",
                policy.name, len(chosen))
    return [rec.message_id for rec in chosen]


def recover_one(policy: TenantPolicy, rec: MessageRecord, *, older_than: float) -> Plan[bool]:
    """:func:`recover` for the one ``queued`` message ``rec``, by the same rule: marked ``unknown``
    (True) only if no live process can still send it; False otherwise (left as it is)."""
    if rec.status is not Status.QUEUED:
        return False
    now = utcnow()
    horizon = yield from _horizon(policy, older_than, now)
    if rec.created_at >= horizon or not (yield from _not_campaigns(policy, [rec])):
        return False
    yield from _mark_unknown(policy, [rec], now)
    log.warning("tenant %s: queued message %s left by a process that ended was marked unknown", policy.name,
                rec.message_id)
    return True


def _horizon(policy: TenantPolicy, older_than: float, now: datetime) -> Plan[datetime]:
    """The time before which a ``queued`` message belongs to no live process: ``older_than``
    ago, and before the ``oldest`` of every live send lease of the tenant."""
    horizon = now - timedelta(seconds=older_than)
    try:
        leases: dict[str, tuple[datetime, datetime]] = yield Query("send_leases", policy.name)
    except NotImplementedError:  # a store that keeps none: the grace alone
        leases = {}
    for until, oldest in leases.values():
        if until > now:
            horizon = min(horizon, oldest)
    return horizon


def _not_campaigns(policy: TenantPolicy, found: list[MessageRecord]) -> Plan[list[MessageRecord]]:
    """``found`` without the messages of a stored campaign (its runs resolve those themselves)."""
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
    return chosen


def _mark_unknown(policy: TenantPolicy, chosen: list[MessageRecord], now: datetime) -> Plan[None]:
    """``chosen`` become ``unknown`` (``recovered``); the status hook is told of each it changed."""
    error = ("the process sending it ended before its answer was logged (a crash): its request may have left; "
             "sync_statuses resolves it where the provider keeps client references")
    result: LogResult = yield Log(LogWrite(updates=[
        MessageUpdate(rec.message_id, Status.UNKNOWN, now, raw_status=RECOVERED, source=RECOVERED, error=error)
        for rec in chosen]))
    received.tell(policy.hook, policy.name, result.changed,
                  [(rec.message_id, received.unknown_report(rec, RECOVERED)) for rec in chosen])
