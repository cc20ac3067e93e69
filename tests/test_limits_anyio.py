"""A request's rate-limit and concurrency places under anyio's cancellation.

asyncio cancels a task once; anyio's cancel scopes (``anyio.move_on_after`` / ``fail_after``,
the task groups Starlette and FastAPI run handlers in) cancel it again at every await until it
leaves them. A request cut while its gate's backend call ran (a store, Redis: in a worker
thread) waited for that call and then gave back what it took, but the wait itself was cut by
the next cancellation, so nothing was given back: an admission stayed "in flight" until its
lease ended (a concurrency cap of 1: every later request of the instance waited that long),
a reserved slot until its reservation lease ended. The gate's cleanups now run shielded
(:func:`smsgate._shield.shielded`); a native second ``Task.cancel()`` still cuts them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from smsgate.store.sqlite import SQLiteStore
from smsgate.traffic.gate import AsyncGate
from smsgate.traffic.limits import Charge, KeyState, Rule, Usage, count_in_flight

T = TypeVar("T")
KEY = "provider:main"


class SlowCalls:
    """The SQLite store as a traffic backend whose calls numbered in ``slow`` (1-based) take
    ``delay`` seconds more before they run: a busy store or Redis, as a request is cut."""

    def __init__(self, store: SQLiteStore, slow: set[int], delay: float) -> None:
        self.store, self.slow, self.delay = store, slow, delay
        self.calls = 0
        #: backend calls that have ended
        self.ended = 0
        self._lock = threading.Lock()

    def traffic(self, tenant: str, horizons: Mapping[str, float],
                fn: Callable[[dict[str, KeyState], float], T]) -> T:
        with self._lock:
            self.calls += 1
            n = self.calls
        try:
            if n in self.slow:
                time.sleep(self.delay)
            return self.store.traffic(tenant, horizons, fn)
        finally:
            with self._lock:
                self.ended += 1


def _state(store: SQLiteStore, horizon: float) -> tuple[int, list[str]]:
    """Requests in flight on :data:`KEY`, and its reserved slots' names, as the store has them."""
    def read(states: dict[str, KeyState], now: float) -> tuple[int, list[str]]:
        state = states[KEY]
        return count_in_flight(state.entries, now), sorted(n for n in state.marks if " slot " in n)
    return store.traffic("t", {KEY: horizon}, read)


async def _cut_acquire(gate: AsyncGate, after: float) -> None:
    """``gate.acquire()`` under ``anyio.move_on_after(after)``; waits for the backend calls
    that were running to end (they go on in their threads)."""
    with anyio.move_on_after(after) as scope:
        await gate.acquire()
    assert scope.cancelled_caught, "the acquire was not cut: the test's timing is off"
    await asyncio.sleep(0.8)


def _gate(backend: Any, charges: list[Charge]) -> AsyncGate:
    loop = asyncio.get_running_loop()
    return AsyncGate(backend, "t", charges, 30.0, lambda fn, *a: loop.run_in_executor(None, fn, *a))


@pytest.mark.parametrize("slow_call", [1, 2], ids=["cut-while-reserving", "cut-while-admitting"])
def test_a_request_cut_by_an_anyio_scope_while_its_limits_are_asked_gives_its_place_back(
        tmp_path: Path, slow_call: int) -> None:
    """A concurrency cap of 1 and a rule of 1 message a second: the acquire's first backend
    call (its slot's reservation) or second (its admission as in flight) is slow, and an
    anyio scope cuts the acquire meanwhile. Afterwards the store holds no request in flight
    and no reserved slot. Before: the admission stayed in flight for its 30 s lease (every
    later request of the instance waited), or the slot stayed reserved."""
    store = SQLiteStore(str(tmp_path / "t.db"))
    store.migrate()
    charges = [Charge(KEY, (Rule("messages", 1, 1.0, 1.0),), Usage(1, 1), concurrency=1)]
    horizon = charges[0].horizon

    async def main() -> tuple[int, list[str]]:
        gate = _gate(SlowCalls(store, {slow_call}, 0.4), charges)
        await _cut_acquire(gate, 0.15)
        return _state(store, horizon)

    try:
        assert asyncio.run(main()) == (0, [])
    finally:
        store.close()


def test_a_second_native_cancel_still_cuts_the_give_back_at_once(tmp_path: Path) -> None:
    """The shield is against anyio's repeated cancellation only: a task cancelled again by
    ``Task.cancel()`` (a second Ctrl-C) while it gives its place back stops at once."""
    store = SQLiteStore(str(tmp_path / "t.db"))
    store.migrate()
    charges = [Charge(KEY, (), Usage(1, 1), concurrency=1)]

    async def main() -> int:
        backend = SlowCalls(store, {1}, 0.6)
        gate = _gate(backend, charges)
        task = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0.1)
        task.cancel()  # the first: the gate waits for its backend call to give back
        await asyncio.sleep(0.05)
        task.cancel()  # the second: at once, not after the call
        with pytest.raises(asyncio.CancelledError):
            await task
        ended = backend.ended
        await asyncio.sleep(0.8)
        return ended

    try:
        assert asyncio.run(main()) == 0  # the task ended while its backend call still ran
    finally:
        store.close()
