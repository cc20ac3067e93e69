"""Traffic control, fourth pass: the rest of a bulk request the vendor refused as a whole (Colony's
400 with an error for one item: the others ``resend``), sent again through a provider whose limit
makes it wait, when the run is stopped or its runner killed during that wait.

Delivery claims are proven from the vendor's side: the Colony emulator's own record of the
messages it handed to the network (``ColonyEmulator.sends``) and of the requests it received.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.testing import LiveServer
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, ColonyEmulator, create_app
from test_traffic_2 import counted, interrupt_when  # noqa: F401  (interrupt_when: a fixture)

HERE = Path(__file__).parent
BAD = "27815854562"  # well formed; Colony refuses it as "not a valid mobile number"
NUMBERS = ["+27815854561", f"+{BAD}", "+27815854563", "+27815854564", "+27815854565", "+27815854566"]
GOOD = sorted(n[1:] for n in NUMBERS if n[1:] != BAD)


@pytest.fixture
def colony() -> Iterator[tuple[str, ColonyEmulator]]:
    app = create_app(delivery_delay=0.0, invalid_numbers=[BAD])
    with LiveServer(app) as server:
        yield server.url, app.vendor


def config(store: str, url: str) -> dict[str, Any]:
    """Colony taking 3 messages every 4 s: the first bulk request (3 messages, one of them
    ``BAD``) takes the period's places, so its other two, sent again, wait ~4 s for theirs."""
    colony = {"plugin": "colony", "base_url": url, "credentials": dict(SANDBOX_CREDENTIALS), "sender": "ACME",
              "max_retries": 0, "limits": [{"rate": 3, "per": 4}]}
    return {"store": store, "tenants": {"acme": {"default_region": "ZA", "providers": {"colony": colony}}}}


def taken(vendor: ColonyEmulator) -> list[str]:
    """Every number the vendor handed a message to (its own record)."""
    return [s.destination for s in vendor.sends]


def bulk_requests(url: str) -> int:
    from smsgate.testing import EmulatorControl

    return len(EmulatorControl(url).requests("/contact/message/bulk/", "POST"))


def status_of(db: Path, to: str) -> str | None:
    """The status the store holds of the message to ``to`` (read as another process would)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT status FROM messages WHERE to_phone = ?", (to,)).fetchone()
    return None if row is None else str(row[0])


def create(gw: Gateway) -> Any:
    return gw.tenant("acme").campaigns.create("resend", text="x", audience=NUMBERS, mode="fanout", batch_size=3,
                                              concurrency=1, lease_seconds=1.0)


def finish_and_check(gw: Gateway, camp: Any, vendor: ColonyEmulator) -> None:
    """Resume ``camp`` to its end: each good number sent exactly once, ``BAD`` rejected, and one
    message a recipient in the log and the statistics."""
    final = camp.run()
    assert (final.sent, final.failed, final.pending, final.unknown) == (5, 1, 0, 0), final
    stats = counted(camp.stats())
    assert stats["total"] == 6 and stats.get("unknown", 0) == 0, stats
    assert len({m.message_id for m in gw.tenant("acme").messages()}) == 6
    assert collections.Counter(taken(vendor)) == collections.Counter(GOOD)  # each once, BAD never


@pytest.mark.timeout(120)
def test_ctrl_c_while_the_rest_of_a_refused_bulk_request_waits_for_the_limit(
        colony: tuple[str, ColonyEmulator], tmp_path: Path,
        interrupt_when: Callable[[Callable[[], bool]], None]) -> None:  # noqa: F811  (the fixture)
    """Ctrl-C while the two numbers sent again wait for the limit: they never left, so they are
    ``pending`` (not ``failed`` / ``not_sent``, not ``unknown``), and the resume sends each once."""
    url, vendor = colony
    with Gateway(config(f"sqlite:///{tmp_path / 'c.db'}", url)) as gw:
        camp = create(gw)
        interrupt_when(lambda: bulk_requests(url) >= 1)
        with pytest.raises(KeyboardInterrupt):
            camp.run()
        assert taken(vendor) == []  # the first request was refused as a whole; the rest never left
        progress = camp.progress()
        assert (progress.unknown, progress.sending, progress.failed) == (0, 0, 1), progress
        assert progress.pending == 5, progress
        finish_and_check(gw, camp, vendor)


@pytest.mark.timeout(180)
def test_a_runner_killed_while_the_rest_of_a_refused_bulk_request_waits_for_the_limit(
        colony: tuple[str, ColonyEmulator], tmp_path: Path) -> None:
    """SIGKILL of the runner while the two numbers sent again wait for the limit. Before: their
    messages, logged before the refused request, stayed ``queued`` ("may have left"), so the next
    run made them ``unknown`` and never sent them. Now a message sent again through a provider
    with limits is logged again only once the limit admits it: the next run sends each once."""
    url, vendor = colony
    cfg = config(f"sqlite:///{tmp_path / 'k.db'}", url)
    path = tmp_path / "k.json"
    path.write_text(json.dumps(cfg))
    with Gateway(cfg) as gw:
        cid = create(gw).campaign_id
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    runner = subprocess.Popen([sys.executable, str(HERE / "campaign_worker.py"), str(path), cid, "--installed"],
                              env=env)
    try:
        deadline = time.monotonic() + 60
        while bulk_requests(url) < 1:
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        # the answer logged (BAD rejected), the two sent again waiting at the limit (~4 s); the
        # code before this change never logged it before that wait: killed after 3 s then
        deadline = time.monotonic() + 3
        while status_of(tmp_path / "k.db", f"+{BAD}") == "queued" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runner.kill()
        runner.wait(timeout=30)
    assert taken(vendor) == [] and bulk_requests(url) == 1
    time.sleep(1.2)  # the dead runner's lease ends
    with Gateway(cfg) as gw:
        finish_and_check(gw, gw.tenant("acme").campaigns.get(cid), vendor)
