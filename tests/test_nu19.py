"""A new user deploying smsgate web apps (FastAPI under a pre-forking server, tests with a
module- or session-scoped ``AsyncGateway`` across function-scoped event loops), from the docs.

Claims about what reached the vendor are read from the emulator's own record of requests.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from smsgate import AsyncGateway, Gateway, WrongEventLoop
from smsgate.config import Settings, TenantConfig


def _config(tmp_path: Path, emulator: Any) -> Settings:
    return Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"bc": emulator.provider_settings()})})


def _sent_to(emulator: Any) -> list[str]:
    """The numbers the vendor (the Broadcast emulator) took a message for, from its own record."""
    return [r.json()["to"] for r in emulator.processed("/api/v1/broadcast", "POST")]


#: what a message the vendor took says as it goes (the emulator moves it on after a moment)
TAKEN = {"submitted", "sent", "delivered"}


def _look_ups(emulator: Any) -> int:
    return len(emulator.requests("/api/v1/broadcast/", "GET"))


def _collect() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def no_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the ``fast`` extra: the gateway's own client is an ``httpx.AsyncClient``."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a))


# ---------------------------------------------------------------- status look-ups across loops
# A session-scoped gateway, one event loop per test (asyncio.run per test, as pytest-asyncio's
# function-scoped loops): one test looks a status up, the next sends. The hand-over to a new loop
# happened on sends and campaign runs only; a look-up (tenant.status(), sync_statuses(),
# look_up(), run()) used the client's kept-alive connections of a closed loop.

def test_a_send_after_a_status_look_up_in_a_closed_loop_reaches_the_vendor_once_and_is_logged(
        sms_emulator: Callable[..., Any], tmp_path: Path, no_aiohttp: None) -> None:
    vendor = sms_emulator("broadcast")
    with Gateway(_config(tmp_path, vendor)) as earlier:  # a message sent by another process
        mid = earlier.tenant("acme").send("08031234560", "earlier").message_id
    gw = AsyncGateway(_config(tmp_path, vendor))
    assert isinstance(gw._client, httpx.AsyncClient)
    acme = gw.tenant("acme")
    assert asyncio.run(acme.status(mid)).status in TAKEN  # test 1's loop: a look-up only
    assert _look_ups(vendor) == 1
    # test 2's loop: before, written on test 1's connection: the vendor took it, then a bare
    # RuntimeError('Event loop is closed') and the message left queued
    result = asyncio.run(acme.send("08031234561", "your code is 123456"))
    assert result.status in TAKEN
    assert _sent_to(vendor) == ["2348031234560", "2348031234561"]

    async def statuses() -> list[tuple[str, str]]:
        return sorted((m.to, m.status.value) for m in await acme.messages())
    logged = asyncio.run(statuses())  # before: the second one left queued
    assert [to for to, _ in logged] == ["+2348031234560", "+2348031234561"]
    assert {status for _, status in logged} <= TAKEN, logged
    asyncio.run(gw.aclose())
    _collect()


def test_a_status_look_up_after_a_send_in_a_closed_loop_is_answered(
        sms_emulator: Callable[..., Any], tmp_path: Path, no_aiohttp: None) -> None:
    vendor = sms_emulator("broadcast")
    gw = AsyncGateway(_config(tmp_path, vendor))
    acme = gw.tenant("acme")
    mid = asyncio.run(acme.send("08031234562", "hi")).message_id
    # before: MalformedResponse "the adapter's status() failed: RuntimeError('Event loop is closed')",
    # blaming the provider, after the request reached the vendor
    assert asyncio.run(acme.status(mid)).status in TAKEN
    summary = asyncio.run(acme.sync_statuses(older_than=0))
    assert summary.errors == 0, summary  # (before: a failed look-up, "Event loop is closed")
    assert _look_ups(vendor) >= 1
    assert _sent_to(vendor) == ["2348031234562"]
    asyncio.run(gw.aclose())
    _collect()


def test_a_given_httpx_client_a_closed_loop_used_is_refused_for_a_look_up_before_any_request(
        sms_emulator: Callable[..., Any], tmp_path: Path) -> None:
    vendor = sms_emulator("broadcast")
    gw = AsyncGateway(_config(tmp_path, vendor), http_client=httpx.AsyncClient())
    acme = gw.tenant("acme")
    mid = asyncio.run(acme.send("08031234563", "hi")).message_id
    for look in (lambda: acme.status(mid), lambda: acme.sync_statuses(older_than=0),
                 lambda: gw.sync_statuses(older_than=0)):  # (not a summary of failed tenants)
        with pytest.raises(WrongEventLoop) as caught:
            asyncio.run(look())
        assert caught.value.closed and "pass no http_client" in str(caught.value)
    assert _look_ups(vendor) == 0  # nothing written on the closed loop's connection
    assert _sent_to(vendor) == ["2348031234563"]
    _collect()


# ---------------------------------------------------------------- a given aiohttp session's own loop
# pytest-asyncio's session-scoped async fixture makes the session (and the gateway) in the
# session's event loop, which stays open while each test runs in a loop of its own. An
# aiohttp.ClientSession belongs to the loop it was made in from the start: the first send from
# the test's loop was logged, then aiohttp raised a bare RuntimeError ("attached to a different
# loop") and the message stayed queued.

def _squad_numbers(squad: Any) -> list[str]:
    return [m["phone_number"] for r in squad.processed("/sms/send/instant") for m in r.json()["messages"]]


@pytest.mark.parametrize("wrap", [False, True], ids=["ClientSession", "AiohttpClient(session)"])
def test_a_given_aiohttp_session_of_another_open_loop_is_refused_before_anything_is_logged(
        sms_emulator: Callable[..., Any], tmp_path: Path, wrap: bool) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    from smsgate.aio import AiohttpClient

    squad = sms_emulator("squad")
    config = Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings()})})
    fixture_loop = asyncio.new_event_loop()  # the session-scoped fixture's, open all along

    async def fixture() -> tuple[Any, AsyncGateway]:
        session = aiohttp.ClientSession()
        return session, AsyncGateway(config, http_client=AiohttpClient(session) if wrap else session)

    session, gw = fixture_loop.run_until_complete(fixture())
    try:
        acme = gw.tenant("acme")
        with pytest.raises(WrongEventLoop) as caught:  # a test's own loop
            asyncio.run(acme.send("08031234571", "your code is 111111"))
        assert not caught.value.closed and "nothing was sent" in str(caught.value)

        async def logged() -> list[tuple[str, str]]:
            return [(m.to, m.status.value) for m in await acme.messages()]
        assert asyncio.run(logged()) == []  # nothing logged, nothing left queued
        assert _squad_numbers(squad) == []
        # in the session's own loop it sends, once
        sent = fixture_loop.run_until_complete(acme.send("08031234572", "your code is 222222"))
        assert sent.status == "sent"
        assert _squad_numbers(squad) == ["08031234572"]
        fixture_loop.run_until_complete(gw.aclose())
    finally:
        fixture_loop.run_until_complete(session.close())
        fixture_loop.close()


def test_an_aiohttp_client_of_a_session_a_closed_loop_used_is_refused_in_the_next_loop(
        sms_emulator: Callable[..., Any], tmp_path: Path) -> None:
    """``AiohttpClient(session)`` cannot open a new session (the session is yours), so it is a
    client given as a bare session is: ``WrongEventLoop`` with ``closed`` before anything is logged."""
    aiohttp = pytest.importorskip("aiohttp")
    from smsgate.aio import AiohttpClient

    squad = sms_emulator("squad")
    config = Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings()})})
    made: dict[str, Any] = {}

    async def first() -> str:
        made["session"] = aiohttp.ClientSession()
        made["gw"] = AsyncGateway(config, http_client=AiohttpClient(made["session"]))
        return (await made["gw"].tenant("acme").send("08031234581", "first")).status.value

    assert asyncio.run(first()) == "sent"
    acme = made["gw"].tenant("acme")
    with pytest.raises(WrongEventLoop) as caught:
        asyncio.run(acme.send("08031234582", "second"))
    assert caught.value.closed

    async def logged() -> list[tuple[str, str]]:
        return [(m.to, m.status.value) for m in await acme.messages()]
    assert asyncio.run(logged()) == [("+2348031234581", "sent")]
    assert _squad_numbers(squad) == ["08031234581"]
    _collect()


# ---------------------------------------------------------------- docs/fastapi.md under gunicorn --preload
# The app is imported once in the server's parent, then forked into workers: docs/fastapi.md's
# main_preload.py makes its gateway (and mounts the webhook app on it) in the lifespan, which
# each worker runs after the fork. Every order's message reaches the vendor once, with the id
# the worker answered.

@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_the_documented_preload_app_sends_each_message_once_from_forked_workers(
        sms_emulator: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from bounded import in_child
    from smsgate.plugins import PluginManager
    from test_docs_examples import page_files

    squad = sms_emulator("squad")
    source = page_files(Path(__file__).resolve().parents[1] / "docs" / "fastapi.md")["main_preload.py"]
    (tmp_path / "main_preload.py").write_text(source)
    key = PluginManager().sandbox_account("squad").credentials["secret_key"]
    (tmp_path / "smsgate.toml").write_text(
        f'store = "sqlite:///{tmp_path / "sms.db"}"\n[tenants.shop]\ndefault_region = "NG"\n'
        f'[tenants.shop.providers.squad]\nplugin = "squad"\nbase_url = "{squad.url}"\nsender = "SHOP"\n'
        f'[tenants.shop.providers.squad.credentials]\nsecret_key = "{key}"\n'
        '[tenants.shop.providers.squad.options]\napi_version = "v2"\n')
    monkeypatch.setenv("SMSGATE_CONFIG", str(tmp_path / "smsgate.toml"))
    spec = importlib.util.spec_from_file_location("nu19_main_preload", tmp_path / "main_preload.py")
    assert spec is not None and spec.loader is not None
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)  # the parent's import (--preload)
    app = main.app

    def worker(n: int) -> list[Any]:
        async def serve() -> list[Any]:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                    answers = await asyncio.gather(*(
                        client.post(f"/orders/{100 * (n + 1) + i}/shipped", json={"phone": f"0803{n}{i:06d}"})
                        for i in range(10)))
                    hook = await client.post("/smsgate/webhooks/shop/squad", content=b"{}")
            return [[a.status_code, a.json()] for a in answers] + [hook.status_code]
        return asyncio.run(serve())

    results = [in_child(lambda n=n: worker(n))[1] for n in range(3)]  # type: ignore[misc]
    answers = []
    for result in results:
        outcome = result()
        assert outcome[0] == "ok", outcome
        answers.append(outcome[1])
    for answer in answers:
        *sends, hook = answer
        assert hook == 401, answer  # the webhook app mounted in the lifespan answers (an unsigned body)
        assert [(code, body["status"]) for code, body in sends] == [(200, "sent")] * 10, answer
    # the vendor's own record: every order's message once, with its own text
    taken = sorted((m.phonenumber, m.message) for m in squad._server.app.vendor.messages)
    assert taken == sorted((f"0803{n}{i:06d}", f"Order {100 * (n + 1) + i} has shipped")
                          for n in range(3) for i in range(10))


# ---------------------------------------------------------------- AsyncGateway.sharing() of a gateway it cannot share

def test_sharing_a_closed_gateway_is_refused_at_once(sms_emulator: Callable[..., Any], tmp_path: Path) -> None:
    from smsgate import GatewayClosed, GatewayForked

    squad = sms_emulator("squad")
    gw = Gateway(Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings()})}))
    gw.close()
    # before: made, and its first send raised StoreError("the SQLite store is closed")
    with pytest.raises(GatewayClosed) as caught:
        AsyncGateway.sharing(gw)
    assert not isinstance(caught.value, GatewayForked) and "is closed" in str(caught.value)
    assert _squad_numbers(squad) == []


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_sharing_a_gateway_made_before_the_fork_is_refused_in_the_child(
        sms_emulator: Callable[..., Any], tmp_path: Path) -> None:
    """A module-level sync ``Gateway`` (``gunicorn --preload``) and ``AsyncGateway.sharing(gateway)``
    in each worker's lifespan: the child's AsyncGateway ran on the parent's limits, breakers, call
    counts and their locks (the call counts' lock, taken at the end of every send, held by another
    parent thread at the fork: the child's first send hung for ever, reproduced on the code before).
    Now refused as every other use of that gateway in the child is."""
    import os

    from bounded import in_child

    squad = sms_emulator("squad")
    gw = Gateway(Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings()})}))
    assert gw.tenant("acme").send("08031234590", "before the fork").status == "sent"

    def child() -> object:
        try:
            shared = AsyncGateway.sharing(gw)
            return ["sent", asyncio.run(shared.tenant("acme").send("08031234591", "child")).status]
        except BaseException as exc:
            return [type(exc).__name__, str(exc), getattr(exc, "parent", None)]

    outcome = in_child(child)[1]()
    assert outcome[0] == "ok", outcome
    answer = outcome[1]
    assert answer[0] == "GatewayForked" and answer[2] == os.getpid(), answer
    assert "make a gateway in each process" in answer[1]
    assert gw.tenant("acme").send("08031234592", "the parent's goes on").status == "sent"
    assert _squad_numbers(squad) == ["08031234590", "08031234592"]
    gw.close()
