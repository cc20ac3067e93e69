"""Attacks on this session's traffic-control changes (max_limit_wait, giving slots back),
proven from the vendor's side or from the limits' own state."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import pytest

from smsgate.traffic import AsyncGate, Charge, KeyState, LocalTraffic, Usage
from smsgate.traffic.limits import Limit, spacing_wait

T = TypeVar("T")


class HeldBackend:
    """A backend in another thread (as the store and Redis are) whose ``hold``-th call
    waits, already running, until ``go`` is set."""

    def __init__(self, hold: int) -> None:
        self.inner = LocalTraffic()
        self.hold = hold
        self.calls = 0
        self.entered = threading.Event()
        self.go = threading.Event()

    def traffic(self, tenant: str, horizons: Any, fn: Callable[[dict[str, KeyState], float], T]) -> T:
        self.calls += 1
        if self.calls == self.hold:
            self.entered.set()
            self.go.wait(5)
        return self.inner.traffic(tenant, horizons, fn)


def in_flight(backend: LocalTraffic, key: str) -> int:
    def count(states: dict[str, KeyState], now: float) -> int:
        return sum(1 for e in states[key].entries if e.ended(now) is None)
    return backend.traffic("acme", {key: 60.0}, count)


async def cancel_during(backend: HeldBackend, gate: AsyncGate) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(gate.acquire())
    await loop.run_in_executor(None, backend.entered.wait, 5)
    task.cancel()  # the backend call goes on in its thread
    await asyncio.sleep(0.05)
    backend.go.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)  # the held call is done


def test_a_request_cancelled_while_its_admission_runs_is_not_left_in_flight() -> None:
    """An async send cancelled while the store (or Redis) admits it in a worker thread: the
    admission completes there, recording the request as in flight, but nothing is sent and
    nothing releases it; a ``max_concurrency = 1`` provider was then held full for the whole
    lease (a minute and more) though nothing was in flight."""
    backend = HeldBackend(hold=2)  # 1: reserve, 2: admit
    charge = Charge("provider:one", (), Usage(1, 1), concurrency=1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        run = lambda fn, *a: loop.run_in_executor(None, partial(fn, *a))  # noqa: E731
        await cancel_during(backend, AsyncGate(backend, "acme", [charge], 60.0, run))

    asyncio.run(main())
    assert in_flight(backend.inner, "provider:one") == 0


def test_a_request_cancelled_while_its_slot_is_reserved_gives_the_slot_back() -> None:
    """Cancelled while the reservation runs in the backend's thread: the slot it took is
    given back (as one cancelled while waiting for it is), not held against the next send."""
    backend = HeldBackend(hold=4)  # 1-3: the first request (reserve, admit, release), 4: the second's reserve
    rule = Limit(rate=1, per=30).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        run = lambda fn, *a: loop.run_in_executor(None, partial(fn, *a))  # noqa: E731
        first = AsyncGate(backend, "acme", [charge], 60.0, run)
        await first.release(await first.acquire())
        await cancel_during(backend, AsyncGate(backend, "acme", [charge], 60.0, run))

    asyncio.run(main())

    def spacing(states: dict[str, KeyState], now: float) -> float:
        return spacing_wait(states["provider:one"], rule, now)

    # the next request waits for the slot after the first (~30 s), not after the cancelled one (~60 s)
    assert backend.inner.traffic("acme", {"provider:one": 30.0}, spacing) < 31
