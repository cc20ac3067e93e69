"""Leftovers of a new user's trial (dx6): what the command line and the API said that was not so.

Each test reproduces what the user did, through the CLI or the Python API, with the README's
kind of configuration against the provider emulators over loopback HTTP, and a real store.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from test_cli_interrupt import interrupt, last_line, squad, start, wait_for, write_config  # noqa: F401  (a fixture)

from smsgate import Gateway
from smsgate.ids import new_id
from smsgate.models import utcnow
from smsgate.testing import EmulatorControl, LiveServer


# ------------------------------------------------- 1. Ctrl-C in a second 'campaign run' of one campaign
def test_ctrl_c_in_a_second_campaign_run_says_another_runner_goes_on(tmp_path: Path, squad: LiveServer) -> None:
    """Two ``smsgate campaign run`` on one campaign (allowed: claims with owners and leases).
    Ctrl-C in the second said ``N sent so far; run 'smsgate campaign run cmp_...' again to
    resume`` while the first runner still held (and sent) its claims: as if the campaign had
    stopped and something were waiting for a re-run. It says now that another runner works on
    the campaign, how many recipients it holds, and that nothing is lost.

    The first runner is a live lease and its claims, made through the store as a runner makes
    them (its owner renews nothing here: the lease lasts the test)."""
    cfg = write_config(tmp_path, sq=("squad", squad))
    numbers = [f"0803{i:07d}" for i in range(1_000)]
    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("two runners", text="x", audience=numbers, batch_size=10,
                                                 concurrency=2).campaign_id
        gw.store.start_runner("acme", cid, "first-runner", utcnow() + timedelta(hours=1))
        held = gw.store.claim_recipients("acme", cid, 40, lambda: new_id("msg"), owner="first-runner")
    assert len(held) == 40
    vendor = squad.app.vendor  # type: ignore[attr-defined]
    EmulatorControl(squad.url).fault(kind="latency", delay=0.05, count=None)  # a run that lasts
    proc = start("campaign", "run", cid, cwd=tmp_path)
    wait_for(lambda: len(vendor.messages) >= 20, proc, "some messages sent")
    _, err = interrupt(proc)
    line = last_line(err)
    assert "again to resume" not in line.split("if they stop")[0], line
    assert f"1 other runner(s) still work on campaign {cid} (40 recipient(s) claimed by a live runner now)" \
        in line and "nothing is lost" in line, line
    EmulatorControl(squad.url).clear_faults()
