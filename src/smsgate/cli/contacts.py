"""``smsgate contacts``: create, fill, list, show, export, trim and delete stored contact lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smsgate.cli._common import (
    CommandGroup,
    ConfigOpt,
    JsonOpt,
    TenantOpt,
    compact_table,
    confirm,
    console,
    err_console,
    nothing_to_list,
    open_tenant,
    stdout_for_data,
    typed_number,
)
from smsgate.cli._csv import DelimiterOpt, EncodingOpt, NameColumnOpt, csv_audience
from smsgate.errors import ValidationError

if TYPE_CHECKING:
    from smsgate.campaigns.model import RowError
    from smsgate.contacts import ExportFormat, ImportReport
    from smsgate.store.base import ContactListRow

__all__ = ["contacts_app"]

contacts_app = CommandGroup(help="Stored contact lists: create from CSV, add, list, show, export, remove, "
                                 "delete (a campaign sends to one with 'campaign create --list ID').",
                            no_args_is_help=True)

CsvOpt = Annotated[Path, typer.Option("--csv", help="CSV file with a header row: a phone column, and any "
                                                    "others (name, fields for {placeholders}); '-' reads it from standard input.")]
PhoneColumnOpt = Annotated[str, typer.Option("--phone-column", help="CSV column with numbers.")]
ErrorsOpt = Annotated[int, typer.Option(help="How many invalid rows, and how many repeated numbers, to list.")]


def _row_dict(row: ContactListRow) -> dict[str, object]:
    return row.as_dict()


def _print_report(report: ImportReport, verb: str, errors: int, as_json: bool) -> None:
    row = report.contact_list
    if as_json:
        print(json.dumps({**_row_dict(row), "rows": report.rows, "added": report.added,
                          "updated": report.updated, "duplicates": report.duplicate_count,
                          "invalid": report.invalid_count,
                          "duplicate_rows": [e.model_dump() for e in report.duplicates],
                          "invalid_rows": [e.model_dump() for e in report.errors]}))
        return
    console.print(f"{row.list_id} {row.name!r}: {verb}; {report.rows} row(s): {report.added} added, "
                  f"{report.updated} updated, {report.duplicate_count} duplicate(s), {report.invalid_count} invalid; "
                  f"{row.size} contact(s) in the list")
    _print_rows(report.duplicates, report.duplicate_count, "numbers given again, not stored (the first row is kept)",
                errors)
    _print_rows(report.errors, report.invalid_count, "invalid rows, not stored", errors)


def _print_rows(rows: list[RowError], total: int, title: str, errors: int) -> None:
    """The first ``errors`` of ``rows`` (the first kept of ``total``) as a table (where, phone,
    detail), saying how many are not shown."""
    if not total:
        return
    shown = min(max(errors, 0), len(rows))
    if not shown:  # a title over an empty table would be wrapped to its width
        console.print(f"{title}: {total}, not listed (--errors N lists them)")
        return
    more = (f" of {total}; --errors N lists more" if shown < len(rows)
            else f" of {total}; the first {len(rows)} are kept" if shown < total else "")
    table = compact_table("where", "phone", "detail", title=f"{title} ({shown}{more})")
    for e in rows[:shown]:
        table.add_row(e.location, e.phone, e.detail)
    console.print(table)


@contacts_app.command("create")
def contacts_create(
    name: Annotated[str, typer.Argument(help="The list's name (need not be unique; a list is found by its id).")],
    csv_path: CsvOpt,
    config: ConfigOpt = None, tenant: TenantOpt = None,
    list_id: Annotated[str | None, typer.Option("--id", help="The list's id (default: a new one, lst_...).")] = None,
    description: Annotated[str, typer.Option(help="What the list is.")] = "",
    phone_column: PhoneColumnOpt = "phone",
    name_column: NameColumnOpt = None,
    delimiter: DelimiterOpt = ",",
    encoding: EncodingOpt = "utf-8-sig",
    errors: ErrorsOpt = 10,
    as_json: JsonOpt = False,
) -> None:
    """Create a contact list from a CSV file; invalid rows are listed with their line, not stored.

    If the file cannot be read (no phone column, a line not in its encoding...) no list is
    left behind: fix the file and run the same command again.
    """
    audience = csv_audience(csv_path, phone_column, delimiter, encoding, name=name_column or "name",
                            name_given=name_column is not None)
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        try:
            report = t.contact_lists.create(name, audience, description=description, list_id=list_id)
        except ValidationError as exc:  # named as typed: argument 'name', '--id', not the library's arguments
            shown = _CREATE_ARGS.get(exc.field or "") if exc.location == "contact_lists.create" else None
            if shown is None:
                raise
            if shown.startswith("-"):  # (its advice too: "give another --id, or none for a new one")
                raise ValidationError(exc.reason.replace(exc.field or "", shown), field=shown, value=exc.value) from None
            raise ValidationError(exc.reason, value=exc.value, location=f"argument {shown!r}") from None
    _print_report(report, "created", errors, as_json)


#: ``contact_lists.create``'s arguments as ``contacts create`` takes them
_CREATE_ARGS = {"name": "name", "list_id": "--id", "description": "--description"}


@contacts_app.command("add")
def contacts_add(
    list_id: Annotated[str, typer.Argument(metavar="ID", help="The list's id.")],
    csv_path: CsvOpt,
    config: ConfigOpt = None, tenant: TenantOpt = None,
    phone_column: PhoneColumnOpt = "phone",
    name_column: NameColumnOpt = None,
    delimiter: DelimiterOpt = ",",
    encoding: EncodingOpt = "utf-8-sig",
    errors: ErrorsOpt = 10,
    as_json: JsonOpt = False,
) -> None:
    """Add a CSV file's contacts to a list (a number already in it gets the file's name and fields).

    Contacts are stored 5,000 at a time: if the file cannot be read part-way, those before
    stay; adding the fixed file again updates them.
    """
    audience = csv_audience(csv_path, phone_column, delimiter, encoding, name=name_column or "name",
                            name_given=name_column is not None)
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        report = t.contact_lists.add(list_id, audience)
    _print_report(report, "added to", errors, as_json)


@contacts_app.command("list")
def contacts_list(config: ConfigOpt = None, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """The tenant's contact lists, newest first, with their sizes."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        rows = t.contact_lists.list()
    if as_json:
        print(json.dumps([_row_dict(r) for r in rows]))
        return
    if not rows:
        nothing_to_list(f"no contact lists for tenant {t.name!r} yet: 'smsgate contacts create NAME --csv FILE' "
                        "makes one from a CSV file")
        return
    table = compact_table("id", "name", "contacts", "created", "description")
    for r in rows:
        table.add_row(r.list_id, r.name, str(r.size), r.created_at.isoformat(timespec="seconds"), r.description)
    console.print(table)


@contacts_app.command("show")
def contacts_show(
    list_id: Annotated[str, typer.Argument(metavar="ID", help="The list's id.")],
    config: ConfigOpt = None, tenant: TenantOpt = None,
    limit: Annotated[int, typer.Option(help="How many contacts to show (0: none; 'export' writes them all).")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """A list's name, size and first contacts."""
    from smsgate.filters import check_count

    check_count(limit, "--limit")
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        row = t.contact_lists.get(list_id)
        contacts = []
        if limit:
            for contact in t.contact_lists.contacts(list_id):
                contacts.append(contact)
                if len(contacts) >= limit:
                    break
    if as_json:
        print(json.dumps({**_row_dict(row), "contacts": [c.model_dump() for c in contacts]}))
        return
    described = f"; {row.description}" if row.description else ""
    console.print(f"{row.list_id} {row.name!r}: {row.size} contact(s), created "
                  f"{row.created_at.isoformat(timespec='seconds')}{described}")
    if contacts:
        more = f" of {row.size}" if row.size > len(contacts) else ""
        table = compact_table("phone", "name", "fields", title=f"contacts ({len(contacts)}{more})")
        for c in contacts:
            table.add_row(c.phone, c.name or "", ", ".join(f"{k}={v}" for k, v in c.fields.items()))
        console.print(table)
        if more:  # on a line of its own: as the table's title it wrapped to the table's width
            console.print(f"'smsgate contacts export {row.list_id}' writes them all", highlight=False)


@contacts_app.command("export")
def contacts_export(
    list_id: Annotated[str, typer.Argument(metavar="ID", help="The list's id.")],
    config: ConfigOpt = None, tenant: TenantOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (default: "
                                                                     "standard output).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON instead of CSV: the list and all its "
                                                         "contacts, as 'contacts show --json' prints them.")] = False,
) -> None:
    """Write a list as CSV: phone, name and every field (reads back with 'contacts create --csv'),
    or with --json as JSON."""
    fmt: ExportFormat = "json" if as_json else "csv"
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        if output is None:
            t.contact_lists.export(list_id, stdout_for_data(), format=fmt)
            return
        n = t.contact_lists.export(list_id, output, format=fmt)
    err_console.print(f"{n} contact(s) written to {output}")


@contacts_app.command("remove")
def contacts_remove(
    list_id: Annotated[str, typer.Argument(metavar="ID", help="The list's id.")],
    phones: Annotated[list[str], typer.Argument(metavar="PHONE...", help="Numbers to remove (any format "
                                                                         "the tenant's region reads).")],
    config: ConfigOpt = None, tenant: TenantOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: the list (its size after), how many "
                                                         "numbers were removed and how many were not in it.")] = False,
) -> None:
    """Remove numbers from a list."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw, typed_number(phones, "PHONE..."):
        n = t.contact_lists.remove(list_id, phones)
        row = t.contact_lists.get(list_id)
        given = len({t.normalize(p) for p in phones})  # one number written twice is one number
    if as_json:
        print(json.dumps({**_row_dict(row), "removed": n, "not_in_list": given - n}))
        return
    console.print(f"{list_id}: {n} of {given} number(s) removed ({given - n} not in it); "
                  f"{row.size} contact(s) left")


@contacts_app.command("delete")
def contacts_delete(
    list_id: Annotated[str, typer.Argument(metavar="ID", help="The list's id.")],
    config: ConfigOpt = None, tenant: TenantOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")] = False,
) -> None:
    """Delete a list and its contacts (campaigns already made from it keep their recipients)."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        row = t.contact_lists.get(list_id)
        console.print(f"{row.list_id} {row.name!r}: {row.size} contact(s)")
        confirm("Delete it?", yes=yes, verb="delete")
        t.contact_lists.delete(list_id)
    console.print(f"{list_id}: deleted")
