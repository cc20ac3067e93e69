"""``smsgate send``, ``smsgate status``, ``smsgate messages`` and ``smsgate inbound``: one message,
the message log and the replies."""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from smsgate.cli._common import (
    CommandGroup,
    ConfigOpt,
    Group,
    JsonOpt,
    KindOpt,
    TenantOpt,
    app,
    checked_kind,
    compact_table,
    console,
    err_console,
    fail,
    flags_named,
    holder,
    load_settings,
    no_tenants_error,
    nothing_to_list,
    open_gateway,
    open_tenant,
    require_tenants,
    stdout_for_data,
    stored_tenant_names,
    typed_number,
)
from smsgate.cli._interrupt import on_interrupt
from smsgate.core.recover import RECOVER_AFTER, RECOVER_LIMIT
from smsgate.errors import OptedOut, SmsgateError, ValidationError
from smsgate.filters import check_number_filter, inbound_filters, parse_duration, point_in_time
from smsgate.gateway import (
    SYNC_BACKOFF,
    SYNC_FAILED_LOG,
    SYNC_LIMIT,
    SYNC_MAX_AGE,
    SYNC_MAX_BACKOFF,
    SYNC_OLDER_THAN,
)
from smsgate.models import Status, SyncSummary

if TYPE_CHECKING:
    from smsgate.gateway import Tenant

__all__ = ["CSV_COLUMNS", "OutputFormat", "inbound", "messages", "parse_duration", "recover", "send", "status", "status_app", "sync"]


@app.command()
def send(
    to: Annotated[str, typer.Argument(help="Recipient number (E.164 or national).")],
    text: Annotated[str, typer.Argument(help="Message text.")],
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    sender: Annotated[str | None, typer.Option(help="Sender ID.")] = None,
    provider: Annotated[str | None, typer.Option(help="Force one provider instance.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Never send this key twice.")] = None,
    kind: KindOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send one message."""
    kind = checked_kind(kind)
    gw, t = open_tenant(config, tenant)
    with gw:
        # a key bound before this send: its answer is the first message's, and nothing is sent
        # (read only, to say so; the send itself decides, atomically)
        bound = None
        if idempotency_key is not None:
            from smsgate.core.policy import check_idempotency_key

            try:  # a blank, NUL or reserved ('smsgate:') key: send's ValidationError, naming the flag
                check_idempotency_key(idempotency_key)
            except ValidationError as exc:
                raise ValidationError(exc.reason, field="--idempotency-key") from None
            bound = gw.store.bound_keys(t.name, [idempotency_key]).get(idempotency_key)
        try:
            with typed_number(to, "to"), flags_named({"sender": "--sender", "provider": "--provider"}):
                result = t.send(to, text, sender=sender, provider=provider, idempotency_key=idempotency_key,
                                kind=kind)
        except ValidationError as exc:
            if exc.field != "text" or exc.location:
                raise
            # named as --help shows it (the value, a message body, is not kept)
            raise ValidationError(exc.reason, location="argument 'text'") from None
        except OptedOut as exc:  # the way back, for when the recipient asked for it
            scope = f" --scope {shlex.quote(exc.sender)}" if exc.sender else ""
            fail(SmsgateError(f"{exc}; 'smsgate optout remove {exc.phone}{scope}' opts the number back in "
                              "(only if its owner asked to be texted again)"))
    if as_json:
        print(result.model_dump_json())
    else:
        pid = ("no provider id: the vendor gives none" if result.provider_message_id is None
               else f"provider id {result.provider_message_id}")
        via = f"via {result.provider} ({pid})" if result.provider else "not sent to any provider"
        console.print(f"{result.message_id} {result.status.value} {via}")
        if bound is not None and bound == result.message_id:
            console.print(f"idempotency key {idempotency_key!r} was already used by {result.message_id} (to "
                          f"{result.to}): nothing was sent; this is that message's result (use a new key to "
                          "send again)")


class _ShowByDefault(Group):
    """``smsgate status`` is a group whose default command is ``show``: ``smsgate status ID``
    runs ``smsgate status show ID``; ``smsgate status sync`` runs the status poller.
    (A message id is never ``show`` or ``sync``: generated ids have a prefix.)"""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: typer's own click Context
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["show", *args]
        return super().parse_args(ctx, args)


status_app = CommandGroup(cls=_ShowByDefault, no_args_is_help=True,
                          help="A message's status (smsgate status ID), sync in-flight statuses "
                               "from the providers (smsgate status sync), or recover what a crashed "
                               "process left queued (smsgate status recover).")
app.add_typer(status_app, name="status")

def _shown(seconds: float) -> str:
    """A default duration as the option reads it: ``300.0`` -> ``"5m"``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _duration_option(value: str | float) -> float:
    if isinstance(value, (int, float)):  # a default
        return float(value)
    try:  # (past the library's bound too: it said "purge, field 'older_than': ... not 8639999913600.0")
        return parse_duration(value, bounded=True)
    except ValidationError as exc:  # click names the flag: not the library's field ('duration')
        raise typer.BadParameter(exc.reason) from None


@status_app.command("show")
def status(
    message_id: Annotated[str, typer.Argument(help="The message's id (msg_...), as 'smsgate send' and "
                                                  "'smsgate messages' print it.", show_default=False)],
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    refresh: Annotated[bool, typer.Option(help="Ask the provider for news.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Show a message's status and history (smsgate status ID for short)."""
    from smsgate.core.policy import check_id

    # a blank id (an unset shell variable) is the argument's error (tenant.status's rule), named
    # as a missing one is, before the store is opened; not "no message ''"
    try:
        check_id("message_id", message_id, blank="the message's id (msg_...), as 'smsgate send' and 'smsgate "
                                                 "messages' print it")
    except ValidationError as exc:
        raise ValidationError(exc.reason, location="argument 'message_id'") from None
    # a final message needs no provider
    gw, t = open_tenant(config, tenant, read_only=True, several=holder("message", message_id))
    with gw:
        record = t.status(message_id, refresh=refresh)
        note = _not_asked(t, record) if refresh and not as_json else None
    if as_json:
        print(record.model_dump_json())
        return
    raw = f" (raw {record.raw_status})" if record.raw_status else ""
    via = f"via {record.provider}" if record.provider else "not sent to any provider"
    console.print(Text.assemble(f"{record.message_id} to {record.to}: ", (record.status.value, "bold"),
                                f"{raw} {via}"))
    table = compact_table("at", "status", "raw", "source", "detail")
    for e in record.history:
        table.add_row(e.at.isoformat(timespec="seconds"), e.status.value, e.raw_status or "",
                      e.source, e.detail or "")
    console.print(table)
    if note:
        console.print(note, highlight=False)


def _not_asked(t: Any, record: Any) -> str | None:
    """Why ``status`` could not ask the provider of ``record`` (not final) for news, and what
    moves its status instead; ``None`` when it was asked (or is final, or went nowhere)."""
    name = record.provider
    if record.status.is_final or name is None:
        return None
    if name not in t.config.providers:
        return f"not refreshed: provider instance {name!r} is no longer configured; shown as logged"
    try:
        caps = t.provider(name).capabilities
    except SmsgateError:  # e.g. a credential's variable unset: status needed none
        return None
    if caps.status_lookup and not record.provider_message_id:
        return f"not refreshed: {name} gave no message id for it, so it cannot be asked about it"
    if caps.status_lookup:
        return None
    if caps.delivery_reports:
        return (f"not refreshed: {name} cannot be asked for a message's status; it changes when {name}'s "
                "delivery report reaches the webhook app (smsgate serve, docs/webhooks.md)")
    return (f"not refreshed: {name} cannot be asked for a message's status and sends no delivery reports: "
            f"it stays {record.status.value!r}")


@status_app.command("sync")
def sync(
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    older_than: Annotated[float, typer.Option(
        "--older-than", parser=_duration_option, metavar="DURATION", show_default=_shown(SYNC_OLDER_THAN),
        help="Look up messages logged at least this long ago (30s, 5m, 2h...).")] = SYNC_OLDER_THAN,
    limit: Annotated[int, typer.Option(min=1, help="Lookups at most, this run.")] = SYNC_LIMIT,
    backoff: Annotated[float, typer.Option(
        "--backoff", parser=_duration_option, metavar="DURATION", show_default=_shown(SYNC_BACKOFF),
        help="Wait after a message's first lookup (doubling after each, up to --max-backoff).")] = SYNC_BACKOFF,
    max_backoff: Annotated[float, typer.Option(
        "--max-backoff", parser=_duration_option, metavar="DURATION", show_default=_shown(SYNC_MAX_BACKOFF),
        help="Longest wait between two lookups of one message.")] = SYNC_MAX_BACKOFF,
    max_age: Annotated[float, typer.Option(
        "--max-age", parser=_duration_option, metavar="DURATION", show_default=_shown(SYNC_MAX_AGE),
        help="Leave alone messages logged longer ago.")] = SYNC_MAX_AGE,
    provider: Annotated[list[str] | None, typer.Option(
        "--provider", help="Only this provider instance (repeatable).")] = None,
    recover_after: Annotated[float, typer.Option(
        "--recover-after", parser=_duration_option, metavar="DURATION", show_default=_shown(RECOVER_AFTER),
        help="First mark unknown the messages a crashed process left queued this long ago.")] = RECOVER_AFTER,
    no_recover: Annotated[bool, typer.Option("--no-recover", help="Do not recover queued messages.")] = False,
    all_tenants: Annotated[bool, typer.Option(
        "--all-tenants", help="Every tenant: the configuration's and the stored ones (JSON: one summary "
                              "per tenant). A tenant that fails is reported and the others are still polled.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """One tick of the status poller: look up in-flight messages, resolve unknown ones (cron it; docs/webhooks.md).

    Each status found is saved as it comes: after Ctrl-C, running it again looks up the rest.
    """
    options: dict[str, Any] = dict(older_than=older_than, limit=limit, backoff=backoff, max_backoff=max_backoff,
                                   max_age=max_age, instances=provider or None,
                                   recover_after=None if no_recover else recover_after)
    hint = "the statuses already looked up are saved; run 'smsgate status sync' again to look up the rest"
    if all_tenants:
        _sync_every_tenant(config, tenant, provider, options, hint, as_json)
        return
    gw, t = open_tenant(config, tenant, several=SEVERAL_HINT)
    with gw, on_interrupt(hint):
        summary = t.sync_statuses(**options)
    if as_json:
        print(summary.model_dump_json())
        return
    console.print(_sync_line(summary))


#: What ``status sync`` adds to "--tenant is required" when there are several tenants.
SEVERAL_HINT = "or --all-tenants to poll every one"


def _sync_line(summary: SyncSummary, prefix: str = "") -> str:
    line = ""
    if summary.recovered:
        line = f"{summary.recovered} queued messages left by a process that ended marked unknown\n{prefix}"
    return prefix + line + (
        f"looked up {summary.looked_up}: {summary.changed} changed ({summary.found} unknown found, "
        f"{summary.not_received} never received: failed), {summary.unchanged} unchanged, "
        f"{summary.errors} errors; {summary.not_due} not due yet, {summary.unsupported} "
        "without a lookup" + (f"; skipped: {_skipped(summary)}" if summary.skipped_instances else "")
        + ("; more are due: run again" if summary.more else ""))


def _skipped(summary: SyncSummary) -> str:
    """The instances a tick skipped, each with why."""
    def why(name: str) -> str:
        n = summary.unconfigured.get(name)
        return "breaker open" if n is None else f"not configured: {n} message{'s' if n != 1 else ''}"
    return ", ".join(f"{name} ({why(name)})" for name in summary.skipped_instances)


@contextmanager
def _told_here(logger: logging.Logger) -> Iterator[None]:
    """Leave out the gateway's log line for a tenant a tick could not poll when it has no
    traceback: the command prints that tenant's error itself (the line with a traceback, for an
    unexpected error, is kept: the summary says "see the log")."""
    def keep(record: logging.LogRecord) -> bool:
        return record.msg != SYNC_FAILED_LOG or record.exc_info is not None

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _sync_every_tenant(config: Path | None, tenant: str | None, provider: list[str] | None,
                       options: dict[str, Any], hint: str, as_json: bool) -> None:
    """``status sync --all-tenants``: :meth:`Gateway.sync_statuses <smsgate.Gateway.sync_statuses>`
    (one tick for each tenant, the configuration's then the stored ones; its rule says which
    failures are reported and which raised), then a line per tenant; a tenant that failed
    (its key, its configuration, its store, a bug) is reported on stderr with the gateway's
    reason (exit 2 at the end if any failed)."""
    if tenant is not None:
        raise ValidationError("--all-tenants and --tenant exclude each other", field="tenant")
    if provider:
        raise ValidationError("--provider names an instance of one tenant: give --tenant with it, "
                              "not --all-tenants", field="provider")
    settings = load_settings(config)
    require_tenants(settings, config)
    with open_gateway(settings) as gw, on_interrupt(hint), _told_here(logging.getLogger("smsgate.gateway")):
        if not gw.settings.tenants and not stored_tenant_names(gw):
            raise no_tenants_error(config)
        summaries = gw.sync_statuses(**options)
    failed = [name for name, summary in summaries.items() if summary.error is not None]
    if as_json:
        print(json.dumps({name: summary.model_dump(mode="json") for name, summary in summaries.items()}))
    for name, summary in summaries.items():
        if summary.error is not None:
            err_console.print(f"error: tenant {name}: {summary.error}", soft_wrap=True, highlight=False)
        elif not as_json:
            console.print(_sync_line(summary, f"{name}: "), highlight=False, soft_wrap=True)
    if failed:
        fail(SmsgateError(f"{len(failed)} of {len(summaries)} tenant(s) could not be polled: {', '.join(failed)}"))


@status_app.command("recover")
def recover(
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    older_than: Annotated[float, typer.Option(
        "--older-than", parser=_duration_option, metavar="DURATION", show_default=_shown(RECOVER_AFTER),
        help="Only messages queued at least this long (30s, 10m, 2h...).")] = RECOVER_AFTER,
    limit: Annotated[int, typer.Option(min=1, help="Messages at most, this run.")] = RECOVER_LIMIT,
    as_json: JsonOpt = False,
) -> None:
    """Mark unknown the messages a crashed process left queued (then 'smsgate status sync' resolves them).

    Only messages no live process can still send: see docs/webhooks.md.
    """
    gw, t = open_tenant(config, tenant)
    with gw:
        ids = t.recover_queued(older_than=older_than, limit=limit)
    if as_json:
        print(json.dumps({"recovered": ids}))
        return
    console.print(f"{len(ids)} queued messages left by a process that ended marked unknown"
                  + ("; run 'smsgate status sync' to resolve them" if ids else "")
                  + ("; more may be left: run again" if len(ids) >= limit else ""))


class OutputFormat(str, Enum):
    """``smsgate messages --format``: how the log is printed."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


#: The columns of ``smsgate messages --format csv``, in order: every field of a logged message
#: but its tenant (the one asked for) and its history (``smsgate status ID``). The log keeps no
#: message text (nor does the export).
CSV_COLUMNS = ("message_id", "to", "status", "raw_status", "error", "provider", "provider_message_id",
               "batch_id", "sender", "reference", "campaign_id", "segments", "cost", "currency",
               "created_at", "submitted_at", "delivered_at", "updated_at")
#: The columns others wrote (a vendor's status, error and ids; a sender; a reference): a cell that
#: a spreadsheet would read as a formula gets a leading ``'`` (as ``contacts export`` writes them).
_FOREIGN = frozenset({"raw_status", "error", "provider_message_id", "batch_id", "sender", "reference"})
#: Messages read from the store at a time by ``--format csv``: a campaign of any size is written
#: as it is read, never held whole.
CSV_PAGE = 1000
#: ``--limit``'s default for a table and JSON (``--format csv``: every message that matches).
DEFAULT_LIMIT = 20


@app.command()
def messages(
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    limit: Annotated[int | None, typer.Option(
        min=1, show_default=False,
        help=f"How many (default: {DEFAULT_LIMIT}; with --format csv, every message that matches).")] = None,
    status: Annotated[Status | None, typer.Option(help="Only messages in this status.")] = None,
    to: Annotated[str | None, typer.Option(help="Only messages to this number (read with the tenant's region).")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign's messages.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only messages logged in this last while (30s, 5m, 2h, 1d).")] = None,
    output_format: Annotated[OutputFormat | None, typer.Option(
        "--format", show_default=False,
        help="table (default), json (as --json) or csv: a header, then one row per message (number, status, "
             "vendor's status and error, provider and its id, cost, timestamps...; the log keeps no texts), "
             "written as the store is read, for a campaign of any size.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the message log, newest first (filters: --status, --to, --campaign, --since).

    --format csv exports it: 'smsgate messages --campaign ID --format csv > results.csv'.
    """
    fmt = _output_format(output_format, as_json)
    # its error names the flag, not the library's field ("messages, field 'since'"); too long a
    # while ago too (99999999d); read once: a CSV's pages all have the same bound
    since_at = point_in_time(since, "--since")
    check_number_filter(to, "--to")
    gw, t = open_tenant(config, tenant, read_only=True)
    filters: dict[str, Any] = dict(status=status, to=to, campaign_id=campaign, since=since_at)
    with gw, typed_number(to, "--to"), flags_named({"campaign_id": "--campaign"}):
        if fmt is OutputFormat.CSV:
            _write_csv(t, filters, limit, campaign)
            return
        records = t.messages(limit=limit or DEFAULT_LIMIT, **filters)
        if not records and campaign is not None:
            _campaign_known(t, campaign)
    if fmt is OutputFormat.JSON:
        # The log is listed without histories (`smsgate status ID` shows one): no empty "history" lists.
        print(json.dumps([json.loads(r.model_dump_json(exclude={"history"})) for r in records]))
        return
    if not records:
        given = [name for name, value in (("--status", status), ("--to", to), ("--campaign", campaign),
                                          ("--since", since)) if value is not None]
        nothing_to_list(f"no messages match {', '.join(given)}: 'smsgate messages' without them lists the log" if given
                 else f"no messages logged for tenant {t.name!r} yet: 'smsgate send NUMBER TEXT' sends one")
        return
    console.print(_log_table(records, console.width))


def _output_format(output_format: OutputFormat | None, as_json: bool) -> OutputFormat:
    """``--format``, with ``--json`` its short form; both, naming different formats, are an error."""
    if as_json and output_format not in (None, OutputFormat.JSON):
        raise ValidationError(f"--json and --format {output_format.value} ask for different formats: give one of "
                              "them", field="--format")
    return OutputFormat.JSON if as_json else output_format or OutputFormat.TABLE


def _write_csv(t: Tenant, filters: dict[str, Any], limit: int | None, campaign: str | None) -> None:
    """``messages --format csv``: the header, then the log's matching messages (newest first, at
    most ``limit``), read :data:`CSV_PAGE` at a time and written as read. Only the header when
    none match; a ``campaign`` id that names no campaign and has no message is an error (before
    anything is written)."""
    import csv

    from smsgate.campaigns.audiences import spreadsheet_quote

    out = stdout_for_data()
    writer = csv.writer(out)
    before: str | None = None
    written = 0
    while limit is None or written < limit:
        page = t.messages(limit=CSV_PAGE if limit is None else min(CSV_PAGE, limit - written), before=before,
                          **filters)
        if not page and not written and campaign is not None:
            _campaign_known(t, campaign)
        if not written:
            writer.writerow(CSV_COLUMNS)
        for record in page:
            writer.writerow([_csv_cell(getattr(record, column), column in _FOREIGN, spreadsheet_quote)
                             for column in CSV_COLUMNS])
        written += len(page)
        out.flush()
        if len(page) < CSV_PAGE:  # the last page (or a limit's: it asked for no more)
            break
        before = page[-1].message_id


def _csv_cell(value: Any, foreign: bool, quote: Any) -> str:
    """One cell of ``messages --format csv``: empty for nothing, a timestamp in ISO 8601 (UTC),
    a status by its value; what others wrote (``foreign``) through ``quote``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    return quote(str(value)) if foreign else str(value)


def _campaign_known(t: Tenant, campaign: str) -> None:
    """A ``NotFound`` naming ``--campaign`` when no campaign has that id (a typo, another tenant's):
    an export by ``--campaign ... --json`` must not print ``[]`` as if it had sent nothing. A
    deleted campaign's messages stay in the log and are listed: they never get here."""
    from smsgate.errors import NotFound

    try:
        t.campaigns.get(campaign)
    except NotFound:
        raise NotFound(f"field '--campaign': tenant {t.name!r} has no campaign {campaign!r} and no message logged "
                       "for one of that id ('smsgate campaign list' lists the campaigns)") from None


@app.command()
def inbound(
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    from_number: Annotated[str | None, typer.Option("--from", help="Only messages from this number.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many.")] = 20,
    before: Annotated[int | None, typer.Option(help="Only messages with a smaller id (paging).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only replies received in this last while (30s, 5m, 2h, 1d).")] = None,
    action: Annotated[str | None, typer.Option(
        help="Only replies whose keyword did this (optout, optin, help, none).")] = None,
    poll: Annotated[str | None, typer.Option(
        "--poll", metavar="INSTANCE", help="First read the replies provider INSTANCE lists (a vendor with no "
                                           "inbound webhook, e.g. Colony): stored and acted on once each.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List inbound messages (replies), newest first, with the keyword action each caused."""
    check_number_filter(from_number, "--from")
    if since is not None:  # its error names the flag, not the library's field ("inbound, field 'since'")
        point_in_time(since, "--since")  # too long a while ago too (99999999d)
    try:
        inbound_filters(None, action)
    except ValidationError as exc:  # named as the flag
        raise typer.BadParameter(exc.reason, param_hint="--action") from None
    # listing reads the store only: no provider secret is needed unless --poll calls the provider
    gw, t = open_tenant(config, tenant, read_only=poll is None)
    with gw:
        if poll is not None:
            listed = t.poll_inbound(poll)
            err_console.print(f"{poll}: {len(listed)} {'reply' if len(listed) == 1 else 'replies'} listed "
                              "(each stored and acted on once)",
                              soft_wrap=True, markup=False)
        # (a short code or sender ID is a filter too: an unreadable number matches nothing, said below)
        items = t.inbound(from_number=from_number, limit=limit, before=before, since=since, action=action)
    if as_json:
        print(json.dumps([json.loads(m.model_dump_json(exclude={"raw"})) for m in items]))
        return
    if not items:
        given = [name for name, value in (("--from", from_number), ("--before", before), ("--since", since),
                                          ("--action", action)) if value is not None]
        nothing_to_list(f"no inbound messages match {', '.join(given)}: 'smsgate inbound' without "
                 f"{'it' if len(given) == 1 else 'them'} lists them all" if given
                 else f"no inbound messages (replies) stored for tenant {t.name!r}: they come in through the "
                      "webhook app ('smsgate serve', docs/inbound.md) or with --poll INSTANCE")
        return
    table = compact_table("id", "from", "provider", "received", "action")
    table.add_column("text", overflow="fold")
    for m in items:
        table.add_row(str(m.id), m.from_number, m.provider, m.received_at.isoformat(timespec="seconds"),
                      m.action or "", m.text[:80])
    console.print(table)


def _log_table(records: list[Any], width: int) -> Table:
    """The log as a table: ids and numbers whole (to copy them); the vendor's status,
    segments, cost and a column of its own for the error where the terminal has room
    (120 columns), else the error after the provider's name."""
    wide = width >= 120
    table = compact_table("message")
    table.add_column("to", no_wrap=True)
    table.add_column("status", no_wrap=True)
    if wide:
        for name in ("raw", "provider"):
            table.add_column(name, overflow="fold")
        table.add_column("segments", justify="right")
        table.add_column("cost", no_wrap=True)
        table.add_column("error", overflow="fold")
    else:
        table.add_column("provider (error)", overflow="fold")
    for r in records:
        error = r.error or ""  # whole: folded on a terminal, one line when piped
        if wide:
            cost = f"{r.cost} {r.currency or ''}" if r.cost is not None else ""
            table.add_row(r.message_id, r.to, r.status.value, r.raw_status or "", r.provider or "",
                          str(r.segments or ""), cost, error)
        else:
            via = " ".join(part for part in (r.provider or "", f"({error})" if error else "") if part)
            table.add_row(r.message_id, r.to, r.status.value, via)
    return table
