"""verify7: campaign lifecycle operations (pause, resume, cancel, retry_failed, retry_unknown,
delete(force=True), SIGTERM) racing live runner processes, checked from the vendor's side.

Written from docs/campaigns.md ("Dispatch", "Status, runners and deleting", "Exactly once, and
crash safety") and the public API. Verdicts come from the emulators' own request records
(``RecordedRequest``: what the vendor received, when, and whether it acted on it), never from
smsgate's log. The runners are ``tests/verify7_worker.py`` processes (sync ``run`` and async
``arun``); the operator's actions come from this process, through its own ``Gateway``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import test_verify6 as v6
from smsgate import CampaignStatus, Gateway
from smsgate.store.base import RecipientState
from smsgate.testing import FaultRule
from smsgate.testing.sandbox import RunningEmulator
from test_verify6 import (
    SEND_PATHS,
    check_campaign,
    national,
    numbers,
    numbers_in,
    provider_block,
    vendor_counts,
    write_config,
)

WORKER = Path(__file__).with_name("verify7_worker.py")
#: verify6's fixtures, registered here under their own names: ``emulators`` (started on first use,
#: stopped after the test) and ``store_url`` (``sqlite`` / ``postgres``, a schema of its own)
emulators = v6.emulators
store_url = v6.store_url


class Runner(v6.Proc):
    """A runner process (``run``: sync Gateway, ``arun``: AsyncGateway) of one campaign
    (verify6's worker process, running verify7's worker)."""

    def __init__(self, mode: str, config: Path, cid: str) -> None:
        super().__init__(mode, str(config), cid, worker=WORKER)
        self.mode = mode

    def finish(self, timeout: float = 90.0) -> tuple[int, dict[str, Any], str]:  # type: ignore[override]
        code, out, err = super().finish(timeout)
        lines = out.strip().splitlines()
        return code, json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}, err


def handle(config: Path, cid: str, action: str, *args: Any, **kw: Any) -> Any:
    """``camp.<action>(...)`` from this process (an operator), on a gateway of its own."""
    with Gateway(json.loads(config.read_text())) as gw:
        camp = gw.tenant("acme").campaigns.get(cid)
        return getattr(camp, action)(*args, **kw)


def sends_after(em: RunningEmulator, path: str, t: float) -> list[str]:
    """The numbers of every send request the vendor received at ``t`` or later."""
    return [n for req in em.requests(path) if req.at >= t for n in numbers_in(req)]


# ---------------------------------------------------------------- deterministic: a pause as a runner starts
@pytest.mark.parametrize("mode", ["run", "arun"])
def test_a_pause_while_a_runner_starts_is_not_undone(mode: str, emulators: dict[str, RunningEmulator],
                                                     tmp_path: Path) -> None:
    """A runner starting asks the vendor about recipients left ``unknown`` before it sends
    (campaigns.md, "Exactly once"); a ``pause()`` that lands meanwhile must hold: the runner
    sends nothing, and the campaign stays ``paused``. (It set the campaign ``running`` once its
    look-ups were done, whatever its status had become, and sent everyone: the pause lost.)"""
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    store = f"sqlite:///{tmp_path / 'v7.db'}"
    # a first run: one request's answer lost after the vendor took it (unknown, and the look-ups
    # cannot tell: 500), every other refused (403, never taken: failed, retry_failed sends it)
    em.add(FaultRule.reset(process=True, path=path, method="POST", count=1),
           FaultRule.error(403, path=path, method="POST", count=None),
           FaultRule.error(500, path=path, method="GET", count=None))
    config = write_config(tmp_path, store, {"main": provider_block(em, timeout=0.5)})
    audience = numbers(20, offset=1000)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v7-start", text="verify7 start", audience=audience, mode="fanout",
                                                 lease_seconds=30, concurrency=1, batch_size=1).campaign_id
    code, result, err = Runner("run", config, cid).finish()
    assert code == 0, err[-3000:]
    assert result["unknown"] == 1 and result["failed"] == len(audience) - 1, result
    em.clear_faults()
    # the look-up of the unknown one takes 1.5 s at the start of the next run (the vendor is slow)
    em.add(FaultRule.latency(1.5, path=path, method="GET", count=None))
    slow = write_config(tmp_path, store, {"main": provider_block(em, timeout=3.0)})
    assert handle(slow, cid, "retry_failed") == len(audience) - 1
    runner = Runner(mode, slow, cid)
    assert runner.wait_ready()
    time.sleep(0.5)  # the runner is at its look-up
    handle(slow, cid, "pause")
    paused_at = time.time()
    code, result, err = runner.finish()
    assert code == 0, err[-3000:]
    late = sends_after(em, path, paused_at)
    progress = handle(slow, cid, "progress")
    assert not late, f"{len(late)} recipient(s) sent after pause() returned (the run went on): {result}"
    assert progress.status is CampaignStatus.PAUSED, progress
    assert progress.pending == len(audience) - 1, progress


@pytest.mark.parametrize("mode", ["run", "arun"])
def test_a_run_after_a_cancel_settles_the_claims_a_killed_runner_left(mode: str,
                                                                      emulators: dict[str, RunningEmulator],
                                                                      tmp_path: Path) -> None:
    """A runner SIGKILLed with claims (two requests at the vendor, the rest of its chunk never
    sent), then ``cancel()``: the killed runner's claims stay ``sending`` (cancel skips the
    ``pending`` ones only). Once its lease is over, a run of the cancelled campaign must settle
    them as a run settles a dead runner's claims (docs/campaigns.md, "Exactly once"): those never
    sent ``skipped`` (``cancelled``), those at the vendor looked up. (A run of a cancelled campaign
    returned at once, leaving them ``sending`` for good: only a purge resolved them, as ``unknown``.)"""
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    em.add(FaultRule.latency(1.5, path=path, method="POST", count=None))
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'v7.db'}", {"main": provider_block(em, timeout=3.0)})
    audience = numbers(40, offset=1500)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v7-cancel", text="verify7 cancel", audience=audience,
                                                 mode="fanout", lease_seconds=1, concurrency=2,
                                                 batch_size=10).campaign_id
    runner = Runner("run", config, cid)
    assert runner.wait_ready()
    deadline = time.monotonic() + 20
    while len(em.requests(path)) < 2:  # two requests at the vendor: the runner holds its first chunk
        assert time.monotonic() < deadline, "the runner never sent"
        time.sleep(0.02)
    runner.p.kill()
    runner.finish()
    skipped = handle(config, cid, "cancel")
    assert skipped == len(audience) - 10
    time.sleep(2.0)  # its lease is over, and the vendor has acted on the two requests
    code, _, err = Runner(mode, config, cid).finish()
    assert code == 0, err[-3000:]
    progress = handle(config, cid, "progress")
    acted, _, _ = vendor_counts(em)
    assert sum(acted.values()) == 2
    assert progress.status is CampaignStatus.CANCELLED, progress
    assert progress.sending == 0 and progress.pending == 0, progress
    assert progress.skipped_by_reason.get("cancelled") == len(audience) - 2, progress
    assert progress.sent + progress.unknown == 2, progress


def test_two_retry_failed_at_once_never_send_a_recipient_twice(emulators: dict[str, RunningEmulator],
                                                               tmp_path: Path) -> None:
    """Two operators call ``retry_failed()`` at once (two ``smsgate campaign retry-failed``): the
    first puts the failed recipients back and a run sends them; the second had read them as
    ``failed`` before that, and its write came after (a slow store: here its read of their messages
    is slow). That write must not put back recipients the vendor has taken since
    (docs/campaigns.md: "no duplicate is possible"). (It put them back unconditionally, and the
    next run texted each a second time.)"""
    import threading

    from smsgate.store.sqlite import SQLiteStore

    reading, go_on = threading.Event(), threading.Event()

    class SlowStore(SQLiteStore):
        """A store whose first read of messages by id is slow (a busy database): it returns once
        the test says so."""

        def messages_by_id(self, tenant: str, message_ids: Any) -> Any:
            if not reading.is_set():
                reading.set()
                go_on.wait(60)
            return super().messages_by_id(tenant, message_ids)

    em = emulators["squad"]
    path = SEND_PATHS["squad"]
    em.add(FaultRule.error(403, path=path, method="POST", count=None))  # refused: failed, never taken
    db = tmp_path / "v7.db"
    config = write_config(tmp_path, f"sqlite:///{db}", {"main": provider_block(em)})
    audience = numbers(5, offset=1700)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v7-retry", text="verify7 retry", audience=audience,
                                                 mode="fanout").campaign_id
    code, result, err = Runner("run", config, cid).finish()
    assert code == 0 and result["failed"] == len(audience), (result, err[-3000:])
    em.clear_faults()
    slow_store = SlowStore(str(db))
    second: list[int] = []
    with Gateway(json.loads(config.read_text()), store=slow_store) as slow_gw:
        slow = threading.Thread(target=lambda: second.append(
            slow_gw.tenant("acme").campaigns.get(cid).retry_failed()))
        slow.start()
        assert reading.wait(30)  # the second operator has read the failed recipients; its next read is slow
        assert handle(config, cid, "retry_failed") == len(audience)
        code, result, err = Runner("run", config, cid).finish()
        assert code == 0 and result["sent"] == len(audience), (result, err[-3000:])
        go_on.set()
        slow.join()
    code, result, err = Runner("run", config, cid).finish()  # whatever the second put back
    assert code == 0, err[-3000:]
    acted, _, _ = vendor_counts(em)
    assert set(acted) == {national(n) for n in audience}
    assert not {n: c for n, c in acted.items() if c > 1}, f"sent twice: {dict(acted)} (second put back {second})"


def test_an_async_run_stopped_by_a_delete_prints_no_traceback(emulators: dict[str, RunningEmulator],
                                                               tmp_path: Path) -> None:
    """``delete(force=True)`` while an async runner's requests wait to retry after a 429's
    ``Retry-After``: its lease goes with the campaign, so each retry meets the fence (LeaseLost)
    and is not sent; the run stops with the typed ``NotFound`` (docs/campaigns.md). It must do so
    without printing anything else: each batch task but the first left its ``LeaseLost`` (and the
    chunk preparation its ``NotFound``) unretrieved, and asyncio printed each with a traceback
    ("Task exception was never retrieved")."""
    em = emulators["squad"]
    path = SEND_PATHS["squad"]
    em.add(FaultRule.error(429, retry_after=1.5, path=path, method="POST", count=None))
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'v7.db'}", {"main": provider_block(em, max_batch=1)})
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v7-delete", text="verify7 delete", audience=numbers(60, offset=1800),
                                                 mode="fanout", lease_seconds=2, concurrency=8,
                                                 batch_size=8).campaign_id
    runner = Runner("arun", config, cid)
    assert runner.wait_ready()
    deadline = time.monotonic() + 20
    while len(em.requests(path)) < 8:  # every batch waits to try again
        assert time.monotonic() < deadline, "the runner never sent"
        time.sleep(0.02)
    assert handle(config, cid, "delete", force=True)
    deleted_at = time.time()
    code, result, err = runner.finish()
    assert (code, result.get("error")) == (3, "NotFound"), (code, result, err[-3000:])
    assert "Traceback" not in err and "never retrieved" not in err, err[:3000]
    assert not sends_after(em, path, deleted_at + 0.5), "a retry left after the delete"


# ---------------------------------------------------------------- the random harness
#: the random harness's runs, left out of the default run (``pytest -m heavy`` runs them; pyproject.toml's
#: addopts): with them CI took 30.5 minutes on a slow 2-core machine. The faults they found have
#: deterministic tests of their own below and above, which run by default.
HEAVY = (pytest.mark.slow, pytest.mark.heavy)

#: seconds after an operator's pause / cancel / delete returned by which the vendor must have
#: received the runners' last request: the status check (a third of the 2 s lease here), the
#: answer of a request in flight (timeout 1 s), a retry after a 429's Retry-After, and slack for
#: a loaded machine (docs/campaigns.md: "stops the runners within 2 seconds", plus what was in flight)
STOP_BOUND = 5.0


def faults(em: RunningEmulator, seed: int, path: str, refused: float = 0.0) -> None:
    """Faults on the wire (reproducible from ``seed``): answers lost after the vendor acted,
    connections dropped before it did, 503s, 429s with Retry-After, hung answers; ``refused``:
    that share refused with a 403 before the vendor acts (failed, never taken)."""
    rules = [FaultRule.hang(1.5, path=path, method="POST", probability=0.01, seed=seed + 4, count=None),
             FaultRule.reset(process=True, path=path, method="POST", probability=0.03, seed=seed, count=None),
             FaultRule.reset(path=path, method="POST", probability=0.02, seed=seed + 1, count=None),
             FaultRule.error(503, path=path, method="POST", probability=0.02, seed=seed + 2, count=None),
             FaultRule.error(429, retry_after=0.2, path=path, method="POST", probability=0.03, seed=seed + 3,
                             count=None)]
    if refused:
        rules.insert(0, FaultRule.error(403, path=path, method="POST", probability=refused, seed=seed + 6,
                                        count=None))
    em.add(*rules, FaultRule.latency(0.01, path=path, count=None))


def setup(em: RunningEmulator, store: str, tmp_path: Path, size: int, offset: int, seed: int,
          refused: float = 0.0, rate: int = 120) -> tuple[Path, str, list[str]]:
    path = SEND_PATHS[em.name]
    faults(em, seed, path, refused)
    config = write_config(tmp_path, store, {"main": provider_block(em, max_batch=5, limits=[{"rate": rate}])})
    audience = numbers(size, offset=offset)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v7", text="verify7 campaign", audience=audience, mode="fanout",
                                                 lease_seconds=2, concurrency=8, batch_size=20).campaign_id
    return config, cid, audience


def start(config: Path, cid: str, n: int, first: int = 0) -> list[Runner]:
    return [Runner("run" if (first + i) % 2 == 0 else "arun", config, cid) for i in range(n)]


def finish_all(runners: list[Runner], allowed: tuple[int, ...] = (0,)) -> list[dict[str, Any]]:
    results = []
    for r in runners:
        code, result, err = r.finish()
        assert code in allowed, f"a {r.mode} runner exited {code}: {result} {err[-3000:]}"
        assert "Traceback" not in err, f"a {r.mode} runner printed a traceback: {err[-3000:]}"
        results.append(result)
    return results


def run_out(config: Path, cid: str) -> None:
    """Runs until nothing is pending or being sent (a killed runner's claims: after its lease)."""
    for _ in range(4):
        progress = handle(config, cid, "progress")
        if progress.pending == 0 and progress.sending == 0:
            return
        finish_all([Runner("run", config, cid)])
    raise AssertionError(f"still {handle(config, cid, 'progress')} after 4 runs")


PAUSES = [pytest.param("campaigns_api", "sqlite", 2, id="campaigns_api-sqlite-2", marks=HEAVY),
          pytest.param("squad", "postgres", 3, id="squad-postgres-3", marks=HEAVY),
          pytest.param("colony", "postgres", 2, id="colony-postgres-2", marks=HEAVY),
          pytest.param("broadcast", "sqlite", 3, id="broadcast-sqlite-3", marks=HEAVY)]


@pytest.mark.parametrize(("provider", "store_url", "runners"), PAUSES, indirect=["store_url"])
def test_pause_and_resume_while_runners_run(provider: str, store_url: str, runners: int,
                                            emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """``runners`` processes run the campaign; at random moments (some right as they start, some
    mid-run) the operator pauses it, waits for them to stop, resumes it and starts them again.
    After each pause no request reaches the vendor later than :data:`STOP_BOUND`, every runner
    ends cleanly with the campaign ``paused``; in the end each recipient reached the vendor at
    most once, exactly once unless ``unknown``."""
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    em = emulators[provider]
    path = SEND_PATHS[provider]
    config, cid, audience = setup(em, store_url, tmp_path, 360, 2000, seed)
    late: list[tuple[int, int]] = []
    statuses: Counter[str] = Counter()
    for round_ in range(4):
        live = start(config, cid, runners, round_)
        if rng.random() < 0.4:  # as they start (their recovery and look-ups)
            time.sleep(rng.uniform(0.3, 1.2))
        else:
            live[0].wait_ready()
            time.sleep(rng.uniform(0.4, 1.5))
        try:
            handle(config, cid, "pause")
        except Exception as exc:  # completed already: nothing left to pause
            assert "completed" in str(exc), exc
            finish_all(live)
            break
        paused_at = time.time()
        for result in finish_all(live):
            statuses[result.get("status", "?")] += 1
        time.sleep(0.5)
        after = sends_after(em, path, paused_at + STOP_BOUND)
        if after:
            late.append((round_, len(after)))
        progress = handle(config, cid, "progress")
        assert progress.status is CampaignStatus.PAUSED, f"round {round_}: the pause did not hold: {progress}"
        assert progress.sending == 0, progress
        handle(config, cid, "resume")
    run_out(config, cid)
    print(f"verify7 pauses {provider} {store_url.split(':')[0]} seed={seed}: runner ends {dict(statuses)}")
    assert not late, f"sent more than {STOP_BOUND}s after pause() returned (round, recipients): {late}"
    verdict = check_campaign(config, cid, em, audience=audience)
    print(f"verify7 pauses {provider}: {verdict}")
    assert not verdict["not_sent"], f"recipients never sent: {verdict['not_sent'][:5]}"


CANCELS = [pytest.param("squad", "sqlite", 2, False, id="squad-sqlite-2", marks=HEAVY),
           pytest.param("campaigns_api", "postgres", 3, True, id="campaigns_api-postgres-3-kill", marks=HEAVY),
           pytest.param("broadcast", "sqlite", 3, True, id="broadcast-sqlite-3-kill", marks=HEAVY),
           pytest.param("colony", "postgres", 2, False, id="colony-postgres-2", marks=HEAVY)]


@pytest.mark.parametrize(("provider", "store_url", "runners", "kill"), CANCELS, indirect=["store_url"])
def test_cancel_while_runners_run(provider: str, store_url: str, runners: int, kill: bool,
                                  emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """``cancel()`` at a random moment while runners send (with ``kill``: one SIGKILLed just
    before): the vendor receives nothing later than :data:`STOP_BOUND` after it returned, nor
    after a run started afterwards; nothing is left ``pending``; every recipient the vendor never
    saw is ``skipped`` (``cancelled``) or, for a claim of the killed runner whose message was
    logged, ``unknown`` (the run after the cancel settles the killed runner's claims)."""
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    em = emulators[provider]
    path = SEND_PATHS[provider]
    config, cid, _ = setup(em, store_url, tmp_path, 400, 3000, seed)
    live = start(config, cid, runners)
    for r in live:
        r.wait_ready()
    time.sleep(rng.uniform(0.3, 2.0))
    if kill:
        live[-1].p.kill()
        live[-1].finish()
        time.sleep(rng.uniform(0.0, 0.3))
    handle(config, cid, "cancel")
    cancelled_at = time.time()
    finish_all(live[:-1] if kill else live)
    time.sleep(2.5)  # the killed runner's lease ends
    finish_all([Runner("arun", config, cid)])  # a run after the cancel sends nothing
    after = sends_after(em, path, cancelled_at + STOP_BOUND)
    with Gateway(json.loads(config.read_text())) as gw:
        rows = gw.store.recipients("acme", cid, limit=100_000)
        progress = gw.tenant("acme").campaigns.get(cid).progress()
    acted, seen, _ = vendor_counts(em)
    state = {national(r.phone): r for r in rows}
    twice = {n: c for n, c in acted.items() if c > 1}
    print(f"verify7 cancel {provider} {store_url.split(':')[0]} kill={kill} seed={seed}: {progress}, "
          f"acted {sum(acted.values())}, late {len(after)}")
    assert not after, f"{len(after)} recipient(s) reached the vendor more than {STOP_BOUND}s after cancel()"
    assert not twice, f"sent more than once: {sorted(twice.items())[:5]}"
    assert progress.status is CampaignStatus.CANCELLED, progress
    assert progress.pending == 0 and progress.sending == 0, progress
    wrong = [(n, r.state, r.reason) for n, r in state.items() if not seen[n] and not (
        (r.state is RecipientState.SKIPPED and r.reason == "cancelled") or (kill and r.state is RecipientState.UNKNOWN)
        or r.state is RecipientState.FAILED)]
    assert not wrong, f"never at the vendor, yet not skipped: {wrong[:5]}"
    lost = [n for n, r in state.items() if r.state is RecipientState.SENT and acted[n] != 1]
    assert not lost, f"'sent' but not acted on by the vendor: {lost[:5]}"


RETRIES = [pytest.param("squad", "sqlite", 2, id="squad-sqlite-2", marks=HEAVY),
           pytest.param("campaigns_api", "postgres", 3, id="campaigns_api-postgres-3", marks=HEAVY),
           pytest.param("colony", "sqlite", 3, id="colony-sqlite-3", marks=HEAVY),
           pytest.param("broadcast", "postgres", 2, id="broadcast-postgres-2", marks=HEAVY)]


@pytest.mark.parametrize(("provider", "store_url", "runners"), RETRIES, indirect=["store_url"])
def test_retry_failed_and_retry_unknown_while_runners_run(provider: str, store_url: str, runners: int,
                                                          emulators: dict[str, RunningEmulator],
                                                          tmp_path: Path) -> None:
    """A vendor that refuses a tenth of the requests unprocessed (403: ``failed``, never taken) and
    loses some answers after acting (``unknown``); while runners send, the operator calls
    ``retry_failed()`` (from two threads at once, as two operators would) and ``retry_unknown()``
    at random moments, and one runner is SIGKILLed. No recipient reaches the vendor twice, except
    one that had an ``unknown`` message (retry_unknown's documented risk); every ``sent`` one was
    acted on once."""
    from concurrent.futures import ThreadPoolExecutor

    seed = random.randrange(2**31)
    rng = random.Random(seed)
    em = emulators[provider]
    config, cid, audience = setup(em, store_url, tmp_path, 400, 4000, seed, refused=0.1)
    live = start(config, cid, runners)
    for r in live:
        r.wait_ready()
    put_back: Counter[str] = Counter()
    killed = False
    with ThreadPoolExecutor(2) as pool:
        for _ in range(6):
            time.sleep(rng.uniform(0.1, 0.6))
            choice = rng.random()
            if choice < 0.5:
                put_back["failed"] += sum(pool.map(lambda _: handle(config, cid, "retry_failed"), range(2)))
            elif choice < 0.8:
                put_back["unknown"] += handle(config, cid, "retry_unknown")
            elif not killed:
                live[0].p.kill()
                live[0].finish()
                killed = True
    finish_all(live[1:] if killed else live)
    put_back["failed"] += handle(config, cid, "retry_failed")
    run_out(config, cid)
    with Gateway(json.loads(config.read_text())) as gw:
        logged = gw.tenant("acme").messages(campaign_id=cid, limit=1_000_000)
    was_unknown = {national(m.to) for m in logged if str(m.status) == "unknown"}
    acted, _, _ = vendor_counts(em)
    twice = {n: c for n, c in acted.items() if c > 1}
    print(f"verify7 retries {provider} {store_url.split(':')[0]} seed={seed}: put back {dict(put_back)}, "
          f"twice {len(twice)} (of which had an unknown message {len(set(twice) & was_unknown)})")
    unexplained = {n: c for n, c in twice.items() if n not in was_unknown}
    assert not unexplained, f"sent twice with no unknown outcome between: {sorted(unexplained.items())[:5]}"
    with Gateway(json.loads(config.read_text())) as gw:
        rows = gw.store.recipients("acme", cid, limit=100_000)
    lost = [national(r.phone) for r in rows if r.state is RecipientState.SENT and not acted[national(r.phone)]]
    assert not lost, f"'sent' but never acted on by the vendor: {lost[:5]}"
    assert sum(1 for r in rows if r.state in (RecipientState.PENDING, RecipientState.SENDING)) == 0
    never = [national(r.phone) for r in rows if r.state is RecipientState.FAILED and acted[national(r.phone)]]
    assert not never, f"failed, though the vendor acted on it: {never[:5]}"
    assert len(rows) == len(audience)


DELETES = [pytest.param("squad", "sqlite", 2, id="squad-sqlite-2", marks=HEAVY),
           pytest.param("colony", "postgres", 3, id="colony-postgres-3", marks=HEAVY),
           pytest.param("campaigns_api", "sqlite", 3, id="campaigns_api-sqlite-3", marks=HEAVY),
           pytest.param("broadcast", "postgres", 2, id="broadcast-postgres-2", marks=HEAVY)]


@pytest.mark.parametrize(("provider", "store_url", "runners"), DELETES, indirect=["store_url"])
def test_delete_force_while_runners_run(provider: str, store_url: str, runners: int,
                                        emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """``delete(force=True)`` at a random moment while runners send: each runner ends cleanly (its
    result, or the typed ``NotFound``: exit 3 here, no traceback), the vendor receives nothing
    later than :data:`STOP_BOUND` after the delete returned, and nothing of the campaign is left
    in the store (no recipients, no runner leases, the campaign gone); no recipient twice."""
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    em = emulators[provider]
    path = SEND_PATHS[provider]
    config, cid, _ = setup(em, store_url, tmp_path, 400, 5000, seed)
    live = start(config, cid, runners)
    live[0].wait_ready()
    time.sleep(rng.uniform(0.2, 2.0))
    assert handle(config, cid, "delete", force=True)
    deleted_at = time.time()
    ends = Counter(r.get("error", r.get("status")) for r in finish_all(live, allowed=(0, 3)))
    after = sends_after(em, path, deleted_at + STOP_BOUND)
    acted, _, _ = vendor_counts(em)
    with Gateway(json.loads(config.read_text())) as gw:
        left = gw.store.recipients("acme", cid, limit=10)
        leases = gw.store.runner_leases("acme", cid)
        listed = [c.campaign_id for c in gw.tenant("acme").campaigns.list(1000)]
    print(f"verify7 delete {provider} {store_url.split(':')[0]} seed={seed}: runner ends {dict(ends)}, "
          f"acted {sum(acted.values())}, late {len(after)}")
    assert set(ends) <= {"NotFound", "completed"}, ends
    assert not after, f"{len(after)} recipient(s) reached the vendor more than {STOP_BOUND}s after the delete"
    assert not {n: c for n, c in acted.items() if c > 1}
    assert not left and not leases and cid not in listed, (left, leases)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_delete_force_does_not_deadlock_with_runners_on_postgres(store_url: str,
                                                                 emulators: dict[str, RunningEmulator],
                                                                 tmp_path: Path) -> None:
    """Found by the test above (one PostgreSQL run in about eight): ``delete(force=True)`` raised
    ``StoreError: deadlock detected``. The delete took the campaign's runner rows first and its
    recipients in the order of a table scan, while a runner's write-ahead locks its recipients in
    id order and a recovery locks recipients then runner rows. Rounds of three busy runners (no
    rate limit, many claims and write-aheads at once) deleted under them: every delete succeeds
    and every runner ends with its result or ``NotFound``."""
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    em = emulators["squad"]
    path = SEND_PATHS["squad"]
    em.add(FaultRule.latency(0.005, path=path, count=None))
    config = write_config(tmp_path, store_url, {"main": provider_block(em, max_batch=1)})
    errors: list[str] = []
    ends: Counter[str] = Counter()
    for round_ in range(8):
        with Gateway(json.loads(config.read_text())) as gw:
            cid = gw.tenant("acme").campaigns.create(
                "v7-del", text="verify7 delete", audience=numbers(1000, offset=10_000 + 1000 * round_),
                mode="fanout", lease_seconds=2, concurrency=32, batch_size=8).campaign_id
        live = start(config, cid, 3, round_)
        for r in live:
            r.wait_ready()
        time.sleep(rng.uniform(0.3, 0.8))
        try:
            handle(config, cid, "delete", force=True)
        except Exception as exc:
            errors.append(f"round {round_}: delete: {type(exc).__name__}: {exc}")
        for r in live:
            code, result, err = r.finish()
            ends[result.get("error", result.get("status", f"exit {code}"))] += 1
            if code not in (0, 3) or result.get("error", "NotFound") != "NotFound" or "Traceback" in err:
                errors.append(f"round {round_}: a {r.mode} runner exited {code}: {result} {err[:2500]}")
    print(f"verify7 delete rounds seed={seed}: runner ends {dict(ends)}")
    assert not errors, "\n".join(errors)


# ---------------------------------------------------------------- the command line and SIGTERM
def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def toml_config(config: Path) -> Path:
    """The JSON configuration ``config`` as an smsgate.toml for the command line."""
    data = json.loads(config.read_text())
    lines = [f"{k} = {toml_value(v)}" for k, v in data.items() if k != "tenants"]
    for name, tenant in data["tenants"].items():
        lines.append(f"[tenants.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in tenant.items()]
    path = config.with_suffix(".toml")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Cli:
    """``smsgate campaign run CID`` in a process of its own."""

    def __init__(self, toml: Path, cid: str) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "smsgate", "campaign", "run", cid, "--config", str(toml)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(self, timeout: float = 90.0) -> tuple[int, str]:
        out, err = self.p.communicate(timeout=timeout)
        return self.p.returncode, out.decode(errors="replace") + err.decode(errors="replace")


@pytest.mark.parametrize(("provider", "store_url"), [
    pytest.param("squad", "postgres", id="squad-postgres", marks=HEAVY),
    pytest.param("campaigns_api", "sqlite", id="campaigns_api-sqlite", marks=HEAVY),
], indirect=["store_url"])
def test_sigterm_to_campaign_run_commands(provider: str, store_url: str, emulators: dict[str, RunningEmulator],
                                          tmp_path: Path) -> None:
    """Two ``smsgate campaign run`` processes at once; four times one of them, at random, gets
    SIGTERM (``docker stop``) a random moment after it started, and a new one takes its place.
    SIGTERM stops it as Ctrl-C does (docs/campaigns.md): exit 130 with its one line, no traceback;
    then the survivors and a last run finish. Every recipient reaches the vendor at most once,
    exactly once unless ``unknown``; nothing is left ``pending`` or ``sending``."""
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    em = emulators[provider]
    config, cid, audience = setup(em, store_url, tmp_path, 400, 6000, seed, rate=50)
    toml = toml_config(config)
    live = [Cli(toml, cid), Cli(toml, cid)]
    codes: Counter[int] = Counter()
    for _ in range(4):
        deadline = time.monotonic() + 30  # both commands hold a lease (they are at work), then a random moment
        while len(handle(config, cid, "runners")) < len(live) and time.monotonic() < deadline:
            time.sleep(0.05)
        if handle(config, cid, "progress").status is CampaignStatus.COMPLETED:
            break  # (a command killed in its start-up, before it installs its handlers, dies of SIGTERM)
        time.sleep(rng.uniform(0.05, 1.5))
        victim = rng.choice(live)
        victim.p.send_signal(signal.SIGTERM)
        code, out = victim.finish()
        codes[code] += 1
        # -SIGTERM after its run completed: the signal came as the command was ending, its handlers gone
        finished = code == -signal.SIGTERM and ": completed;" in out
        assert code in (0, 130) or finished, f"SIGTERM: exit {code}: {out[-3000:]}"
        assert "Traceback" not in out, out[-3000:]
        if code == 130:
            assert "interrupted:" in out, out[-3000:]
        live.remove(victim)
        live.append(Cli(toml, cid))
    for cli in live:
        code, out = cli.finish()
        assert code == 0 and "Traceback" not in out, out[-3000:]
    run_out(config, cid)
    verdict = check_campaign(config, cid, em, audience=audience)
    print(f"verify7 sigterm {provider} {store_url.split(':')[0]} seed={seed}: exits {dict(codes)}, {verdict}")
    assert not verdict["not_sent"], f"recipients never sent: {verdict['not_sent'][:5]}"
