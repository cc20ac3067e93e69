#!/usr/bin/env python3
"""Campaign-preparation benchmark: ``python bench/prep.py [--rows 1000000] [--runs 1]``.

Generates (once, deterministically, into ``bench/.work/``) a CSV audience of
``--rows`` rows and a SQLite store seeded with ``--optouts`` opted-out numbers
(default: rows / 10, i.e. 100,000 for a million rows), then measures, in a fresh
interpreter per run, what a user does to prepare a campaign through the public API::

    with Gateway(config) as gw:
        camp = gw.tenant("bench").campaigns.create("prep", text=..., audience=CsvAudience(path))
        camp.preview()

The store of each run is a fresh copy of the seeded one (copying is not timed).
Each run prints one JSON line with the wall time, rows/s, CPU time (the process
and its writer process), peak RSS and the preview's counts, which
are checked against the counts the generator expects (a mismatch fails the run).

The audience (``phone,name,city``; the header is line 1):

* 70% Nigerian numbers typed locally (``0803 123 4567``, ``08031234567``,
  ``0803-123-4567``, ``(0803) 123 4567``, ``2348031234567``, ``+234 803 123 4567``),
  15% South African numbers in international form (``+27 82 123 4567``,
  ``+27821234567``, ``0027 82 123 4567``, ``27821234567``) and 15% UK mobiles
  (``+44 7911 123456``, ``+447911123456``, ``0044 7911 123456``);
* 5% invalid rows: too short, too long, a letter typed into the number, an
  unknown country code, an invalid Nigerian range, an empty phone cell, a row
  with a missing column;
* 5% duplicates of an earlier number, usually typed differently;
* 1% rows with an empty ``name`` (skipped: missing template variable);
* about 10% of the distinct valid numbers are opted out, and the opt-out list
  also holds numbers that are not in the file.

The tenant (region NG) routes ``+234`` to one provider and the countries ZA and GB
(looked up per number) to another, each with a price per segment.

``python bench/prep.py --profile FILE`` runs one preparation under cProfile.
``--scattered`` generates (into files of their own) subscriber numbers in no order within each
prefix, as a real audience's are: the default ones ascend, the store's unique key index's best case.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
SEED = 20261123
TEXT = "Hi {name}, {city} store: 20% off everything today only. Reply STOP to opt out."
GEN_VERSION = 1  # bump when the generated data changes

NG_PREFIXES = ("803", "806", "813", "816", "703", "706", "810", "814", "903", "906", "805", "807", "815",
               "811", "905", "802", "808", "812", "701", "902", "907", "708", "809", "817", "818", "909", "908")
ZA_PREFIXES = ("60", "61", "62", "63", "71", "72", "73", "74", "76", "78", "79", "81", "82", "83", "84")
UK_PREFIXES = ("7911", "7912", "7400", "7401", "7500", "7501", "7800", "7801", "7900", "7901")
CITIES = ("Lagos", "Abuja", "Kano", "Ibadan", "Port Harcourt", "Johannesburg", "Cape Town", "Durban", "London",
          "Manchester", "Enugu", "Benin City", "Pretoria", "Leeds", "Kaduna", "Owerri")
NAMES = ("Ada", "Bayo", "Chinedu", "Dami", "Emeka", "Funmi", "Gbenga", "Halima", "Ifeanyi", "Jide", "Kemi",
         "Lerato", "Musa", "Ngozi", "Olu", "Precious", "Sipho", "Thandi", "Uche", "Zanele", "Amelia", "Oliver",
         "Harry", "Isla", "Tunde", "Yetunde", "Zoë", "Ọlájídé", "Chidìnmà", "Nomvula")


def log(msg: str) -> None:
    print(f"[prep {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ data
def country(ident: int) -> str:
    k = ident % 20
    return "NG" if k < 14 else "ZA" if k < 17 else "GB"


#: ``--scattered``: each prefix's subscriber numbers in no order (as a real audience's are), not ascending
SCATTERED = False


def _subscriber(n: int, digits: int) -> int:
    """``n``'s subscriber number: ``n`` itself, or (``SCATTERED``) a bijection of ``n`` onto the
    ``digits``-digit numbers that scatters consecutive ones (the multiplier is prime to 10)."""
    modulus = 10**digits
    return (n * 3_639_541 + 1_234_567) % modulus if SCATTERED else n % modulus


def e164(ident: int) -> str:
    """The distinct valid number of ``ident`` (injective within each country).

    Consecutive idents take turns over the country's prefixes; within a prefix the subscriber
    numbers ascend, so the store's unique key index gets one append point a prefix (52 in all),
    its best case; ``SCATTERED`` (``--scattered``) puts them in no order, as a real audience's.
    """
    c = country(ident)
    if c == "NG":
        return f"+234{NG_PREFIXES[ident % len(NG_PREFIXES)]}{_subscriber(ident // len(NG_PREFIXES), 7):07d}"
    if c == "ZA":
        return f"+27{ZA_PREFIXES[ident % len(ZA_PREFIXES)]}{_subscriber(ident // len(ZA_PREFIXES), 7):07d}"
    return f"+44{UK_PREFIXES[ident % len(UK_PREFIXES)]}{_subscriber(ident // len(UK_PREFIXES), 6):06d}"


def typed(ident: int, style: int) -> str:
    """``ident``'s number as a person might have typed it (style picks the format)."""
    number = e164(ident)
    c = country(ident)
    if c == "NG":
        nsn = number[4:]
        forms = (f"0{nsn[:3]} {nsn[3:6]} {nsn[6:]}", f"0{nsn}", f"0{nsn[:3]}-{nsn[3:6]}-{nsn[6:]}",
                 f"(0{nsn[:3]}) {nsn[3:6]} {nsn[6:]}", f"234{nsn}", f"+234 {nsn[:3]} {nsn[3:6]} {nsn[6:]}",
                 f"0{nsn}", f"0{nsn[:3]} {nsn[3:6]} {nsn[6:]}")
    elif c == "ZA":
        nsn = number[3:]
        forms = (f"+27 {nsn[:2]} {nsn[2:5]} {nsn[5:]}", number, f"0027 {nsn[:2]} {nsn[2:5]} {nsn[5:]}", f"27{nsn}")
    else:
        nsn = number[3:]
        forms = (f"+44 {nsn[:4]} {nsn[4:]}", number, f"0044 {nsn[:4]} {nsn[4:]}")
    return forms[style % len(forms)]


def invalid(j: int, rng: random.Random) -> tuple[str, str]:
    """An invalid row's (phone, kind): every kind is rejected by smsgate.phone."""
    kind = j % 7
    digits = f"{rng.randrange(10_000_000):07d}"
    if kind == 0:
        return f"0803{digits[:4]}", "short"  # 8 digits
    if kind == 1:
        return f"0803{digits}9", "long"  # 12 digits
    if kind == 2:
        pos = rng.randrange(7)
        return f"0803 {(digits[:pos] + 'OIlSBZ'[j % 6] + digits[pos + 1:])}", "letter"
    if kind == 3:
        return f"+999{digits}", "country"
    if kind == 4:
        return f"+2340000{digits[:6]}", "range"
    if kind == 5:
        return "", "empty"
    return f"0803{digits}", "columns"  # written without its city column


def generate(path: Path, rows: int, optouts: int) -> dict[str, Any]:
    """Write the CSV and return the expected counts and the opt-out list."""
    rng = random.Random(SEED)
    seen: list[int] = []  # first occurrence of each ident, in order
    seen_set: set[int] = set()
    skipped = {"invalid": 0, "duplicate": 0, "missing_variable": 0, "opted_out": 0}
    recipients = 0
    next_ident = 0
    samples: dict[str, list[str]] = {}
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["phone", "name", "city"])
        for i in range(rows):
            r = rng.random()
            name = NAMES[rng.randrange(len(NAMES))] + ("" if rng.random() < 0.5 else f" {i % 997}")
            city = CITIES[rng.randrange(len(CITIES))]
            if r < 0.05:
                phone, kind = invalid(i, rng)
                samples.setdefault(kind, []).append(phone)
                skipped["invalid"] += 1
                w.writerow([phone, name] if kind == "columns" else [phone, name, city])
                continue
            if r < 0.10 and seen:
                ident = seen[rng.randrange(len(seen))]
                skipped["duplicate"] += 1
                w.writerow([typed(ident, rng.randrange(8)), name, city])
                continue
            ident = next_ident
            next_ident += 1
            seen.append(ident)
            seen_set.add(ident)
            if r < 0.11:
                name = ""
                skipped["missing_variable"] += 1
            elif opted(ident):
                skipped["opted_out"] += 1
            else:
                recipients += 1
            w.writerow([typed(ident, rng.randrange(8)), name, city])
    tmp.replace(path)
    listed = [e164(ident) for ident in seen if opted(ident)]
    extra = next_ident
    while len(listed) < optouts:
        if opted(extra):
            listed.append(e164(extra))
        extra += 1
    return {"rows": rows, "recipients": recipients, "skipped": skipped, "optouts": listed[:optouts],
            "invalid_samples": {k: v[:50] for k, v in samples.items()}, "idents": next_ident}


def opted(ident: int) -> bool:
    """About one distinct number in ten is opted out (a fixed hash of its ident)."""
    return (ident * 2654435761) % 1000 < 100


def check_data(meta: dict[str, Any]) -> None:
    """Assert the generator's assumptions with smsgate.phone (not timed)."""
    from smsgate import phone
    from smsgate.errors import InvalidPhoneNumber

    rng = random.Random(1)
    idents = list(range(min(3000, meta["idents"]))) + [rng.randrange(meta["idents"]) for _ in range(3000)]
    for ident in idents:
        for style in range(8):
            got = phone.normalize(typed(ident, style), "NG")
            assert got == e164(ident), (typed(ident, style), got, e164(ident))
        assert phone.region_of(e164(ident)) == country(ident), e164(ident)
    for kind, values in meta["invalid_samples"].items():
        for value in values:
            if kind in ("empty", "columns"):  # rejected by the CSV reader, not by the number
                continue
            try:
                phone.normalize(value, "NG")
            except InvalidPhoneNumber:
                continue
            raise AssertionError(f"invalid sample {value!r} ({kind}) normalises")


def prepare_data(rows: int, optouts: int) -> tuple[Path, Path, dict[str, Any]]:
    """The CSV, the seeded store and the expected counts (generated once, then reused)."""
    WORK.mkdir(parents=True, exist_ok=True)
    stem = f"prep-v{GEN_VERSION}-{rows}-{optouts}" + ("-scattered" if SCATTERED else "")
    csv_path, db_path, meta_path = WORK / f"{stem}.csv", WORK / f"{stem}.db", WORK / f"{stem}.json"
    if csv_path.exists() and db_path.exists() and meta_path.exists():
        return csv_path, db_path, json.loads(meta_path.read_text())
    log(f"generating {rows:,} rows and {optouts:,} opt-outs into {WORK} ...")
    t0 = time.monotonic()
    meta = generate(csv_path, rows, optouts)
    check_data(meta)
    from smsgate.models import OptOut
    from smsgate.store import open_store

    db_path.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{db_path}")
    try:
        numbers = meta.pop("optouts")
        for k in range(0, len(numbers), 10_000):
            store.add_optouts("bench", [OptOut(phone=p, reason="STOP", source="bench") for p in numbers[k:k + 10_000]])
        assert store.count_optouts("bench") == optouts
    finally:
        store.close()
    with contextlib.suppress(FileNotFoundError):  # leave one self-contained file to copy
        for suffix in ("-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink()
    meta_path.write_text(json.dumps(meta, indent=1))
    log(f"generated in {time.monotonic() - t0:.0f}s: {csv_path.stat().st_size / 1e6:.0f} MB CSV, "
        f"{meta['recipients']:,} recipients expected, skipped {meta['skipped']}")
    return csv_path, db_path, meta


# ----------------------------------------------------------- measurement
def config(store: str) -> dict[str, Any]:
    def provider(price: float, currency: str) -> dict[str, Any]:
        return {"plugin": "benchjson", "base_url": "http://127.0.0.1:9", "credentials": {"api_key": "k"},
                "sender": "BENCH", "price_per_segment": price, "currency": currency}

    tenant = {
        "default_region": "NG",
        "providers": {"local": provider(4.0, "NGN"), "intl": provider(0.05, "USD")},
        "routes": [{"prefixes": ["+234"], "providers": ["local"]},
                   {"countries": ["ZA", "GB"], "providers": ["intl"]}],
    }
    return {"store": store, "tenants": {"bench": tenant}}


def _descendants(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                stack.extend(int(c) for c in task.read_text().split())
    return out


def _tree_pss_kb(pid: int) -> int:
    """Proportional set size of ``pid`` and its descendants (a child shares pages
    with its parent: summing their RSS would count those twice); 0 when unavailable."""
    total = 0
    for p in _descendants(pid):
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
                break
    return total


class RssSampler:
    """Samples this process tree's memory (PSS) every ``interval`` seconds (catches workers).

    Only while the process has children: alone, its own peak RSS (``ru_maxrss``, which
    ``measure`` takes as well) is the figure, and reading ``smaps_rollup`` (a walk of the
    page tables, ~1-3 ms for this process) ten times a second only took CPU from the
    measured run (0.2-0.4 s in a 200,000-row run).
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            if len(_descendants(pid)) > 1:
                self.peak_kb = max(self.peak_kb, _tree_pss_kb(pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(csv_path: Path, db_path: Path, meta: dict[str, Any], profile: str | None) -> dict[str, Any]:
    """One preparation through the public API in this (fresh) process."""
    sys.path.insert(0, str(HERE))
    from benchprovider import plugins

    from smsgate import Gateway
    from smsgate.campaigns import CsvAudience

    gw = Gateway(config(f"sqlite:///{db_path}"), plugins=plugins())
    tenant = gw.tenant("bench")
    rss_start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    with RssSampler() as sampler:
        t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
        if prof is not None:
            prof.enable()
        camp = tenant.campaigns.create("prep", text=TEXT, audience=CsvAudience(csv_path))
        preview = camp.preview()
        if prof is not None:
            prof.disable()
        seconds, cpu, main_cpu = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
    gw.close()
    if prof is not None and profile:
        prof.dump_stats(profile)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = preview.total_rows
    problems = []
    if n != meta["rows"]:
        problems.append(f"total_rows {n} != {meta['rows']}")
    if preview.recipients != meta["recipients"]:
        problems.append(f"recipients {preview.recipients} != {meta['recipients']}")
    want = {k: v for k, v in meta["skipped"].items() if v}
    if preview.skipped != want:
        problems.append(f"skipped {preview.skipped} != {want}")
    return {
        "name": "prep-sqlite", "n": n, "ok": n if not problems else 0, "seconds": seconds,
        "rate": n / seconds if seconds else 0.0,
        "cpu_s": cpu + children.ru_utime + children.ru_stime,
        "cpu_us": (cpu + children.ru_utime + children.ru_stime) / n * 1e6 if n else 0.0,
        "cpu_process_s": cpu,
        "cpu_main_thread_s": main_cpu,
        "cpu_workers_s": children.ru_utime + children.ru_stime,
        "peak_rss_mb": max(self_peak_kb, sampler.peak_kb) / 1024,
        "start_rss_mb": rss_start_kb / 1024,
        "self_peak_rss_mb": self_peak_kb / 1024,
        "workers_peak_rss_mb": children.ru_maxrss / 1024,
        "tree_peak_pss_mb": sampler.peak_kb / 1024,
        "recipients": preview.recipients, "preview_skipped": preview.skipped, "segments": preview.segments,
        "problems": problems, "note": "",
    }


def run_measurement(rows: int, optouts: int, profile: str | None = None,
                    env: dict[str, str] | None = None, timeout: float = 900.0,
) -> dict[str, Any]:
    """Prepare the data, then measure one preparation in a fresh interpreter."""
    csv_path, db_path, _meta = prepare_data(rows, optouts)
    run_db = WORK / f"prep-run-{os.getpid()}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{run_db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(db_path, run_db)
    try:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", "--csv", str(csv_path), "--db",
               str(run_db), "--meta", str(WORK / f"{csv_path.stem}.json")]
        if profile:
            cmd += ["--profile", profile]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-2000:] or f"exit code {done.returncode}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{run_db}{suffix}").unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--optouts", type=int, help="opted-out numbers in the store (default rows / 10)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", help="write a cProfile of the preparation to this file (one run)")
    parser.add_argument("--scattered", action="store_true",
                        help="subscriber numbers in no order within each prefix (a real audience's), not ascending")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--meta", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        meta = json.loads(args.meta.read_text())
        print(json.dumps(measure(args.csv, args.db, meta, args.profile)))
        return 0
    global SCATTERED
    SCATTERED = args.scattered
    optouts = args.optouts if args.optouts is not None else max(1, args.rows // 10)
    failed = False
    for run in range(args.runs):
        out = run_measurement(args.rows, optouts, args.profile if run == 0 else None)
        log(f"run {run + 1}: {out['n']:,} rows in {out['seconds']:.2f}s = {out['rate']:,.0f} rows/s, "
            f"cpu {out['cpu_s']:.2f}s ({out['cpu_us']:.1f} us/row; main thread {out['cpu_main_thread_s']:.2f}s, "
            f"workers {out['cpu_workers_s']:.2f}s), peak RSS {out['peak_rss_mb']:.0f} MB"
            + (f"; PROBLEMS: {out['problems']}" if out["problems"] else ""))
        failed = failed or bool(out["problems"])
        print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
