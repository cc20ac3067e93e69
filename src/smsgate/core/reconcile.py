"""Reconciliation: the status poller, as a plan.

Messages still in flight (``submitted`` / ``sent``) some time after they were
logged are asked about at their provider (``Provider.status``), for providers with
``capabilities.status_lookup``: a vendor without callbacks, or a callback that was
lost, would otherwise leave them in flight for ever. ``unknown`` messages (the
request may have left, no answer came) are resolved by reference lookups
(``Provider.find_by_reference``) where the provider stores client references:

* found: the message takes the provider's status (``submitted`` if it gives none);
* certainly never received (every provider that could have it says so): ``failed``
  with raw status ``not_received``. The poller never sends anything again:
  resending is the application's decision (or a campaign's, which resolves its own
  recipients when it ends);
* otherwise it stays ``unknown`` and is asked again later.

Each tick first marks ``unknown`` the messages a crashed process left ``queued``
(``recover_after``; see :mod:`smsgate.core.recover`: only those no live process can
still send), so that the same tick resolves them as above.

Work per tick is bounded (``limit`` lookups, ``limit * SCAN_FACTOR`` candidates
read), and each message backs off: after a lookup it is not asked again before
``backoff * 2**(n-1)`` seconds (capped at ``max_backoff``), ``n`` being its
lookups so far. That state lives in the message's status history: every lookup
leaves a check, an event with source ``<instance>:lookup`` repeating the status at
the lookup's own time, with a detail (``no change``, ``changed``, ``found``,
``unresolved``, ``lookup failed: ...``), so the schedule survives restarts and is
shared by every process using the store. A status a lookup changed is recorded at
the vendor's time of it (``report.occurred_at``: ``delivered_at`` is when the
vendor delivered it), as an event of its own that does not time the backoff. Status lookups
are not charged to rate limits; an instance whose circuit breaker is open is
skipped for the rest of the tick. Messages of a provider instance no longer configured
for the tenant cannot be looked up: the tick counts them per instance
(``SyncSummary.unconfigured``) and names the instance in ``skipped_instances``.

:func:`sync` is the one place for these rules; :meth:`smsgate.Tenant.sync_statuses`
(sync and async), :func:`smsgate.contrib.celery` schedules and ``smsgate status
sync`` drive it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from smsgate.core import received
from smsgate.core.policy import TenantPolicy
from smsgate.core.recover import RECOVER_AFTER, RECOVER_LIMIT, recover, recover_one
from smsgate.core.steps import Call, Plan, Query
from smsgate.errors import CircuitOpen, ProviderError, Unsupported, mask_numbers
from smsgate.models import DeliveryReport, MessageRecord, Status, StatusEvent, SyncSummary, utcnow
from smsgate.provider import Operation
from smsgate.store.base import MessageUpdate

__all__ = ["IN_FLIGHT", "LOOKUP_SOURCE", "SCAN_FACTOR", "due_at", "is_check", "look_up", "sync"]

log = logging.getLogger(__name__)

#: The statuses looked up by status lookup (``unknown`` ones are resolved by reference).
IN_FLIGHT = (Status.SUBMITTED, Status.SENT)
#: History events whose source ends with this are lookups (they drive the backoff).
LOOKUP_SOURCE = ":lookup"
#: A tick reads at most ``limit * SCAN_FACTOR`` candidates (most of them may not be due).
SCAN_FACTOR = 10
#: Candidates read per store query.
PAGE = 200


def is_check(event: StatusEvent) -> bool:
    """Whether ``event`` records a lookup the poller made, at the poller's time: source
    ``<instance>:lookup`` with a detail (:meth:`~smsgate.store.base.Store.note_checks`). The
    status a lookup changed is an event of its own at the vendor's time (no detail), which
    does not time the backoff."""
    return event.detail is not None and event.source.endswith(LOOKUP_SOURCE)


def due_at(history: Sequence[StatusEvent], *, backoff: float, max_backoff: float) -> datetime | None:
    """When a message with this status history may be looked up next: ``None`` when it
    never was (due as soon as it is old enough), else its last lookup plus
    ``backoff * 2**(n - 1)`` seconds (at most ``max_backoff``), ``n`` its lookups so far
    (the checks in its history: :func:`is_check`)."""
    lookups = [e.at for e in history if is_check(e)]
    if not lookups:
        return None
    n = len(lookups)
    wait = max_backoff if n > 64 else min(max_backoff, backoff * 2 ** (n - 1))
    return max(lookups) + timedelta(seconds=wait)


def sync(policy: TenantPolicy, *, older_than: float, limit: int, backoff: float, max_backoff: float,
         max_age: float, now: datetime | None = None, instances: Sequence[str] | None = None,
         recover_after: float | None = None) -> Plan[SyncSummary]:
    """One tick of the status poller for ``policy``'s tenant (see the module doc).

    ``older_than``: seconds since a message was logged before it is looked up;
    ``limit``: lookups at most; ``max_age``: messages logged longer ago are left
    alone; ``instances``: only messages of these provider instances (default all).
    ``recover_after``: first mark ``unknown`` the messages a crashed process left
    ``queued`` that long ago (:func:`smsgate.core.recover.recover`), so this tick
    resolves them; ``None``: not.
    """
    summary = SyncSummary()
    if recover_after is not None:
        summary.recovered = len((yield from recover(policy, older_than=recover_after, limit=RECOVER_LIMIT)))
    now = now or utcnow()
    configured = list(policy.config.providers)
    names = configured if instances is None else [n for n in configured if n in set(instances)]
    caps = {n: policy.provider(n).capabilities for n in configured}
    lookup = [n for n in names if caps[n].status_lookup]
    before, after_ts = now - timedelta(seconds=older_than), now - timedelta(seconds=max_age)
    skipped: set[str] = set()
    tick = _Tick(summary, skipped, limit, limit * SCAN_FACTOR)
    allowed = set(names)

    def in_flight(rec: MessageRecord) -> Plan[None]:
        yield from _check_in_flight(policy, rec, now, backoff, max_backoff, tick)

    def unknown(rec: MessageRecord) -> Plan[None]:
        yield from _unknown(policy, rec, allowed, now, backoff, max_backoff, tick)

    window = {"created_before": before, "created_after": after_ts}
    if lookup:
        yield from _each(policy, list(IN_FLIGHT), {**window, "providers": lookup}, tick, in_flight)
    # a scan budget of its own: unknown messages no one can resolve never starve the others
    yield from _each(policy, [Status.UNKNOWN], window, tick, unknown)
    summary.more = tick.capped
    summary.unconfigured = yield from _unconfigured(policy, configured, instances, window, limit * SCAN_FACTOR)
    summary.skipped_instances = sorted(skipped | set(summary.unconfigured))
    return summary


def _unconfigured(policy: TenantPolicy, configured: list[str], instances: Sequence[str] | None,
                  window: dict[str, Any], scan: int) -> Plan[dict[str, int]]:
    """Messages in flight or ``unknown`` in ``window`` whose provider instance is no longer
    configured (no lookup can reach them), counted per instance; ``instances``: only those.
    At most ``scan`` messages are read."""
    statuses = [*IN_FLIGHT, Status.UNKNOWN]
    if instances is None:
        where: dict[str, Any] = {"exclude_providers": configured}
    else:
        where = {"providers": [n for n in dict.fromkeys(instances) if n not in configured]}
        if not where["providers"]:
            return {}
    found: dict[str, int] = {}
    cursor: str | None = None
    scanned = 0
    while scanned < scan:
        page: list[MessageRecord] = yield Query("in_flight", policy.name, statuses, limit=min(PAGE, scan - scanned),
                                                after=cursor, **window, **where)
        for rec in page:
            if rec.provider is not None:
                found[rec.provider] = found.get(rec.provider, 0) + 1
        scanned += len(page)
        if len(page) < PAGE:
            break
        cursor = page[-1].message_id
    if found:
        log.warning("tenant %s: %s message(s) in flight at provider instances no longer configured (%s): "
                    "not looked up", policy.name, sum(found.values()), ", ".join(sorted(found)))
    return dict(sorted(found.items()))


def look_up(policy: TenantPolicy, message_id: str, *, recover_after: float = RECOVER_AFTER,
            now: datetime | None = None) -> Plan[MessageRecord]:
    """Look one message up now, by a tick's rules but without its window and backoff; returns
    its record as it is then.

    ``queued`` (its process may have died before its answer was logged): marked ``unknown``
    first if no live process can still send it (:func:`smsgate.core.recover.recover_one`,
    ``recover_after``). ``submitted`` / ``sent``, or ``unknown`` with a provider message id:
    the provider's status lookup, where it has one. ``unknown`` without: a reference lookup
    at every provider that could have it; never received by any of them makes it ``failed``
    (raw status ``not_received``: safe to send again), but only once they had time to act on
    its request (:func:`smsgate.core.received.settle_seconds` after it was logged): before,
    not finding it proves nothing and it stays ``unknown``. Never sends anything.
    """
    rec: MessageRecord = yield Query("get_message", policy.name, message_id)
    if rec.status is Status.QUEUED:
        if not (yield from recover_one(policy, rec, older_than=recover_after)):
            return rec
        rec = yield Query("get_message", policy.name, message_id)
    now = now or utcnow()
    tick = _Tick(SyncSummary(), set(), 1, 1)
    if rec.status in IN_FLIGHT and received.can_ask_status(policy, rec):
        yield from _check_in_flight(policy, rec, now, 0.0, 0.0, tick)
    elif rec.status is Status.UNKNOWN:
        names = [n for n in _candidates(policy, rec) if n in policy.config.providers]
        if rec.provider_message_id is None and \
                (now - rec.created_at).total_seconds() < received.settle_seconds(policy, names):
            return rec  # too early: a provider may still act on a request that left moments ago
        yield from _unknown(policy, rec, set(policy.config.providers), now, 0.0, 0.0, tick)
    else:
        return rec
    after: MessageRecord = yield Query("get_message", policy.name, message_id)
    return after


def _candidates(policy: TenantPolicy, rec: MessageRecord) -> list[str]:
    """The provider instances that could have the ``unknown`` message ``rec``."""
    return list(policy.config.providers) if rec.provider is None else [rec.provider]


def _unknown(policy: TenantPolicy, rec: MessageRecord, allowed: set[str], now: datetime, backoff: float,
             max_backoff: float, tick: _Tick) -> Plan[None]:
    """Resolve the ``unknown`` message ``rec``: by status lookup if it has a provider message id
    and its provider has one, else by reference lookups (only instances in ``allowed`` asked)."""
    if rec.provider is not None and rec.provider not in allowed:
        return
    if received.can_ask_status(policy, rec):
        yield from _check_in_flight(policy, rec, now, backoff, max_backoff, tick)
    else:
        # every instance that could have it is a candidate; only ``allowed`` ones are asked
        yield from _resolve(policy, rec, _candidates(policy, rec), allowed, now, backoff, max_backoff, tick)


def _each(policy: TenantPolicy, statuses: list[Status], window: dict[str, Any], tick: _Tick,
          handle: Callable[[MessageRecord], Plan[None]]) -> Plan[None]:
    """``handle`` each candidate in ``statuses``, oldest first, page by page, until the
    tick's lookups or this pass's scan budget are used up (then ``tick.capped``)."""
    scanned = 0
    cursor: str | None = None
    while True:
        page: list[MessageRecord] = yield Query("in_flight", policy.name, statuses, limit=PAGE, after=cursor,
                                                **window)
        for rec in page:
            if tick.summary.looked_up >= tick.limit or scanned >= tick.scan:
                tick.capped = True
                return
            scanned += 1
            yield from handle(rec)
        if len(page) < PAGE:
            return
        cursor = page[-1].message_id


class _Tick:
    """What one tick has done so far."""

    def __init__(self, summary: SyncSummary, skipped: set[str], limit: int, scan: int) -> None:
        self.summary, self.skipped, self.limit, self.scan = summary, skipped, limit, scan
        #: candidates were left unhandled (lookups or a scan budget used up)
        self.capped = False

    def is_due(self, rec: MessageRecord, now: datetime, backoff: float, max_backoff: float) -> bool:
        due = due_at(rec.history, backoff=backoff, max_backoff=max_backoff)
        if due is not None and due > now:
            self.summary.not_due += 1
            return False
        return True


def _changed(policy: TenantPolicy, rec: MessageRecord, update: MessageUpdate, report: DeliveryReport) -> Plan[bool]:
    # a failing hook is logged, not raised: it must not stop the tick at every change
    return (yield from received.apply(policy, rec, update, report))


def _note(policy: TenantPolicy, rec: MessageRecord, now: datetime, source: str, detail: str) -> Plan[None]:
    yield Query("note_checks", policy.name, [rec.message_id], at=now, source=source, detail=detail)


def _check_in_flight(policy: TenantPolicy, rec: MessageRecord, now: datetime, backoff: float, max_backoff: float,
                     tick: _Tick) -> Plan[None]:
    """Look ``rec`` up at its provider by status lookup (it has a provider message id)."""
    name = rec.provider
    summary = tick.summary
    if name is None or not rec.provider_message_id:
        summary.unsupported += 1
        return
    if name in tick.skipped or not tick.is_due(rec, now, backoff, max_backoff):
        return
    prov = policy.provider(name)
    source = f"{name}{LOOKUP_SOURCE}"
    try:
        report: DeliveryReport = yield Call(name, received.checked(prov.status(policy.result_of(rec)), name,
                                                                   "status()"), fallback=True)
    except CircuitOpen:
        tick.skipped.add(name)
        return
    except (Unsupported, ProviderError) as exc:
        summary.looked_up += 1
        summary.errors += 1
        log.warning("status lookup of %s at %s failed: %s", rec.message_id, name,
                    mask_numbers(str(exc), [rec.to]))  # a vendor's error text may name the number
        yield from _note(policy, rec, now, source, f"lookup failed: {type(exc).__name__}")
        return
    summary.looked_up += 1
    update = received.lookup_update(rec, report, source)
    if (yield from _changed(policy, rec, update, report)):
        summary.changed += 1
        if rec.status is Status.UNKNOWN:
            summary.found += 1
        # the change is at the vendor's time; the backoff is timed by the lookup's own
        yield from _note(policy, rec, now, source, "changed")
    else:
        summary.unchanged += 1
        yield from _note(policy, rec, now, source, "no change")


def _resolve(policy: TenantPolicy, rec: MessageRecord, names: Sequence[str], allowed: set[str], now: datetime,
             backoff: float, max_backoff: float, tick: _Tick) -> Plan[None]:
    """Ask the providers that could have the ``unknown`` message ``rec`` (``names``; only
    those in ``allowed`` are asked, by client reference) whether they received it
    (:func:`smsgate.core.received.ask`)."""
    summary = tick.summary
    names = [n for n in names if n in policy.config.providers]

    def question(name: str) -> Operation[DeliveryReport | None] | None:
        prov = policy.provider(name)
        if name not in allowed or not prov.capabilities.client_reference:
            return None
        return received.checked(prov.find_by_reference(rec.message_id, rec.to), name, "find_by_reference()",
                                optional=True)

    able = [n for n in names if n in allowed and policy.provider(n).capabilities.client_reference]
    if not able:
        summary.unsupported += 1
        return
    if not tick.is_due(rec, now, backoff, max_backoff):
        return
    verdict = yield from received.ask(policy, rec, names, question, now=now, skipped=tick.skipped)
    summary.looked_up += verdict.tried
    summary.errors += verdict.errors
    if verdict.report is not None and verdict.instance is not None:
        update = received.found_update(rec, verdict.instance, verdict.report)
        if (yield from _changed(policy, rec, update, verdict.report)):
            summary.changed += 1
            summary.found += 1
        else:
            summary.unchanged += 1
        yield from _note(policy, rec, now, f"{verdict.instance}{LOOKUP_SOURCE}", "found")
        return
    if verdict.never_received:  # every provider that could have it says it never arrived
        report = received.not_received_report(rec, able[0])
        update = received.not_received_update(rec, now, f"reconcile{LOOKUP_SOURCE}")
        if (yield from _changed(policy, rec, update, report)):
            summary.changed += 1
            summary.not_received += 1
        return
    if verdict.tried:
        yield from _note(policy, rec, now, f"reconcile{LOOKUP_SOURCE}", "unresolved")
