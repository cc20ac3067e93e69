"""``smsgate campaign``: create, preview, run, pause, resume, cancel, retry-unknown, delete, status, list,\nstats."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import typer

from smsgate.campaigns.handles import how_to_run
from smsgate.campaigns.model import Mode
from smsgate.cli._common import (
    NO_EXIT,
    CommandGroup,
    ConfigOpt,
    JsonOpt,
    KindOpt,
    TenantOpt,
    checked_kind,
    compact_table,
    confirm,
    console,
    err_console,
    flags_named,
    holder,
    nothing_to_list,
    open_async_gateway,
    open_tenant,
)
from smsgate.cli._csv import DelimiterOpt, EncodingOpt, NameColumnOpt, csv_audience, csv_shown
from smsgate.cli._interrupt import on_interrupt, run_async
from smsgate.cli.stats import check_period, print_stats
from smsgate.errors import ValidationError
from smsgate.hookspecs import hookimpl
from smsgate.keyhints import closest
from smsgate.models import CampaignStatus, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from smsgate.campaigns import Audience, CampaignHandle
    from smsgate.campaigns import Progress as CampaignProgress
    from smsgate.config import Settings
    from smsgate.gateway import Tenant
    from smsgate.models import OutboundMessage, SendResult
    from smsgate.store import Store
    from smsgate.store.base import CampaignRow

__all__ = ["campaign_app"]

campaign_app = CommandGroup(help="Create, preview and run campaigns.", no_args_is_help=True)


def _campaign_id(value: str) -> str:
    """A blank ``CAMPAIGN_ID`` (an unset shell variable) is the argument's error, named as a
    missing one is, before the store is opened (not "field 'campaign_id'" with the library's
    wording)."""
    from smsgate.core.policy import check_id

    try:  # the library's rule for ids, blank ones included (check_id), named as the argument
        return check_id("campaign_id", value, blank="the campaign's id (cmp_...), as 'smsgate campaign create' "
                                                    "and 'smsgate campaign list' print it")
    except ValidationError as exc:
        raise typer.BadParameter(exc.reason) from None


CampaignIdArg = Annotated[str, typer.Argument(help="The campaign's id (cmp_...), as 'campaign create' and "
                                                   "'campaign list' print it.", show_default=False,
                                              callback=_campaign_id)]


@campaign_app.command("create")
def campaign_create(
    name: Annotated[str, typer.Option(help="Campaign name.")],
    text: Annotated[str, typer.Option(help="Message text; {column} placeholders are filled per row.")],
    csv_path: Annotated[Path | None, typer.Option("--csv", help=(
        "Audience CSV file (a header row: the numbers' column, 'phone' unless --phone-column says, "
        "and a column per {placeholder}); '-' reads it from standard input."))] = None,
    list_id: Annotated[str | None, typer.Option("--list", help="Audience: a stored contact list's id "
                                                               "(smsgate contacts list), instead of --csv.")] = None,
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    phone_column: Annotated[str, typer.Option("--phone-column", help="CSV column with numbers.")] = "phone",
    name_column: NameColumnOpt = None,
    sender: Annotated[str | None, typer.Option(help="Sender ID.")] = None,
    provider: Annotated[str | None, typer.Option(help="Send through this provider instance only.")] = None,
    mode: Annotated[str, typer.Option(help="auto, fanout or native.")] = "auto",
    start_at: Annotated[str | None, typer.Option(
        metavar="DATETIME", help="Scheduled start (ISO, UTC if no offset), e.g. 2027-06-01T09:00; not more than "
        "5 minutes in the past.")] = None,
    quiet_hours: Annotated[str | None, typer.Option(
        "--quiet-hours", metavar="START-END|off", help="Do not send between these times, e.g. 21:00-08:00, in "
        "the tenant's time zone; 'off': no quiet hours for this campaign, even if the tenant has some "
        "(default: the tenant's quiet_hours).")] = None,
    kind: KindOpt = None,
    delimiter: DelimiterOpt = ",",
    encoding: EncodingOpt = "utf-8-sig",
    campaign_id: Annotated[str | None, typer.Option(
        "--id", help="The campaign's id (default: a new one, cmp_...). The same command run again with the same "
        "--id is refused rather than making a second campaign.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a campaign from a CSV file (--csv) or a stored contact list (--list) and show its
    preview (nothing is sent; --json: the preview as 'campaign preview --json' prints it).

    Shows how many rows were read while it prepares a large file. If anything fails
    (a missing column, a placeholder that is not a column...) or Ctrl-C stops it, nothing
    is left behind: run the same command again.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from smsgate.ids import new_id

    if (csv_path is None) == (list_id is None):
        raise ValidationError("give the audience: --csv FILE or --list ID (one of them)"
                              if csv_path is None else "give --csv FILE or --list ID, not both",
                              field="--csv / --list")
    if list_id is not None and ((phone_column, delimiter, encoding) != ("phone", ",", "utf-8-sig")
                                or name_column is not None):
        raise ValidationError("--phone-column, --name-column, --delimiter and --encoding read a --csv file; a "
                              "--list has its numbers and names stored already", field="--list")
    modes = get_args(Mode)
    if mode not in modes:  # the library's check, its error naming the flag
        raise ValidationError(f"unknown mode {mode!r}: one of {', '.join(modes)}", field="--mode")
    window = _quiet_hours(quiet_hours)
    kind = checked_kind(kind)
    when = None if start_at is None else _start_at(start_at)
    if when is not None:
        _check_start_at(when)
    audience: Audience | None = None if csv_path is None else csv_audience(
        csv_path, phone_column, delimiter, encoding, name=name_column or "name", name_given=name_column is not None)
    cid = new_id("cmp") if campaign_id is None else _new_campaign_id(campaign_id)
    gw, t = open_tenant(config, tenant)  # (cid named here, so that an interrupted creation can be looked for)
    with gw:
        if campaign_id is not None:
            _check_unused(t, cid)  # refused first: Ctrl-C below removes campaign cid, never one made before
        with on_interrupt(lambda: _create_interrupted(t, cid)):
            if audience is None:
                audience = t.contact_lists.audience(str(list_id))  # NotFound before anything is made
            source = csv_shown(csv_path) if csv_path is not None else f"list {list_id}"
            with Progress(SpinnerColumn(), TextColumn(f"preparing {source}:", markup=False),
                          TextColumn("{task.completed:,.0f} rows read", markup=False), TimeElapsedColumn(),
                          console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
                task = bar.add_task("prepare", total=None)

                def read(rows: int) -> None:
                    bar.update(task, completed=rows)
                    bar.refresh()  # once per chunk of rows: shown even when the next chunk takes long

                with flags_named(_CREATE_OPTIONS):
                    camp = t.campaigns.create(name, text=text, audience=audience,
                                              sender=sender, provider=provider, mode=mode,  # type: ignore[arg-type]
                                              start_at=when, quiet_hours=window, progress=read, campaign_id=cid,
                                              kind=kind)
            try:
                preview = camp.preview()
            except BaseException:  # the command failed: the campaign it made goes too
                camp.delete()
                raise
            twins = [c for c in t.campaigns.list(limit=1000) if c.name == name and c.campaign_id != cid]
    # Created and stored: a reader that stops early (`| head`) must not undo it.
    if as_json:
        print(preview.model_dump_json())
    else:
        _print_preview(preview)
    if twins:
        err_console.print(_same_name_note(name, cid, twins, campaign_id is None), soft_wrap=True, markup=False,
                          highlight=False)


def _new_campaign_id(value: str) -> str:
    """``--id`` by ``campaigns.create()``'s rule for a new ``campaign_id`` (1-64 printable
    characters, as a contact list's ``--id``), its error naming the flag, before the store is opened."""
    from smsgate.campaigns.handles import MAX_CAMPAIGN_ID
    from smsgate.core.policy import check_label

    try:
        return check_label("--id", value, MAX_CAMPAIGN_ID, "give an id, or leave --id out for a new one")
    except ValidationError as exc:
        raise ValidationError(exc.reason, field="--id", value=value) from None


def _check_unused(t: Tenant, campaign_id: str) -> None:
    """A :class:`ValidationError` naming ``--id`` when the tenant has a campaign ``campaign_id``."""
    from smsgate.errors import NotFound

    try:
        row = t.campaigns.get(campaign_id).row
    except NotFound:
        return
    raise ValidationError(f"a campaign {campaign_id!r} already exists for tenant {t.name!r} ({row.name!r}, "
                          f"{row.status.value}); nothing was created: 'smsgate campaign status {campaign_id}' shows it, "
                          "or give another --id", field="--id", value=campaign_id)


def _same_name_note(name: str, campaign_id: str, twins: list[CampaignRow], no_id: bool) -> str:
    """What ``campaign create`` says on stderr when other campaigns of the tenant have its name
    (a command run twice makes two campaigns: running both texts their recipients twice)."""
    shown = ", ".join(f"{c.campaign_id} ({c.status.value})" for c in twins[:5])
    more = f" and {len(twins) - 5} more" if len(twins) > 5 else ""
    return (f"note: {len(twins)} other campaign(s) of this tenant are named {name!r} too: {shown}{more}. Each is "
            f"sent on its own: if {campaign_id} repeats one of them by mistake, delete it "
            f"('smsgate campaign delete {campaign_id}') rather than run both"
            + ("; give --id to have a second create refused" if no_id else ""))


#: ``campaigns.create()``'s arguments that ``campaign create`` takes as options: its errors name
#: the option, as --help shows it (``field '--name'``), not the library's argument (``field 'name'``);
#: ``--text`` is parsed as a template (``field 'template'``: a placeholder such as ``{0}``).
_CREATE_OPTIONS = {"name": "--name", "text": "--text", "template": "--text", "sender": "--sender", "campaign_id": "--id",
                   "provider": "--provider"}


def _start_at(text: str) -> datetime:
    """``--start-at`` read as ISO 8601 (pydantic's reading: a date alone is its midnight, ``Z`` is
    UTC), UTC when it has no offset; anything else is one error naming the flag and the format."""
    from pydantic import TypeAdapter
    from pydantic import ValidationError as PydanticError

    try:
        when = TypeAdapter(datetime).validate_python(text.strip())
    except PydanticError:
        raise ValidationError(f"{text!r} is not a date and time: give it in ISO 8601, e.g. 2027-06-01T09:00 "
                              "(UTC) or 2027-06-01T09:00+01:00", field="--start-at") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def _check_start_at(when: datetime) -> None:
    """``--start-at`` by the library's rule (:func:`smsgate.core.campaign.check_start_at`), its
    error naming the flag."""
    from smsgate.core.campaign import check_start_at

    try:
        check_start_at(when, utcnow())
    except ValidationError as exc:
        raise ValidationError(exc.reason, field="--start-at") from None


def _quiet_hours(text: str | None) -> tuple[str, str] | Literal[False] | None:
    """``--quiet-hours 21:00-08:00`` as the library's pair, ``--quiet-hours off`` as its ``False``
    (:func:`smsgate.zones.parse_quiet_hours`); ``None`` without the flag: the tenant's."""
    from smsgate.zones import parse_quiet_hours

    if text is None:
        return None
    try:
        return parse_quiet_hours(text)
    except ValueError as exc:
        raise ValidationError(str(exc), field="--quiet-hours") from None


def _create_interrupted(t: Tenant, campaign_id: str) -> str:
    """After Ctrl-C in ``campaign create``: make sure the half-made campaign is gone (creation
    removes it itself unless the interrupt came after, or during that removal), and say so."""
    from smsgate.errors import NotFound

    again = "run the same 'smsgate campaign create' command again"
    try:
        camp = t.campaigns.get(campaign_id)
    except NotFound:
        return f"nothing was kept (no campaign was left behind); {again}"
    try:
        camp.delete()
    except Exception:
        return (f"campaign {campaign_id} was left half-prepared: delete it with "
                f"'smsgate campaign delete {campaign_id} --yes', then {again}")
    return f"nothing was kept (campaign {campaign_id} was removed); {again}"


def _print_preview(preview: Any, errors: int = 10) -> None:
    console.print(str(preview))
    if preview.errors:
        kept, total = len(preview.errors), sum(preview.skipped.values())  # kept: the first MAX_ERRORS
        shown = min(max(errors, 0), kept)
        title = f"skipped rows ({shown}"
        if shown < total:
            title += f" of {total}; "
            title += (f"smsgate campaign preview {preview.campaign_id} --errors {kept} lists "
                      + ("them all" if kept == total else f"the first {kept}") if shown < kept
                      else f"the first {kept} are kept")
        table = compact_table("where", "phone", "reason", "detail", title=title + ")")
        for e in preview.errors[:shown]:
            table.add_row(e.location, e.phone, e.reason, e.detail)
        console.print(table)


@campaign_app.command("preview")
def campaign_preview(campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None,
                     errors: Annotated[int, typer.Option(help="How many skipped rows to list.")] = 10,
                     as_json: JsonOpt = False) -> None:
    """Counts, skipped-by-reason, segments, cost and sample messages, without sending."""
    gw, t = open_tenant(config, tenant, several=holder("campaign", campaign_id), read_only=True)
    with gw:
        preview = t.campaigns.get(campaign_id).preview()
    if as_json:
        print(preview.model_dump_json())
    else:
        _print_preview(preview, errors)


@campaign_app.command("run")
def campaign_run(campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None,
                 wait: Annotated[bool, typer.Option(help="Wait for start time / quiet hours.")] = True) -> None:
    """Send (or resume) a campaign with a progress bar; safe to re-run after a crash or Ctrl-C.

    The run goes through an AsyncGateway (aiohttp when the fast extra is installed):
    far more requests in flight than a thread per request allows. Exit 1 when the campaign
    is (or becomes, during the run) paused or cancelled: it says why nothing (more) was sent.
    A completed campaign exits 0: it says nothing was left to send.
    """
    gw, t = open_tenant(config, tenant, several=holder("campaign", campaign_id))
    with gw:
        camp = t.campaigns.get(campaign_id)
        start = camp.progress()
        if start.status is CampaignStatus.PAUSED:  # a run would send nothing: not started at all
            console.print(f"{campaign_id}: paused; nothing was sent ({_counts(start)}). It stays paused until "
                          f"'smsgate campaign resume {campaign_id}'; then run 'smsgate campaign run "
                          f"{campaign_id}'", highlight=False)
            raise typer.Exit(NO_EXIT)
        waiting = camp.waits_until()
        if waiting is not None:
            if not wait:
                console.print(f"{campaign_id} is {_not_yet(*waiting)}: nothing was sent (--no-wait). Run "
                              f"'smsgate campaign run {campaign_id}' then, or without --no-wait to wait for it.",
                              highlight=False)
                return
            console.print(f"{campaign_id} is {_not_yet(*waiting)}: waiting until then (nothing is sent before). "
                          "Leave this running, or press Ctrl-C and run it again later; --no-wait returns at once.",
                          highlight=False)
        with on_interrupt(lambda: _run_interrupted(camp, gw.store)):
            result = run_async(_run_with_progress_bar(gw.settings, t.name, campaign_id, start, wait,
                                                        f"{campaign_id}: waiting" if waiting else None))
        failures = _failure_reasons(t, campaign_id) if result.failed else []
    console.print(f"{campaign_id}: {result.status.value}; {_counts(result)}")
    if failures:
        console.print("why they failed (most common first):", highlight=False)
        for error, n in failures:
            console.print(f"  {n} x {error}", highlight=False, markup=False)
        console.print(f"every failed message: smsgate messages --campaign {campaign_id} --status failed; "
                      f"once the cause is fixed, 'smsgate campaign retry-failed {campaign_id}' puts back those "
                      "the provider never took", highlight=False)
    unchanged = _counts(result) == _counts(start)
    if result.status is CampaignStatus.PAUSED:
        console.print(f"{campaign_id} was paused during this run: nothing more is sent until 'smsgate campaign "
                      f"resume {campaign_id}', then 'smsgate campaign run {campaign_id}'", highlight=False)
    elif result.status is CampaignStatus.CANCELLED:
        console.print(f"{campaign_id} {'is' if start.status is CampaignStatus.CANCELLED else 'was'} cancelled: "
                      f"{'nothing was sent' if unchanged else 'nothing more is sent'}; a cancelled campaign "
                      "cannot be run again (its recipients not sent are skipped): create a new one to send them",
                      highlight=False)
    elif result.status is CampaignStatus.COMPLETED and start.status is CampaignStatus.COMPLETED and unchanged:
        console.print(f"{campaign_id} was already completed: nothing was left to send",
                      highlight=False)
    if result.unknown:
        console.print(f"{result.unknown} recipient(s) have an unknown outcome (the provider may have their "
                      f"message): 'smsgate campaign run {campaign_id}' asks the provider again where it can; "
                      f"'smsgate campaign retry-unknown {campaign_id}' sends them again (some may get it twice)",
                      highlight=False)
    if result.status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
        raise typer.Exit(NO_EXIT)  # stopped before the campaign was done: not a success


def _counts(p: CampaignProgress) -> str:
    """``sent 3, failed 0, unknown 0, skipped 1, pending 2``: what ``campaign run`` prints of ``p``."""
    return f"sent {p.sent}, failed {p.failed}, unknown {p.unknown}, skipped {p.skipped}, pending {p.pending}"


#: How many of a campaign's newest failed messages ``campaign run`` reads to say why they failed.
FAILURES_READ = 1000


def _failure_reasons(t: Tenant, campaign_id: str, top: int = 3) -> list[tuple[str, int]]:
    """The commonest errors of the campaign's newest failed messages (at most
    :data:`FAILURES_READ` read), with their counts: a wrong ``base_url`` or key fails every
    message the same way, and the run's counts alone do not say so."""
    counts: dict[str, int] = {}
    for rec in t.messages(campaign_id=campaign_id, status="failed", limit=FAILURES_READ):
        error = rec.error or (f"{rec.provider}: {rec.raw_status}" if rec.raw_status else "no error given")
        counts[error] = counts.get(error, 0) + 1
    return sorted(counts.items(), key=lambda item: -item[1])[:top]


def _not_yet(reason: str, until: datetime) -> str:
    """``scheduled for 2027-06-01 09:00 UTC (in 3 days 4 hours)`` or ``in quiet hours until ...``."""
    left = max(0, int((until - datetime.now(timezone.utc)).total_seconds()))
    units = [("day", left // 86400), ("hour", left % 86400 // 3600), ("minute", left % 3600 // 60)]
    shown = [f"{n} {unit}{'s' if n != 1 else ''}" for unit, n in units if n][:2] or ["less than a minute"]
    when = until.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    what = "scheduled for" if reason == "scheduled" else "in quiet hours until"
    return f"{what} {when} (in {' '.join(shown)})"


class _PerMessage:
    """Moves the bar of a campaign run per message answered (the ``smsgate_after_send`` hook),
    between the run's own reports (per chunk of claims, read from the store, which set it right)."""

    def __init__(self, tenant: str, campaign_id: str, update: Callable[[str], None]) -> None:
        self.tenant, self.campaign_id, self.update = tenant, campaign_id, update

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: OutboundMessage, result: SendResult) -> None:
        if tenant == self.tenant and message.campaign_id == self.campaign_id:
            status = result.status.value
            self.update("unknown" if status == "unknown" else
                        "failed" if status in ("failed", "rejected", "undelivered", "expired") else "sent")


async def _run_with_progress_bar(settings: Settings, tenant: str, campaign_id: str, start: CampaignProgress,
                                 wait: bool, waiting: str | None = None) -> CampaignProgress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    async with open_async_gateway(settings) as agw:
        camp = await agw.tenant(tenant).campaigns.get(campaign_id)
        with Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
                      MofNCompleteColumn(),
                      TextColumn("sent {task.fields[sent]} failed {task.fields[failed]} "
                                 "unknown {task.fields[unknown]}", markup=False),
                      TimeRemainingColumn(), console=err_console, disable=not err_console.is_terminal) as bar:
            done = start.sent + start.failed + start.unknown
            # "cmp_...: waiting" until the first message is answered (the line above the bar says why)
            task = bar.add_task(waiting or campaign_id, total=start.to_send, completed=done, sent=start.sent,
                                failed=start.failed, unknown=start.unknown)
            # Two counts of the same messages: answers as they come (the hook) and the store's, read
            # per chunk of claims; the bar shows the larger, so neither a late answer nor a late
            # report moves it back or counts a message twice.
            hooked = {"sent": start.sent, "failed": start.failed, "unknown": start.unknown}
            stored = dict(hooked)

            def show() -> None:
                now = {k: max(hooked[k], stored[k]) for k in hooked}
                bar.update(task, description=campaign_id, completed=sum(now.values()), sent=now["sent"],
                           failed=now["failed"], unknown=now["unknown"])

            def one_more(outcome: str) -> None:
                hooked[outcome] += 1
                show()

            def update(p: CampaignProgress) -> None:
                stored.update(sent=p.sent, failed=p.failed, unknown=p.unknown)
                bar.update(task, total=p.to_send)
                show()

            per_message = _PerMessage(tenant, campaign_id, one_more)
            agw.plugins.register(per_message)
            try:
                result = await camp.run(progress=update, wait=wait)
            finally:
                agw.plugins.pm.unregister(per_message)
            total = result.sent + result.failed + result.unknown  # the store's, at the end
            bar.update(task, total=result.to_send, completed=total, sent=result.sent, failed=result.failed,
                       unknown=result.unknown)
            return result


def _run_interrupted(camp: CampaignHandle, store: Store) -> str:
    """After Ctrl-C in ``campaign run``: what was sent (read from the store now) and how to resume;
    while other runners still hold a live lease on the campaign (this one let go of its claims
    when it stopped), that they go on with it and how many recipients they hold, for nothing is
    lost and there is nothing to resume yet."""
    resume = f"run 'smsgate campaign run {camp.campaign_id}' again to resume"
    try:
        sent = f"{camp.progress().sent} sent so far"
        waiting = camp.waits_until()
        live = camp.runners()
        held = _claimed_by(store, camp, set(live)) if live else 0
    except Exception:  # the store itself was interrupted: still no traceback, still how to resume
        sent, waiting, live, held = "progress unknown", None, {}, 0
    if live:
        return (f"{sent}; this run stopped, but {len(live)} other runner(s) still work on campaign "
                f"{camp.campaign_id} ({held} recipient(s) claimed by a live runner now): nothing is lost, they go "
                f"on sending ('smsgate campaign status {camp.campaign_id}' shows how far); if they stop before "
                f"it is done, {resume}")
    if waiting is not None:
        return f"{sent}; it is {_not_yet(*waiting)}: run 'smsgate campaign run {camp.campaign_id}' again then"
    return f"{sent}; {resume}"


#: How many claimed recipients :func:`_claimed_by` reads per page.
_CLAIMS_PAGE = 1000


def _claimed_by(store: Store, camp: CampaignHandle, owners: set[str]) -> int:
    """How many of the campaign's ``sending`` recipients runners in ``owners`` hold (a runner's
    claims are a few chunks of recipients at most, read a page at a time)."""
    from smsgate.store.base import RecipientState

    held, after = 0, 0
    while True:
        page = store.recipients(camp._tenant.name, camp.campaign_id, states=[RecipientState.SENDING],
                                after_id=after, limit=_CLAIMS_PAGE)
        held += sum(1 for r in page if r.owner in owners)
        if len(page) < _CLAIMS_PAGE:
            return held
        after = page[-1].id or after


def _campaign_action(action: str, campaign_id: str, config: Path | None, tenant: str | None) -> None:
    # pause, resume and cancel write only the store: no provider secret needed (an operator
    # stopping a campaign from a machine without them must be able to)
    gw, t = open_tenant(config, tenant, several=holder("campaign", campaign_id), read_only=True)
    with gw:
        camp = t.campaigns.get(campaign_id)
        try:
            out = getattr(camp, action)()
        except ValidationError as exc:
            if exc.field != "status":
                raise
            # the campaign's status refused it: name the campaign, not a field the user never typed
            raise ValidationError(exc.reason, location=f"campaign {campaign_id}") from None
        console.print(f"{campaign_id}: {camp.row.status.value}" + (f" ({out} cancelled)" if action == "cancel" else "")
                      + (f"; run it with {how_to_run(t.name, campaign_id)}" if action == "resume" else ""),
                      highlight=False, soft_wrap=True)


@campaign_app.command("pause")
def campaign_pause(campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Pause a campaign; running dispatchers stop after their current chunk."""
    _campaign_action("pause", campaign_id, config, tenant)


@campaign_app.command("resume")
def campaign_resume(campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Allow a paused campaign to run again (then `smsgate campaign run`, or `dispatch_campaign.delay(...)`
    where Celery workers run it); one never started stays a draft."""
    _campaign_action("resume", campaign_id, config, tenant)


@campaign_app.command("cancel")
def campaign_cancel(campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Cancel a campaign: recipients not yet sent are skipped."""
    _campaign_action("cancel", campaign_id, config, tenant)


@campaign_app.command("retry-unknown")
def campaign_retry_unknown(
    campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking (some may get a second message).")]
    = False,
) -> None:
    """Put recipients whose outcome stayed unknown back to pending; they may get their message twice."""
    gw, t = open_tenant(config, tenant, several=holder("campaign", campaign_id), read_only=True)
    with gw:
        camp = t.campaigns.get(campaign_id)
        unknown = camp.progress().unknown
        if not unknown:
            camp.retry_unknown()  # puts none back; a native campaign raises Unsupported (naming the provider)
            console.print(f"{campaign_id}: no recipients with an unknown outcome; nothing to retry")
            return
        console.print(f"{campaign_id}: {unknown} recipient(s) have an unknown outcome: the provider may have "
                      "sent their message, and nothing could tell (`smsgate campaign run` already asks the "
                      "provider where it can). Retrying sends to all of them again: some may get the message "
                      "twice.")
        confirm("Put them back to pending?", yes=yes, verb="retry")
        n = camp.retry_unknown()
    console.print(f"{campaign_id}: {n} recipient(s) put back to pending; "
                  f"'smsgate campaign run {campaign_id}' sends them")


@campaign_app.command("retry-failed")
def campaign_retry_failed(
    campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None,
    reason: Annotated[list[str] | None, typer.Option(
        "--reason", help="Only recipients that failed for this reason (as 'campaign status' shows it, "
                         "e.g. AuthFailed); repeat for several.")] = None,
) -> None:
    """Put failed recipients the provider never took back to pending, once the cause is fixed.

    Only recipients whose message failed before reaching the provider, or that the
    provider refused, go back: never unknown, sent, undelivered or expired ones, so
    'smsgate campaign run' then sends each of them once.
    """
    gw, t = open_tenant(config, tenant, several=holder("campaign", campaign_id), read_only=True)
    with gw:
        camp = t.campaigns.get(campaign_id)
        progress = camp.progress()
        before = progress.failed
        have = progress.failed_by_reason
        n = camp.retry_failed(reason or None)  # a native campaign raises Unsupported (naming the provider)
        # read again: not before - n, which counted as staying failed those another retry-failed
        # put back meanwhile
        left = camp.progress().failed if before else 0
    if not before:
        console.print(f"{campaign_id}: no failed recipients; nothing to retry", highlight=False)
        return
    note = ""
    if left:
        why = "they failed for another reason, or " if reason else ""
        note = f"; {left} stay failed ({why}their message reached the provider)"
    for given in [r for r in reason or [] if r not in have]:  # a typo ('Authfailed') put nothing back
        close = closest(given, have) or next((r for r in have if r.casefold() == given.casefold()), None)
        note += (f"; none failed for {given!r}" + (f" (did you mean --reason {close}?)" if close else "")
                 + ": their reasons are " + ", ".join(f"{r} {k}" for r, k in sorted(have.items())))
    console.print(f"{campaign_id}: {n} failed recipient(s) put back to pending{note}"
                  + (f"; 'smsgate campaign run {campaign_id}' sends them" if n else ""),
                  highlight=False, soft_wrap=True)


@campaign_app.command("delete")
def campaign_delete(
    campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Delete it even while a runner holds a live lease on it (that runner sends "
                        "nothing more; requests already in flight may still be delivered).")] = False,
) -> None:
    """Delete a campaign and its recipient list (its messages stay in the log); not while a runner runs it.

    A run stopped by Ctrl-C or an error lets go at once; a killed one when its lease ends
    (lease_seconds, 30 by default). --force deletes it under a live runner.
    """
    from smsgate.campaigns.handles import deletion_refused

    gw, t = open_tenant(config, tenant, several=holder("campaign", campaign_id), read_only=True)
    with gw:
        camp = t.campaigns.get(campaign_id)
        progress = camp.progress()
        live = camp.runners()
        if live and not force:
            raise deletion_refused(campaign_id, live, force="--force",
                                   stop=f"Ctrl-C in its 'smsgate campaign run', or 'smsgate campaign pause "
                                        f"{campaign_id}'")
        note = f"; {len(live)} runner(s) still hold it and will stop (--force)" if live else ""
        console.print(f"{campaign_id}: {progress.status.value}, {progress.total} recipient(s) "
                      f"({progress.sent} sent); deleting it keeps its messages in the log{note}")
        confirm("Delete it?", yes=yes, verb="delete")
        camp.delete(force=force)
    console.print(f"{campaign_id}: deleted")


#: The states of a campaign whose pending recipients are still to be sent (``campaign status``
#: then says what holds them back: its scheduled start, its quiet hours).
_WAITING = frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.RUNNING,
                      CampaignStatus.PAUSED, CampaignStatus.INTERRUPTED})


@campaign_app.command("status")
def campaign_status(campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None,
                    as_json: JsonOpt = False) -> None:
    """Recipients per dispatch state, and how many runners are at work on it now."""
    gw, t = open_tenant(config, tenant, several=holder("campaign", campaign_id), read_only=True)
    with gw:
        camp = t.campaigns.get(campaign_id)
        p = camp.progress()
        runners = len(camp.runners())
        # a campaign with recipients still to send: what holds them back (as its preview says)
        when = camp.preview() if p.pending and p.status in _WAITING else None
    data = {"campaign_id": p.campaign_id, "status": p.status.value, "total": p.total, "pending": p.pending,
            "sending": p.sending, "sent": p.sent, "failed": p.failed, "unknown": p.unknown,
            "skipped": p.skipped, "skipped_by_reason": p.skipped_by_reason,
            "failed_by_reason": p.failed_by_reason, "runners": runners}
    if when is not None:
        data.update(when.model_dump(mode="json", include={"start_at", "quiet_hours", "quiet_zone"}))
    if as_json:
        print(json.dumps(data))
        return
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(p.skipped_by_reason.items()))
    failed = ", ".join(f"{reason} {n}" for reason, n in sorted(p.failed_by_reason.items()))
    console.print(f"{p.campaign_id} {p.status.value}: {p.total} recipients; sent {p.sent}, failed {p.failed}"
                  + (f" ({failed})" if failed else "")
                  + f", unknown {p.unknown}, pending {p.pending}, sending {p.sending}, skipped {p.skipped}"
                  + (f" ({reasons})" if reasons else "") + (f"; {runners} runner(s) at work" if runners else ""),
                  highlight=False)
    if when is not None and when.start_at is not None and when.start_at <= utcnow():
        # a start already past holds nothing back: "scheduled for <then>: nothing is sent before"
        # beside "sent 10700" read as if the campaign had not started
        when = when.model_copy(update={"start_at": None})
    for line in when.when_lines() if when is not None else ():
        console.print(line.strip(), highlight=False, soft_wrap=True)
    if p.status is CampaignStatus.INTERRUPTED:
        console.print(f"its last run stopped before it was done: run it again to resume it "
                      f"({how_to_run(t.name, campaign_id)})", highlight=False, soft_wrap=True)


@campaign_app.command("list")
def campaign_list(config: ConfigOpt = None, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """This tenant's campaigns, newest first."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        rows = t.campaigns.list()
    if as_json:
        print(json.dumps([r.as_dict() for r in rows]))
        return
    if not rows:
        nothing_to_list(f"no campaigns for tenant {t.name!r} yet: 'smsgate campaign create --name NAME "
                        "--text TEXT --csv FILE' makes one (or --list ID instead of --csv)")
        return
    table = compact_table("campaign", "name", "status", "created")
    for r in rows:
        table.add_row(r.campaign_id, r.name, r.status.value, r.created_at.isoformat(timespec="seconds"))
    console.print(table)


@campaign_app.command("stats")
def campaign_stats(campaign_id: CampaignIdArg, config: ConfigOpt = None, tenant: TenantOpt = None,
                   period: Annotated[str, typer.Option(help="hour, day or month.")] = "hour",
                   as_json: JsonOpt = False) -> None:
    """Statistics of a campaign's messages (tenant time zone)."""
    check_period(period)
    gw, t = open_tenant(config, tenant, several=holder("campaign", campaign_id), read_only=True)
    with gw:
        stats = t.campaigns.get(campaign_id).stats(period)
    print_stats(stats, as_json)
