"""verify6: smsgate's delivery claims checked from the vendor's side.

Written from the docs (campaigns.md, scaling.md, concepts.md, routing.md) and the public API
only. Every verdict is read from the emulators' own request records (``RecordedRequest``:
what each emulated vendor received, whether it acted on it, and when), never from what
smsgate says it did:

* a campaign run by 2-4 runner processes at once, SIGKILLed (and Ctrl-C'd) at random
  moments, then resumed, reaches every recipient at most once, and exactly once unless the
  recipient ends ``unknown``; nothing is left ``pending`` or ``sending``; a recipient is
  ``unknown`` only if a request of it may have left (the vendor saw it, or a faulted
  request carried it, or a runner was killed while it was claimed);
* rate limits held through the store (or Redis) across those processes: no window of the
  vendor's clock holds more than the limit;
* ``send`` with idempotency keys from several sync and async processes at once, with
  faults, failover and kills: never two messages for one key;
* Celery dispatch (real workers, one SIGKILLed): each recipient once.

Processes are ``tests/verify6_worker.py``; the emulators run in this process (``start_emulator``).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.plugins import sandbox_account
from smsgate.store.base import RecipientState
from smsgate.testing import FaultRule, RecordedRequest
from smsgate.testing.sandbox import RunningEmulator, start_emulator

WORKER = Path(__file__).with_name("verify6_worker.py")
PG = "postgresql://postgres@127.0.0.1:5432/test"
#: the ten national digits of a test number, in any of the vendors' spellings (0803..., 234803...)
NUMBER = re.compile(r"(?<!\d)(?:\+?234|0)(80[0-9]{8})(?!\d)")


# ---------------------------------------------------------------- the vendor's record
def numbers_in(req: RecordedRequest) -> list[str]:
    """The recipients a request carried (its body), as national digits without the 0."""
    if req.method != "POST":
        return []
    return NUMBER.findall(req.body)


def dump_record(*emulators: RunningEmulator) -> None:
    """A debugging aid: with ``V6_LOG`` set, the emulators' request records as JSON lines there."""
    if os.environ.get("V6_LOG"):
        with open(os.path.join(os.environ["V6_LOG"], "vendor.jsonl"), "a", encoding="utf-8") as fh:
            for em in emulators:
                for req in em.requests():
                    fh.write(json.dumps({"at": req.at, "path": req.path, "body": req.body, "fault": req.fault,
                                         "processed": req.processed, "status": req.status}) + "\n")


def vendor_counts(*emulators: RunningEmulator) -> tuple[Counter[str], Counter[str], list[RecordedRequest]]:
    """(times each number was acted on, times each number reached the vendor at all, every request)."""
    acted: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    every: list[RecordedRequest] = []
    for em in emulators:
        for req in em.requests():
            every.append(req)
            found = numbers_in(req)
            seen.update(found)
            if req.processed:
                acted.update(found)
    return acted, seen, every


def ambiguous(req: RecordedRequest) -> bool:
    """Whether the client could not tell if the vendor acted on ``req`` (a lost answer, a 5xx)."""
    return req.fault in ("reset", "hang", "drip", "malformed") or (req.fault == "status" and (req.status or 0) >= 500)


def window_peak(times: list[tuple[float, int]], per: float) -> tuple[int, float]:
    """The most messages any window ``[t, t + per)`` of the vendor's clock holds, and at which ``t``."""
    times = sorted(times)
    best, at = 0, 0.0
    j = 0
    total = 0
    for i, (start, _) in enumerate(times):
        while j < len(times) and times[j][0] < start + per:
            total += times[j][1]
            j += 1
        if total > best:
            best, at = total, start
        total -= times[i][1]
    return best, at


# ---------------------------------------------------------------- set-up
def provider_block(em: RunningEmulator, **over: Any) -> dict[str, Any]:
    """A provider instance for ``em`` as plain configuration (its sandbox credentials in clear)."""
    account = sandbox_account(em.name)
    block: dict[str, Any] = {"plugin": em.name, "base_url": em.url, "sender": "SMSGATE",
                             "credentials": dict(account.credentials), "options": dict(account.settings.get("options", {})),
                             "timeout": 1.0}
    block.update({k: v for k, v in account.settings.items() if k != "options"})
    block.update(over)
    return block


@pytest.fixture
def emulators() -> Iterator[dict[str, RunningEmulator]]:
    started: dict[str, RunningEmulator] = {}

    class Lazy(dict[str, RunningEmulator]):
        def __missing__(self, name: str) -> RunningEmulator:
            base = name.split("#")[0]
            started[name] = self[name] = start_emulator(base)
            return started[name]

    yield Lazy()
    for em in started.values():
        em.stop()


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'v6.db'}"
        return
    schema = f"v6_{uuid.uuid4().hex[:10]}"
    yield f"{PG}?schema={schema}"
    if os.environ.get("V6_LOG"):  # a debugging aid (see verify6_worker.py): the store is kept for a look
        print(f"verify6 store kept: schema {schema}")
        return
    import psycopg

    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def write_config(tmp_path: Path, store: str, providers: dict[str, dict[str, Any]], traffic: str = "store",
                 **tenant: Any) -> Path:
    config = {"store": store, "traffic": traffic,
              "tenants": {"acme": {"default_region": "NG", "providers": providers, **tenant}}}
    path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


class Proc:
    """A worker process; ``ready`` once its gateway is open."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, worker: Path = WORKER) -> None:
        # unbuffered bytes: ``wait_ready`` reads a byte at a time, so no line after ``ready`` sits
        # in a reader's buffer, where ``communicate`` (which reads the pipe itself) never sees it
        # (a runner that had nothing left to do printed its result at once, and lost it there)
        self.p = subprocess.Popen([sys.executable, str(worker), *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

    def wait_ready(self, timeout: float = 60.0) -> bool:
        assert self.p.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline().decode()
            if line.strip() == "ready":
                return True
            if not line and self.p.poll() is not None:
                return False
        return False

    def finish(self, timeout: float = 120.0) -> tuple[int, str, str]:
        out, err = self.p.communicate(timeout=timeout)
        return self.p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def numbers(n: int, offset: int = 0) -> list[str]:
    return [f"+23480{offset + i:08d}" for i in range(n)]


def national(e164: str) -> str:
    return e164[-10:]


# ---------------------------------------------------------------- campaigns
def run_campaign(config: Path, cid: str, *, runners: int, kills: int, seed: int, sigint_every: int = 0,
                 window: tuple[float, float] = (0.05, 0.6)) -> dict[str, Any]:
    """``runners`` processes run the campaign at once; ``kills`` times one of them, chosen at
    random, is SIGKILLed (every ``sigint_every``-th gets SIGINT, a Ctrl-C, instead) a random
    moment after it is ready, and a new one takes its place. Then the survivors finish and
    resumes run until nothing is pending or being sent."""
    rng = random.Random(seed)
    modes = {}  # every other runner an AsyncGateway's
    live = []
    for i in range(runners):
        live.append(Proc("run" if i % 2 == 0 else "arun", str(config), cid))
        modes[live[-1]] = live[-1].p.args[2]
    done: list[tuple[int, str, str]] = []
    killed = interrupted = 0

    def replace(victim: Proc) -> None:
        live.remove(victim)
        live.append(Proc(modes[victim], str(config), cid))
        modes[live[-1]] = modes[victim]

    for n in range(kills):
        victim = rng.choice(live)
        if not victim.wait_ready():
            done.append(victim.finish())  # it ended before it was ready: the campaign is done
            replace(victim)
            continue
        time.sleep(rng.uniform(*window))
        if victim.p.poll() is None:
            if sigint_every and n % sigint_every == sigint_every - 1:
                victim.p.send_signal(signal.SIGINT)
                code, out, err = victim.finish()
                # -SIGINT: the signal came as the interpreter was ending, its handlers gone, after the
                # run had returned (its result printed), or after it printed that it was interrupted
                # (see tests/test_cli_interrupt.py's ``interrupt``)
                finished = code == -signal.SIGINT and ('"status"' in out or '"interrupted"' in out)
                assert code in (0, 130) or finished, f"a Ctrl-C'd {modes[victim]} runner exited {code}: {out} {err[-3000:]}"
                interrupted += 1
            else:
                victim.p.kill()
                victim.finish()
                killed += 1
        else:
            done.append(victim.finish())
        replace(victim)
    for proc in live:
        done.append(proc.finish())
    resumes = 0
    while True:
        with Gateway(json.loads(config.read_text())) as gw:
            progress = gw.tenant("acme").campaigns.get(cid).progress()
        if progress.pending == 0 and progress.sending == 0:
            break
        resumes += 1
        assert resumes <= 4, f"still {progress} after 4 resumes"
        code, _, err = Proc("run", str(config), cid).finish()
        assert code == 0, err[-3000:]
    for code, _, err in done:
        assert code in (0, 130), err[-3000:]
    return {"killed": killed, "interrupted": interrupted, "resumes": resumes}


def run_with_pauses(config: Path, cid: str, *, runners: int, pauses: int, pause: float, seed: int) -> int:
    """``runners`` processes run the campaign; ``pauses`` times one of them, at random, is stopped
    (SIGSTOP: a paused VM, a laptop asleep) for ``pause`` seconds, longer than its lease, then
    continued. Returns how many pauses came while the runner still ran."""
    rng = random.Random(seed)
    procs = [Proc("run" if i % 2 == 0 else "arun", str(config), cid) for i in range(runners)]
    for proc in procs:
        proc.wait_ready()
    paused = 0
    for _ in range(pauses):
        alive = [p for p in procs if p.p.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        time.sleep(rng.uniform(0.05, 0.4))
        victim.p.send_signal(signal.SIGSTOP)
        time.sleep(pause)
        victim.p.send_signal(signal.SIGCONT)
        paused += 1
    for proc in procs:
        code, _, err = proc.finish()
        assert code == 0, err[-3000:]
    for _ in range(4):
        with Gateway(json.loads(config.read_text())) as gw:
            progress = gw.tenant("acme").campaigns.get(cid).progress()
        if progress.pending == 0 and progress.sending == 0:
            break
        code, _, err = Proc("run", str(config), cid).finish()
        assert code == 0, err[-3000:]
    return paused


def check_campaign(config: Path, cid: str, *emulators: RunningEmulator, audience: list[str],
                   max_in_flight: int | None = None) -> dict[str, Any]:
    """The verdicts from the vendor's record; returns the numbers for the report."""
    with Gateway(json.loads(config.read_text())) as gw:
        rows = gw.store.recipients("acme", cid, limit=1_000_000)
        progress = gw.tenant("acme").campaigns.get(cid).progress()
        logged = gw.tenant("acme").messages(campaign_id=cid, limit=1_000_000)
    state = {national(r.phone): r.state for r in rows}
    acted, seen, every = vendor_counts(*emulators)
    # requests whose outcome the client could not know (refusals like 403 or 429 are certain)
    faulted = Counter(n for req in every if ambiguous(req) for n in numbers_in(req))
    twice = {n: c for n, c in acted.items() if c > 1}
    assert not twice, f"sent more than once (vendor's record): {len(twice)}, e.g. {sorted(twice.items())[:5]}"
    assert progress.pending == 0 and progress.sending == 0, progress
    lost = [n for n, s in state.items() if s == RecipientState.SENT and acted[n] != 1]
    assert not lost, f"'sent' but never acted on by the vendor: {lost[:5]}"
    stray = [n for n in acted if n not in state]
    assert not stray, f"the vendor received numbers not in the campaign: {stray[:5]}"
    never = [n for n, s in state.items() if s not in (RecipientState.UNKNOWN, RecipientState.SENT) and acted[n]]
    assert not never, f"acted on by the vendor but {[(n, state[n]) for n in never[:5]]}"
    # the message log against the vendor's record: a message logged as taken by the vendor was
    # taken, and no recipient has two such messages (campaigns.md, "Statistics")
    taken = Counter(national(m.to) for m in logged if str(m.status) in ("submitted", "sent", "delivered", "undelivered", "expired"))
    assert not {n: c for n, c in taken.items() if c > 1}, "two messages logged as taken for one recipient"
    assert not [n for n in taken if not acted[n]], "a message logged as taken that the vendor never acted on"
    unknown = [n for n, s in state.items() if s == RecipientState.UNKNOWN]
    if max_in_flight is not None:  # unknown without a fault nor the vendor acting: in flight at a kill
        unexplained = [n for n in unknown if not acted[n] and not faulted[n]]
        assert len(unexplained) <= max_in_flight, f"{len(unexplained)} unknown for no reason: {unexplained[:5]}"
    missing = [n for n in map(national, audience) if state.get(n) not in (RecipientState.SENT, RecipientState.UNKNOWN)]
    return {"recipients": len(state), "sent": progress.sent, "unknown": len(unknown),
            "unknown_acted": sum(1 for n in unknown if acted[n]),
            "unknown_faulted": sum(1 for n in unknown if faulted[n]),
            "unknown_unseen": [n for n in unknown if not seen[n]],
            "failed": progress.failed, "not_sent": missing, "requests": len(every),
            "faults": dict(Counter(req.status if req.fault == "status" else req.fault for req in every if req.fault not in (None, "latency")))}


SEND_PATHS = {"squad": "/sms/send", "colony": "/contact/message", "campaigns_api": "/api/SMSMessages",
              "broadcast": "/api/v1/broadcast", "squad_v1": "/service/message"}


def instance_of(provider: str, em: RunningEmulator, **over: Any) -> dict[str, Any]:
    """A provider instance on ``em``; ``squad_v1`` is Squad's legacy API (one number a request,
    a listing to find a message whose answer was lost)."""
    if provider == "squad_v1":
        from smsgate_squad.emulator.state import SANDBOX_V1_CREDENTIALS, SANDBOX_V1_OPTIONS

        over = {"options": dict(SANDBOX_V1_OPTIONS), "credentials": dict(SANDBOX_V1_CREDENTIALS), **over}
    return provider_block(em, **over)


def campaign_faults(em: RunningEmulator, seed: int, path: str | None = None) -> None:
    """Slow answers on every send, and at random: answers lost after the vendor acted, connections
    dropped before it did, 503s, 429s with Retry-After (all reproducible from ``seed``)."""
    path = path or SEND_PATHS[em.name]
    # the first rule added that fires is applied: the latency rule (every request) comes last.
    # hang and drip: the client's read times out (timeout 1 s) and the vendor acts anyway
    em.add(FaultRule.hang(1.5, path=path, probability=0.01, seed=seed + 4, count=None),
           FaultRule.drip(1.2, chunk=8, path=path, probability=0.01, seed=seed + 5, count=None),
           FaultRule.reset(process=True, path=path, probability=0.02, seed=seed, count=None),
           FaultRule.reset(path=path, probability=0.02, seed=seed + 1, count=None),
           FaultRule.error(503, path=path, probability=0.02, seed=seed + 2, count=None),
           FaultRule.error(429, retry_after=0.2, path=path, probability=0.03, seed=seed + 3, count=None),
           FaultRule.latency(0.01, path=path, count=None))


# provider, store, runners, kills, recipients, rate (messages a second through the store)
LIGHT = [
    ("squad", "sqlite", 3, 6, 400, 150),
    ("colony", "postgres", 2, 5, 300, 150),
    ("campaigns_api", "sqlite", 4, 6, 250, 120),
    ("broadcast", "postgres", 3, 5, 300, 150),
]
HEAVY = [
    ("squad", "postgres", 4, 10, 600, 200),
    ("colony", "sqlite", 3, 8, 400, 150),
    ("campaigns_api", "postgres", 2, 8, 300, 120),
    ("broadcast", "sqlite", 4, 10, 500, 200),
    ("squad_v1", "sqlite", 3, 6, 250, 120),
]
MATRIX = [pytest.param(*v, id="-".join(map(str, v[:4]))) for v in LIGHT] + [
    pytest.param(*v, id="-".join(map(str, v[:4])), marks=(pytest.mark.slow, pytest.mark.heavy)) for v in HEAVY]


@pytest.mark.parametrize(("provider", "store_url", "runners", "kills", "size", "rate"), MATRIX,
                         indirect=["store_url"])
def test_campaign_exactly_once_under_kills_and_faults(
        provider: str, store_url: str, runners: int, kills: int, size: int, rate: int,
        emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """Several runner processes, SIGKILLs and Ctrl-Cs at random moments, faults on the wire:
    every recipient reaches the vendor at most once, exactly once unless ``unknown``, and the
    instance's rate limit (kept in the store, shared by every process) is never passed."""
    seed = random.randrange(2**31)
    em = emulators[provider.split("_v1")[0]]
    campaign_faults(em, seed, SEND_PATHS[provider])
    per = 1.0
    config = write_config(tmp_path, store_url, {"main": instance_of(
        provider, em, max_batch=5, limits=[{"rate": rate, "per": per}])})
    audience = numbers(size)
    with Gateway(json.loads(config.read_text())) as gw:
        camp = gw.tenant("acme").campaigns.create("v6", text="verify6 campaign", audience=audience, mode="fanout",
                                                  lease_seconds=2, concurrency=8, batch_size=20)
        cid = camp.campaign_id
    ran = run_campaign(config, cid, runners=runners, kills=kills, seed=seed, sigint_every=3)
    print(f"verify6 {provider} {store_url.split(':')[0]} seed={seed}: {ran}")
    dump_record(em)
    # requests in flight at a kill: up to the campaign's concurrency, of max_batch messages each
    verdict = check_campaign(config, cid, em, audience=audience, max_in_flight=ran["killed"] * 8 * 5)
    print(f"verify6 {provider}: {verdict}")
    assert not verdict["not_sent"], f"recipients never sent: {verdict['not_sent'][:5]}"
    # the rate limit, on the vendor's clock: every request that carried messages counts
    sends = [(req.at, len(numbers_in(req))) for req in em.requests(SEND_PATHS[provider]) if numbers_in(req)]
    peak, at = window_peak(sends, per)
    assert peak <= rate, f"{peak} messages within {per}s at the vendor (limit {rate}), from {at}"


def test_a_runner_killed_right_after_its_look_up_found_the_message_leaves_the_recipient_sent(
        emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """Found by the harness above (campaigns_api, PostgreSQL, one run in ten): a recipient the
    vendor took ended ``failed``. A look-up logs the message's status at the vendor first, then
    the recipient's state; a runner killed between the two left the recipient ``unknown`` with
    its message ``undelivered`` (the vendor took it, then could not deliver it), and the next
    run made the recipient ``failed`` from that status. Found means ``sent`` (docs/campaigns.md),
    whatever became of the message at the vendor since."""
    em = emulators["campaigns_api"]
    path = SEND_PATHS["campaigns_api"]
    em.add(FaultRule.reset(process=True, path=path, method="POST", count=1),  # taken, the answer lost
           FaultRule.error(500, path=path, method="GET", count=None))  # and nobody can tell yet
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'v6.db'}", {"main": provider_block(em, timeout=0.2)})
    undeliverable = "+2348000000009"  # the emulated vendor fails to deliver numbers ending in 9
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("found", text="verify6", audience=[undeliverable],
                                                 mode="fanout", lease_seconds=2).campaign_id
    code, _, err = Proc("run", str(config), cid).finish()
    assert code == 0, err[-3000:]
    em.clear_faults()
    time.sleep(1.2)  # the vendor's delivery attempt is over (its delivery_delay is 1 s)
    code, _, err = Proc("run", str(config), cid, env={"V6_KILL_ON_FOUND": "1"}).finish()
    assert code == -signal.SIGKILL, f"the forced kill point was not reached (exit {code}): {err[-3000:]}"
    code, _, err = Proc("run", str(config), cid).finish()
    assert code == 0, err[-3000:]
    with Gateway(json.loads(config.read_text())) as gw:
        [row] = gw.store.recipients("acme", cid)
        [msg] = gw.tenant("acme").messages(campaign_id=cid)
    assert len(em.processed(path, "POST")) == 1
    assert msg.status == "undelivered"
    assert row.state == RecipientState.SENT, (row.state, row.reason, row.detail)


@pytest.mark.parametrize(("store_url", "traffic"), [
    pytest.param("postgres", "redis", id="postgres-redis"),
    pytest.param("sqlite", "store", id="sqlite-store", marks=pytest.mark.slow),
], indirect=["store_url"])
def test_campaign_failover_under_limits_and_kills(store_url: str, traffic: str,
                                                  emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """A campaign through a primary that refuses a quarter of its requests before acting (403:
    certainly not sent, so they fail over) and a backup, each with its own rate limit, both
    faulty; 3 runner processes, 6 SIGKILLs and Ctrl-Cs. No recipient reaches the two vendors
    more than once in all, and neither vendor's window holds more than its limit."""
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    primary, backup = emulators["squad"], emulators["colony"]
    primary.add(FaultRule.error(403, path=SEND_PATHS["squad"], probability=0.25, seed=rng.randrange(2**31),
                                count=None))
    campaign_faults(primary, rng.randrange(2**31))
    campaign_faults(backup, rng.randrange(2**31))
    rate, tenant_rate = 100, 300  # each instance 100 a second, the tenant 300 every 2 s through both
    traffic_url = f"redis://127.0.0.1:6379/0?prefix=v6{uuid.uuid4().hex[:8]}" if traffic == "redis" else traffic
    config = write_config(tmp_path, store_url, {
        "primary": provider_block(primary, max_batch=5, limits=[{"rate": rate}]),
        "backup": provider_block(backup, max_batch=5, limits=[{"rate": rate}])}, traffic=traffic_url,
        limits=[{"rate": tenant_rate, "per": 2}])
    audience = numbers(400, offset=20000)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v6-failover", text="verify6 failover", audience=audience,
                                                 mode="fanout", lease_seconds=2, concurrency=8,
                                                 batch_size=20).campaign_id
    ran = run_campaign(config, cid, runners=3, kills=6, seed=seed, sigint_every=3)
    print(f"verify6 failover {traffic} seed={seed}: {ran}")
    verdict = check_campaign(config, cid, primary, backup, audience=audience, max_in_flight=ran["killed"] * 8 * 5)
    print(f"verify6 failover: {verdict}")
    assert not verdict["not_sent"], f"recipients never sent: {verdict['not_sent'][:5]}"
    for em in (primary, backup):
        sends = [(req.at, len(numbers_in(req))) for req in em.requests(SEND_PATHS[em.name]) if numbers_in(req)]
        peak, at = window_peak(sends, 1.0)
        assert peak <= rate, f"{em.name}: {peak} messages within 1s at the vendor (limit {rate}), from {at}"
    both = [(req.at, len(numbers_in(req))) for em in (primary, backup)
            for req in em.requests(SEND_PATHS[em.name]) if numbers_in(req)]
    peak, at = window_peak(both, 2.0)
    assert peak <= tenant_rate, f"{peak} messages within 2s at the two vendors (tenant limit {tenant_rate}), from {at}"
    assert backup.processed(SEND_PATHS["colony"]), "nothing failed over"


def test_segment_limits_hold_across_runner_processes(emulators: dict[str, RunningEmulator],
                                                     tmp_path: Path) -> None:
    """A 3-segment text through a bulk API (Broadcast: one request, many numbers) under a limit in
    segments, two runner processes (sync and async) on SQLite, three SIGKILLs: no second of the
    vendor's clock holds more segments than the limit, and each recipient arrives at most once."""
    seed = random.randrange(2**31)
    em = emulators["broadcast"]
    em.add(FaultRule.latency(0.01, path=SEND_PATHS["broadcast"], count=None))
    text = "verify6 " + "x" * 392  # 400 GSM-7 characters: 3 segments of 153
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'v6.db'}", {"main": provider_block(
        em, limits=[{"rate": 90, "unit": "segments"}])})
    audience = numbers(120, offset=30000)
    with Gateway(json.loads(config.read_text())) as gw:
        camp = gw.tenant("acme").campaigns.create("v6-segments", text=text, audience=audience, mode="fanout",
                                                  lease_seconds=2, concurrency=4, batch_size=20)
        assert camp.preview().segments == 3 * len(audience)
        cid = camp.campaign_id
    ran = run_campaign(config, cid, runners=2, kills=3, seed=seed)
    verdict = check_campaign(config, cid, em, audience=audience, max_in_flight=ran["killed"] * 4 * 30)
    print(f"verify6 segments seed={seed}: {ran} {verdict}")
    assert not verdict["not_sent"], f"recipients never sent: {verdict['not_sent'][:5]}"
    sends = [(req.at, 3 * len(numbers_in(req))) for req in em.requests(SEND_PATHS["broadcast"]) if numbers_in(req)]
    peak, at = window_peak(sends, 1.0)
    assert peak <= 90, f"{peak} segments within 1s at the vendor (limit 90), from {at}"


@pytest.mark.parametrize(("provider", "store_url"), [
    pytest.param("campaigns_api", "sqlite", id="campaigns_api-sqlite"),
    pytest.param("squad", "postgres", id="squad-postgres", marks=pytest.mark.slow),
], indirect=["store_url"])
def test_runners_paused_past_their_lease_send_nothing_twice(provider: str, store_url: str,
                                                            emulators: dict[str, RunningEmulator],
                                                            tmp_path: Path) -> None:
    """Three runners; one at a time is stopped (SIGSTOP) for 2 s, past its 1 s lease, while the
    others take its claims over, then continued, four times, with slow answers and 429s with
    Retry-After on the wire (retries that leave after a pause). The fence claim
    (docs/campaigns.md): a runner that lost its claims sends nothing more, so no recipient
    reaches the vendor twice."""
    seed = random.randrange(2**31)
    em = emulators[provider]
    path = SEND_PATHS[provider]
    em.add(FaultRule.error(429, retry_after=0.3, path=path, probability=0.1, seed=seed, count=None),
           FaultRule.latency(0.05, path=path, count=None))
    # max_retries 8: four 429s in a row (10% each) ended a recipient ``failed`` (RateLimited,
    # never sent: right, but not this test's point) about once in 60 runs
    config = write_config(tmp_path, store_url, {"main": provider_block(em, max_batch=5, limits=[{"rate": 30}],
                                                                       max_retries=8)})
    audience = numbers(150, offset=50000)
    with Gateway(json.loads(config.read_text())) as gw:
        cid = gw.tenant("acme").campaigns.create("v6-pause", text="verify6 pause", audience=audience, mode="fanout",
                                                 lease_seconds=1, concurrency=8, batch_size=20).campaign_id
    paused = run_with_pauses(config, cid, runners=3, pauses=4, pause=2.0, seed=seed)
    dump_record(em)
    verdict = check_campaign(config, cid, em, audience=audience)
    print(f"verify6 pauses {provider} seed={seed}: paused {paused}, {verdict}")
    assert not verdict["not_sent"], f"recipients never sent: {verdict['not_sent'][:5]}"


# ---------------------------------------------------------------- sends with idempotency keys
def run_senders(config: Path, jobs: list[list[str]], modes: list[str], *, kills: int, seed: int,
                tmp_path: Path) -> list[dict[str, Any]]:
    """Processes of ``modes`` (``send``: sync Gateway, ``asend``: AsyncGateway) each send every job
    (in its own order) at once; ``kills`` times one is SIGKILLed at a random moment and started
    again. Then one more sync pass sends every job again; its outcomes are returned last."""
    rng = random.Random(seed)

    def start(mode: str) -> Proc:
        order = jobs[:]
        rng.shuffle(order)
        path = tmp_path / f"jobs-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(order), encoding="utf-8")
        return Proc(mode, str(config), str(path))

    live = [(mode, start(mode)) for mode in modes]
    results: list[dict[str, Any]] = []
    for _ in range(kills):
        mode, victim = rng.choice(live)
        if victim.wait_ready():
            time.sleep(rng.uniform(0.05, 0.5))
        victim.p.kill()
        victim.finish()
        live.remove((mode, victim))
        live.append((mode, start(mode)))
    for _, proc in live:
        code, out, err = proc.finish()
        assert code == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    code, out, err = start("send").finish()
    assert code == 0, err[-3000:]
    results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.parametrize(("modes", "store_url", "traffic"), [
    pytest.param(["send", "send", "asend"], "sqlite", "store", id="sync+async-sqlite-store"),
    pytest.param(["asend", "asend", "send"], "postgres", "redis", id="async+sync-postgres-redis"),
    pytest.param(["many", "amany", "asend"], "sqlite", "redis", id="send_many-sqlite-redis"),
    pytest.param(["amany", "many", "send"], "postgres", "store", id="send_many-postgres-store",
                 marks=pytest.mark.slow),
], indirect=["store_url"])
def test_idempotency_keys_never_send_twice(modes: list[str], store_url: str, traffic: str,
                                           emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """Three processes send the same 200 keyed messages at once, through a primary that refuses
    some (403: failover; 429 and a documented 'not processed' 503: retries), loses answers after
    acting or drops connections, and a backup with its own faults; three SIGKILLs; then every key
    is sent once more. No key reaches the vendors twice, and both rate limits hold."""
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    primary, backup = emulators["squad"], emulators["broadcast"]
    p_path, b_path = SEND_PATHS["squad"], SEND_PATHS["broadcast"]
    primary.add(FaultRule.error(403, path=p_path, probability=0.15, seed=rng.randrange(2**31), count=None),
                FaultRule.error(429, retry_after=0.05, path=p_path, probability=0.1, seed=rng.randrange(2**31),
                                count=None),
                FaultRule.error(503, path=p_path, probability=0.1, seed=rng.randrange(2**31), count=None),
                FaultRule.reset(process=True, path=p_path, probability=0.04, seed=rng.randrange(2**31), count=None),
                FaultRule.reset(path=p_path, probability=0.04, seed=rng.randrange(2**31), count=None),
                FaultRule.latency(0.02, path=p_path, count=None))
    backup.add(FaultRule.reset(process=True, path=b_path, probability=0.05, seed=rng.randrange(2**31), count=None),
               FaultRule.error(429, retry_after=0.05, path=b_path, probability=0.1, seed=rng.randrange(2**31),
                               count=None),
               FaultRule.latency(0.02, path=b_path, count=None))
    limit = {"rate": 40, "per": 0.5}
    traffic_url = f"redis://127.0.0.1:6379/0?prefix=v6{uuid.uuid4().hex[:8]}" if traffic == "redis" else traffic
    config = write_config(tmp_path, store_url, {
        "primary": provider_block(primary, not_processed_statuses=[503], limits=[limit]),
        "backup": provider_block(backup, limits=[limit])}, traffic=traffic_url)
    jobs = [[f"v6-key-{i}", to] for i, to in enumerate(numbers(200, offset=5000))]
    results = run_senders(config, jobs, modes, kills=3, seed=seed, tmp_path=tmp_path)
    acted, _, every = vendor_counts(primary, backup)
    twice = {n: c for n, c in acted.items() if c > 1}
    print(f"verify6 keys {modes} {traffic} seed={seed}: {results}; acted {sum(acted.values())}, "
          f"requests {len(every)}, faults {Counter(r.fault for r in every if r.fault not in (None, 'latency'))}")
    assert not twice, f"keys sent more than once (vendors' record): {len(twice)}, e.g. {sorted(twice.items())[:5]}"
    assert set(acted) <= {national(to) for _, to in jobs}
    for em, path in ((primary, p_path), (backup, b_path)):
        sends = [(req.at, len(numbers_in(req))) for req in em.requests(path) if numbers_in(req)]
        peak, _ = window_peak(sends, limit["per"])
        assert peak <= limit["rate"], f"{em.name}: {peak} messages within {limit['per']}s (limit {limit['rate']})"


# ---------------------------------------------------------------- Celery
BROKER = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_celery_dispatch_sends_each_once_when_a_worker_is_killed(
        store_url: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """``dispatch_campaign`` on two real ``celery worker`` processes (RabbitMQ, PostgreSQL); one
    is SIGKILLed once a quarter is sent, a third starts; faults on the wire. Every recipient
    reaches the vendor at most once, exactly once unless ``unknown``; the campaign completes;
    the rate limit (in the store, shared by the workers) holds on the vendor's clock."""
    from smsgate.testing.workers import CeleryWorkers, delete_queue

    seed = random.randrange(2**31)
    em = emulators["squad"]
    campaign_faults(em, seed)
    rate = 200
    config = write_config(tmp_path, store_url, {"main": provider_block(em, max_batch=5, limits=[{"rate": rate}])})
    queue = f"verify6-{uuid.uuid4().hex[:8]}"
    env = {"V6_BROKER": BROKER, "V6_QUEUE": queue, "V6_CONFIG": str(config), "V6_CHUNK": "50",
           "PYTHONPATH": os.pathsep.join([str(WORKER.parent), os.environ.get("PYTHONPATH", "")])}
    audience = numbers(800, offset=9000)
    with Gateway(json.loads(config.read_text())) as gw:
        camp = gw.tenant("acme").campaigns.create("v6-celery", text="verify6 celery", audience=audience,
                                                  mode="fanout", lease_seconds=2, concurrency=8, batch_size=20)
        cid = camp.campaign_id
    workers = CeleryWorkers("verify6_celery_app", queue=queue, workdir=tmp_path, env=env, pool="threads")
    try:
        workers.start(2)
        workers.wait_ready()
        os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
        from celery import Celery

        sender = Celery("verify6-sender", broker=BROKER)
        sender.send_task("smsgate.dispatch_campaign", args=["acme", cid], queue=queue)
        deadline = time.monotonic() + 120
        with Gateway(json.loads(config.read_text())) as gw:
            handle = gw.tenant("acme").campaigns.get(cid)
            while handle.progress().sent < len(audience) // 4:
                assert time.monotonic() < deadline, f"no progress: {handle.progress()}\n{workers.tail()}"
                time.sleep(0.1)
            workers.kill(0)
            workers.start(1)
            while True:
                progress = handle.progress()
                if progress.status == "completed" and progress.pending == 0 and progress.sending == 0:
                    break
                assert time.monotonic() < deadline, f"not completed: {progress}\n{workers.tail()}"
                time.sleep(0.25)
    finally:
        workers.stop()
        delete_queue(BROKER, queue)
    verdict = check_campaign(config, cid, em, audience=audience)
    print(f"verify6 celery seed={seed}: {verdict}")
    assert not verdict["not_sent"], f"recipients never sent: {verdict['not_sent'][:5]}"
    sends = [(req.at, len(numbers_in(req))) for req in em.requests(SEND_PATHS["squad"]) if numbers_in(req)]
    peak, at = window_peak(sends, 1.0)
    assert peak <= rate, f"{peak} messages within 1s at the vendor (limit {rate}), from {at}"


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_send_later_sends_each_key_once_when_a_worker_is_killed(
        store_url: str, emulators: dict[str, RunningEmulator], tmp_path: Path) -> None:
    """``send_later`` of 150 keyed messages, each queued twice (a broker that delivers a task
    twice), on two real workers; one SIGKILLed once a quarter reached the vendor, a third started;
    503s the vendor documents as not processed (retried under the next key), answers lost after
    the vendor acted. No key reaches the vendor twice; each reaches it once unless its outcome
    stayed unknown."""
    import importlib.util

    from smsgate.testing.workers import CeleryWorkers, delete_queue

    seed = random.randrange(2**31)
    rng = random.Random(seed)
    em = emulators["squad"]
    path = SEND_PATHS["squad"]
    em.add(FaultRule.error(503, path=path, probability=0.1, seed=rng.randrange(2**31), count=None),
           FaultRule.reset(process=True, path=path, probability=0.03, seed=rng.randrange(2**31), count=None),
           FaultRule.latency(0.02, path=path, count=None))
    config = write_config(tmp_path, store_url, {"main": provider_block(em, not_processed_statuses=[503])})
    queue = f"verify6-{uuid.uuid4().hex[:8]}"
    env = {"V6_BROKER": BROKER, "V6_QUEUE": queue, "V6_CONFIG": str(config),
           "PYTHONPATH": os.pathsep.join([str(WORKER.parent), os.environ.get("PYTHONPATH", "")])}
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    spec = importlib.util.spec_from_file_location(f"verify6_app_{queue}", WORKER.with_name("verify6_celery_app.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from smsgate.contrib.celery import send_later

    jobs = [(f"v6-later-{i}", to) for i, to in enumerate(numbers(150, offset=40000))]
    workers = CeleryWorkers("verify6_celery_app", queue=queue, workdir=tmp_path, env=env, pool="threads")
    try:
        workers.start(2)
        workers.wait_ready()
        for key, to in jobs + jobs:
            send_later("acme", to, "verify6 later", idempotency_key=key, app=module.app)
        deadline = time.monotonic() + 90
        while len(em.processed(path)) < len(jobs) // 4:
            assert time.monotonic() < deadline, workers.tail()
            time.sleep(0.1)
        workers.kill(0)
        workers.start(1)
        last, still = -1, 0
        while still < 12:  # 3 s without a request at the vendor: the queue has drained
            now = len(em.requests(path))
            still = still + 1 if now == last else 0
            last = now
            assert time.monotonic() < deadline, workers.tail()
            time.sleep(0.25)
    finally:
        workers.stop()
        delete_queue(BROKER, queue)
    acted, _, every = vendor_counts(em)
    twice = {n: c for n, c in acted.items() if c > 1}
    with Gateway(json.loads(config.read_text())) as gw:
        logged = gw.tenant("acme").messages(limit=10_000)
    newest: dict[str, str] = {}
    for m in logged:  # newest first
        newest.setdefault(national(m.to), str(m.status))
    missing = [n for _, to in jobs if not acted[(n := national(to))] and newest.get(n) not in ("unknown", "queued")]
    print(f"verify6 send_later seed={seed}: acted {sum(acted.values())} of {len(jobs)}, "
          f"requests {len(every)}, statuses {Counter(newest.values())}, missing {len(missing)}")
    assert not twice, f"keys sent more than once (vendor's record): {sorted(twice.items())[:5]}"
    assert not missing, f"never sent, and not for an unknown outcome: {missing[:5]}"
