"""``smsgate store purge``: retention, the old data of one tenant or of every tenant deleted in batches."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from smsgate.cli._common import (
    CommandGroup,
    ConfigOpt,
    JsonOpt,
    compact_table,
    console,
    load_settings,
    open_gateway,
    open_tenant,
)
from smsgate.cli._interrupt import on_interrupt
from smsgate.cli.messages import _duration_option
from smsgate.store.base import PurgeResult

__all__ = ["purge", "store_app"]

store_app = CommandGroup(help="Store retention: delete old data (smsgate store purge; docs/scaling.md).",
                         no_args_is_help=True)

#: What each count of a :class:`PurgeResult` is, in the order printed.
_KINDS = {
    "messages": "messages (final)",
    "events": "status history events",
    "report_parts": "report parts",
    "orphan_reports": "orphan reports",
    "inbound": "inbound messages",
    "idempotency_keys": "idempotency keys",
    "traffic_entries": "rate-limit entries",
    "campaigns": "campaigns (finished)",
    "recipients": "campaign recipients",
}


@store_app.command("purge")
def purge(
    older_than: Annotated[float, typer.Option(
        "--older-than", parser=_duration_option, metavar="DURATION",
        help="Delete data logged longer ago than this (90d, 12h...).")],
    config: ConfigOpt = None,
    tenant: Annotated[str | None, typer.Option(
        "--tenant", "-t", help="Only this tenant (default: every tenant with data in the store, "
                               "configured or not any more).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
    batch_size: Annotated[int, typer.Option(
        min=1, help="Messages (or rows) per transaction: smaller holds locks for less time.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Delete old data: final messages with their history, inbound messages, orphan reports,
    idempotency keys, finished campaigns (whole). Never a message awaiting a report or in flight.

    Safe while the gateway runs (short transactions). Cron it daily; after Ctrl-C, run it again to finish.
    """
    if tenant is not None:
        gw, t = open_tenant(config, tenant, read_only=True)
    else:
        gw, t = open_gateway(load_settings(config, defer_secrets=True)), None
    with gw, on_interrupt("what was deleted stays deleted, the rest is consistent; "
                          "run 'smsgate store purge' again to finish"):
        if t is not None:
            result = t.purge(older_than=older_than, dry_run=dry_run, batch_size=batch_size)
        else:
            result = gw.purge(older_than=older_than, dry_run=dry_run, batch_size=batch_size)
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    _print(result)


def _print(result: PurgeResult) -> None:
    table = compact_table("would delete" if result.dry_run else "deleted", "what")
    for name, what in _KINDS.items():
        table.add_row(str(getattr(result, name)), what)
    console.print(table)
    console.print(f"kept: {result.kept_messages} old messages not final yet or in a campaign kept, "
                  f"{result.kept_campaigns} finished campaigns with a message not final or a live runner"
                  + ("; dry run: nothing was deleted" if result.dry_run else ""))
