"""``tenant.campaigns`` and one campaign's handle, for the sync and the async gateway.

:class:`CampaignManager` and :class:`CampaignHandle` belong to a
:class:`~smsgate.Tenant`; :class:`AsyncCampaignManager` and
:class:`AsyncCampaignHandle` to an :class:`~smsgate.AsyncTenant`, with the same
methods as coroutines (their store work runs in the gateway's worker threads,
their sends on the event loop). A run drives the kernel's campaign plan
(:mod:`smsgate.core.campaign`) with the gateway's own HTTP client and driver.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import ValidationError as PydanticValidationError

from smsgate._shield import shielded
from smsgate._stop import Event, check, run_stoppable, stoppable
from smsgate.campaigns.audiences import (
    Audience,
    ContactsAudience,
    CsvAudience,
    ProviderListAudience,
    check_contacts,
    shown_names,
)
from smsgate.campaigns.model import (
    CampaignPreview,
    CampaignSettings,
    Mode,
    Progress,
    RowError,
    Summary,
    quiet_end,
)
from smsgate.campaigns.preparation import Preparation
from smsgate.core import campaign as plans
from smsgate.core.campaign import check_start_at, resumed_status
from smsgate.core.drive import store_driver
from smsgate.core.policy import MAX_NAME, TenantPolicy, check_id, check_label, check_stored_text, wrong_type
from smsgate.errors import (
    ConfigError,
    LeaseLost,
    NotFound,
    TemplateError,
    Unsupported,
    ValidationError,
    check_bool,
)
from smsgate.filters import check_count
from smsgate.ids import new_id
from smsgate.lifecycle import Status
from smsgate.models import CampaignStatus, Contact, Stats, Template, utcnow
from smsgate.store.base import CampaignRow, RecipientState, RecipientUpdate, Store
from smsgate.zones import campaign_quiet_hours

if TYPE_CHECKING:
    from smsgate.gateway import AsyncTenant, Tenant

__all__ = ["AsyncCampaignHandle", "AsyncCampaignManager", "CampaignHandle", "CampaignManager", "RunnerBeat"]

log = logging.getLogger("smsgate.campaigns")

#: Recipients per store call when cancelling or retrying.
PAGE = 5000

AudienceLike = Audience | Iterable[Contact | str | Mapping[str, Any]]
#: A campaign's ``quiet_hours``: a pair of ``HH:MM`` times, ``None`` (the tenant's) or ``False`` (none).
QuietHours = Sequence[str] | Literal[False] | None


# ------------------------------------------------------------------ shared (store-bound) work
#: The longest ``campaign_id`` ``campaigns.create()`` takes (1-64 printable characters, as a
#: contact list's id; its own ids are ``cmp_`` and 26 characters).
MAX_CAMPAIGN_ID = 64

#: What a blank ``campaign_id`` is told to give instead (its ValidationError, not NotFound).
CAMPAIGN_ID = "the campaign's id (cmp_..., as campaigns.create() returned it)"


def _create(store: Store, policy: TenantPolicy, name: str, audience: AudienceLike, *, text: str | None,
            template: Template | None, sender: str | None, provider: str | None, mode: Mode,
            start_at: datetime | None, quiet_hours: QuietHours, batch_size: int, concurrency: int,
            provider_options: Mapping[str, Any] | None, campaign_id: str | None, lease_seconds: float,
            kind: str | None = None, progress: Callable[[int], None] | None = None) -> str:
    """Validate, store and prepare a campaign; returns its id. Nothing stays behind if it fails."""
    check_stored_text("name", name)  # a NUL, a lone surrogate: named as what no store keeps
    check_label("name", name, MAX_NAME, "a campaign needs a name (shown by 'smsgate campaign list')")
    if campaign_id is not None:
        check_id("campaign_id", campaign_id, blank="an id for the new campaign, or none (a new cmp_... id)")
        # typed again and shown in listings, as a contact list's id: no line break, not 10,000 characters
        check_label("campaign_id", campaign_id, MAX_CAMPAIGN_ID, "an id for the new campaign, or none")
    check_progress(progress)
    if provider_options is not None and not isinstance(provider_options, Mapping):  # 5 was a TypeError
        raise wrong_type("provider_options", provider_options, "a mapping")
    for field, number in (("batch_size", batch_size), ("concurrency", concurrency), ("lease_seconds", lease_seconds)):
        if isinstance(number, bool):  # the settings' model read True as 1
            raise wrong_type(field, number, "a number")
    if (text is None) == (template is None):
        raise ValidationError("give exactly one of text or template", field="text")
    if text is not None and not isinstance(text, str):
        raise wrong_type("text", text, "a string")
    if text is not None and not text.strip():
        raise ValidationError("is empty: a campaign needs a message text", field="text")
    if mode not in ("auto", "fanout", "native"):
        raise ValidationError(f"unknown mode {mode!r}: one of auto, fanout, native", field="mode")
    if start_at is not None and not isinstance(start_at, datetime):
        raise ValidationError(f"expected a datetime (UTC when it has no time zone), not {type(start_at).__name__} "
                              f"{start_at!r}" + (f": datetime.fromisoformat({start_at!r})"
                                                 if isinstance(start_at, str) else ""), field="start_at")
    if start_at is not None:
        check_start_at(start_at, utcnow())
    window = _quiet_hours(quiet_hours, policy)
    policy.check_sender(sender)
    if provider is not None:
        policy.check_provider(provider)
    if not isinstance(audience, Audience):
        check_contacts(audience, "audience")
        audience = ContactsAudience(audience)
    if audience.tenant not in (None, policy.name):  # tenants never see each other's data
        raise ValidationError(f"the audience ({audience.description}) belongs to tenant {audience.tenant!r}, not to "
                              f"{policy.name!r}: take it from this tenant's own contact_lists", field="audience")
    if isinstance(audience, ProviderListAudience):
        if provider not in (None, audience.provider) or mode == "fanout":
            raise ValidationError("a provider-side list can only be sent natively by its own provider",
                                  field="audience")
        if audience.provider not in policy.config.providers:
            raise ConfigError(f"tenant {policy.name!r} has no provider {audience.provider!r}")
        caps = policy.provider(audience.provider).capabilities
        if not (caps.contact_lists and caps.native_campaigns):
            raise Unsupported(audience.provider, "campaigns to provider-side lists")
        provider, mode = audience.provider, "native"
    try:
        settings = CampaignSettings(
            text=text, template=template, sender=sender, provider=provider, mode=mode,
            quiet_hours=window,
            batch_size=batch_size, concurrency=concurrency, lease_seconds=lease_seconds,
            provider_options=dict(provider_options or {}), audience=audience.description,
            provider_list_id=audience.list_id if isinstance(audience, ProviderListAudience) else None,
            kind=kind,
        )
        if settings.quiet_hours:
            policy.config.quiet_hours_zone()  # a ConfigError: quiet hours without a time zone
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        raise ValidationError(str(err["msg"]).removeprefix("Value error, "),
                              field=".".join(str(p) for p in err["loc"])) from None
    from smsgate import text as textlib

    # a malformed template, or a placeholder no row can fill, fails here, before anything is stored
    names = textlib.template_variables(settings.body)
    known = audience.variables_for(names) if names else None
    if known is not None:
        _check_placeholders(names, known, audience, "text" if text is not None else "template")
    now = utcnow()
    row = CampaignRow(tenant=policy.name, campaign_id=campaign_id or new_id("cmp"), name=name,
                      status=CampaignStatus.PREPARING, created_at=now, updated_at=now,
                      spec=settings.model_dump(mode="json"), start_at=start_at)
    store.create_campaign(row)
    try:
        prep = Preparation(store, policy, row.campaign_id, audience, settings.body, settings.provider,
                           settings.kind, settings.sender)
        records = audience.records()
        if isinstance(audience, CsvAudience) and type(audience).rows is not CsvAudience.rows:
            records = Audience.records(audience)  # a subclass with rows of its own
        prep.run(records, progress)
        settings.summary = Summary.model_validate(prep.summary())
        status = CampaignStatus.SCHEDULED if start_at else CampaignStatus.DRAFT
        store.update_campaign(policy.name, row.campaign_id, spec=settings.model_dump(mode="json"), status=status)
    except BaseException:
        store.delete_campaign(policy.name, row.campaign_id)  # a failed create() leaves nothing behind
        raise
    return row.campaign_id


def _quiet_hours(quiet_hours: object, policy: TenantPolicy) -> tuple[str, str] | None:
    """The campaign's quiet hours by :func:`smsgate.zones.campaign_quiet_hours` (``None``: the
    tenant's; ``False``: none), its error a :class:`ValidationError` naming ``quiet_hours``."""
    try:
        return campaign_quiet_hours(quiet_hours, policy.config.quiet_hours)
    except ValueError as exc:
        raise ValidationError(str(exc), field="quiet_hours") from None


def _check_placeholders(names: Iterable[str], known: set[str], audience: Audience, field: str) -> None:
    """A :class:`~smsgate.errors.TemplateError` for each ``{placeholder}`` that is not one of
    ``known`` (the audience's columns, or a stored list's fields), with the closest as a suggestion."""
    import difflib

    unknown = [n for n in names if n not in known]
    if not unknown:
        return
    shown, more = shown_names(sorted(known))  # a data file of 20,000 columns: not all of them
    columns = (", ".join(shown) or "none") + more
    noun = audience.variables_are
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        parts.append(f"{{{name}}}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    what = "placeholder" if len(unknown) == 1 else "placeholders"
    raise TemplateError(f"{what} {', '.join(parts)} not in the {noun} of {audience.description} "
                        f"({noun}: {columns}); nothing was created", field=field)


def _settings(row: CampaignRow) -> CampaignSettings:
    return CampaignSettings.model_validate(row.spec)


def _mode(policy: TenantPolicy, settings: CampaignSettings) -> str:
    if settings.mode != "auto":
        return settings.mode
    prov = settings.provider
    if prov and prov in policy.config.providers and policy.provider(prov).capabilities.native_campaigns:
        return "native"
    return "fanout"


def _progress(store: Store, policy: TenantPolicy, cid: str) -> Progress:
    return _counted(cid, store.recipient_counts(policy.name, cid), store.get_campaign(policy.name, cid).status)


def _counted(cid: str, counts: Mapping[tuple[RecipientState, str | None], int], status: CampaignStatus) -> Progress:
    p = Progress(cid, status)
    for (state, reason), n in counts.items():
        p.total += n
        setattr(p, state.value, getattr(p, state.value) + n)
        by_reason = {RecipientState.SKIPPED: p.skipped_by_reason, RecipientState.FAILED: p.failed_by_reason}.get(state)
        if by_reason is not None:
            key = reason or "other"
            by_reason[key] = by_reason.get(key, 0) + n
    return p


def _preview(store: Store, policy: TenantPolicy, cid: str) -> CampaignPreview:
    row = store.get_campaign(policy.name, cid)
    settings = _settings(row)
    summary = settings.summary
    cost: dict[str, Decimal] = {}
    currency: dict[str, str | None] = {}
    for prov, segs in summary.segments_by_provider.items():
        ps = policy.config.providers.get(prov)
        if ps is not None and ps.price_per_segment is not None:
            cost[prov] = Decimal(str(ps.price_per_segment)) * segs
            currency[prov] = ps.currency
    return CampaignPreview(
        campaign_id=row.campaign_id, name=row.name, status=row.status, mode=_mode(policy, settings),
        total_rows=summary.rows, recipients=summary.recipients, skipped=summary.skipped,
        segments=summary.segments, encoding=summary.encoding, cost=cost, currency=currency,
        by_provider=summary.by_provider, samples=summary.samples,
        errors=[RowError(**e) for e in summary.errors], start_at=row.start_at, quiet_hours=settings.quiet_hours,
        quiet_zone=policy.config.quiet_hours_zone() if settings.quiet_hours else None, kind=settings.kind,
    )


#: The statuses a campaign can be paused from.
_PAUSABLE = frozenset(CampaignStatus) - {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.PREPARING}


def _pause(store: Store, policy: TenantPolicy, cid: str) -> None:
    # checked and set at once: a runner completing the campaign meanwhile is not undone
    status = store.update_campaign(policy.name, cid, status=CampaignStatus.PAUSED, if_status=_PAUSABLE).status
    if status is not CampaignStatus.PAUSED:
        raise ValidationError(f"campaign is {status.value}; it cannot be paused", field="status")


def how_to_run(tenant: str, cid: str) -> str:
    """How to run campaign ``cid`` again (resume it), for a message: from the command line or
    on Celery workers, whichever the application dispatches with (docs/scaling.md)."""
    return f"'smsgate campaign run {cid}', or dispatch_campaign.delay({tenant!r}, {cid!r}) where Celery workers run it"


def _resume(store: Store, policy: TenantPolicy, cid: str) -> None:
    row = store.get_campaign(policy.name, cid)
    status = row.status
    if status is CampaignStatus.INTERRUPTED:
        raise ValidationError("campaign is interrupted (its last run stopped before it was done), not paused: "
                              f"run it again to resume it (camp.run(), {how_to_run(policy.name, cid)})",
                              field="status")
    if status is not CampaignStatus.PAUSED:
        then = (f": nothing to resume; run it with {how_to_run(policy.name, cid)}"
                if status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED) else ": nothing to resume")
        raise ValidationError(f"campaign is {status.value}, not paused{then}", field="status")
    touched = sum(n for (state, _), n in store.recipient_counts(policy.name, cid).items()
                  if state in (RecipientState.SENT, RecipientState.FAILED, RecipientState.UNKNOWN,
                               RecipientState.SENDING))
    started = bool(touched) or row.provider_campaign_id is not None
    # only while still paused (checked and set at once): a cancel() meanwhile holds
    store.update_campaign(policy.name, cid, status=resumed_status(row.start_at, started),
                          if_status={CampaignStatus.PAUSED})


def _cancel(store: Store, policy: TenantPolicy, cid: str) -> int:
    status = store.get_campaign(policy.name, cid).status
    while status is not CampaignStatus.CANCELLED:
        if status in (CampaignStatus.COMPLETED, CampaignStatus.FAILED):
            p = _progress(store, policy, cid)  # failed / unknown ones could still be retried: cancelling stops that
            if not (p.pending or p.failed or p.unknown):  # else it would read "cancelled" with everything sent
                raise ValidationError(f"campaign is {status.value}: nothing is left to cancel (every recipient "
                                      "was sent or skipped)", field="status")
        # only from the status checked (at once): a runner that completed it meanwhile is checked again
        status = store.update_campaign(policy.name, cid, status=CampaignStatus.CANCELLED, if_status={status}).status
    return store_driver(store, policy.name).drive(plans.skip_pending(policy.name, cid, "cancelled"))


def _refuse_native(policy: TenantPolicy, row: CampaignRow, action: str) -> None:
    """Raise :class:`Unsupported` for ``action`` (``retry_failed``, ``retry_unknown``) of a campaign
    sent natively: its recipients are the provider's to send, and no shipped provider's campaign API
    documents sending to some of them again (docs/campaigns.md, "Native campaigns")."""
    settings = _settings(row)
    if _mode(policy, settings) != "native":
        return
    instance = row.provider or settings.provider or "?"
    handed = (f"was handed to {instance!r}'s campaign API whole (its campaign {row.provider_campaign_id})"
              if row.provider_campaign_id else f"is sent natively by {instance!r} (handed to its campaign API whole)")
    if action == "retry_failed":
        why = ("the provider sends it and keeps each recipient's outcome (none is failed in the local log), and "
               "its API documents no way to send again to the recipients it failed")
    else:
        why = ("the handover is one request: an outcome lost there is the whole campaign's (run() raises "
               "UnknownOutcome and never hands it over twice), never a recipient's")
    raise Unsupported(instance, f"{action} of a native campaign",
                      f"campaign {row.campaign_id} {handed}: {why}. Read the provider's figures "
                      "(stats(include_provider=True)) and send the recipients again in a campaign with "
                      "mode='fanout'")


def _retry_unknown(store: Store, policy: TenantPolicy, cid: str) -> int:
    _refuse_native(policy, store.get_campaign(policy.name, cid), "retry_unknown")
    n, after = 0, 0
    while True:
        rows = store.recipients(policy.name, cid, states=[RecipientState.UNKNOWN], after_id=after, limit=PAGE)
        if not rows:
            return _reopened(store, policy, cid, n)
        # not one a runner resolved and sent meanwhile (nor one another retry put back): only
        # those still put back are counted
        n += store.update_recipients(policy.name, cid, [
            RecipientUpdate(r.id or 0, RecipientState.PENDING, reason="retry_unknown", if_message=r.message_id)
            for r in rows])
        after = rows[-1].id or 0


def _reopened(store: Store, policy: TenantPolicy, cid: str, n: int) -> int:
    """After ``n`` recipients were put back to ``pending``: a finished campaign is runnable again
    (:func:`smsgate.core.campaign.reopen`). Returns ``n``."""
    if n:
        store_driver(store, policy.name).drive(plans.reopen(policy.name, cid))
    return n


#: The log statuses of a message the vendor never took: it failed before (or instead of) reaching
#: the vendor, or the vendor refused it. ``unknown`` (may have reached it) and ``undelivered`` /
#: ``expired`` (taken, then not delivered) are not among them.
NEVER_TAKEN = frozenset({Status.FAILED, Status.REJECTED})


def _retry_failed(store: Store, policy: TenantPolicy, cid: str, reasons: frozenset[str] | None) -> int:
    """Put ``failed`` recipients (with one of ``reasons``, if given) whose message the vendor
    certainly never took back to ``pending``; returns how many it put back (not those read as
    failed that another retry or a run changed meanwhile)."""
    row = store.get_campaign(policy.name, cid)
    if row.status is CampaignStatus.CANCELLED:
        raise ValidationError("campaign is cancelled: its recipients are not sent any more", field="status")
    _refuse_native(policy, row, "retry_failed")
    n, after = 0, 0
    while True:
        rows = store.recipients(policy.name, cid, states=[RecipientState.FAILED], after_id=after, limit=PAGE)
        if not rows:
            return _reopened(store, policy, cid, n)
        after = rows[-1].id or 0
        if reasons is not None:
            rows = [r for r in rows if (r.reason or "other") in reasons]
        records = store.messages_by_id(policy.name, [r.message_id for r in rows if r.message_id])
        again = [r for r in rows if r.message_id in records and records[r.message_id].status in NEVER_TAKEN]
        if again:
            # only while each still holds the failed message read here: one another retry_failed()
            # put back meanwhile, and a run sent since, is not put back a second time (nor counted)
            n += store.update_recipients(policy.name, cid, [
                RecipientUpdate(r.id or 0, RecipientState.PENDING, reason="retry_failed", if_message=r.message_id)
                for r in again])


def _reason_set(reason: str | Iterable[str] | None) -> frozenset[str] | None:
    """``retry_failed(reason=...)``: one reason, several, or ``None`` (every failure); each a
    string the store can hold (:func:`~smsgate.core.policy.check_id`), else a ValidationError."""
    if reason is None:
        return None
    if isinstance(reason, str):
        return frozenset([check_id("reason", reason)])
    if isinstance(reason, (bytes, bytearray)) or not isinstance(reason, Iterable):
        raise wrong_type("reason", reason, "a failure reason (str), several, or None")
    return frozenset(check_id("reason", r) for r in reason)


def _waits_until(store: Store, policy: TenantPolicy, cid: str) -> tuple[str, datetime] | None:
    """Why and until when a run started now would wait before sending: ``("scheduled", start_at)``
    or ``("quiet hours", their end)``; ``None`` if it would send at once (or has nothing to run)."""
    row = store.get_campaign(policy.name, cid)
    if row.status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED, CampaignStatus.COMPLETED,
                      CampaignStatus.PREPARING):
        return None
    now = utcnow()
    if row.start_at is not None and row.start_at > now:
        return "scheduled", row.start_at
    end = quiet_end(now, _settings(row).quiet_hours, policy.config)
    return ("quiet hours", end) if end is not None else None


def _live_runners(store: Store, policy: TenantPolicy, cid: str) -> dict[str, datetime]:
    now = utcnow()
    return {owner: until for owner, until in store.runner_leases(policy.name, cid).items() if until > now}


def deletion_refused(campaign_id: str, live: Mapping[str, datetime], force: str = "force=True",
                     stop: str = "Ctrl-C, or pause or cancel the campaign") -> ValidationError:
    """The error of a delete refused because runners hold a live lease (``live``: owner -> lease end);
    ``force`` and ``stop`` say how to override it and how to stop a run, in the caller's terms."""
    until = max(live.values()).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return ValidationError(
        f"campaign {campaign_id} is being run: {len(live)} runner(s) hold a live lease (renewed while they run; "
        f"the latest ends at {until} unless renewed). Stop the run ({stop}) and delete it then; a runner "
        f"that was killed lets go when its lease ends. {force} deletes it anyway: its runners send nothing "
        "more (requests already in flight may still be delivered)", field="campaign")


def _delete(store: Store, policy: TenantPolicy, cid: str, force: bool) -> bool:
    """Delete a campaign; refused while a runner holds a live lease on it, unless ``force``."""
    check_bool("force", force)  # force="no" deleted a running campaign
    live = _live_runners(store, policy, cid)
    if live and not force:
        raise deletion_refused(cid, live)
    if live:
        log.warning("campaign %s/%s deleted with %d live runner(s) (force)", policy.name, cid, len(live))
    return store.delete_campaign(policy.name, cid)


def _local_stats(store: Store, policy: TenantPolicy, cid: str, period: str) -> Stats:
    from smsgate.stats import compute

    return compute(store.message_times(policy.name, campaign_id=cid), tz=policy.config.stats_zone, period=period)


def _check_runnable(row: CampaignRow) -> None:
    if row.status is CampaignStatus.PREPARING:
        raise ValidationError("its preparation never finished (the process creating it stopped); delete it "
                              "and create it again", field="status")


def _new_run(policy: TenantPolicy, row: CampaignRow, progress: Callable[[Progress], None] | None,
             ) -> tuple[plans.CampaignRun, str, Callable[[datetime], Any]]:
    settings = _settings(row)
    run = plans.CampaignRun(policy, row.campaign_id, new_id("run"), settings)
    if progress is not None:
        run.report = lambda counts, status: progress(_counted(row.campaign_id, counts, status))
    window, config = settings.quiet_hours, policy.config
    if window:
        config.quiet_hours_zone()  # a tenant without a time zone fails here, before the run

    def quiet(now: datetime) -> datetime | None:
        return quiet_end(now, window, config)

    return run, _mode(policy, settings), quiet


# ----------------------------------------------------------------------------- sync
_T = TypeVar("_T", bound="Tenant | AsyncTenant")


class _OfTenant(Generic[_T]):
    _tenant: _T

    @property
    def _store(self) -> Store:
        """The tenant's store, asked at each use (:class:`~smsgate.errors.GatewayClosed` once the
        tenant's gateway is closed)."""
        return self._tenant._core.store


class CampaignManager(_OfTenant["Tenant"]):
    """``tenant.campaigns``: create, find and list campaigns."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant

    @property
    def _policy(self) -> TenantPolicy:
        # asked per call, as the tenant handle does: rotated credentials, a removed tenant refused
        return self._tenant._policy

    def create(
        self, name: str, *, audience: AudienceLike, text: str | None = None, template: Template | None = None,
        sender: str | None = None, provider: str | None = None, mode: Mode = "auto",
        start_at: datetime | None = None, quiet_hours: QuietHours = None, batch_size: int = 500,
        concurrency: int = 32, provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None, lease_seconds: float = 30.0, kind: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> CampaignHandle:
        """Create a campaign and prepare its audience into the store (nothing is sent).

        Creation is atomic: if the audience cannot be read (a
        :class:`~smsgate.errors.ValidationError` naming the file and line), the
        text has a placeholder that is not a column of a CSV audience (a
        :class:`~smsgate.errors.TemplateError` naming it and the columns) or
        anything else fails, no campaign is left behind. ``progress`` is called
        with the number of rows read so far, after each chunk of rows stored.
        ``kind`` (``"marketing"``...) is every message's kind, for routes restricted to
        kinds (docs/routing.md). ``quiet_hours``: ``["21:00", "08:00"]`` (in the tenant's
        time zone) for the campaign's own; ``None`` (the default) for the tenant's
        ``quiet_hours``, if it has any; ``False`` for none, even when the tenant has some
        (:func:`smsgate.zones.campaign_quiet_hours`). ``settings.quiet_hours`` is then the
        window the campaign keeps, ``None`` for none.
        """
        gw = self._tenant._gw
        # close() from another thread waits for it and stops it between two chunks of rows: the
        # half-prepared campaign is removed while the store is still open (closed under it, the
        # removal failed too and left a 'preparing' campaign behind)
        with stoppable(gw._sending, gw._closed_error) as stops:
            cid = _create(self._store, self._policy, name, audience, text=text, template=template,
                          sender=sender, provider=provider, mode=mode, start_at=start_at,
                          quiet_hours=quiet_hours, batch_size=batch_size, concurrency=concurrency,
                          provider_options=provider_options, campaign_id=campaign_id,
                          lease_seconds=lease_seconds, kind=kind, progress=_stoppable(progress, stops))
        return CampaignHandle(self._tenant, cid)

    def get(self, campaign_id: str) -> CampaignHandle:
        """The campaign ``campaign_id`` of this tenant (:class:`~smsgate.errors.NotFound` otherwise)."""
        self._store.get_campaign(self._policy.name, check_id("campaign_id", campaign_id, blank=CAMPAIGN_ID))
        return CampaignHandle(self._tenant, campaign_id)

    def list(self, limit: int = 100) -> list[CampaignRow]:
        """This tenant's campaigns, newest first (``limit``: a whole number >= 0)."""
        check_count(limit, "limit")
        return self._store.list_campaigns(self._policy.name, limit=limit)


class CampaignHandle(_OfTenant["Tenant"]):
    """One campaign: preview, run, pause, resume, cancel, progress and statistics."""

    def __init__(self, tenant: Tenant, campaign_id: str) -> None:
        self._tenant = tenant
        self.campaign_id = campaign_id

    @property
    def _policy(self) -> TenantPolicy:
        # asked per call (a handle kept across a rotation runs with the new credentials; one
        # kept across a removal is refused with UnknownTenant, never sends for a removed tenant)
        return self._tenant._policy

    def __repr__(self) -> str:
        return f"<Campaign {self.campaign_id}>"

    @property
    def row(self) -> CampaignRow:
        """The stored campaign row (re-read each time)."""
        return self._store.get_campaign(self._policy.name, self.campaign_id)

    @property
    def settings(self) -> CampaignSettings:
        """What the campaign was created with, and what its preparation found."""
        return _settings(self.row)

    def progress(self) -> Progress:
        """Counts of recipients per dispatch state."""
        return _progress(self._store, self._policy, self.campaign_id)

    def preview(self) -> CampaignPreview:
        """Counts, skipped-by-reason, segments, cost per provider and sample messages."""
        return _preview(self._store, self._policy, self.campaign_id)

    def pause(self) -> None:
        """Stop the campaign's runners until :meth:`resume`: each notices it within
        :data:`~smsgate.core.campaign.STATUS_CHECK` seconds, launches no new request, lets those in
        flight finish, and puts its unsent recipients back to ``pending`` (sent once on resume).

        A :class:`~smsgate.errors.ValidationError` (field ``status``) if the campaign is
        completed, cancelled or still preparing, also when a runner completed it just before
        (the status is checked and set at once)."""
        _pause(self._store, self._policy, self.campaign_id)

    def resume(self) -> None:
        """Allow dispatch again after :meth:`pause` (then call :meth:`run`)."""
        _resume(self._store, self._policy, self.campaign_id)

    def cancel(self) -> int:
        """Stop the campaign for good: pending recipients become ``skipped`` (cancelled); returns how many.

        Runners sending it notice within :data:`~smsgate.core.campaign.STATUS_CHECK` seconds,
        launch no new request, let those in flight finish, and their unsent recipients become
        ``skipped`` (cancelled) too (not counted in the number returned).

        A :class:`~smsgate.errors.ValidationError` (field ``status``) if the campaign is
        completed (or failed) with nothing left to send or retry, also when a runner completed
        it just before (the status is checked and set at once)."""
        return _cancel(self._store, self._policy, self.campaign_id)

    def delete(self, *, force: bool = False) -> bool:
        """Delete the campaign and its recipients (its messages stay in the log).

        Refused (:class:`~smsgate.errors.ValidationError`, field ``campaign``) while a
        runner holds a live lease on it (see :meth:`runners`): after Ctrl-C, an error or
        a completed run there is none; a killed runner's lease ends ``lease_seconds``
        after its last renewal. ``force=True`` deletes it anyway: its runners lose their
        claims and send nothing more (requests already in flight may still be delivered).
        """
        return _delete(self._store, self._policy, self.campaign_id, force)

    def runners(self) -> dict[str, datetime]:
        """The runners holding a live lease on this campaign: owner id -> when the lease ends
        unless renewed (empty when nothing runs it)."""
        return _live_runners(self._store, self._policy, self.campaign_id)

    def waits_until(self) -> tuple[str, datetime] | None:
        """Why and until when :meth:`run` would wait now before sending anything:
        ``("scheduled", start_at)`` or ``("quiet hours", when they end)`` (UTC); ``None``
        when it would send at once."""
        return _waits_until(self._store, self._policy, self.campaign_id)

    def retry_unknown(self) -> int:
        """Put recipients whose outcome stayed unknown back to ``pending`` (may duplicate!).

        An ``unknown`` recipient's request may have reached the vendor; sending it
        again may deliver a second message. Returns how many were put back; run the
        campaign to send them. A native campaign raises :class:`~smsgate.errors.Unsupported`
        (naming the provider: its handover is one request, never a recipient's unknown).
        """
        return _retry_unknown(self._store, self._policy, self.campaign_id)

    def retry_failed(self, reason: str | Iterable[str] | None = None) -> int:
        """Put ``failed`` recipients whose message the vendor never took back to ``pending``.

        For after the cause is fixed (credentials, balance, a sender ID, an outage): only
        recipients whose logged message is ``failed`` or ``rejected`` (the request never
        reached the vendor, or the vendor refused it) go back, never ``unknown`` ones (see
        :meth:`retry_unknown`), nor sent, ``undelivered`` or ``expired`` ones, so running the
        campaign again sends each of them once. ``reason`` (a failure reason as
        ``progress().failed_by_reason`` counts them, e.g. ``"AuthFailed"``, or several)
        narrows it (``"other"``: failed without a reason).
        Returns how many were put back; run the campaign to send them. Refused for a
        cancelled campaign (:class:`~smsgate.errors.ValidationError`) and a native one
        (:class:`~smsgate.errors.Unsupported` naming the provider: its recipients are the
        provider's to send, and no campaign API documents sending to some again).
        """
        return _retry_failed(self._store, self._policy, self.campaign_id, _reason_set(reason))

    def stats(self, period: str = "hour", *, include_provider: bool = False) -> Stats:
        """Statistics of this campaign's messages from the local log (tenant time zone).

        With ``include_provider=True``, a campaign handed to a provider's campaign
        API (native mode) also gets that provider's own statistics for it, under
        ``stats.raw["provider"]`` (left out when the provider has none).
        """
        check_bool("include_provider", include_provider)
        stats = _local_stats(self._store, self._policy, self.campaign_id, period)
        if include_provider:
            theirs = self._tenant._drive(plans.provider_stats(self._policy, self.row))
            if theirs is not None:
                stats.raw["provider"] = theirs
        return stats

    def run(self, *, progress: Callable[[Progress], None] | None = None, wait: bool = True) -> Progress:
        """Dispatch (or resume) the campaign; blocks until done, paused, cancelled or quiet hours.

        Safe to call again after a crash, Ctrl-C or an error, and from several
        processes at once: each recipient is sent once. With ``wait=False`` a
        campaign whose ``start_at`` is in the future or that is inside quiet hours
        returns at once (status ``scheduled``). ``progress`` is called with the
        counts before each chunk of recipients after the first, and at the end.
        """
        check_bool("wait", wait)
        check_progress(progress)
        row = self.row
        _check_runnable(row)
        run, mode, quiet = _new_run(self._policy, row, progress)
        stop = threading.Event()
        gw = self._tenant._gw
        run.renew = gw._core_.renewer(self._tenant.name)
        store, tenant, cid, owner = self._store, self._policy.name, self.campaign_id, run.owner
        lease = run.settings.lease_seconds
        store.start_runner(tenant, cid, owner, plans.lease_end(lease))
        done = threading.Event()
        # renews the lease while the run lives; a pause or cancel stops the sending (as Ctrl-C
        # does); each try of a request passes its fence (the claims still the runner's)
        beat = RunnerBeat(store, tenant, cid, owner, lease, halt=stop.set)
        driver = gw._plan_driver(self._policy.name, stop=stop, runner=beat)
        heart = threading.Thread(target=beat.run, args=(done,), name="smsgate-campaign-lease", daemon=True)
        heart.start()
        try:
            driver.drive(plans.run(run, wait, quiet, mode))
        except LeaseLost:
            if not beat.lost:
                raise
            # another runner took this one's claims over (it was paused past its lease): they are
            # that runner's to settle; this one stops as a paused campaign's does (logged)
        finally:
            done.set()
            heart.join()
            try:
                driver.drive(plans.release(run))
                driver.writer.flush()
                driver.drive(plans.leave(run))  # still running, and no other runner: interrupted
            finally:
                store.stop_runner(tenant, cid, owner)
        p = self.progress()
        if progress is not None:
            progress(p)
        return p


def _stoppable(progress: Callable[[int], None] | None, stops: Sequence[Event]) -> Callable[[int], None]:
    """``progress`` (checked by :func:`check_progress`; or none) called after each chunk of rows a
    creation prepares, first stopping it (:func:`smsgate._stop.check`: :func:`_create` removes
    the half-prepared campaign as for any failure) once one of ``stops`` is set."""
    check_progress(progress)

    def step(rows: int) -> None:
        check(stops)
        if progress is not None:
            progress(rows)

    return step


def check_progress(progress: object) -> None:
    """A ``progress`` callback that cannot be called: a :class:`ValidationError` before anything
    is done (``run(progress=obj)`` sent the whole campaign, then raised a bare ``TypeError``).

    So is an ``async`` one (on either gateway): progress is called, never awaited, so its
    coroutine would be dropped unrun (a ``RuntimeWarning`` Python hides by default).
    """
    if progress is None:
        return
    if not callable(progress):
        raise wrong_type("progress", progress, "a function (or None)")
    if inspect.iscoroutinefunction(progress) or inspect.iscoroutinefunction(type(progress).__call__):
        raise ValidationError(f"{progress!r} is an async function: progress is called, not awaited, so it would "
                              "never run; pass a plain function (it may schedule a task of its own)",
                              field="progress")


def _renewal_failed(campaign_id: str, exc: Exception) -> None:
    log.warning("campaign %s: renewing this runner's lease failed (%s: %s); trying again at the next beat",
                campaign_id, type(exc).__name__, exc)


def threadsafe_setter(event: asyncio.Event) -> Callable[[], None]:
    """A function setting ``event`` (of the running event loop) from any thread."""
    loop = asyncio.get_running_loop()

    def setter() -> None:
        loop.call_soon_threadsafe(event.set)
    return setter


class RunnerBeat:
    """The heartbeat of one runner of a campaign (a direct run, a Celery chunk task), and its fence.

    Every :attr:`interval` seconds (:func:`~smsgate.core.campaign.check_every`: at most
    :data:`~smsgate.core.campaign.STATUS_CHECK`) :meth:`tick` reads the campaign's status (one
    indexed read), and renews the runner's lease every third of ``lease`` seconds. Once the
    campaign is paused, cancelled (its tenant's removal cancels it) or deleted, :attr:`stopped`
    is set and ``halt`` is called, once: the runner's driver's stop, the very stop Ctrl-C sets,
    so no new request is launched, those in flight finish and are logged, and the run's
    release settles its unsent claims (:func:`smsgate.core.campaign.release`). The lease is
    renewed on until the runner ends (:meth:`run` returns when ``done`` is set).

    **The fence.** Every try of a request of the runner's messages (the first, each retry of
    the transport, each admission after a rate-limit wait) first calls :meth:`fence`: it leaves
    only while the runner's claims are surely its own. That is a clock read while the lease
    was renewed less than half of ``lease`` ago (no other runner can take claims over before
    the lease ends); after that (the runner was paused, its beat starved) the fence renews the
    lease itself, and a renewal the store refuses (another runner took claims of this one over,
    :meth:`~smsgate.store.base.Store.recover_claims`) makes the runner :attr:`lost`: the try
    and every later one raise :class:`~smsgate.errors.LeaseLost` (their messages are the new
    owner's to settle) and ``halt`` stops the run. The clock counts suspended time too
    (``CLOCK_BOOTTIME`` where the system has it), so a laptop put to sleep past its lease is
    seen as such.
    """

    def __init__(self, store: Store, tenant: str, campaign_id: str, owner: str, lease: float,
                 halt: Callable[[], None] | None = None) -> None:
        self.store, self.tenant, self.campaign_id, self.owner, self.lease = store, tenant, campaign_id, owner, lease
        #: seconds between two ticks
        self.interval = plans.check_every(lease)
        #: set once the campaign was seen paused, cancelled or deleted
        self.stopped = threading.Event()
        #: set once another runner took claims of this one over (its lease had ended), or the
        #: campaign was deleted under it (:attr:`deleted`)
        self.lost = False
        #: set (with :attr:`lost`) once the lease was found gone with its campaign
        self.deleted = False
        self._halt = halt
        self._lock = threading.Lock()
        self._renewed = _clock()  # (the lease was taken with the claim, just before)

    def halt_with(self, halt: Callable[[], None]) -> None:
        """Call ``halt`` to stop the runner (at once if the campaign was already seen stopped)."""
        self._halt = halt
        if self.stopped.is_set():
            halt()

    def fresh(self) -> bool:
        """Whether :meth:`fence` has nothing to do: a clock read (safe on an event loop)."""
        return not self.lost and _clock() - self._renewed < self.lease / 2

    def fence(self) -> None:
        """Before a try of a request of this runner's claimed messages: return if its claims are
        surely still its own, else raise :class:`~smsgate.errors.LeaseLost` (store I/O when the
        lease is not fresh: call it in a worker thread from an event loop)."""
        if not self.fresh():
            with self._lock:  # one renewal for the threads sending at once
                if not self.fresh() and not self.lost:
                    self._renew()
        if self.lost:
            if self.deleted:
                raise LeaseLost(f"campaign {self.campaign_id}: runner {self.owner} lost its lease: the campaign was "
                                "deleted (delete(force=True)) while it ran; this request was not sent")
            raise LeaseLost(
                f"campaign {self.campaign_id}: runner {self.owner} lost its lease (it was not renewed for longer "
                f"than lease_seconds={self.lease:g}: the process was paused or the store unreachable) and another "
                "runner took its claims over; this request was not sent again (the new owner settles it)")

    def _renew(self) -> None:
        start = _clock()
        if self.store.renew_runner(self.tenant, self.campaign_id, self.owner, plans.lease_end(self.lease)):
            self._renewed = max(self._renewed, start)
            return
        if not self.lost:
            self.lost = True  # at once: no try passes the fence from here on (the read below takes time)
            self.stopped.set()
            self._call_halt()
            try:  # only for what it says: a campaign deleted, or another runner
                self.store.get_campaign(self.tenant, self.campaign_id)
            except NotFound:
                self.deleted = True
            except Exception:  # (a store hiccup: the message says what is likelier)
                pass
            if self.deleted:
                log.warning("campaign %s: deleted while runner %s ran: it stops sending", self.campaign_id, self.owner)
            else:
                log.warning("campaign %s: runner %s lost its lease (not renewed for %.1f s, longer than "
                            "lease_seconds=%g) and another runner took its claims over: it stops sending",
                            self.campaign_id, self.owner, start - self._renewed, self.lease)

    def tick(self) -> None:
        """One beat: the status read, and the lease's renewal when due (a store failure is logged;
        the next beat tries again)."""
        # by the clock, not by beats: a slow status read (a busy pool) must not space the renewals out
        if not self.lost and _clock() - self._renewed >= self.lease / 3:
            try:
                self._renew()
            except Exception as exc:
                _renewal_failed(self.campaign_id, exc)
        if self.stopped.is_set():
            return
        try:
            status: CampaignStatus | None = self.store.get_campaign(self.tenant, self.campaign_id).status
        except NotFound:
            status = None  # deleted (force=True): its claims went with it
        except Exception as exc:  # a store hiccup: the next beat reads again
            log.warning("campaign %s: reading its status failed (%s: %s); reading again at the next beat",
                        self.campaign_id, type(exc).__name__, exc)
            return
        if status is None or status in plans.STOPS:
            log.info("campaign %s %s: runner %s stops sending", self.campaign_id,
                     status.value if status else "deleted", self.owner)
            self.stopped.set()
            self._call_halt()

    def _call_halt(self) -> None:
        if self._halt is not None:
            try:
                self._halt()
            except Exception as exc:  # (a closed event loop): the beat must go on renewing the lease
                log.warning("campaign %s: stopping runner %s failed (%s: %s)", self.campaign_id, self.owner,
                            type(exc).__name__, exc)

    def run(self, done: threading.Event) -> None:
        """Beat in this thread until ``done`` is set (sooner than :attr:`interval` when the lease is due)."""
        while not done.wait(max(0.0, min(self.interval, self._renewed + self.lease / 3 - _clock()))):
            self.tick()


def _clock() -> float:
    """Seconds of a clock that counts a suspended system's sleep (a runner's lease ran on meanwhile)."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


# ----------------------------------------------------------------------------- async
class AsyncCampaignManager(_OfTenant["AsyncTenant"]):
    """``tenant.campaigns`` of an :class:`~smsgate.AsyncTenant`: :class:`CampaignManager` with coroutines."""

    def __init__(self, tenant: AsyncTenant) -> None:
        # the tenant's policy is asked at each call (a tenant source's tenant: loaded off the loop)
        self._tenant = tenant

    async def create(
        self, name: str, *, audience: AudienceLike, text: str | None = None, template: Template | None = None,
        sender: str | None = None, provider: str | None = None, mode: Mode = "auto",
        start_at: datetime | None = None, quiet_hours: QuietHours = None, batch_size: int = 500,
        concurrency: int = 32, provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None, lease_seconds: float = 30.0, kind: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> AsyncCampaignHandle:
        """:meth:`CampaignManager.create`, with the preparation in a worker thread (where
        ``progress`` is called too).

        Cancelled (a request's timeout, an anyio cancel scope), or its gateway closed meanwhile
        (``aclose()`` waits for it), it stops between two chunks of rows and leaves no campaign
        behind, as when it fails: the cancellation is raised once the half-prepared campaign is
        removed (a campaign it finished meanwhile is removed too: its caller never learns its
        id), and ``aclose()`` makes it raise :class:`~smsgate.errors.GatewayClosed`.
        """
        policy = await self._tenant._ready()
        gw = self._tenant._gw

        async def undo(cid: str) -> None:  # a campaign it finished before it saw the stop
            await gw._run_sync(self._store.delete_campaign, self._tenant.name, cid)

        cid = await run_stoppable(lambda stops: self._tenant._in_thread(
            _create, self._store, policy, name, audience, text=text, template=template, sender=sender,
            provider=provider, mode=mode, start_at=start_at, quiet_hours=quiet_hours, batch_size=batch_size,
            concurrency=concurrency, provider_options=provider_options, campaign_id=campaign_id,
            lease_seconds=lease_seconds, kind=kind, progress=_stoppable(progress, stops)),
            gw._sending, gw._closed_error, undo)
        return AsyncCampaignHandle(self._tenant, cid)

    async def get(self, campaign_id: str) -> AsyncCampaignHandle:
        """The campaign ``campaign_id`` of this tenant (:class:`~smsgate.errors.NotFound` otherwise)."""
        check_id("campaign_id", campaign_id, blank=CAMPAIGN_ID)
        await self._tenant._ready()
        await self._tenant._in_thread(self._store.get_campaign, self._tenant.name, campaign_id)
        return AsyncCampaignHandle(self._tenant, campaign_id)

    async def list(self, limit: int = 100) -> list[CampaignRow]:
        """This tenant's campaigns, newest first (``limit``: a whole number >= 0)."""
        check_count(limit, "limit")
        await self._tenant._ready()
        rows: list[CampaignRow] = await self._tenant._in_thread(self._store.list_campaigns, self._tenant.name,
                                                                limit=limit)
        return rows


class AsyncCampaignHandle(_OfTenant["AsyncTenant"]):
    """One campaign of an :class:`~smsgate.AsyncTenant`: :class:`CampaignHandle` with coroutines."""

    def __init__(self, tenant: AsyncTenant, campaign_id: str) -> None:
        self._tenant = tenant
        self.campaign_id = campaign_id

    def __repr__(self) -> str:
        return f"<Campaign {self.campaign_id}>"

    async def _do(self, fn: Callable[..., Any], *args: Any) -> Any:
        policy = await self._tenant._ready()
        return await self._tenant._in_thread(fn, self._store, policy, self.campaign_id, *args)

    async def row(self) -> CampaignRow:
        """The stored campaign row."""
        await self._tenant._ready()
        row: CampaignRow = await self._tenant._in_thread(self._store.get_campaign, self._tenant.name,
                                                         self.campaign_id)
        return row

    async def settings(self) -> CampaignSettings:
        """What the campaign was created with, and what its preparation found."""
        return _settings(await self.row())

    async def progress(self) -> Progress:
        """Counts of recipients per dispatch state."""
        p: Progress = await self._do(_progress)
        return p

    async def preview(self) -> CampaignPreview:
        """Counts, skipped-by-reason, segments, cost per provider and sample messages."""
        p: CampaignPreview = await self._do(_preview)
        return p

    async def pause(self) -> None:
        """See :meth:`CampaignHandle.pause`."""
        await self._do(_pause)

    async def resume(self) -> None:
        """See :meth:`CampaignHandle.resume`."""
        await self._do(_resume)

    async def cancel(self) -> int:
        """See :meth:`CampaignHandle.cancel`."""
        n: int = await self._do(_cancel)
        return n

    async def delete(self, *, force: bool = False) -> bool:
        """See :meth:`CampaignHandle.delete`."""
        done: bool = await self._do(_delete, force)
        return done

    async def runners(self) -> dict[str, datetime]:
        """See :meth:`CampaignHandle.runners`."""
        live: dict[str, datetime] = await self._do(_live_runners)
        return live

    async def waits_until(self) -> tuple[str, datetime] | None:
        """See :meth:`CampaignHandle.waits_until`."""
        found: tuple[str, datetime] | None = await self._do(_waits_until)
        return found

    async def retry_unknown(self) -> int:
        """See :meth:`CampaignHandle.retry_unknown` (may duplicate!)."""
        n: int = await self._do(_retry_unknown)
        return n

    async def retry_failed(self, reason: str | Iterable[str] | None = None) -> int:
        """See :meth:`CampaignHandle.retry_failed` (never duplicates)."""
        n: int = await self._do(_retry_failed, _reason_set(reason))
        return n

    async def stats(self, period: str = "hour", *, include_provider: bool = False) -> Stats:
        """See :meth:`CampaignHandle.stats`."""
        check_bool("include_provider", include_provider)
        stats: Stats = await self._do(_local_stats, period)
        if include_provider:
            row = await self.row()
            theirs = await self._tenant._drive(plans.provider_stats(await self._tenant._ready(), row))
            if theirs is not None:
                stats.raw["provider"] = theirs
        return stats

    async def run(self, *, progress: Callable[[Progress], None] | None = None, wait: bool = True) -> Progress:
        """See :meth:`CampaignHandle.run`; cancelling the task stops the run the same way Ctrl-C does,
        and so does the gateway's :meth:`~smsgate.AsyncGateway.aclose` (before it closes the HTTP
        client and the store), after which the run raises :class:`~smsgate.errors.GatewayClosed`."""
        check_bool("wait", wait)
        check_progress(progress)
        return await self._tenant._gw._running(lambda: self._run(progress, wait))

    async def _run(self, progress: Callable[[Progress], None] | None, wait: bool) -> Progress:
        row = await self.row()
        _check_runnable(row)
        run, mode, quiet = _new_run(await self._tenant._ready(), row, progress)
        gw = self._tenant._gw
        run.renew = gw._core_.renewer(self._tenant.name)  # asked in a worker thread (the driver's Renew)
        stop = asyncio.Event()
        store, tenant, cid, owner = self._store, self._tenant.name, self.campaign_id, run.owner
        lease = run.settings.lease_seconds
        in_thread = self._tenant._in_thread
        # to its end even when this task is cancelled meanwhile (asyncio.wait_for expiring on a
        # store busy for a moment): a registration left to its thread made a runner that never
        # ran hold a live lease on the campaign for lease_seconds (delete() refused, runners()
        # listed it); cancelled, the run waits for it and undoes it, as the gate does its slots
        registering = asyncio.ensure_future(in_thread(store.start_runner, tenant, cid, owner, plans.lease_end(lease)))
        try:
            await asyncio.shield(registering)
        except asyncio.CancelledError:
            with shielded():  # (an enclosing anyio scope cancels again at every await)
                if not registering.done():
                    await asyncio.wait([registering])
                if not registering.cancelled() and registering.exception() is None:
                    await gw._run_sync(store.stop_runner, tenant, cid, owner)
            raise

        # renews the lease while the run lives; a pause or cancel stops the sending (as Ctrl-C
        # does); each try of a request passes its fence (the claims still the runner's)
        runner_beat = RunnerBeat(store, tenant, cid, owner, lease, halt=threadsafe_setter(stop))
        driver = gw._plan_driver(self._tenant.name, stop=stop, runner=runner_beat)

        async def beat() -> None:
            while True:
                await asyncio.sleep(runner_beat.interval)
                await in_thread(runner_beat.tick)

        heart = asyncio.ensure_future(beat())
        try:
            await driver.drive(plans.run(run, wait, quiet, mode))
        except LeaseLost:
            if not runner_beat.lost:
                raise
            # another runner took this one's claims over: see CampaignHandle.run
        finally:
            heart.cancel()
            with shielded():  # to its end after a cancellation, also under an anyio scope (see shielded)
                try:
                    await driver.drive(plans.release(run))
                    await driver.writer.flush()
                    await driver.drive(plans.leave(run))  # still running, and no other runner: interrupted
                finally:  # (also once aclose() stopped the run: not refused as closed)
                    await gw._run_sync(store.stop_runner, tenant, cid, owner)
        p = await self.progress()
        if progress is not None:
            progress(p)
        return p
