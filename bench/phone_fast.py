#!/usr/bin/env python3
"""Speed of ``smsgate.phone.normalize`` with and without its fast path (smsgate._phonefast).

``.venv/bin/python bench/phone_fast.py [--n 100000] [--runs 3] [--seed 1]``

The workload: ``--n`` mostly distinct numbers, about half Nigerian, a quarter South African
and a quarter US, each written the way a CSV column holds them -- national digits, national
with spaces/dashes/parentheses, E.164, international format, ``00`` + digits, bare
international digits -- and about 3% of them invalid (a digit dropped). National input is
read with its own country as the default region, international input with ``NG`` (a
Nigerian tenant). Every number is valid or invalid as phonenumbers says (checked, not timed).

Three paths are timed over the whole list, best of ``--runs``, the normalisation cache
cleared before each run so every call is a miss (as in a campaign of distinct numbers):

* ``reference``: ``phone._normalize_slow`` (phonenumbers parse + is_valid_number), i.e.
  ``normalize()`` with the fast path disabled;
* ``fast path``: ``phone._normalize_fast``, falling back to the reference when it declines;
* ``normalize()``: the public function (cache look-up + fast path + fallback), and the same
  with the fast path disabled.

The script asserts that both give the same result for every input before timing.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import phonenumbers

from smsgate import phone
from smsgate.errors import InvalidPhoneNumber

# mobile and geographic prefixes in use (the numbers are checked valid one by one anyway)
# fmt: off
NG_PREFIXES = ("803", "806", "813", "816", "703", "706", "810", "814", "903", "906", "805",
               "807", "815", "905", "802", "808", "812", "701", "708", "902", "907", "901")
ZA_PREFIXES = ("82", "83", "84", "72", "73", "74", "76", "79", "81", "71", "61", "62", "63",
               "64", "65", "66", "11", "21", "31", "12")
US_AREAS = ("201", "212", "213", "305", "312", "404", "415", "469", "512", "617", "646", "702",
            "713", "718", "773", "818", "917", "929", "972")
# fmt: on


def _national_number(rng: random.Random) -> tuple[str, str, str]:
    """(region, national prefix + nsn as typed nationally, E.164) of a random valid number."""
    while True:
        pick = rng.random()
        if pick < 0.5:
            region, cc = "NG", "234"
            nsn = rng.choice(NG_PREFIXES) + f"{rng.randrange(10**7):07d}"
            national = "0" + nsn
        elif pick < 0.75:
            region, cc = "ZA", "27"
            nsn = rng.choice(ZA_PREFIXES) + f"{rng.randrange(10**7):07d}"
            national = "0" + nsn
        else:
            region, cc = "US", "1"
            nsn = rng.choice(US_AREAS) + str(rng.randrange(2, 10)) + f"{rng.randrange(10**6):06d}"
            national = nsn
        if phonenumbers.is_valid_number(phonenumbers.parse("+" + cc + nsn)):
            return region, national, "+" + cc + nsn


def _typed(rng: random.Random, region: str, national: str, e164: str) -> tuple[str, str]:
    """(raw, default region): the number in one of the forms people and exports use."""
    style = rng.randrange(8)
    if style == 0:
        return national, region
    if style == 1:
        return f"{national[:4]} {national[4:7]} {national[7:]}", region
    if style == 2:
        return f"({national[:3]}) {national[3:6]}-{national[6:]}", region
    if style == 3:
        return e164, "NG"
    if style == 4:
        number = phonenumbers.parse(e164)
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL), "NG"
    if style == 5:
        return "00" + e164[1:], "NG"
    if style == 6:
        return e164[1:], "NG"
    return national.replace(national[1:4], national[1:4] + "-", 1), region


def workload(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (raw, region) inputs, about 3% of them invalid."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for _ in range(n):
        region, national, e164 = _national_number(rng)
        raw, reading = _typed(rng, region, national, e164)
        if rng.random() < 0.03:  # a typo: one digit dropped
            digits = [i for i, ch in enumerate(raw) if ch.isdigit()]
            drop = rng.choice(digits[2:])
            raw = raw[:drop] + raw[drop + 1 :]
        out.append((raw, reading))
    return out


def _time(label: str, run: Callable[[], object], runs: int, n: int) -> float:
    best = float("inf")
    for _ in range(runs):
        phone._normalize_cached.cache_clear()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<42} {best:7.3f} s  {n / best:>10,.0f} numbers/s  {best / n * 1e6:6.2f} us/number")
    return best


def main() -> None:
    """Build the workload, check fast == reference on it, time both, print the speed-ups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    cases = workload(args.n, args.seed)
    distinct = len(set(cases))
    fast, slow = phone._normalize_fast, phone._normalize_slow
    answered = invalid = 0
    for raw, region in cases:
        expected = slow(raw, region)[0]
        got = fast(raw, region)
        assert got is None or got == expected, (raw, region, got, expected)
        answered += got is not None
        invalid += expected is None
    print(
        f"{len(cases):,} inputs ({distinct:,} distinct, {invalid:,} invalid); "
        f"the fast path answers {answered:,} ({answered / len(cases):.1%}), "
        f"declines {len(cases) - answered:,} (the invalid ones and what it does not model)"
    )

    def reference() -> None:
        for raw, region in cases:
            slow(raw, region)

    def fast_then_reference() -> None:
        for raw, region in cases:
            if fast(raw, region) is None:
                slow(raw, region)

    def public() -> None:
        normalize = phone.normalize
        for raw, region in cases:
            try:
                normalize(raw, region)
            except InvalidPhoneNumber:
                pass

    n, runs = len(cases), args.runs
    slow_time = _time("reference (_normalize_slow, phonenumbers)", reference, runs, n)
    fast_time = _time("fast path, reference when it declines", fast_then_reference, runs, n)
    public_time = _time("normalize() (cache misses)", public, runs, n)
    phone._normalize_fast = lambda raw, region: None  # type: ignore[assignment]
    try:
        public_slow_time = _time("normalize() with the fast path disabled", public, runs, n)
    finally:
        phone._normalize_fast = fast
    print(f"speed-up, fast path vs reference:           {slow_time / fast_time:5.1f}x")
    print(f"speed-up, normalize() with vs without it:   {public_slow_time / public_time:5.1f}x")


if __name__ == "__main__":
    main()
