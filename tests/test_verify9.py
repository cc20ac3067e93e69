"""verify9: stale runners. A runner stopped (SIGSTOP: a paused VM, a laptop asleep) while it
had a request or a look-up at the vendor loses its claims to another runner; when it continues,
nothing it writes may undo what the other runner did since.

Written from docs/campaigns.md ("Exactly once, and crash safety") and the public API. Verdicts
come from the emulators' own request records (``RecordedRequest``), never from smsgate's log:

1. no recipient reaches the vendor twice;
2. every recipient the vendor acted on ends ``sent`` or ``unknown``;
3. every recipient ends ``sent`` / ``unknown`` / ``failed`` for a certain refusal, and the
   message log agrees (``check_campaign`` of tests/test_verify6.py, plus: a ``sent`` recipient's
   message is one the vendor took);
4. ``retry_failed()`` then a run, and ``retry_unknown()`` where the vendor can be asked, never
   send a recipient the vendor already acted on.

The runner processes are tests/verify6_worker.py's (``run``: a sync ``Gateway``; ``arun``: an
``AsyncGateway``) and tests/verify9_worker.py (a runner stopped inside a PostgreSQL transaction).
Every case prints its seed (``V9_SEED=<seed>`` replays it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import test_verify6 as v6
from smsgate import Gateway
from smsgate.store.base import RecipientState
from smsgate.testing import FaultRule
from smsgate.testing.sandbox import RunningEmulator
from test_verify6 import SEND_PATHS, Proc, national, numbers, provider_block, write_config

emulators = v6.emulators
store_url = v6.store_url

WORKER9 = Path(__file__).with_name("verify9_worker.py")


def wait_for(predicate: Any, timeout: float = 30.0, every: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


# ---------------------------------------------------------------- deterministic: a stale look-up
@pytest.mark.parametrize("mode", ["run", pytest.param("arun", marks=(pytest.mark.slow, pytest.mark.heavy))])
def test_a_look_up_answered_after_a_stop_does_not_undo_another_runners_found(
        mode: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """A runner starting asks the vendor about its ``unknown`` recipients (campaigns.md). One
    stopped while that look-up was at the vendor, continued after another runner found the
    message there (``sent``), wrote its own verdict ("cannot tell": its read timed out),
    ``unknown``, over that ``sent``; its end-of-run look-up then read the message's vendor
    status (``undelivered``) as the send's answer: ``failed``, though the vendor had it (found
    by this harness' first version; fails before the fix). (The resolution's twin of the fix of a send's
    ``unknown`` answer, ``RecipientUpdate.if_sending``.)"""
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    em.add(FaultRule.reset(process=True, path=path, method="POST", count=1),  # taken, the answer lost
           FaultRule.error(500, path=path, method="GET", count=None))  # and nobody can tell yet
    db = f"sqlite:///{tmp_path / 'v9.db'}"
    config = write_config(tmp_path, db, {"main": provider_block(em, timeout=0.2)})
    slow = write_config(tmp_path, db, {"main": provider_block(em, timeout=1.0)})
    undeliverable = "+2348000000009"  # the emulated vendor fails to deliver numbers ending in 9
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("stale", text="verify9", audience=[undeliverable],
                                                 mode="fanout", lease_seconds=1).campaign_id
    code, _, err = Proc("run", str(config), cid).finish()
    assert code == 0, err[-3000:]
    em.clear_faults()
    time.sleep(1.2)  # the vendor's delivery attempt is over (its delivery_delay is 1 s)
    # the stale runner's look-up: answered a byte at a time, its read times out after 1 s
    em.add(FaultRule.drip(5.0, chunk=4, path=path, method="GET", count=1))
    looked = len(em.requests(path, "GET"))
    stale = Proc(mode, str(slow), cid)
    assert wait_for(lambda: len(em.requests(path, "GET")) > looked), "the stale runner never looked up"
    stale.p.send_signal(signal.SIGSTOP)
    try:
        em.clear_faults()
        code, _, err = Proc("run", str(config), cid).finish()  # finds it at the vendor: sent
        assert code == 0, err[-3000:]
        with Gateway(json.loads(config.read_text())) as gw:
            [row] = gw.store.recipients("acme", cid)
        assert row.state == RecipientState.SENT, (row.state, row.reason)
        # the stale runner's retries of its look-up fail too: it cannot tell
        em.add(FaultRule.error(500, path=path, method="GET", count=None))
    finally:
        stale.p.send_signal(signal.SIGCONT)
    code, _, err = stale.finish()
    assert code == 0, err[-3000:]
    em.clear_faults()
    with Gateway(json.loads(config.read_text())) as gw:
        [row] = gw.store.recipients("acme", cid)
        [msg] = gw.tenant("acme").messages(campaign_id=cid)
        assert gw.tenant("acme").campaigns.get(cid).retry_failed() == 0
    assert len(em.processed(path, "POST")) == 1
    assert msg.status == "undelivered"
    assert row.state == RecipientState.SENT, (row.state, row.reason, row.detail)


@pytest.mark.parametrize("mode", ["arun", pytest.param("run", marks=(pytest.mark.slow, pytest.mark.heavy))])
def test_a_send_answered_after_a_stop_does_not_undo_another_runners_found(
        mode: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """The fix of a5b10a3 (``RecipientUpdate.if_sending``), end to end: a runner stopped while
    its request was out (the vendor took it; its answer drips, the read times out) loses its
    claim to another runner, which finds the message at the vendor (``sent``); continued, its
    ``unknown`` answer leaves that ``sent`` alone, and no run makes it ``failed``."""
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    em.add(FaultRule.drip(5.0, chunk=4, path=path, method="POST", count=1))
    db = f"sqlite:///{tmp_path / 'v9.db'}"
    config = write_config(tmp_path, db, {"main": provider_block(em, timeout=0.3)})
    slow = write_config(tmp_path, db, {"main": provider_block(em, timeout=1.0)})
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("stale-send", text="verify9", audience=["+2348000000019"],
                                                 mode="fanout", lease_seconds=1).campaign_id
    stale = Proc(mode, str(slow), cid)
    assert wait_for(lambda: len(em.requests(path, "POST")) > 0), "the stale runner never sent"
    stale.p.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.2)  # the vendor's delivery attempt is over (its delivery_delay is 1 s)
        code, _, err = Proc("run", str(config), cid).finish()  # takes the claim over, finds it: sent
        assert code == 0, err[-3000:]
        with Gateway(json.loads(config.read_text())) as gw:
            [row] = gw.store.recipients("acme", cid)
        assert row.state == RecipientState.SENT, (row.state, row.reason)
    finally:
        stale.p.send_signal(signal.SIGCONT)
    code, _, err = stale.finish()
    assert code == 0, err[-3000:]
    code, _, err = Proc("run", str(config), cid).finish()
    assert code == 0, err[-3000:]
    with Gateway(json.loads(config.read_text())) as gw:
        [row] = gw.store.recipients("acme", cid)
        [msg] = gw.tenant("acme").messages(campaign_id=cid)
    assert len(em.processed(path, "POST")) == 1
    assert msg.status == "undelivered"
    assert row.state == RecipientState.SENT, (row.state, row.reason, row.detail)


@pytest.mark.parametrize("mode", ["arun", "run"])
def test_a_request_paused_after_its_fence_until_another_runner_resent_it_never_leaves(
        mode: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """A runner whose whole process paused (SIGSTOP) after its request passed the
    transport's fence, before the HTTP client took a connection for it: another runner takes the claim
    over once the lease ended, finds nothing at the vendor past the settle time (the request
    never left), and sends the recipient itself. Continued, the first runner's request must not
    leave: it meets the fence again once it holds its connection (httpcore's trace event; on
    ``AiohttpClient`` it left, and the vendor had the recipient twice, before)."""
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    db = f"sqlite:///{tmp_path / 'v9.db'}"
    config = write_config(tmp_path, db, {"main": provider_block(em, timeout=0.2)})
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("paused-send", text="verify9", audience=["+2348000000023", "+2348000000024"],
                                                 mode="fanout", lease_seconds=1, concurrency=1,
                                                 batch_size=1).campaign_id
    # its second request: the first left on a connection, which the second finds kept alive
    stale = Proc(mode, str(config), cid, env={"V9_STOP_SEND": "2"}, worker=WORKER9)
    try:
        assert wait_for(lambda: stopped(stale.p.pid), timeout=60), "the stale runner never reached its request"
        time.sleep(1.5)  # its lease (1 s) ended, and the settle time (2 x 0.2 s) of its write-ahead
        code, _, err = Proc("run", str(config), cid).finish()  # takes the claim over: not found, sends it
        assert code == 0, err[-3000:]
        assert len(em.processed(path, "POST")) == 2
    finally:
        stale.p.send_signal(signal.SIGCONT)
    code, _, err = stale.finish()
    assert code == 0 and "lost its lease" in err, err[-3000:]
    assert len(em.processed(path, "POST")) == 2, ("the paused runner's request left after the takeover", err[-2000:],
                                                  [(r.at, r.body[-40:]) for r in em.processed(path, "POST")])
    with Gateway(json.loads(config.read_text())) as gw:
        rows = gw.store.recipients("acme", cid)
    assert [r.state for r in rows] == [RecipientState.SENT] * 2, [(r.state, r.reason, r.detail) for r in rows]


@pytest.mark.parametrize("mode", ["run", "arun"])
def test_a_run_asks_the_vendor_about_unknown_recipients_though_its_breaker_is_open(
        mode: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """Look-ups that failed (5xx) at the end of runs opened the provider's circuit breaker (5
    failures; it stays open 30 s). The vendor answers again, and a run starts: it asks the
    vendor about the ``unknown`` recipient (campaigns.md), which has it. Its look-ups were
    skipped while the breaker was open (``Call(fallback=True)``; the recipient has no other
    provider to ask), so the run ended with the recipient ``unknown`` though the vendor could
    tell, and ``retry_unknown()`` then sent it a second time (found by the random harness
    below: its retry rounds re-sent numbers the vendor had acted on, once in many runs, after
    the main run ended with the breaker open and ``retry_failed()`` had nothing to send; fails
    before the fix: the vendor had it twice). A look-up through an open breaker is now its
    probe, once per pass: answered, the breaker closes and the other look-ups go."""
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    em.add(FaultRule.reset(process=True, path=path, method="POST", count=1),  # taken, the answer lost
           FaultRule.error(500, path=path, method="GET", count=None))  # and the look-ups fail
    db = f"sqlite:///{tmp_path / 'v9.db'}"
    config = write_config(tmp_path, db, {"main": provider_block(em, timeout=0.2)})
    with Gateway(json.loads(config.read_text())) as gw:
        camp = gw.tenant("acme").campaigns.create("breaker", text="verify9", audience=["+2348000000031"],
                                                  mode="fanout", lease_seconds=1)
        cid = camp.campaign_id
        for _ in range(5):  # each run looks it up at its start and its end: 5 failures open the breaker
            camp.run()
            if gw.tenant("acme").health()["main"].breaker.state == "open":
                break
        assert gw.tenant("acme").health()["main"].breaker.state == "open"
        [row] = gw.store.recipients("acme", cid)
        assert row.state == RecipientState.UNKNOWN, (row.state, row.reason)
    em.clear_faults()  # the vendor answers again, within the breaker's cooldown
    code, _, err = Proc(mode, str(config), cid).finish()
    assert code == 0, err[-3000:]
    with Gateway(json.loads(config.read_text())) as gw:
        [after_run] = gw.store.recipients("acme", cid)
        back = gw.tenant("acme").campaigns.get(cid).retry_unknown()
    code, _, err = Proc(mode, str(config), cid).finish()
    assert code == 0, err[-3000:]
    assert len(em.processed(path, "POST")) == 1, (after_run.state, back)
    assert after_run.state == RecipientState.SENT, (after_run.state, after_run.reason, after_run.detail)
    assert back == 0
    with Gateway(json.loads(config.read_text())) as gw:
        assert gw.tenant("acme").health()["main"].breaker.state == "closed"


# ---------------------------------------------------------------- the random harness
#: the vendors' look-ups (campaigns_api: its message listing; squad_v1: its legacy listing)
CAN_ASK = {"campaigns_api", "squad_v1"}


def stale_faults(em: RunningEmulator, seed: int, path: str, *, refuse: bool = True) -> None:
    """Every send slow (0.3-1.5 s: requests are out when a stop lands), some longer than the
    client's 1 s timeout (the vendor acts after it gave up), answers lost after the vendor
    acted, certain refusals (403); look-ups slow, dripping (their read times out) or 5xx."""
    rng = random.Random(seed)

    def s() -> int:
        return rng.randrange(2**31)

    rules = [FaultRule.error(403, path=path, method="POST", probability=0.03, seed=s(), count=None)] if refuse else []
    rules += [
        FaultRule.reset(process=True, path=path, method="POST", probability=0.03, seed=s(), count=None),
        FaultRule.hang(1.5, path=path, method="POST", probability=0.04, seed=s(), count=None),
        FaultRule.drip(1.2, chunk=8, path=path, method="POST", probability=0.04, seed=s(), count=None),
        FaultRule.latency(1.3, path=path, method="POST", probability=0.1, seed=s(), count=None),
        FaultRule.latency(0.8, path=path, method="POST", probability=0.3, seed=s(), count=None),
        FaultRule.latency(0.3, path=path, method="POST", count=None),
        FaultRule.drip(1.2, chunk=8, method="GET", probability=0.1, seed=s(), count=None),
        FaultRule.error(500, method="GET", probability=0.1, seed=s(), count=None),
        FaultRule.latency(0.6, method="GET", probability=0.4, seed=s(), count=None),
    ]
    em.add(*rules)


def settle(config: Path, cid: str, mode: str = "run") -> int:
    """Resume runs until nothing is ``pending`` or ``sending``; how many it took."""
    for n in range(5):
        with Gateway(json.loads(config.read_text())) as gw:
            progress = gw.tenant("acme").campaigns.get(cid).progress()
        if progress.pending == 0 and progress.sending == 0:
            return n
        code, _, err = Proc(mode, str(config), cid).finish()
        assert code == 0, err[-3000:]
    raise AssertionError(f"still {progress} after 5 resumes")


def run_stale(config: Path, cid: str, em: RunningEmulator, *, runners: int, stops: int,
              rng: random.Random) -> dict[str, Any]:
    """``runners`` processes (sync and async) run the campaign; ``stops`` times, right after a
    request reached the vendor (a send or a look-up: with every one slow, most runners have
    requests out), one or two of them are SIGSTOPped for 1.5-3.5 s (past their 1 s lease), then
    continued; during most stops a new runner starts, whose recovery takes the stopped one's
    claims over at once (the others take them over only once nothing is left to claim)."""
    procs = [Proc("run" if i % 2 == 0 else "arun", str(config), cid) for i in range(runners)]
    for proc in procs:
        proc.wait_ready()
    done = started = 0
    for _ in range(stops):
        alive = [p for p in procs if p.p.poll() is None]
        if not alive:
            break
        seen = len(em.requests())
        wait_for(lambda: len(em.requests()) > seen, timeout=3.0)
        time.sleep(rng.uniform(0.0, 0.25))
        victims = rng.sample(alive, min(len(alive), 2 if rng.random() < 0.25 else 1))
        for v in victims:
            v.p.send_signal(signal.SIGSTOP)
        if rng.random() < 0.6:  # a runner started meanwhile takes the stopped one's claims over at once
            time.sleep(1.2)
            procs.append(Proc(rng.choice(["run", "arun"]), str(config), cid))
            started += 1
            time.sleep(rng.uniform(0.8, 2.5))
        else:
            time.sleep(rng.uniform(1.5, 3.5))
        for v in victims:
            v.p.send_signal(signal.SIGCONT)
        done += len(victims)
        time.sleep(rng.uniform(0.0, 0.6))
    lost = 0
    for proc in procs:
        code, _, err = proc.finish()
        assert code == 0, err[-3000:]
        lost += "lost its lease" in err
    return {"stops": done, "started": started, "lost_lease": lost, "resumes": settle(config, cid)}


def refused_numbers(em: RunningEmulator) -> set[str]:
    """Numbers of requests the vendor certainly refused unprocessed (a 4xx answer other than 429)."""
    return {n for req in em.requests() if not req.processed and req.status is not None
            and 400 <= req.status < 500 and req.status != 429 for n in v6.numbers_in(req)}


def check_stale(config: Path, cid: str, em: RunningEmulator, audience: list[str]) -> dict[str, Any]:
    """Verdicts 1-3 (see the module docstring)."""
    verdict = v6.check_campaign(config, cid, em, audience=audience)
    with Gateway(json.loads(config.read_text())) as gw:
        rows = gw.store.recipients("acme", cid, limit=1_000_000)
        logged = {m.message_id: m for m in gw.tenant("acme").messages(campaign_id=cid, limit=1_000_000)}
    acted, _, _ = v6.vendor_counts(em)
    states = Counter(str(r.state) for r in rows)
    assert set(states) <= {"sent", "unknown", "failed"}, states
    refused = refused_numbers(em)
    failed = [r for r in rows if r.state == RecipientState.FAILED]
    uncertain = [(national(r.phone), r.reason) for r in failed if national(r.phone) not in refused]
    assert not uncertain, f"failed without a certain refusal at the vendor: {uncertain[:5]}"
    taken = ("submitted", "sent", "delivered", "undelivered", "expired")
    odd = [(national(r.phone), r.message_id, str(logged[r.message_id].status) if r.message_id in logged else None)
           for r in rows if r.state == RecipientState.SENT
           and (r.message_id not in logged or str(logged[r.message_id].status) not in taken)]
    assert not odd, f"'sent' recipients whose message is not logged as taken: {odd[:5]}"
    assert not [r for r in rows if r.state == RecipientState.UNKNOWN and acted[national(r.phone)] > 1]
    verdict["states"] = dict(states)
    # evidence that stops landed with requests out: messages resolved by a look-up after a takeover
    verdict["messages"] = len(logged)
    verdict["raw"] = dict(Counter(m.raw_status for m in logged.values() if m.raw_status in ("interrupted", "not_received")))
    return verdict


def retry_rounds(config: Path, cid: str, em: RunningEmulator, audience: list[str], *, can_ask: bool) -> dict[str, Any]:
    """Verdict 4: the cause fixed (faults cleared), ``retry_failed()`` and a run; where the vendor
    can be asked, a run (its look-ups settle every ``unknown``), ``retry_unknown()`` and a run.
    No recipient the vendor acted on reaches it again."""
    em.clear_faults()
    before, _, _ = v6.vendor_counts(em)
    with Gateway(json.loads(config.read_text())) as gw:
        camp = gw.tenant("acme").campaigns.get(cid)
        back = camp.retry_failed()
    code, _, err = Proc("arun", str(config), cid).finish()
    assert code == 0, err[-3000:]
    put_back = 0
    if can_ask:
        code, _, err = Proc("run", str(config), cid).finish()
        assert code == 0, err[-3000:]
        with Gateway(json.loads(config.read_text())) as gw:
            # the vendor answers (faults cleared): the runs' look-ups left nothing it can tell about,
            # even with the circuit breaker the main run's faults left open
            unsettled = [(national(r.phone), r.reason) for r in gw.store.recipients("acme", cid, limit=1_000_000)
                         if r.state == RecipientState.UNKNOWN]
            assert not unsettled, (f"unknown after two runs though the vendor answers: {unsettled[:5]}",
                                   gw.tenant("acme").health()["main"].breaker)
            put_back = gw.tenant("acme").campaigns.get(cid).retry_unknown()
        code, _, err = Proc("run", str(config), cid).finish()
        assert code == 0, err[-3000:]
    after, _, _ = v6.vendor_counts(em)
    again = [n for n in after if before[n] and after[n] > before[n]]
    if again:  # what the lead needs to replay it: the vendor's record and the store's rows of the first few
        with Gateway(json.loads(config.read_text())) as gw:
            rows = {national(r.phone): r for r in gw.store.recipients("acme", cid, limit=1_000_000)}
            logged = gw.tenant("acme").messages(campaign_id=cid, limit=1_000_000)
        for n in again[:3]:
            print(f"verify9 again {n}: row {rows.get(n)}")
            for m in logged:
                if national(m.to) == n:
                    print(f"  message {m.message_id} {m.status} {m.raw_status} {m.created_at} {m.updated_at} {m.error}")
            for req in em.requests():
                if n in v6.numbers_in(req):
                    print(f"  vendor {req.at:.3f} {req.method} {req.path} fault={req.fault} status={req.status} "
                          f"processed={req.processed}")
        print(f"verify9 retried_failed {back}, retried_unknown {put_back}")
    assert not again, f"sent again though the vendor had acted on them: {again[:5]}"
    verdict = check_stale(config, cid, em, audience)
    if can_ask:  # every recipient once, and sent
        assert verdict["states"] == {"sent": len(audience)}, verdict
        assert all(after[national(n)] == 1 for n in audience)
    return {"retried_failed": back, "retried_unknown": put_back, "states": verdict["states"]}


def stale_case(provider: str, store_url: str, runners: int, stops: int, size: int, max_batch: int,
               emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    seed = int(os.environ.get("V9_SEED") or random.randrange(2**31))
    print(f"verify9 stale {provider} {store_url.split(':')[0]} runners={runners} stops={stops} seed={seed}")
    rng = random.Random(seed)
    em = emulators[provider.split("_v1")[0]]
    path = SEND_PATHS[provider]
    stale_faults(em, rng.randrange(2**31), path)
    config = write_config(tmp_path, store_url, {"main": v6.instance_of(provider, em, max_batch=max_batch)})
    audience = numbers(size, offset=rng.randrange(0, 90_000_000))
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v9", text="verify9 campaign", audience=audience, mode="fanout",
                                                 lease_seconds=1, concurrency=4, batch_size=10).campaign_id
    ran = run_stale(config, cid, em, runners=runners, stops=stops, rng=rng)
    v6.dump_record(em)
    verdict = check_stale(config, cid, em, audience)
    retried = retry_rounds(config, cid, em, audience, can_ask=provider in CAN_ASK)
    print(f"verify9 stale {provider} seed={seed}: {ran} {verdict} {retried}")


# provider, store, runners, stops, recipients, max_batch
LIGHT = [("campaigns_api", "sqlite", 3, 3, 50, 1), ("broadcast", "postgres", 3, 3, 250, 5)]
HEAVY = [("squad", "postgres", 3, 6, 400, 5), ("squad_v1", "sqlite", 3, 6, 100, 1),
         ("colony", "sqlite", 4, 6, 400, 5), ("campaigns_api", "postgres", 4, 6, 120, 1),
         ("broadcast", "sqlite", 2, 5, 300, 3), ("colony", "postgres", 3, 6, 250, 2),
         ("squad_v1", "postgres", 2, 6, 80, 1), ("campaigns_api", "sqlite", 2, 6, 100, 1)]
STALE = [pytest.param(*v, id="-".join(map(str, v[:4]))) for v in LIGHT] + [
    pytest.param(*v, id="-".join(map(str, v[:4])), marks=(pytest.mark.slow, pytest.mark.heavy)) for v in HEAVY]


@pytest.mark.parametrize(("provider", "store_url", "runners", "stops", "size", "max_batch"), STALE,
                         indirect=["store_url"])
def test_stale_runners_never_undo_another_runners_work(
        provider: str, store_url: str, runners: int, stops: int, size: int, max_batch: int,
        emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """Runners stopped past their lease while their sends and look-ups were out, continued:
    verdicts 1-4 of the module docstring, from the vendor's record."""
    stale_case(provider, store_url, runners, stops, size, max_batch, emulators, tmp_path)


# ---------------------------------------------------------------- stopped inside a PostgreSQL transaction
def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


#: where the runner stops: inside a rate-limit transaction (the ``traffic_keys`` rows every
#: admission of every runner needs, locked), or inside a write-ahead (its claims share-locked)
STOP_SQL = {"limits": "ORDER BY key FOR UPDATE", "write-ahead": "OFFSET 0 FOR SHARE"}


@pytest.mark.parametrize("where", ["limits", pytest.param("write-ahead", marks=(pytest.mark.slow, pytest.mark.heavy))])
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_runner_stopped_inside_a_postgres_transaction_holds_nobody_up(
        where: str, store_url: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """A runner SIGSTOPs itself inside a transaction (``STOP_SQL``) with
    ``PostgresStore.idle_in_transaction_timeout = 2``; it stays stopped 10 s (past its 1 s lease
    too). The server ends its sessions and the two other runners go on sending; continued,
    it gets a StoreError. Every recipient reaches the vendor exactly once, and ends ``sent``."""
    seed = int(os.environ.get("V9_SEED") or random.randrange(2**31))
    rng = random.Random(seed)
    at = rng.randint(2, 10)
    mode = rng.choice(["run", "arun"])
    print(f"verify9 idle-in-transaction {mode} stop in {where} #{at} seed={seed}")
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    em.add(FaultRule.latency(0.2, path=path, method="POST", count=None))
    config = write_config(tmp_path, store_url, {"main": provider_block(em, limits=[{"rate": 40}])})
    audience = numbers(320, offset=rng.randrange(0, 90_000_000))
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v9-tx", text="verify9 tx", audience=audience, mode="fanout",
                                                 lease_seconds=1, concurrency=4, batch_size=10).campaign_id
    stopper = Proc(mode, str(config), cid, worker=WORKER9,
                   env={"V9_STOP_SQL": STOP_SQL[where], "V9_STOP_AT": str(at), "V9_IDLE_TX": "2"})
    others = [Proc("run", str(config), cid), Proc("arun", str(config), cid)]
    assert stopper.wait_ready()
    assert stopper.p.stdout is not None
    while (line := stopper.p.stdout.readline().decode()) and line.strip() != "stopping":
        pass
    assert wait_for(lambda: stopped(stopper.p.pid), timeout=5), "the runner did not stop"
    t0 = time.time()
    # each of the stopped process's pooled sessions (pool_size 4) queued for the lock its stopped
    # session held gets it in turn when the server ends the one before, and sits idle in its
    # transaction as long: the others may wait up to 4 x 2 s (seen: 4 s, and 6 s and more once in
    # about 20 runs), not 2 s
    time.sleep(10.0)
    while_stopped = [req for req in em.requests(path) if t0 + 2.5 <= req.at <= t0 + 10.0]
    with Gateway(json.loads(config.read_text())) as gw:
        progress = gw.tenant("acme").campaigns.get(cid).progress()
    stopper.p.send_signal(signal.SIGCONT)
    code, out, err = stopper.finish()
    print(f"verify9 the stopped runner exited {code}: {out.strip().splitlines()[-1:]}")
    assert code in (0, 3), err[-3000:]
    for proc in others:
        code, _, err = proc.finish()
        assert code == 0, err[-3000:]
    assert while_stopped or progress.pending == 0, f"nobody sent while a runner was stopped in a transaction: {progress}"
    settle(config, cid)
    verdict = check_stale(config, cid, em, audience)
    acted, _, _ = v6.vendor_counts(em)
    assert verdict["states"] == {"sent": len(audience)}, verdict
    assert all(acted[national(n)] == 1 for n in audience)
    print(f"verify9 idle-in-transaction seed={seed}: sent while stopped {len(while_stopped)}, {verdict}")


# ---------------------------------------------------------------- Celery
@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_celery_workers_stopped_past_their_lease_send_each_once(
        store_url: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """``dispatch_campaign`` on two real ``celery worker`` processes (RabbitMQ, PostgreSQL); 503s
    the vendor documents as not processed (the chunk task holds its recipients, reason
    ``retry``, and is retried), slow answers; a worker is SIGSTOPped past the campaign's 1 s
    lease while its requests are out, three times. Verdicts 1-3, and every recipient sent or
    ``unknown``."""
    import uuid

    from smsgate.testing.workers import CeleryWorkers, delete_queue

    seed = int(os.environ.get("V9_SEED") or random.randrange(2**31))
    print(f"verify9 celery seed={seed}")
    rng = random.Random(seed)
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    em.add(FaultRule.error(503, path=path, method="POST", probability=0.15, seed=rng.randrange(2**31), count=None),
           FaultRule.latency(1.3, path=path, method="POST", probability=0.1, seed=rng.randrange(2**31), count=None),
           FaultRule.latency(0.4, path=path, method="POST", count=None))
    config = write_config(tmp_path, store_url, {"main": provider_block(em, not_processed_statuses=[503])})
    broker = v6.BROKER
    queue = f"verify9-{uuid.uuid4().hex[:8]}"
    env = {"V6_BROKER": broker, "V6_QUEUE": queue, "V6_CONFIG": str(config), "V6_CHUNK": "10",
           "PYTHONPATH": os.pathsep.join([str(WORKER9.parent), os.environ.get("PYTHONPATH", "")])}
    audience = numbers(120, offset=rng.randrange(0, 90_000_000))
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v9-celery", text="verify9 celery", audience=audience,
                                                 mode="fanout", lease_seconds=1, concurrency=4,
                                                 batch_size=10).campaign_id
    workers = CeleryWorkers("verify6_celery_app", queue=queue, workdir=tmp_path, env=env, pool="threads")
    stops = 0
    try:
        workers.start(2)
        workers.wait_ready()
        os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
        from celery import Celery

        Celery("verify9-sender", broker=broker).send_task("smsgate.dispatch_campaign", args=["acme", cid], queue=queue)
        deadline = time.monotonic() + 150
        with Gateway(json.loads(config.read_text())) as gw:
            handle = gw.tenant("acme").campaigns.get(cid)
            for _ in range(3):
                seen = len(em.requests(path))
                if not wait_for(lambda: len(em.requests(path)) > seen, timeout=10):
                    break
                victim = workers.procs[rng.randrange(len(workers.procs))]
                victim.send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(1.5, 3.5))
                victim.send_signal(signal.SIGCONT)
                stops += 1
                time.sleep(rng.uniform(0.2, 1.5))
            while True:
                progress = handle.progress()
                if progress.status == "completed" and progress.pending == 0 and progress.sending == 0:
                    break
                assert time.monotonic() < deadline, f"not completed: {progress}\n{workers.tail()}"
                time.sleep(0.25)
    finally:
        workers.stop()
        delete_queue(broker, queue)
    verdict = check_stale(config, cid, em, audience)
    print(f"verify9 celery seed={seed}: stops {stops}, {verdict}")
    assert not verdict["not_sent"], f"recipients never sent: {verdict['not_sent'][:5]}"
