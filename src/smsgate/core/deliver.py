"""Delivery: batching, the write-ahead log, failover, partial failure, retry decisions.

Prepared messages are grouped into *batches*, each one request to one provider:
messages with the same route and the same :meth:`~smsgate.provider.Provider.batch_key`
(a sender ID, the content of a broadcast...), at most the provider's
``max_batch`` per request (``1`` for a provider without bulk sending), and each
number at most once per request where the provider needs it
(``Provider.distinct_recipients``). Providers translate exactly one request:
they never split, batch or re-send themselves.

The plan of a batch (:func:`deliver`):

1. **write-ahead**: logs the messages (``queued``) and waits until that is
   written, just before the request leaves. A message whose idempotency key is
   already bound is answered from the message it belongs to; a campaign message
   whose recipient is no longer claimed by this runner is not sent. After a crash
   a logged ``queued`` message is one whose request *may* have left; a message
   that was never logged never left.
2. **the request**: one :class:`~smsgate.core.steps.Call`. A provider adapter that
   fails before its request leaves (a bug, text it cannot encode) has the batch
   split and each message tried alone, so one bad message never takes its batch
   down; alone it is ``rejected``.
3. **failover**: when the attempt certainly did not reach the vendor (connection
   refused, 5xx declared "not processed", 429 after retries, refused as invalid,
   provider cannot take it), the messages go to the next provider of their route,
   re-batched for it. A timeout after the request left, or an answer that cannot
   be read, is ``unknown`` and never sent again.
4. **answers**: one result per message; messages the vendor says it did not
   process (``SendResult.resend``, e.g. the rest of a bulk request refused as a
   whole because of one item) are sent again, at most twice. The log updates (and
   a campaign recipient's state) are written with the next log write.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any, TypeVar

from smsgate.core.drive import Batch
from smsgate.core.policy import RESERVED_KEY_PREFIX, MessageSpec, Prepared, TenantPolicy
from smsgate.core.steps import Admit, Call, Dispatch, Flush, Interrupted, Log, NotBuilt, Plan, Query, tracked
from smsgate.errors import (
    AnswerNotLogged,
    CircuitOpen,
    ConfigError,
    LeaseLost,
    MalformedResponse,
    OptedOut,
    ProviderError,
    RecipientSuppressed,
    SmsgateError,
    StoreError,
    UnknownOutcome,
    Unsupported,
    ValidationError,
)
from smsgate.keywords import Keyword
from smsgate.lifecycle import Status
from smsgate.models import NOT_SENT, OPTED_OUT, OutboundMessage, SendResult, Template, utcnow
from smsgate.provider import Provider
from smsgate.store.base import Claim, LogWrite, MessageUpdate, Recheck, RecipientState, RecipientUpdate
from smsgate.traffic.gate import LimitWaitExceeded, StoppedWaiting

__all__ = [
    "RECHECK_AFTER",
    "RECHECK_AGE",
    "RETRY",
    "UNSUPPORTED",
    "Fresh",
    "OptedOutSince",
    "SendMany",
    "batches",
    "can_fail_over",
    "cannot_take",
    "deliver",
    "deliver_one",
    "log_ahead",
    "recipient_update",
    "send_many",
    "send_one",
    "split_distinct",
    "tracked",
]

log = logging.getLogger("smsgate")

T = TypeVar("T")

#: The failed attempts of messages through the providers of their chain so far: (instance, error).
Attempts = tuple[tuple[str, Exception], ...]

#: ``send_many`` prepares this many recipients at a time, just ahead of sending them.
SEND_CHUNK = 1000
#: How often messages a vendor did not process (``SendResult.resend``) are sent again.
RESEND_ROUNDS = 2

#: A message's id (a C-level getter: a request's ids need no generator of their own).
_MESSAGE_ID = attrgetter("message_id")

#: The group of a prepared message: its route and the first provider's batch key.
_GroupKey = tuple[tuple[str, ...], Any]


def can_fail_over(exc: ProviderError) -> bool:
    """Whether a failed attempt certainly did not deliver, so another provider may try."""
    return not isinstance(exc, (UnknownOutcome, MalformedResponse))


#: The ``error_code`` of a :class:`~smsgate.models.SendResult` an adapter's ``send_many`` answers for
#: a message it cannot carry and did not send (a destination the vendor does not serve): with
#: another provider on the message's route, the gateway fails it over, as when ``send`` raises
#: :class:`~smsgate.errors.Unsupported`; otherwise it stays ``rejected``.
UNSUPPORTED = "unsupported"


def cannot_take(result: SendResult) -> bool:
    """Whether ``result`` says the provider could not carry the message and never sent it."""
    return result.status is Status.REJECTED and result.error_code == UNSUPPORTED and not result.suppressed


#: The reason of a claimed recipient held for a later retry (see :class:`~smsgate.store.base.Claim`).
RETRY = "retry"


def recipient_update(claim: Claim, result: SendResult) -> RecipientUpdate:
    """A campaign recipient's state for its message's ``result``."""
    rid, status, code = claim.recipient_id, result.status, result.error_code
    if status in (Status.QUEUED, Status.SUBMITTED, Status.SENT, Status.DELIVERED):
        return RecipientUpdate(rid, RecipientState.SENT)
    if status is Status.UNKNOWN:  # only while still unsettled: it never undoes another runner's verdict
        return RecipientUpdate(rid, RecipientState.UNKNOWN, reason="unknown_outcome", detail=result.error,
                               if_message=result.message_id, if_sending=True)
    if code == "claim_lost":  # pragma: no cover - callers leave another runner's recipient alone
        raise ValueError("a lost claim has no recipient update")
    if result.suppressed:  # the vendor says the recipient opted out
        return RecipientUpdate(rid, RecipientState.SKIPPED, reason="opted_out", detail=result.error)
    if status is Status.FAILED and code in claim.retry:  # sent again later: held, never failed for good
        return RecipientUpdate(rid, RecipientState.SENDING, reason=RETRY, detail=result.error)
    if status is Status.REJECTED and code in ("opted_out", "no_route", UNSUPPORTED):
        return RecipientUpdate(rid, RecipientState.SKIPPED, reason=code, detail=result.error)
    return RecipientUpdate(rid, RecipientState.FAILED, reason=code, detail=result.error)


# ------------------------------------------------------------------------------ batching
def _has_batch_key(prov: Provider) -> bool:
    return type(prov).batch_key is not Provider.batch_key


def _split(prov: Provider, msgs: Sequence[OutboundMessage], size: int) -> Iterator[list[OutboundMessage]]:
    """``msgs`` (one batch key) in requests of at most ``size``; with ``prov.distinct_recipients``
    each number at most once per request (see :func:`split_distinct`)."""
    if not prov.distinct_recipients:
        for i in range(0, len(msgs), size):
            yield list(msgs[i : i + size])
        return
    for part in split_distinct([m.to for m in msgs], size):
        yield [msgs[i] for i in part]


def split_distinct(numbers: Sequence[str], size: int) -> list[list[int]]:
    """Indices of ``numbers`` in the fewest batches of at most ``size`` with no number twice.

    That is ``max(ceil(n / size), most copies of one number)`` batches; without
    repeated numbers they are consecutive chunks.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    copies = Counter(numbers)
    most = max(copies.values(), default=0)
    if most <= 1:
        return [list(range(j, min(j + size, len(numbers)))) for j in range(0, len(numbers), size)]
    count = max(-(-len(numbers) // size), most)
    # copies of one number sit next to each other once sorted, so dealing them round-robin puts
    # each copy in a different batch; batches get at most ceil(n / count) <= size items
    ordered = sorted(range(len(numbers)), key=lambda i: (-copies[numbers[i]], numbers[i], i))
    batches: list[list[int]] = [[] for _ in range(count)]
    for j, i in enumerate(ordered):
        batches[j % count].append(i)
    return [sorted(b) for b in batches]


def regroup(policy: TenantPolicy, msgs: Sequence[OutboundMessage], instance: str,
            template: Template | None) -> Iterator[list[OutboundMessage]]:
    """``msgs`` as the requests provider instance ``instance`` takes them."""
    prov = policy.provider(instance)
    size = policy.max_batch(instance)
    if not prov.capabilities.bulk:
        for m in msgs:
            yield [m]
        return
    if not _has_batch_key(prov):
        yield from _split(prov, msgs, size)
        return
    groups: dict[Any, list[OutboundMessage]] = {}
    for m in msgs:
        groups.setdefault(prov.batch_key(policy.for_provider(m, instance, template)), []).append(m)
    for part in groups.values():
        yield from _split(prov, part, size)


def batches(
    policy: TenantPolicy, prepared: Iterable[Prepared], template: Template | None, *,
    claims: Mapping[str, Claim] | None = None,
    carry: dict[_GroupKey, list[OutboundMessage]] | None = None, last: bool = True,
    unsent: dict[str, OutboundMessage | None] | None = None, checked: float | None = None,
) -> tuple[dict[str, SendResult], list[Batch]]:
    """Results known without sending, and the batches for the rest.

    ``unsent``: the messages logged already (see :func:`log_ahead`) wait in ``unsent``
    until their batch starts (it takes them out); each batch of others logs its messages
    just before its request leaves.

    A large send prepared in chunks passes the same ``carry`` dict for every chunk
    and ``last=False`` but for the final one: messages for a bulk provider that do
    not fill a whole request wait in ``carry`` for the next chunk, so the requests
    are the same as for one large preparation. ``checked``: ``time.monotonic()`` when the
    opt-outs of ``prepared`` (and of those in ``carry``) were checked, for a batch that starts
    long after (see :data:`RECHECK_AGE`).
    """
    done: dict[str, SendResult] = {}
    groups: dict[_GroupKey, list[OutboundMessage]] = {}
    if carry:
        groups.update(carry)  # a group seen before is bulk even if one message is left
        carry.clear()
    seen = set(groups)
    out: list[Batch] = []
    for p in prepared:
        if p.result is not None:
            done[p.message.message_id] = p.result
            continue
        names = tuple(p.candidates)
        first = names[0]
        prov = policy.provider(first)
        if not prov.capabilities.bulk:
            out.append(Batch(first, 1, deliver(policy, [p.message], names, template, claims, unsent=unsent,
                                                        checked=checked)))
            continue
        key = prov.batch_key(policy.for_provider(p.message, first, template)) if _has_batch_key(prov) else None
        groups.setdefault((names, key), []).append(p.message)
    for group, msgs in groups.items():
        names = group[0]
        prov = policy.provider(names[0])
        if len(msgs) == 1 and group not in seen and last:
            out.append(Batch(names[0], 1, deliver(policy, msgs, names, template, claims, unsent=unsent,
                                                            checked=checked)))
            continue
        # every request of a group of several goes through the bulk API, a last one of one too
        size = policy.max_batch(names[0])
        end = len(msgs)
        if not last:
            assert carry is not None, "batches(last=False) needs a carry dict"
            end -= end % size
            carry[group] = msgs[end:]
        for part in _split(prov, msgs[:end], size):
            out.append(Batch(names[0], len(part), deliver(policy, part, names, template, claims, bulk=True,
                                                          unsent=unsent, checked=checked)))
    return done, out


# ------------------------------------------------------------------------------ delivery
def _ahead(policy: TenantPolicy, msgs: Sequence[OutboundMessage], claims: Mapping[str, Claim], *,
           bind: bool = True) -> LogWrite:
    """The write-ahead of ``msgs``: logged ``queued`` with their keys (unless not ``bind``)
    and, for a campaign, their claims."""
    now = utcnow()
    # loops, not comprehensions: comprehensions referring to policy, now and claims make them cells
    # and make three functions, for every request of a campaign (see _attempt)
    write = LogWrite()
    inserts, keys, claimed = write.inserts, write.keys, write.claims
    for m in msgs:
        mid = m.message_id
        inserts.append(policy.record(m, Status.QUEUED, now))
        if bind and m.idempotency_key:
            keys[mid] = m.idempotency_key
        claim = claims.get(mid)
        if claim is not None:
            claimed[mid] = claim
    return write


def log_ahead(policy: TenantPolicy, prepared: list[Prepared]) -> Plan[list[Prepared]]:
    """Log a whole chunk's messages ``queued`` in one write, before its first request leaves;
    returns those it logged and left to send (see ``unsent`` of :func:`batches`).

    Cheaper than one write-ahead per request, for a log that then says a little less
    after a crash: every ``queued`` message of the chunk *may* have left. Messages whose
    idempotency key is bound already get that message's answer instead. Messages for a
    provider with limits are left out: each of their requests is logged once its limits
    admit it (:func:`deliver`), so that a crash while they wait leaves nothing of them
    "may have left" (and a chunk waits for its limits anyway: one write a request costs
    nothing that shows).
    """
    live = [p for p in prepared if p.result is None and policy.limits(p.candidates[0]) is None]
    if not live:
        return live
    answer = yield Log(_ahead(policy, [p.message for p in live], {}))
    for p in live:
        first = answer.replays.get(p.message.message_id)
        if first is not None:
            p.result = yield from policy.replay(first, p.message.to)
    return [p for p in live if p.result is None]


def deliver(policy: TenantPolicy, msgs: Sequence[OutboundMessage], names: Sequence[str],
            template: Template | None, claims: Mapping[str, Claim] | None = None, *, bulk: bool = False,
            unsent: dict[str, OutboundMessage | None] | None = None,
            checked: float | None = None) -> Plan[dict[str, SendResult]]:
    """The plan of one batch: write-ahead, the request, failover; one result per message.

    ``bulk``: send through the provider's bulk API even a batch of one. ``unsent``: the
    messages wait there until this plan starts (it takes them out: they are no longer
    "never sent"), logged ahead already (:func:`log_ahead`) unless their provider has limits.
    ``checked``: ``time.monotonic()`` when their opt-outs were checked (a ``send_many``'s chunk
    prepared), if long before the plan may start: read again then (:data:`RECHECK_AGE`).
    """
    # _deliver's own generator, not one wrapping it: a generator fewer per batch in flight
    return _deliver(policy, msgs, names, template, claims or {}, {}, {}, bulk, unsent, checked=checked)


def deliver_one(policy: TenantPolicy, msg: OutboundMessage, names: Sequence[str], template: Template | None,
                ) -> Plan[tuple[SendResult, Exception | None]]:
    """:func:`deliver` of one message, with the error behind a failed result (for ``send()`` to raise)."""
    results: dict[str, SendResult] = {}
    errors: dict[str, Exception] = {}
    yield from _deliver(policy, [msg], names, template, {}, results, errors, False, None)
    return results[msg.message_id], errors.get(msg.message_id)


def send_one(policy: TenantPolicy, msg: OutboundMessage, provider: str | None,
             template: Template | None) -> Plan[SendResult]:
    """A whole ``send()`` of the built message ``msg``: prepared, delivered, and its answer
    written to the log before it returns (a :class:`~smsgate.core.steps.Flush`).

    Raises what refused it (opted out, no route...) or the error behind a failed result; a
    store that fails writing the provider's answer is :class:`~smsgate.errors.AnswerNotLogged`
    (the message left: never to be read as "not sent").
    """
    answered: SendResult | None = None
    error: Exception | None = None
    abandoned = False
    try:
        (prep,) = yield from policy.prepare([msg], provider)
        if prep.result is not None:
            if prep.error is not None:
                raise prep.error
            return prep.result
        answered, error = yield from deliver_one(policy, msg, prep.candidates, template)
    except GeneratorExit:  # its driver gave it up (Ctrl-C in a step): it asks nothing more
        abandoned = True
        raise
    finally:
        if not abandoned:
            try:
                yield Flush()  # the answer is in the log when send() returns
            except StoreError as err:
                if answered is None:
                    raise
                raise AnswerNotLogged(err, answered) from err
    if error is not None:
        raise error
    return answered


def _deliver(policy: TenantPolicy, msgs: Sequence[OutboundMessage], names: Sequence[str],
             template: Template | None, claims: Mapping[str, Claim], results: dict[str, SendResult],
             errors: dict[str, Exception], bulk: bool,
             unsent: dict[str, OutboundMessage | None] | None, earlier: Attempts = (),
             resends: int = RESEND_ROUNDS, *, checked: float | None = None) -> Plan[dict[str, SendResult]]:
    """:func:`deliver`'s plan; returns ``results`` (filled in). ``earlier``: the failed attempts
    of ``msgs`` before ``names[0]``, for campaign messages failing over to a provider with limits
    (their write-ahead withdrawn, see :func:`_fail_over`; the hooks ran before the first);
    ``resends``: the rounds of sending again left to them (fewer: campaign messages the vendor
    asked to be sent again through a provider with limits, see :func:`_attempt`; the hooks ran);
    ``checked``: see :func:`deliver`."""
    instance = names[0]
    limited = policy.limits(instance) is not None
    if unsent is not None:  # handed to a batch: started now (logged ahead unless limited, see log_ahead)
        for m in msgs:
            unsent.pop(m.message_id, None)
    for m in msgs if not earlier and resends == RESEND_ROUNDS else ():
        policy.before_send(m)  # before the write-ahead: a hook that stops the send leaves no trace
    if unsent is not None and not limited:  # logged ahead already
        live = msgs if type(msgs) is list else list(msgs)  # read only below: no copy of a batch's list
        if live and checked is not None and time.monotonic() - checked > RECHECK_AGE:
            # prepared long before (a long send_many's later requests): their opt-outs again, in a
            # write of its own (merged with those of the requests in flight), before the request
            live = yield from _still_wanted(policy, Fresh(policy, live, names, claims), live, names, template,
                                            claims, results, errors, resends, earlier)
        if live:
            yield from _attempt(policy, live, names, template, claims, results, errors, resends, bulk)
        return results
    # with limits, each request's place in them first, then its write-ahead: a process killed
    # while a request waits has logged nothing of it (never "may have left"); what stops the
    # wait (limits full past max_limit_wait, a stop, an open breaker) meets the attempt once
    # its messages are logged, as if its call had raised it (but a campaign's stopped by its
    # run's stop: never logged, see _left_claimed). Stopped for good (no provider to
    # fail over to, or a stop no provider follows), they are never sent: a message whose key
    # is bound meanwhile gets that message's answer, the others are logged without binding
    # their keys, which stay free for the attempt still waiting with the same key (a client's
    # retry refused or timed out must not take the key from its original) and for a retry
    for part in policy.fit(instance, msgs if type(msgs) is list else list(msgs)) if limited else (msgs,):
        admitted: Any = None
        outgoing: list[OutboundMessage] | None = None
        waited = 0.0
        if limited:
            part = yield from _unbound(policy, part, results)  # a repeated key takes no place in the limits
            if not part:
                continue
            admitted, outgoing, waited = yield from _admit(policy, part, names, template, claims)
            if checked is not None:  # its wait since its chunk was prepared (a send_many's)
                waited = max(waited, time.monotonic() - checked)
        stopped = isinstance(admitted, Exception) and (len(names) == 1 or _final(admitted))
        if stopped and claims and _left_claimed(policy, part, instance, admitted, claims, results, errors):
            continue
        if stopped:
            part = yield from _unbound(policy, part, results)
            if not part:
                continue
        write = _ahead(policy, part, claims, bind=not stopped)
        refused: dict[str, SendResult] = {}
        if not stopped:  # its opt-outs again, in the write-ahead's transaction, after a wait since prepared
            recheck = _recheck(policy, part, instance, claims, waited, refused)
            if recheck is not None:
                write.rechecks.append(recheck)
        answer = yield Log(write)  # write-ahead: before the request leaves
        live = []
        for m in part:
            mid = m.message_id
            if mid in answer.lost:
                results[mid] = _lost(mid, m.to)
            elif mid in answer.replays:
                results[mid] = yield from policy.replay(answer.replays[mid], m.to)
            elif mid in answer.refused and mid in refused:  # (another waiter's, in a merged write: not ours)
                results[mid] = refused[mid]
                errors[mid] = OptedOut(m.to, policy.name)
            else:
                live.append(m)
        if outgoing is not None and len(live) < len(part):  # the admitted request carries fewer
            kept = {m.message_id for m in live}
            fewer = []  # a loop, not a comprehension: see _attempt
            for o in outgoing:
                if o.message_id in kept:
                    fewer.append(o)
            outgoing = fewer
        if live:  # (an admission no call takes is given back by the driver: at the next Admit, or the end)
            yield from _attempt(policy, live, names, template, claims, results, errors, resends, bulk,
                                earlier, admitted=admitted, outgoing=outgoing)
    return results


#: Seconds of waiting since its messages were prepared (their opt-outs checked) from which a
#: request reads its numbers' opt-outs again, in its write-ahead's transaction (:func:`_recheck`);
#: and since its call began from which a try of it (a retry after a 429, or after its limits
#: admitted it again) reads them again before it leaves (:class:`Fresh`).
RECHECK_AFTER = 0.05

#: Seconds since their chunk was prepared from which the messages of a ``send_many`` logged ahead
#: already (a provider without limits: no write-ahead of their own) read their numbers' opt-outs
#: again, in a write of their own (merged with the writes of the requests in flight), before
#: their request leaves (:func:`_deliver`).
RECHECK_AGE = 1.0


def _recheck(policy: TenantPolicy, msgs: Sequence[OutboundMessage], instance: str, claims: Mapping[str, Claim],
             waited: float, refused: dict[str, SendResult], *, logged: bool = False) -> Recheck | None:
    """The opt-out check of ``msgs`` (about to be logged ahead and sent through ``instance``)
    done again in their write-ahead's transaction, when they waited since they were prepared;
    ``None`` when they did not. ``refused`` is filled (by the store, inside the transaction)
    with the answers of those refused: their number opted out (of every sender, or of the
    sender they go out with through ``instance``) since.

    A campaign chunk is prepared (its opt-outs checked) when it is claimed, then its requests
    wait for the run's concurrency and rate limits (``Claim.checked`` says since when), seconds
    or minutes under a low ``rate_limit``; a send waits for its provider's limits (``waited``,
    up to ``max_limit_wait``; a ``send_many``'s, since its chunk was prepared). An opt-out
    committed meanwhile (``optouts.add``, a STOP at the webhook) was not seen, and its number
    was texted after it. Read in the transaction that
    logs a request ahead, an opt-out committed before it holds: the message is logged
    ``rejected`` (``opted_out``; a campaign recipient ``skipped``) instead of ``queued``, never
    sent. A read a transaction, not a request: drivers merge concurrent write-aheads (none for a
    request leaving within :data:`RECHECK_AFTER` of its preparation). smsgate's own replies to
    inbound keywords keep the opt-out check they were prepared with (a stop confirmation is not
    held back by the opt-out its stop word recorded, a help reply by none, see
    :mod:`smsgate.core.inbound`), but for the start confirmation (:func:`_keeps_its_check`).

    ``logged``: ``msgs`` were logged ahead already (failed over, or sent again, see
    :func:`_admit_logged`): each refusal is an update of its message, not an insert."""
    if claims:
        fresh = time.monotonic() - RECHECK_AFTER
        if all(m.message_id in claims and claims[m.message_id].checked > fresh for m in msgs):
            return None  # checked just now (no wait since)
    elif waited <= RECHECK_AFTER:
        return None
    return _refusal(policy, msgs, instance, claims, refused, logged)


def _refusal(policy: TenantPolicy, msgs: Sequence[OutboundMessage], instance: str, claims: Mapping[str, Claim],
             refused: dict[str, SendResult], logged: bool, rest: Sequence[str] = (),
             moved: set[str] | None = None) -> Recheck | None:
    """The opt-out check of ``msgs`` read again (the one rule of every re-check, see
    :func:`_recheck`): the numbers to read and what to write for those refused; ``None`` when
    none of ``msgs`` is checked again (smsgate's own replies that keep their check).

    ``rest``: the providers of the messages' route after ``instance`` (a check inside a call,
    see :class:`Fresh`): a message whose number opted out of the sender it goes out with through
    ``instance`` only, not of one it would go out with through one of ``rest``, is not refused
    but put in ``moved`` (it fails over, as its preparation would have routed it)."""
    if claims:
        checked = msgs
    else:
        checked = [m for m in msgs if not _keeps_its_check(m.idempotency_key)]
        if not checked:
            return None

    def refuse(scopes: Mapping[str, set[str]]) -> LogWrite:
        write = LogWrite()
        now = utcnow()
        if moved is not None:
            moved.clear()  # (a transaction tried again reads them again)
        for m in checked:
            opted = scopes.get(m.to)
            if not opted or not policy.optout_holds(opted, policy.sender_scope(policy.sender_of(m.sender, instance))):
                continue
            mid = m.message_id
            if moved is not None and not all(policy.optout_holds(opted, policy.sender_scope(policy.sender_of(m.sender, n)))
                                             for n in rest):
                moved.add(mid)
                continue
            result = refused[mid] = policy.refusal(m, OptedOut(m.to, policy.name), OPTED_OUT, "opted out")
            if logged:
                write.updates.append(MessageUpdate(message_id=mid, status=Status.REJECTED, at=now, raw_status=OPTED_OUT,
                                                   source="gateway", error=result.error))
            else:
                write.inserts.append(policy.record(m, Status.REJECTED, now, error=result.error, raw=OPTED_OUT))
            claim = claims.get(mid)
            if claim is not None:  # its recipient skipped, while it still holds this message
                update = recipient_update(claim, result)
                update.if_message = mid
                write.recipients.append((claim.campaign_id, update))
        return write

    return Recheck({m.to for m in checked}, refuse)


def _refused_since(policy: TenantPolicy, msgs: list[OutboundMessage], recheck: Recheck,
                   refused: dict[str, SendResult], results: dict[str, SendResult], errors: dict[str, Exception],
                   ) -> Plan[list[OutboundMessage]]:
    """``msgs``, logged ahead already, but those whose number opted out since they were checked:
    their opt-outs read again in a write of ``recheck`` alone (built with ``logged``, see
    :func:`_refusal`), which logs those refused ``rejected`` (``opted_out``; a campaign
    recipient ``skipped``) and answers them in ``results``."""
    answer = yield Log(LogWrite(rechecks=[recheck]))
    if not answer.refused:
        return msgs
    live = []
    for m in msgs:
        mid = m.message_id
        if mid in answer.refused and mid in refused:  # (another waiter's, in a merged write: not ours)
            results[mid] = refused[mid]
            errors[mid] = OptedOut(m.to, policy.name)
        else:
            live.append(m)
    return live


def _still_wanted(policy: TenantPolicy, fresh: Fresh, msgs: list[OutboundMessage], names: Sequence[str],
                  template: Template | None, claims: Mapping[str, Claim], results: dict[str, SendResult],
                  errors: dict[str, Exception], resends: int, earlier: Attempts) -> Plan[list[OutboundMessage]]:
    """``msgs`` (``fresh``'s, logged ahead already, about to leave through ``names[0]``) but
    those whose number opted out since they were checked, read again in a write of its own
    (:func:`_refused_since`): those refused are logged so and answered; those opted out of the
    sender of ``names[0]`` only, not of the next provider's, fail over (see :func:`_refusal`)."""
    recheck = fresh.recheck()
    if recheck is None:  # smsgate's own replies only: they keep their check
        return msgs
    fresh.moved.clear()
    live = yield from _refused_since(policy, msgs, recheck, fresh.refused, results, errors)
    if not fresh.moved:
        return live
    moving: list[OutboundMessage] = []
    staying: list[OutboundMessage] = []
    for m in live:
        (moving if m.message_id in fresh.moved else staying).append(m)
    if moving:
        why = OptedOutSince(f"{len(moving)} number(s) opted out of the sender of {names[0]!r} since they were checked")
        yield from _fail_over(policy, moving, names, template, claims, results, errors, resends, why, earlier)
    return staying


class OptedOutSince(Exception):
    """Raised by a call's :class:`Fresh` check (in its driver, before a try): a number of the
    call opted out since its messages were last checked. The try did not leave; the plan reads
    the opt-outs again in a write of its own, which logs those refused (:func:`_refused_since`),
    and sends the others in a request of their own."""


class Fresh:
    """The opt-out check of a call's messages (logged ahead already), kept fresh before each of
    its tries (:attr:`Call.check <smsgate.core.steps.Call.check>`): the kernel's rule, the
    driver's I/O.

    A try that leaves more than :data:`RECHECK_AFTER` after the call began, or after its last
    re-check (a retry after a 429, or a 5xx the vendor did not process, waits for its
    ``Retry-After`` or backoff and for its limits again), reads its numbers' opt-outs again
    first: the driver calls :meth:`due` before each try (a clock read) and, when it says so,
    reads :meth:`Store.optout_scopes <smsgate.store.base.Store.optout_scopes>` of
    :attr:`phones` (off the event loop in an async driver) and gives the answer to
    :meth:`answer`, which raises :class:`OptedOutSince` when a number of the call opted out
    (of every sender, or of the sender its message goes out with): the try does not leave.
    A bulk request is one vendor request: it is not retried as it was, but the plan logs the
    messages refused ``rejected`` and sends the others in a new request (see :func:`_attempt`).
    """

    __slots__ = ("_recheck", "at", "claims", "moved", "msgs", "names", "policy", "refused")

    def __init__(self, policy: TenantPolicy, msgs: Sequence[OutboundMessage], names: Sequence[str],
                 claims: Mapping[str, Claim]) -> None:
        self.policy = policy
        self.msgs = msgs
        #: the providers of their route, this call's first
        self.names = names
        self.claims = claims
        #: the answers of those its re-check refuses (see :func:`_refusal`)
        self.refused: dict[str, SendResult] = {}
        #: those it moves to the next provider (opted out of this one's sender only)
        self.moved: set[str] = set()
        #: ``time.monotonic()`` when its messages' opt-outs were last known to hold
        self.at = time.monotonic()
        self._recheck: Recheck | None = None

    def recheck(self) -> Recheck | None:
        """The re-check of its messages, as a write of it alone (see :func:`_refused_since`)."""
        if self._recheck is None:
            self._recheck = _refusal(self.policy, self.msgs, self.names[0], self.claims, self.refused, True,
                                     self.names[1:], self.moved)
        return self._recheck

    def due(self) -> bool:
        """Whether the next try reads the opt-outs of :attr:`phones` first (a clock read)."""
        if time.monotonic() - self.at <= RECHECK_AFTER:
            return False
        if self.recheck() is None:  # smsgate's own replies only: they keep their check
            self.at = float("inf")
            return False
        return True

    @property
    def phones(self) -> set[str]:
        """The numbers whose opt-outs are read (when :meth:`due`)."""
        recheck = self.recheck()
        return recheck.phones if recheck is not None else set()

    def answer(self, scopes: Mapping[str, set[str]], started: float) -> None:
        """The opt-outs of :attr:`phones` as read from ``started`` (``time.monotonic()``, before
        the read): raises :class:`OptedOutSince` when one refuses a message of the call."""
        recheck = self.recheck()
        if scopes and recheck is not None:
            write = recheck.refuse(scopes)
            if write.updates or self.moved:
                raise OptedOutSince(f"{len(write.updates) + len(self.moved)} of the call's numbers opted out since "
                                    "they were checked")
        self.at = started


def _keeps_its_check(key: str | None) -> bool:
    """Whether a send under idempotency key ``key`` keeps the opt-out check it was prepared with
    when it waited: smsgate's stop confirmation (not held back by the opt-out its stop word just
    recorded) and help reply (answered even after STOP). Its start confirmation is checked again
    as any message is (docs/inbound.md: it "goes through the opt-out check as any message
    does"): a STOP while it waited holds. (Their keys: ``smsgate:<event>:<keyword>``, see
    :func:`smsgate.core.inbound._auto_reply`.)"""
    return key is not None and key.startswith(RESERVED_KEY_PREFIX) and not key.endswith(_START_REPLY)


#: How the idempotency key of a start word's confirmation ends (see :func:`_keeps_its_check`).
_START_REPLY = f":{Keyword.START.value}"


def _admit(policy: TenantPolicy, msgs: Sequence[OutboundMessage], names: Sequence[str], template: Template | None,
           claims: Mapping[str, Claim]) -> Plan[tuple[Any, list[OutboundMessage] | None, float]]:
    """The place in ``names[0]``'s limits of ``msgs`` (one request's worth): the admission, or
    what stopped taking it (for :func:`_attempt` to raise); the messages as that provider gets
    them (``None`` when it stopped); and the seconds it waited (for :func:`_recheck`). A
    campaign's request waits as long as the limits say, a send up to ``max_limit_wait``."""
    instance = names[0]
    outgoing: list[OutboundMessage] = []
    try:
        for m in msgs:  # a loop, not a comprehension: see _attempt
            outgoing.append(policy.for_provider(m, instance, template))
        began = time.monotonic()
        admitted = yield Admit(instance, policy.charges(instance, outgoing), len(names) > 1,
                               None if claims else policy.config.max_limit_wait)
    except Exception as exc:
        return exc, None, 0.0
    return admitted, outgoing, time.monotonic() - began


def _admit_logged(policy: TenantPolicy, msgs: list[OutboundMessage], names: Sequence[str], template: Template | None,
                  claims: Mapping[str, Claim], results: dict[str, SendResult], errors: dict[str, Exception],
                  ) -> Plan[tuple[list[OutboundMessage], Any, list[OutboundMessage] | None]]:
    """The place in ``names[0]``'s limits of ``msgs`` (one request's worth), logged ahead
    already, and their opt-outs read again (:func:`_recheck`) once those limits admit them after
    a wait: ``msgs`` but those refused (answered in ``results``), the admission (or what stopped
    taking it, for :func:`_attempt` to raise), and the messages as that provider gets them.

    A ``send`` failed over to a provider with limits, or sent again through one, waited for them
    after its write-ahead and its opt-out check: a STOP committed meanwhile held nothing."""
    admitted, outgoing, waited = yield from _admit(policy, msgs, names, template, claims)
    if outgoing is None:
        return msgs, admitted, None
    refused: dict[str, SendResult] = {}
    recheck = _recheck(policy, msgs, names[0], claims, waited, refused, logged=True)
    if recheck is None:
        return msgs, admitted, outgoing
    live = yield from _refused_since(policy, msgs, recheck, refused, results, errors)
    if len(live) == len(msgs):
        return msgs, admitted, outgoing
    kept = set(map(_MESSAGE_ID, live))
    return live, admitted, [out for out in outgoing if out.message_id in kept]


def _lost(mid: str, to: str) -> SendResult:
    return SendResult(message_id=mid, to=to, status=Status.QUEUED, error_code="claim_lost",
                      error="the recipient is no longer claimed by this runner; not sent")


def _final(exc: Exception) -> bool:
    """Whether ``exc``, stopping a request before its place, ends its messages' chain whatever
    the route (:func:`_attempt` fails over on none of them): a stop, the store failing."""
    return isinstance(exc, (StoppedWaiting, StoreError)) and not isinstance(exc, LimitWaitExceeded)


def _left_claimed(policy: TenantPolicy, msgs: Sequence[OutboundMessage], instance: str, exc: Exception,
                  claims: Mapping[str, Claim], results: dict[str, SendResult], errors: dict[str, Exception]) -> bool:
    """Whether ``msgs``, campaign recipients whose run stopped (Ctrl-C, a cancelled task, a pause
    or cancel: :class:`StoppedWaiting`) while their request waited for its place in the limits,
    are left as they are: never logged, still claimed, as after a kill. The run's end puts them
    back to ``pending`` (:func:`smsgate.core.campaign.release`: never logged, never left) for
    the resume to send once; the log, and the campaign's statistics, count only what left. A
    message logged ``failed`` (``not_sent``) would count as one more message for its recipient,
    sent again under a new one. Their results (``failed``, ``not_sent``) are not logged."""
    if not isinstance(exc, StoppedWaiting) or isinstance(exc, LimitWaitExceeded):
        return False
    if any(m.message_id not in claims for m in msgs):
        return False
    for m in msgs:
        result, _ = policy.failure(m, instance, exc, Status.FAILED)
        result.error_code = NOT_SENT
        results[m.message_id] = result
        errors[m.message_id] = exc
    return True


def _unbound(policy: TenantPolicy, msgs: Sequence[OutboundMessage],
             results: dict[str, SendResult]) -> Plan[Sequence[OutboundMessage]]:
    """``msgs`` but those whose idempotency key is bound already (answered with the message
    it is bound to, in ``results``); a key bound meanwhile is still found by the write-ahead."""
    keys = [m.idempotency_key for m in msgs if m.idempotency_key]
    if not keys:
        return msgs
    bound: dict[str, str] = yield Query("bound_keys", policy.name, keys)
    if not bound:
        return msgs
    rest = []
    for m in msgs:
        first = bound.get(m.idempotency_key) if m.idempotency_key else None
        if first is not None and first != m.message_id:
            results[m.message_id] = yield from policy.replay(first, m.to)
        else:
            rest.append(m)
    return rest


def _attempt(policy: TenantPolicy, msgs: list[OutboundMessage], names: Sequence[str], template: Template | None,
             claims: Mapping[str, Claim], results: dict[str, SendResult], errors: dict[str, Exception],
             resends: int, bulk: bool = False, earlier: Attempts = (), *, admitted: Any = None,
             outgoing: list[OutboundMessage] | None = None) -> Plan[None]:
    """Send ``msgs`` (one request's worth) through ``names[0]``; fail over to ``names[1:]``.

    ``earlier``: the failed attempts of these messages through the providers before ``names[0]``
    (a failure at the end of the chain carries them, see :func:`_fail`). ``admitted``: the
    request's place in ``names[0]``'s limits, taken before the write-ahead (see :func:`_deliver`),
    or the exception that stopped taking it; ``outgoing``: ``msgs`` as that provider gets them.
    """
    instance = names[0]
    try:
        prov = policy.provider(instance)
    except ConfigError as exc:  # it cannot be built (an unknown plugin, a credential refused): the
        # configuration's error, raised as it is, and its messages, logged ahead, never left: logged
        # ``failed`` (``not_sent``; a campaign's recipients ``pending`` again) before it is raised,
        # or the log kept them ``queued`` ("may have been sent")
        yield from _not_sent(policy, msgs, instance, exc, claims, results, errors, earlier, wait=True)
        raise
    if admitted is None:
        parts = policy.fit(instance, msgs)
        if len(parts) > 1:  # more than the instance's limits allow in one request
            for part in parts:
                yield from _attempt(policy, part, names, template, claims, results, errors, resends, bulk, earlier)
            return
        del parts  # not kept alive while the request is in flight
        if policy.limits(instance) is not None:
            # logged ahead already (failed over to this provider, sent again, tried alone): its
            # place in the limits first, then its opt-outs again once they admit it, as a first
            # request's (_deliver); its call would otherwise wait for them after any check
            msgs, admitted, outgoing = yield from _admit_logged(policy, msgs, names, template, claims, results,
                                                                errors)
            if not msgs:
                return
    try:
        if isinstance(admitted, Exception):
            raise admitted
        if outgoing is None:
            # a loop, not a comprehension: one referring to policy, instance and template makes them
            # cells of every _attempt (three more objects per request in flight for the collector)
            outgoing = []
            for m in msgs:
                outgoing.append(policy.for_provider(m, instance, template))
        charges = policy.charges(instance, outgoing)
        fallback, ids = len(names) > 1, tuple(map(_MESSAGE_ID, msgs))  # no generator object a request
        wait = None if claims else policy.config.max_limit_wait  # a campaign run waits: its limits pace it
        fresh = Fresh(policy, msgs, names, claims)  # its tries' opt-outs, read again after a wait
        if len(outgoing) == 1 and not (bulk and prov.capabilities.bulk):
            answers = [(yield Call(instance, tracked(prov.send(outgoing[0]), instance), charges, fallback, ids, wait,
                                   admitted, check=fresh))]
        else:
            answers = yield Call(instance, tracked(prov.send_many(outgoing), instance), charges, fallback, ids, wait,
                                 admitted, check=fresh)
    except OptedOutSince:  # a try after a wait: a number opted out since (its try did not leave)
        # the request is not sent as it was: the others go in a request of their own, which waits
        # for its limits again (and is checked again after a wait), as any request whose messages
        # are logged ahead
        live = yield from _still_wanted(policy, fresh, msgs, names, template, claims, results, errors, resends,
                                        earlier)
        if live:
            yield from _attempt(policy, live, names, template, claims, results, errors, resends, bulk, earlier)
        return
    except LimitWaitExceeded as exc:  # its limits are full for longer than the tenant waits
        if len(names) > 1:
            yield from _fail_over(policy, msgs, names, template, claims, results, errors, resends, exc, earlier)
        else:  # the soonest any provider of the chain may take it
            exc.retry_after = min([exc.retry_after, *(e.retry_after for _, e in earlier
                                                      if isinstance(e, LimitWaitExceeded))])
            yield from _not_sent(policy, msgs, instance, exc, claims, results, errors, earlier)
        return
    except StoppedWaiting as exc:  # the run stopped while the request waited for its limit
        if _all_claimed(claims, msgs):  # a campaign's: pending, logged never
            yield from _withdraw(policy, msgs, instance, exc, claims, results, errors, earlier)
        else:
            yield from _not_sent(policy, msgs, instance, exc, claims, results, errors, earlier)
        return
    except NotBuilt as exc:
        if len(msgs) > 1:  # find the message it cannot take: each alone
            for m in msgs:
                yield from _attempt(policy, [m], names, template, claims, results, errors, resends, earlier=earlier)
            return
        err = ValidationError(f"provider {instance!r} could not build the request: {exc}")
        yield from _fail(policy, msgs, instance, err, claims, results, errors, Status.REJECTED, earlier)
        return
    except ValidationError as exc:  # refused before sending: this content, or one of the messages
        if len(msgs) > 1:
            for m in msgs:
                yield from _attempt(policy, [m], names, template, claims, results, errors, resends, earlier=earlier)
        elif len(names) > 1:
            yield from _fail_over(policy, msgs, names, template, claims, results, errors, resends, exc, earlier)
        else:
            yield from _fail(policy, msgs, instance, exc, claims, results, errors, Status.REJECTED, earlier)
        return
    except RecipientSuppressed as exc:  # the recipient's choice: no other provider tries
        if len(msgs) > 1:  # which recipient? each alone
            for m in msgs:
                yield from _attempt(policy, [m], names, template, claims, results, errors, resends, earlier=earlier)
            return
        yield from policy.record_suppressions(instance, [(msgs[0], str(exc))])
        yield from _fail(policy, msgs, instance, exc, claims, results, errors, Status.REJECTED, earlier)
        return
    except ProviderError as exc:
        if can_fail_over(exc) and len(names) > 1:
            yield from _fail_over(policy, msgs, names, template, claims, results, errors, resends, exc, earlier)
        else:
            yield from _fail(policy, msgs, instance, exc, claims, results, errors, earlier=earlier)
        return
    except LeaseLost:  # its messages may be another process's to settle now: left as they are
        raise
    except StoreError as exc:
        # the store (or Redis) keeping the send lease, limits and breakers failed before the
        # request left (a failure once it left never replaces its answer): never sent, so not
        # left ``queued`` as if it might have been; the caller still sees the error
        yield from _not_sent(policy, msgs, instance, exc, claims, results, errors, earlier)
        raise
    except SmsgateError as exc:  # Unsupported, ConfigError...: refused before sending
        if len(names) > 1:
            yield from _fail_over(policy, msgs, names, template, claims, results, errors, resends, exc, earlier)
        else:
            yield from _fail(policy, msgs, instance, exc, claims, results, errors, earlier=earlier)
        return
    wrong = _wrong_answers(answers, msgs, instance)
    if wrong is not None:  # the adapter broke its contract after its request left: the vendor may have acted
        bad = MalformedResponse(wrong, provider=instance)
        yield from _fail(policy, msgs, instance, bad, claims, results, errors, earlier=earlier)
        return
    # the lists of the rare outcomes are made when one occurs: a request's answer makes only
    # the lists it uses
    again: list[OutboundMessage] | None = None
    moved: list[OutboundMessage] | None = None
    why: str | None = None
    write = LogWrite()
    done = []
    suppressed: list[tuple[OutboundMessage, str]] | None = None
    for m, out, result in zip(msgs, outgoing, answers, strict=True):
        if result.resend and resends > 0:
            if again is None:
                again = []
            again.append(m)
            continue
        if cannot_take(result) and len(names) > 1:  # never sent: the next provider tries, as after send()
            if moved is None:
                moved = []
            moved.append(m)
            why = why or result.error
            continue
        if result.suppressed:
            if suppressed is None:
                suppressed = []
            suppressed.append((m, result.error or result.raw_status or "suppressed by the vendor"))
        write.updates.append(policy.success(m, instance, result, out.sender))
        claim = claims.get(m.message_id)
        if claim is not None:
            write.recipients.append((claim.campaign_id, recipient_update(claim, result)))
        results[m.message_id] = result
        done.append(m)
    if suppressed:
        yield from policy.record_suppressions(instance, suppressed)
    # campaign messages the vendor asks to be sent again (never sent), through a provider with
    # limits: their write-ahead is withdrawn now (with this answer, committed before any wait) and
    # made again once the limits admit them, as for a first request (_deliver): a runner killed
    # or stopped while they wait leaves them never logged, ``pending`` (never "may have left")
    limited_again = again is not None and policy.limits(instance) is not None and _all_claimed(claims, again)
    if limited_again:
        write.withdrawn.extend(map(_MESSAGE_ID, again or ()))
    yield Log(write, wait=limited_again)
    for m in done:
        policy.after_send(m, results[m.message_id])
    if again and limited_again:
        yield from _deliver(policy, again, names, template, claims, results, errors, bulk, None, earlier, resends - 1)
    elif again:
        yield from _attempt(policy, again, names, template, claims, results, errors, resends - 1, bulk, earlier)
    if moved:
        refused = Unsupported(instance, "some recipients of a bulk request", why or "")
        yield from _fail_over(policy, moved, names, template, claims, results, errors, resends, refused, earlier)


def _wrong_answers(answers: object, msgs: Sequence[OutboundMessage], instance: str = "") -> str | None:
    """What is wrong with an adapter's answer to ``msgs`` (``send``'s, or ``send_many``'s list),
    or ``None``: one :class:`SendResult` per message, in their order.

    One vendor message id given to several messages of the request is not wrong enough to
    refuse the answer (the vendor took them; some adapters give a batch's id to each message
    whose own the vendor left out, e.g. Squad v2 without transaction ids), but it makes their
    delivery reports ambiguous: the stores apply a report of that id to the newest message logged
    with it, so the others get none (their status look-ups still ask by it). Kept as answered
    (no report is dropped, none left unmatched), and said in a WARNING naming ``instance``."""
    if not isinstance(answers, list) or len(answers) != len(msgs):
        count = len(answers) if isinstance(answers, list) else type(answers).__name__
        return f"the adapter returned {count} results for {len(msgs)} messages"
    for i, result in enumerate(answers):
        if not isinstance(result, SendResult):
            return (f"the adapter returned a {type(result).__name__} instead of a SendResult for message "
                    f"{i + 1} of {len(msgs)}")
        to = msgs[i].to
        if result.to != to and not _same_number(result.to, to):
            # out of order (or another message's): taken as it is, each message would carry another's
            # vendor id, and that one's delivery reports and look-ups
            return (f"the adapter's result {i + 1} of {len(msgs)} is for another number than its message "
                    "(send_many answers one SendResult per message, in their order)")
    if len(answers) > 1:
        ids = [r.provider_message_id for r in answers if r.provider_message_id]
        if len(set(ids)) < len(ids):
            seen: dict[str, int] = {}
            for pmid in ids:
                seen[pmid] = seen.get(pmid, 0) + 1
            shared = {pmid: n for pmid, n in seen.items() if n > 1}
            log.warning("provider %r answered %d of the %d messages of one request with %d vendor message id(s) "
                        "shared between messages (e.g. %r): a delivery report of such an id is applied to the "
                        "newest of its messages only; the others keep it for status look-ups", instance,
                        sum(shared.values()), len(msgs), len(shared), next(iter(shared))[:64])
    return None


def _same_number(answered: str, sent: str) -> bool:
    """Whether an adapter's ``to`` can be the number it sent, in whatever form the vendor wrote it
    back (``+2348031234561``, ``2348031234561``, national ``08031234561``, ``803-123-4561``): the
    digits of one, without leading zeros, end the other's. Empty (no number written back): taken
    as its message's."""
    a = "".join(c for c in answered if c.isdigit()).lstrip("0")
    b = "".join(c for c in sent if c.isdigit()).lstrip("0")
    return a.endswith(b) or b.endswith(a)


def _fail_over(policy: TenantPolicy, msgs: list[OutboundMessage], names: Sequence[str], template: Template | None,
               claims: Mapping[str, Claim], results: dict[str, SendResult], errors: dict[str, Exception],
               resends: int, exc: Exception, earlier: Attempts = ()) -> Plan[None]:
    if isinstance(exc, CircuitOpen):  # said once, when the breaker opened
        log.debug("%s skipped (circuit breaker open); trying %s", names[0], names[1])
    elif isinstance(exc, OptedOutSince):  # the recipient's choice of this sender, not a failure
        log.info("%s: a number opted out of its sender since it was checked; trying %s", names[0], names[1])
    elif isinstance(exc, LimitWaitExceeded):  # the configured behaviour under load, not a failure
        log.info("%s: limits full for %.3gs, longer than max_limit_wait; trying %s", names[0], exc.retry_after,
                 names[1])
    else:
        # a configuration problem says what it is (never a secret, never a message text): it is
        # the operator's to fix, and the next provider may well succeed and hide it otherwise
        why = f"{type(exc).__name__}: {exc}" if isinstance(exc, (ConfigError, Unsupported)) else type(exc).__name__
        log.warning("send via %s failed (%s); trying %s", names[0], why, names[1])
    rest = names[1:]
    tried = (*earlier, (names[0], exc))
    if policy.limits(rest[0]) is not None and _all_claimed(claims, msgs):
        # campaign messages about to wait for the next provider's limits: they certainly reached
        # no vendor (only such a failure fails over), so their write-ahead is withdrawn and made
        # again once those limits admit them, as for a first request (_deliver): a runner killed
        # or stopped while they wait leaves them never logged, ``pending`` (never "may have left")
        yield Log(LogWrite(withdrawn=[m.message_id for m in msgs]))  # committed before they are logged again
        for part in regroup(policy, msgs, rest[0], template):
            yield from _deliver(policy, part, rest, template, claims, results, errors, len(part) > 1, None, tried)
        return
    for part in regroup(policy, msgs, rest[0], template):
        yield from _attempt(policy, part, rest, template, claims, results, errors, resends, len(part) > 1, tried)


def _not_sent(policy: TenantPolicy, msgs: Sequence[OutboundMessage], instance: str, exc: Exception,
              claims: Mapping[str, Claim], results: dict[str, SendResult], errors: dict[str, Exception],
              earlier: Attempts = (), *, wait: bool = False) -> Plan[None]:
    """``msgs`` never left: logged ``failed`` (``not_sent``); a campaign's recipients go back to
    ``pending``, to be sent by the next run. ``wait``: the write committed before the plan goes
    on (it raises next)."""
    _after(exc, earlier)
    write = LogWrite()
    for m in msgs:
        result, update = policy.failure(m, instance, exc, Status.FAILED)
        result.error_code = update.raw_status = NOT_SENT
        write.updates.append(update)
        claim = claims.get(m.message_id)
        if claim is not None:  # only while the recipient still holds this message (see _held)
            write.recipients.append((claim.campaign_id, _held(RecipientUpdate(claim.recipient_id,
                                                                              RecipientState.PENDING), m)))
        results[m.message_id] = result
        errors[m.message_id] = exc
    yield Log(write, wait=wait)


def _all_claimed(claims: Mapping[str, Claim], msgs: Sequence[OutboundMessage]) -> bool:
    """Whether ``msgs`` are all campaign recipients' (claimed). A function of its own: a generator
    expression in the plans' functions would make ``claims`` a closure cell at every call."""
    return bool(claims) and all(m.message_id in claims for m in msgs)


def _withdraw(policy: TenantPolicy, msgs: Sequence[OutboundMessage], instance: str, exc: StoppedWaiting,
              claims: Mapping[str, Claim], results: dict[str, SendResult], errors: dict[str, Exception],
              earlier: Attempts = ()) -> Plan[None]:
    """``msgs``, campaign recipients whose run stopped (Ctrl-C, a cancelled task, a pause or
    cancel) while their request waited for its limit *after* their messages were logged: failed
    over to a limited provider, or sent again there. They certainly reached no vendor (an attempt
    fails over, or is sent again, only then), so their write-aheads are taken back
    (``LogWrite.withdrawn``) and the recipients go back to ``pending``, as those stopped before
    being logged are (:func:`_left_claimed`): the resume sends each under one new message, and
    the log, and the campaign's statistics, never count one twice. Their results (``failed``,
    ``not_sent``) are not logged."""
    _after(exc, earlier)
    write = LogWrite()
    for m in msgs:
        result, _ = policy.failure(m, instance, exc, Status.FAILED)
        result.error_code = NOT_SENT
        claim = claims[m.message_id]
        write.withdrawn.append(m.message_id)
        write.recipients.append((claim.campaign_id, _held(RecipientUpdate(claim.recipient_id,
                                                                          RecipientState.PENDING), m)))
        results[m.message_id] = result
        errors[m.message_id] = exc
    yield Log(write, wait=False)


def _fail(policy: TenantPolicy, msgs: Sequence[OutboundMessage], instance: str, exc: Exception,
          claims: Mapping[str, Claim], results: dict[str, SendResult], errors: dict[str, Exception],
          status: Status | None = None, earlier: Attempts = ()) -> Plan[None]:
    """``msgs`` failed at the end of their chain: the answer and the error they get (which
    names the providers tried before, see :func:`_after`), logged."""
    _after(exc, earlier)
    write = LogWrite()
    for m in msgs:
        result, update = policy.failure(m, instance, exc, status)
        write.updates.append(update)
        claim = claims.get(m.message_id)
        if claim is not None:  # only while the recipient still holds this message (see _held)
            write.recipients.append((claim.campaign_id, _held(recipient_update(claim, result), m)))
        results[m.message_id] = result
        errors[m.message_id] = exc
    yield Log(write, wait=False)
    for m in msgs:
        policy.after_send(m, results[m.message_id])


def _held(update: RecipientUpdate, msg: OutboundMessage) -> RecipientUpdate:
    """``update`` of a campaign recipient for the failure of ``msg`` (never sent, or failed),
    applied only while the recipient still holds ``msg``: a runner paused past its lease (a
    stopped process, a VM paused) whose claim another runner took over, settled, sent again
    and completed must not put that recipient back to ``pending`` (sent a second time by the
    next run) nor call it ``failed`` (``retry_failed`` sends it again) when its own request
    ends, long after (``tests/test_attack_12.py``). A success is written as it is: the
    recipient was texted."""
    update.if_message = msg.message_id
    return update


def _after(exc: Exception, earlier: Attempts) -> None:
    """Give the error that ends a failover chain the attempts before it
    (:attr:`SmsgateError.failed_over <smsgate.errors.SmsgateError.failed_over>`), so that what
    the caller gets (and the log records) still says why each earlier provider failed."""
    if earlier and isinstance(exc, SmsgateError):
        exc.failed_over = tuple((instance, err) for instance, err in earlier if err is not exc)


# ----------------------------------------------------------------------------- send_many
class SendMany:
    """The feed of one ``send_many``: recipients prepared :data:`SEND_CHUNK` at a time.

    The first requests leave after one chunk is prepared, and a large call never
    holds more than a chunk or two of prepared messages and plans. ``keys`` (one
    per recipient, in input order) and ``early`` (results known without sending)
    are complete once the feed is exhausted.
    """

    def __init__(self, policy: TenantPolicy, specs: Sequence[MessageSpec | str], provider: str | None,
                 template: Template | None, options: Mapping[str, Any], *, ahead: bool = False,
                 text: str | None = None) -> None:
        policy.check_shared(text, template, options)  # the call's mistake, not each recipient's
        self.policy = policy
        #: log each chunk ahead in one write (:func:`log_ahead`) instead of each request
        self.ahead = ahead
        #: a spec, or a plain number sent ``text`` (no :class:`MessageSpec` per number of a large call)
        self.specs = specs
        self.text = text
        self.provider = provider
        self.template = template
        self.options = options
        self.keys: list[str] = []
        self.early: dict[str, SendResult] = {}
        self._carry: dict[_GroupKey, list[OutboundMessage]] = {}
        #: when the messages in ``_carry`` were prepared (their opt-outs checked)
        self._carried = 0.0
        self._next = 0
        #: idempotency key -> the message built for its first recipient in this call
        self._bound: dict[str, str] = {}
        #: messages handed to a batch that has not started: never sent yet; each logged ahead
        #: (``queued``), or ``None`` when its provider has limits (see :func:`log_ahead`)
        self.unsent: dict[str, OutboundMessage | None] = {}

    @property
    def finished(self) -> bool:
        """Every recipient was prepared and every message logged ahead was sent (the call was
        not stopped half-way)."""
        return self._next >= len(self.specs) and not self.unsent

    def __call__(self) -> Plan[list[Batch]] | None:
        """The plan preparing the next chunk, or ``None`` when every recipient was prepared."""
        start = self._next
        if start >= len(self.specs):
            return None
        self._next = start + SEND_CHUNK
        return self._chunk(start)

    def _chunk(self, start: int) -> Plan[list[Batch]]:
        policy, keys, early = self.policy, self.keys, self.early
        msgs: list[OutboundMessage] = []
        for i in range(start, min(start + SEND_CHUNK, len(self.specs))):
            spec = self.specs[i]
            if isinstance(spec, str):  # a plain number: the call's text, no key of its own
                to, text, variables, reference, bound, options = spec, self.text, None, None, None, self.options
            else:
                to, text, variables, reference, bound = (spec.to, spec.text, spec.variables, spec.reference,
                                                         spec.idempotency_key)
                first = self._bound.get(bound) if bound else None
                if first is not None:
                    # a key repeated in this call: that recipient gets the first one's final answer
                    keys.append(first)
                    continue
                options = self.options if spec.kind is None else {**self.options, "kind": spec.kind}
            try:
                msg = policy.build(to, text, template=self.template, variables=variables, reference=reference,
                                   idempotency_key=bound, **options)
            except ValidationError as exc:
                key = f"invalid-{i}"
                early[key] = SendResult(to=to, status=Status.REJECTED, error=f"recipient {i}: {exc}",
                                        error_code=type(exc).__name__)
                keys.append(key)
                continue
            keys.append(msg.message_id)
            msgs.append(msg)
            if bound:
                self._bound[bound] = msg.message_id
        last = start + SEND_CHUNK >= len(self.specs)
        prepared = yield from policy.prepare(msgs, self.provider)
        now = time.monotonic()
        # when the oldest of the batches' messages was checked (a request's worth carried over from
        # the chunk before, for a bulk provider, is as old as that chunk's preparation)
        carried = {group: part[0] for group, part in self._carry.items() if part}
        checked = self._carried if carried else now
        if self.ahead:
            yield from log_ahead(policy, prepared)
            unsent = self.unsent
            for p in prepared:
                if p.result is None:  # (None: not logged ahead, its provider has limits)
                    unsent[p.message.message_id] = p.message if policy.limits(p.candidates[0]) is None else None
        done, out = batches(policy, prepared, self.template, carry=self._carry, last=last,
                            unsent=self.unsent if self.ahead else None, checked=checked)
        # carried over again: messages of this chunk only, unless their group formed no request
        self._carried = checked if any(part and carried.get(group) is part[0]
                                       for group, part in self._carry.items()) else now
        early.update(done)
        return out

    def abandon(self, why: str) -> Plan[dict[str, SendResult]]:
        """Log the messages logged ahead whose request never left (the call stopped first:
        cancelled, interrupted, or an error) ``failed`` with raw status ``not_sent``, so the
        log never shows them ``queued`` (which says "may have been sent"); their results."""
        msgs, self.unsent = [m for m in self.unsent.values() if m is not None], {}
        results: dict[str, SendResult] = {}
        if not msgs:
            return results
        exc = StoppedWaiting(f"not sent: {why} before its request left")
        write = LogWrite()
        for m in msgs:
            result, update = self.policy.failure(m, None, exc, Status.FAILED)
            result.error_code = update.raw_status = NOT_SENT
            write.updates.append(update)
            results[m.message_id] = result
        yield Log(write)
        return results



def send_many(feed: SendMany, concurrency: int, closed: Callable[[], Exception]) -> Plan[list[SendResult]]:
    """A whole ``send_many``: every batch of ``feed``, ``concurrency`` at a time (a sync driver
    sends one at a time in the calling thread); one result per recipient, in input order.

    Stopped half-way, it leaves nothing it logged ahead ``queued`` whose request never left
    (:meth:`SendMany.abandon`: ``failed``, raw status ``not_sent``); the requests in flight
    finish and their answers are logged first (the drivers' feed loops). Then it raises what
    stopped it: an error (a store error in one of its requests), the driver's
    :class:`~smsgate.core.steps.Interrupted` (cancelled, Ctrl-C: the driver raises the
    interruption itself), or ``closed()`` when the driver's stop was set without an error
    (the gateway closing under it).
    """
    try:
        results: dict[str, SendResult] = yield Dispatch(feed, concurrency, inline=True)
    except Exception as exc:
        why = f"send_many was {exc.how}" if isinstance(exc, Interrupted) else f"send_many stopped on {type(exc).__name__}"
        try:
            yield from feed.abandon(why)
        except Exception:
            log.warning("send_many stopped (%s); could not log its unsent messages as not sent", why, exc_info=True)
        raise
    if not feed.finished:  # the driver's stop was set: the gateway was closed under it
        yield from feed.abandon("the gateway was closed")
        yield Flush()
        raise closed()
    results.update(feed.early)
    return [results[k] for k in feed.keys]
