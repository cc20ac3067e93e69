"""The steps of a campaign run, as plans: claim, dispatch, recover, and the run itself.

A runner has an *owner* id and a lease in the store, renewed while it lives
(:class:`~smsgate.campaigns.handles` renews it beside the run). It claims
recipients (``pending -> sending``, owned by it, each given a message id) a
chunk at a time; each chunk is prepared and delivered by the very plans every
send uses (:mod:`smsgate.core.policy`, :mod:`smsgate.core.deliver`), so its
messages are logged just before their request leaves, and only while the claim
is still the runner's. The answers set each recipient's state in the same
transaction as its message's status.

Recovery touches only claims whose runner is gone (its lease ended, or it
stopped): a claimed recipient whose message was never logged never left, and
goes back to ``pending``; one whose message has an answer takes that answer
(a failure its runner held for a retry, see ``Claim.retry``: ``pending`` again);
one whose message is logged without an answer may have left: it is looked up by
client reference where the provider can, and otherwise marked ``unknown``,
never sent again blindly. So after a crash at any point, only messages whose
request may have left are ``unknown``, and none is sent twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from smsgate.core import received
from smsgate.core.deliver import RETRY, batches, can_fail_over, recipient_update
from smsgate.core.drive import Batch
from smsgate.core.policy import TenantPolicy, cost_currency
from smsgate.core.received import settle_seconds
from smsgate.core.steps import Call, Dispatch, Flush, Log, Plan, Query, Renew, Sleep
from smsgate.errors import (
    ConfigError,
    NotFound,
    ProviderError,
    SmsgateError,
    TooManySegments,
    UnknownOutcome,
    Unsupported,
    ValidationError,
)
from smsgate.ids import new_id
from smsgate.lifecycle import Status
from smsgate.models import (
    Campaign,
    CampaignStatus,
    Contact,
    DeliveryReport,
    MessageRecord,
    OutboundMessage,
    Template,
    utcnow,
)
from smsgate.provider import Operation
from smsgate.store.base import (
    CampaignRow,
    Claim,
    LogResult,
    LogWrite,
    MessageUpdate,
    RecipientRow,
    RecipientState,
    RecipientUpdate,
)

__all__ = ["OVERRIDABLE", "START_AT_SLACK", "STATUS_CHECK", "STOPS", "CampaignRun", "RunnerFence", "abandon", "check_every", "check_start_at",
           "claim_size", "complete", "leave", "recover_expired", "release", "renew", "reopen", "resumed_status", "run",
           "skip_pending"]

log = logging.getLogger("smsgate.campaigns")

#: Recipients read per page when recovering or handing a campaign to a provider.
PAGE = 5000
#: Longest single wait of a run (it re-reads the campaign's status after each).
MAX_SLEEP = 5.0
#: Longest time (seconds) between two reads of a campaign's status by the heartbeat of a runner
#: sending it (beside its lease renewals; one indexed read): a pause or cancel stops the runner's
#: sending within this (see :func:`check_every`).
STATUS_CHECK = 2.0
#: The statuses that stop a runner: it launches no more requests, lets those in flight finish,
#: and releases its unsent claims (:func:`release`).
STOPS = frozenset({CampaignStatus.PAUSED, CampaignStatus.CANCELLED})

#: The statuses a runner may set ``running`` (or ``scheduled``, ``interrupted``) over: any but a
#: stop (:data:`STOPS`) and ``preparing``. Every status a runner writes is checked and set at once
#: (``if_status``): a ``pause()`` or ``cancel()`` landing between the runner's read of the status
#: and its write (a run starting: its recovery and look-ups at the vendors take seconds) holds,
#: instead of being written over with ``running`` and the whole campaign sent.
OVERRIDABLE = frozenset(CampaignStatus) - STOPS - {CampaignStatus.PREPARING}


class RunnerFence(Protocol):
    """What a runner's requests pass before each try (see
    :class:`smsgate.campaigns.handles.RunnerBeat`): they leave only while the runner's claims
    are surely its own."""

    def fresh(self) -> bool:
        """Whether :meth:`fence` has nothing to do (a clock read)."""

    def fence(self) -> None:
        """Raise :class:`~smsgate.errors.LeaseLost` if the runner's claims may be another's (may do store I/O)."""


def check_every(lease_seconds: float) -> float:
    """Seconds between two status reads of a runner's heartbeat: :data:`STATUS_CHECK`, or a
    third of the lease when that is shorter (the lease is renewed at every third beat or so)."""
    return min(STATUS_CHECK, lease_seconds / 3)


@dataclass
class CampaignRun:
    """What the plans of one runner of one campaign share."""

    policy: TenantPolicy
    campaign_id: str
    owner: str
    #: the campaign's stored settings (``CampaignSettings``; typed where the handle reads it)
    settings: Any
    #: the earliest time the runner goes on waiting for another runner's claims
    quiet_end: datetime | None = None
    #: the feed found nothing more to claim (or the campaign was paused, cancelled or went quiet)
    drained: bool = False
    status: CampaignStatus | None = None
    #: called with the recipient counts and the campaign's status before each chunk after the first
    report: Callable[[dict[tuple[RecipientState, str | None], int], CampaignStatus], None] | None = None
    chunks: int = 0
    #: rounds of look-ups of unknown outcomes at the end of this run (at most :data:`END_LOOKUPS`)
    lookups: int = 0
    #: failures (error codes) after which a recipient stays claimed for a later retry (``Claim.retry``)
    retry: frozenset[str] = frozenset()
    #: the tenant's current policy (its driver's :class:`~smsgate.core.steps.Renew`), asked before
    #: each claim: a tenant of a tenant source whose credentials were rotated sends its next chunks
    #: with the new ones, and a removed one stops (:class:`~smsgate.errors.UnknownTenant`) before
    #: claiming more; ``None``: the policy the run was made with, throughout
    renew: Callable[[], TenantPolicy] | None = None

    @property
    def template(self) -> Template | None:
        template: Template | None = self.settings.template
        return template


def renew(run: CampaignRun) -> Plan[None]:
    """Take the tenant's current policy (see :attr:`CampaignRun.renew`); before each claim.

    A campaign sent through one provider (``provider=``) that the tenant no longer has (its
    configuration changed since the campaign was made) claims nothing more: a
    :class:`~smsgate.errors.ConfigError` naming it, rather than every recipient left
    skipped ``no_route`` and the campaign completed."""
    if run.renew is not None:
        run.policy = yield Renew(run.renew)
    pinned = run.settings.provider
    if pinned is not None and pinned not in run.policy.config.providers:
        raise ConfigError(
            f"campaign {run.campaign_id} of tenant {run.policy.name!r} is sent through provider {pinned!r}, "
            f"which the tenant no longer has (configured: {', '.join(run.policy.config.providers) or 'none'}); "
            f"nothing more is claimed: configure {pinned!r} again, then run the campaign again",
            field=f"tenants.{run.policy.name}.providers.{pinned}")


def _row(run: CampaignRun) -> Plan[CampaignRow]:
    try:
        row: CampaignRow = yield Query("get_campaign", run.policy.name, run.campaign_id)
    except NotFound:
        raise _deleted(run) from None
    return row


def _set(run: CampaignRun, **kw: Any) -> Plan[CampaignRow]:
    try:
        row: CampaignRow = yield Query("update_campaign", run.policy.name, run.campaign_id, **kw)
    except NotFound:
        raise _deleted(run) from None
    return row


def _deleted(run: CampaignRun) -> NotFound:
    """What a run raises when its campaign is gone from the store (``delete(force=True)``, its
    tenant erased) while it runs: it stops there (its claims went with the campaign)."""
    when = "while this run was sending it" if run.chunks else "as this run started"
    return NotFound(f"campaign {run.campaign_id!r} of tenant {run.policy.name!r} was deleted {when}: "
                    "the run stopped, nothing more is sent")


#: The statuses a runner goes on in: ``interrupted`` only says that the last runner to stop saw no
#: other one (a Celery chunk task still queued holds no lease); it is not a stop like a pause.
RUNNABLE = frozenset({CampaignStatus.RUNNING, CampaignStatus.INTERRUPTED})

#: The statuses a runner that did not choose the campaign's status (a queued Celery chunk task,
#: the finisher) goes on in: ``scheduled`` too. A direct run leaves a campaign ``scheduled`` for
#: quiet hours or a later start (``wait=False``, ``--no-wait``) meaning "send when the window
#: opens", not "stop": the runner waits for the window and :func:`resume` sets it running.
GOES_ON = RUNNABLE | {CampaignStatus.SCHEDULED}


#: The finished statuses a campaign leaves when recipients are ``pending`` in it again
#: (``retry_failed()``, ``retry_unknown()``): see :func:`reopen`. ``cancelled`` is not one of them.
REOPENS = frozenset({CampaignStatus.COMPLETED, CampaignStatus.FAILED})


def reopen(tenant: str, campaign_id: str) -> Plan[CampaignRow]:
    """The rule for a finished campaign (:data:`REOPENS`) with ``pending`` recipients: it is
    ``scheduled`` again, as a resumed one (:func:`resumed_status`), to be sent when run (a direct
    run, ``dispatch_campaign``); left ``completed`` it would say it is done, and runners that take
    ``completed`` for "nothing to do" would never send them. The status is checked and set at once
    (``if_status``): a campaign cancelled, paused or being run meanwhile keeps its status.

    Called after recipients are put back, and by :func:`complete` after it sets ``completed``: a
    put-back racing a runner's completion is seen by one of the two. Returns the row."""
    counts: dict[tuple[RecipientState, str | None], int] = yield Query("recipient_counts", tenant, campaign_id)
    if not any(n for (state, _), n in counts.items() if state is RecipientState.PENDING):
        row: CampaignRow = yield Query("get_campaign", tenant, campaign_id)
        return row
    row = yield Query("update_campaign", tenant, campaign_id, status=CampaignStatus.SCHEDULED, if_status=REOPENS)
    return row


def complete(tenant: str, campaign_id: str, statuses: frozenset[CampaignStatus]) -> Plan[CampaignRow]:
    """A runner found nothing left to send: the campaign is ``completed`` if its status is still
    one of ``statuses`` (checked and set at once), then :func:`reopen` applies: recipients put back
    meanwhile make it ``scheduled`` again. Returns the row."""
    row: CampaignRow = yield Query("update_campaign", tenant, campaign_id, status=CampaignStatus.COMPLETED,
                                   if_status=statuses)
    if row.status is CampaignStatus.COMPLETED:
        row = yield from reopen(tenant, campaign_id)
    return row


def due(row: CampaignRow, quiet_end: datetime | None, now: datetime) -> bool:
    """Whether a ``scheduled`` campaign's time has come: its start has passed (or it has none)
    and ``now`` is not in its quiet hours (``quiet_end``: their end, ``None`` outside)."""
    return quiet_end is None and (row.start_at is None or row.start_at <= now)


def resume(run: CampaignRun, row: CampaignRow, quiet_end: datetime | None) -> Plan[CampaignRow]:
    """Before a runner claims: an ``interrupted`` campaign is ``running`` again (the runner that
    stopped thought it was the last; this one is at work), and so is a ``scheduled`` one whose
    time has come (:func:`due`: a direct run left it for quiet hours that have ended, while
    Celery chunk tasks of the campaign were queued or another run waited). Every runner (direct
    or a Celery chunk task) claims through this rule, and claims only in a :data:`RUNNABLE`
    status. ``quiet_end``: the end of the quiet hours it is now in, ``None`` outside."""
    if row.status is CampaignStatus.INTERRUPTED or (
            row.status is CampaignStatus.SCHEDULED and due(row, quiet_end, utcnow())):
        row = yield from _set(run, status=CampaignStatus.RUNNING, if_status={row.status})
    return row


# ---------------------------------------------------------------------------- start and resume rules
#: How far in the past a new campaign's ``start_at`` may be: a time computed a moment before
#: (``datetime.now()``, "in 0 minutes") or a clock a little behind; the campaign then starts
#: when it is run, as one scheduled for now.
START_AT_SLACK = timedelta(minutes=5)


def check_start_at(start_at: datetime, now: datetime) -> None:
    """Refuse a new campaign's ``start_at`` more than :data:`START_AT_SLACK` before ``now``
    (:class:`ValidationError`, field ``start_at``): a time already past is a mistake (a wrong
    day, a local time read as UTC), and sending at once would surprise. Naive: UTC."""
    when = start_at if start_at.tzinfo is not None else start_at.replace(tzinfo=now.tzinfo)
    if when < now - START_AT_SLACK:
        ago = now - when
        hours, rest = divmod(int(ago.total_seconds()) // 60, 60)
        days, hours = divmod(hours, 24)
        said = " ".join(f"{n} {unit}{'s' if n > 1 else ''}" for n, unit in
                        ((days, "day"), (hours, "hour"), (rest, "minute")) if n) or "moments"
        raise ValidationError(f"{when.isoformat(timespec='minutes')} is {said} in the past: give a future time "
                              "(UTC when it has no time zone), or none to start the campaign when it is run",
                              field="start_at")


def resumed_status(start_at: datetime | None, started: bool) -> CampaignStatus:
    """The status a paused campaign returns to on ``resume()``: ``draft`` if it was never
    started (no recipient was sent, failed, unknown or in flight, nothing was handed to a
    provider) and has no start time, as it was created; else ``scheduled``, to run when
    run again (or at its ``start_at``). A draft is never sent by a worker that runs the
    ``scheduled`` campaigns that are due."""
    if start_at is None and not started:
        return CampaignStatus.DRAFT
    return CampaignStatus.SCHEDULED


#: Rounds of look-ups of unknown outcomes at the end of one run (each sends again the
#: recipients every provider says it never received).
END_LOOKUPS = 3


# ---------------------------------------------------------------------------- the run
def run(run: CampaignRun, wait: bool, in_quiet_hours: Any, mode: str) -> Plan[None]:
    """The whole run: scheduled start, recovery, claim-and-send until done, paused or quiet.

    ``in_quiet_hours(now)`` gives the end of the quiet hours ``now`` is in, or None.
    """
    row = yield from _row(run)
    if row.status is CampaignStatus.CANCELLED and mode != "native":
        # nothing more is sent, but what runners that died left is settled as in any run: claims
        # never sent are skipped (by the release at the run's end), the others looked up; left to
        # a purge, they stayed ``sending`` (and their messages unsettled) for good
        yield from recover(run)
        return
    if row.status in (CampaignStatus.CANCELLED, CampaignStatus.PAUSED, CampaignStatus.PREPARING):
        return
    if row.start_at is not None and row.start_at > utcnow():
        if (yield from _set(run, status=CampaignStatus.SCHEDULED, if_status=OVERRIDABLE)).status in STOPS:
            return
        if not wait:
            return
        if not (yield from _sleep_until(run, row.start_at)):
            return
    if mode == "native":
        if (yield from _set(run, status=CampaignStatus.RUNNING, if_status=OVERRIDABLE)).status in STOPS:
            return
        yield from native(run)
        yield from _finish(run)
        return
    yield from recover(run)
    yield from look_up_unknown(run)
    row = yield from _set(run, status=CampaignStatus.RUNNING, if_status=OVERRIDABLE)
    if row.status in STOPS:  # paused or cancelled while it recovered and looked up: it holds
        run.status = row.status
        return
    while True:
        run.drained, run.quiet_end = False, None
        # the outcomes are in the store (the run's Progress is read from it): none kept here
        yield Dispatch(lambda: _next_chunk(run, in_quiet_hours), run.settings.concurrency, keep=False)
        if run.status is None:  # the heartbeat may have stopped the sending: paused or cancelled meanwhile
            row = yield from _row(run)
            if row.status in STOPS:
                run.status = row.status
        if run.status in STOPS:
            return
        if run.quiet_end is not None:
            if not wait:
                yield from _set(run, status=CampaignStatus.SCHEDULED, if_status=OVERRIDABLE)
                return
            if not (yield from _sleep_until(run, run.quiet_end)):
                return
            continue
        # nothing left to claim: take over what dead runners left, wait for live ones
        if (yield from recover(run)):
            continue
        if not (yield from _others_hold_claims(run)):
            if run.lookups < END_LOOKUPS and (yield from _settle_unknown(run)):
                run.lookups += 1
                continue  # some were certainly never received: send them
            break
        yield Sleep(min(MAX_SLEEP, run.settings.lease_seconds / 3))
    yield from _finish(run)


def _settle_unknown(run: CampaignRun) -> Plan[bool]:
    """When the sending is done: ask the providers about recipients left ``unknown`` (an
    answer lost after the request left), once they had time to act on those requests
    (twice the longest timeout). True if some were certainly never received and are
    ``pending`` again, to be sent by this run."""
    policy = run.policy
    names = list(policy.config.providers)
    if not can_look_up(policy):
        return False
    counts: dict[tuple[RecipientState, str | None], int] = yield Query(
        "recipient_counts", policy.name, run.campaign_id)
    if not any(n for (state, _), n in counts.items() if state is RecipientState.UNKNOWN):
        return False
    yield Sleep(settle_seconds(policy, names))
    yield from look_up_unknown(run)
    counts = yield Query("recipient_counts", policy.name, run.campaign_id)
    return any(n for (state, _), n in counts.items() if state is RecipientState.PENDING)


def _others_hold_claims(run: CampaignRun) -> Plan[bool]:
    """Whether another live runner still holds claims (then this one waits for them)."""
    leases: dict[str, datetime] = yield Query("runner_leases", run.policy.name, run.campaign_id)
    now = utcnow()
    if not any(until > now for owner, until in leases.items() if owner != run.owner):
        return False
    counts: dict[tuple[RecipientState, str | None], int] = yield Query(
        "recipient_counts", run.policy.name, run.campaign_id)
    return any(n for (state, _), n in counts.items() if state is RecipientState.SENDING)


def _finish(run: CampaignRun) -> Plan[None]:
    counts: dict[tuple[RecipientState, str | None], int] = yield Query(
        "recipient_counts", run.policy.name, run.campaign_id)
    left = sum(n for (state, _), n in counts.items() if state in (RecipientState.PENDING, RecipientState.SENDING))
    if not left:
        try:
            yield from complete(run.policy.name, run.campaign_id, RUNNABLE)
        except NotFound:
            raise _deleted(run) from None


def _sleep_until(run: CampaignRun, when: datetime) -> Plan[bool]:
    """Sleep until ``when``; False if the campaign was paused or cancelled meanwhile."""
    while True:
        left = (when - utcnow()).total_seconds()
        if left <= 0:
            return True
        row = yield from _row(run)
        if row.status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
            return False
        yield Sleep(min(left, MAX_SLEEP))


# ------------------------------------------------------------------------- dispatching
def _next_chunk(run: CampaignRun, in_quiet_hours: Any) -> Plan[list[Batch]] | None:
    if run.drained:
        return None
    return _chunk(run, in_quiet_hours)


def _chunk(run: CampaignRun, in_quiet_hours: Any) -> Plan[list[Batch]]:
    """Claim and prepare the next chunk (empty, and the run ``drained``, when there is none)."""
    row = yield from _row(run)
    if run.report is not None and run.chunks:
        yield Flush()  # the answers held back so far count
        counts = yield Query("recipient_counts", run.policy.name, run.campaign_id)
        run.report(counts, row.status)
        row = yield from _row(run)  # the callback may have paused or cancelled it
    run.chunks += 1
    quiet_end = in_quiet_hours(utcnow())
    row = yield from resume(run, row, quiet_end)
    if row.status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
        run.status, run.drained = row.status, True
        return []
    if quiet_end is not None:
        run.quiet_end, run.drained = quiet_end, True
        return []
    yield from renew(run)  # rotated credentials from this chunk on; a removed tenant claims nothing
    rows: list[RecipientRow] = yield Query("claim_recipients", run.policy.name, run.campaign_id, claim_size(run),
                                           _message_id, owner=run.owner)
    if not rows:
        run.drained = True
        return []
    return (yield from dispatch(run, rows))


def claim_size(run: CampaignRun) -> int:
    """How many recipients the run's next claim takes (``run.chunks``: this claim's number, from 1).

    At most ``batch_size`` x ``max(1, concurrency / 4)``; the first claims of a run take less,
    doubling from ``max(batch_size, concurrency)``: the requests start as soon as a first
    chunk is prepared (a whole campaign claimed and prepared at once held every request back
    for as long: ~0.2 s for 8,000 recipients), and each next chunk, twice as large, is claimed
    and prepared while the second half of the one before is sent."""
    settings = run.settings
    most: int = settings.batch_size * max(1, settings.concurrency // 4)
    first: int = max(settings.batch_size, settings.concurrency)
    return min(most, first << min(max(run.chunks - 1, 0), 30))


def _message_id() -> str:
    return new_id("msg")


def _rendered(policy: TenantPolicy, text: str | None, template: Template | None,
              fields: Mapping[str, str]) -> str | ValidationError:
    """A recipient's text (:meth:`TenantPolicy.render`), or why it cannot be rendered."""
    try:
        return policy.render(text, template, fields)
    except ValidationError as exc:
        return exc


def _text_refusal(exc: ValidationError) -> str:
    """The reason a recipient whose text cannot be rendered (``exc``) fails with."""
    return ("too_long" if isinstance(exc, TooManySegments)
            else "missing_variable" if "variable" in exc.reason else "invalid_text")


def dispatch(run: CampaignRun, rows: list[RecipientRow]) -> Plan[list[Batch]]:
    """The batches delivering claimed ``rows`` (a message that cannot be rendered is rejected alone)."""
    policy, cid, settings = run.policy, run.campaign_id, run.settings
    template = run.template
    now = utcnow()
    msgs: list[OutboundMessage] = []
    claims: dict[str, Claim] = {}
    refused = LogWrite()
    sender = policy.build_sender(settings.sender)
    # the text of a recipient without fields is the same for each: rendered (and checked) once
    plain: str | ValidationError | None = None
    checked = time.monotonic()  # (before the opt-out read of prepare() below: on the safe side)
    for r in rows:
        assert r.message_id is not None and r.id is not None
        claim = Claim(cid, r.id, run.owner, run.retry, checked)
        if r.fields:
            text = _rendered(policy, settings.text, template, r.fields)
        else:
            if plain is None:
                plain = _rendered(policy, settings.text, template, r.fields)
            text = plain
        if not isinstance(text, str):
            exc = text
            msg = OutboundMessage(to=r.phone, message_id=r.message_id, campaign_id=cid, reference=cid)
            code = _text_refusal(exc)
            refused.inserts.append(policy.record(msg, Status.REJECTED, now, error=str(exc), raw=code))
            refused.claims[msg.message_id] = claim
            refused.recipients.append((cid, RecipientUpdate(r.id, RecipientState.FAILED, reason=code,
                                                            detail=str(exc))))
            continue
        msg = OutboundMessage(
            to=r.phone, text=text, sender=sender, message_id=r.message_id, reference=cid,
            variables=r.fields, campaign_id=cid, provider_options=dict(settings.provider_options),
            kind=settings.kind,
        )
        msgs.append(msg)
        claims[msg.message_id] = claim
    if refused:
        recipients, refused.recipients = refused.recipients, []
        answer = yield Log(refused)
        lost = {refused.claims[m].recipient_id for m in answer.lost}
        yield Log(LogWrite(recipients=[(c, u) for c, u in recipients if u.id not in lost]), wait=False)
    prepared = yield from policy.prepare(msgs, settings.provider, claims)
    done, out = batches(policy, prepared, template, claims=claims)
    # refused before sending (opted out since preparation, no route): the recipient says why
    updates = [(cid, recipient_update(claims[mid], result)) for mid, result in done.items()
               if mid in claims and result.error_code != "claim_lost"]
    if updates:
        yield Log(LogWrite(recipients=updates), wait=False)
    return out


# ---------------------------------------------------------------------------- recovery
def recover(run: CampaignRun) -> Plan[int]:
    """Take over and resolve the claims of runners that are gone; returns how many."""
    total = 0
    while True:
        rows: list[RecipientRow] = yield Query("recover_claims", run.policy.name, run.campaign_id, run.owner,
                                               utcnow(), PAGE)
        if not rows:
            return total
        total += len(rows)
        yield from resolve(run, rows, lookup=True)


def can_look_up(policy: TenantPolicy) -> bool:
    """Whether any of the tenant's providers can say if it received a message."""
    return any(policy.provider(n).capabilities.client_reference or policy.provider(n).capabilities.sent_lookup
               for n in policy.config.providers)


def look_up_unknown(run: CampaignRun) -> Plan[None]:
    """Ask the providers again about recipients left ``unknown``, where one can look up by reference.

    Found: ``sent``. Certainly never received: ``pending`` again (sent by this run).
    Otherwise they stay ``unknown`` (:meth:`~smsgate.campaigns.CampaignHandle.retry_unknown`
    sends them again on purpose).
    """
    policy = run.policy
    if not can_look_up(policy):
        return
    after = 0
    while True:
        rows: list[RecipientRow] = yield Query("recipients", policy.name, run.campaign_id,
                                               states=[RecipientState.UNKNOWN], after_id=after, limit=PAGE)
        if not rows:
            return
        after = rows[-1].id or 0
        yield from resolve(run, rows, lookup=True)


def release(run: CampaignRun) -> Plan[int]:
    """At the end of a run (also after Ctrl-C or an error): resolve this runner's own claims.

    Those never sent go back to ``pending`` at once, so a re-run need not wait for
    the lease to end; in a campaign cancelled meanwhile they (and those whose request
    stopped waiting for its rate limit) are ``skipped`` instead (:func:`_skip_if_cancelled`),
    in a paused one they stay ``pending`` for the resume. A claim whose request may have
    left is never put back nor skipped (:func:`resolve`). Returns how many claims there were.
    """
    total, after = 0, 0
    while True:
        rows: list[RecipientRow] = yield Query("recipients", run.policy.name, run.campaign_id,
                                               states=[RecipientState.SENDING], after_id=after, limit=PAGE)
        if not rows:
            break
        after = rows[-1].id or 0
        mine = [r for r in rows if r.owner == run.owner]
        total += len(mine)
        if mine:
            yield from resolve(run, mine, lookup=False)
    yield from _skip_if_cancelled(run.policy.name, run.campaign_id)
    return total


def leave(run: CampaignRun) -> Plan[CampaignStatus | None]:
    """At the end of a run, after :func:`release` and before its lease goes: a campaign still
    ``running`` that no other runner holds (a live lease) becomes ``interrupted``.

    So ``running`` means a runner is at work: after Ctrl-C or an error the campaign says it
    stopped before it was done (running it again resumes), and it can be deleted. A runner
    that starts meanwhile sets ``running`` again at its next chunk. Returns the status the
    campaign is left in (``None`` if it was deleted meanwhile).
    """
    try:
        row = yield from _row(run)
    except NotFound:  # deleted under the run (``delete(force=True)``)
        return None
    if row.status is not CampaignStatus.RUNNING:
        return row.status
    leases: dict[str, datetime] = yield Query("runner_leases", run.policy.name, run.campaign_id)
    now = utcnow()
    if any(until > now for owner, until in leases.items() if owner != run.owner):
        return row.status
    try:
        row = yield from _set(run, status=CampaignStatus.INTERRUPTED, if_status={CampaignStatus.RUNNING})
    except NotFound:
        return None
    return row.status


def resolve(run: CampaignRun, rows: list[RecipientRow], lookup: bool) -> Plan[None]:
    """Settle claimed recipients whose runner is gone, or ``unknown`` ones (see the module docstring).

    Each verdict is about the message a row held when read: its update applies only while
    the recipient still holds that message (``if_message``), so a verdict reached by slow
    look-ups never undoes what another runner did meanwhile (put it back and sent it again).
    A provider whose circuit breaker is open is still asked once in the pass (the breaker's
    probe, :func:`smsgate.core.received.ask`'s ``probe``): answered, the others are asked too.
    """
    # each provider asked once per pass even while its circuit breaker is open: skipped, a
    # recipient the vendor can answer for stays ``unknown``, and ``retry_unknown()`` then sends
    # it again (the vendor had it: tests/test_verify9.py)
    probe = set(run.policy.config.providers)
    look = (lambda rec, r: _look_up(run, rec, r, probe)) if lookup else None
    yield from _resolve_rows(run.policy.name, run.campaign_id, run.owner, rows, look, run.policy.hook)


def recover_expired(tenant: str, campaign_id: str, owner: str, hook: Any = None) -> Plan[int]:
    """Take over and resolve the claims of runners that are gone (their lease ended), as a run's
    :func:`recover` does but without a run, a policy or look-ups: for a campaign no run may
    ever recover again (its tenant was removed, or it was cancelled while a runner died).
    Never logged: ``pending``; answered: by its answer; its request may have left: the message
    ``unknown`` and the recipient ``unknown`` (a later run of the campaign looks it up).
    In a ``cancelled`` campaign those put back to ``pending`` (here, or by a live runner that
    released its claims after the cancellation) are ``skipped`` (``cancelled``), as its
    cancellation did to the others. ``hook``: the plugin manager's relay, told of the messages
    it marks ``unknown`` (``smsgate_on_status``). Returns how many claims were resolved."""
    total = 0
    while True:
        rows: list[RecipientRow] = yield Query("recover_claims", tenant, campaign_id, owner, utcnow(), PAGE)
        if not rows:
            break
        total += len(rows)
        yield from _resolve_rows(tenant, campaign_id, owner, rows, None, hook)
    yield from _skip_if_cancelled(tenant, campaign_id)  # (a live runner may have released some since)
    return total


def _skip_if_cancelled(tenant: str, campaign_id: str) -> Plan[int]:
    """The rule for claims released in a ``cancelled`` campaign (by :func:`release` at a runner's
    stop, or by :func:`recover_expired`): those put back to ``pending`` are ``skipped`` as the
    cancellation did to the others (reason ``tenant_removed`` where the tenant's removal cancelled
    it, else ``cancelled``); in a paused one they stay ``pending``, for a resume to send once."""
    try:
        row: CampaignRow = yield Query("get_campaign", tenant, campaign_id)
    except NotFound:  # deleted meanwhile: its recipients went with it
        return 0
    if row.status is not CampaignStatus.CANCELLED:
        return 0
    counts: dict[tuple[RecipientState, str | None], int] = yield Query("recipient_counts", tenant, campaign_id)
    reason = "tenant_removed" if counts.get((RecipientState.SKIPPED, "tenant_removed")) else "cancelled"
    n: int = yield from skip_pending(tenant, campaign_id, reason)
    return n


def abandon(tenant: str, campaign_id: str) -> Plan[bool]:
    """The campaign's tenant was removed: nothing can run it again. A campaign not finished
    is ``cancelled``, its ``pending`` recipients ``skipped`` (reason ``tenant_removed``);
    claims of live runners are left to them (they stop at their next chunk and release
    them), those of gone runners to :func:`recover_expired` (a purge). True if cancelled."""
    row: CampaignRow = yield Query("get_campaign", tenant, campaign_id)
    if row.status.is_finished:
        return False
    yield Query("update_campaign", tenant, campaign_id, status=CampaignStatus.CANCELLED)
    yield from skip_pending(tenant, campaign_id, "tenant_removed")
    return True


def skip_pending(tenant: str, campaign_id: str, reason: str) -> Plan[int]:
    """The ``pending`` recipients of a cancelled campaign become ``skipped`` (``reason``); how many."""
    n = 0
    while True:
        back: list[RecipientRow] = yield Query("recipients", tenant, campaign_id, states=[RecipientState.PENDING],
                                               limit=PAGE)
        if not back:
            return n
        yield Query("update_recipients", tenant, campaign_id, [
            RecipientUpdate(r.id or 0, RecipientState.SKIPPED, reason=reason) for r in back])
        n += len(back)


@dataclass(frozen=True)
class _Found:
    """A look-up's verdict that a provider has the message: its update, and what the status hook is told."""

    update: MessageUpdate
    report: DeliveryReport


def _resolve_rows(tenant: str, cid: str, owner: str, rows: list[RecipientRow],
                  look: Callable[[MessageRecord, RecipientRow], Plan[_Found | bool | None]] | None,
                  hook: Any = None) -> Plan[None]:
    """:func:`resolve`'s rule for ``rows`` of campaign ``cid``; ``look`` asks the providers
    about a message whose request may have left (``None``: nobody to ask). ``hook``: the
    plugin manager's relay, whose ``smsgate_on_status`` is told of the messages it settled
    (found, never received, or ``unknown``: :func:`smsgate.core.received.tell`).

    A message found at a provider takes the provider's status in the same write as its
    recipient becomes ``sent``: written apart, a runner killed between the two left the
    recipient ``unknown`` beside a message that had its vendor's final status (``undelivered``,
    ``failed``...), and the next run read that status as the send's answer and made the
    recipient ``failed``, though the vendor had it (``tests/test_verify6.py``)."""
    ids = [r.message_id for r in rows if r.message_id]
    records: dict[str, MessageRecord] = (yield Query("messages_by_id", tenant, ids)) if ids else {}
    write = LogWrite()
    settled: list[tuple[str, DeliveryReport]] = []

    def recipient(r: RecipientRow, update: RecipientUpdate) -> None:
        update.if_message = r.message_id
        write.recipients.append((cid, update))

    for r in rows:
        rid = r.id or 0
        rec = records.get(r.message_id or "")
        if rec is None:  # never logged: its request never left
            recipient(r, RecipientUpdate(rid, RecipientState.PENDING))
            continue
        claim = Claim(cid, rid, owner)
        if rec.status is Status.FAILED and r.reason == RETRY:  # held for a retry: it never reached the vendor
            recipient(r, RecipientUpdate(rid, RecipientState.PENDING, reason=RETRY))
            continue
        if rec.status not in (Status.QUEUED, Status.UNKNOWN):
            recipient(r, recipient_update(claim, TenantPolicy.result_of(rec)))
            continue
        found = yield from look(rec, r) if look is not None else _nothing()
        if isinstance(found, _Found):
            write.updates.append(found.update)
            settled.append((rec.message_id, found.report))
            recipient(r, RecipientUpdate(rid, RecipientState.SENT))
        elif found is False:  # every provider that could have it says it never arrived
            write.updates.append(received.not_received_update(rec, utcnow(), "campaign:resolve"))
            settled.append((rec.message_id, received.not_received_report(rec)))
            recipient(r, RecipientUpdate(rid, RecipientState.PENDING))
        else:
            if rec.status is not Status.UNKNOWN:
                write.updates.append(MessageUpdate(
                    message_id=rec.message_id, status=Status.UNKNOWN, at=utcnow(), raw_status="interrupted",
                    source="campaign:resolve", error="the run stopped after the request may have left"))
                settled.append((rec.message_id, received.unknown_report(rec, "interrupted")))
            # only while still unsettled (``if_sending``): a runner stopped while it asked, that
            # continues after another runner found the message (``sent``), never undoes that
            recipient(r, RecipientUpdate(rid, RecipientState.UNKNOWN, reason="unresolved", if_sending=True))
    result: LogResult = yield Log(write)
    if settled:
        received.tell(hook, tenant, result.changed, settled)


def _nothing() -> Plan[_Found | bool | None]:
    return None
    yield  # pragma: no cover


def _look_up(run: CampaignRun, rec: MessageRecord, row: RecipientRow,
             probe: set[str] | None = None) -> Plan[_Found | bool | None]:
    """Ask the providers that could have ``rec`` whether they received it: found (the update
    to log with the recipient's state), False certainly never received, None cannot tell.
    ``probe``: the instances still to be asked through an open circuit breaker in this pass."""
    policy, settings = run.policy, run.settings
    try:
        text = policy.render(settings.text, run.template, row.fields)
    except ValidationError:
        return None
    sent = OutboundMessage(to=rec.to, text=text, message_id=rec.message_id, sender=policy.build_sender(settings.sender),
                           campaign_id=run.campaign_id, reference=run.campaign_id, kind=settings.kind)
    try:  # the providers dispatch could have used: the campaign's own provider, else its route
        names = [rec.provider] if rec.provider else policy.candidates(sent, settings.provider)
    except SmsgateError:  # no route any more (configuration changed): nobody to ask
        return None

    def question(name: str) -> Operation[DeliveryReport | None] | None:
        prov = policy.provider(name)
        if not (prov.capabilities.client_reference or prov.capabilities.sent_lookup):
            return None
        return received.checked(prov.find_sent(policy.for_provider(sent, name, run.template), rec.created_at),
                                name, "find_sent()", optional=True)

    now = utcnow()
    verdict = yield from received.ask(policy, rec, names, question, now=now, since=last_try(rec, now), probe=probe)
    if verdict.report is not None and verdict.instance is not None:
        return _Found(received.found_update(rec, verdict.instance, verdict.report), verdict.report)
    return False if verdict.never_received else None


def last_try(rec: MessageRecord, now: datetime) -> datetime:
    """The latest time a try of campaign message ``rec``'s request may have left, for a look-up
    at ``now`` (:func:`smsgate.core.received.ask`'s ``since``). Not its write-ahead: a request
    may leave long after it (a retry after a 429's ``Retry-After``, a failover waiting for the
    next provider's rate limit), and a runner's claims may lapse seconds after it died. Still
    ``queued``: its runner is gone just now (this takeover comes after its lease ended), so up
    to now; ``unknown``: when it was marked so (by such a takeover, or by its run stopping
    once its requests in flight ended); otherwise when it was logged."""
    if rec.status is Status.QUEUED:
        return now
    if rec.status is Status.UNKNOWN:
        return max(rec.created_at, rec.updated_at)
    return rec.created_at


# ------------------------------------------------------------------------------ native
#: ``provider_campaign_id`` while the campaign is being handed to the provider (the request is out)
HANDING_OVER = "(handing over)"
#: ``provider_campaign_id`` of a campaign the provider took without saying its id
NO_ID = "(id unknown)"


def native(run: CampaignRun) -> Plan[None]:
    """Hand the whole audience to the provider's campaign API in one campaign."""
    policy, cid, settings = run.policy, run.campaign_id, run.settings
    instance = settings.provider
    if not instance:
        raise ConfigError("native mode needs a provider (create(..., provider='name'))")
    prov = policy.provider(instance)
    if not prov.capabilities.native_campaigns:
        raise Unsupported(instance, "native campaigns", "use mode='fanout'")
    row = yield from _row(run)
    if row.provider_campaign_id == HANDING_OVER:
        raise UnknownOutcome(
            f"campaign {cid!r} was handed to the provider by an earlier run that got no answer (it crashed, "
            "or the request timed out): the campaign may exist there. Check the provider before doing "
            "anything; it is not created a second time", provider=instance)
    if row.provider_campaign_id:
        return  # already handed over by an earlier run
    sender = policy.sender_of(settings.sender, instance)
    scope = policy.sender_scope(sender)  # as its opt-outs are keyed (a number in any form is that number)
    template = run.template
    contacts: list[Contact] = []
    ids: list[int] = []
    after = 0
    list_id = settings.provider_list_id
    while list_id is None:
        rows: list[RecipientRow] = yield Query("recipients", policy.name, cid,
                                               states=[RecipientState.PENDING, RecipientState.SENDING],
                                               after_id=after, limit=PAGE)
        if not rows:
            break
        after = rows[-1].id or 0
        found: dict[str, set[str]] = yield Query("optout_scopes", policy.name, {r.phone for r in rows})
        opted = {phone for phone, scopes in found.items() if policy.optout_holds(scopes, scope)}
        skipped = [RecipientUpdate(r.id or 0, RecipientState.SKIPPED, reason="opted_out") for r in rows
                   if r.phone in opted]
        for r in rows:
            if r.phone in opted:
                continue
            try:  # the text the provider will render for it, under the tenant's rules now (max_segments)
                policy.render(settings.text, template, r.fields)
            except ValidationError as exc:
                skipped.append(RecipientUpdate(r.id or 0, RecipientState.FAILED, reason=_text_refusal(exc),
                                               detail=str(exc)))
                continue
            fields = dict(r.fields)
            name = fields.pop("name", None)
            contacts.append(Contact(phone=r.phone, name=name, fields=fields))
            ids.append(r.id or 0)
        if skipped:
            yield Query("update_recipients", policy.name, cid, skipped)
    campaign = Campaign(
        id=cid, name=row.name, text=settings.text or (template.body if template else None),
        template_id=(template.provider_ids.get(instance) or template.provider_ids.get(prov.name)) if template else None,
        sender=sender,
        contacts=contacts, contact_list_id=list_id, start_at=row.start_at, provider=instance,
        provider_options=dict(settings.provider_options),
    )
    # write-ahead: a run that dies with the request out must not hand the campaign over twice
    yield from _set(run, provider=instance, provider_campaign_id=HANDING_OVER)
    try:
        created: Campaign = yield Call(instance, prov.create_campaign(campaign))
    except ProviderError as exc:
        if not can_fail_over(exc):  # it may have been created: keep the mark
            raise
        yield from _set(run, provider_campaign_id="")  # certainly not created: a later run may try again
        raise
    except SmsgateError:
        yield from _set(run, provider_campaign_id="")
        raise
    yield from _set(run, provider_campaign_id=created.id or NO_ID)
    for i in range(0, len(ids), PAGE):
        yield Query("update_recipients", policy.name, cid,
                    [RecipientUpdate(rid, RecipientState.SENT, reason="native") for rid in ids[i : i + PAGE]])


def provider_stats(policy: TenantPolicy, row: CampaignRow) -> Plan[dict[str, Any] | None]:
    """The provider's own statistics of a campaign handed to it (None when it has none)."""
    if (not (row.provider and row.provider_campaign_id and row.provider in policy.config.providers)
            or row.provider_campaign_id in (HANDING_OVER, NO_ID)):
        return None
    prov = policy.provider(row.provider)
    if not prov.capabilities.statistics:
        return None
    theirs = yield Call(row.provider, prov.statistics(campaign_id=row.provider_campaign_id))
    if theirs.cost is not None:  # a total given without a currency is in the account's (configured) one
        theirs.currency = cost_currency(theirs.currency, policy.config.providers[row.provider].currency)
        if not theirs.costs:
            theirs.costs = {theirs.currency or "": theirs.cost}
    dumped: dict[str, Any] = theirs.model_dump(mode="json")
    return dumped


def lease_end(seconds: float) -> datetime:
    """When a lease taken now for ``seconds`` ends."""
    return utcnow() + timedelta(seconds=seconds)


def by_message(rows: list[RecipientRow]) -> Mapping[str, RecipientRow]:
    """Claimed rows by their message id."""
    return {r.message_id: r for r in rows if r.message_id}
