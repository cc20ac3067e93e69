"""Was a message received by its provider? The one rule, as a plan.

A message whose request may have left without an answer (``unknown``, or ``queued`` by a
runner that is gone) is asked about at every provider instance that could have it.
:func:`ask` gives the verdict, and :func:`found_update` / :func:`not_received_update`
the message's update; the status poller and :meth:`smsgate.Tenant.look_up`
(:mod:`smsgate.core.reconcile`) and campaign recovery (:mod:`smsgate.core.campaign`)
all decide through them:

* found at one of them: the message takes that provider's status (``submitted`` if it
  gives none), its message id, cost and segments;
* never received: every instance that could have it was asked and said so, and they had
  time to act on its request (:func:`settle_seconds` after it may last have left); before
  that, not finding it proves nothing (a slow vendor, a request still on its way);
* otherwise nobody can tell (an instance that cannot be asked, a failed lookup, an open
  circuit breaker, too early).

What differs between the callers is a parameter: which instances could have the message,
and the question each is asked (``find_by_reference`` for a logged message, whose text is
not kept; ``find_sent`` where a campaign can render the message again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smsgate.core import hooks
from smsgate.core.policy import TenantPolicy
from smsgate.core.steps import Call, NotBuilt, Plan, Query, tracked
from smsgate.errors import (
    CircuitOpen,
    MalformedResponse,
    ProviderError,
    Unsupported,
    mask_numbers,
)
from smsgate.lifecycle import Status
from smsgate.models import DeliveryReport, MessageRecord
from smsgate.provider import Operation
from smsgate.store.base import MessageUpdate

__all__ = ["NOT_RECEIVED", "NOT_RECEIVED_ERROR", "Question", "Verdict", "apply", "ask", "can_ask_status",
           "checked", "found_update", "lookup_update", "not_received_report", "not_received_update",
           "settle_seconds", "tell", "unknown_report"]

log = logging.getLogger(__name__)

#: The raw status of a message no provider received.
NOT_RECEIVED = "not_received"
#: Its error text.
NOT_RECEIVED_ERROR = "not received by the provider (resolved by reference lookup)"

#: The lookup to ask instance ``name`` (a plan of its provider), or ``None`` when it cannot be asked.
Question = Callable[[str], Operation[DeliveryReport | None] | None]


def checked(operation: Operation[Any], instance: str, what: str, *, optional: bool = False) -> Operation[Any]:
    """A look-up ``operation`` of instance ``instance`` (``what``: ``"status()"``,
    ``"find_by_reference()"``...) held to its contract: an exception of the adapter's that is
    not smsgate's (a ``KeyError`` reading an odd answer: :func:`smsgate.core.steps.tracked`,
    the send path's wrapper) and an answer that is not a :class:`DeliveryReport` (``None``
    allowed when ``optional``: "not found") are a :class:`~smsgate.errors.MalformedResponse`
    naming the instance, so a caller counts a failed look-up and goes on (the status poller
    asks the next message) instead of stopping on an error naming no provider. Exceptions the
    driver throws in pass through as thrown."""
    try:
        answer = yield from tracked(operation, instance, what)
    except NotBuilt as exc:  # before its request: nothing asked, a failed look-up all the same
        raise MalformedResponse(f"the adapter's {what} failed: {exc.cause!r}", provider=instance) from None
    if not isinstance(answer, DeliveryReport) and not (optional and answer is None):
        raise MalformedResponse(f"the adapter's {what} returned a {type(answer).__name__}, not a DeliveryReport"
                                + (" or None" if optional else ""), provider=instance)
    return answer


def settle_seconds(policy: TenantPolicy, names: Sequence[str]) -> float:
    """How long after a request left a provider may still act on it: twice the longest
    timeout of ``names``. Before then a look-up that does not find a message proves nothing
    (a slow vendor, or a request still on its way from a runner that died, acts later)."""
    return 2 * max((policy.provider(n).settings.timeout for n in names), default=0.0)


@dataclass
class Verdict:
    """What the providers said about one message."""

    #: the instance that has it, and its report (found)
    instance: str | None = None
    report: DeliveryReport | None = None
    #: every instance that could have it says it never arrived, and they had time to act on it
    never_received: bool = False
    #: lookups made (answered or failed)
    tried: int = 0
    #: lookups that failed (a provider error, or the lookup unsupported)
    errors: int = 0

    @property
    def found(self) -> bool:
        """Whether a provider has the message."""
        return self.report is not None


def ask(policy: TenantPolicy, rec: MessageRecord, names: Sequence[str], question: Question, *,
        now: datetime, skipped: set[str] | None = None, since: datetime | None = None,
        probe: set[str] | None = None) -> Plan[Verdict]:
    """Ask the instances ``names`` that could have ``rec`` (those no longer configured are
    dropped) whether they received it, in order, until one has it (see the module doc).

    ``question(name)`` is the lookup for instance ``name`` (``None``: it cannot be asked, so
    no verdict of "never received" is possible). An instance whose circuit breaker is open is
    not asked and added to ``skipped``; instances already in ``skipped`` are not asked either.

    ``since``: the latest time a try of ``rec``'s request may have left (default: when it was
    logged); "never received" needs :func:`settle_seconds` after it. A send's request never
    leaves later than its process's send lease (a gone process's messages are recovered over a
    minute after it ended, see :mod:`smsgate.core.recover`), a campaign runner's as late as its
    claims' lease, which may be seconds: :func:`smsgate.core.campaign.last_try`.

    ``probe``: instances asked even while their circuit breaker is open, once each (a name is
    taken out of the set when it is asked): the look-up is then the breaker's probe (answered,
    the breaker closes and the look-ups after it go; failed, it opens again and they are
    skipped). A caller whose "cannot tell" invites a duplicate (a campaign run, whose
    recipients left ``unknown`` are sent again by ``retry_unknown()``) passes a set per pass.
    """
    skipped = set() if skipped is None else skipped
    names = [n for n in names if n in policy.config.providers]
    verdict = Verdict()
    said_no = 0
    for name in names:
        if name in skipped:
            continue
        operation = question(name)
        if operation is None:
            continue
        forced = probe is not None and name in probe
        if forced and probe is not None:
            probe.discard(name)  # once: the look-ups after it follow the breaker it left
        try:
            report: DeliveryReport | None = yield Call(name, operation, fallback=not forced)
        except CircuitOpen:
            skipped.add(name)
            continue
        except (Unsupported, ProviderError) as exc:
            log.warning("reference lookup of %s at %s failed: %s", rec.message_id, name,
                        mask_numbers(str(exc), [rec.to]))  # a vendor's error text may name the number
            verdict.tried += 1
            verdict.errors += 1
            continue
        verdict.tried += 1
        if report is not None:
            verdict.instance, verdict.report = name, report
            return verdict
        said_no += 1
    if names and said_no == len(names):
        age = (now - (rec.created_at if since is None else since)).total_seconds()
        if age >= settle_seconds(policy, names):
            verdict.never_received = True
        else:
            log.info("%s not found at %s %.1f s after its request may last have left; too early to call it "
                     "never received", rec.message_id, ", ".join(names), age)
    return verdict


def can_ask_status(policy: TenantPolicy, rec: MessageRecord) -> bool:
    """Whether ``rec``'s provider can be asked its status: it has a provider message id, and its
    instance is still configured (one no longer configured cannot be asked: the log answers)
    with ``capabilities.status_lookup``."""
    return bool(rec.provider_message_id) and rec.provider is not None \
        and rec.provider in policy.config.providers \
        and policy.provider(rec.provider).capabilities.status_lookup


def lookup_update(rec: MessageRecord, report: DeliveryReport, source: str) -> MessageUpdate:
    """The update of ``rec`` by the answer of its provider's status lookup (``Provider.status``),
    at the vendor's time of that status (``report.occurred_at``: ``delivered_at`` is when it was
    delivered, not when it was asked; a lookup's own time is a check, see
    :func:`smsgate.core.reconcile.due_at`)."""
    return MessageUpdate(message_id=rec.message_id, status=report.status, at=report.occurred_at,
                         raw_status=report.raw_status,
                         source=source, cost=report.cost, segments=report.segments, error=report.error_code)


def apply(policy: TenantPolicy, rec: MessageRecord, update: MessageUpdate, report: DeliveryReport) -> Plan[bool]:
    """Write a lookup's ``update`` of ``rec``; if it changed the message, tell the application's
    status hook ``report`` (:func:`tell`). Whether it changed."""
    (changed,) = yield Query("update_messages", policy.name, [update])
    tell(policy.hook, policy.name, {rec.message_id} if changed else set(), [(rec.message_id, report)])
    return bool(changed)


def tell(hook: Any, tenant: str, changed: set[str], reports: Sequence[tuple[str, DeliveryReport]]) -> None:
    """The one rule for a status change the kernel made (found at a provider, never received,
    a status lookup's answer, ``unknown`` after a crash or an interrupted run: see
    :func:`unknown_report`), whichever write made it (``update_messages``, or a log write:
    :attr:`~smsgate.store.base.LogResult.changed`): the application's ``smsgate_on_status``
    hook (``hook``, the plugin manager's relay; ``None``: nobody to tell) is told ``reports``
    ((message id, report) pairs) of the messages in ``changed``, once per change; a failing
    hook is logged, never raised (:func:`smsgate.core.hooks.notify`)."""
    if hook is None:
        return
    told = [(mid, report) for mid, report in reports if mid in changed]
    if told:
        hooks.notify(hook, tenant, told)


def unknown_report(rec: MessageRecord, raw_status: str) -> DeliveryReport:
    """What the status hook is told of ``rec`` marked ``unknown`` by the kernel (its request may
    have left, nobody can say): ``raw_status`` says why (``recovered``: the process sending it
    ended; ``interrupted``: its campaign run stopped)."""
    return DeliveryReport(provider=rec.provider or "", provider_message_id=rec.provider_message_id,
                          status=Status.UNKNOWN, raw_status=raw_status)


def found_update(rec: MessageRecord, instance: str, report: DeliveryReport) -> MessageUpdate:
    """The update of ``rec`` found at ``instance``: its status there (``submitted`` if the provider
    gives none) at the vendor's time of it (``report.occurred_at``), the provider's message id,
    cost and segments; an error only the provider's own (the one of its unknown outcome no
    longer holds)."""
    status = report.status if report.status is not Status.UNKNOWN else Status.SUBMITTED
    return MessageUpdate(message_id=rec.message_id, status=status, at=report.occurred_at,
                         raw_status=report.raw_status,
                         source=f"{instance}:lookup", provider=instance,
                         provider_message_id=report.provider_message_id, cost=report.cost,
                         segments=report.segments, error=report.error_code or "")


def not_received_report(rec: MessageRecord, provider: str = "") -> DeliveryReport:
    """What the status hook is told of ``rec`` no provider received (``provider``: the
    instance named when ``rec`` has no provider)."""
    return DeliveryReport(provider=rec.provider or provider, provider_message_id=rec.provider_message_id,
                          status=Status.FAILED, raw_status=NOT_RECEIVED)


def not_received_update(rec: MessageRecord, at: datetime, source: str) -> MessageUpdate:
    """The update of ``rec`` that no provider received: ``failed``, raw status ``not_received``."""
    return MessageUpdate(message_id=rec.message_id, status=Status.FAILED, at=at, raw_status=NOT_RECEIVED,
                         source=source, error=NOT_RECEIVED_ERROR)
