"""Attacks on the delivery guarantees that the other proof tests do not make: combinations of
crashes with slow or lying vendors, asserted from the emulators' own request records.

Every claim about what reached a vendor reads that vendor emulator's record of the requests it
received (``EmulatorControl.requests``), never smsgate's log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services import pg_url  # noqa: F401  (a fixture: a PostgreSQL store on a schema of its own)
from smsgate import Gateway
from smsgate.models import CampaignStatus
from smsgate.testing import EmulatorControl, LiveServer

HERE = Path(__file__).parent


def worker(cfg_path: Path, campaign_id: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen([sys.executable, str(HERE / "campaign_worker.py"), str(cfg_path), campaign_id, *extra],
                            env=env, stderr=subprocess.PIPE)




def wait_for(what: Any, timeout: float = 30.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, message or "timed out"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- slow vendor, dead runner
def kill_a_runner_then_resume(cfg_path: Path, campaign_id: str, posts: Any) -> None:
    """Runner A (a process) sends the campaign's first request, which the emulator holds (a
    ``hang`` fault); A is SIGKILLed with it there; once the vendor processed it, runner B runs the
    campaign to its end. ``posts()``: the emulator's record of the send requests."""
    a = worker(cfg_path, campaign_id, "--installed")
    wait_for(lambda: len(posts()) >= 1 or a.poll() is not None, message="runner A sent nothing")
    assert a.poll() is None, (a.stderr.read() if a.stderr else b"").decode()[-2000:]
    a.send_signal(signal.SIGKILL)
    a.wait()
    wait_for(lambda: all(r.processed for r in posts()), message="the hung request was never processed")
    b = worker(cfg_path, campaign_id, "--installed")
    _, err = b.communicate(timeout=60)
    assert b.returncode == 0, err.decode()[-2000:]


def test_a_dead_runners_request_the_vendor_processes_late_is_not_sent_again(tmp_path: Path) -> None:
    """Campaigns REST (no client reference; a dead runner's logged messages are looked up in the
    vendor's SMS listing). Runner A is killed while its request sits at a slow vendor, which
    takes it *within* the client's timeout but after A's lease ended. Runner B takes A's claims
    over at once: the listing does not show the message yet, which does not mean it never
    arrived. B must not send it again; the vendor's record must hold every recipient once."""
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    with LiveServer(create_app(delivery_delay=3600)) as server:
        ctl = EmulatorControl(server.url)
        prov = {"plugin": "campaigns_api", "base_url": server.url, "credentials": {"api_key": SANDBOX_API_KEY},
                "sender": "ACME", "timeout": 3.0}
        cfg = {"store": f"sqlite:///{tmp_path / 'slow.db'}",
               "tenants": {"acme": {"default_region": "GB", "providers": {"dm": prov}}}}
        cfg_path = tmp_path / "cfg.json"
        cfg_path.write_text(json.dumps(cfg))
        numbers = [f"+447700{i:06d}" for i in range(6)]
        with Gateway(cfg) as gw:
            cid = gw.tenant("acme").campaigns.create("slow", text="x", audience=numbers, batch_size=1,
                                                     concurrency=1, lease_seconds=1.0, mode="fanout").campaign_id
        # the first send sits 2.5 s at the vendor (less than the 3 s timeout), then is processed
        ctl.fault(kind="hang", delay=2.5, path="/api/SMSMessages", method="POST", count=1)

        def posts() -> list[Any]:
            return ctl.requests("/api/SMSMessages", "POST")

        a = worker(cfg_path, cid, "--installed")
        wait_for(lambda: len(posts()) >= 1 or a.poll() is not None, message="runner A sent nothing")
        assert a.poll() is None, (a.stderr.read() if a.stderr else b"").decode()[-2000:]
        a.send_signal(signal.SIGKILL)
        a.wait()
        b = worker(cfg_path, cid, "--installed")
        _, err = b.communicate(timeout=60)
        assert b.returncode == 0, err.decode()[-2000:]
        wait_for(lambda: all(r.processed for r in posts()), message="the hung request was never processed")
        got = Counter(r.json()["phoneNumber"] for r in ctl.processed("/api/SMSMessages", "POST"))
        national = {"0" + p[3:] for p in numbers}
        assert set(got) == national, "a recipient was lost"
        assert max(got.values()) == 1, f"sent twice: {[k for k, v in got.items() if v > 1]}"
        with Gateway(cfg) as gw:
            p = gw.tenant("acme").campaigns.get(cid).progress()
        assert (p.status, p.sent, p.unknown, p.pending, p.sending) == (CampaignStatus.COMPLETED, 6, 0, 0, 0)


# ----------------------------------------------------------------------------- auth before the send
def test_a_garbled_token_answer_is_not_a_maybe_sent_message() -> None:
    """Colony's send needs an OAuth2 token first. A token endpoint answering garbage (an HTML
    page, a proxy error) means the send request never left: the message must fail over to the
    backup (and be sent there once), not be logged ``unknown`` as if Colony might have it."""
    from smsgate.store.memory import MemoryStore
    from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app

    with LiveServer(create_app(delivery_delay=3600)) as first, LiveServer(create_app(delivery_delay=3600)) as backup:
        one, two = EmulatorControl(first.url), EmulatorControl(backup.url)
        one.fault(kind="malformed", path="/oauth2/", count=None)

        def colony(url: str) -> dict[str, Any]:
            return {"plugin": "colony", "base_url": url, "credentials": dict(SANDBOX_CREDENTIALS)}

        cfg = {"tenants": {"acme": {"default_region": "ZA",
                                    "providers": {"main": colony(first.url), "spare": colony(backup.url)}}}}
        with Gateway(cfg, store=MemoryStore()) as gw:
            t = gw.tenant("acme")
            result = t.send("+27815854565", "hello")
            assert result.provider == "spare" and result.status.rank > 0, result
            (logged,) = t.messages()
            assert logged.status is not logged.status.UNKNOWN
            results = t.send_many(["+27815854566", "+27815854567"], "two")
            assert [r.provider for r in results] == ["spare", "spare"], results
        assert [r.path for r in one.requests() if not r.path.startswith("/oauth2/")] == []  # no send left
        sent = [json.loads(r.body) for r in two.processed("/contact/message/", "POST")]
        numbers = Counter(m["destination"] for body in sent for m in (body if isinstance(body, list) else [body]))
        assert numbers == Counter({"27815854565": 1, "27815854566": 1, "27815854567": 1})


def test_an_attachment_upload_whose_answer_was_lost_is_not_a_maybe_sent_message() -> None:
    """WAABOT: an attachment given by URL is uploaded (``POST /attachment``) before the
    broadcast that carries it. The upload's answer lost (connection reset after the vendor
    stored the file) says nothing about the message: the broadcast never left. It must fail
    over and be sent once by the backup, not be logged ``unknown``."""
    from smsgate import Attachment
    from smsgate.store.memory import MemoryStore
    from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS, create_app

    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAcCBlCwAAAABJRU5ErkJggg=="
    with LiveServer(create_app()) as first, LiveServer(create_app()) as backup:
        one, two = EmulatorControl(first.url), EmulatorControl(backup.url)
        one.fault(kind="reset", process=True, path="/api/v1/attachment", method="POST", count=None)

        def waabot(url: str) -> dict[str, Any]:
            return {"plugin": "broadcast", "base_url": url, "credentials": dict(SANDBOX_CREDENTIALS)}

        cfg = {"tenants": {"acme": {"default_region": "NG",
                                    "providers": {"main": waabot(first.url), "spare": waabot(backup.url)}}}}
        with Gateway(cfg, store=MemoryStore()) as gw:
            t = gw.tenant("acme")
            result = t.send("+2348031234567", "see this", attachments=[Attachment(url=png, filename="a.png")])
            assert result.provider == "spare" and result.status.rank > 0, result
            (logged,) = t.messages()
            assert logged.status is not logged.status.UNKNOWN
        assert one.processed("/api/v1/attachment", "POST")  # the fault hit after the vendor stored the file
        assert one.requests("/api/v1/broadcast") == []  # the message never left through main
        sent = [json.loads(r.body)["to"] for r in two.processed("/api/v1/broadcast", "POST")]
        assert sent == ["2348031234567"]


# ----------------------------------------------------------------------------- two runners settle unknowns
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_runners_settling_the_same_unknowns_send_each_once(
        tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    """Recipients left ``unknown`` (a 500 the vendor answered without processing) are asked
    about again by every runner that starts. Two runners starting half a second apart both
    look the same recipients up in the vendor's listing; the first finds them never received,
    puts them back and sends them. The second's look-ups, made before those sends, must not put
    the recipients back again once they were sent (each would be sent a second time)."""
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    with LiveServer(create_app(delivery_delay=3600)) as server:
        ctl = EmulatorControl(server.url)
        # the breaker off: the first run's 30 refused sends would open it, and look-ups respect an
        # open breaker (core.received.ask): this test is about the two runners' settling race
        prov = {"plugin": "campaigns_api", "base_url": server.url, "credentials": {"api_key": SANDBOX_API_KEY},
                "sender": "ACME", "timeout": 0.25, "breaker": {"enabled": False}}
        store = f"sqlite:///{tmp_path / 'settle.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
        cfg = {"store": store, "tenants": {"acme": {"default_region": "GB", "providers": {"dm": prov}}}}
        cfg_path = tmp_path / "cfg.json"
        cfg_path.write_text(json.dumps(cfg))
        n = 30
        numbers = [f"+447700{i:06d}" for i in range(n)]
        ctl.fault(kind="status", status=500, path="/api/SMSMessages", method="POST", count=None)
        with Gateway(cfg) as gw:
            camp = gw.tenant("acme").campaigns.create("settle", text="x", audience=numbers, batch_size=5,
                                                      concurrency=2, lease_seconds=2.0, mode="fanout")
            first = camp.run()
        assert first.unknown == n and not ctl.processed("/api/SMSMessages", "POST")
        ctl.clear_faults()
        time.sleep(0.6)  # older than twice the timeout: a look-up's "not found" now counts
        ctl.fault(kind="latency", delay=0.05, path="/api/SMSMessages", method="GET", count=None)
        a = worker(cfg_path, camp.campaign_id, "--installed")
        time.sleep(0.5)
        b = worker(cfg_path, camp.campaign_id, "--installed")
        for p in (a, b):
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()[-2000:]
        got = Counter(r.json()["phoneNumber"] for r in ctl.processed("/api/SMSMessages", "POST"))
        assert set(got) == {"0" + p[3:] for p in numbers}, "a recipient was lost"
        assert max(got.values()) == 1, f"sent twice: {sorted(k for k, v in got.items() if v > 1)}"


# ----------------------------------------------------------------------------- limits across processes
def arrivals(ctl: EmulatorControl) -> list[tuple[float, int]]:
    """(time the vendor received it, messages it carried) of every send request, faulted ones too."""
    out = []
    for r in ctl.requests(method="POST"):
        body = r.json()
        out.append((r.at, len(body["messages"]) if r.path.endswith("/bulk") else 1))
    return sorted(out)


def busiest(events: list[tuple[float, int]], period: float = 1.0) -> int:
    """The most messages any window ``[t, t + period)`` holds."""
    return max((sum(n for at, n in events[i:] if at < t + period) for i, (t, _) in enumerate(events)), default=0)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_three_runner_processes_keep_both_limits_while_the_first_provider_fails_over(
        tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    """Three runner processes share one campaign and the limits of a route of two providers
    (20/s and 10/s, held in the store). The first refuses a third of its requests unprocessed
    (503, 429): those fail over to the second. From both vendors' records: each recipient
    accepted once, and no 1-second window of either vendor ever held more than its limit,
    every attempt counted (refused ones too)."""
    from reference_provider import API_KEY, create_emulator

    took1: dict[str, dict[str, Any]] = {}
    took2: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(took1)) as s1, LiveServer(create_emulator(took2)) as s2:
        c1, c2 = EmulatorControl(s1.url), EmulatorControl(s2.url)
        c1.fault(kind="status", status=503, probability=0.2, seed=7, count=None)
        c1.fault(kind="status", status=429, probability=0.15, seed=8, count=None)

        def provider(url: str, rate: int) -> dict[str, Any]:
            # the vendor documents 503 as "not processed": a refusal certain to have sent nothing
            return {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
                    "limits": [{"rate": rate}], "max_retries": 0, "not_processed_statuses": [503]}

        store = f"sqlite:///{tmp_path / 'three.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
        cfg = {"store": store, "tenants": {"acme": {
            "default_region": "NG", "routes": [{"providers": ["one", "two"]}],
            "providers": {"one": provider(s1.url, 20), "two": provider(s2.url, 10)}}}}
        cfg_path = tmp_path / "cfg.json"
        cfg_path.write_text(json.dumps(cfg))
        n = 150
        numbers = [f"0803{i:07d}" for i in range(n)]
        from reference_provider import EchoPlugin
        from smsgate.plugins import PluginManager

        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        with Gateway(cfg, plugins=pm) as gw:
            cid = gw.tenant("acme").campaigns.create("three", text="x", audience=numbers, batch_size=1,
                                                     concurrency=4, lease_seconds=3).campaign_id
        procs = [worker(cfg_path, cid) for _ in range(3)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()[-2000:]
        first, second = arrivals(c1), arrivals(c2)
    accepted = Counter(m["to"] for m in [*took1.values(), *took2.values()])
    assert set(accepted) == {f"+234{x[1:]}" for x in numbers}, "a recipient was lost"
    assert max(accepted.values()) == 1, "a recipient was accepted twice"
    assert took1 and took2 and len(first) > len(took1)  # the first refused some: they failed over
    assert busiest(first) <= 20, busiest(first)
    assert busiest(second) <= 10, busiest(second)


# ----------------------------------------------------------------------------- partial answers
def test_squad_never_gets_one_number_twice_in_a_bulk_request() -> None:
    """Squad answers a bulk send with ``sent[]`` and ``errors[]`` entries naming the number only.
    Two messages to one number in one request, one refused: the adapter cannot tell which was
    sent, and guessing wrong marks the sent one failed (a retry sends it twice). So a number
    appears at most once per request (the emulator's record), and every message is sent once."""
    from smsgate.gateway import MessageSpec
    from smsgate.store.memory import MemoryStore
    from smsgate_squad.emulator import SANDBOX_SECRET_KEY, create_app

    with LiveServer(create_app(delivery_delay=3600)) as server:
        ctl = EmulatorControl(server.url)
        cfg = {"tenants": {"acme": {"default_region": "NG", "providers": {"sq": {
            "plugin": "squad", "base_url": server.url, "credentials": {"secret_key": SANDBOX_SECRET_KEY},
            "sender": "ACME"}}}}}
        with Gateway(cfg, store=MemoryStore()) as gw:
            results = gw.tenant("acme").send_many([
                MessageSpec(to="08031234567", text="first"), MessageSpec(to="08031234568", text="other"),
                MessageSpec(to="08031234567", text="second")])
        assert [r.ok for r in results] == [True, True, True], results
        bodies = [json.loads(r.body)["messages"] for r in ctl.processed("/sms/send/instant", "POST")]
    for entries in bodies:
        numbers = [e["phone_number"] for e in entries]
        assert len(numbers) == len(set(numbers)), f"one request names a number twice: {numbers}"
    assert sorted((e["phone_number"], e["message"]) for b in bodies for e in b) == [
        ("08031234567", "first"), ("08031234567", "second"), ("08031234568", "other")]


def test_recovery_asks_the_provider_a_campaign_is_pinned_to(tmp_path: Path) -> None:
    """A campaign created with ``provider="dm_a"`` sends through that instance only, whatever
    the tenant's routes say. A runner killed with a request out there must be resolved by asking
    dm_a, not the route's provider (dm_b, another account that never saw it: "not received",
    so sent again)."""
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    with LiveServer(create_app(delivery_delay=3600)) as sa, LiveServer(create_app(delivery_delay=3600)) as sb:
        a_ctl, b_ctl = EmulatorControl(sa.url), EmulatorControl(sb.url)

        def dm(url: str) -> dict[str, Any]:
            return {"plugin": "campaigns_api", "base_url": url, "credentials": {"api_key": SANDBOX_API_KEY},
                    "sender": "ACME", "timeout": 0.3}

        cfg = {"store": f"sqlite:///{tmp_path / 'pinned.db'}",
               "tenants": {"acme": {"default_region": "GB", "routes": [{"providers": ["dm_b"]}],
                                    "providers": {"dm_a": dm(sa.url), "dm_b": dm(sb.url)}}}}
        cfg_path = tmp_path / "cfg.json"
        cfg_path.write_text(json.dumps(cfg))
        numbers = [f"+447700{i:06d}" for i in range(4)]
        with Gateway(cfg) as gw:
            cid = gw.tenant("acme").campaigns.create("pinned", text="x", audience=numbers, batch_size=1,
                                                     concurrency=1, lease_seconds=1.0, mode="fanout",
                                                     provider="dm_a").campaign_id
        a_ctl.fault(kind="hang", delay=0.2, path="/api/SMSMessages", method="POST", count=1)

        def posts() -> list[Any]:
            return a_ctl.requests("/api/SMSMessages", "POST")

        kill_a_runner_then_resume(cfg_path, cid, posts)
        got = Counter(r.json()["phoneNumber"] for r in a_ctl.processed("/api/SMSMessages", "POST"))
        assert not b_ctl.processed("/api/SMSMessages", "POST")  # the pinned campaign never used dm_b
        assert set(got) == {"0" + p[3:] for p in numbers}, "a recipient was lost"
        assert max(got.values()) == 1, f"sent twice: {[k for k, v in got.items() if v > 1]}"
