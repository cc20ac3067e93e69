"""Gateway.receive / AsyncGateway.receive take the webhook's headers as any mapping or as
(name, value) pairs (str or bytes, as httpx and Starlette hold them); anything else is a
ValidationError naming ``headers`` (a list of pairs raised AttributeError)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers as StarletteHeaders

from reference_provider import sign
from services import echo_config as config
from services import echo_plugins as plugins
from smsgate import AsyncGateway, Gateway, Status, ValidationError
from smsgate.core.reports import webhook_headers
from smsgate.store.base import Store
from smsgate.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(str(tmp_path / "hooks.db"))
    else:
        from test_store_postgres import scratch_store

        s = scratch_store()
    s.migrate()
    yield s
    s.close()


def header_forms(body: bytes) -> list[Any]:
    sig = sign(body)
    return [
        {"X-Echo-Signature": sig},
        [("X-Echo-Signature", sig), ("content-type", "application/json")],
        [(b"x-echo-signature", sig.encode()), (b"content-type", b"application/json")],  # ASGI / .raw
        (("x-echo-signature", sig),),
        (pair for pair in [("X-ECHO-SIGNATURE", sig)]),
        httpx.Headers({"x-echo-signature": sig}),
        StarletteHeaders(raw=[(b"x-echo-signature", sig.encode())]),
    ]


def test_every_header_form_is_read_on_every_store(store: Store, emu_url: str) -> None:
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        for i, _ in enumerate(header_forms(b"")):
            sent = acme.send("08031234567", f"m{i}")
            body = json.dumps([{"id": sent.provider_message_id, "status": "delivered"}]).encode()
            outcome = gw.receive("acme", "one", header_forms(body)[i], body)
            assert outcome.matched == 1, i
            assert acme.get(sent.message_id).status is Status.DELIVERED

    async def run() -> None:
        agw = AsyncGateway(config(emu_url), store=store, plugins=plugins())
        try:
            sent = await agw.tenant("acme").send("08031234567", "async")
            body = json.dumps([{"id": sent.provider_message_id, "status": "delivered"}]).encode()
            outcome = await agw.receive("acme", "one", [(b"x-echo-signature", sign(body).encode())], body)
            assert outcome.matched == 1
        finally:
            await agw.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ("x-echo-signature: abc", "mapping or (name, value) pairs, got str"),
        (b"x-echo-signature: abc", "got bytes"),
        (None, "got NoneType"),
        (5, "got int"),
        ([("x-echo-signature",)], "item 0 is not a (name, value) pair"),
        (["ab"], "item 0 is not a (name, value) pair"),
        ([("x-echo-signature", 5)], "value of header 'x-echo-signature' must be str or bytes"),
        ([(None, "v")], "name of header 0"),
    ],
)
def test_other_headers_are_a_validation_error_and_apply_nothing(
    headers: Any, said: str, store: Store, emu_url: str
) -> None:
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        sent = gw.tenant("acme").send("08031234567", "x")
        body = json.dumps([{"id": sent.provider_message_id, "status": "delivered"}]).encode()
        with pytest.raises(ValidationError) as info:
            gw.receive("acme", "one", headers, body)
        assert info.value.field == "headers" and said in str(info.value) and "one webhook" in str(info.value)
        assert gw.tenant("acme").get(sent.message_id).status is Status.SUBMITTED


def test_a_repeated_header_keeps_both_values() -> None:
    assert webhook_headers([("A", "1"), ("a", "2"), ("B", "x")]) == {"a": "1, 2", "b": "x"}


@given(st.lists(st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=10)), max_size=8))
def test_pairs_and_their_mapping_read_the_same(pairs: list[tuple[str, str]]) -> None:
    as_pairs = webhook_headers(pairs)
    assert set(as_pairs) == {name.lower() for name, _ in pairs}
    last: dict[str, str] = {}
    for name, value in pairs:
        last[name.lower()] = value
    if len(last) == len(pairs):  # no name twice: the mapping form is the same
        assert webhook_headers(dict(pairs)) == as_pairs == last
    latin = [(n, v) for n, v in pairs if (n + v).isascii()]
    assert webhook_headers([(n.encode(), v.encode()) for n, v in latin]) == webhook_headers(latin)
