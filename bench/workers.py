#!/usr/bin/env python3
"""One campaign's throughput on 1, 2 and 3 Celery workers: ``.venv/bin/python bench/workers.py``.

For each worker count N (``--workers 1,2,3``) and each of ``--runs`` rounds (the counts
interleaved within a round): a fresh latency endpoint (bench/servers.py, answering after
``--latency`` seconds, 50 ms, and counting the recipients it receives), a PostgreSQL store
in a schema of its own (``$SMSGATE_BENCH_PG_DSN``, default postgresql://127.0.0.1:5432/test),
a campaign of ``--recipients`` (5,000) recipients, N real ``celery worker --pool=threads``
processes on RabbitMQ (``$SMSGATE_BENCH_AMQP_URL``, default 127.0.0.1:5672) on a queue of the
run's own, started and ready *before* the clock starts. Then ``dispatch_campaign.delay`` and
the campaign's progress is polled from the store: the wall time is from dispatch until every
recipient is ``sent`` (the finisher marks the campaign ``completed`` up to one poll interval
later; that time is printed but not counted). Each run checks, from the endpoint's own count,
that every recipient was received exactly once (and fails otherwise).

Printed per run: messages/s, the load average before and after, the CPU time of the
workers, of the endpoint, of PostgreSQL (every postgres process, other sessions' work
included; and the workers' own sessions, by their ``application_name``), of RabbitMQ and
of the whole machine per message (``/proc``). The summary gives
min/median per N and the ratio of medians to one worker.

The worker pool is ``threads`` with one slot (one task at a time, as docs/scaling.md
recommends; ``--slots 2``: two chunk tasks at a time, sharing the worker's event loop;
``--pool solo``: the pool whose workers sat idle up to 10 s between tasks); a chunk
task has up to the campaign's ``concurrency`` requests in flight (``--concurrency``, 32);
``--chunk`` recipients per chunk task (default 250, so the chunks of one campaign spread
over three workers). The workers run whatever smsgate is on ``PYTHONPATH`` (an older
commit's ``src`` from ``git archive`` to compare; ``smsgate.testing.workers`` must be in
it). ``--profile DIR`` attaches py-spy to every worker while the campaign runs; ``--logs
DIR`` keeps their logs; ``--smoke``: 200 recipients, one run, seconds. ``--json``: one
JSON line at the end for bench/run.py (which runs one worker count per call, interleaved,
and puts the figures in docs/performance.md), or ``{"skipped": why}`` when RabbitMQ,
PostgreSQL or Celery is not there.
This module is also the workers' Celery app (``celery -A workers``, bench/ on
``PYTHONPATH``, configured from ``SMSGATE_BENCH_*`` variables).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smsgate.testing.workers import CeleryWorkers, cpu_seconds, delete_queue

if TYPE_CHECKING:
    from celery import Celery

    from smsgate import Gateway

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

BROKER = os.environ.get("SMSGATE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
PG_DSN = os.environ.get("SMSGATE_BENCH_PG_DSN", "postgresql://127.0.0.1:5432/test")
TENANT = "bench"  # benchprovider.config's tenant
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------- the workers' Celery app
def make_gateway() -> Gateway:
    """A worker's gateway: the bench provider at ``$SMSGATE_BENCH_URL``, store ``$SMSGATE_BENCH_STORE``."""
    from benchprovider import config, plugins

    from smsgate import Gateway

    return Gateway(config(os.environ["SMSGATE_BENCH_URL"], os.environ["SMSGATE_BENCH_STORE"]), plugins=plugins())


def make_app(queue: str, chunk: int) -> Celery:
    """A Celery app sending smsgate's tasks to ``queue`` on the broker, ``chunk`` recipients a task."""
    from celery import Celery

    from smsgate.contrib.celery import configure

    app = Celery("smsgate_bench", broker=BROKER)
    configure(app, gateway="workers:make_gateway", chunk_size=chunk)
    app.conf.update(task_default_queue=queue, task_ignore_result=True, broker_connection_retry_on_startup=True)
    return app


if os.environ.get("SMSGATE_BENCH_QUEUE") and __name__ != "__main__":  # imported by `celery -A workers`
    app = make_app(os.environ["SMSGATE_BENCH_QUEUE"], int(os.environ["SMSGATE_BENCH_CHUNK"]))


# ------------------------------------------------------------ measuring
def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (and its waited-for children)."""
    return cpu_seconds(pid)


def cpu_of_named(names: tuple[str, ...]) -> float:
    """CPU seconds of every process whose command name is one of ``names`` (any user's: shared servers)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if (d / "comm").read_text().strip() in names:
                    total += cpu_of(int(d.name))
    return total


SERVERS = {"postgres": ("postgres", "postmaster"), "rabbitmq": ("beam.smp", "erl_child_setup", "epmd")}


def backends_cpu(app_name: str) -> float:
    """CPU seconds of the PostgreSQL sessions named ``app_name`` (the workers' store connections,
    from their start: a session closed before the end is not counted)."""
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        pids = [int(pid) for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                                    (app_name,))]
    return sum(cpu_of(pid) for pid in pids)


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(vals[:8]) - vals[3] - vals[4]) / TICK


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def log(msg: str) -> None:
    print(f"[workers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Result:
    workers: int
    seconds: float
    completed_after: float | None
    rate: float
    worker_cpu_us: float
    server_cpu_us: float
    machine_cpu_us: float
    servers_cpu_us: dict[str, float]
    machine_busy_pct: float
    load_before: str
    load_after: str
    startup: float
    chunk_seconds: list[float]
    idle_gaps: list[float]


_TASK_LINE = re.compile(r"^\[(\S+ \S+): INFO/MainProcess\] Task smsgate\.(\w+)\[[0-9a-f-]+\] "
                        r"(received|succeeded in ([0-9.]+)s)", re.M)


def task_times(log_text: str) -> tuple[list[float], list[float]]:
    """From a worker's log: how long each chunk task ran, and each wait of the worker between
    the end of a task and the receipt of the next (with one task at a time)."""
    durations: list[float] = []
    gaps: list[float] = []
    last_end: dt.datetime | None = None
    for m in _TASK_LINE.finditer(log_text):
        at = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if m.group(3) == "received":
            if last_end is not None:
                gaps.append((at - last_end).total_seconds())
        else:
            last_end = at
            if m.group(2) == "send_chunk":
                durations.append(float(m.group(4)))
    return durations, gaps


def profile(pid: int, out: Path, idle: bool) -> subprocess.Popen[bytes]:
    """``py-spy record`` attached to process ``pid`` (raw stacks per thread into ``out``) until SIGINT:
    samples of the thread holding the GIL (where the Python CPU goes), or with ``idle`` of every
    thread, waiting or not (where the time goes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    how = ["--idle"] if idle else ["--gil"]  # every thread's samples, or only the GIL holder's (Python's CPU)
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "-r", "100",
                            "--nonblocking", "-f", "raw", "--threads", *how, "-o", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached
    return spy


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def one_run(n_workers: int, args: argparse.Namespace) -> Result:
    from servers import start_latency

    from smsgate import Gateway
    from smsgate.models import CampaignStatus

    schema = f"bench_workers_{uuid.uuid4().hex[:10]}"
    queue = f"smsgate-bench-{uuid.uuid4().hex[:12]}"
    store = f"{PG_DSN}?schema={schema}"
    endpoint = start_latency(args.latency, count=True)
    workers: CeleryWorkers | None = None
    try:
        from benchprovider import config, plugins

        with tempfile.TemporaryDirectory(prefix="smsgate-workers-") as tmp, \
                Gateway(config(endpoint.url, store), plugins=plugins()) as gw:
            numbers = [f"+234806{i:07d}" for i in range(args.recipients)]
            camp = gw.tenant(TENANT).campaigns.create("workers", text="Spring sale: 20% off today", audience=numbers,
                                                      concurrency=args.concurrency)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                   "SMSGATE_BENCH_QUEUE": queue, "SMSGATE_BENCH_CHUNK": str(args.chunk),
                   "SMSGATE_BENCH_URL": endpoint.url, "SMSGATE_BENCH_STORE": store,
                   "PGAPPNAME": queue}  # the workers' PostgreSQL sessions, for their server CPU
            t_start = time.perf_counter()
            workdir = Path(args.logs) / f"w{n_workers}-{queue[-6:]}" if args.logs else Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)  # the workers' logs are kept there with --logs
            workers = CeleryWorkers("workers", queue=queue, workdir=workdir, env=env, heartbeat=False,
                                    pool=args.pool, concurrency=args.slots)
            workers.start(n_workers)
            workers.wait_ready()
            spies = [profile(p.pid, Path(args.profile) / f"w{n_workers}-{queue[-6:]}-{i}.txt", args.profile_idle)
                     for i, p in enumerate(workers.procs)] if args.profile else []
            startup = time.perf_counter() - t_start
            app = make_app(queue, args.chunk)
            load_before = loadavg()
            v0 = {k: cpu_of_named(names) for k, names in SERVERS.items()}
            v0["poller (this process)"] = time.process_time()
            w0, s0, m0 = workers.cpu(), cpu_of(endpoint.proc.pid), machine_busy()
            t0 = time.perf_counter()
            app.tasks["smsgate.dispatch_campaign"].delay(TENANT, camp.campaign_id)
            deadline = t0 + args.timeout
            while (p := camp.progress()).sent + p.failed + p.unknown < args.recipients:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"not done after {args.timeout:.0f}s: {p}\n{workers.tail()}")
                time.sleep(0.05)
            secs = time.perf_counter() - t0
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its samples and detaches
            for spy in spies:
                spy.wait(timeout=60)
            w1, s1, m1 = workers.cpu(), cpu_of(endpoint.proc.pid), machine_busy()
            v1 = {k: cpu_of_named(names) for k, names in SERVERS.items()}
            v1["poller (this process)"] = time.process_time()
            v0["postgres (workers' sessions)"], v1["postgres (workers' sessions)"] = 0.0, backends_cpu(queue)
            load_after = loadavg()
            completed: float | None = None
            wait_until = min(deadline, time.perf_counter() + 30)  # the finisher looks every few seconds
            while not args.smoke and time.perf_counter() < wait_until:
                if camp.progress().status is CampaignStatus.COMPLETED:
                    completed = time.perf_counter() - t0
                    break
                time.sleep(0.1)
            if (p.sent, p.failed, p.unknown) != (args.recipients, 0, 0):
                raise RuntimeError(f"not all sent: {p}\n{workers.tail()}")
            with urllib.request.urlopen(f"{endpoint.url}/_counts", timeout=10) as resp:
                counts = json.load(resp)
            want = {"requests": args.recipients, "distinct": args.recipients, "repeated": 0, "unreadable": 0}
            if counts != want:
                raise RuntimeError(f"the endpoint's own count is {counts}, expected {want}")
            chunk_seconds: list[float] = []
            idle_gaps: list[float] = []
            for i in range(n_workers):
                durations, gaps = task_times(workers.log(i))
                chunk_seconds += durations
                idle_gaps += gaps
        n = args.recipients
        return Result(n_workers, secs, completed, n / secs, (w1 - w0) / n * 1e6, (s1 - s0) / n * 1e6,
                      (m1 - m0) / n * 1e6, {k: (v1[k] - v0[k]) / n * 1e6 for k in v0}, (m1 - m0) / secs / (os.cpu_count() or 1) * 100,
                      load_before, load_after, startup, chunk_seconds, idle_gaps)
    finally:
        if workers is not None:
            workers.stop()
        endpoint.stop()
        delete_queue(BROKER, queue)
        with contextlib.suppress(Exception):
            drop_schema(schema)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=5_000, help="recipients per campaign (default 5,000)")
    parser.add_argument("--runs", type=int, default=2, help="rounds over the worker counts (default 2)")
    parser.add_argument("--workers", default="1,2,3", help="worker counts (default 1,2,3)")
    parser.add_argument("--chunk", type=int, default=250, help="recipients per chunk task (default 250)")
    parser.add_argument("--concurrency", type=int, default=32, help="the campaign's concurrency (default 32)")
    parser.add_argument("--latency", type=float, default=0.05, help="endpoint delay, seconds (default 0.05)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per run")
    parser.add_argument("--profile", metavar="DIR", help="record every worker with py-spy while the "
                        "campaign runs (raw stacks per thread into DIR; `pip install py-spy`; slows the workers)")
    parser.add_argument("--profile-idle", action="store_true", help="with --profile: every thread's samples, "
                        "waiting or not (default: only the GIL holder's)")
    parser.add_argument("--pool", default="threads", help="the workers' pool: threads (default), solo "
                        "or prefork (prefork: the task CPU of its child processes is not counted)")
    parser.add_argument("--slots", type=int, default=1, help="tasks a worker runs at once (its --concurrency; "
                        "default 1; 2 with --pool threads)")
    parser.add_argument("--logs", metavar="DIR", help="keep the workers' logs in DIR")
    parser.add_argument("--smoke", action="store_true", help="200 recipients, chunks of 50, one run")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (for bench/run.py)")
    args = parser.parse_args()
    if args.json and (why := missing_services()):
        print(json.dumps({"skipped": why}))
        return 0
    if args.smoke:
        args.recipients, args.chunk, args.runs = 200, 50, 1
    counts = [int(x) for x in args.workers.split(",")]
    print(f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"load average {loadavg()}")
    print(f"# campaign of {args.recipients:,} recipients, endpoint answering after {args.latency * 1000:.0f} ms; "
          f"workers: celery worker --pool={args.pool} --concurrency={args.slots} (tasks at a time), campaign "
          f"concurrency {args.concurrency} per chunk task, chunk_size {args.chunk}, PostgreSQL store "
          f"{PG_DSN}, RabbitMQ {BROKER.rsplit('@', 1)[-1]}; {args.runs} run(s) per worker count, interleaved")
    results: list[Result] = []
    for r in range(args.runs):
        for n in counts:
            res = one_run(n, args)
            results.append(res)
            done = f"{res.completed_after:.2f}" if res.completed_after is not None else "-"
            print(f"run {r + 1} workers {n}: {res.seconds:6.2f} s, {res.rate:7.1f} msg/s (completed at {done} s; "
                  f"start-up {res.startup:.1f} s) | CPU/msg: workers {res.worker_cpu_us:.0f} us, endpoint "
                  f"{res.server_cpu_us:.0f} us, "
                  + "".join(f"{k} {v:.0f} us, " for k, v in res.servers_cpu_us.items())
                  + f"machine {res.machine_cpu_us:.0f} us ({res.machine_busy_pct:.0f}% "
                  f"of all cores busy) | load {res.load_before} -> {res.load_after} | chunk tasks: "
                  f"{len(res.chunk_seconds)}, median {statistics.median(res.chunk_seconds or [0]):.2f} s; workers "
                  f"waiting between tasks {sum(res.idle_gaps):.2f} s in all, longest {max(res.idle_gaps or [0]):.2f} s "
                  f"| each recipient received once (endpoint's count)", flush=True)
    print("\n| workers | msg/s min | msg/s median | ratio to 1 (medians) | worker CPU/msg (median) |"
          " machine busy (median) |")
    print("|---|---|---|---|---|---|")
    base = None
    for n in counts:
        rates = [x.rate for x in results if x.workers == n]
        med = statistics.median(rates)
        base = base if base is not None else (med if n == counts[0] else None)
        ratio = f"{med / base:.2f}x" if base else "-"
        wcpu = statistics.median(x.worker_cpu_us for x in results if x.workers == n)
        busy = statistics.median(x.machine_busy_pct for x in results if x.workers == n)
        print(f"| {n} | {min(rates):,.0f} | {med:,.0f} | {ratio} | {wcpu:,.0f} us | {busy:.0f}% |")
    if args.json:
        one = results[-1]
        print(json.dumps({
            "name": f"workers-{one.workers}", "workers": one.workers, "n": args.recipients, "ok": args.recipients,
            "rate": one.rate, "seconds": one.seconds, "cpu_us": one.worker_cpu_us,
            "machine_cpu_us": one.machine_cpu_us, "servers_cpu_us": one.servers_cpu_us,
            "machine_busy_pct": one.machine_busy_pct, "load_before": one.load_before,
            "chunk": args.chunk, "concurrency": args.concurrency, "pool": args.pool, "slots": args.slots,
            "latency": args.latency,
        }))
    return 0


def missing_services() -> str | None:
    """Why the measurement cannot run here (no Celery, RabbitMQ or PostgreSQL), or None."""
    import importlib.util
    import socket
    from urllib.parse import urlsplit

    for module in ("celery", "psycopg"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'smsgate[celery,postgres]')"
    for name, url, port in (("RabbitMQ", BROKER, 5672), ("PostgreSQL", PG_DSN, 5432)):
        where = urlsplit(url)
        try:
            socket.create_connection((where.hostname or "127.0.0.1", where.port or port), timeout=2).close()
        except OSError as exc:
            return f"{name} is not reachable at {where.hostname}:{where.port or port} ({exc.strerror or exc})"
    return None


if __name__ == "__main__":
    sys.exit(main())
