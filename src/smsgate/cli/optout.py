"""``smsgate optout``: add, import, remove, check, list and sync a tenant's opt-out registry."""

from __future__ import annotations

import json
from pathlib import Path
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
    err_console,
    flags_named,
    nothing_to_list,
    open_tenant,
    typed_number,
)
from smsgate.cli._csv import DelimiterOpt, EncodingOpt, csv_audience, csv_shown
from smsgate.cli._interrupt import on_interrupt
from smsgate.errors import ValidationError
from smsgate.models import EVERY_SENDER
from smsgate.optouts import scope_key

__all__ = ["optout_app"]

optout_app = CommandGroup(help="Manage a tenant's opt-out registry.", no_args_is_help=True)


PhoneArg = Annotated[str, typer.Argument(help="The number (E.164, or national in the tenant's region).",
                                         show_default=False)]

#: ``--scope``: what an opt-out covers.
ScopeOpt = Annotated[str | None, typer.Option(
    "--scope", help="A sender ID / short code / brand: the opt-out covers messages from it only "
    "(default: every sender of the tenant, also written '*').")]


def _scope_name(scope: str) -> str:
    return "every sender" if scope == EVERY_SENDER else f"sender {scope!r}"


def _other_scopes(scopes: set[str], flag: str) -> str:
    """What a negative answer would hide: ``; it is opted out of sender 'acme' only: --scope
    acme`` (or of every sender: ``without --scope``); ``""`` when the number has no opt-out."""
    if EVERY_SENDER in scopes:
        return f"; it is opted out of every sender: without {flag}"
    senders = sorted(scopes)
    if not senders:
        return ""
    names = ", ".join(f"sender {s!r}" for s in senders)
    return f"; it is opted out of {names} only: {flag} {senders[0]}"


@optout_app.command("add")
def optout_add(phone: PhoneArg, config: ConfigOpt = None, tenant: TenantOpt = None,
               reason: Annotated[str | None, typer.Option(help="Why (e.g. 'replied STOP'); kept with it.")] = None,
               scope: ScopeOpt = None) -> None:
    """Opt a number out (of every sender, or with --scope of one sender ID)."""
    gw, t = open_tenant(config, tenant, read_only=True)  # the store only: no provider secret
    with gw, typed_number(phone, "phone"), flags_named({"scope": "--scope"}):
        new = t.optouts.add(phone, reason=reason, scope=scope)
        what = f"of {_scope_name(scope_key(scope))}"
        console.print(f"{t.normalize(phone)} {'opted out' if new else 'was already opted out'} {what}")


#: ``optout import``'s flags for the :class:`~smsgate.campaigns.CsvAudience` options.
IMPORT_FLAGS = {"phone": "--phone-column", "delimiter": "--delimiter", "encoding": "--encoding"}


@optout_app.command("import")
def optout_import(
    csv_path: Annotated[Path, typer.Argument(metavar="FILE.csv", help="CSV file with a header row.")],
    config: ConfigOpt = None, tenant: TenantOpt = None,
    column: Annotated[str, typer.Option("--phone-column", "--column",
                                        help="The column with the numbers (other columns are ignored; "
                                             "--column is the same flag).")] = "phone",
    scope: ScopeOpt = None,
    reason: Annotated[str | None, typer.Option(help="Why (e.g. 'old CRM'); kept with each.")] = None,
    delimiter: DelimiterOpt = ",",
    encoding: EncodingOpt = "utf-8-sig",
    errors: Annotated[int, typer.Option(help="How many invalid rows to list.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Opt out every number of a CSV file (of every sender, or with --scope of one sender ID).

    Invalid rows are listed with their line and not recorded; the valid ones are. Numbers are
    written 1,000 at a time: after Ctrl-C or an error part-way, run it again (numbers already
    opted out are not added twice).
    """
    audience = csv_audience(csv_path, column, delimiter, encoding, name=None, fields=[], flags=IMPORT_FLAGS)
    gw, t = open_tenant(config, tenant, read_only=True)  # the store only: no provider secret
    with gw, on_interrupt("the numbers read before are saved; run the same 'smsgate optout import' again "
                          "(numbers already opted out are not added twice)"), flags_named({"scope": "--scope"}):
        report = t.optouts.add_many(audience, scope=scope, reason=reason, source="import")
    if as_json:
        print(json.dumps({"rows": report.rows, "added": report.added, "already": report.already,
                          "repeated": report.repeated, "invalid": report.invalid_count,
                          "invalid_rows": [e.model_dump() for e in report.invalid]}))
        return
    console.print(f"{csv_shown(csv_path)}: {report.rows} row(s): {report.added} opted out of "
                  f"{_scope_name(scope_key(scope))}, {report.already} already were, "
                  f"{report.repeated} repeated in the file, {report.invalid_count} invalid")
    if report.invalid_count:
        shown = min(max(errors, 0), len(report.invalid))
        if not shown:  # a title over an empty table would be wrapped to its width (as contacts create says it)
            console.print(f"invalid rows, not recorded: {report.invalid_count}, not listed (--errors N lists them)")
            return
        more = f" of {report.invalid_count}; --errors N lists more" if shown < report.invalid_count else ""
        table = compact_table("where", "phone", "detail", title=f"invalid rows, not recorded ({shown}{more})")
        for e in report.invalid[:shown]:
            table.add_row(e.location, e.phone, e.detail)
        console.print(table)


@optout_app.command("remove")
def optout_remove(phone: PhoneArg, config: ConfigOpt = None, tenant: TenantOpt = None, scope: ScopeOpt = None,
                  all_scopes: Annotated[bool, typer.Option(
                      "--all-scopes", help="Remove every opt-out of the number, whatever its scope.")] = False,
                  ) -> None:
    """Opt a number back in (to every sender, or with --scope to one sender ID).

    Exit 1 if there was nothing to remove (the number was not opted out in that scope): said on
    stderr, with the scopes it is opted out of, if any.
    """
    if all_scopes and scope is not None:  # named as typed, before anything is opened
        raise ValidationError(f"removes every opt-out of the number, and --scope {scope!r} only that sender's: "
                              "give one of them", field="--all-scopes")
    gw, t = open_tenant(config, tenant, read_only=True)  # the store only: no provider secret
    with gw, typed_number(phone, "phone"), flags_named({"scope": "--scope"}):
        found = t.optouts.remove(phone, scope=scope, every_scope=all_scopes)
        what = "any scope" if all_scopes else _scope_name(scope_key(scope))
        if found:
            console.print(f"{t.normalize(phone)} removed ({what})")
            return
        others = "" if all_scopes else _other_scopes(t.optouts.scopes(phone), "--scope")
        line = f"{t.normalize(phone)} was not opted out ({what}){others}"
    # nothing to do, as 'tenant remove' of a tenant that was not stored: exit 1, said where a
    # script's '> /dev/null' still shows it
    err_console.print(line, soft_wrap=True, highlight=False)
    raise typer.Exit(NO_EXIT)


@optout_app.command("check")
def optout_check(phone: PhoneArg, config: ConfigOpt = None, tenant: TenantOpt = None,
                 sender: Annotated[str | None, typer.Option(
                     "--sender", help="Check for a message from this sender ID: an opt-out of it counts too "
                     "(default: only an opt-out of every sender).")] = None) -> None:
    """Is the number opted out? Exit 0 if it is, 1 if it is not, 2 on an error (e.g. an invalid number)."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw, typed_number(phone, "phone"), flags_named({"sender": "--sender"}):
        opted = t.optouts.check(phone, sender=sender)
        others = "" if opted or sender else _other_scopes(t.optouts.scopes(phone), "--sender")
    suffix = f" (sender {sender!r})" if sender else ""
    console.print(("opted out" if opted else "not opted out") + suffix + others)
    raise typer.Exit(0 if opted else NO_EXIT)


@optout_app.command("list")
def optout_list(config: ConfigOpt = None, tenant: TenantOpt = None, as_json: JsonOpt = False,
                limit: Annotated[int | None, typer.Option(min=1, help="How many at most (default: all).")] = None) -> None:
    """List opted-out numbers, with the scope of each opt-out ('*': every sender)."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        items = t.optouts.list(limit=limit)
    if as_json:
        print(json.dumps([json.loads(o.model_dump_json()) for o in items]))
        return
    if not items:
        nothing_to_list(f"no opted-out numbers for tenant {t.name!r}: a STOP reply or "
                        "'smsgate optout add NUMBER' adds one")
        return
    table = compact_table("phone", "scope", "reason", "source", "since")
    for o in items:
        table.add_row(o.phone, o.scope, o.reason or "", o.source, o.created_at.isoformat(timespec="seconds"))
    console.print(table)


@optout_app.command("sync")
def optout_sync(config: ConfigOpt = None, tenant: TenantOpt = None,
                provider: Annotated[str | None, typer.Option(
                    help="Only this provider instance (default: every one that keeps opt-outs).")] = None) -> None:
    """Pull opt-outs recorded at the vendors into the registry.

    Each provider's list is saved once read whole: after Ctrl-C, running it again reads them
    all again and adds only the numbers not yet opted out.
    """
    gw, t = open_tenant(config, tenant)
    with gw:
        names = list(t.config.providers)
        if provider is None and not any(t.provider(n).capabilities.optout_sync for n in names):
            console.print(f"no provider of tenant {t.name!r} keeps opt-outs ({', '.join(names) or 'none'}); "
                          "nothing was read")  # not "0 new", as if the vendors' lists had been read
            return
        with on_interrupt("the opt-outs of the providers already read are saved; run 'smsgate optout sync' "
                          "again (numbers already opted out are not added twice)"):
            added = t.optouts.sync(provider)
    console.print(f"{added} new opt-outs imported")
