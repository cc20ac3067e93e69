"""atk22: opt-outs and audiences attacked while campaigns run, checked from the vendor's side.

Written from docs/campaigns.md ("Opt-outs are checked again at send time, so a STOP received after
preparation still wins") and docs/inbound.md. Verdicts come from the emulators' own request records
(what the vendor received, and when, on its clock), never from smsgate's log. The runners are
``tests/verify7_worker.py`` processes (sync ``run`` and async ``arun``); the opt-outs come from this
process through its own ``Gateway``, while the runners send.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import test_verify6 as v6
from smsgate import Gateway
from smsgate.testing import FaultRule
from smsgate.testing.sandbox import RunningEmulator
from test_verify6 import SEND_PATHS, numbers, numbers_in, provider_block, write_config

WORKER = Path(__file__).with_name("verify7_worker.py")
emulators = v6.emulators
store_url = v6.store_url


def _runner(mode: str, config: Path, cid: str) -> v6.Proc:
    proc = v6.Proc(mode, str(config), cid, worker=WORKER)
    assert proc.wait_ready()
    return proc


@pytest.mark.parametrize(("store_url", "mode", "paced", "scope"), [
    pytest.param("sqlite", "run", "rate_limit", None, id="sqlite-run-rate_limit"),
    pytest.param("postgres", "arun", "rate_limit", None, id="postgres-arun-rate_limit"),
    pytest.param("sqlite", "arun", "slow_vendor", None, id="sqlite-arun-slow_vendor"),
    pytest.param("postgres", "run", "rate_limit", "Smsgate", id="postgres-run-sender_scope"),
], indirect=["store_url"])
def test_an_optout_committed_while_a_claimed_chunk_waits_holds(store_url: str, mode: str, paced: str,
                                                                scope: str | None,
                                                                emulators: dict[str, RunningEmulator],
                                                                tmp_path: Path) -> None:
    """A runner claims and prepares a chunk of recipients (their opt-outs checked then), and its
    requests wait for the campaign's rate limit (or for a slow vendor) one after the other. Numbers
    of that chunk opted out meanwhile (``optouts.add`` committed) must get nothing after the
    commit: the docs promise the opt-outs are checked again at send time; with ``scope``, an
    opt-out of the sender the campaign goes out with holds, and one of another sender, made at
    the same moment for other numbers, stops nothing. (The check was the
    claim's only: under ``rate_limit = 4`` numbers opted out got their message up to 9 s after
    the opt-out was committed.)"""
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    over: dict[str, object] = {"timeout": 3.0}
    if paced == "rate_limit":
        over["rate_limit"] = 4
    else:
        em.add(FaultRule.latency(0.25, path=path, method="POST", count=None))
    config = write_config(tmp_path, store_url, {"main": provider_block(em, **over)})
    audience = numbers(24, offset=2200)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("atk22-optout", text="atk22 optout", audience=audience,
                                                 mode="fanout", concurrency=2, batch_size=24).campaign_id
    runners = [_runner(mode, config, cid), _runner(mode, config, cid)]
    deadline = time.monotonic() + 30
    while len(em.requests(path)) < 2:  # the chunk is claimed: its first requests are at the vendor
        assert time.monotonic() < deadline, "the runners never sent"
        time.sleep(0.02)
    victims = audience[12::2]  # later in the chunk: still waiting for their turn
    with Gateway(json.loads(config.read_text())) as gw:
        optouts = gw.tenant("acme").optouts
        for number in victims:
            optouts.add(number, reason="atk22: asked to stop mid-campaign", **({"scope": scope} if scope else {}))
        if scope:  # other numbers of the chunk opt out of another brand only: they still get theirs
            for number in audience[13::2]:
                optouts.add(number, scope="OtherBrand")
        committed = time.time()  # every opt-out is committed by now
    for r in runners:
        code, _, err = r.finish()
        assert code == 0, err[-3000:]
    victim_digits = {v[4:] for v in victims}
    late = [(n, round(req.at - committed, 3)) for req in em.requests(path) if req.at >= committed
            for n in numbers_in(req) if n in victim_digits]
    assert not late, f"texted after their opt-out was committed (number, seconds after): {late}"
    acted, _, _ = v6.vendor_counts(em)
    assert all(acted[n[4:]] == 1 for n in audience if n not in victims), acted  # the others: once each
    with Gateway(json.loads(config.read_text())) as gw:
        progress = gw.tenant("acme").campaigns.get(cid).progress()
    assert progress.pending == progress.sending == progress.unknown == 0, progress
    assert progress.skipped_by_reason.get("opted_out", 0) + sum(acted[v[4:]] for v in victims) == len(victims), \
        progress


def test_a_stop_through_the_webhook_while_the_campaign_runs_holds(emulators: dict[str, RunningEmulator],
                                                                   tmp_path: Path) -> None:
    """The same through the compliance path: replies ``STOP`` relayed to the webhook app (Colony's
    collate model) while two runner processes send a campaign through the Campaigns REST vendor
    under a rate limit. Once the webhook answered 200 (the opt-out committed), the vendor receives
    nothing more for those numbers."""
    import httpx

    from smsgate.testing import LiveServer
    from smsgate.webhooks import webhook_app

    em = emulators["campaigns_api"]
    colony = emulators["colony"]
    path = SEND_PATHS["campaigns_api"]
    inbox = provider_block(colony)
    inbox["credentials"] = {**inbox["credentials"], "webhook_token": "atk22-token"}
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'hook.db'}",
                          {"main": provider_block(em, timeout=3.0, rate_limit=4), "inbox": inbox})
    audience = numbers(24, offset=2400)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("atk22-stop", text="atk22 stop", audience=audience, mode="fanout",
                                                 provider="main", concurrency=2, batch_size=24).campaign_id
    runners = [_runner("run", config, cid), _runner("arun", config, cid)]
    victims = audience[12::2]
    with Gateway(json.loads(config.read_text())) as gw, LiveServer(webhook_app(gw), port=47611) as hooks:
        deadline = time.monotonic() + 30
        while len(em.requests(path)) < 2:
            assert time.monotonic() < deadline, "the runners never sent"
            time.sleep(0.02)
        for i, number in enumerate(victims):
            r = httpx.post(f"{hooks.url}/acme/inbox?token=atk22-token", timeout=10,
                           json={"id": 9100 + i, "originator": number.lstrip("+"), "text": "STOP"})
            assert r.status_code == 200, r.text
        committed = time.time()
        assert all(gw.tenant("acme").optouts.check(n) for n in victims)
    for r in runners:
        code, _, err = r.finish()
        assert code == 0, err[-3000:]
    victim_digits = {v[4:] for v in victims}
    late = [(n, round(req.at - committed, 3)) for req in em.requests(path) if req.at >= committed
            for n in numbers_in(req) if n in victim_digits]
    assert not late, f"texted after their STOP was applied (number, seconds after): {late}"


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
def test_a_runner_killed_right_after_an_optout_then_resumed_never_texts_the_number(
        store_url: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """Numbers opted out while a runner sends, the runner SIGKILLed right after, then a resume
    (once its 1 s lease lapsed): nothing reaches the vendor for them after the commit, and
    every other recipient gets one message."""
    import signal

    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    config = write_config(tmp_path, store_url, {"main": provider_block(em, timeout=3.0, rate_limit=4)})
    audience = numbers(24, offset=2600)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("atk22-kill", text="atk22 kill", audience=audience, mode="fanout",
                                                 concurrency=2, batch_size=24, lease_seconds=1).campaign_id
    runner = _runner("run", config, cid)
    deadline = time.monotonic() + 30
    while len(em.requests(path)) < 3:
        assert time.monotonic() < deadline, "the runner never sent"
        time.sleep(0.02)
    victims = audience[8::2]
    with Gateway(json.loads(config.read_text())) as gw:
        for number in victims:
            gw.tenant("acme").optouts.add(number)
        committed = time.time()
    runner.p.send_signal(signal.SIGKILL)
    runner.finish()
    time.sleep(1.5)  # its lease lapses: the resume takes its claims over
    code, _, err = _runner("run", config, cid).finish()
    assert code == 0, err[-3000:]
    victim_digits = {v[4:] for v in victims}
    late = [(n, round(req.at - committed, 3)) for req in em.requests(path) if req.at >= committed
            for n in numbers_in(req) if n in victim_digits]
    assert not late, f"texted after their opt-out was committed (number, seconds after): {late}"
    acted, _, _ = v6.vendor_counts(em)
    assert all(acted[n[4:]] == 1 for n in audience if n not in victims), acted
