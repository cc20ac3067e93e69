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
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from smsgate.testing import EmulatorControl, LiveServer
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

    with TestClient(main.app) as client:  # runs the lifespan: the gateway is closed at the end
        first = client.post("/orders/42/shipped", json={"phone": "08031234567"})
        again = client.post("/orders/42/shipped", json={"phone": "08031234567"})  # a retried request
        bad = client.post("/orders/43/shipped", json={"phone": "12345"})
        hook = client.post("/smsgate/webhooks/shop/nope", content=b"{}")  # mounted: an unknown instance

    async def campaign() -> str:
        async with AsyncGateway("smsgate.toml") as gw:
            camp = await gw.tenant("shop").campaigns.create(
                "Spring sale", text="Hi {name}, 20% off", start_at=datetime.now(timezone.utc),
                audience=[{"phone": f"0805123456{i}", "name": f"C{i}"} for i in range(5)])
            await worker.tick(gw)
            return (await camp.row()).status.value

    print(json.dumps({"first": [first.status_code, first.json()], "again": [again.status_code, again.json()],
                      "bad": [bad.status_code, bad.json()], "hook": hook.status_code,
                      "campaign": asyncio.run(campaign())}))
""")


@pytest.fixture
def squad() -> Iterator[LiveServer]:
    with LiveServer(create_app(delivery_delay=0.05)) as server:
        yield server


def test_the_fastapi_recipe_sends_from_a_route_and_its_worker_finishes_a_campaign(
        tmp_path: Path, squad: LiveServer) -> None:
    files = page_files(PAGE)
    assert set(files) == {"main.py", "worker.py"}
    for name, source in files.items():
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
    out = subprocess.run([sys.executable, "-c", RUNNER], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    status, body = result["first"]
    assert status == 200 and body["status"] in ("submitted", "sent"), body
    assert result["again"] == result["first"]
    assert result["bad"][0] == 400 and "12345" in result["bad"][1]["detail"]
    assert result["hook"] in (401, 404)  # the webhook app answered (not FastAPI's own 404 page)
    assert result["campaign"] == "completed"
    sent = Counter(m["phone_number"] for r in EmulatorControl(squad.url).requests(method="POST")
                   if r.path.endswith("/sms/send/instant") for m in r.json()["messages"])
    assert sent == Counter(["08031234567", *(f"0805123456{i}" for i in range(5))])  # each once
