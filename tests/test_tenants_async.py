"""AsyncGateway with a tenant source: the source (StoredTenants on real SQLite, slowed down)
is never called on the event loop, the loop never waits on a lock held across a source call,
and concurrent first calls share one lookup. Sends go to the echo emulator over loopback
HTTP; which credentials were used is read from the emulator's own request record."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, sign
from smsgate import AsyncGateway, Gateway
from smsgate.config import TenantConfig
from smsgate.errors import AuthFailed, UnknownTenant, WouldBlock
from smsgate.store import Store
from smsgate.store.sqlite import SQLiteStore
from smsgate.tenants import StoredTenants
from smsgate.testing import EmulatorControl, LiveServer
from test_tenants_runtime import KEY, OLD_KEY, ctl, echo_installed, emulator, plugins, tenant_cfg

__all__ = ["ctl", "echo_installed", "emulator"]  # fixtures of test_tenants_runtime, used here

#: how long each call of the slow source takes (seconds)
DELAY = 0.6


class SlowSource:
    """A StoredTenants whose ``version()`` / ``get()`` / ``names()`` take :data:`DELAY` seconds
    (a far database), recording each call and whether it ran on a thread running an event loop.
    ``gate``: when set up, ``get()`` reads the tenant, then waits for it before answering (the
    test says when the lookup finishes)."""

    def __init__(self, stored: StoredTenants, delay: float = DELAY) -> None:
        self.stored, self.delay = stored, delay
        self.calls: list[tuple[str, bool]] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def _call(self, what: str) -> None:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        with self._lock:
            self.calls.append((what, on_loop))
        time.sleep(self.delay)

    def version(self) -> Hashable:
        self._call("version")
        return self.stored.version()

    def get(self, name: str) -> tuple[TenantConfig, Hashable] | None:
        self._call(f"get {name}")
        found = self.stored.get(name)  # the answer as of the call: the gate delays its return only
        gate = self.gate
        self.entered.set()
        if gate is not None:
            gate.wait(30)
        return found

    def names(self) -> list[str]:
        self._call("names")
        return self.stored.names()

    def on_loop(self) -> list[str]:
        return [what for what, on_loop in self.calls if on_loop]

    def count(self, what: str) -> int:
        return sum(1 for w, _ in self.calls if w == what)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = SQLiteStore(str(tmp_path / "tenants.db"))
    s.migrate()
    yield s
    s.close()


def async_gateway(store: Store, source: Any, *, tenants: dict[str, Any] | None = None, **kw: Any) -> AsyncGateway:
    return AsyncGateway({"store": "memory://", "tenants": tenants or {}}, store=store, plugins=plugins(),
                        tenants=source, **kw)


class LagProbe:
    """Measures how late the event loop wakes a task sleeping 10 ms, while it runs."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.01)
            self.lags.append(time.monotonic() - start - 0.01)

    async def __aenter__(self) -> LagProbe:
        self._task = asyncio.ensure_future(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        await asyncio.sleep(0.03)  # the tick under way when the block ended is measured (a block just before)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    @property
    def worst(self) -> float:
        return max(self.lags, default=0.0)


def keys_used(ctl: EmulatorControl) -> list[str]:
    return [r.headers["x-api-key"] for r in ctl.requests("/messages", "POST")]


def test_the_slow_source_is_never_asked_on_the_event_loop(store: Store, emulator: LiveServer,
                                                          ctl: EmulatorControl) -> None:
    """gw.tenant() + send, and the re-check after tenant_refresh: every source call runs in a
    worker thread, and the loop keeps ticking meanwhile (lag far below one source call)."""
    stored = StoredTenants(store, keys=KEY)
    stored.add("acme", tenant_cfg(emulator.url, OLD_KEY))
    source = SlowSource(stored)

    async def main() -> None:
        async with async_gateway(store, source, tenant_refresh=0.5) as gw:
            async with LagProbe() as probe:
                acme = gw.tenant("acme")
                with pytest.raises(AuthFailed):
                    await acme.send("08031234567", "first")
            assert source.count("version") >= 1 and source.count("get acme") == 1
            assert probe.worst < DELAY / 3, probe.lags
            stored.rotate("acme", "main", {"api_key": API_KEY})
            await asyncio.sleep(0.5)  # tenant_refresh passes: the next call asks the source again
            before = len(source.calls)
            async with LagProbe() as probe:
                assert (await acme.send("08031234567", "second")).provider == "main"
            assert len(source.calls) > before and source.count("get acme") == 2
            assert probe.worst < DELAY / 3, probe.lags
            # refresh_tenants() does no I/O: the next call asks, off the loop
            stored.remove("acme")
            async with LagProbe() as probe:
                gw.refresh_tenants()
                with pytest.raises(UnknownTenant, match=r"'acme'.*tenant source"):
                    await acme.send("08031234567", "refused")
            assert probe.worst < DELAY / 3, probe.lags

    asyncio.run(main())
    assert source.on_loop() == []
    assert keys_used(ctl) == [OLD_KEY, API_KEY]


def test_check_and_has_provider_ask_the_source_off_the_loop(store: Store, emulator: LiveServer) -> None:
    """``await gw.check_async()`` and ``await gw.has_provider_async()``: the source's names and
    tenants are read in the gateway's store threads, the loop keeps ticking meanwhile, and the
    answers are the sync Gateway's (lines; False for an unknown tenant or instance)."""
    stored = StoredTenants(store, keys=KEY)
    stored.add("acme", tenant_cfg(emulator.url))
    stored.add("globex", tenant_cfg(emulator.url))
    source = SlowSource(stored)

    async def main() -> list[str]:
        async with async_gateway(store, source, tenant_refresh=0) as gw:
            async with LagProbe() as probe:
                lines = await gw.check_async()
            assert probe.worst < DELAY / 3, probe.lags
            async with LagProbe() as probe:
                assert await gw.has_provider_async("acme", "main")
                assert not await gw.has_provider_async("acme", "other")
                assert not await gw.has_provider_async("nobody", "main")
            assert probe.worst < DELAY / 3, probe.lags
            return lines

    lines = asyncio.run(main())
    assert source.count("names") == 1 and source.count("get acme") >= 1 and source.count("get globex") >= 1
    assert source.on_loop() == []
    with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(), tenants=stored) as gw:
        assert lines == gw.check() and len(lines) == 2


def test_the_loop_never_waits_for_a_lookup_under_way_in_another_thread(store: Store, emulator: LiveServer,
                                                                       ctl: EmulatorControl) -> None:
    """A worker thread's lookup of another tenant (the webhook app asks has_provider in one)
    holds the source for as long as the test says: meanwhile the loop serves a loaded tenant
    and refresh_tenants() returns at once (they waited on the gateway's lock before)."""
    stored = StoredTenants(store, keys=KEY)
    stored.add("acme", tenant_cfg(emulator.url))
    stored.add("globex", tenant_cfg(emulator.url))
    source = SlowSource(stored, delay=0)

    async def main() -> None:
        async with async_gateway(store, source, tenant_refresh=3600) as gw:
            acme = gw.tenant("acme")
            await acme.send("08031234567", "loaded")
            source.gate = threading.Event()
            release = threading.Timer(10, source.gate.set)  # on main, the loop waited until then
            release.start()
            try:
                lookup = asyncio.ensure_future(asyncio.to_thread(gw.has_provider, "globex", "main"))
                await asyncio.to_thread(source.entered.wait, 10)
                gw.refresh_tenants()
                assert (await acme.send("08031234567", "while globex loads")).provider == "main"
                assert not source.gate.is_set()  # served while the other lookup was still under way
                source.gate.set()
                assert await lookup
            finally:
                release.cancel()
                source.gate.set()

    asyncio.run(main())
    assert source.on_loop() == []


def test_unknown_tenant_is_refused_by_the_first_awaited_call(store: Store, emulator: LiveServer,
                                                            ctl: EmulatorControl) -> None:
    stored = StoredTenants(store, keys=KEY)
    source = SlowSource(stored, delay=0)
    filed = tenant_cfg(emulator.url)

    async def main() -> None:
        async with async_gateway(store, source, tenants={"filed": filed}) as gw:
            ghost = gw.tenant("ghost")  # at once, no I/O
            assert source.calls == []
            with pytest.raises(UnknownTenant, match=r"unknown tenant 'ghost'.*tenant source"):
                await ghost.send("08031234567", "to nobody")
            with pytest.raises(UnknownTenant, match="'ghost'"):
                await gw.tenant("ghost").load()
            with pytest.raises(UnknownTenant, match="not loaded yet"):
                gw.tenant("ghost").config  # a plain attribute never asks the source
            with pytest.raises(UnknownTenant, match="'ghost'"):
                await gw.tenant("ghost").campaigns.list()  # handles made without I/O, refused when awaited
            with pytest.raises(UnknownTenant, match="'ghost'"):
                await gw.tenant("ghost").optouts.count()
            with pytest.raises(UnknownTenant, match="'ghost'"):
                await gw.tenant("ghost").contact_lists.list()
            # a configuration tenant: checked and usable at once
            assert gw.tenant("filed").config.sender == "ACME"
            assert (await gw.tenant("filed").send("08031234567", "filed")).provider == "main"
        # without a source, an unknown tenant is refused by gw.tenant() itself, as before
        async with AsyncGateway({"store": "memory://", "tenants": {}}, plugins=plugins()) as plain:
            with pytest.raises(UnknownTenant, match="'ghost'"):
                plain.tenant("ghost")

    asyncio.run(main())
    assert source.on_loop() == []
    assert len(keys_used(ctl)) == 1


def test_changed_and_removed_at_run_time_under_async_gateway(store: Store, emulator: LiveServer,
                                                            ctl: EmulatorControl) -> None:
    """A kept handle uses the last configuration until a check (tenant_refresh, or
    refresh_tenants()); then the new credentials, then UnknownTenant once removed; its opt-outs,
    campaigns and contact lists (made before the tenant was loaded) follow the same tenant."""
    stored = StoredTenants(store, keys=KEY)
    stored.add("acme", tenant_cfg(emulator.url, OLD_KEY))
    source = SlowSource(stored, delay=0)

    async def main() -> None:
        async with async_gateway(store, source, tenant_refresh=3600) as gw:
            acme = gw.tenant("acme")
            optouts, campaigns, lists = acme.optouts, acme.campaigns, acme.contact_lists  # no I/O
            assert source.calls == []
            with pytest.raises(AuthFailed):
                await acme.send("08031234567", "old key")
            stored.rotate("acme", "main", {"api_key": API_KEY})
            with pytest.raises(AuthFailed):  # within tenant_refresh: not asked, the last configuration
                await acme.send("08031234567", "still old")
            asked = len(source.calls)
            gw.refresh_tenants()
            assert len(source.calls) == asked  # no I/O on the loop
            assert (await acme.send("08031234567", "new key")).provider == "main"
            assert await optouts.add("08031230000") and await optouts.count() == 1
            assert await campaigns.list() == [] and await lists.list() == []
            stored.remove("acme")
            gw.refresh_tenants()
            for call in (acme.send("08031234567", "removed"), optouts.count(), campaigns.list(), lists.list()):
                with pytest.raises(UnknownTenant, match="'acme'"):
                    await call
            stored.add("acme", tenant_cfg(emulator.url), adopt_data=True)  # back again (its data), a new handle
            assert (await gw.tenant("acme").send("08031234567", "back")).provider == "main"

    asyncio.run(main())
    assert source.on_loop() == []
    posted = ctl.requests("/messages", "POST")
    assert [r.headers["x-api-key"] for r in posted] == [OLD_KEY, OLD_KEY, API_KEY, API_KEY]
    assert [r.json()["text"] for r in posted] == ["old key", "still old", "new key", "back"]


def test_concurrent_first_calls_share_one_lookup(store: Store, emulator: LiveServer, ctl: EmulatorControl) -> None:
    """50 tasks each take a handle of a tenant added a moment ago and send: one version() and
    one get() of the source, every message sent with the tenant's credentials."""
    stored = StoredTenants(store, keys=KEY)
    source = SlowSource(stored, delay=0)
    tasks = 50

    async def main() -> None:
        async with async_gateway(store, source, tenant_refresh=3600) as gw:
            stored.add("acme", tenant_cfg(emulator.url))
            source.gate = threading.Event()

            async def one(i: int) -> str:
                return (await gw.tenant("acme").send(f"0803123{i:04d}", f"m{i}")).status.value

            sends = asyncio.gather(*(one(i) for i in range(tasks)))
            await asyncio.to_thread(source.entered.wait, 10)  # the lookup is under way (held at the gate)
            for _ in range(5):
                await asyncio.sleep(0)  # every task has reached its first await
            source.gate.set()
            statuses = await sends
            assert len(statuses) == tasks and "rejected" not in statuses and "failed" not in statuses

    asyncio.run(main())
    assert source.count("version") == 1 and source.count("get acme") == 1, source.calls
    assert source.on_loop() == []
    assert keys_used(ctl) == [API_KEY] * tasks


def test_async_webhook_app_asks_the_source_off_the_loop(store: Store, emulator: LiveServer) -> None:
    """The webhook app on an AsyncGateway: the source is asked in the gateway's worker threads,
    a removed tenant's callbacks are refused (401, as any unknown tenant's)."""
    from smsgate.webhooks import webhook_app

    stored = StoredTenants(store, keys=KEY)
    stored.add("acme", tenant_cfg(emulator.url))
    source = SlowSource(stored, delay=0.05)
    gw = async_gateway(store, source, tenant_refresh=0)
    with LiveServer(webhook_app(gw)) as hooks:
        sent = asyncio.run(gw.tenant("acme").send("08031234567", "x"))
        body = json.dumps([{"id": sent.provider_message_id, "status": "delivered"}]).encode()
        ok = httpx.post(f"{hooks.url}/acme/main", content=body, headers={"X-Echo-Signature": sign(body)})
        assert ok.status_code == 200 and ok.json()["matched"] == 1
        assert httpx.post(f"{hooks.url}/acme/other", content=body).status_code == 401
        stored.remove("acme")
        gone = httpx.post(f"{hooks.url}/acme/main", content=body, headers={"X-Echo-Signature": sign(body)})
        assert gone.status_code == 401
    asyncio.run(gw.aclose())
    assert source.count("get acme") >= 2 and source.on_loop() == []


def test_sync_gateway_never_hands_a_lookup_older_than_its_check(store: Store, emulator: LiveServer,
                                                                ctl: EmulatorControl) -> None:
    """Sync Gateway: a thread's lookup answered before a rotation is still under way when
    another thread's gw.tenant() sees the rotation: that one loads the tenant itself, at once
    (no lock held across the first lookup), and the older answer never replaces the newer."""
    stored = StoredTenants(store, keys=KEY)
    stored.add("acme", tenant_cfg(emulator.url, OLD_KEY))
    source = SlowSource(stored, delay=0)
    with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(), tenants=source,
                 tenant_refresh=3600) as gw:
        source.gate = gate = threading.Event()
        release = threading.Timer(10, gate.set)  # a bound, should the second caller wait for it
        release.start()
        first: list[str] = []
        slow = threading.Thread(target=lambda: first.append(
            gw.tenant("acme").provider("main").settings.secret("api_key")))
        try:
            slow.start()
            assert source.entered.wait(10)
            source.gate = None  # later lookups answer at once
            stored.rotate("acme", "main", {"api_key": API_KEY})
            acme = gw.tenant("acme")  # sees the new version: its own lookup
            assert acme.provider("main").settings.secret("api_key") == API_KEY
            assert not gate.is_set()
            gate.set()
            slow.join(10)
        finally:
            release.cancel()
            gate.set()
        assert first == [API_KEY]  # the older answer arrived last and was not kept
        assert acme.send("08031234567", "new key").provider == "main"
    assert keys_used(ctl) == [API_KEY]


def test_blocking_checks_refuse_on_the_loop_and_work_off_it(store: Store, emulator: LiveServer) -> None:
    """With a tenant source, the plain ``gw.has_provider()`` / ``gw.check()`` of an AsyncGateway
    would ask the source (blocking I/O): on the running event loop they refuse at once with
    :class:`WouldBlock` naming the awaitable form, never asking the source; in a thread of
    their own (no running loop) they answer as before. Without a source (no I/O) they answer
    on the loop too."""
    stored = StoredTenants(store, keys=KEY)
    stored.add("acme", tenant_cfg(emulator.url))
    source = SlowSource(stored)

    async def main() -> None:
        async with async_gateway(store, source, tenant_refresh=0) as gw:
            with pytest.raises(WouldBlock, match=r"AsyncGateway.has_provider\(\).*has_provider_async"):
                gw.has_provider("acme", "main")
            with pytest.raises(WouldBlock, match=r"AsyncGateway.check\(\).*check_async"):
                gw.check()
            assert source.calls == []  # refused before asking anything
            assert await asyncio.to_thread(gw.has_provider, "acme", "main")
            assert len(await asyncio.to_thread(gw.check)) == 1
        async with AsyncGateway({"store": "memory://", "tenants": {"filed": tenant_cfg(emulator.url)}},
                                store=store, plugins=plugins()) as plain:
            assert plain.has_provider("filed", "main") and not plain.has_provider("filed", "other")
            assert len(plain.check()) == 1

    asyncio.run(main())
    assert source.on_loop() == []
