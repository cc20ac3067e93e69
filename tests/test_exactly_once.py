"""Exactly-once campaign dispatch, proved from the vendors' side.

Every assertion about what was sent reads the emulator's own record of the
requests it received, never smsgate's log: several runner processes at once on
one campaign (SQLite and PostgreSQL), SIGKILL at random points followed by a
resume, and a slow store under the async gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bounded import drop_schema
from reference_provider import API_KEY, EchoPlugin, create_emulator, echo_received
from smsgate import AsyncGateway, Gateway, Status
from smsgate.models import CampaignStatus
from smsgate.plugins import PluginManager
from smsgate.store.base import RecipientState
from smsgate.store.memory import MemoryStore
from smsgate.testing import EmulatorControl, LiveServer

HERE = Path(__file__).parent
PG_DSN = os.environ.get("SMSGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


@pytest.fixture
def echo() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


def echo_config(url: str, store: str) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}


def worker(cfg_path: Path, campaign_id: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen([sys.executable, str(HERE / "campaign_worker.py"), str(cfg_path), campaign_id, *extra],
                            env=env, stderr=subprocess.PIPE)


@pytest.fixture
def pg_store() -> Iterator[str]:
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed")
    schema = f"once_{uuid.uuid4().hex[:10]}"
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield f"{PG_DSN}?schema={schema}"
    finally:
        drop_schema(PG_DSN, schema)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_four_runners_a_second_apart_send_every_recipient_once(
    tmp_path: Path, echo: tuple[str, EmulatorControl], kind: str, request: pytest.FixtureRequest
) -> None:
    url, ctl = echo
    store = f"sqlite:///{tmp_path / 'many.db'}" if kind == "sqlite" else request.getfixturevalue("pg_store")
    cfg = echo_config(url, store)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    n = 3000
    numbers = [f"+234806{i:07d}" for i in range(n)]
    with Gateway(cfg, plugins=plugins()) as gw:
        cid = gw.tenant("acme").campaigns.create("many", text="x", audience=numbers, batch_size=20,
                                                 concurrency=8, lease_seconds=3).campaign_id
    ctl.fault(kind="latency", delay=0.02, path="/messages", count=None)  # the run lasts several seconds
    procs = []
    for _ in range(4):
        procs.append(worker(cfg_path, cid))
        time.sleep(1.0)
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()[-2000:]
    received = echo_received(ctl)
    assert set(received) == set(numbers), "a recipient was lost"
    assert max(received.values()) == 1, f"duplicates: {[k for k, v in received.items() if v > 1][:5]}"
    with Gateway(cfg, plugins=plugins()) as gw:
        p = gw.tenant("acme").campaigns.get(cid).progress()
        assert (p.status, p.sent, p.pending, p.sending, p.unknown) == (CampaignStatus.COMPLETED, n, 0, 0, 0)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ten_random_sigkills_then_resume_single_send_campaign(tmp_path: Path) -> None:
    """The Campaigns REST vendor: one request per message, no client reference.

    After 10 SIGKILLs at random moments and a resume: every recipient received once. A
    message logged just before its request may have left, whose answer died with the
    process, is looked up in the vendor's own SMS listing (number, text, time): found, it
    is sent; not found, it never left and is sent on resume. So none stays ``unknown``.
    """
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    app = create_app(delivery_delay=3600)
    with LiveServer(app) as server:
        ctl = EmulatorControl(server.url)
        prov = {"plugin": "campaigns_api", "base_url": server.url, "credentials": {"api_key": SANDBOX_API_KEY},
                "sender": "ACME"}
        cfg = {"store": f"sqlite:///{tmp_path / 'kill.db'}",
               "tenants": {"acme": {"default_region": "GB", "providers": {"dm": prov}}}}
        cfg_path = tmp_path / "cfg.json"
        cfg_path.write_text(json.dumps(cfg))
        n = 1500
        numbers = [f"+447700{i:06d}" for i in range(n)]
        with Gateway(cfg) as gw:
            cid = gw.tenant("acme").campaigns.create("kill", text="x", audience=numbers, batch_size=10,
                                                     concurrency=8, lease_seconds=1.5, mode="fanout").campaign_id
        ctl.fault(kind="latency", delay=0.02, path="/api/SMSMessages", count=None)
        rng = random.Random(1234)

        def received() -> Counter[str]:
            return Counter(r.json()["phoneNumber"] for r in ctl.requests("/api/SMSMessages", "POST"))

        for _ in range(10):
            before = sum(received().values())
            target = before + rng.randint(5, 120)
            proc = worker(cfg_path, cid, "--installed")
            deadline = time.monotonic() + 60
            while sum(received().values()) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.001, 0.02))
            assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()[-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        done = worker(cfg_path, cid, "--installed")
        _, err = done.communicate(timeout=180)
        assert done.returncode == 0, err.decode()[-2000:]
        got = received()
        national = {"0" + p[3:] for p in numbers}  # the vendor's format: national digits
        assert set(got) == national, "a recipient was lost"
        assert max(got.values()) == 1, f"duplicates: {[k for k, v in got.items() if v > 1][:5]}"
        with Gateway(cfg) as gw:
            camp = gw.tenant("acme").campaigns.get(cid)
            p = camp.progress()
            rows = gw.store.recipients("acme", cid, limit=n)
        assert (p.status, p.sent, p.pending, p.sending, p.failed, p.unknown) == (
            CampaignStatus.COMPLETED, n, 0, 0, 0, 0)
        assert {r.state for r in rows} == {RecipientState.SENT}
        with Gateway(cfg) as gw:  # the log agrees: one submitted message per recipient, none unknown
            logged = Counter(m.to for m in gw.tenant("acme").messages(campaign_id=cid, limit=10 * n)
                             if m.status is not Status.FAILED)
        assert set(logged) == set(numbers) and max(logged.values()) == 1


# ----------------------------------------------------------------------------- async, slow store
class SlowStore(MemoryStore):
    """A store whose every call takes ``delay`` seconds and notes the thread it ran on."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.threads: set[int] = set()
        self.busy = 0

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name.startswith("_") or not callable(attr) or name in ("migrate", "close", "delay"):
            return attr

        def slow(*args: Any, **kwargs: Any) -> Any:
            self.threads.add(threading.get_ident())
            self.busy += 1
            try:
                time.sleep(self.delay)
                return attr(*args, **kwargs)
            finally:
                self.busy -= 1

        return slow


def test_async_send_many_never_blocks_the_event_loop_on_the_store(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    store = SlowStore(0.05)

    async def go() -> tuple[int, int, int]:
        loop_thread = threading.get_ident()
        ticks_while_busy = 0
        longest = 0.0
        stop = False

        async def probe() -> None:  # the loop's heartbeat: ticks while a store call is in progress
            nonlocal ticks_while_busy, longest
            while not stop:
                t = time.monotonic()
                await asyncio.sleep(0.002)
                longest = max(longest, time.monotonic() - t)
                if store.busy:
                    ticks_while_busy += 1

        async with AsyncGateway(echo_config(url, "memory://"), store=store, plugins=plugins()) as gw:
            task = asyncio.ensure_future(probe())
            results = await gw.tenant("acme").send_many([f"+234807{i:07d}" for i in range(60)], "hi", concurrency=8)
            stop = True
            await task
            assert all(r.status is Status.SUBMITTED for r in results)
        return loop_thread, ticks_while_busy, int(longest * 1000)

    loop_thread, ticks, _longest_ms = asyncio.run(go())
    assert store.threads and loop_thread not in store.threads  # no store call ever ran on the loop
    assert ticks > 20  # the loop kept running while the store was busy
    assert sum(echo_received(ctl).values()) == 60


# ------------------------------------------------------------------- handles, sync and async
def _dm_config(url: str, store: str = "memory://") -> dict[str, Any]:
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY

    prov = {"plugin": "campaigns_api", "base_url": url, "credentials": {"api_key": SANDBOX_API_KEY},
            "sender": "ACME"}
    return {"store": store, "tenants": {"acme": {"default_region": "GB", "providers": {"dm": prov}}}}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_campaign_handle_under_tenant_and_async_tenant(mode: str) -> None:
    """Create, preview, run natively and read stats with the provider's own figures, both ways."""
    from smsgate_campaigns_api.emulator import create_app

    app = create_app(delivery_delay=0.05, campaign_delay=0.05)
    audience = [{"phone": "07912345601", "name": "Ann"}, {"phone": "07912345602", "name": "Bo"}, "nope"]
    with LiveServer(app) as server:
        if mode == "sync":
            with Gateway(_dm_config(server.url)) as gw:
                camp = gw.tenant("acme").campaigns.create("promo", text="Hi {name}", audience=audience,
                                                          provider="dm", mode="native")
                assert camp.preview().recipients == 2 and camp.preview().skipped == {"invalid": 1}
                done = camp.run()
                stats = camp.stats(include_provider=True)
                provider_campaign = camp.row.provider_campaign_id
        else:
            async def go() -> tuple[Any, Any, str | None]:
                async with AsyncGateway(_dm_config(server.url)) as gw:
                    camp = await gw.tenant("acme").campaigns.create("promo", text="Hi {name}", audience=audience,
                                                                    provider="dm", mode="native")
                    assert (await camp.preview()).recipients == 2
                    done = await camp.run()
                    stats = await camp.stats(include_provider=True)
                    return done, stats, (await camp.row()).provider_campaign_id

            done, stats, provider_campaign = asyncio.run(go())
    assert done.status is CampaignStatus.COMPLETED and done.sent == 2 and done.skipped == 1
    assert provider_campaign
    assert "provider" in stats.raw and stats.raw["provider"]["provider"] == "dm"


def test_retrying_recipients_of_a_native_campaign_is_unsupported_naming_the_provider(tmp_path: Path) -> None:
    """A native campaign is the provider's to send (recipients are recorded as handed over, none
    failed or unknown), and no campaign API documents sending to some of its recipients again:
    ``retry_failed`` / ``retry_unknown`` (sync, async, CLI) raise ``Unsupported`` naming the
    provider and why, instead of silently putting none back. Nothing is sent again (the
    emulator's record: one campaign created)."""
    from typer.testing import CliRunner

    from smsgate.cli import app
    from smsgate.errors import Unsupported
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    db = tmp_path / "native.db"
    with LiveServer(create_app(delivery_delay=0.05, campaign_delay=0.05)) as server:
        ctl = EmulatorControl(server.url)
        with Gateway(_dm_config(server.url, f"sqlite:///{db}")) as gw:
            camp = gw.tenant("acme").campaigns.create("promo", text="Hi", audience=["07912345601", "07912345602"],
                                                      provider="dm", mode="native")
            assert camp.run().sent == 2
            for retry in (camp.retry_failed, camp.retry_unknown):
                with pytest.raises(Unsupported, match=r"provider 'dm' does not support retry_(failed|unknown) of a "
                                                      r"native campaign; campaign cmp_\w+ was handed to 'dm'") as err:
                    retry()
                assert err.value.provider == "dm" and "mode='fanout'" in str(err.value)
            assert (camp.progress().sent, camp.progress().pending) == (2, 0)
            cid = camp.campaign_id

        async def go() -> None:
            async with AsyncGateway(_dm_config(server.url, f"sqlite:///{db}")) as agw:
                acamp = await agw.tenant("acme").campaigns.get(cid)
                with pytest.raises(Unsupported, match="retry_failed of a native campaign"):
                    await acamp.retry_failed("AuthFailed")
                with pytest.raises(Unsupported, match="retry_unknown of a native campaign"):
                    await acamp.retry_unknown()

        asyncio.run(go())
        cfg = tmp_path / "smsgate.toml"
        cfg.write_text(f'store = "sqlite:///{db}"\n[tenants.acme]\ndefault_region = "GB"\n'
                       f'[tenants.acme.providers.dm]\nplugin = "campaigns_api"\nbase_url = "{server.url}"\n'
                       f'sender = "ACME"\n[tenants.acme.providers.dm.credentials]\napi_key = "{SANDBOX_API_KEY}"\n')
        for command in (["retry-failed"], ["retry-unknown", "--yes"]):
            out = CliRunner().invoke(app, ["campaign", command[0], cid, "-c", str(cfg), *command[1:]],
                                     env={"COLUMNS": "400"})
            assert out.exit_code == 2, out.output
            assert "provider 'dm' does not support" in out.output and "native campaign" in out.output, out.output
        creates = [r for r in ctl.requests(method="POST") if r.path.lower().startswith("/api/campaigns")]
        assert len(creates) == 1


def test_async_fanout_run_sends_each_recipient_once_on_the_gateways_client(
        echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    numbers = [f"+234808{i:07d}" for i in range(40)]

    async def go() -> Any:
        async with AsyncGateway(echo_config(url, "memory://"), plugins=plugins()) as gw:
            camp = await gw.tenant("acme").campaigns.create("a", text="x", audience=numbers, batch_size=4,
                                                            concurrency=4)
            seen: list[int] = []
            done = await camp.run(progress=lambda p: seen.append(p.sent))
            assert seen and seen[-1] == 40
            return done

    done = asyncio.run(go())
    assert (done.status, done.sent) == (CampaignStatus.COMPLETED, 40)
    assert echo_received(ctl) == Counter(numbers)


@pytest.mark.parametrize("status", [500, 503])
def test_a_native_handover_whose_answer_was_lost_is_never_repeated(status: int) -> None:
    """The vendor created the campaign but its answer was lost (a 500, or a 503 the vendor does not
    document as "not processed"): no later run creates it again."""
    from smsgate.errors import UnknownOutcome
    from smsgate_campaigns_api.emulator import create_app

    with LiveServer(create_app()) as server:
        ctl = EmulatorControl(server.url)
        cfg = _dm_config(server.url)
        cfg["tenants"]["acme"]["providers"]["dm"]["max_retries"] = 0
        ctl.fault(kind="status", status=status, process=True, path="/api/Campaigns", method="POST", count=1)
        with Gateway(cfg) as gw:
            camp = gw.tenant("acme").campaigns.create("promo", text="Hi", audience=["07912345601"],
                                                      provider="dm", mode="native")
            with pytest.raises(UnknownOutcome):
                camp.run()
            with pytest.raises(UnknownOutcome, match="not created a second time"):
                camp.run()
            assert camp.stats(include_provider=True).raw.get("provider") is None
        creates = [r for r in ctl.requests(method="POST") if r.path.lower().startswith("/api/campaigns")]
        assert len(creates) == 1  # from the vendor's side: one campaign, whatever was re-run


def test_a_native_handover_refused_before_processing_can_be_run_again() -> None:
    from smsgate.errors import ProviderUnavailable
    from smsgate_campaigns_api.emulator import create_app

    with LiveServer(create_app()) as server:
        ctl = EmulatorControl(server.url)
        cfg = _dm_config(server.url)
        cfg["tenants"]["acme"]["providers"]["dm"]["max_retries"] = 0
        # a contract that documents 503 as "not processed": the refusal is certain
        cfg["tenants"]["acme"]["providers"]["dm"]["not_processed_statuses"] = [503]
        ctl.fault(kind="status", status=503, path="/api/Campaigns", method="POST", count=1)
        with Gateway(cfg) as gw:
            camp = gw.tenant("acme").campaigns.create("promo", text="Hi", audience=["07912345601"],
                                                      provider="dm", mode="native")
            with pytest.raises(ProviderUnavailable):
                camp.run()
            assert camp.run().sent == 1  # nothing was created: the second run hands it over
            assert camp.row.provider_campaign_id not in ("", "(handing over)")
        creates = [r for r in ctl.requests(method="POST") if r.path.lower().startswith("/api/campaigns")]
        assert len(creates) == 2
