"""The ``smsgate`` command line.

Configuration comes from ``--config``, else ``$SMSGATE_CONFIG``, else
``./smsgate.toml``. Every command that acts for a tenant takes ``--tenant``
(default: the only tenant, if there is one).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from smsgate.config import Settings, load_config
from smsgate.errors import SmsgateError
from smsgate.gateway import Gateway, Tenant
from smsgate.plugins import default_plugins

__all__ = ["app", "main"]

app = typer.Typer(help="smsgate: one API for SMS across many providers.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
optout_app = typer.Typer(help="Manage a tenant's opt-out registry.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Store maintenance.", no_args_is_help=True)
campaign_app = typer.Typer(help="Create, preview and run campaigns.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
app.add_typer(optout_app, name="optout")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to smsgate.toml.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

EMULATOR_GROUP = "smsgate.emulators"


def _settings(config: Path | None) -> Settings:
    if config is None and not os.environ.get("SMSGATE_CONFIG") and Path("smsgate.toml").exists():
        config = Path("smsgate.toml")
    return load_config(config)


def _tenant_name(settings: Settings, tenant: str | None) -> str:
    if tenant:
        return tenant
    if len(settings.tenants) == 1:
        return next(iter(settings.tenants))
    raise SmsgateError(
        f"--tenant is required (configured tenants: {', '.join(sorted(settings.tenants)) or 'none'})"
    )


def _open(config: Path | None, tenant: str | None) -> tuple[Gateway, Tenant]:
    settings = _settings(config)
    gw = Gateway(settings)
    return gw, gw.tenant(_tenant_name(settings, tenant))


def _fail(exc: Exception) -> None:
    err_console.print(Text.assemble(("error:", "red"), " ", str(exc)), soft_wrap=True)  # never read as markup
    raise typer.Exit(1)


@app.command()
def send(
    to: Annotated[str, typer.Argument(help="Recipient number (E.164 or national).")],
    text: Annotated[str, typer.Argument(help="Message text.")],
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    sender: Annotated[str | None, typer.Option(help="Sender ID.")] = None,
    provider: Annotated[str | None, typer.Option(help="Force one provider instance.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Never send this key twice.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send one message."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            result = t.send(to, text, sender=sender, provider=provider, idempotency_key=idempotency_key)
    except SmsgateError as exc:
        _fail(exc)
        return
    if as_json:
        print(result.model_dump_json())
    else:
        console.print(f"{result.message_id} {result.status.value} via {result.provider} "
                      f"(provider id {result.provider_message_id})")


@app.command()
def status(
    message_id: str,
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    refresh: Annotated[bool, typer.Option(help="Ask the provider for news.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Show a message's status and history."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            record = t.status(message_id, refresh=refresh)
    except SmsgateError as exc:
        _fail(exc)
        return
    if as_json:
        print(record.model_dump_json())
        return
    console.print(f"{record.message_id} to {record.to}: [bold]{record.status.value}[/bold] "
                  f"(raw {record.raw_status}) via {record.provider}")
    table = _table("at", "status", "raw", "source", "detail")
    for e in record.history:
        table.add_row(e.at.isoformat(timespec="seconds"), e.status.value, e.raw_status or "",
                      e.source, e.detail or "")
    console.print(table)


@app.command()
def messages(
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List the message log, newest first."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            records = t.messages(limit=limit)
    except SmsgateError as exc:
        _fail(exc)
        return
    if as_json:
        # The log is listed without histories (`smsgate status ID` shows one): no empty "history" lists.
        print(json.dumps([json.loads(r.model_dump_json(exclude={"history"})) for r in records]))
        return
    console.print(_log_table(records, console.width))


def _table(*names: str, title: str | None = None) -> Table:
    """A compact table (a rule under the header, one space between columns) whose first
    column (an id, a number, a period) is never wrapped or cut."""
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, padding=(0, 1),
                  show_edge=False, title=title)
    for i, name in enumerate(names):
        table.add_column(name, no_wrap=i == 0)
    return table


def _log_table(records: list[Any], width: int) -> Table:
    """The log as a table: ids and numbers whole (to copy them); the vendor's status,
    segments, cost and a column of its own for the error where the terminal has room
    (120 columns), else the error after the provider's name."""
    wide = width >= 120
    table = _table("message")
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
        error = (r.error or "")[:60]
        if wide:
            cost = f"{r.cost} {r.currency or ''}" if r.cost is not None else ""
            table.add_row(r.message_id, r.to, r.status.value, r.raw_status or "", r.provider or "",
                          str(r.segments or ""), cost, error)
        else:
            via = " ".join(part for part in (r.provider or "", f"({error})" if error else "") if part)
            table.add_row(r.message_id, r.to, r.status.value, via)
    return table


@optout_app.command("add")
def optout_add(phone: str, config: ConfigOpt = None, tenant: TenantOpt = None,
               reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Opt a number out."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            new = t.optouts.add(phone, reason=reason)
            console.print(f"{t.normalize(phone)} {'opted out' if new else 'was already opted out'}")
    except SmsgateError as exc:
        _fail(exc)


@optout_app.command("remove")
def optout_remove(phone: str, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Opt a number back in."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            found = t.optouts.remove(phone)
            console.print(f"{t.normalize(phone)} {'removed' if found else 'was not opted out'}")
    except SmsgateError as exc:
        _fail(exc)


@optout_app.command("check")
def optout_check(phone: str, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Exit 0 if the number is opted out, 1 if not."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            opted = t.optouts.check(phone)
    except SmsgateError as exc:
        _fail(exc)
        return
    console.print("opted out" if opted else "not opted out")
    raise typer.Exit(0 if opted else 1)


@optout_app.command("list")
def optout_list(config: ConfigOpt = None, tenant: TenantOpt = None, as_json: JsonOpt = False,
                limit: Annotated[int | None, typer.Option()] = None) -> None:
    """List opted-out numbers."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            items = t.optouts.list(limit=limit)
    except SmsgateError as exc:
        _fail(exc)
        return
    if as_json:
        print(json.dumps([json.loads(o.model_dump_json()) for o in items]))
        return
    table = _table("phone", "reason", "source", "since")
    for o in items:
        table.add_row(o.phone, o.reason or "", o.source, o.created_at.isoformat(timespec="seconds"))
    console.print(table)


@optout_app.command("sync")
def optout_sync(config: ConfigOpt = None, tenant: TenantOpt = None,
                provider: Annotated[str | None, typer.Option()] = None) -> None:
    """Pull opt-outs recorded at the vendors into the registry."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            added = t.optouts.sync(provider)
    except SmsgateError as exc:
        _fail(exc)
        return
    console.print(f"{added} new opt-outs imported")


@app.command()
def providers(as_json: JsonOpt = False) -> None:
    """List installed provider plugins and their capabilities."""
    found = default_plugins().providers()
    if as_json:
        print(json.dumps({n: c.capabilities.as_dict() for n, c in sorted(found.items())}))
        return
    if not found:
        console.print("no provider plugins installed (pip install smsgate-squad, ...)")
        return
    # one row per capability, one column per provider: stays readable in an 80-column terminal
    names = sorted(found)
    caps = {name: found[name].capabilities.as_dict() for name in names}
    table = Table("capability", *names)
    for flag in caps[names[0]]:
        table.add_row(flag, *["yes" if v is True else "-" if v is False else str(v)
                              for v in (caps[name][flag] for name in names)])
    console.print(table)


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration and instantiate every provider."""
    try:
        settings = _settings(config)
        with Gateway(settings) as gw:
            lines = gw.check()
    except SmsgateError as exc:
        _fail(exc)
        return
    console.print(f"store: {_shown_url(settings.store)}", highlight=False)
    for line in lines:
        console.print(f"ok  {line}")
    console.print(f"[green]{len(settings.tenants)} tenant(s), {len(lines)} provider instance(s) OK[/green]")


def _shown_url(url: str) -> str:
    """A store URL with its password (and anything that looks like a credential) replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    from smsgate.errors import redact

    try:
        parts = urlsplit(url)
        if parts.password:  # rebuilt only then: urlunsplit would turn sqlite:///x into sqlite:/x
            host = parts.netloc.rsplit("@", 1)[1]
            url = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return url.split("://")[0] + "://..."
    return redact(url)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None,
               url: Annotated[str | None, typer.Option(help="Store URL (overrides config).")] = None) -> None:
    """Create or upgrade the store schema."""
    from smsgate.store import open_store

    try:
        store = open_store(url or _settings(config).store)
    except SmsgateError as exc:
        _fail(exc)
        return
    console.print(f"schema version {store.schema_version()}")
    store.close()


@campaign_app.command("create")
def campaign_create(
    name: Annotated[str, typer.Option(help="Campaign name.")],
    csv_path: Annotated[Path, typer.Option("--csv", help="Audience CSV file.")],
    text: Annotated[str, typer.Option(help="Message text; {column} placeholders are filled per row.")],
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    phone_column: Annotated[str, typer.Option("--phone-column", help="CSV column with numbers.")] = "phone",
    sender: Annotated[str | None, typer.Option(help="Sender ID.")] = None,
    provider: Annotated[str | None, typer.Option(help="Send through this provider instance only.")] = None,
    mode: Annotated[str, typer.Option(help="auto, fanout or native.")] = "auto",
    start_at: Annotated[datetime | None, typer.Option(help="Scheduled start (ISO, UTC if no offset).")] = None,
) -> None:
    """Create a campaign from a CSV file and show its preview (nothing is sent)."""
    from smsgate.campaigns import CsvAudience

    try:
        gw, t = _open(config, tenant)
        with gw:
            when = start_at.replace(tzinfo=timezone.utc) if start_at and start_at.tzinfo is None else start_at
            camp = t.campaigns.create(name, text=text, audience=CsvAudience(csv_path, phone=phone_column),
                                      sender=sender, provider=provider, mode=mode,  # type: ignore[arg-type]
                                      start_at=when)
            _print_preview(camp.preview())
    except SmsgateError as exc:
        _fail(exc)


def _print_preview(preview: Any, errors: int = 10) -> None:
    console.print(str(preview))
    if preview.errors:
        table = _table("where", "phone", "reason", "detail", title=f"skipped rows (first {errors})")
        for e in preview.errors[:errors]:
            table.add_row(e.location, e.phone, e.reason, e.detail)
        console.print(table)


@campaign_app.command("preview")
def campaign_preview(campaign_id: str, config: ConfigOpt = None, tenant: TenantOpt = None,
                     errors: Annotated[int, typer.Option(help="How many skipped rows to list.")] = 10,
                     as_json: JsonOpt = False) -> None:
    """Counts, skipped-by-reason, segments, cost and sample messages, without sending."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            preview = t.campaigns.get(campaign_id).preview()
    except SmsgateError as exc:
        _fail(exc)
        return
    if as_json:
        print(preview.model_dump_json())
    else:
        _print_preview(preview, errors)


@campaign_app.command("run")
def campaign_run(campaign_id: str, config: ConfigOpt = None, tenant: TenantOpt = None,
                 wait: Annotated[bool, typer.Option(help="Wait for start time / quiet hours.")] = True) -> None:
    """Send (or resume) a campaign with a progress bar; safe to re-run after a crash."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    try:
        gw, t = _open(config, tenant)
        with gw:
            camp = t.campaigns.get(campaign_id)
            start = camp.progress()
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("sent {task.fields[sent]} failed {task.fields[failed]} "
                                     "unknown {task.fields[unknown]}"),
                          TimeRemainingColumn(), console=console) as bar:
                task = bar.add_task(campaign_id, total=start.to_send, sent=start.sent, failed=start.failed,
                                    unknown=start.unknown)

                def update(p: Any) -> None:
                    bar.update(task, total=p.to_send, completed=p.sent + p.failed + p.unknown,
                               sent=p.sent, failed=p.failed, unknown=p.unknown)

                result = camp.run(progress=update, wait=wait)
    except SmsgateError as exc:
        _fail(exc)
        return
    console.print(f"{campaign_id}: {result.status.value}; sent {result.sent}, failed {result.failed}, "
                  f"unknown {result.unknown}, skipped {result.skipped}, pending {result.pending}")


def _campaign_action(action: str, campaign_id: str, config: Path | None, tenant: str | None) -> None:
    try:
        gw, t = _open(config, tenant)
        with gw:
            camp = t.campaigns.get(campaign_id)
            out = getattr(camp, action)()
            console.print(f"{campaign_id}: {camp.row.status.value}" + (f" ({out} cancelled)" if action == "cancel" else ""))
    except SmsgateError as exc:
        _fail(exc)


@campaign_app.command("pause")
def campaign_pause(campaign_id: str, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Pause a campaign; running dispatchers stop after their current chunk."""
    _campaign_action("pause", campaign_id, config, tenant)


@campaign_app.command("resume")
def campaign_resume(campaign_id: str, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Allow a paused campaign to run again (then `smsgate campaign run`)."""
    _campaign_action("resume", campaign_id, config, tenant)


@campaign_app.command("cancel")
def campaign_cancel(campaign_id: str, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Cancel a campaign: recipients not yet sent are skipped."""
    _campaign_action("cancel", campaign_id, config, tenant)


@campaign_app.command("status")
def campaign_status(campaign_id: str, config: ConfigOpt = None, tenant: TenantOpt = None,
                    as_json: JsonOpt = False) -> None:
    """Recipients per dispatch state."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            p = t.campaigns.get(campaign_id).progress()
    except SmsgateError as exc:
        _fail(exc)
        return
    data = {"campaign_id": p.campaign_id, "status": p.status.value, "total": p.total, "pending": p.pending,
            "sending": p.sending, "sent": p.sent, "failed": p.failed, "unknown": p.unknown,
            "skipped": p.skipped, "skipped_by_reason": p.skipped_by_reason}
    if as_json:
        print(json.dumps(data))
        return
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(p.skipped_by_reason.items()))
    console.print(f"{p.campaign_id} {p.status.value}: {p.total} recipients; sent {p.sent}, failed {p.failed}, "
                  f"unknown {p.unknown}, pending {p.pending}, sending {p.sending}, skipped {p.skipped}"
                  + (f" ({reasons})" if reasons else ""), highlight=False)


@campaign_app.command("list")
def campaign_list(config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """This tenant's campaigns, newest first."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            rows = t.campaigns.list()
    except SmsgateError as exc:
        _fail(exc)
        return
    table = _table("campaign", "name", "status", "created")
    for r in rows:
        table.add_row(r.campaign_id, r.name, r.status.value, r.created_at.isoformat(timespec="seconds"))
    console.print(table)


def _print_stats(stats: Any, as_json: bool) -> None:
    if as_json:
        print(stats.model_dump_json())
        return
    rate = stats.delivery_rate
    console.print(f"total {stats.total}: delivered {stats.delivered}, failed {stats.failed + stats.undelivered}, "
                  f"pending {stats.queued + stats.submitted + stats.sent}, rejected {stats.rejected}, "
                  f"unknown {stats.unknown}; delivery rate {'-' if rate is None else f'{rate:.1%}'}; "
                  f"avg queue {stats.avg_queue_seconds or 0:.2f}s, avg delivery {stats.avg_delivery_seconds or 0:.2f}s")
    table = _table("period", "total", "submitted", "sent", "delivered", "failed", "rejected", "unknown")
    for b in stats.detail:
        table.add_row(b.label, str(b.total), str(b.submitted), str(b.sent), str(b.delivered),
                      str(b.failed + b.undelivered), str(b.rejected), str(b.unknown))
    console.print(table)


@campaign_app.command("stats")
def campaign_stats(campaign_id: str, config: ConfigOpt = None, tenant: TenantOpt = None,
                   period: Annotated[str, typer.Option(help="hour, day or month.")] = "hour",
                   as_json: JsonOpt = False) -> None:
    """Statistics of a campaign's messages (tenant time zone)."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            stats = t.campaigns.get(campaign_id).stats(period)
    except SmsgateError as exc:
        _fail(exc)
        return
    _print_stats(stats, as_json)


@app.command()
def stats(config: ConfigOpt = None, tenant: TenantOpt = None,
          period: Annotated[str, typer.Option(help="hour, day or month.")] = "day",
          provider: Annotated[str | None, typer.Option(help="One provider instance.")] = None,
          as_json: JsonOpt = False) -> None:
    """Statistics of a tenant's messages, from the local log."""
    try:
        gw, t = _open(config, tenant)
        with gw:
            result = t.stats(period, provider=provider)
    except SmsgateError as exc:
        _fail(exc)
        return
    _print_stats(result, as_json)


def _emulators() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=EMULATOR_GROUP)}


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="First port; emulators take consecutive ports.")] = 8801,
) -> None:
    """Serve every installed provider emulator on loopback until interrupted."""
    import time

    from smsgate.server import LiveServer, require_server

    try:
        require_server("smsgate sandbox")
    except SmsgateError as exc:
        _fail(exc)
    eps = _emulators()
    if not eps:
        _fail(SmsgateError("no emulators installed (install a provider plugin with the [emulator] extra)"))
    servers = []
    blocks = []
    for i, (name, ep) in enumerate(sorted(eps.items())):
        server = LiveServer(ep.load()(), port=port + i).start()
        servers.append(server)
        creds, settings = _sandbox_credentials(ep)
        console.print(f"{name:15} {server.url}  credentials: {', '.join(sorted(creds))}")
        block: dict[str, Any] = {"plugin": name, "base_url": server.url, "sender": "SMSGATE", **settings}
        block["credentials"] = {**creds, **block.get("credentials", {})}  # the same merge as the demo's
        blocks.append("\n".join([f"[tenants.acme.providers.{name}]",
                                  *(f"{key} = {_toml_value(value)}" for key, value in block.items())]))
    console.print("\nFor smsgate.toml (the emulators' fixed sandbox credentials, not real secrets):\n")
    console.print("\n\n".join(blocks), markup=False, highlight=False, soft_wrap=True)
    console.print("\nCtrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers:
            s.stop()


def _sandbox_credentials(ep: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The credentials an emulator accepts by default, and the settings it needs."""
    import importlib

    module = importlib.import_module(ep.value.split(":")[0])
    return dict(getattr(module, "SANDBOX_CREDENTIALS", {})), dict(getattr(module, "SANDBOX_SETTINGS", {}))


def _toml_value(value: Any) -> str:
    """``value`` as a TOML value (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a JSON string, number or boolean is the same TOML value


@app.command()
def demo(
    db: Annotated[Path, typer.Option(help="SQLite file for the demo's store.")] = Path("smsgate-demo.db"),
) -> None:
    """Run the demo: a campaign through the provider emulators, logged in SQLite."""
    from smsgate.demo import run_demo

    try:
        run_demo(db, console if console.is_terminal else Console(width=120))
    except SmsgateError as exc:
        _fail(exc)


def main() -> None:
    """Entry point of the ``smsgate`` console script."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
