"""A campaign runner's request that waits for a pooled connection passes its fence again.

The transport checks a runner's fence (``RunnerBeat.fence``) before each try; a request that
then waits inside the HTTP client for a free connection of its pool (more requests in flight
than the pool's size) used to leave whenever a connection came free, however long the runner
had been paused meanwhile and whoever had taken its claims over (attack12's note: a stopped
runner sent such a request after the takeover in one of three tries). Now the fence is checked
again once the request holds its connection, right before its headers are written: httpx's
public ``trace`` request extension (httpcore's ``http11.send_request_headers.started``), which
:class:`smsgate.aio.AiohttpClient` calls too once a request holds its connection (on a session
of the caller's: once a request that waited for a connection slot holds one).

Each test fills a pool of one connection with a request the server holds, sends a fenced
request behind it, loses the lease while it waits, and reads the server's own record: the
fenced request never arrived.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from smsgate.errors import LeaseLost, StoreError, UnknownOutcome
from smsgate.provider import mark_idempotent
from smsgate.transport import AsyncDriver, RetryPolicy, SyncDriver


class _Vendor:
    """A loopback HTTP server that records each request's path and holds ``/slow`` until released;
    with ``idle``, it closes a keep-alive connection idle that many seconds (as servers do)."""

    def __init__(self, idle: float | None = None) -> None:
        self.paths: list[str] = []
        self.release = threading.Event()
        self.holding = threading.Event()
        vendor = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                vendor.paths.append(self.path)
                if self.path == "/slow":
                    vendor.holding.set()
                    vendor.release.wait(10)
                body = b'{"ok": true}'
                self.send_response(503 if self.path == "/flaky" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vendor() -> Iterator[_Vendor]:
    v = _Vendor()
    yield v
    v.close()


class _Fence:
    """A runner's fence: holds until :meth:`lose`, then raises ``error``; counts its checks."""

    def __init__(self, error: Exception | None = None) -> None:
        self.checks = 0
        self.lost = False
        self.error = error or LeaseLost("claims taken over")

    def __call__(self) -> None:
        self.checks += 1
        if self.lost:
            raise self.error

    def lose(self) -> None:
        self.lost = True


def _wait(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _sync_case(vendor: _Vendor, fence: _Fence, retries: int = 0) -> BaseException | None:
    """Send ``/slow`` (unfenced) and ``/fenced`` behind it on one connection; lose the lease
    while ``/fenced`` waits for it; return what the fenced send raised."""
    client = httpx.Client(limits=httpx.Limits(max_connections=1), timeout=10)
    driver = SyncDriver(client, RetryPolicy(max_retries=retries), sleep=lambda _: None)
    slow = threading.Thread(target=lambda: driver.send(httpx.Request("POST", vendor.url + "/slow")))
    slow.start()
    vendor.holding.wait(5)
    raised: list[BaseException] = []

    def fenced() -> None:
        try:
            driver.send(httpx.Request("POST", vendor.url + "/fenced"), fence=fence)
        except BaseException as exc:
            raised.append(exc)

    behind = threading.Thread(target=fenced)
    behind.start()
    _wait(lambda: fence.checks >= 1)
    time.sleep(0.2)  # now waiting in httpx's pool for the one connection
    fence.lose()
    vendor.release.set()
    slow.join(10)
    behind.join(10)
    client.close()
    return raised[0] if raised else None


def test_a_sync_request_waiting_for_a_pooled_connection_passes_the_fence_again(vendor: _Vendor) -> None:
    fence = _Fence()
    raised = _sync_case(vendor, fence)
    assert isinstance(raised, LeaseLost)
    assert vendor.paths == ["/slow"]  # the vendor never saw the fenced request
    assert fence.checks == 2


def test_a_store_failure_in_the_pooled_fence_is_not_sent_when_no_try_left(vendor: _Vendor) -> None:
    fence = _Fence(StoreError("database is locked"))
    raised = _sync_case(vendor, fence)
    assert isinstance(raised, StoreError)
    assert vendor.paths == ["/slow"]


def test_the_fence_still_lets_a_request_out_while_it_holds(vendor: _Vendor) -> None:
    client = httpx.Client(limits=httpx.Limits(max_connections=1), timeout=10)
    fence = _Fence()
    response = SyncDriver(client).send(httpx.Request("POST", vendor.url + "/fenced"), fence=fence)
    client.close()
    assert response.status_code == 200
    assert vendor.paths == ["/fenced"]
    assert fence.checks == 2  # before the try, and once it held its connection


def _async_case(vendor: _Vendor, make_client: Callable[[], Any], fence: _Fence) -> BaseException | None:
    async def main() -> BaseException | None:
        client = make_client()
        driver = AsyncDriver(client, RetryPolicy(max_retries=0))
        slow = asyncio.create_task(driver.send(httpx.Request("POST", vendor.url + "/slow")))
        await asyncio.get_running_loop().run_in_executor(None, vendor.holding.wait, 5)
        behind = asyncio.create_task(
            driver.send(httpx.Request("POST", vendor.url + "/fenced"), fence=fence))
        while fence.checks < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # now waiting for the pool's one connection
        fence.lose()
        vendor.release.set()
        await slow
        try:
            await behind
        except BaseException as exc:
            return exc
        finally:
            await client.aclose()
        return None

    return asyncio.run(main())


def test_an_httpx_async_request_waiting_for_a_pooled_connection_passes_the_fence_again(vendor: _Vendor) -> None:
    fence = _Fence()
    raised = _async_case(vendor, lambda: httpx.AsyncClient(limits=httpx.Limits(max_connections=1)), fence)
    assert isinstance(raised, LeaseLost)
    assert vendor.paths == ["/slow"]


def test_an_aiohttp_client_request_waiting_for_a_slot_passes_the_fence_again(vendor: _Vendor) -> None:
    pytest.importorskip("aiohttp")
    from smsgate.aio import AiohttpClient

    fence = _Fence()
    raised = _async_case(vendor, lambda: AiohttpClient(limit=1, trust_env=False), fence)
    assert isinstance(raised, LeaseLost)
    assert vendor.paths == ["/slow"]


def _tracer(events: list[tuple[str, str]], path: str) -> Any:
    async def trace(name: str, info: dict[str, Any]) -> None:
        events.append((path, name))
        assert info["request"].url.path == path
    return trace


async def _at_once_slow_waited(client: Any, vendor: _Vendor, events: list[tuple[str, str]]) -> list[int]:
    """``/at-once`` (traced), ``/slow`` (held by the vendor: the client's one slot taken), then
    ``/waited`` (traced), which waits for that slot; the trace events seen while it waits."""
    at_once = await client.send(httpx.Request("POST", vendor.url + "/at-once",
                                              extensions={"trace": _tracer(events, "/at-once")}))
    slow = asyncio.create_task(client.send(httpx.Request("POST", vendor.url + "/slow")))
    await asyncio.get_running_loop().run_in_executor(None, vendor.holding.wait, 5)
    waiting = asyncio.create_task(client.send(httpx.Request("POST", vendor.url + "/waited",
                                                            extensions={"trace": _tracer(events, "/waited")})))
    await asyncio.sleep(0.1)
    assert ("/waited", "http11.send_request_headers.started") not in events  # still waiting for the slot
    vendor.release.set()
    return [at_once.status_code, (await slow).status_code, (await waiting).status_code]


def test_aiohttp_client_calls_a_requests_trace_once_it_holds_its_connection(vendor: _Vendor) -> None:
    """On the session it opens, every traced request's trace is told, once the request holds its
    connection (kept alive or new), right before aiohttp writes it."""
    pytest.importorskip("aiohttp")
    from smsgate.aio import AiohttpClient

    events: list[tuple[str, str]] = []

    async def main() -> list[int]:
        client = AiohttpClient(limit=1, trust_env=False)
        try:
            return await _at_once_slow_waited(client, vendor, events)
        finally:
            await client.aclose()

    assert asyncio.run(main()) == [200, 200, 200]
    assert events == [("/at-once", "http11.send_request_headers.started"),
                      ("/waited", "http11.send_request_headers.started")]
    assert vendor.paths == ["/at-once", "/slow", "/waited"]


def test_aiohttp_client_on_a_session_of_yours_calls_a_requests_trace_once_it_holds_a_slot_it_waited_for(
        vendor: _Vendor) -> None:
    """On a session passed in, the client cannot see aiohttp take a connection: only a request
    that waited for one of its slots tells its trace, once it holds one."""
    aiohttp = pytest.importorskip("aiohttp")
    from smsgate.aio import AiohttpClient

    events: list[tuple[str, str]] = []

    async def main() -> list[int]:
        async with aiohttp.ClientSession() as session:
            return await _at_once_slow_waited(AiohttpClient(session, limit=1, trust_env=False), vendor, events)

    assert asyncio.run(main()) == [200, 200, 200]
    assert events == [("/waited", "http11.send_request_headers.started")]
    assert vendor.paths == ["/at-once", "/slow", "/waited"]


def test_a_trace_raising_once_the_request_holds_its_connection_sends_nothing_and_gives_it_back(
        vendor: _Vendor) -> None:
    """A trace (a runner's fence) raising at the connection: the request never reaches the
    vendor, what it raised is raised as is, and the client's one connection serves the next."""
    pytest.importorskip("aiohttp")
    from smsgate.aio import AiohttpClient

    async def refuse(name: str, info: dict[str, Any]) -> None:
        raise LeaseLost("another runner took the claims over")

    async def main() -> tuple[BaseException | None, int, int]:
        client = AiohttpClient(limit=1, trust_env=False)
        try:
            first = await client.send(httpx.Request("POST", vendor.url + "/first"))  # a connection kept alive
            raised = None
            try:
                await client.send(httpx.Request("POST", vendor.url + "/fenced", extensions={"trace": refuse}))
            except LeaseLost as exc:
                raised = exc
            after = await asyncio.wait_for(client.send(httpx.Request("POST", vendor.url + "/after")), 5)
            return raised, first.status_code, after.status_code
        finally:
            await client.aclose()

    raised, first, after = asyncio.run(main())
    assert isinstance(raised, LeaseLost)
    assert (first, after) == (200, 200)
    assert vendor.paths == ["/first", "/after"]


def test_a_slow_trace_at_a_kept_alive_connection_the_vendor_closed_meanwhile_takes_another() -> None:
    """A trace (a runner's fence renewing its lease after a pause) that takes long at a
    kept-alive connection: the vendor closes the idle connection meanwhile. The request goes
    out on a fresh connection and is answered, instead of being written on the closed one and
    failing as one that may have reached the vendor (``RemoteProtocolError``: unknown)."""
    pytest.importorskip("aiohttp")
    from smsgate.aio import AiohttpClient

    vendor = _Vendor(idle=0.2)
    calls: list[str] = []

    async def slow(name: str, info: dict[str, Any]) -> None:
        calls.append(name)
        if len(calls) == 1:
            await asyncio.sleep(0.6)  # the vendor closes the idle connection meanwhile

    async def main() -> tuple[int, int]:
        async with AiohttpClient(limit=1, trust_env=False) as client:
            first = await client.send(httpx.Request("POST", vendor.url + "/first"))  # kept alive
            second = await client.send(httpx.Request("POST", vendor.url + "/second", extensions={"trace": slow}))
            return first.status_code, second.status_code

    try:
        assert asyncio.run(main()) == (200, 200)
    finally:
        vendor.close()
    assert vendor.paths == ["/first", "/second"]
    assert calls == ["http11.send_request_headers.started"] * 2  # passed again at the fresh connection


def test_a_fence_failing_at_the_connection_after_an_earlier_try_may_have_left_is_unknown(vendor: _Vendor) -> None:
    """The first try of an idempotent ``/flaky`` reaches the vendor and gets a 503 (it may have
    acted on it); its retry waits for the pool's one connection behind ``/slow`` while the
    runner's store fails: not "never sent", but :class:`UnknownOutcome`, as for a fence failing
    before the try (and no second try reaches the vendor)."""
    fence = _Fence(StoreError("database is locked"))
    client = httpx.Client(limits=httpx.Limits(max_connections=1), timeout=10)

    def sleep(_: float) -> None:  # between the tries: fill the pool with a request the vendor holds
        threading.Thread(target=lambda: driver.send(httpx.Request("POST", vendor.url + "/slow"))).start()
        vendor.holding.wait(5)

    driver = SyncDriver(client, RetryPolicy(max_retries=1), sleep=sleep)
    raised: list[BaseException] = []

    def fenced() -> None:
        try:
            driver.send(mark_idempotent(httpx.Request("POST", vendor.url + "/flaky")), fence=fence)
        except BaseException as exc:
            raised.append(exc)

    behind = threading.Thread(target=fenced)
    behind.start()
    _wait(lambda: len(vendor.paths) == 2)  # /flaky's first try answered, /slow held: the retry queues
    time.sleep(0.2)
    fence.lose()
    vendor.release.set()
    behind.join(10)
    client.close()
    assert isinstance(raised[0], UnknownOutcome), raised
    assert vendor.paths == ["/flaky", "/slow"]


# ---------------------------------------------------------------- a campaign runner, end to end
@pytest.mark.parametrize("limits", [False, True], ids=["no-limits", "rate-limit"])
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_campaign_runner_paused_while_its_request_waits_for_a_connection_sends_nothing_more(
    driver: str, limits: bool, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A campaign runner with a pool of one connection and two requests at once: the vendor
    holds the first; the runner is paused past its lease while the second waits for the
    connection and its claims are taken over. The second never reaches the vendor (its
    record), with the tenant's rate limit too (a runner's try then passes the limits' gate,
    which fenced it before the connection wait and not after)."""
    import logging

    from reference_provider import API_KEY, EchoPlugin, create_emulator
    from smsgate import AsyncGateway, Gateway
    from smsgate.campaigns import handles
    from smsgate.plugins import PluginManager
    from smsgate.store.sqlite import SQLiteStore
    from smsgate.testing import EmulatorControl, LiveServer

    lost = threading.Event()
    real_clock, real_renew = handles._clock, SQLiteStore.renew_runner
    monkeypatch.setattr(handles, "_clock", lambda: real_clock() + (1000.0 if lost.is_set() else 0.0))

    def renew(self: SQLiteStore, *args: Any, **kwargs: Any) -> bool:
        return False if lost.is_set() else real_renew(self, *args, **kwargs)  # claims taken over

    monkeypatch.setattr(SQLiteStore, "renew_runner", renew)
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    caplog.set_level(logging.WARNING, logger="smsgate")
    with LiveServer(create_emulator()) as server:
        ctl = EmulatorControl(server.url)
        ctl.fault(kind="latency", delay=1.0, method="POST", count=1)
        one = {"plugin": "echo", "base_url": server.url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
               "max_retries": 0, **({"rate_limit": 1000} if limits else {})}
        cfg = {"store": f"sqlite:///{tmp_path / 'pool.db'}",
               "tenants": {"acme": {"default_region": "NG", "providers": {"one": one}}}}
        numbers = [f"0803000000{i}" for i in range(1, 5)]

        def lose_once_the_second_request_waits() -> None:
            _wait(lambda: any(r.method == "POST" for r in ctl.requests()), 10)
            time.sleep(0.3)  # the second request is waiting for the pool's one connection
            lost.set()

        threading.Thread(target=lose_once_the_second_request_waits, daemon=True).start()
        if driver == "sync":
            with Gateway(cfg, plugins=pm, http_client=httpx.Client(limits=httpx.Limits(max_connections=1))) as gw:
                camp = gw.tenant("acme").campaigns.create("pool", audience=numbers, text="hi", concurrency=2,
                                                          batch_size=2)
                camp.run()
        else:
            from smsgate.aio import AiohttpClient

            async def main() -> None:
                async with AiohttpClient(limit=1, trust_env=False) as client, \
                        AsyncGateway(cfg, plugins=pm, http_client=client) as gw:
                    camp = await gw.tenant("acme").campaigns.create("pool", audience=numbers, text="hi",
                                                                    concurrency=2, batch_size=2)
                    await camp.run()

            asyncio.run(main())
        posts = [r for r in ctl.requests() if r.method == "POST"]
    assert lost.is_set()
    assert len(posts) == 1, [r.path for r in posts]  # the waiting request never reached the vendor
    assert "lost its lease" in caplog.text
