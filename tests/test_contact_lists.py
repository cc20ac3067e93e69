"""tenant.contact_lists: bad arguments are typed errors naming them, and create nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from smsgate import AsyncGateway, Gateway
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
