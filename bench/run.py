#!/usr/bin/env python3
"""Regenerate docs/performance.md: ``.venv/bin/python bench/run.py``.

One command runs every benchmark (each measurement in a fresh interpreter, the
runs interleaved), prints the report and writes it to docs/performance.md:

* send throughput against two loopback endpoints (nginx with a fixed JSON body,
  and a server answering after 50 ms) for raw aiohttp, raw httpx (async, sync),
  smsgate's aiohttp adapter (``smsgate.aio.AiohttpClient``) raw, smsgate's
  AsyncGateway on httpx and on the adapter, smsgate's Gateway,
  and the peer libraries py-smsframework and apprise (installed into their own
  venv, bench/.work/peers-venv, never into the project);
* delivery-report ingestion (``Store.apply_reports``) into SQLite, and into
  PostgreSQL when ``smsgate.store.postgres`` exists and 127.0.0.1:5432/test answers;
* campaign preparation of a generated 1,000,000-row CSV against 100,000 opt-outs
  (bench/prep.py: wall time, rows/s, CPU, peak memory);
* one campaign dispatched by 1, 2 and 3 Celery workers (bench/workers.py: RabbitMQ, PostgreSQL,
  the 50 ms endpoint; skipped when RabbitMQ or PostgreSQL is not there);
* a cProfile of AsyncGateway.send_many on the aiohttp adapter, summarised.

Options: ``--runs 5`` (min/median/max over runs), ``--n 20000`` (messages per
send measurement, an upper bound: slow clients are measured on fewer, see
bench/workloads.py), ``--budget`` seconds per measurement, ``--only ROWS``,
``--prep-rows 1000000``, ``--no-peers``, ``--no-install`` (no apt-get / pip), ``--no-write``, and
``--smoke``: tiny sizes, one run, finishes in well under a minute (CI runs
``python bench/run.py --smoke --no-write``; it fails only if a measurement breaks).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
PEER_VENV = WORK / "peers-venv"
PEER_PACKAGES = ["smsframework", "apprise"]
FAST_EXTRA = ["aiohttp>=3.10.6"]  # = the smsgate[fast] extra
DOC = ROOT / "docs" / "performance.md"
ANALYSIS = HERE / "analysis.md"


def _ensure_interpreter() -> None:
    """Re-run under the project's .venv when started by an interpreter without smsgate."""
    if importlib.util.find_spec("smsgate") is not None:
        return
    venv_python = ROOT / ".venv" / "bin" / "python"
    if venv_python.exists() and not os.environ.get("SMSGATE_BENCH_REEXEC"):
        os.environ["SMSGATE_BENCH_REEXEC"] = "1"  # never loop
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    raise SystemExit("bench: smsgate is not importable: run it with the project's venv (.venv/bin/python)")


_ensure_interpreter()
sys.path.insert(0, str(HERE))

from servers import Endpoint, start_fast, start_latency  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ setup
def ensure_fast_extra(install: bool) -> str | None:
    """Make aiohttp importable; returns why not, or None."""
    missing = [m for m in ("aiohttp",) if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    if not install:
        return f"{', '.join(missing)} not installed (pip install 'smsgate[fast]')"
    log(f"installing the smsgate[fast] extra's packages ({', '.join(FAST_EXTRA)}) into {sys.prefix}")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *FAST_EXTRA], capture_output=True,
                          text=True)
    importlib.invalidate_caches()
    if done.returncode != 0 or any(importlib.util.find_spec(m) is None for m in missing):
        return f"could not install {', '.join(FAST_EXTRA)}: {done.stderr.strip()[-300:]}"
    return None


class PeerVenv:
    """bench/.work/peers-venv with smsframework and apprise, built in a background thread."""

    def __init__(self) -> None:
        self.python = PEER_VENV / "bin" / "python"
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def _ready(self) -> bool:
        if not self.python.exists():
            return False
        probe = "import smsframework, apprise"
        return subprocess.run([str(self.python), "-c", probe], capture_output=True).returncode == 0

    def _build(self) -> None:
        try:
            if self._ready():
                return
            WORK.mkdir(parents=True, exist_ok=True)
            if not self.python.exists():
                base = getattr(sys, "_base_executable", sys.executable)
                subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True, capture_output=True, timeout=300)
            subprocess.run([str(self.python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True,
                           capture_output=True, timeout=600)
            if not self._ready():
                self.error = "peer packages do not import after installing them"
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            self.error = f"could not build {PEER_VENV}: {exc} {detail.decode(errors='replace')[-300:]}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._build, daemon=True)
        self._thread.start()

    def wait(self) -> str | None:
        if self._thread is not None:
            self._thread.join()
        return self.error

    def versions(self) -> dict[str, str]:
        code = ("import importlib.metadata as m, json; "
                f"print(json.dumps({{p: m.version(p) for p in {PEER_PACKAGES!r}}}))")
        with contextlib.suppress(Exception):
            out = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, timeout=60)
            return dict(json.loads(out.stdout))
        return {}


# ------------------------------------------------------------ measurement
@dataclass
class Row:
    key: str
    label: str
    workload: str
    endpoint: str  # "fast" | "latency" | "" (ingestion)
    concurrency: int = 1
    limit: int = 0
    peer: bool = False
    needs_fast: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [r["rate"] for r in self.results]

    def median(self) -> float | None:
        return statistics.median(self.rates()) if self.results else None


def plan_rows(fast_c: int, lat_c: int) -> list[Row]:
    rows: list[Row] = []
    for ep, c, lim in (("fast", fast_c, 0), ("latency", lat_c, lat_c)):
        rows += [
            Row(f"{ep}:aiohttp", "raw aiohttp ClientSession (ceiling)", "aiohttp", ep, c, lim, needs_fast=True),
            Row(f"{ep}:httpx-async", "raw httpx.AsyncClient", "httpx-async", ep, c, lim),
            Row(f"{ep}:aio-raw", "raw smsgate.aio.AiohttpClient (httpx Request/Response on aiohttp)", "aio-raw",
                ep, c, lim, needs_fast=True),
            Row(f"{ep}:httpx-sync", "raw httpx.Client (sequential)", "httpx-sync", ep),
            Row(f"{ep}:gw-async-httpx", "smsgate AsyncGateway.send_many, httpx.AsyncClient", "gw-async-httpx",
                ep, c, lim),
            Row(f"{ep}:gw-async-aio", "smsgate AsyncGateway.send_many, AiohttpClient (the default)", "gw-async-aio",
                ep, c, lim, needs_fast=True),
            Row(f"{ep}:gw-sync", "smsgate Gateway.send_many (sequential)", "gw-sync", ep),
            Row(f"{ep}:camp-async", "smsgate campaign run(), AsyncGateway (AiohttpClient)", "camp-async",
                ep, c, lim, needs_fast=True),
            Row(f"{ep}:camp-sync", "smsgate campaign run(), Gateway (an httpx.Client a thread)", "camp-sync",
                ep, c, 0),
            Row(f"{ep}:smsframework", "py-smsframework (sequential)", "smsframework", ep, peer=True),
            Row(f"{ep}:apprise", "apprise json:// (sequential)", "apprise", ep, peer=True),
        ]
    rows += [
        Row("ingest:sqlite", "SQLiteStore.apply_reports", "ingest-sqlite", ""),
        Row("ingest:postgres", "PostgresStore.apply_reports", "ingest-postgres", ""),
        Row("prep:sqlite", "campaign preparation (CSV, SQLite store)", "prep", ""),
    ]
    rows += [Row(f"workers:{n}", f"{n} Celery worker{'s' if n > 1 else ''}", "workers", "", n) for n in (1, 2, 3)]
    return rows


def run_one(row: Row, args: argparse.Namespace, urls: dict[str, str], peer_python: Path) -> None:
    timeout = args.timeout
    if row.workload == "workers":  # bench/workers.py: one worker count, one run, its own endpoint
        cmd = [sys.executable, str(HERE / "workers.py"), "--workers", str(row.concurrency), "--runs", "1",
               "--json", *(["--smoke"] if args.smoke else [])]
        timeout = max(timeout, 600.0)
    elif row.workload == "prep":
        cmd = [sys.executable, str(HERE / "prep.py"), "--rows", str(args.prep_rows)]
        timeout = max(timeout, 900.0)  # the first run also generates the CSV
    elif row.workload.startswith("ingest"):
        cmd = [sys.executable, str(HERE / "workloads.py"), row.workload, "--n", str(args.ingest_n),
               "--batch", str(args.batch)]
    else:
        script = HERE / ("peers.py" if row.peer else "workloads.py")
        python = str(peer_python) if row.peer else sys.executable
        min_n = args.min_n if row.concurrency == 1 else max(args.min_n, row.concurrency)
        cmd = [python, str(script), row.workload, "--url", urls[row.endpoint], "--n", str(args.n),
               "--min-n", str(min(min_n, args.n)), "--budget", str(args.budget),
               "--pilot-seconds", str(args.pilot_seconds)]
        if not row.peer:
            cmd += ["--concurrency", str(row.concurrency), "--limit", str(row.limit)]
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row.errors.append(f"timed out after {timeout:.0f}s")
        log(f"{row.key}: TIMEOUT")
        return
    if done.returncode != 0:
        row.errors.append(done.stderr.strip()[-600:] or f"exit code {done.returncode}")
        log(f"{row.key}: FAILED\n{done.stderr.strip()[-600:]}")
        return
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if "skipped" in out:
        row.skipped = out["skipped"]
        log(f"{row.key}: skipped ({row.skipped})")
        return
    if out["ok"] != out["n"]:
        row.errors.append(f"only {out['ok']} of {out['n']} succeeded")
    if out.get("problems"):
        row.errors.append("; ".join(out["problems"]))
    row.results.append(out)
    log(f"{row.key}: {out['rate']:,.0f}/s over {out['n']:,} (cpu {out['cpu_us']:.0f} us/item, "
        f"wall {time.monotonic() - t0:.1f}s)")


def run_profile(args: argparse.Namespace, url: str, concurrency: int, out: Path) -> dict[str, Any] | None:
    n = args.profile_n
    cmd = [sys.executable, str(HERE / "workloads.py"), "gw-async-aio", "--url", url, "--n", str(n),
           "--min-n", str(n), "--budget", "1e9", "--pilot-seconds", str(args.pilot_seconds),
           "--concurrency", str(concurrency), "--profile", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        log(f"profile FAILED: {done.stderr.strip()[-600:]}")
        return None
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------- profile
AREAS = [
    ("smsgate/store/", "smsgate store (Python side)"),
    ("sqlite3", "sqlite3 (C: execute, commit)"),
    ("smsgate/aio.py", "transport glue (smsgate.aio adapter)"),
    ("smsgate/", "smsgate gateway, policy, provider adapter"),
    ("benchprovider", "smsgate gateway, policy, provider adapter"),
    ("phonenumbers", "phonenumbers (parse + validate)"),
    ("pydantic", "pydantic models"),
    ("httpx", "httpx (Request, Response, client)"),
    ("aiohttp", "aiohttp (client, connector, parser)"),
    ("yarl", "aiohttp (client, connector, parser)"),
    ("multidict", "aiohttp (client, connector, parser)"),
    ("pluggy", "pluggy hooks"),
    ("poll' of 'select.epoll", "waiting for the network (epoll)"),
    ("asyncio", "asyncio event loop, sockets"),
    ("selectors", "asyncio event loop, sockets"),
    ("_socket", "asyncio event loop, sockets"),
    ("json", "json encode/decode"),
    ("logging", "logging"),
]
#: Own time of builtins and of these stdlib helpers is charged to their callers' areas.
_GENERIC = ("python3.11/re/", "python3.11/contextlib", "python3.11/enum", "python3.11/typing",
            "python3.11/functools", "python3.11/abc", "python3.11/dataclasses", "python3.11/datetime",
            "python3.11/copy", "python3.11/weakref", "python3.11/_weakrefset")


#: Areas whose builtins keep their own time (C code that is the point of the area).
_SELF_CHARGED = ("sqlite3 (C: execute, commit)", "waiting for the network (epoll)", "asyncio event loop, sockets",
                 "pydantic models", "aiohttp (client, connector, parser)")


def _area(filename: str, func: str) -> str | None:
    text = f"{filename} {func}"
    for needle, name in AREAS:
        if needle in text:
            return name
    return None


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "/bench/", "python3.11/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _charge(raw: dict[Any, Any], key: Any, depth: int = 0) -> dict[str, float]:
    """Areas that a function's own time belongs to (generic helpers: their callers')."""
    filename, _line, func = key
    area = _area(filename, func)
    generic = filename == "~" or any(g in filename for g in _GENERIC)
    if area is not None and (not generic or area in _SELF_CHARGED):
        return {area: 1.0}
    callers = raw[key][4]
    if depth > 4 or not callers:
        return {area or "other (stdlib, builtins)": 1.0}
    total = sum(v[2] for v in callers.values()) or 1.0
    out: dict[str, float] = {}
    for ckey, cstat in callers.items():
        if ckey not in raw:
            continue
        for a, share in _charge(raw, ckey, depth + 1).items():
            out[a] = out.get(a, 0.0) + share * cstat[2] / total
    return out or {area or "other (stdlib, builtins)": 1.0}


def summarise_profile(path: Path, n: int) -> dict[str, Any]:
    """Own time by area (builtins and generic stdlib charged to callers) and the top functions.

    Shares are of the whole profiled time (the measured send_many, including
    time spent waiting in epoll). Coroutines count one call per resumption.
    """
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())  # own times add up to the profiled time
    areas: dict[str, float] = {}
    funcs = []
    for key, (_cc, nc, tt, ct, _callers) in raw.items():
        filename, line, func = key
        for area, share in _charge(raw, key).items():
            areas[area] = areas.get(area, 0.0) + tt * share
        where = f"{_short(filename)}:{line}({func})" if filename != "~" else func
        funcs.append((tt, ct, nc, where, filename))
    funcs.sort(reverse=True)
    smsgate_cum = sorted(
        ((ct, nc, f"{_short(fn)}:{line}({func})") for (fn, line, func), (_c, nc, _t, ct, _cl) in raw.items()
         if "/smsgate/" in fn and func not in ("worker", "_drive", "run", "send_many")),
        reverse=True,
    )
    return {"total": total, "root": total, "n": n, "areas": sorted(areas.items(), key=lambda kv: -kv[1]),
            "top": funcs[:18], "smsgate": smsgate_cum[:14]}


# ---------------------------------------------------------------- report
def fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    load = ""
    with contextlib.suppress(OSError):
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"cpu": cpu, "cores": str(os.cpu_count()), "mem": mem, "os": platform.platform(), "load": load}


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("smsgate", "httpx", "httpcore", "aiohttp", "pydantic", "phonenumbers",
                 "uvicorn"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


@dataclass
class Target:
    name: str
    value: float | None
    goal: float
    detail: str
    unit: str = ""  # "/s", "x", " s", " MB"
    lower_is_better: bool = False

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.goal if self.lower_is_better else self.value >= self.goal

    def shown(self) -> str:
        assert self.value is not None
        if self.unit == "/s":
            return f"{self.value:,.0f}/s"
        if self.unit == " s":
            return f"{self.value:.1f} s"
        if self.unit == " MB":
            return f"{self.value:.0f} MB"
        return f"{self.value:.2f}x"

    def status(self) -> str:
        if self.met:
            return "met"
        assert self.value is not None
        if self.lower_is_better:
            return (f"**missed** by {100 * (self.value / self.goal - 1):.0f}% "
                    f"(needs {self.value / self.goal:.1f}x less)")
        short = self.goal / self.value if self.value else float("inf")
        return (f"**missed** by {100 * (1 - self.value / self.goal):.0f}% "
                f"(needs {short:.1f}x the measured throughput)")


def targets(rows: dict[str, Row]) -> list[Target]:
    def med(key: str) -> float | None:
        return rows[key].median() if key in rows else None

    def r(a: str, b: str) -> float | None:
        x, y = med(a), med(b)
        return x / y if x and y else None

    out = []
    for ep, label, goal in (("fast", "nginx", 0.6), ("latency", "50 ms", 0.8)):
        out.append(Target(f"AsyncGateway (aiohttp adapter) >= {goal}x raw aiohttp, {label}",
                          r(f"{ep}:gw-async-aio", f"{ep}:aiohttp"), goal, "ratio of medians"))
    for ep, label in (("fast", "nginx"), ("latency", "50 ms")):
        out.append(Target(f"sync Gateway >= 0.9x raw httpx sync, {label}",
                          r(f"{ep}:gw-sync", f"{ep}:httpx-sync"), 0.9, "ratio of medians"))
    for ep, label in (("fast", "nginx"), ("latency", "50 ms")):
        for kind in ("async", "sync"):
            out.append(Target(f"campaign run() ({kind}) >= 0.8x AsyncGateway.send_many, {label}",
                              r(f"{ep}:camp-{kind}", f"{ep}:gw-async-aio"), 0.8, "ratio of medians"))
    for ep, label in (("fast", "nginx"), ("latency", "50 ms")):
        for peer, pname in (("smsframework", "py-smsframework"), ("apprise", "apprise")):
            out.append(Target(f"AsyncGateway (aiohttp adapter) >= 10x {pname}, {label}",
                              r(f"{ep}:gw-async-aio", f"{ep}:{peer}"), 10.0, "ratio of medians"))
    out.append(Target("delivery-report ingestion >= 50,000 events/s, SQLite", med("ingest:sqlite"), 50_000,
                      "events/s (median)", "/s"))
    out.append(Target("delivery-report ingestion >= 80,000 events/s, PostgreSQL", med("ingest:postgres"), 80_000,
                      "events/s (median)", "/s"))
    out.append(Target("one campaign on 3 Celery workers >= 2.5x one worker (50 ms endpoint)",
                      r("workers:3", "workers:1"), 2.5, "ratio of medians"))
    prep = rows.get("prep:sqlite")
    full = prep is not None and prep.results and prep.results[0]["n"] >= 1_000_000
    seconds = statistics.median(x["seconds"] for x in prep.results) if prep and full else None
    rss = statistics.median(x["peak_rss_mb"] for x in prep.results) if prep and full else None
    out.append(Target("1M-row campaign preparation <= 15 s", seconds, 15.0, "wall seconds (median)", " s", True))
    out.append(Target("1M-row campaign preparation <= 250 MB peak RSS", rss, 250.0, "MB (median)", " MB", True))
    return out


def render_prep(w: Any, args: argparse.Namespace, row: Row) -> None:
    """The campaign-preparation section (bench/prep.py)."""
    n = getattr(args, "prep_rows", None) or 1_000_000
    w(f"## Campaign preparation ({n:,}-row CSV)")
    w("")
    w(f"`tenant.campaigns.create(..., audience=CsvAudience(path))` then `preview()`, through the public API, on a "
      f"generated {n:,}-row CSV (bench/prep.py: 70% Nigerian numbers typed locally in six formats, 15% South "
      "African and 15% UK numbers in international forms; 5% invalid rows of seven kinds, 5% duplicates typed "
      f"differently, 1% with an empty template variable) against {max(1, n // 10):,} opt-outs in a SQLite store "
      "file (about 10% of the distinct numbers are opted out). Routing: `+234` by prefix, ZA and GB by "
      "country (a region lookup per number). Each run in a fresh interpreter, on a fresh copy of the store; "
      "the preview's counts are checked against the generator's.")
    w("")
    w("- wall: from `create()` to the preview; CPU: the process and its writer process (a file this size is "
      "written by a child process, `smsgate.campaigns.writer_process`); main thread: the preparing thread's own "
      "CPU (the rest is the writer thread, which hands chunks to the child, and the child)")
    w("- peak memory: the larger of the process's peak RSS and the peak of the summed PSS of the process and "
      "its writer process (sampled every 100 ms; PSS counts pages shared with another process once)")
    w("")
    w("| rows | runs | wall s min | wall s median | wall s max | rows/s median | CPU s (all) | CPU s (main thread) "
      "| CPU s (writer process) | peak memory MB min / median / max | preview (recipients; skipped) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    if row.skipped or not row.results:
        why = row.skipped or "; ".join(row.errors)[:300] or "not run"
        w(f"| {n:,} | 0 | skipped: {why} | | | | | | | | |")
        w("")
        return
    res = row.results
    secs = [x["seconds"] for x in res]
    mem = [x["peak_rss_mb"] for x in res]

    def med(key: str) -> float:
        return statistics.median(x[key] for x in res)

    last = res[-1]
    skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(last["preview_skipped"].items()))
    flag = " (count mismatch!)" if row.errors else ""
    w(f"| {last['n']:,}{flag} | {len(res)} | {min(secs):.1f} | **{statistics.median(secs):.1f}** | {max(secs):.1f} | "
      f"{fmt_rate(statistics.median(x['rate'] for x in res))} | {med('cpu_s'):.1f} | {med('cpu_main_thread_s'):.1f} | "
      f"{med('cpu_workers_s'):.1f} | {min(mem):.0f} / **{statistics.median(mem):.0f}** / {max(mem):.0f} | "
      f"{last['recipients']:,}; {skipped} |")
    w("")


def render_workers(w: Any, rows: list[Row]) -> None:
    """The section on one campaign dispatched by 1, 2 and 3 Celery workers (bench/workers.py)."""
    w("## One campaign on 1, 2 and 3 Celery workers")
    w("")
    first = next((r.results[0] for r in rows if r.results), None)
    if first is None:
        why = next((r.skipped or "; ".join(r.errors)[:300] for r in rows if r.skipped or r.errors), "not run")
        w(f"Not measured in this run: {why}.")
        w("")
        return
    w(f"bench/workers.py (run `.venv/bin/python bench/workers.py` for the per-run detail): a campaign of "
      f"{first['n']:,} recipients dispatched with `smsgate.contrib.celery` by N real `celery worker "
      f"--pool={first['pool']} --concurrency={first['slots']}` processes on RabbitMQ, with a PostgreSQL store, "
      f"chunk tasks of {first['chunk']} recipients, up to {first['concurrency']} requests in flight per chunk "
      f"task, against an endpoint answering after {first['latency'] * 1000:.0f} ms; the workers are started and "
      "ready before the clock starts, which stops when every recipient is `sent`. Each run checks from the "
      "endpoint's own count that every recipient was received exactly once. Worker CPU: the worker "
      "processes' CPU per message; machine: every process on the machine (PostgreSQL, RabbitMQ and the "
      "endpoint included), per message.")
    w("")
    w("| workers | runs | msg/s min | msg/s median | msg/s max | vs 1 worker (medians) | worker CPU us/msg "
      "| machine CPU us/msg | all cores busy |")
    w("|---|---|---|---|---|---|---|---|---|")
    base = rows[0].median()
    for row in rows:
        if row.skipped or not row.results:
            w(f"| {row.concurrency} | 0 | skipped: {row.skipped or '; '.join(row.errors)[:160]} | | | | | | |")
            continue
        rates = row.rates()
        med = statistics.median(rates)
        res = row.results

        def m(key: str, res: list[dict[str, Any]] = res) -> float:
            return statistics.median(x[key] for x in res)

        flag = " (errors!)" if row.errors else ""
        w(f"| {row.concurrency}{flag} | {len(rates)} | {fmt_rate(min(rates))} | **{fmt_rate(med)}** | "
          f"{fmt_rate(max(rates))} | {ratio(med, base)} | {m('cpu_us'):,.0f} | {m('machine_cpu_us'):,.0f} | "
          f"{m('machine_busy_pct'):.0f}% |")
    w("")
    w("docs/scaling.md explains what limits these figures on a 2-core machine and plans for 10 million "
      "messages a day.")
    w("")


def render(args: argparse.Namespace, rows: list[Row], eps: dict[str, Endpoint], info: dict[str, Any],
           profile: dict[str, Any] | None, prof_result: dict[str, Any] | None) -> str:
    by = {r.key: r for r in rows}
    mach, vers = info["machine"], info["versions"]
    lines: list[str] = []
    w = lines.append
    w("# Performance")
    w("")
    w("<!-- generated by bench/run.py: edit bench/run.py or bench/analysis.md, not this file -->")
    w("")
    w("Regenerate with one command (about 15 minutes; it installs nginx-light with apt-get and the peer")
    w("libraries into `bench/.work/peers-venv` when they are missing):")
    w("")
    w("```")
    w(".venv/bin/python bench/run.py            # --runs 5 --n 20000; --smoke for a seconds-long check")
    w("```")
    w("")
    if args.smoke:
        w("> **SMOKE RUN**: tiny sizes, one run. These numbers only show the benchmark works; do not quote them.")
        w("")
    w(f"- date: {info['date']}")
    w(f"- machine: {mach['cpu']}, {mach['cores']} cores, {mach['mem']}; {mach['os']}")
    w(f"- load average when the run started: {mach['load']} (other processes share these cores: "
      "compare the ratios, measured in the same run, more than absolute numbers)")
    w(f"- Python {vers.pop('python')}; " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    if info.get("peers"):
        w("- peers (own venv): " + ", ".join(f"{k} {v}" for k, v in info["peers"].items()))
    w(f"- runs: {args.runs} (interleaved; min / median / max below); up to {args.n:,} messages per send "
      f"measurement, fewer for slow clients (each run sized to about {args.budget:g} s after a pilot that also "
      "warms connections and caches); every measurement in a fresh interpreter")
    w("- client CPU: the client process's CPU time per message during the measured run (less sensitive to "
      "other load than wall-clock rates)")
    w("")
    w("Endpoints, on 127.0.0.1:")
    w("")
    w(f"- **fast**: {eps['fast'].kind}; async clients at concurrency {by['fast:aiohttp'].concurrency}")
    w(f"- **latency**: {eps['latency'].kind}; async clients at concurrency {by['latency:aiohttp'].concurrency} "
      f"with a {by['latency:aiohttp'].limit}-connection pool")
    w("")
    w("Connection pools on the fast endpoint are each client's default (aiohttp 100 connections; httpx 100, 20 "
      "kept alive; `smsgate.aio.AiohttpClient` 256, which is AsyncGateway's default client when aiohttp is "
      "installed).")
    w("")
    w("Every client sends the same request: `POST /messages` with JSON `{to, text, from}` and an `X-Api-Key`")
    w("header, and reads `{id, status}` from the JSON answer. smsgate goes through its whole send path:")
    w("number normalisation (national input `0803...` with region NG, distinct numbers), opt-out check")
    w("(10,000 opted-out numbers in the store), prefix routing, the provider adapter (bench/benchprovider.py)")
    w("and the SQLite message log (a file in WAL mode) with its status history.")
    w("")
    for ep, title in (("fast", "Send throughput: fast endpoint (nginx)"),
                      ("latency", "Send throughput: latency endpoint (50 ms)")):
        w(f"## {title}")
        w("")
        w("| client | concurrency | messages / run | msg/s min | msg/s median | msg/s max | client CPU us/msg "
          "| vs raw aiohttp | vs raw httpx sync | vs smsframework | vs apprise |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        base = {k: by[f"{ep}:{k}"].median() for k in ("aiohttp", "httpx-sync", "smsframework", "apprise")}
        for row in rows:
            if row.endpoint != ep:
                continue
            conc = f"{row.concurrency}" if row.concurrency > 1 else "1"
            if row.skipped or not row.results:
                why = row.skipped or ("; ".join(row.errors)[:160] or "not run")
                w(f"| {row.label} | {conc} | skipped: {why} | | | | | | | | |")
                continue
            rates = row.rates()
            med = statistics.median(rates)
            ns = sorted({r["n"] for r in row.results})
            n_txt = f"{ns[0]:,}" if len(ns) == 1 else f"{ns[0]:,}-{ns[-1]:,}"
            cpu = statistics.median(r["cpu_us"] for r in row.results)
            flag = " (errors!)" if row.errors else ""
            w(f"| {row.label}{flag} | {conc} | {n_txt} | {fmt_rate(min(rates))} | **{fmt_rate(med)}** | "
              f"{fmt_rate(max(rates))} | {cpu:,.0f} | {ratio(med, base['aiohttp'])} | "
              f"{ratio(med, base['httpx-sync'])} | {ratio(med, base['smsframework'])} | "
              f"{ratio(med, base['apprise'])} |")
        w("")
    w("## Delivery-report ingestion")
    w("")
    w(f"{args.ingest_n:,} submitted messages (with history) in the store, then one delivered report for each, in "
      f"random order, applied with `store.apply_reports(tenant, batch)` in batches of {args.batch:,}; events/s "
      "counts reports applied per second (building the report objects is not timed).")
    w("")
    w("| store | events/s min | events/s median | events/s max | CPU us/event | notes |")
    w("|---|---|---|---|---|---|")
    for key in ("ingest:sqlite", "ingest:postgres"):
        row = by[key]
        if row.skipped or not row.results:
            w(f"| {row.label} | skipped: {row.skipped or '; '.join(row.errors)[:200]} | | | | |")
            continue
        rates = row.rates()
        cpu = statistics.median(r["cpu_us"] for r in row.results)
        w(f"| {row.label} | {fmt_rate(min(rates))} | **{fmt_rate(statistics.median(rates))}** | "
          f"{fmt_rate(max(rates))} | {cpu:,.1f} | {row.results[-1]['note']} |")
    w("")
    render_prep(w, args, by.get("prep:sqlite") or Row("prep:sqlite", "", "prep", "", skipped="not in this run"))
    render_workers(w, [by[k] for k in ("workers:1", "workers:2", "workers:3") if k in by])
    w("## Targets")
    w("")
    w("| target | measured | status |")
    w("|---|---|---|")
    for t in targets(by):
        if t.value is None:
            w(f"| {t.name} | - | not measured |")
            continue
        w(f"| {t.name} | {t.shown()} | {t.status()} |")
    w("")
    if profile is not None and prof_result is not None:
        n = profile["n"]
        root = profile["root"] or profile["total"]
        w("## Where AsyncGateway's time goes (cProfile)")
        w("")
        w(f"AsyncGateway.send_many of {n:,} messages on the aiohttp adapter (`AiohttpClient`) against the fast "
          f"endpoint, concurrency {by['fast:gw-async-aio'].concurrency}, under cProfile (which slows Python code "
          f"down: {prof_result['rate']:,.0f} msg/s here). Own time by area, as a share of the profiled "
          "time (builtins and generic stdlib helpers such as `re` and `contextlib` are charged to their "
          "callers):")
        w("")
        w("| area | share | us/msg (profiled) |")
        w("|---|---|---|")
        for area, secs in profile["areas"][:14]:
            w(f"| {area} | {100 * secs / root:.1f}% | {secs / n * 1e6:.0f} |")
        w("")
        w("Top functions by own time:")
        w("")
        w("| function | own share | calls/msg | cumulative share |")
        w("|---|---|---|---|")
        for tt, ct, nc, where, _fn in profile["top"]:
            w(f"| `{where}` | {100 * tt / root:.1f}% | {nc / n:.1f} | {100 * ct / root:.1f}% |")
        w("")
        w("smsgate functions by cumulative time (including what they call; the coroutines that only "
          "drive plans are left out, and a coroutine or generator counts one call per resumption):")
        w("")
        w("| function | cumulative share | calls/msg |")
        w("|---|---|---|")
        for ct, nc, where in profile["smsgate"]:
            w(f"| `{where}` | {100 * ct / root:.1f}% | {nc / n:.2f} |")
        w("")
    if ANALYSIS.exists():
        w(ANALYSIS.read_text().strip())
        w("")
    return "\n".join(lines)


# ------------------------------------------------------------ saved runs
_SAVED_ARGS = ("smoke", "runs", "n", "budget", "ingest_n", "batch", "prep_rows")


def save_results(args: argparse.Namespace, rows: list[Row], eps: dict[str, Endpoint], info: dict[str, Any],
                 profile: dict[str, Any] | None, prof_result: dict[str, Any] | None) -> None:
    """Keep the raw results (bench/.work/results-<time>.json) so the report can be re-rendered."""
    with contextlib.suppress(OSError):
        WORK.mkdir(parents=True, exist_ok=True)
        data = {
            "args": {k: getattr(args, k) for k in _SAVED_ARGS},
            "rows": [{k: getattr(r, k) for k in Row.__dataclass_fields__} for r in rows],
            "endpoints": {k: e.kind for k, e in eps.items()},
            "info": info, "profile": profile, "prof_result": prof_result,
        }
        path = WORK / f"results-{time.strftime('%Y%m%d-%H%M%S')}{'-smoke' if args.smoke else ''}.json"
        path.write_text(json.dumps(data, indent=1, default=str))
        log(f"raw results saved to {path}")


class _Kind:
    def __init__(self, kind: str) -> None:
        self.kind = kind


def rerender(args: argparse.Namespace) -> int:
    data = json.loads(args.render.read_text())
    for k, v in data["args"].items():
        setattr(args, k, v)
    rows = [Row(**r) for r in data["rows"]]
    eps: Any = {k: _Kind(v) for k, v in data["endpoints"].items()}
    profile = data["profile"]
    if profile is not None:
        profile["top"] = [tuple(t) for t in profile["top"]]
        profile["smsgate"] = [tuple(t) for t in profile["smsgate"]]
    report = render(args, rows, eps, data["info"], profile, data["prof_result"])
    print(report)
    if not args.no_write:
        args.output.write_text(report + "\n")
        log(f"wrote {args.output}")
    return 0


# ------------------------------------------------------------------ main
def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(f"bench: stopped by signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run, well under a minute")
    parser.add_argument("--no-write", action="store_true", help="print the report, do not write docs/")
    parser.add_argument("--output", type=Path, default=DOC)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--n", type=int, help="messages per send measurement (upper bound; default 20,000)")
    parser.add_argument("--min-n", type=int, help="lower bound on messages per measurement")
    parser.add_argument("--budget", type=float, help="target seconds per measured run (default 6)")
    parser.add_argument("--pilot-seconds", type=float)
    parser.add_argument("--ingest-n", type=int, help="messages in the ingestion benchmark (default 50,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="reports per apply_reports call")
    parser.add_argument("--prep-rows", type=int, help="rows in the campaign-preparation CSV (default 1,000,000)")
    parser.add_argument("--latency", type=float, default=0.05, help="latency endpoint delay, seconds")
    parser.add_argument("--concurrency", type=int, help="async concurrency on the fast endpoint (default 64)")
    parser.add_argument("--latency-concurrency", type=int, help="on the latency endpoint (default 256)")
    parser.add_argument("--profile-n", type=int, help="messages in the profiled run (default 5,000)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-install", action="store_true", help="never apt-get/pip install anything")
    parser.add_argument("--only", help="comma-separated row keys or prefixes (e.g. fast:,ingest:sqlite)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds before one measurement is killed")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="only re-render the report from a saved bench/.work/results-*.json")
    args = parser.parse_args()
    if args.render:
        return rerender(args)
    smoke = args.smoke
    defaults = dict(runs=1, n=300, min_n=20, budget=0.2, pilot_seconds=0.1, ingest_n=3_000, prep_rows=5_000,
                    concurrency=16, latency_concurrency=32, profile_n=300) if smoke else dict(
        runs=5, n=20_000, min_n=50, budget=6.0, pilot_seconds=1.0, ingest_n=50_000, prep_rows=1_000_000,
        concurrency=64, latency_concurrency=256, profile_n=5_000)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    install = not args.no_install
    started = time.monotonic()

    peers = PeerVenv()
    if not args.no_peers:
        peers.start()  # pip runs while nginx starts (and, in smoke mode, while measurements run)
        if not smoke:
            log("preparing the peer venv (bench/.work/peers-venv) ...")
            peers.wait()
    fast_missing = ensure_fast_extra(install)

    rows = plan_rows(args.concurrency, args.latency_concurrency)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        for row in rows:
            if not any(row.key == w or row.key.startswith(w) for w in wanted):
                row.skipped = "not selected (--only)"
    for row in rows:
        if row.needs_fast and fast_missing:
            row.skipped = fast_missing
    by_key = {r.key: r for r in rows}
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="smsgate-bench-"))
    eps: dict[str, Endpoint] = {}
    profile = prof_result = None
    try:
        eps["fast"] = start_fast(tmp, install=install and not smoke)
        if fast_missing:
            raise SystemExit(f"bench: the latency server needs aiohttp: {fast_missing}")
        eps["latency"] = start_latency(args.latency)
        urls = {k: e.url for k, e in eps.items()}
        log(f"fast endpoint: {eps['fast'].kind} at {urls['fast']}; latency endpoint at {urls['latency']}")
        local_rows = [r for r in rows if not r.peer]
        peer_rows = [r for r in rows if r.peer]
        for run in range(args.runs):
            log(f"run {run + 1}/{args.runs}")
            for row in local_rows:
                if row.skipped is None:
                    run_one(row, args, urls, peers.python)
            if not args.no_peers and run == 0:
                err = peers.wait()
                if err:
                    for row in peer_rows:
                        row.skipped = err
            for row in peer_rows:
                if args.no_peers:
                    row.skipped = row.skipped or "--no-peers"
                if row.skipped is None:
                    run_one(row, args, urls, peers.python)
        if not args.no_peers and not peers.error:
            info["peers"] = peers.versions()
        wanted_profile = not args.only or "profile" in args.only or by_key["fast:gw-async-aio"].skipped is None
        if not args.no_profile and not fast_missing and wanted_profile:
            log(f"profiling AsyncGateway.send_many ({args.profile_n:,} messages) ...")
            stats_file = tmp / "gw.prof"
            prof_result = run_profile(args, urls["fast"], args.concurrency, stats_file)
            if prof_result is not None:
                profile = summarise_profile(stats_file, args.profile_n)
    finally:
        for e in eps.values():
            e.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    save_results(args, rows, eps, info, profile, prof_result)
    report = render(args, rows, eps, info, profile, prof_result)
    print(report)
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")
        log(f"wrote {args.output}")
    failed = [r for r in rows if r.errors]
    log(f"done in {time.monotonic() - started:.0f}s" + (f"; FAILED: {[r.key for r in failed]}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
