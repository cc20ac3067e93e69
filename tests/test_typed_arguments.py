"""Public entry points refuse a wrong-typed or oddly-formed argument with smsgate's typed
error naming it (never a raw ``sqlite3.ProgrammingError``, ``AttributeError`` or pydantic
error from a library), sync and async, on an SQLite store; duration strings (``"90d"``) are
read by ``purge`` as by ``messages`` / ``stats``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from smsgate import AsyncGateway, Gateway
from smsgate.errors import SmsgateError, ValidationError
from smsgate.models import Status, utcnow
from smsgate.store.base import Store
from store_contract import make_record

ODD: list[Any] = [object(), 12.5, ["x"], {"a": 1}, b"id"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gw(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    """A gateway on an SQLite store, and on PostgreSQL (a scratch schema; skipped without a server)."""
    if request.param == "postgres":
        from test_store_postgres import scratch_store

        store: Store | None = scratch_store()
        assert store is not None
        store.migrate()
        request.addfinalizer(store.close)
    else:
        store = None
    path = tmp_path / "smsgate.toml"
    path.write_text(f"""
store = "sqlite:///{tmp_path / "typed.db"}"
[tenants.acme]
default_region = "NG"
[tenants.acme.providers.one]
plugin = "memory"
""")
    with Gateway(str(path), store=store) as gateway:
        yield gateway


def _refused(call: Any, field: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.field == field, info.value
    return info.value


@pytest.mark.parametrize("value", ODD, ids=lambda v: type(v).__name__)
def test_ids_of_the_tenant_handle_are_checked(gw: Gateway, value: Any) -> None:
    t = gw.tenant("acme")
    _refused(lambda: t.status(value), "message_id")
    _refused(lambda: t.look_up(value), "message_id")
    _refused(lambda: t.get(value), "message_id")
    _refused(lambda: t.stats(campaign_id=value), "campaign_id")
    _refused(lambda: t.stats(provider=value), "provider")
    _refused(lambda: t.orphan_reports(provider=value), "provider")
    _refused(lambda: t.campaigns.get(value), "campaign_id")
    _refused(lambda: gw.tenant(value), "tenant")


def test_the_import_report_is_not_a_list_id(gw: Gateway) -> None:
    lists = gw.tenant("acme").contact_lists
    report = lists.create("v", ["+2348030000001"])
    error = _refused(lambda: lists.get(report), "list_id")  # type: ignore[arg-type]
    assert "ImportReport" in str(error) and "contact_list.list_id" in str(error)
    assert lists.get(report.contact_list.list_id).size == 1


@pytest.mark.parametrize("value", ODD, ids=lambda v: type(v).__name__)
def test_list_ids_of_contact_lists_are_checked(gw: Gateway, value: Any, tmp_path: Path) -> None:
    lists = gw.tenant("acme").contact_lists
    _refused(lambda: lists.get(value), "list_id")
    _refused(lambda: lists.delete(value), "list_id")
    _refused(lambda: list(lists.contacts(value)), "list_id")
    _refused(lambda: lists.add(value, ["+2348030000002"]), "list_id")
    _refused(lambda: lists.remove(value, ["+2348030000002"]), "list_id")
    _refused(lambda: lists.audience(value), "list_id")
    _refused(lambda: lists.export(value, tmp_path / "out.csv"), "list_id")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("value", ["a\x00b", "\ud800"], ids=["nul", "surrogate"])
def test_ids_the_store_cannot_hold_are_refused(gw: Gateway, value: str) -> None:
    t = gw.tenant("acme")
    _refused(lambda: t.get(value), "message_id")
    _refused(lambda: t.status(value), "message_id")
    _refused(lambda: t.contact_lists.get(value), "list_id")
    _refused(lambda: t.campaigns.get(value), "campaign_id")


def test_a_well_formed_unknown_id_is_still_not_found(gw: Gateway) -> None:
    from smsgate.errors import NotFound

    t = gw.tenant("acme")
    for call in (lambda: t.get("nope"), lambda: t.contact_lists.get("nope"), lambda: t.campaigns.get("nope")):
        with pytest.raises(NotFound):
            call()


def test_async_twins_check_ids(gw: Gateway) -> None:
    async def main() -> None:
        ag = AsyncGateway.sharing(gw)
        try:
            at = ag.tenant("acme")
            report = await at.contact_lists.create("v", ["+2348030000001"])
            obj = object()
            for coro, field in (
                (lambda: at.status(obj), "message_id"), (lambda: at.look_up(obj), "message_id"),
                (lambda: at.get(obj), "message_id"), (lambda: at.stats(campaign_id=obj), "campaign_id"),
                (lambda: at.stats(provider=obj), "provider"), (lambda: at.orphan_reports(provider=obj), "provider"),
                (lambda: at.campaigns.get(obj), "campaign_id"), (lambda: at.contact_lists.get(report), "list_id"),
                (lambda: at.contact_lists.delete(obj), "list_id"), (lambda: at.contact_lists.contacts(obj), "list_id"),
                (lambda: at.contact_lists.audience(obj), "list_id"),
            ):
                with pytest.raises(ValidationError) as info:
                    await coro()  # type: ignore[no-untyped-call]
                assert info.value.field == field
            with pytest.raises(ValidationError) as info:
                ag.tenant(obj)  # type: ignore[arg-type]
            assert info.value.field == "tenant"
        finally:
            await ag.aclose()

    asyncio.run(main())


def _seed(gw: Gateway) -> None:
    old, recent = utcnow() - timedelta(days=100), utcnow() - timedelta(days=1)
    gw.store.insert_messages([
        make_record("old", tenant="acme", status=Status.DELIVERED).model_copy(
            update={"created_at": old, "updated_at": old}),
        make_record("recent", tenant="acme", status=Status.DELIVERED).model_copy(
            update={"created_at": recent, "updated_at": recent}),
    ])


@pytest.mark.parametrize("how", ["tenant", "gateway"])
def test_purge_reads_a_duration_string_as_messages_does(gw: Gateway, how: str) -> None:
    _seed(gw)
    purge = gw.tenant("acme").purge if how == "tenant" else gw.purge
    assert purge(older_than="90d", dry_run=True).messages == 1
    assert purge(older_than=" 2160h ", dry_run=True).messages == 1
    assert purge(older_than="200d").messages == 0
    assert purge(older_than="90d").messages == 1
    assert {m.message_id for m in gw.store.list_messages("acme")} == {"recent"}


@pytest.mark.parametrize("value", ["90 days", "-1d", "", "1e999d"])
def test_purge_refuses_a_bad_duration_string_naming_older_than(gw: Gateway, value: str) -> None:
    _refused(lambda: gw.purge(older_than=value), "older_than")
    _refused(lambda: gw.tenant("acme").purge(older_than=value), "older_than")


def test_async_purge_reads_a_duration_string(gw: Gateway) -> None:
    _seed(gw)

    async def main() -> tuple[int, int]:
        ag = AsyncGateway.sharing(gw)
        try:
            a = (await ag.tenant("acme").purge(older_than="90d", dry_run=True)).messages
            b = (await ag.purge(older_than="90d", dry_run=True)).messages
            return a, b
        finally:
            await ag.aclose()

    assert asyncio.run(main()) == (1, 1)


def test_other_durations_of_the_tenant_read_strings_too(gw: Gateway) -> None:
    t = gw.tenant("acme")
    assert t.recover_queued(older_than="1h") == []
    t.sync_statuses(older_than="5m", max_age="7d", backoff="1m", max_backoff="1h", recover_after="1h")
    _refused(lambda: t.recover_queued(older_than="soon"), "older_than")


@pytest.mark.parametrize("before", ["2026-01-01", 1767225600, None])
def test_store_purge_refuses_what_is_not_a_datetime(gw: Gateway, before: Any) -> None:
    _refused(lambda: gw.store.purge("acme", before=before), "before")
    _refused(lambda: gw.store.purge(None, before=before, dry_run=True), "before")


@pytest.mark.parametrize("batch_size", [0, -1, "10", 2.5, True])
def test_store_purge_refuses_a_bad_batch_size(gw: Gateway, batch_size: Any) -> None:
    _refused(lambda: gw.store.purge("acme", before=datetime(2026, 1, 1), batch_size=batch_size), "batch_size")


def test_store_purge_refuses_a_bad_tenant(gw: Gateway) -> None:
    _refused(lambda: gw.store.purge(object(), before=datetime(2026, 1, 1)), "tenant")  # type: ignore[arg-type]
    # a blank name would purge nothing and say nothing: refused by the store's rule, and by the
    # gateway's purge before it recovers any claim
    _refused(lambda: gw.store.purge(" ", before=datetime(2026, 1, 1)), "tenant")
    _refused(lambda: gw.purge(older_than="90d", tenant=""), "tenant")


def test_typed_errors_are_smsgate_errors(gw: Gateway) -> None:
    with pytest.raises(SmsgateError):
        gw.tenant("acme").get(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("dry_run", ["false", None, 0])
def test_purge_dry_run_must_be_a_bool(gw: Gateway, dry_run: Any) -> None:
    _seed(gw)
    _refused(lambda: gw.purge(older_than="90d", dry_run=dry_run), "dry_run")
    _refused(lambda: gw.tenant("acme").purge(older_than="90d", dry_run=dry_run), "dry_run")
    assert {m.message_id for m in gw.store.list_messages("acme")} == {"old", "recent"}


@pytest.mark.parametrize("tenants", ["acme", [object()], [["acme"]], [b"acme"]], ids=["str", "object", "list", "bytes"])
def test_gateway_sync_statuses_refuses_odd_tenant_names(gw: Gateway, tenants: Any) -> None:
    _refused(lambda: gw.sync_statuses(tenants=tenants), "tenants")

    async def main() -> None:
        ag = AsyncGateway.sharing(gw)
        try:
            with pytest.raises(ValidationError) as info:
                await ag.sync_statuses(tenants=tenants)
            assert info.value.field == "tenants"
        finally:
            await ag.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("tenant", [object(), ["acme"], {"a": 1}], ids=["object", "list", "dict"])
def test_webhooks_refuse_an_odd_tenant(gw: Gateway, tenant: Any) -> None:
    _refused(lambda: gw.receive(tenant, "one", {}, b""), "tenant")
    _refused(lambda: gw.ingest(tenant, "one", {}, b""), "tenant")

    async def main() -> None:
        ag = AsyncGateway.sharing(gw)
        try:
            with pytest.raises(ValidationError) as info:
                await ag.receive(tenant, "one", {}, b"")
            assert info.value.field == "tenant"
        finally:
            await ag.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("value", ["a\x00b", "\ud800"], ids=["nul", "surrogate"])
def test_filters_the_store_cannot_hold_are_refused(gw: Gateway, value: str) -> None:
    t = gw.tenant("acme")
    for name in ("campaign_id", "before", "to"):
        error = _refused(lambda: t.messages(**{name: value}), name)
        assert error.location == "messages"
    _refused(lambda: t.inbound(from_number=value), "from_number")


def test_campaign_create_checks_its_id_and_text(gw: Gateway) -> None:
    t = gw.tenant("acme")
    audience = t.contact_lists.audience(t.contact_lists.create("v", ["+2348030000001"]).contact_list.list_id)
    _refused(lambda: t.campaigns.create("c", audience=audience, text="hi", campaign_id=object()), "campaign_id")
    _refused(lambda: t.campaigns.create("c", audience=audience, text=object()), "text")
    assert t.campaigns.list() == []


def test_campaign_retry_failed_checks_its_reasons(gw: Gateway) -> None:
    t = gw.tenant("acme")
    audience = t.contact_lists.audience(t.contact_lists.create("v", ["+2348030000001"]).contact_list.list_id)
    handle = t.campaigns.create("c", audience=audience, text="hi")
    for reason in (object(), [object()], 5, ["ok", None]):
        _refused(lambda: handle.retry_failed(reason), "reason")
    assert handle.retry_failed("timeout") == 0


@pytest.mark.parametrize("instances", ["one", [["one"]], [object()]], ids=["str", "list", "object"])
def test_sync_statuses_instances_must_be_names(gw: Gateway, instances: Any) -> None:
    _refused(lambda: gw.tenant("acme").sync_statuses(instances=instances), "instances")


@pytest.mark.parametrize("phones", [None, object(), "+2348030000001"], ids=["none", "object", "str"])
def test_contact_list_remove_needs_a_list_of_numbers(gw: Gateway, phones: Any) -> None:
    lists = gw.tenant("acme").contact_lists
    list_id = lists.create("v", ["+2348030000001"]).contact_list.list_id
    _refused(lambda: lists.remove(list_id, phones), "phones")
    assert lists.get(list_id).size == 1


def test_contact_list_export_refuses_an_odd_destination(gw: Gateway) -> None:
    lists = gw.tenant("acme").contact_lists
    list_id = lists.create("v", ["+2348030000001"]).contact_list.list_id
    for dest in (object(), 5, None):
        _refused(lambda: lists.export(list_id, dest), "path_or_file")


@pytest.mark.parametrize("force", ["no", None, 1], ids=["str", "none", "int"])
def test_campaign_delete_force_must_be_a_bool(gw: Gateway, force: Any) -> None:
    t = gw.tenant("acme")
    audience = t.contact_lists.audience(t.contact_lists.create("v", ["+2348030000001"]).contact_list.list_id)
    handle = t.campaigns.create("c", audience=audience, text="hi")
    _refused(lambda: handle.delete(force=force), "force")
    assert [row.campaign_id for row in t.campaigns.list()] == [handle.campaign_id]


def test_stored_tenants_check_the_name(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants, new_key

    store = open_store(f"sqlite:///{tmp_path / 'tenants.db'}")
    store.migrate()
    tenants = StoredTenants(store, keys=new_key())
    try:
        for value in (object(), ["acme"], 5, "a\x00b"):
            _refused(lambda: tenants.get(value), "tenant")
            _refused(lambda: tenants.remove(value), "tenant")
            _refused(lambda: tenants.erase(value), "tenant")
            _refused(lambda: tenants.credential_names(value), "tenant")
            _refused(lambda: tenants.add(value, {"providers": {"one": {"plugin": "memory"}}}), "tenant")
            _refused(lambda: tenants.update(value, {"providers": {"one": {"plugin": "memory"}}}), "tenant")
            _refused(lambda: tenants.rotate(value, "one", {}), "tenant")
        assert tenants.names() == []
    finally:
        store.close()
