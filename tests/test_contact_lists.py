"""tenant.contact_lists: bad arguments are typed errors naming them, and create nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from smsgate import AsyncGateway, Contact, Gateway
from smsgate.campaigns import CsvAudience
from smsgate.errors import ValidationError


def config(tmp_path: Path) -> dict[str, Any]:
    return {"store": f"sqlite:///{tmp_path / 'lists.db'}",
            "tenants": {"acme": {"default_region": "NG", "providers": {"mem": {"plugin": "memory"}}}}}


@pytest.mark.parametrize(("args", "field"), [
    (("",), "name"),                        # was created with an empty name
    (("   ",), "name"),
    ((None,), "name"),                      # was "contact list 'lst_...' already exists"
    ((5,), "name"),
    (("VIP", "08031234567"), "contacts"),   # a string: each character was a row, an empty list was left
    (("VIP", b"08031234567"), "contacts"),
    (("VIP", {"phone": "08031234567"}), "contacts"),  # one contact, not a list: its keys were rows
])
def test_bad_create_arguments_are_validation_errors_and_create_nothing(
    tmp_path: Path, args: tuple[Any, ...], field: str
) -> None:
    with Gateway(config(tmp_path)) as gw:
        lists = gw.tenant("acme").contact_lists
        with pytest.raises(ValidationError) as info:
            lists.create(*args)
        assert info.value.field == field
        assert lists.list() == []

    async def run() -> list[Any]:
        async with AsyncGateway(config(tmp_path)) as agw:
            alists = agw.tenant("acme").contact_lists
            with pytest.raises(ValidationError):
                await alists.create(*args)
            return await alists.list()

    assert asyncio.run(run()) == []


def test_add_refuses_a_string_of_contacts(tmp_path: Path) -> None:
    with Gateway(config(tmp_path)) as gw:
        lists = gw.tenant("acme").contact_lists
        list_id = lists.create("VIP", ["08031234561"]).contact_list.list_id
        with pytest.raises(ValidationError, match="contacts"):
            lists.add(list_id, "08031234567")
        assert [c.phone for c in lists.contacts(list_id)] == ["+2348031234561"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url_or_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'named.db'}"
        return
    from test_store_postgres import scratch_store

    s = scratch_store()
    s.migrate()
    yield s
    s.close()


@pytest.mark.parametrize(("kwargs", "field", "said"), [
    ({"name": ""}, "name", "'' is blank: a list needs a name"),
    ({"name": "  \t"}, "name", "is blank"),
    ({"name": 5}, "name", "expected a string, got int"),         # was "a list needs a non-blank name, not 5"
    ({"name": None}, "name", "expected a string, got NoneType"),
    ({"name": b"VIP"}, "name", "expected a string, got bytes"),
    ({"name": "x" * 201}, "name", "is 201 characters long; at most 200"),  # was accepted
    ({"name": "VIP\nlist"}, "name", "contains '\\n': no line breaks"),     # was accepted
    ({"name": "VIP", "description": 5}, "description", "expected a string, got int"),
    ({"name": "VIP", "list_id": ""}, "list_id", "is blank: give an id"),  # was silently replaced by a new id
    ({"name": "VIP", "list_id": 5}, "list_id", "expected a string, got int"),  # was stored as '5'
    ({"name": "VIP", "list_id": "x" * 65}, "list_id", "at most 64"),
])
def test_bad_list_arguments_say_what_and_where(store_url_or_store: Any, kwargs: dict[str, Any], field: str,
                                               said: str) -> None:
    cfg = {**config(Path(".")), "store": "memory://"}
    with Gateway(cfg, store=store_url_or_store) as gw:
        lists = gw.tenant("acme").contact_lists
        with pytest.raises(ValidationError) as info:
            lists.create(**kwargs)
        assert (info.value.field, info.value.location) == (field, "contact_lists.create")
        assert said in str(info.value) and str(info.value).startswith("contact_lists.create, field")
        assert lists.list() == []


def test_a_list_id_in_use_is_a_validation_error_naming_it(store_url_or_store: Any) -> None:
    cfg = {**config(Path(".")), "store": "memory://"}
    with Gateway(cfg, store=store_url_or_store) as gw:
        lists = gw.tenant("acme").contact_lists
        lists.create("VIP", ["08031234561"], list_id="vip")
        with pytest.raises(ValidationError) as info:  # was a bare ValueError
            lists.create("VIP again", ["08031234562"], list_id="vip")
        assert (info.value.field, info.value.location) == ("list_id", "contact_lists.create")
        assert "'vip' already exists for tenant 'acme'; give another list_id" in str(info.value)
        assert [(row.list_id, row.name, row.size) for row in lists.list()] == [("vip", "VIP", 1)]
        # names need not be unique: lists are found by id
        twin = lists.create("VIP", ["08031234563"]).contact_list
        assert twin.list_id != "vip" and sorted(r.name for r in lists.list()) == ["VIP", "VIP"]

    async def run() -> None:
        async with AsyncGateway(cfg, store=store_url_or_store) as agw:
            with pytest.raises(ValidationError, match="already exists"):
                await agw.tenant("acme").contact_lists.create("VIP", list_id="vip")

    asyncio.run(run())


# ----------------------------------------------------------------------- a number repeated in one import
DUPES = ("phone,name,tier\n08031234561,Ada,gold\n08031234562,Bola,silver\n+234 803 123 4561,Ada again,bronze\n"
         "0803,Bad,gold\n08031234562,Bola again,gold\n")


def test_a_number_repeated_in_one_csv_import_names_its_rows_and_keeps_the_first(
        store_url_or_store: Any, tmp_path: Path) -> None:
    """A number given twice in one file was counted "updated" (as if the list had it before),
    without saying which row repeated it, and the later row replaced the earlier one."""
    path = tmp_path / "vip.csv"
    path.write_text(DUPES)
    cfg = {**config(Path(".")), "store": "memory://"}
    with Gateway(cfg, store=store_url_or_store) as gw:
        lists = gw.tenant("acme").contact_lists
        report = lists.create("VIP", CsvAudience(path), list_id="vip")
        assert (report.rows, report.added, report.updated, len(report.errors)) == (5, 2, 0, 1)
        assert [(d.location, d.phone, d.reason, d.detail) for d in report.duplicates] == [
            ("vip.csv, line 4", "+234 803 123 4561", "duplicate", "+2348031234561 already at vip.csv, line 2"),
            ("vip.csv, line 6", "08031234562", "duplicate", "+2348031234562 already at vip.csv, line 3"),
        ]
        assert [(c.phone, c.name, c.fields) for c in lists.contacts("vip")] == [
            ("+2348031234561", "Ada", {"tier": "gold"}), ("+2348031234562", "Bola", {"tier": "silver"})]
        # the same file again: the two numbers the list had are updated once each, the repeats named again
        again = lists.add("vip", CsvAudience(path))
        assert (again.rows, again.added, again.updated, len(again.duplicates), len(again.errors)) == (5, 0, 2, 2, 1)
        assert again.contact_list.size == 2


def test_a_number_repeated_in_a_list_of_contacts_is_named_across_store_batches(
        store_url_or_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeats are found across the batches the import stores (``CHUNK`` contacts each), not
    only within one; a number the list had before the import is ``updated``, once."""
    monkeypatch.setattr("smsgate.contacts.CHUNK", 2)
    cfg = {**config(Path(".")), "store": "memory://"}
    with Gateway(cfg, store=store_url_or_store) as gw:
        lists = gw.tenant("acme").contact_lists
        lists.create("VIP", [Contact(phone="08031234569", name="Old")], list_id="vip")
        report = lists.add("vip", [
            "08031234561",
            Contact(phone="08031234562", name="Bo"),
            {"phone": "+2348031234561", "name": "Later"},   # stored in the batch before
            "08031234569", "08031234569",                   # in the list before: updated, then a repeat
            {"phone": "+234 803 123 4562"},
        ])
        assert (report.rows, report.added, report.updated, report.errors) == (6, 2, 1, [])
        assert [(d.location, d.detail) for d in report.duplicates] == [
            ("contact 3", "+2348031234561 already at contact 1"),
            ("contact 5", "+2348031234569 already at contact 4"),
            ("contact 6", "+2348031234562 already at contact 2"),
        ]
        assert [(c.phone, c.name) for c in lists.contacts("vip")] == [
            ("+2348031234569", None), ("+2348031234561", None), ("+2348031234562", "Bo")]


def test_async_add_names_repeated_numbers(tmp_path: Path) -> None:
    async def run() -> list[tuple[str, str]]:
        async with AsyncGateway(config(tmp_path)) as agw:
            report = await agw.tenant("acme").contact_lists.create("VIP", ["08031234561", "+2348031234561"])
            return [(d.location, d.detail) for d in report.duplicates]

    assert asyncio.run(run()) == [("contact 2", "+2348031234561 already at contact 1")]
