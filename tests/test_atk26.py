"""atk26: a gateway given a store URL opens its store at its first use (not when it is made),
attacked: where that first use runs (an AsyncGateway's event loop), what a webhook answers
while the store cannot be opened, and what the first uses racing each other open."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smsgate import AsyncGateway, Gateway
from smsgate.errors import GatewayClosed, StoreUnavailable
from smsgate.testing import EmulatorControl, LiveServer

#: this file's ports (47700-47799): a silent "PostgreSQL" on the first free of 47700-47749, the
#: emulator on the first free of 47750-47799 (a client's ephemeral port may hold one meanwhile)
HOLES = range(47700, 47750)
EMULATORS = range(47750, 47800)


def _live(app: Any) -> LiveServer:
    from reference_provider import live_on

    return live_on(app, EMULATORS)


def _tenant(url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    from reference_provider import API_KEY

    return {"default_region": "NG", "providers": {"one": {
        "plugin": "echo", "base_url": url, "sender": "SHOP", "credentials": {"api_key": API_KEY}}}}


class _LagProbe:
    """How late a 5 ms sleep wakes on the running loop, while it runs (as tests/test_verify8.py)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            self.lags.append(time.perf_counter() - t0 - 0.005)

    async def __aenter__(self) -> _LagProbe:
        self._task = asyncio.ensure_future(self._tick())
        await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    @property
    def worst(self) -> float:
        return max(self.lags, default=0.0)


def _hole() -> tuple[socket.socket, int]:
    """A listening socket on a free port of HOLES that nobody answers on, and its port."""
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for port in HOLES:
        try:
            hole.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    else:
        raise AssertionError(f"no free port in {HOLES}")
    hole.listen(64)
    return hole, port


@pytest.fixture
def silent_postgres() -> Iterator[str]:
    """A PostgreSQL URL whose "server" takes the connection and never answers: opening the
    store takes its whole ``connect_timeout`` (2 s), then fails (``StoreUnavailable``)."""
    hole, port = _hole()
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=2"
    finally:
        hole.close()


async def _send(gw: AsyncGateway) -> object:
    return await gw.tenant("shop").send("08031234567", "hi")


async def _look_up(gw: AsyncGateway) -> object:
    return await gw.tenant("shop").look_up("msg_00000000000000000000000000")


async def _campaigns(gw: AsyncGateway) -> object:
    return await gw.tenant("shop").campaigns.list()


async def _optouts(gw: AsyncGateway) -> object:
    return await gw.tenant("shop").optouts.count()


async def _receive(gw: AsyncGateway) -> object:
    body, headers = _report()
    return await gw.receive("shop", "one", headers, body)


FIRST_USES: dict[str, Callable[[AsyncGateway], Awaitable[object]]] = {
    "send": _send, "look_up": _look_up, "campaigns.list": _campaigns, "optouts.count": _optouts,
    "receive": _receive}


@pytest.mark.parametrize("shared", [False, True], ids=["own", "sharing"])
@pytest.mark.parametrize("first", list(FIRST_USES))
def test_an_async_gateways_first_use_opens_its_store_off_the_event_loop(
        silent_postgres: str, first: str, shared: bool) -> None:
    """An AsyncGateway runs every store call in its worker threads ("a slow database never
    stalls the loop"); opened at its first use, its store was opened by that first call on the
    event loop (the plan driver, a campaign handle reading ``tenant._core.store``): a PostgreSQL
    server slow to answer stalled every coroutine of the process for the connect timeout, at
    each call while it stayed down. Now the first use opens it in a worker thread (an
    ``AsyncGateway.sharing`` a sync gateway not yet opened too)."""
    from reference_provider import echo_plugins

    async def main() -> None:
        if shared:
            sync = Gateway({"store": silent_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
            gw = AsyncGateway.sharing(sync)
        else:
            gw = AsyncGateway({"store": silent_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
        try:
            for _ in range(2):  # down at the second call too: not cached, opened off the loop again
                async with _LagProbe() as probe:
                    t0 = time.perf_counter()
                    with pytest.raises(StoreUnavailable, match=silent_postgres.split("@")[1].split("?")[0]):
                        await FIRST_USES[first](gw)
                    took = time.perf_counter() - t0
                assert took >= 1.5  # (the connect timeout passed: the probe ran meanwhile)
                assert probe.worst < took / 3, (first, probe.worst, took)
        finally:
            await gw.aclose()
            if shared:
                sync.close()

    asyncio.run(main())


def _report() -> tuple[bytes, dict[str, str]]:
    from reference_provider import sign

    body = json.dumps([{"id": "vendor-1", "status": "delivered"}]).encode()
    return body, {"x-echo-signature": sign(body), "content-type": "application/json"}


@pytest.mark.parametrize("kind", ["Gateway", "AsyncGateway"])
def test_a_webhook_whose_sqlite_folder_is_gone_at_the_first_callback_is_503(tmp_path: Path, kind: str) -> None:
    """The SQLite folder, there when the gateway was made (a volume mounted late, a tmp folder
    cleaned), is gone at the first callback: opening the store is a ``ConfigError`` naming the
    folder, which the webhook app answered as a failed authentication (401: the vendor drops
    the report for good), where docs/configuration.md promises 503 "while it cannot be opened"
    (the vendor retries). Now 503; once the folder is back, the same callback is applied."""
    pytest.importorskip("starlette")
    import httpx

    from reference_provider import echo_plugins
    from smsgate.webhooks import webhook_app

    folder = tmp_path / "volume"
    folder.mkdir()
    cfg = {"store": f"sqlite:///{folder / 'hooks.db'}", "tenants": {"shop": _tenant()}}
    gw: Gateway | AsyncGateway = (Gateway if kind == "Gateway" else AsyncGateway)(cfg, plugins=echo_plugins())
    app = webhook_app(gw)
    shutil.rmtree(folder)
    body, headers = _report()

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # mounted: no lifespan events, the first callback opens it
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
            return await client.post("/shop/one", content=body, headers=headers)

    try:
        answer = asyncio.run(post())
        assert answer.status_code == 503, answer.text
        assert not folder.exists()
        folder.mkdir()
        answer = asyncio.run(post())
        assert answer.status_code == 200, answer.text
        assert answer.json()["reports"] == 1
    finally:
        if isinstance(gw, AsyncGateway):
            asyncio.run(gw.aclose())
        else:
            gw.close()


def _fds_under(folder: Path) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
                n += 1
        except OSError:
            continue
    return n


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_many_threads_making_the_first_send_at_once_open_one_store(tmp_path: Path) -> None:
    """16 threads make a sync gateway's first sends at once: one store is opened (the files
    left open afterwards are those of one SQLite store, none once closed), each message reached
    the vendor once (its own record) and is logged once."""
    from reference_provider import create_emulator, echo_plugins, echo_received

    with _live(create_emulator()) as emu:
        gw = Gateway({"store": f"sqlite:///{tmp_path / 'race.db'}", "tenants": {"shop": _tenant(emu.url)}},
                     plugins=echo_plugins())
        start = threading.Barrier(16)
        errors: list[BaseException] = []
        numbers = [f"080310{i:05d}" for i in range(16)]

        def first(number: str) -> None:
            start.wait()
            try:
                gw.tenant("shop").send(number, "hi")
            except BaseException as exc:  # (said below)
                errors.append(exc)

        threads = [threading.Thread(target=first, args=(n,)) for n in numbers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with Gateway({"store": f"sqlite:///{tmp_path / 'one.db'}", "tenants": {"shop": _tenant(emu.url)}},
                     plugins=echo_plugins()) as single:
            single.tenant("shop").send("08031234567", "hi")
            one_store = _fds_under(tmp_path) - _fds_under(tmp_path / "race.db")
        assert _fds_under(tmp_path / "race.db") == one_store
        got = echo_received(EmulatorControl(emu.url))
        assert got == {f"+234{n[1:]}": 1 for n in numbers} | {"+2348031234567": 1}
        assert sorted(m.to for m in gw.store.list_messages("shop", limit=100)) == sorted(f"+234{n[1:]}" for n in numbers)
        gw.close()
    assert _fds_under(tmp_path) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_gateway_forked_before_its_first_use_opens_no_store_in_the_child(tmp_path: Path) -> None:
    """A gateway (and its webhook app) made at import, forked before its first use (``gunicorn
    --preload``): in the child it is refused (``GatewayForked``, a callback answered 503), and
    the webhook app's first callback no longer opens (makes, migrates) the store there first;
    the parent opens it at its own first use and works on. What the vendor received (its own
    record) is the parent's message only."""
    pytest.importorskip("starlette")
    import httpx

    from bounded import in_child
    from reference_provider import create_emulator, echo_plugins, echo_received
    from smsgate.errors import GatewayForked
    from smsgate.webhooks import webhook_app

    db = tmp_path / "forked.db"
    body, headers = _report()
    with _live(create_emulator()) as emu:
        gw = Gateway({"store": f"sqlite:///{db}", "tenants": {"shop": _tenant(emu.url)}}, plugins=echo_plugins())
        app = webhook_app(gw)

        async def post() -> int:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
                return (await client.post("/shop/one", content=body, headers=headers)).status_code

        def child() -> object:
            status = asyncio.run(post())
            refused = []
            for use in (lambda: gw.tenant("shop").send("08031234600", "from the child"), lambda: gw.store):
                try:
                    use()
                    refused.append("used")
                except GatewayForked:
                    refused.append("GatewayForked")
            return [status, refused, db.exists()]

        _, result = in_child(child)
        answer = result()
        assert answer == ["ok", [503, ["GatewayForked", "GatewayForked"], False]], answer
        assert not db.exists()
        assert asyncio.run(post()) == 200  # the parent's first use: opened here
        assert gw.tenant("shop").send("08031234567", "from the parent").provider == "one"
        assert echo_received(EmulatorControl(emu.url)) == {"+2348031234567": 1}
        gw.close()


def test_the_store_of_a_gateway_closed_before_its_first_use(tmp_path: Path) -> None:
    """``gateway.store`` of a gateway closed before its first use opens nothing and says which
    gateway is closed and how it was closed: it was "the gateway is closed (close(), or the end
    of its 'with' block)" for an AsyncGateway too (closed with aclose())."""
    sync = Gateway({"store": f"sqlite:///{tmp_path / 'sync.db'}"})
    sync.close()
    with pytest.raises(GatewayClosed, match=r"^the Gateway is closed \(close\(\)"):
        sync.store
    agw = AsyncGateway({"store": f"sqlite:///{tmp_path / 'async.db'}"})
    asyncio.run(agw.aclose())
    with pytest.raises(GatewayClosed, match=r"^the AsyncGateway is closed \(aclose\(\)"):
        agw.store
    assert list(tmp_path.iterdir()) == []


def test_first_uses_waiting_for_a_failing_open_share_its_error(tmp_path: Path) -> None:
    """8 threads make a gateway's first sends at once while its PostgreSQL server takes the
    connection and never answers: each waited for the attempt before its own, then made one
    (8 connections, the last caller failing after 8 connect timeouts, 16 s). Now those that
    waited for an attempt get its error: one connection, as when the gateway opened its store
    when made. The next call tries again (a server back up is used: not a cached failure)."""
    from reference_provider import echo_plugins

    hole, port = _hole()
    taken: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                taken.append(hole.accept()[0])
            except OSError:  # closed: the test ended
                return

    threading.Thread(target=accept, daemon=True).start()
    url = f"postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=2"
    gw = Gateway({"store": url, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def first() -> None:
        start.wait()
        try:
            gw.tenant("shop").send("08031234567", "hi")
        except BaseException as exc:  # (said below)
            errors.append(exc)

    try:
        threads = [threading.Thread(target=first) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(errors) == 8 and all(isinstance(e, StoreUnavailable) for e in errors), errors
        assert len(taken) == 1, len(taken)
        with pytest.raises(StoreUnavailable):  # later: tried again (a tenant handle opens nothing: lazy27)
            gw.open()
        assert len(taken) == 2
    finally:
        gw.close()
        hole.close()
        for conn in taken:
            conn.close()
