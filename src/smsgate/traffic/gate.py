"""Where limits are kept, and the gates a request passes before it leaves.

A *backend* runs one function over the states of some keys atomically
(:meth:`TrafficBackend.transact`): :class:`LocalTraffic` in this process (every
gateway of the process that shares it), or the store (SQLite or PostgreSQL,
shared by every process and host using it; see
:meth:`smsgate.store.base.Store.traffic`).

A gate (:class:`SyncGate`, :class:`AsyncGate`) is what the transport passes
through before each attempt of a request that carries messages: it reserves a
slot, waits for it, is admitted (or waits again), and after the answer releases
the request. A gate given a ``stop`` event stops waiting when it is set and
raises :class:`StoppedWaiting`: nothing was sent. A gate given ``max_wait`` refuses a
request that would wait longer than that for its limits and raises
:class:`LimitWaitExceeded` (nothing sent; it says when to try again).

A request waiting for its slot renews the lease of its place every :data:`RENEW` seconds
(:func:`smsgate.traffic.limits.renew`): a place whose lease lapses is a dead waiter's and
is given back to the others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from smsgate._shield import shielded
from smsgate.errors import SmsgateError
from smsgate.ids import new_id
from smsgate.traffic.limits import (
    POLL,
    RESERVATION_LEASE,
    Charge,
    KeyState,
    Slots,
    admit,
    key_owner,
    release,
    renew,
    reserve,
    steady,
    unreserve,
)

__all__ = ["AsyncGate", "Closeable", "LimitWaitExceeded", "LocalTraffic", "StoppedWaiting", "SyncGate", "TrafficBackend", "open_traffic"]

T = TypeVar("T")

log = logging.getLogger("smsgate.traffic")

#: Longest pause between two tries while requests in flight stand in the way.
MAX_POLL = 0.08

#: Longest sleep of a request waiting for its slot before it renews the lease of its place.
RENEW = RESERVATION_LEASE / 3


class StoppedWaiting(SmsgateError):
    """The run was asked to stop while a request waited for its limit: it was not sent."""


class LimitWaitExceeded(StoppedWaiting):
    """A request would have waited longer than the tenant's ``max_limit_wait`` for its rate
    limits: it was not sent. ``retry_after``: seconds until its limits may let it go (an
    estimate: other requests may take the slot first)."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.args = (message, retry_after)


class TrafficBackend(Protocol):
    """Keeps the state of limits; runs ``fn(states, now)`` atomically over some keys."""

    def traffic(self, tenant: str, horizons: Mapping[str, float],
                fn: Callable[[dict[str, KeyState], float], T]) -> T:
        """Load ``tenant``'s state of each key of ``horizons`` (forgetting requests answered
        longer ago than its horizon; each brought back to the clock if it stepped back,
        :func:`~smsgate.traffic.limits.steady`), call ``fn`` with them and the backend's clock
        (the one clock its states are dated by), keep what it changed (``moved`` entries
        too); all in one transaction. Returns ``fn``'s result."""
        ...


class LocalTraffic:
    """Limits kept in this process (threads and event loops alike); its monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], KeyState] = {}

    def traffic(self, tenant: str, horizons: Mapping[str, float],
                fn: Callable[[dict[str, KeyState], float], T]) -> T:
        """See :meth:`TrafficBackend.traffic`."""
        with self._lock:
            now = self._clock()
            states = {}
            for key, horizon in horizons.items():
                state = self._states.get((tenant, key))
                if state is None:
                    state = self._states[(tenant, key)] = KeyState(key)
                state.prune(now, horizon)
                steady(state, now)  # (a wall clock, as the memory store's, may step back)
                states[key] = state
            try:
                return fn(states, now)
            finally:
                for state in states.values():
                    state.added.clear()
                    state.answered.clear()
                    state.moved.clear()
                    state.marks_changed = False

    def erase(self, tenant: str) -> int:
        """Drop every limit key of ``tenant`` with its requests; how many of both (as a SQL
        store counts its ``traffic_keys`` and ``traffic_entries`` rows)."""
        with self._lock:
            mine = [k for k in self._states if k[0] == tenant]
            return sum(1 + len(self._states.pop(k).entries) for k in mine)

    def forget(self, tenant: str | None, before: float, *, dry_run: bool = False) -> int:
        """Forget the requests of ``tenant`` (``None``: every tenant) answered (or expired)
        before ``before`` (this backend's clock); how many (``dry_run``: would be)."""
        forgotten = 0
        with self._lock:
            for (name, _), state in self._states.items():
                if tenant is not None and name != tenant:
                    continue
                keep = [e for e in state.entries if (e.end if e.end is not None else e.expires) >= before]
                forgotten += len(state.entries) - len(keep)
                if not dry_run:
                    state.entries = keep
        return forgotten


@runtime_checkable
class Closeable(Protocol):
    """A backend with connections of its own to close (not the store's)."""

    def close(self) -> None:
        """Close its connections."""
        ...


def open_traffic(spec: str, store: TrafficBackend | None) -> TrafficBackend:
    """The backend the ``traffic`` setting names: ``"store"`` (``store``, which must be given
    then), ``"local"`` or a Redis URL."""
    if spec == "local":
        return LocalTraffic()
    if spec.startswith(("redis://", "rediss://")):
        from smsgate.traffic.redis_backend import RedisTraffic

        return RedisTraffic(spec)
    if store is None:
        raise ValueError(f"traffic {spec!r}: the limits are kept in the store, and no store was given")
    return store


class _Gate:
    def __init__(self, tenant: str, charges: Sequence[Charge], lease: float, max_wait: float | None) -> None:
        self.tenant = tenant
        self.charges = tuple(charges)
        self.lease = lease
        #: the longest one request may wait for its limits (``None``: as long as they say)
        self.max_wait = max_wait
        #: the longest delay :meth:`_reserve` takes a slot for (a shorter one than a poll is waited
        #: for, as :meth:`_refuse` says): one threshold for both
        self._cap = None if max_wait is None else max(max_wait, POLL)
        self.horizons = {c.key: c.horizon for c in self.charges}
        self.keys = list(self.horizons)
        #: seconds this gate's requests have waited for their limits
        self.waited = 0.0
        #: how many of its requests it let go (each may then leave)
        self.admitted = 0
        #: the ticket :meth:`hold` took for the next request, not let go yet
        self.held: str | None = None
        #: when it was made (``time.monotonic()``): its call's duration counts from here
        self.started = time.monotonic()

    def _reserve(self, slots: Slots) -> Callable[[dict[str, KeyState], float], float]:
        """The reservation of one request's slots, recorded in ``slots`` (to give back)."""
        return lambda states, now: reserve(states, self.charges, now, self._cap, slots)

    def _unreserve(self, slots: Slots) -> Callable[[dict[str, KeyState], float], None]:
        return lambda states, now: unreserve(states, self.charges, now, slots)

    def _took(self, delay: float) -> bool:
        """Whether :meth:`_reserve`, answering ``delay``, took the request's slots (it takes
        none it would refuse)."""
        return self._cap is None or delay <= self._cap

    def _refuse(self, wait: float, waited: float) -> None:
        """Raise :class:`LimitWaitExceeded` when waiting ``wait`` more seconds, after ``waited``
        already, would pass ``max_wait``. Only a wait of known length counts: requests in
        flight in the way of a concurrency cap (a poll) end within their timeout."""
        if self.max_wait is not None and wait > POLL and waited + wait > self.max_wait:
            limits = "; ".join(f"{key_owner(c.key)}: " + ", ".join(f"{r.count} {r.unit if r.count != 1 else r.unit[:-1]} per {r.period:g}s"
                                                                  for r in c.rules)
                               for c in self.charges if c.rules)  # which ones: a failover helps only the instance's
            raise LimitWaitExceeded(
                f"not sent: its rate limits ({limits}) would hold it {waited + wait:.3g}s, longer than "
                f"max_limit_wait ({self.max_wait:g}s)", retry_after=wait)

    def _release(self, entry_id: str) -> Callable[[dict[str, KeyState], float], None]:
        return lambda states, now: release(states, self.keys, entry_id, now)

    def _admit(self, entry_id: str, slots: Slots) -> Callable[[dict[str, KeyState], float], float]:
        return lambda states, now: admit(states, self.charges, now, entry_id, self.lease, slots)

    def _renew(self, slots: Slots) -> Callable[[dict[str, KeyState], float], float]:
        """Renew the lease of the request's places; the seconds it still waits for its slot."""
        return lambda states, now: renew(states, self.charges, now, slots)

    def _not_given_back(self, exc: Exception) -> None:
        log.debug("limits of tenant %s: a stopped request's slots could not be given back (%s: %s); the "
                  "requests after it wait their share", self.tenant, type(exc).__name__, exc)

    def _unreleased(self, exc: Exception) -> None:
        """A release the backend failed: the request's outcome (the vendor's answer, or why
        it was not sent) stands, never replaced by this bookkeeping error; the request keeps
        counting in full until its lease ends (as a dead process's does), so no window
        holds more than the limit."""
        log.warning("limits of tenant %s: a request's end could not be recorded (%s: %s); it counts "
                    "until its lease ends, %gs after it left", self.tenant, type(exc).__name__, exc, self.lease)


def _until_due(delay: float, due: float) -> float:
    """Seconds a waiter still waits for its place: what its renewal says (``delay``, by the
    backend's clock), never past ``due`` (``time.monotonic()``: when its place came, as the
    reservation said). A backend's wall clock that stepped back meanwhile puts the place that
    much later by its clock; this process' monotonic clock did not step. (The window still
    decides: :func:`~smsgate.traffic.limits.admit` lets the request go once it allows.)"""
    return min(delay, due - time.monotonic())


def _pause(wait: float, polls: int) -> tuple[float, int]:
    """The pause before the next try: a poll backs off while in-flight requests block."""
    if wait <= POLL:
        return min(POLL * 2**polls, MAX_POLL), polls + 1
    return wait, 0


class SyncGate(_Gate):
    """The limits of one call, for blocking code."""

    def __init__(self, backend: TrafficBackend, tenant: str, charges: Sequence[Charge], lease: float,
                 stop: threading.Event | None = None, fence: Callable[[], object] | None = None,
                 max_wait: float | None = None) -> None:
        super().__init__(tenant, charges, lease, max_wait)
        self.backend = backend
        self.stop = stop
        #: checked once the request may leave, after any wait (its exception: not sent, ticket released)
        self.fence = fence

    def _sleep(self, seconds: float) -> None:
        self.waited += seconds
        if self.stop is None:
            time.sleep(seconds)
        elif self.stop.wait(seconds):
            raise StoppedWaiting("stopped while waiting for a rate limit; the request was not sent")

    def hold(self) -> None:
        """Wait now for the next request's place and keep its ticket (:attr:`held`): that
        request's :meth:`acquire` takes it without waiting (a plan's
        :class:`~smsgate.core.steps.Admit` step: the place is taken before the write-ahead)."""
        fence, self.fence = self.fence, None  # the request's own acquire() fences
        try:
            self.held = self.acquire()
        finally:
            self.fence = fence
        self.admitted -= 1  # not let go yet

    def drop(self) -> None:
        """Give back the :attr:`held` ticket, if any (its request never goes)."""
        if self.held is not None:
            ticket, self.held = self.held, None
            self.release(ticket)

    def acquire(self) -> str:
        """Wait until the request may leave; returns its ticket for :meth:`release`. A request
        stopped or refused while it waits gives its slots back (nothing was sent)."""
        if self.held is not None:  # its place was taken already (hold)
            ticket, self.held = self.held, None
            if self.fence is not None:
                try:
                    self.fence()
                except BaseException:
                    self.release(ticket)
                    raise
            self.admitted += 1
            return ticket
        slots: Slots = {}
        delay = self.backend.traffic(self.tenant, self.horizons, self._reserve(slots))
        try:
            return self._wait_and_admit(delay, slots)
        except BaseException:
            if self._took(delay):
                try:
                    self.backend.traffic(self.tenant, self.horizons, self._unreserve(slots))
                except Exception as exc:
                    self._not_given_back(exc)
            raise

    def _wait_and_admit(self, delay: float, slots: Slots) -> str:
        waited = 0.0
        if delay > 0:
            self._refuse(delay, 0.0)
            due = time.monotonic() + delay  # (see _until_due)
            while delay > RENEW:  # a long wait: the place's lease renewed as it goes
                self._sleep(RENEW)
                waited += RENEW
                delay = _until_due(self.backend.traffic(self.tenant, self.horizons, self._renew(slots)), due)
            if delay > 0:
                self._sleep(delay)
                waited += delay
        entry_id = new_id("req")
        admit_it = self._admit(entry_id, slots)
        polls = 0
        while True:
            wait = self.backend.traffic(self.tenant, self.horizons, admit_it)
            if wait <= 0:
                if self.fence is not None:
                    try:
                        self.fence()
                    except BaseException:
                        self.release(entry_id)
                        raise
                self.admitted += 1
                return entry_id
            self._refuse(wait, waited)
            pause, polls = _pause(wait, polls)
            self._sleep(pause)
            waited += pause

    def release(self, ticket: str) -> None:
        """The request was answered (or failed); never raises (see :meth:`_unreleased`)."""
        try:
            self.backend.traffic(self.tenant, self.horizons, self._release(ticket))
        except Exception as exc:
            self._unreleased(exc)


class AsyncGate(_Gate):
    """The limits of one call, for a coroutine; ``run`` runs a backend call (in a worker
    thread for a backend that blocks)."""

    def __init__(self, backend: TrafficBackend, tenant: str, charges: Sequence[Charge], lease: float,
                 run: Callable[..., Awaitable[object]], stop: asyncio.Event | None = None,
                 fence: Callable[[], Awaitable[object] | None] | None = None, max_wait: float | None = None) -> None:
        super().__init__(tenant, charges, lease, max_wait)
        self.backend = backend
        self.run = run
        self.stop = stop
        #: called once the request may leave, after any wait, and what it returns awaited unless
        #: ``None`` (nothing to wait for: a clock read); its exception: not sent, ticket released
        self.fence = fence

    async def _sleep(self, seconds: float) -> None:
        self.waited += seconds
        if self.stop is None:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise StoppedWaiting("stopped while waiting for a rate limit; the request was not sent")

    async def _to_the_end(self, fn: Callable[[dict[str, KeyState], float], T],
                          undo: Callable[[T], Awaitable[None]] | None = None) -> T:
        """``fn`` in the backend, to its end, even when the coroutine awaiting it is cancelled:
        the call is shielded (a cancelled executor job still queued would never run, and one
        running goes on regardless), the coroutine waits for it to end, ``undo``es what it did
        (slots taken, a request admitted as in flight: nothing will be sent), and stays
        cancelled. The wait and the undo are shielded from an anyio scope's repeated
        cancellation (:func:`smsgate._shield.shielded`): cut short, the request's place stayed
        taken until its lease ended."""
        if isinstance(self.backend, LocalTraffic):  # no await: nothing to cancel in between
            return self.backend.traffic(self.tenant, self.horizons, fn)
        call: asyncio.Future[T] = asyncio.ensure_future(
            self.run(self.backend.traffic, self.tenant, self.horizons, fn))  # type: ignore[arg-type]
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            with shielded():
                if not call.done():
                    await asyncio.wait([call])
                if undo is not None and not call.cancelled() and call.exception() is None:
                    await undo(call.result())
            raise

    async def _give_back(self, slots: Slots, delay: float) -> None:
        """Give back the ``slots`` the reservation that answered ``delay`` took (if it took them)."""
        if self._took(delay):
            try:
                await self._to_the_end(self._unreserve(slots))
            except Exception as exc:
                self._not_given_back(exc)

    async def hold(self) -> None:
        """Wait now for the next request's place and keep its ticket (:attr:`held`): that
        request's :meth:`acquire` takes it without waiting (a plan's
        :class:`~smsgate.core.steps.Admit` step: the place is taken before the write-ahead)."""
        fence, self.fence = self.fence, None  # the request's own acquire() fences
        try:
            self.held = await self.acquire()
        finally:
            self.fence = fence
        self.admitted -= 1  # not let go yet

    async def drop(self) -> None:
        """Give back the :attr:`held` ticket, if any (its request never goes)."""
        if self.held is not None:
            ticket, self.held = self.held, None
            await self.release(ticket)

    async def acquire(self) -> str:
        """Wait until the request may leave; returns its ticket for :meth:`release`. A request
        stopped, cancelled or refused while it waits gives its slots back (nothing was sent)."""
        if self.held is not None:  # its place was taken already (hold)
            ticket, self.held = self.held, None
            if self.fence is not None:
                try:
                    if (pending := self.fence()) is not None:
                        await pending
                except BaseException:
                    with shielded():
                        await self.release(ticket)
                    raise
            self.admitted += 1
            return ticket
        slots: Slots = {}
        delay = await self._to_the_end(self._reserve(slots), lambda d: self._give_back(slots, d))
        try:
            return await self._wait_and_admit(delay, slots)
        except BaseException:
            with shielded():
                await self._give_back(slots, delay)
            raise

    async def _wait_and_admit(self, delay: float, slots: Slots) -> str:
        waited = 0.0
        if delay > 0:
            self._refuse(delay, 0.0)
            due = time.monotonic() + delay  # (see _until_due)
            while delay > RENEW:  # a long wait: the place's lease renewed as it goes
                await self._sleep(RENEW)
                waited += RENEW
                delay = _until_due(await self._to_the_end(self._renew(slots)), due)
            if delay > 0:
                await self._sleep(delay)
                waited += delay
        entry_id = new_id("req")
        admit_it = self._admit(entry_id, slots)

        async def not_sent(wait: float) -> None:
            if wait <= 0:  # admitted as in flight as it was cancelled: it never leaves
                await self.release(entry_id)

        polls = 0
        while True:
            wait = await self._to_the_end(admit_it, not_sent)
            if wait <= 0:
                if self.fence is not None:
                    try:
                        if (pending := self.fence()) is not None:
                            await pending
                    except BaseException:
                        with shielded():
                            await self.release(entry_id)
                        raise
                self.admitted += 1
                return entry_id
            self._refuse(wait, waited)
            pause, polls = _pause(wait, polls)
            await self._sleep(pause)
            waited += pause

    async def release(self, ticket: str) -> None:
        """The request was answered (or failed); never raises an error (see :meth:`_unreleased`).
        Cancelled meanwhile (a caller's timeout as the answer came back), the release is still
        recorded before the cancellation goes on: the request never counts in flight until its
        lease ends."""
        try:
            await self._to_the_end(self._release(ticket))
        except Exception as exc:
            self._unreleased(exc)
