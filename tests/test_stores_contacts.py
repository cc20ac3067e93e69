"""Contacts and the raw store give the same outcome on every store (memory, SQLite, PostgreSQL).

- A contact's field may not be named like a built-in column (``phone``, ``name``): one rule
  (:func:`smsgate.models.builtin_field`) for the API, CSV import, the CLI and ``Store.add_contacts``,
  so that an export reads back as it was. ``Contact(name="Ada", fields={"name": "Z"})`` was stored
  as "Z"; a field named ``phone`` was stored, then dropped by the export.
- Fields come back in the order given on every store (PostgreSQL's ``jsonb`` sorted them, so an
  export's columns differed), also on a database of the schema before.
- A limit, offset or keyset id of the Store API is checked the same way on every store (a
  :class:`ValidationError` naming it): ``list_messages(limit=2**63)`` worked on memory and was an
  ``OverflowError`` on SQLite, ``NumericValueOutOfRange`` on PostgreSQL.
- A cost comes back in the same form on every store (PostgreSQL's ``numeric`` has no negative
  zero and no positive exponent: ``1E+2`` is ``100``, ``-0`` is ``0``; memory and SQLite agree).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services import echo_config as config
from services import echo_plugins as plugins
from smsgate import Contact, Gateway, ValidationError
from smsgate.models import MessageRecord, Status, utcnow
from smsgate.store.base import ContactListRow, MessageUpdate, Store
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        s: Store = MemoryStore()
    elif request.param == "sqlite":
        s = SQLiteStore(str(tmp_path / "contacts.db"))
    else:
        from test_store_postgres import scratch_store  # a fresh schema, dropped on close

        s = scratch_store()
    s.migrate()
    yield s
    s.close()


#: How the release before (schema 12) wrote a contact: no key order beside the jsonb fields.
V12_UPSERT = ("INSERT INTO contacts (tenant, list_id, phone, name, fields) VALUES ('acme', %s, %s, %s, %s::jsonb) "
              "ON CONFLICT (tenant, list_id, phone) DO UPDATE SET name = excluded.name, fields = excluded.fields")


def _list(store: Store, list_id: str = "l1") -> str:
    store.create_contact_list(ContactListRow(tenant="acme", list_id=list_id, name="vip", created_at=utcnow()))
    return list_id


def _export(lists: Any, list_id: str) -> list[list[str]]:
    out = io.StringIO()
    lists.export(list_id, out)
    return list(csv.reader(io.StringIO(out.getvalue())))


# ------------------------------------------------------- 1, 2: a field named like a column
@pytest.mark.parametrize("key", ["name", "phone"])
def test_a_contact_field_named_like_a_built_in_column_is_an_invalid_row(store: Store, emu_url: str,
                                                                       key: str) -> None:
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        lists = gw.tenant("acme").contact_lists
        report = lists.create("vip", [Contact(phone="08031234567", name="Ada", fields={key: "Z", "city": "Lagos"}),
                                      Contact(phone="08031234568", name="Bo", fields={"city": "Abuja"})])
        assert report.added == 1 and [(e.seq, e.reason) for e in report.errors] == [(1, "invalid")]
        assert f"field {key!r}" in report.errors[0].detail
        lid = report.contact_list.list_id
        assert [(c.phone, c.name) for c in lists.contacts(lid)] == [("+2348031234568", "Bo")]
        assert _export(lists, lid) == [["phone", "name", "city"], ["+2348031234568", "Bo", "Abuja"]]
        # a contact without a name of its own: its field "name" is its name (as a CSV's name column)
        lists.add(lid, [Contact(phone="08031234569", fields={"name": "Cy"})])
        assert [(c.name, c.fields) for c in lists.contacts(lid)][-1] == ("Cy", {})


@pytest.mark.parametrize("key", ["name", "phone"])
def test_the_raw_store_refuses_a_field_named_like_a_built_in_column(store: Store, key: str) -> None:
    lid = _list(store)
    with pytest.raises(ValidationError) as caught:
        store.add_contacts("acme", lid, [Contact(phone="+2348031234568"),
                                         Contact(phone="+2348031234567", name="Ada", fields={key: "Z"})])
    assert caught.value.field == f"fields.{key}"
    assert store.list_contacts("acme", lid) == []  # nothing of the call stored


def test_a_csv_column_phone_beside_another_phone_column_is_an_invalid_row_on_import_and_in_the_cli(
        tmp_path: Path) -> None:
    from smsgate.cli import app as cli_app

    path = tmp_path / "vip.csv"
    path.write_text("mobile,phone,name\n08031234567,landline 1,Ada\n", encoding="utf-8")
    conf = tmp_path / "smsgate.toml"
    conf.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.a]\ndefault_region = "NG"\n'
                    '[tenants.a.providers.m]\nplugin = "memory"\n', encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["contacts", "create", "vip", "--csv", str(path), "--phone-column",
                                          "mobile", "-c", str(conf), "--json"])
    assert result.exit_code == 0, result.output
    said = json.loads(result.stdout)
    assert (said["added"], said["invalid"]) == (0, 1)
    assert "field 'phone'" in said["invalid_rows"][0]["detail"]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_csv_export_refuses_a_field_an_earlier_version_stored_rather_than_drop_it(
        kind: str, emu_url: str, tmp_path: Path) -> None:
    """(The memory store keeps nothing from an earlier version.)"""
    if kind == "sqlite":
        import sqlite3

        s: Store = SQLiteStore(str(tmp_path / "old.db"))
        s.migrate()
        lid = _list(s)
        with sqlite3.connect(tmp_path / "old.db") as db:  # as the release before stored it
            db.execute("INSERT INTO contacts (tenant, list_id, phone, name, fields) VALUES ('acme', ?, ?, 'Ada', ?)",
                       (lid, "+2348031234567", json.dumps({"phone": "landline", "city": "Lagos"})))
    else:
        import psycopg

        from test_store_postgres import DSN, scratch_store

        s = scratch_store()
        s.migrate()
        lid = _list(s)
        with psycopg.connect(DSN, autocommit=True, options=f"-c search_path={s.schema}") as v12:  # type: ignore[attr-defined]
            v12.execute(V12_UPSERT, (lid, "+2348031234567", "Ada", json.dumps({"phone": "landline", "city": "Lagos"})))
    try:
        with Gateway(config(emu_url), store=s, plugins=plugins()) as gw:
            lists = gw.tenant("acme").contact_lists
            with pytest.raises(ValidationError) as caught:
                lists.export(lid, tmp_path / "out.csv")
            assert caught.value.field == "fields.phone" and "+2348031234567" in caught.value.reason
            assert not (tmp_path / "out.csv").exists()
            out = io.StringIO()
            assert lists.export(lid, out, format="json") == 1
            assert json.loads(out.getvalue())["contacts"][0]["fields"] == {"phone": "landline", "city": "Lagos"}
    finally:
        s.close()


def test_an_export_reads_back_as_it_was(store: Store, emu_url: str, tmp_path: Path) -> None:
    from smsgate.campaigns import CsvAudience

    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        lists = gw.tenant("acme").contact_lists
        first = lists.create("vip", [Contact(phone="08031234567", name="Ada", fields={"Name": "Z", "zeta": "1",
                                                                                       "alpha": "2"})])
        lists.export(first.contact_list.list_id, tmp_path / "out.csv")
        again = lists.create("again", CsvAudience(tmp_path / "out.csv"))
        assert list(lists.contacts(again.contact_list.list_id)) == list(lists.contacts(first.contact_list.list_id))


# ------------------------------------------------------------------ 3: field order
FIELDS = {"zeta": "1", "alpha": "2", "mid": "3", "b": "4"}


def test_fields_come_back_in_the_order_given(store: Store, emu_url: str) -> None:
    lid = _list(store)
    store.add_contacts("acme", lid, [Contact(phone="+2348031234567", fields=FIELDS)])
    assert list(store.list_contacts("acme", lid)[0][1].fields) == list(FIELDS)
    store.add_contacts("acme", lid, [Contact(phone="+2348031234567", fields={"y": "1", "x": "2"})])  # an update
    assert list(store.list_contacts("acme", lid)[0][1].fields) == ["y", "x"]
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        lists = gw.tenant("acme").contact_lists
        report = lists.create("vip", [{"phone": "08031234568", **FIELDS}])
        assert _export(lists, report.contact_list.list_id)[0] == ["phone", "name", *FIELDS]


@pytest.mark.postgres
def test_a_postgres_database_of_schema_12_upgrades_and_keeps_its_contacts() -> None:
    import psycopg

    from smsgate.store.postgres import PostgresStore
    from test_store_postgres import DSN, scratch_store

    old = scratch_store()
    assert isinstance(old, PostgresStore) and old.schema is not None
    try:
        old.SCHEMA_VERSION = 12  # as released
        old.migrate()
        assert old.schema_version() == 12
        lid = _list(old)
        with psycopg.connect(DSN, autocommit=True, options=f"-c search_path={old.schema}") as v12:
            v12.execute(V12_UPSERT, (lid, "+2348031234567", "Ada", json.dumps(FIELDS)))
            with PostgresStore(DSN, schema=old.schema) as new:
                new.migrate()
                assert new.schema_version() == new.SCHEMA_VERSION == 13
                (_, before), = new.list_contacts("acme", lid)
                assert (before.name, before.fields) == ("Ada", FIELDS)  # every field kept (in jsonb's order)
                new.add_contacts("acme", lid, [Contact(phone="+2348031234568", fields=FIELDS)])
                assert list(new.list_contacts("acme", lid)[1][1].fields) == list(FIELDS)
                # a process of the release before, still running, updates that contact: read back whole
                v12.execute(V12_UPSERT, (lid, "+2348031234568", None, json.dumps({"new": "1", "mid": "3"})))
                assert list(new.list_contacts("acme", lid)[1][1].fields) == ["mid", "new"]
                v12.execute(V12_UPSERT, (lid, "+2348031234568", None, json.dumps({"new": "1", **FIELDS})))
                assert list(new.list_contacts("acme", lid)[1][1].fields) == [*FIELDS, "new"]
    finally:
        old.close()


# --------------------------------------------------------------- 4: limits of the Store API
HUGE = 2**63

PAGED: list[tuple[str, Callable[[Store], Any]]] = [
    ("limit", lambda s: s.list_messages("acme", limit=HUGE)),
    ("limit", lambda s: s.list_messages("acme", limit=-1)),
    ("limit", lambda s: s.in_flight("acme", [Status.SENT], created_before=utcnow(), limit=HUGE)),
    ("limit", lambda s: s.orphan_reports("acme", limit=HUGE)),
    ("limit", lambda s: s.list_inbound("acme", limit=HUGE)),
    ("before", lambda s: s.list_inbound("acme", before=HUGE)),
    ("limit", lambda s: s.list_optouts("acme", limit=HUGE)),
    ("offset", lambda s: s.list_optouts("acme", offset=HUGE)),
    ("offset", lambda s: s.list_optouts("acme", offset=-1)),
    ("limit", lambda s: s.list_campaigns("acme", limit=HUGE)),
    ("limit", lambda s: s.list_campaigns("acme", limit="5")),
    ("after_id", lambda s: s.recipients("acme", "c1", after_id=HUGE)),
    ("limit", lambda s: s.recipients("acme", "c1", limit=HUGE)),
    ("limit", lambda s: s.claim_recipients("acme", "c1", HUGE, lambda: "m")),
    ("limit", lambda s: s.recover_claims("acme", "c1", "me", utcnow(), HUGE)),
    ("after_id", lambda s: s.list_contacts("acme", "l1", after_id=HUGE)),
    ("limit", lambda s: s.list_contacts("acme", "l1", limit=True)),
]


@pytest.mark.parametrize(("arg", "call"), PAGED, ids=[f"{i}-{a}" for i, (a, _) in enumerate(PAGED)])
def test_a_limit_no_store_holds_is_a_validation_error_on_every_store(store: Store, arg: str,
                                                                    call: Callable[[Store], Any]) -> None:
    _list(store)
    with pytest.raises(ValidationError) as caught:
        call(store)
    assert caught.value.field == arg
    assert store.list_messages("acme", limit=2**63 - 1) == []  # the largest is fine everywhere


# -------------------------------------------------------------------------- 5: cost
@pytest.mark.parametrize(("given", "back"), [("1E+2", "100"), ("-0", "0"), ("-0.00", "0.00"), ("1.50", "1.50"),
                                             ("0E+3", "0"), ("2.5E+3", "2500")])
def test_a_cost_comes_back_in_the_same_form_on_every_store(store: Store, given: str, back: str) -> None:
    now = utcnow()
    store.insert_messages([MessageRecord(tenant="acme", message_id="m1", to="+2348031234567", status=Status.SENT,
                                         cost=Decimal(given), created_at=now, updated_at=now)])
    assert str(store.get_message("acme", "m1").cost) == back
    store.insert_messages([MessageRecord(tenant="acme", message_id="m2", to="+2348031234567",
                                         status=Status.SUBMITTED, created_at=now, updated_at=now)])
    store.update_messages("acme", [MessageUpdate(message_id="m2", status=Status.SENT, at=now + timedelta(seconds=1),
                                                 cost=Decimal(given))])
    assert str(store.get_message("acme", "m2").cost) == back
