"""``smsgate store purge``: retention, the old data of one tenant or of every tenant deleted in batches.
``smsgate store upgrade-history``: a PostgreSQL store's history converted to one index, live."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from smsgate.cli._common import (
    NO_EXIT,
    CommandGroup,
    ConfigOpt,
    JsonOpt,
    compact_table,
    console,
    load_settings,
    missing_store_note,
    open_gateway,
    store_file_missing,
    tenant_name,
)
from smsgate.cli._interrupt import on_interrupt
from smsgate.cli.messages import _duration_option
from smsgate.errors import UnknownTenant
from smsgate.store.base import PurgeResult

__all__ = ["purge", "store_app", "upgrade_history"]

store_app = CommandGroup(help="Store retention (smsgate store purge) and the PostgreSQL history's upgrade "
                              "(smsgate store upgrade-history); docs/scaling.md.",
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
    settings = load_settings(config, defer_secrets=True)
    if store_file_missing(settings.store):  # nothing to purge; opening it would create the file
        if tenant is not None and tenant not in settings.tenants:  # no stored tenant either
            raise UnknownTenant(tenant, f"configured tenants: {', '.join(sorted(settings.tenants)) or 'none'}; "
                                        f"{missing_store_note(settings.store, config, store_flag=None)}")
        if as_json:
            print(json.dumps(PurgeResult(dry_run=dry_run).as_dict()))
        else:
            console.print(f"nothing to purge: {missing_store_note(settings.store, config, store_flag=None)}", soft_wrap=True,
                          markup=False)
        return
    gw = open_gateway(settings)
    with gw, on_interrupt("what was deleted stays deleted, the rest is consistent; "
                          "run 'smsgate store purge' again to finish"):
        # the name checked as every command checks it, but the tenant never loaded: a stored
        # tenant's credentials are not decrypted, so a purge needs no SMSGATE_TENANT_KEY
        name = None if tenant is None else tenant_name(gw, tenant, config)
        result = gw.purge(older_than=older_than, dry_run=dry_run, batch_size=batch_size, tenant=name)
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


@store_app.command("upgrade-history")
def upgrade_history(
    config: ConfigOpt = None,
    url: Annotated[str | None, typer.Option(help="Store URL (overrides config).")] = None,
    lock_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds the key swap waits for the history table's lock per attempt "
                        "(the store's writes to the history queue behind that wait).")] = 0.5,
    attempts: Annotated[int, typer.Option(min=1, help="Attempts at the key swap before giving up.")] = 20,
) -> None:
    """Give a PostgreSQL store created before 0.1.0's one-index history that layout: the history
    table's primary key becomes (message_pk, id) and its second index goes (one index entry
    fewer per status event written; docs/scaling.md).

    Safe while the gateway runs: the new index is built concurrently (this waits for
    transactions already writing the history), then swapped in under a short lock timeout,
    retried. If a long transaction holds the table it gives up, nothing changed: run it again.
    Idempotent; a second run at the same time does nothing (exit 1).
    """
    from smsgate.store import open_store

    target = url or load_settings(config).store
    if store_file_missing(target):  # opening it would create the file
        note = missing_store_note(target, config, given=url is not None, store_flag="--url URL")
        console.print(f"nothing to do: only PostgreSQL stores have a history layout to upgrade ({note})",
                      soft_wrap=True, markup=False)
        return
    store = open_store(target)
    try:
        upgrade = getattr(store, "upgrade_history", None)  # PostgresStore's only
        if upgrade is None:
            console.print("nothing to do: only PostgreSQL stores have a history layout to upgrade")
            return
        with on_interrupt("the layout is as the last line said (the swap is one transaction); an index "
                          "build cut short is dropped and built again by the next run: "
                          "run 'smsgate store upgrade-history' again"):
            outcome = upgrade(lock_timeout=lock_timeout, attempts=attempts, progress=console.print)
    finally:
        store.close()
    if outcome == "upgraded":
        console.print("history upgraded: one index, the primary key (message_pk, id)")
    elif outcome == "busy":
        raise typer.Exit(NO_EXIT)
