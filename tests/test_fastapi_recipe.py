"""docs/fastapi.md runs: its ``main.py`` (the app) and ``worker.py`` (the long-running worker)
are written into a project configured for the Squad emulator and run in a new process: the
route sends (a retried request sends nothing twice), a bad number is a 400, delivery reports
reach the mounted webhook app, and the worker's tick finishes a campaign. What reached the
vendor is read from the emulator's own record.

Each of the page's Python blocks starts with a ``# file.py`` comment line naming its file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from smsgate.testing import EmulatorControl, FaultRule, LiveServer
from smsgate_squad.emulator import SANDBOX_SECRET_KEY, create_app
from test_docs_examples import page_files

pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "fastapi.md"

RUNNER = textwrap.dedent("""
    import asyncio
    import json
    from datetime import datetime, timezone

    from fastapi.testclient import TestClient

    import main
    import worker
    from smsgate import AsyncGateway

    async def opt_out() -> None:
        async with AsyncGateway("smsgate.toml") as gw:
            await gw.tenant("shop").optouts.add("08039999999")

    asyncio.run(opt_out())
    with TestClient(main.app) as client:  # runs the lifespan: the gateway is closed at the end
        first = client.post("/orders/42/shipped", json={"phone": "08031234567"})
        again = client.post("/orders/42/shipped", json={"phone": "08031234567"})  # a retried request
        bad = client.post("/orders/43/shipped", json={"phone": "12345"})
        opted_out = client.post("/orders/44/shipped", json={"phone": "08039999999"})
        foreign = client.post("/orders/45/shipped", json={"phone": "+447912345678"})  # Squad: +234 only
        hook = client.post("/smsgate/webhooks/shop/nope", content=b"{}")  # mounted: an unknown instance

    async def campaign() -> str:
        async with AsyncGateway("smsgate.toml") as gw:
            camp = await gw.tenant("shop").campaigns.create(
                "Spring sale", text="Hi {name}, 20% off", start_at=datetime.now(timezone.utc),
                audience=[{"phone": f"0805123456{i}", "name": f"C{i}"} for i in range(5)])
            await worker.tick(gw)
            return (await camp.row()).status.value

    class Stop(Exception):
        pass

    def stop(progress: object) -> None:  # the runner stops after its first chunk, as after Ctrl-C
        raise Stop

    async def interrupted() -> list[str]:
        async with AsyncGateway("smsgate.toml") as gw:
            camp = await gw.tenant("shop").campaigns.create(
                "Flash sale", text="Flash sale today", start_at=datetime.now(timezone.utc), batch_size=1,
                concurrency=1, audience=[f"0805123457{i}" for i in range(3)])
            try:
                await camp.run(progress=stop)
            except Stop:
                pass
            before = (await camp.row()).status.value
            await worker.tick(gw)  # a worker started again resumes it
            return [before, (await camp.row()).status.value]

    print(json.dumps({"first": [first.status_code, first.json()], "again": [again.status_code, again.json()],
                      "bad": [bad.status_code, bad.json()],
                      "opted_out": [opted_out.status_code, opted_out.json()], "hook": hook.status_code,
                      "foreign": [foreign.status_code, foreign.json()],
                      "campaign": asyncio.run(campaign()), "interrupted": asyncio.run(interrupted())}))
""")


@pytest.fixture
def squad() -> Iterator[LiveServer]:
    with LiveServer(create_app(delivery_delay=0.05)) as server:
        yield server


def test_the_fastapi_recipe_sends_from_a_route_and_its_worker_finishes_a_campaign(
        tmp_path: Path, squad: LiveServer) -> None:
    files = page_files(PAGE)
    assert set(files) == {"main.py", "worker.py", "conftest.py", "test_main.py", "main_preload.py"}  # tests; main.py for --preload
    for name in ("main.py", "worker.py"):
        (tmp_path / name).write_text(files[name])
    (tmp_path / "smsgate.toml").write_text(textwrap.dedent(f"""
        store = "sqlite:///sms.db"
        [tenants.shop]
        default_region = "NG"
        [tenants.shop.providers.squad]
        plugin = "squad"
        base_url = "{squad.url}"
        sender = "SHOP"
        credentials = {{ secret_key = "{SANDBOX_SECRET_KEY}" }}
    """))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    out = subprocess.run([sys.executable, "-c", RUNNER], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    status, body = result["first"]
    assert status == 200 and body["status"] in ("submitted", "sent"), body
    assert result["again"] == result["first"]
    # the client gets a typed, client-safe error: the class, the field, the reason; never str(exc),
    # which names the tenant (an internal name) and where the error was found
    status, body = result["bad"]
    assert status == 400 and body["detail"]["error"] == "InvalidPhoneNumber", body
    # named as the client sent it: its JSON body's "phone", not the library's argument "to"
    assert body["detail"]["field"] == "phone" and "12345" in body["detail"]["message"], body
    status, body = result["opted_out"]
    assert status == 409 and body["detail"] == {
        "error": "OptedOut", "field": None, "message": "the recipient has opted out of these messages"}, body
    # a number no provider of the route carries is the client's input too (it was a 500)
    status, body = result["foreign"]
    assert status == 400 and body["detail"] == {
        "error": "NoCapableProvider", "field": "phone", "message": "we cannot send messages to this number"}, body
    assert "shop" not in json.dumps(result["bad"]) + json.dumps(result["opted_out"]) + json.dumps(result["foreign"])
    assert result["hook"] in (401, 404)  # the webhook app answered (not FastAPI's own 404 page)
    assert result["campaign"] == "completed"
    assert result["interrupted"] == ["interrupted", "completed"]  # a stopped worker's campaign is resumed
    sent = Counter(m["phone_number"] for r in EmulatorControl(squad.url).requests(method="POST")
                   if r.path.endswith("/sms/send/instant") for m in r.json()["messages"])
    assert sent == Counter(["08031234567", *(f"0805123456{i}" for i in range(5)),
                            *(f"0805123457{i}" for i in range(3))])  # each once


MAKE_CAMPAIGN = textwrap.dedent("""
    import asyncio
    from datetime import datetime, timezone

    from smsgate import AsyncGateway

    async def main() -> None:
        async with AsyncGateway("smsgate.toml") as gw:
            camp = await gw.tenant("shop").campaigns.create(
                "Deploy day", text="Deploy day sale", start_at=datetime.now(timezone.utc), batch_size=1,
                concurrency=1, audience=[f"08051235{i:03d}" for i in range(40)])
            print(camp.campaign_id)

    asyncio.run(main())
""")

STATUS = textwrap.dedent("""
    import asyncio
    import json
    import sys

    import worker
    from smsgate import AsyncGateway

    async def main() -> None:
        async with AsyncGateway("smsgate.toml") as gw:
            camp = await gw.tenant("shop").campaigns.get(sys.argv[1])
            before = await camp.progress()
            if sys.argv[2:] == ["tick"]:
                await worker.tick(gw)
            after = await camp.progress()
            print(json.dumps({"before": [before.status.value, before.sending],
                              "after": [after.status.value, after.pending, after.sending, after.sent]}))

    asyncio.run(main())
""")


def test_the_recipe_worker_stopped_by_sigterm_releases_its_claims_and_the_next_one_finishes(
        tmp_path: Path, squad: LiveServer) -> None:
    """A deploy stops the worker with SIGTERM: its run ends as after Ctrl-C (claims released, the
    campaign ``interrupted``, exit code 0), and a worker started again sends the rest, each once."""
    for name, source in page_files(PAGE).items():
        (tmp_path / name).write_text(source)
    (tmp_path / "smsgate.toml").write_text(textwrap.dedent(f"""
        store = "sqlite:///sms.db"
        [tenants.shop]
        default_region = "NG"
        [tenants.shop.providers.squad]
        plugin = "squad"
        base_url = "{squad.url}"
        sender = "SHOP"
        credentials = {{ secret_key = "{SANDBOX_SECRET_KEY}" }}
    """))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}

    def run(source: str, *args: str) -> str:
        out = subprocess.run([sys.executable, "-c", source, *args], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    control = EmulatorControl(squad.url)
    control.add(FaultRule.latency(0.3, path="/sms/send/instant"))  # one recipient per request
    cid = run(MAKE_CAMPAIGN)

    def sends() -> Counter[str]:
        return Counter(m["phone_number"] for r in control.requests(method="POST")
                       if r.path.endswith("/sms/send/instant") for m in r.json()["messages"])

    worker = subprocess.Popen([sys.executable, "worker.py"], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                              text=True)
    try:
        for _ in range(600):  # until the worker's run is under way at the vendor
            if sum(sends().values()) >= 2 or worker.poll() is not None:
                break
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    stopped = json.loads(run(STATUS, cid))
    assert stopped["after"][0] == "interrupted" and stopped["after"][2] == 0, stopped  # no claim left held
    assert 0 < stopped["after"][3] < 40, stopped

    control.clear_faults()
    finished = json.loads(run(STATUS, cid, "tick"))
    assert finished["after"] == ["completed", 0, 0, 40], finished
    assert sends() == Counter(f"08051235{i:03d}" for i in range(40))  # each exactly once


QUIET_TICK = textwrap.dedent("""
    import asyncio
    import json
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    import worker
    from smsgate import AsyncGateway

    async def main() -> None:
        async with AsyncGateway("smsgate.toml") as gw:
            shop = gw.tenant("shop")
            now = datetime.now(ZoneInfo("Africa/Lagos"))  # the tenant's zone (its region's)
            window = [(now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=2)).strftime("%H:%M")]
            start = datetime.now(timezone.utc)  # scheduled, due now: what the tick picks up
            night = await shop.campaigns.create("Nightly digest", text="Your digest", quiet_hours=window,
                                                start_at=start, audience=["08051236001"])
            notice = await shop.campaigns.create("Outage", text="Service is back", quiet_hours=False,
                                                 start_at=start, audience=["08051236002"])
            # a tick must not wait out one campaign's quiet hours: hours without the other
            # campaigns and the status look-ups (the guard below only stops a hung tick)
            await asyncio.wait_for(worker.tick(gw), 60)
            print(json.dumps({"night": (await night.row()).status.value,
                              "notice": (await notice.row()).status.value}))

    asyncio.run(main())
""")


def test_the_recipe_worker_tick_does_not_wait_out_a_campaign_s_quiet_hours(
        tmp_path: Path, squad: LiveServer) -> None:
    """A campaign inside its quiet hours (a nightly job created in the evening) is left scheduled by
    the tick, which goes on to the other campaigns and the status look-ups; the recipe's
    ``camp.run()`` waited out the quiet hours inside the tick, stalling the worker for hours."""
    for name, source in page_files(PAGE).items():
        (tmp_path / name).write_text(source)
    (tmp_path / "smsgate.toml").write_text(textwrap.dedent(f"""
        store = "sqlite:///sms.db"
        [tenants.shop]
        default_region = "NG"
        [tenants.shop.providers.squad]
        plugin = "squad"
        base_url = "{squad.url}"
        sender = "SHOP"
        credentials = {{ secret_key = "{SANDBOX_SECRET_KEY}" }}
    """))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    out = subprocess.run([sys.executable, "-c", QUIET_TICK], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"night": "scheduled", "notice": "completed"}, result
    sent = Counter(m["phone_number"] for r in EmulatorControl(squad.url).requests(method="POST")
                   if r.path.endswith("/sms/send/instant") for m in r.json()["messages"])
    assert sent == Counter(["08051236002"]), sent  # the quiet one waits for its hours to end
