"""lazy27: a gateway whose store is opened at its first use, met at start-up (``open()``), its
tenant handles made without I/O, an SQLite URI's relative file fixed when the gateway is made,
and a Celery dispatch whose finisher the broker refuses."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, create_emulator, echo_plugins, echo_received
from smsgate import AsyncGateway, Gateway
from smsgate.errors import ConfigError, GatewayClosed, StoreUnavailable
from smsgate.server import LiveServer
from smsgate.testing import EmulatorControl

#: lazy27's ports: a closed one stands for a PostgreSQL server that is down
PORTS = range(48400, 48450)
PASSWORD = "s3cret-lazy27"


def _tenant(url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {"default_region": "NG", "providers": {"one": {
        "plugin": "echo", "base_url": url, "sender": "SHOP", "credentials": {"api_key": API_KEY}}}}


def _closed_port() -> int:
    """A port of :data:`PORTS` nothing listens on (a connection is refused at once)."""
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise AssertionError(f"every port of {PORTS} is in use")


@pytest.fixture
def down_postgres() -> str:
    """The URL of a PostgreSQL store whose server is down, with a password in it."""
    pytest.importorskip("psycopg")
    return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{_closed_port()}/test?connect_timeout=2"


@pytest.fixture
def emu() -> Iterator[str]:
    with LiveServer(create_emulator()) as server:
        yield server.url


# ------------------------------------------------------------------ 1. open() at start-up
def test_open_meets_a_store_that_cannot_be_opened_where_check_does_not(down_postgres: str) -> None:
    """An app's start-up check (``gw.check()``) passed with a PostgreSQL server that is down: the
    store is opened at its first use, and check() checks the configuration only. ``gw.open()``
    opens it now: :class:`StoreUnavailable` naming the server, never the password; tried again
    at the next call (it may be temporary)."""
    gw = Gateway({"store": down_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    try:
        assert gw.check() == ["shop/one: echo at http://127.0.0.1:9"]  # the configuration only
        for _ in range(2):
            with pytest.raises(StoreUnavailable) as info:
                gw.open()
            text = str(info.value)
            port = down_postgres.split(":")[3].split("/")[0]
            assert f"cannot open the PostgreSQL store at 127.0.0.1:{port}/test" in text, text
            assert PASSWORD not in text and PASSWORD not in repr(info.value)
    finally:
        gw.close()


def test_open_is_idempotent_returns_the_gateway_and_refuses_once_closed(tmp_path: Path) -> None:
    """``Gateway(...).open()`` opens (and migrates) the store now and returns the gateway; again,
    it does nothing (the same store); closed, it is a GatewayClosed."""
    db = tmp_path / "sms.db"
    made = Gateway({"store": f"sqlite:///{db}", "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    assert not db.exists()  # made: nothing opened
    gw = made.open()
    assert gw is made and db.exists()
    store = gw.store
    assert gw.open() is gw and gw.store is store
    gw.close()
    with pytest.raises(GatewayClosed):
        gw.open()


def test_open_names_an_sqlite_folder_gone_since_the_gateway_was_made(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    gw = Gateway({"store": f"sqlite:///{folder / 'sms.db'}", "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    shutil.rmtree(folder)
    with pytest.raises(ConfigError, match="does not exist") as info:
        gw.open()
    assert str(folder) in str(info.value)
    folder.mkdir()  # fixed: the next call opens it
    assert gw.open() is gw and (folder / "sms.db").exists()
    gw.close()


def test_await_open_opens_an_async_gateways_store_or_raises_naming_it(tmp_path: Path, down_postgres: str) -> None:
    async def main() -> None:
        down = AsyncGateway({"store": down_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
        try:
            assert await down.check_async() == ["shop/one: echo at http://127.0.0.1:9"]
            with pytest.raises(StoreUnavailable) as info:
                await down.open()
            assert "cannot open the PostgreSQL store" in str(info.value) and PASSWORD not in str(info.value)
        finally:
            await down.aclose()
        db = tmp_path / "a.db"
        agw = AsyncGateway({"store": f"sqlite:///{db}", "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
        assert not db.exists()
        assert await agw.open() is agw and db.exists()
        store = agw.store
        assert await agw.open() is agw and agw.store is store
        await agw.aclose()
        with pytest.raises(GatewayClosed):
            await agw.open()

    asyncio.run(main())


# ------------------------------------------------------------ 2. a tenant handle: no I/O
def test_a_tenant_handle_opens_no_store_its_first_call_meets_it(tmp_path: Path, emu: str) -> None:
    """``gw.tenant("shop")`` made the tenant's plan driver, which opened the store: with its SQLite
    folder gone (or its PostgreSQL server down) getting the handle raised. Now the handle is made
    without I/O; its first call raises the typed error, and works once the folder is back."""
    folder = tmp_path / "data"
    folder.mkdir()
    gw = Gateway({"store": f"sqlite:///{folder / 'sms.db'}", "tenants": {"shop": _tenant(emu)}},
                 plugins=echo_plugins())
    shutil.rmtree(folder)
    shop = gw.tenant("shop")
    assert not folder.exists()
    with pytest.raises(ConfigError, match="does not exist"):
        shop.send("08031234567", "hi")
    assert echo_received(EmulatorControl(emu)) == {}  # nothing left
    folder.mkdir()
    assert shop.send("08031234567", "hi").message_id
    assert echo_received(EmulatorControl(emu)) == {"+2348031234567": 1}
    gw.close()


def test_a_tenant_handle_of_a_gateway_whose_postgres_is_down(down_postgres: str) -> None:
    gw = Gateway({"store": down_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    try:
        shop = gw.tenant("shop")
        assert shop.normalize("08031234567") == "+2348031234567"  # no store needed
        with pytest.raises(StoreUnavailable):
            shop.optouts.count()
    finally:
        gw.close()

    async def main() -> None:  # (an AsyncGateway's handle already was I/O free)
        agw = AsyncGateway({"store": down_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
        try:
            handle = agw.tenant("shop")
            with pytest.raises(StoreUnavailable):
                await handle.optouts.count()
        finally:
            await agw.aclose()

    asyncio.run(main())


# ------------------------------------------- 3. a relative SQLite URI fixed at construction
@pytest.mark.parametrize("url", ["sqlite:///rel.db", "sqlite:///file:rel.db?mode=rwc"], ids=["path", "uri"])
def test_a_relative_sqlite_store_is_the_folder_current_when_the_gateway_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu: str, url: str) -> None:
    """``sqlite:///file:rel.db?mode=rwc`` (an SQLite URI) was read against the folder current at
    the gateway's first use: an application that changed folder between making its gateway and
    its first send logged into another file (opt-outs and idempotency keys not seen). Now both
    forms name the file in the folder current when the gateway is made."""
    made_in, later = tmp_path / "app", tmp_path / "elsewhere"
    made_in.mkdir()
    later.mkdir()
    monkeypatch.chdir(made_in)
    gw = Gateway({"store": url, "tenants": {"shop": _tenant(emu)}}, plugins=echo_plugins())
    monkeypatch.chdir(later)
    sent = gw.tenant("shop").send("08031234567", "hi")
    assert gw.store.location() == f"sqlite:{os.path.realpath(made_in / 'rel.db')}"
    gw.close()
    assert (made_in / "rel.db").exists() and not (later / "rel.db").exists()
    assert echo_received(EmulatorControl(emu)) == {"+2348031234567": 1}
    with Gateway({"store": f"sqlite:///{made_in / 'rel.db'}", "tenants": {"shop": _tenant(emu)}},
                 plugins=echo_plugins()) as again:
        assert again.tenant("shop").get(sent.message_id).to == "+2348031234567"
