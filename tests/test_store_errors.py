"""A failing store (locked, read-only, unreachable, closed) is a typed StoreError naming where,
out of the public API and the webhook app (503: the vendor retries). Real SQLite files and
a real PostgreSQL server."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from reference_provider import sign
from services import echo_config as config
from services import echo_plugins as plugins
from smsgate import Contact, Gateway, SmsgateError, Status, StoreError, ValidationError
from smsgate.store.base import ContactListRow
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.webhooks import webhook_app


def report_body(provider_message_id: str | None) -> bytes:
    return json.dumps([{"id": provider_message_id, "status": "delivered"}]).encode()


def test_a_locked_sqlite_file_is_a_store_error_naming_it(tmp_path: Path, emu_url: str) -> None:
    EmulatorControl(emu_url).reset()
    path = tmp_path / "locked.db"
    store = SQLiteStore(str(path), timeout=0.05)
    store.migrate()
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        first = acme.send("08031234567", "before")
        other = sqlite3.connect(path)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError) as info:
                acme.send("08031234567", "while locked")
            with pytest.raises(StoreError):
                gw.receive(
                    "acme",
                    "one",
                    {"x-echo-signature": sign(report_body(first.provider_message_id))},
                    report_body(first.provider_message_id),
                )
        finally:
            other.rollback()
            other.close()
        err = info.value
        assert isinstance(err, SmsgateError) and not isinstance(err, sqlite3.Error)
        assert str(path) in str(err) and "database is locked" in str(err) and err.store == repr(str(path))
        # nothing half-made: the refused message was not logged, nor sent; the report not applied
        assert [m.message_id for m in acme.messages()] == [first.message_id]
        assert acme.get(first.message_id).status is Status.SUBMITTED
        assert len([r for r in EmulatorControl(emu_url).requests() if r.method == "POST"]) == 1
    store.close()


def test_a_read_only_sqlite_store_is_a_store_error_and_a_503_at_the_webhook(
    tmp_path: Path, emu_url: str
) -> None:
    path = tmp_path / "ro.db"
    store = SQLiteStore(str(path))
    store.migrate()
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw, LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send("08031234567", "x")
        store._conn.execute("PRAGMA query_only = ON")  # SQLite refuses every write, as for a read-only file
        with pytest.raises(StoreError, match=r"readonly database.*not writable"):
            gw.tenant("acme").send("08031234567", "y")
        body = report_body(sent.provider_message_id)
        answer = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
        assert answer.status_code == 503 and "retry" in answer.json()["error"]
        assert str(tmp_path) not in answer.text  # no file path told to the vendor
        store._conn.execute("PRAGMA query_only = OFF")
        again = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
        assert again.status_code == 200  # the vendor's retry is applied
        assert gw.tenant("acme").get(sent.message_id).status is Status.DELIVERED
    store.close()


def test_a_closed_sqlite_store_is_a_store_error(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "c.db"))
    store.migrate()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_messages("acme")


# ------------------------------------------------------------------ PostgreSQL
def test_a_read_only_postgresql_store_is_a_store_error_naming_the_server(emu_url: str) -> None:
    from test_store_postgres import DSN, drop_schema, require_postgres, unique_schema

    require_postgres()
    from smsgate.store.postgres import PostgresStore, server_of

    schema = unique_schema()
    writer = PostgresStore(DSN, schema=schema)
    writer.migrate()
    read_only = PostgresStore(
        f"{DSN}{'&' if '?' in DSN else '?'}options=-c%20default_transaction_read_only%3Don", schema=schema
    )
    try:
        with (
            Gateway(config(emu_url), store=read_only, plugins=plugins()) as gw,
            LiveServer(webhook_app(gw)) as hooks,
        ):
            with pytest.raises(StoreError) as info:
                gw.tenant("acme").send("08031234567", "x")
            assert "read-only" in str(info.value) and server_of(DSN) in str(info.value)
            body = report_body("nope")
            answer = httpx.post(
                f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)}
            )
            assert answer.status_code == 503
        assert writer.list_messages("acme") == []
    finally:
        read_only.close()
        writer.close()
        drop_schema(schema)


def test_an_unreachable_postgresql_server_is_a_store_error_once_open(emu_url: str) -> None:
    from test_store_postgres import DSN, drop_schema, require_postgres, unique_schema

    require_postgres()
    import psycopg

    from smsgate.store.postgres import PostgresStore, server_of

    schema = unique_schema()
    store = PostgresStore(DSN, schema=schema, pool_size=1)
    store.migrate()
    try:
        with store._conn() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))  # returns once it ended
        with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
            # the pooled connection the server ended while idle is replaced when taken (one ended
            # mid-statement is a StoreError naming the server: tests/test_faults.py)
            assert gw.tenant("acme").messages() == []
        store.close()
        from services import free_ports

        nowhere = f"postgresql://postgres@127.0.0.1:{free_ports()}/test?connect_timeout=3"
        with pytest.raises(StoreError) as info:
            PostgresStore(nowhere).list_messages("acme")
        assert info.value.store == server_of(nowhere) and "cannot connect" in str(info.value)
        with pytest.raises(StoreError, match="closed"):
            store.list_messages("acme")
    finally:
        store.close()
        drop_schema(schema)


def test_an_unexpected_sqlite_constraint_is_a_store_error_and_a_duplicate_still_its_own_error(
    tmp_path: Path,
) -> None:
    """A constraint the store does not handle (here a trigger, as a changed schema may have) was a
    raw ``sqlite3.IntegrityError`` out of ``add_contacts``: it is a StoreError naming the file and
    the constraint, with nothing written. A duplicate list is still the store's own ValidationError."""
    path = tmp_path / "constrained.db"
    store = SQLiteStore(str(path))
    store.migrate()
    store.create_contact_list(ContactListRow(tenant="acme", list_id="vip", name="VIP",
                                             created_at=datetime.now(timezone.utc)))
    store.add_contacts("acme", "vip", [Contact(phone="+2348031234567")])
    other = sqlite3.connect(path)
    other.execute("CREATE TRIGGER no_test_numbers BEFORE INSERT ON contacts WHEN NEW.phone LIKE '+234800%' "
                  "BEGIN SELECT RAISE(ABORT, 'no test numbers'); END")
    other.commit()
    other.close()
    with pytest.raises(StoreError) as info:
        store.add_contacts("acme", "vip", [Contact(phone="+2348031234568"), Contact(phone="+2348001234567")])
    err = info.value
    assert not isinstance(err, sqlite3.Error) and isinstance(err.__cause__, sqlite3.IntegrityError)
    assert str(path) in str(err) and "no test numbers" in str(err) and err.store == repr(str(path))
    # nothing half-made: the contact before the refused one was not kept
    assert [c.phone for _, c in store.list_contacts("acme", "vip")] == ["+2348031234567"]
    with pytest.raises(ValidationError, match="already exists"):
        store.create_contact_list(ContactListRow(tenant="acme", list_id="vip", name="VIP again",
                                                 created_at=datetime.now(timezone.utc)))
    store.close()


def test_an_unexpected_postgresql_constraint_is_a_store_error_and_the_handled_ones_still_their_own() -> None:
    """A constraint the store does not handle (here a check constraint, as a changed schema may
    have) was a raw ``psycopg`` integrity error out of ``add_contacts``: it is a StoreError naming
    the server and the constraint, with nothing written, as on SQLite. The violations the store
    handles on purpose keep their own errors: a duplicate contact list (ValidationError), campaign
    and message id (ValueError)."""
    from test_store_postgres import DSN, drop_schema, require_postgres, unique_schema

    require_postgres()
    import psycopg

    from smsgate.models import CampaignStatus, MessageRecord
    from smsgate.store.base import CampaignRow
    from smsgate.store.postgres import PostgresStore, server_of

    schema = unique_schema()
    store = PostgresStore(DSN, schema=schema)
    store.migrate()
    try:
        now = datetime.now(timezone.utc)
        store.create_contact_list(ContactListRow(tenant="acme", list_id="vip", name="VIP", created_at=now))
        store.add_contacts("acme", "vip", [Contact(phone="+2348031234567")])
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute(f'ALTER TABLE "{schema}".contacts ADD CONSTRAINT no_test_numbers '
                          "CHECK (phone NOT LIKE '+234800%')")
        with pytest.raises(StoreError) as info:
            store.add_contacts("acme", "vip", [Contact(phone="+2348031234568"), Contact(phone="+2348001234567")])
        err = info.value
        assert not isinstance(err, psycopg.Error) and isinstance(err.__cause__, psycopg.IntegrityError)
        assert err.store == server_of(DSN) and "no_test_numbers" in str(err) and server_of(DSN) in str(err)
        assert "+2348001234567" not in str(err)  # not the row's values (PostgreSQL's DETAIL): personal data
        assert [c.phone for _, c in store.list_contacts("acme", "vip")] == ["+2348031234567"]
        # the store's own: still their errors
        with pytest.raises(ValidationError, match="already exists"):
            store.create_contact_list(ContactListRow(tenant="acme", list_id="vip", name="again", created_at=now))
        campaign = CampaignRow(tenant="acme", campaign_id="c1", name="c", status=CampaignStatus.DRAFT, created_at=now,
                               updated_at=now)
        store.create_campaign(campaign)
        with pytest.raises(ValueError, match="already exists") as again:
            store.create_campaign(campaign)
        assert not isinstance(again.value, StoreError)
        record = MessageRecord(message_id="m1", tenant="acme", to="+2348031234567", status=Status.QUEUED,
                               created_at=now, updated_at=now)
        store.insert_messages([record])
        with pytest.raises(ValueError, match="duplicate message id") as dup:
            store.insert_messages([record])
        assert not isinstance(dup.value, StoreError)
    finally:
        store.close()
        drop_schema(schema)
