"""Traffic control's acceptance test: a big run through two limited providers while one fails.

10,000 messages of a campaign go through a route of two providers limited to 100/s
and 50/s. The first fails 20% of its requests in every way a vendor fails (refused
unprocessed, throttled, processed with the answer lost, connection reset before and
after processing) and is down for 10 s mid-run. Proven from the emulators' own
records: every recipient accepted exactly once across both vendors, none lost, and
no vendor ever received more than its limit in any 1-second window.
"""

from __future__ import annotations

import asyncio
import collections
import os
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import AsyncGateway
from smsgate.campaigns import Progress
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer

#: The acceptance size; SMSGATE_ACCEPTANCE_MESSAGES=1000 makes a quick local run.
MESSAGES = int(os.environ.get("SMSGATE_ACCEPTANCE_MESSAGES", "10000"))


def sizes(ctl: EmulatorControl) -> list[tuple[float, int]]:
    """(arrival time, messages carried) of every send request the vendor received."""
    out = []
    for r in ctl.requests(method="POST"):
        out.append((r.at, len(r.json()["messages"]) if r.path.endswith("/bulk") else 1))
    return sorted(out)


def busiest(events: list[tuple[float, int]], period: float = 1.0) -> int:
    """The most messages any window ``[t, t + period)`` holds (two pointers over arrivals)."""
    best = total = 0
    lo = 0
    for at, n in events:
        total += n
        while events[lo][0] <= at - period:
            total -= events[lo][1]
            lo += 1
        best = max(best, total)
    return best


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ten_thousand_messages_through_two_limited_providers_while_the_first_fails_and_goes_down(
        tmp_path: Path) -> None:
    took1: dict[str, dict[str, Any]] = {}
    took2: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(took1)) as s1, LiveServer(create_emulator(took2)) as s2:
        c1 = EmulatorControl(s1.url)
        # down for 10 s, starting a few seconds into the run (first rule: it wins while active) ...
        c1.fault(kind="status", status=503, after=8, duration=10, count=None)
        # ... and 20% of the other requests fail, in every way a vendor fails
        c1.fault(kind="status", status=503, probability=0.05, seed=1, count=None)  # refused, not processed
        c1.fault(kind="status", status=429, retry_after=0.2, probability=0.05, seed=2, count=None)  # throttled
        c1.fault(kind="status", status=500, process=True, probability=0.04, seed=3, count=None)  # answer lost
        c1.fault(kind="reset", probability=0.03, seed=4, count=None)  # reset before processing
        c1.fault(kind="reset", process=True, probability=0.03, seed=5, count=None)  # reset after processing

        def provider(url: str, rate: int, **extra: Any) -> dict[str, Any]:
            return {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
                    "limits": [{"rate": rate}], "timeout": 5, **extra}

        cfg = {"store": f"sqlite:///{tmp_path / 'acceptance.db'}",
               "tenants": {"acme": {"default_region": "NG", "routes": [{"providers": ["one", "two"]}],
                                    "providers": {
                                        # its vendor documents 503 as "not processed" (refused: fails over)
                                        "one": provider(s1.url, 100, not_processed_statuses=[503],
                                                        breaker={"failures": 5, "window": 10, "cooldown": 2}),
                                        "two": provider(s2.url, 50)}}}}
        numbers = [f"0803{i:07d}" for i in range(MESSAGES)]
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())

        async def run() -> Progress:
            async with AsyncGateway(cfg, plugins=pm) as gw:
                camp = await gw.tenant("acme").campaigns.create(
                    "acceptance", text="hello", audience=numbers, mode="fanout", batch_size=200, concurrency=32)
                return await camp.run()

        final = asyncio.run(run())
        arrivals1, arrivals2 = sizes(c1), sizes(EmulatorControl(s2.url))

    # nothing lost, nothing pending or unknown
    assert (final.sent, final.failed, final.unknown, final.pending) == (MESSAGES, 0, 0, 0)
    # exactly once, from the vendors' own records (what each one accepted, by recipient)
    accepted = collections.Counter(m["to"] for m in [*took1.values(), *took2.values()])
    assert set(accepted) == {f"+234{n[1:]}" for n in numbers}
    assert accepted.most_common(1)[0][1] == 1
    # both carried traffic; the first took part of it despite failing and going down
    assert took1 and took2
    # no window of either vendor ever held more than its limit (every attempt counts, faulted ones too)
    assert busiest(arrivals1) <= 100
    assert busiest(arrivals2) <= 50
