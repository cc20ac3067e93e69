"""``smsgate send``, ``smsgate status``, ``smsgate messages`` and ``smsgate inbound``: one message,
the message log and the replies."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from smsgate.cli._common import ConfigOpt, JsonOpt, TenantOpt, app, compact_table, console, open_tenant

__all__ = ["inbound", "messages", "send", "status"]


@app.command()
def send(
    to: Annotated[str, typer.Argument(help="Recipient number (E.164 or national).")],
    text: Annotated[str, typer.Argument(help="Message text.")],
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    sender: Annotated[str | None, typer.Option(help="Sender ID.")] = None,
    provider: Annotated[str | None, typer.Option(help="Force one provider instance.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Never send this key twice.")] = None,
    kind: Annotated[str | None, typer.Option(help="The message's kind (otp, marketing...), for routes by kind.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Send one message."""
    gw, t = open_tenant(config, tenant)
    with gw:
        result = t.send(to, text, sender=sender, provider=provider, idempotency_key=idempotency_key, kind=kind)
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
    gw, t = open_tenant(config, tenant)
    with gw:
        record = t.status(message_id, refresh=refresh)
    if as_json:
        print(record.model_dump_json())
        return
    console.print(Text.assemble(f"{record.message_id} to {record.to}: ", (record.status.value, "bold"),
                                f" (raw {record.raw_status}) via {record.provider}"))
    table = compact_table("at", "status", "raw", "source", "detail")
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
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        records = t.messages(limit=limit)
    if as_json:
        # The log is listed without histories (`smsgate status ID` shows one): no empty "history" lists.
        print(json.dumps([json.loads(r.model_dump_json(exclude={"history"})) for r in records]))
        return
    console.print(_log_table(records, console.width))


@app.command()
def inbound(
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    from_number: Annotated[str | None, typer.Option("--from", help="Only messages from this number.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    before: Annotated[int | None, typer.Option(help="Only messages with a smaller id (paging).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List inbound messages (replies), newest first, with the keyword action each caused."""
    gw, t = open_tenant(config, tenant)
    with gw:
        items = t.inbound(from_number=from_number, limit=limit, before=before)
    if as_json:
        print(json.dumps([json.loads(m.model_dump_json(exclude={"raw"})) for m in items]))
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
        error = (r.error or "")[:60]
        if wide:
            cost = f"{r.cost} {r.currency or ''}" if r.cost is not None else ""
            table.add_row(r.message_id, r.to, r.status.value, r.raw_status or "", r.provider or "",
                          str(r.segments or ""), cost, error)
        else:
            via = " ".join(part for part in (r.provider or "", f"({error})" if error else "") if part)
            table.add_row(r.message_id, r.to, r.status.value, via)
    return table
