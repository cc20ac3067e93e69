"""``smsgate optout``: add, remove, check, list and sync a tenant's opt-out registry."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from smsgate.cli._common import (
    NO_EXIT,
    CommandGroup,
    ConfigOpt,
    JsonOpt,
    TenantOpt,
    compact_table,
    console,
    open_tenant,
)
from smsgate.cli._interrupt import on_interrupt

__all__ = ["optout_app"]

optout_app = CommandGroup(help="Manage a tenant's opt-out registry.", no_args_is_help=True)


@optout_app.command("add")
def optout_add(phone: str, config: ConfigOpt = None, tenant: TenantOpt = None,
               reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Opt a number out."""
    gw, t = open_tenant(config, tenant)
    with gw:
        new = t.optouts.add(phone, reason=reason)
        console.print(f"{t.normalize(phone)} {'opted out' if new else 'was already opted out'}")


@optout_app.command("remove")
def optout_remove(phone: str, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Opt a number back in."""
    gw, t = open_tenant(config, tenant)
    with gw:
        found = t.optouts.remove(phone)
        console.print(f"{t.normalize(phone)} {'removed' if found else 'was not opted out'}")


@optout_app.command("check")
def optout_check(phone: str, config: ConfigOpt = None, tenant: TenantOpt = None) -> None:
    """Is the number opted out? Exit 0 if it is, 1 if it is not, 2 on an error (e.g. an invalid number)."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        opted = t.optouts.check(phone)
    console.print("opted out" if opted else "not opted out")
    raise typer.Exit(0 if opted else NO_EXIT)


@optout_app.command("list")
def optout_list(config: ConfigOpt = None, tenant: TenantOpt = None, as_json: JsonOpt = False,
                limit: Annotated[int | None, typer.Option()] = None) -> None:
    """List opted-out numbers."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        items = t.optouts.list(limit=limit)
    if as_json:
        print(json.dumps([json.loads(o.model_dump_json()) for o in items]))
        return
    table = compact_table("phone", "reason", "source", "since")
    for o in items:
        table.add_row(o.phone, o.reason or "", o.source, o.created_at.isoformat(timespec="seconds"))
    console.print(table)


@optout_app.command("sync")
def optout_sync(config: ConfigOpt = None, tenant: TenantOpt = None,
                provider: Annotated[str | None, typer.Option()] = None) -> None:
    """Pull opt-outs recorded at the vendors into the registry.

    Each provider's list is saved once read whole: after Ctrl-C, running it again reads them
    all again and adds only the numbers not yet opted out.
    """
    gw, t = open_tenant(config, tenant)
    with gw, on_interrupt("the opt-outs of the providers already read are saved; run 'smsgate optout sync' "
                          "again (numbers already opted out are not added twice)"):
        added = t.optouts.sync(provider)
    console.print(f"{added} new opt-outs imported")
