"""Drivers: run plans with real I/O, sync or async.

:class:`SyncPlanDriver` answers a plan's steps by calling the store directly and
running provider operations with an :class:`httpx.Client`; it never starts an
event loop. :class:`AsyncPlanDriver` awaits provider operations on the event loop
and runs every store call in a worker thread, so the loop is never blocked by
SQLite or PostgreSQL.

Both write the dispatch log through a log writer that merges concurrent writes
into one transaction (group commit): while one transaction is being written,
the writes that arrive queue up and go together in the next. Writes a plan does
not wait for (answers, recipient states) are held back and ride along with the
next write, or are written when ``size`` of them are held or the oldest is
``max_age`` seconds old, and when a plan asks (:class:`~smsgate.core.steps.Flush`).
Neither writer adds them to a campaign's write-ahead (a write with claims, which a
request waits for) unless they are due then: the write-ahead stays small and quick,
and the answers go in few larger transactions.

Batches of delivery (:class:`Batch`) come from a *feed*: a callable returning
the plan that prepares the next chunk of batches, or ``None`` when there is no
more. :meth:`SyncPlanDriver.drive_feed` and :meth:`AsyncPlanDriver.drive_feed`
run them with ``concurrency`` batches in flight (threads or tasks), preparing
the next chunk just ahead of need. Asked to stop (``stop`` set, an exception,
Ctrl-C), they take no new batch and let the ones in flight finish, so a request
that left always has its answer logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio

from smsgate._shield import shielded
from smsgate.core import hooks
from smsgate.core.recover import SendLease
from smsgate.core.steps import Admit, Call, Dispatch, Flush, Interrupted, Log, Plan, Query, Renew, Sleep
from smsgate.errors import StoreError, UnknownOutcome
from smsgate.store.base import LogResult, LogWrite, Store
from smsgate.traffic.gate import StoppedWaiting

__all__ = [
    "MAX_OWN_CLIENT_THREADS",
    "MAX_THREADS",
    "AsyncLogWriter",
    "AsyncPlanDriver",
    "Batch",
    "Feed",
    "LogWriter",
    "SyncPlanDriver",
    "store_driver",
]

T = TypeVar("T")

#: Worker threads a sync driver runs a campaign's requests on, at most, when they share one
#: HTTP client (one the application gave the gateway): past ~32 threads the GIL and httpx's
#: connection-pool lock cost more than they bring (bench: 50 ms endpoint, 8 threads 146 msg/s,
#: 16: 289, 32: 543, 64: 431). httpcore's pool looks over every pooled connection for each idle
#: one (and polls each idle socket) at every request and response, under one lock: its CPU per
#: message grows with the square of the connections, i.e. threads (measured 2026-12-05: ~30 us
#: at 2 threads, 65 at 8, ~150 at 16, 140-240 at 32, ~1,270 at 64).
MAX_THREADS = 32
#: ... and when each thread has a client of its own (a gateway that made its client:
#: :class:`smsgate.transport.ThreadClients`), where only the GIL bounds them.
MAX_OWN_CLIENT_THREADS = 256
#: Held-back writes are written once this many messages' are held ...
HOLD_SIZE = 256
#: ... or once the oldest is this many seconds old.
HOLD_AGE = 0.1
#: A campaign's write-aheads held to gather (the store's ``write_gather``) go at once when this
#: many requests wait.
GATHER_SIZE = 64


@dataclass(slots=True)
class Batch:
    """One unit of delivery: a plan for ``size`` messages, first tried on ``instance``."""

    instance: str
    size: int
    plan: Plan[dict[str, Any]]


#: The next chunk's batches (a plan), or ``None`` when there are no more.
Feed = Callable[[], "Plan[list[Batch]] | None"]


def _count(write: LogWrite) -> int:
    """The messages ``write`` is about: a campaign recipient's state goes with its message's
    answer, so a campaign's answers are held back (and written) as many at a time as a
    ``send_many``'s (bench/analysis.md, 2026-12-04 late afternoon)."""
    return len(write.inserts) + max(len(write.updates), len(write.recipients))


def on_adopted(hook: Any, tenant: str, result: LogResult | None) -> None:
    """Run ``smsgate_on_status`` for the orphan reports a committed write applied (once each:
    the store forgets an orphan as it applies it). A failing hook is logged, not raised
    (:func:`smsgate.core.hooks.notify`): the write it follows is committed, and its waiters
    must get their answer."""
    if hook is None or result is None or not result.adopted:
        return
    hooks.notify(hook, tenant, result.adopted)


#: What :class:`_Run` gives for "the plan returned" (no step).
_END: Any = object()


class _Run:
    """One plan being driven, for both drivers: advances it, and keeps the interruption
    (Ctrl-C, a cancellation) it was told of, which is raised once it ends.

    A driver calls :meth:`send` with a step's answer, :meth:`throw` with its error, or
    :meth:`interrupt` when the step was interrupted and the plan may still log what it
    must: each returns the next step, or :data:`_END` once the plan returned (:attr:`value`).
    """

    __slots__ = ("admission", "interrupted", "plan", "value")

    def __init__(self, plan: Plan[Any]) -> None:
        self.plan = plan
        #: the interruption the plan was told of (raised when it ends), if any
        self.interrupted: BaseException | None = None
        self.value: Any = None
        #: the answer of its latest Admit step, given back (unless a request took it) at its next
        #: Admit or when it ends
        self.admission: Any = None

    def first(self) -> Any:
        return self._advance(self.plan.__next__)

    def send(self, value: Any) -> Any:
        return self._advance(self.plan.send, value)

    def throw(self, exc: BaseException) -> Any:
        return self._advance(self.plan.throw, exc)

    def interrupt(self, exc: BaseException, told: Exception) -> Any:
        """``exc`` interrupted the step: the plan gets ``told`` instead and runs on (a second
        interruption is raised at once)."""
        if self.interrupted is not None:
            raise exc
        self.interrupted = exc
        return self.throw(told)

    def result(self) -> Any:
        if self.interrupted is not None:
            raise self.interrupted from None
        return self.value

    def _advance(self, how: Callable[..., Any], *args: Any) -> Any:
        try:
            return how(*args)
        except StopIteration as stop:
            self.value = stop.value
            return _END
        except Exception:
            if self.interrupted is not None:
                raise self.interrupted from None
            raise


class _Held:
    """The writes a log writer holds back (both writers): merged into one, counted, and since
    when the oldest is held; due once ``size`` are held or the oldest is ``max_age`` old."""

    __slots__ = ("n", "since", "write")

    def __init__(self) -> None:
        self.write = LogWrite()
        self.n = 0
        #: time.monotonic() when the oldest write held now was held
        self.since = 0.0

    def add(self, write: LogWrite) -> None:
        if not self.n:
            self.since = time.monotonic()
        self.write.extend(write)
        self.n += _count(write)

    def due(self, size: int, max_age: float) -> bool:
        return self.n >= size or (self.n > 0 and time.monotonic() - self.since >= max_age)

    def take(self) -> LogWrite:
        """What is held (the writer holds nothing after)."""
        write, self.write, self.n = self.write, LogWrite(), 0
        return write


# ------------------------------------------------------------------------------ sync
class LogWriter:
    """Group-committing writer of one tenant's dispatch log (thread-safe).

    The thread that takes the commit lock writes every write queued meanwhile in one
    transaction, with the writes held back (a campaign's write-ahead takes those only once
    they are due, see the module docstring)."""

    #: held-back writes are written once this many are held ...
    size: int = HOLD_SIZE
    #: ... or once the oldest is this many seconds old
    max_age: float = HOLD_AGE

    def __init__(self, store: Store, tenant: str, hook: Any = None, lease: SendLease | None = None) -> None:
        self.store = store
        self.tenant = tenant
        #: the plugin hooks: ``smsgate_on_status`` runs for orphan reports a write applies
        self.hook = hook
        #: this process's send lease on the tenant (see :mod:`smsgate.core.recover`)
        self.lease = lease
        self._mutex = threading.Lock()  # guards the fields below
        self._commit = threading.Lock()  # held while a transaction is written
        self._held = _Held()
        self._queue: list[_Waiter] = []

    def write(self, write: LogWrite) -> LogResult:
        """Write ``write`` (with everything held back) and return once it is committed."""
        waiter = _Waiter(write)
        if self.lease is not None:
            self.lease.logging(write)
        with self._mutex:
            self._queue.append(waiter)
        committed = None
        with self._commit:
            if not waiter.done:  # else a writer before us committed it
                committed = self._commit_locked(ahead=bool(write.claims))
        on_adopted(self.hook, self.tenant, committed)  # outside the lock: a hook may send
        if waiter.error is not None:
            raise waiter.error
        assert waiter.result is not None
        return waiter.result

    def defer(self, write: LogWrite) -> None:
        """Hold ``write`` back: written with the next write, or when enough is held."""
        if self.lease is not None:
            self.lease.logging(write)
        with self._mutex:
            self._held.add(write)
            due = self._held.due(self.size, self.max_age)
        if due:
            self.flush()

    def flush(self) -> None:
        """Write everything held back now."""
        with self._commit:
            committed = self._commit_locked()
        on_adopted(self.hook, self.tenant, committed)

    def _commit_locked(self, ahead: bool = False) -> LogResult | None:
        """Write what is queued, with what is held back; ``ahead``: for a campaign's write-ahead,
        which takes the held-back writes along only once they are due (as :class:`AsyncLogWriter`)."""
        with self._mutex:
            waiters, self._queue = self._queue, []
            if ahead and not self._held.due(self.size, self.max_age) and all(w.write.claims for w in waiters):
                held = LogWrite()
            else:
                held = self._held.take()
        if not waiters and not held:
            return None

        def answer(commit: _Commit) -> None:
            for waiter in waiters:
                waiter.result, waiter.error, waiter.done = commit.result, commit.error, True

        commit = _commit_group(self.store, self.tenant, held, [waiter.write for waiter in waiters], answer,
                               self.lease)
        if commit.error is not None and commit.committed is None and not waiters:
            raise commit.error  # nobody waited: the flush that wrote it says it
        return commit.committed


@dataclass(slots=True)
class _Commit:
    """What one group commit (:func:`_commit_group`) did."""

    #: the transaction's result (its waiters' answer) ...
    result: LogResult | None = None
    #: ... or why it failed
    error: BaseException | None = None
    #: what was written in the end (the held-back writes alone, after a failure), if anything:
    #: the hooks of the orphan reports it applied run
    committed: LogResult | None = None


def _commit_group(store: Store, tenant: str, held: LogWrite, writes: list[LogWrite],
                  answer: Callable[[_Commit], None], lease: SendLease | None = None) -> _Commit:
    """One group commit of both log writers, in the calling thread (the async writer's worker
    thread): ``held`` (the held-back writes) and the waiters' ``writes`` in one transaction;
    ``answer`` is called as soon as it is committed or failed (the waiters' answer).

    When it fails with a :class:`~smsgate.errors.StoreError` (a lost connection, a lock for a
    moment, or one waiter's write refused), ``held`` is written once more on its own: those
    answers are nobody's to retry, and without them their messages (which left) would stay
    ``queued`` for good.

    ``lease``: the process's send lease, written first when the transaction logs messages
    ahead and it is due (:meth:`SendLease.ensure`), told what was answered once committed.
    """
    commit = _Commit()
    merged = _merge(held, writes)
    try:
        if lease is not None:
            lease.ensure(merged)
        commit.result = commit.committed = store.write_log(tenant, merged)
    except BaseException as exc:
        commit.error = exc
        if lease is not None:
            lease.failed(writes)
    else:
        if lease is not None:
            lease.answered(merged, commit.result)
    answer(commit)
    if commit.error is not None and held and isinstance(commit.error, StoreError):
        try:
            commit.committed = store.write_log(tenant, held)
        except StoreError:
            pass
        else:
            _written_again(tenant, held, commit.error)
            if lease is not None:
                lease.answered(held, commit.committed)
    return commit


def _merge(first: LogWrite, rest: list[LogWrite]) -> LogWrite:
    """One write of ``first`` then ``rest``; ``first`` is left as it was (to be tried alone
    if the merged write fails: a transaction that failed for a waiter's write, or for a
    moment, must not lose the held-back answers, whose messages would stay ``queued``)."""
    if not rest:
        return first
    merged = LogWrite()
    merged.extend(first)
    for write in rest:
        merged.extend(write)
    return merged


def _written_again(tenant: str, held: LogWrite, exc: BaseException) -> None:
    logging.getLogger("smsgate").warning(
        "tenant %s: a log write failed (%s); the held-back writes of its %d messages were written on a second try",
        tenant, exc, _count(held))


@dataclass(slots=True)
class _Waiter:
    write: LogWrite
    result: LogResult | None = None
    error: BaseException | None = None
    done: bool = False


def store_driver(store: Store, tenant: str, hook: Any = None) -> SyncPlanDriver:
    """A driver for plans of ``tenant`` that only touch the store (no provider call: e.g. the
    recovery of a removed tenant's campaign, which has no providers any more)."""
    return SyncPlanDriver(store, LogWriter(store, tenant, hook), _no_calls)


def _no_calls(step: Call | Admit, stop: threading.Event) -> Any:
    raise RuntimeError(f"a plan that touches only the store called provider {step.instance!r}")


class SyncPlanDriver:
    """Runs plans with blocking I/O: store calls and provider calls in the calling thread."""

    def __init__(self, store: Store, writer: LogWriter, call: Callable[[Call | Admit, threading.Event], Any],
                 stop: threading.Event | None = None, *,
                 thread: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
                 max_threads: int = MAX_THREADS) -> None:
        self.store = store
        self.writer = writer
        self._call = call
        #: Set to make :class:`~smsgate.core.steps.Dispatch` steps take no new batch.
        self.stop = stop or threading.Event()
        #: A context each worker thread of :meth:`drive_feed` sends inside (its own HTTP client).
        self.thread = thread
        #: The most worker threads a :class:`~smsgate.core.steps.Dispatch` step runs on.
        self.max_threads = max_threads

    def drive(self, plan: Plan[T]) -> T:
        """Run ``plan`` to its end and return its result.

        Interrupted (Ctrl-C) in a :class:`~smsgate.core.steps.Dispatch` step, the plan gets
        :class:`~smsgate.core.steps.Interrupted` once the batches in flight finished, runs to
        its end without sending anything more, and the interruption is raised.
        """
        run = _Run(plan)
        try:
            step = run.first()
            while step is not _END:
                try:
                    value: Any = None
                    if isinstance(step, Call):
                        if run.interrupted is not None:
                            raise StoppedWaiting("not sent: the caller was interrupted")
                        value = self._call(step, self.stop)
                    elif isinstance(step, Admit):
                        if run.interrupted is not None:
                            raise StoppedWaiting("not sent: the caller was interrupted")
                        if run.admission is not None:  # a plan uses only its latest: given back now
                            held, run.admission = run.admission, None
                            held.drop()
                        value = run.admission = self._call(step, self.stop)
                    elif isinstance(step, Log):
                        if step.wait:
                            value = self.writer.write(step.write)
                        else:
                            self.writer.defer(step.write)
                    elif isinstance(step, Query):
                        value = getattr(self.store, step.method)(*step.args, **step.kwargs)
                    elif isinstance(step, Renew):
                        value = step.get()
                    elif isinstance(step, Flush):
                        self.writer.flush()
                    elif isinstance(step, Sleep):
                        if run.interrupted is None:
                            time.sleep(step.seconds)
                    elif isinstance(step, Dispatch):
                        if run.interrupted is not None:
                            raise run.interrupted
                        value = self.drive_feed(step.feed, min(step.concurrency, self.max_threads), self.stop,
                                                threaded=not step.inline, keep=step.keep)
                    else:
                        raise TypeError(f"a plan yielded {step!r}, not a step")
                except Exception as exc:
                    step = run.throw(exc)
                except BaseException as exc:  # Ctrl-C: a Dispatch lets its plan log what it must
                    if isinstance(step, Admit) or (isinstance(step, Call) and step.unsent):  # nothing left: logged
                        # "not sent", not left queued (an Admit: nothing of it logged yet)
                        step = run.interrupt(exc, StoppedWaiting("not sent: interrupted before its request left"))
                        continue
                    if not isinstance(step, Dispatch):
                        raise
                    how = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped ({type(exc).__name__})"
                    step = run.interrupt(exc, Interrupted(exc, how))
                else:
                    step = run.send(value)
            return run.result()  # type: ignore[no-any-return]
        finally:
            if run.admission is not None:  # unless a call took it (and made a request): given back
                run.admission.drop()

    def drive_feed(self, feed: Feed, concurrency: int = 1, stop: threading.Event | None = None, *,
                   threaded: bool = False, keep: bool = True) -> dict[str, Any]:
        """Run every batch of ``feed``, ``concurrency`` at a time; their results merged (unless
        not ``keep``: each batch's dropped as it ends, an empty dict returned).

        With ``concurrency`` > 1 (or ``threaded``) the batches run in worker threads,
        the calling thread only waits; with several workers the next chunk is prepared by
        the worker that takes a batch once fewer than half a chunk of batches is left, while
        the others go on sending (as :meth:`AsyncPlanDriver.drive_feed` does). When ``stop``
        is set, on an exception or on Ctrl-C in the calling thread, no new batch is taken;
        the batches in flight finish (their answers are logged) before this returns or raises.
        """
        stop = threading.Event() if stop is None else stop
        results: dict[str, Any] = {}
        queue: deque[Batch] = deque()
        lock = threading.Lock()  # guards the queue, ``exhausted`` and ``low``
        feeding = threading.Lock()  # held while a chunk is prepared (one at a time)
        errors: list[BaseException] = []
        exhausted = False
        low = 0  # (several workers) prepare the next chunk once fewer batches than this are left
        workers = 1 if concurrency <= 1 and not threaded else max(1, concurrency)

        def fill(enough: int) -> None:
            """Prepare chunks until ``enough`` batches are queued or there are no more."""
            nonlocal exhausted, low
            with feeding:
                while True:
                    with lock:
                        if len(queue) >= enough or exhausted or stop.is_set():
                            return
                    plan = feed()
                    if plan is None:
                        with lock:
                            exhausted = True
                        return
                    batches = self.drive(plan)
                    with lock:
                        queue.extend(batches)
                        if workers > 1:  # (one worker: a chunk is all answered before the next is claimed)
                            low = max(low, len(batches) // 2)

        def take() -> Batch | None:
            while True:
                with lock:
                    if stop.is_set():
                        return None
                    batch = queue.popleft() if queue else None
                    if batch is None and exhausted:
                        return None
                    ahead = batch is not None and len(queue) < low and not exhausted and not feeding.locked()
                if batch is None:
                    fill(1)
                elif not ahead:
                    return batch
                else:  # the others send on while this worker claims and prepares the next chunk
                    fill(low)
                    return None if stop.is_set() else batch
        running = [workers]
        finished = threading.Event()

        go = threading.Event()  # set once every worker is started

        def work(context: contextlib.AbstractContextManager[object]) -> None:
            try:
                with context:
                    go.wait()
                    while (batch := take()) is not None:
                        answered = self.drive(batch.plan)
                        if keep:
                            results.update(answered)
            except BaseException as exc:
                errors.append(exc)
                stop.set()
            finally:
                with lock:
                    running[0] -= 1
                    if not running[0]:
                        finished.set()

        if workers == 1 and not threaded:
            go.set()
            try:
                work(contextlib.nullcontext())
            finally:
                self.writer.flush()
        else:
            try:
                # The workers take no batch before they are all started: Ctrl-C while they are
                # started (each one's HTTP client takes a while to make) stops them before they
                # send anything. (It escaped at once while the first ones sent: the run released
                # its claims meanwhile, and a claim whose write-ahead committed after that release
                # read it went back to ``pending`` and was sent twice.)
                for i in range(workers):
                    context = self.thread() if self.thread is not None else contextlib.nullcontext()
                    threading.Thread(target=work, args=(context,), name=f"smsgate-send-{i}", daemon=True).start()
                go.set()
                # An Event, not Thread.join: a join interrupted by Ctrl-C can take a live thread
                # for ended (CPython bpo-45274). Short waits: a signal may be taken by another thread.
                while not finished.wait(0.05):
                    pass
            except BaseException:
                stop.set()  # Ctrl-C: let the batches in flight finish and log their answers
                sending = go.is_set()
                go.set()  # (again: a Ctrl-C within set() may have cut it short of waking them)
                if sending:  # (else no worker took a batch, and none will: ``stop`` is set)
                    _wait_through_interrupts(finished)
                raise
            finally:
                self.writer.flush()
        if errors:
            raise errors[0]
        return results


def _wait_through_interrupts(done: threading.Event) -> None:
    """Wait for ``done`` even through further Ctrl-Cs (the first one is being handled: leaving
    before the send threads end would release claims whose requests are still leaving)."""
    while True:
        try:
            done.wait()
            return
        except KeyboardInterrupt:
            continue


# ----------------------------------------------------------------------------- async
class AsyncLogWriter:
    """Group-committing writer of one tenant's dispatch log, for one event loop.

    Transactions are written in a worker thread (``run``), one at a time; the
    writes that arrive meanwhile go together in the next. Held-back writes go with
    a campaign's write-ahead (a write with claims) only once due (``size`` held, the
    oldest ``max_age`` old, or a :meth:`flush`): a campaign request waits for its
    write-ahead, which is quicker without a few hundred answers beside it
    (bench/analysis.md, 2026-12-04). Other writes take them along.

    Where a transaction is dear (the store's ``write_gather``: PostgreSQL), a campaign's
    write-ahead waits for more requests' write-aheads, until ``gather_size`` wait or the
    first has waited ``gather`` seconds, and they go in one transaction: no request leaves
    before its write-ahead is committed, so a request waits at most that much longer.
    """

    #: a campaign's write-aheads go at once when this many wait (see ``gather``)
    gather_size: int = GATHER_SIZE

    #: held-back writes are written once this many are held ...
    size: int = HOLD_SIZE
    #: ... or once the oldest is this many seconds old (a timer on the loop)
    max_age: float = HOLD_AGE

    def __init__(self, store: Store, tenant: str, run: Callable[..., Awaitable[Any]], hook: Any = None,
                 lease: SendLease | None = None) -> None:
        self.store = store
        self.tenant = tenant
        self._run = run
        #: the plugin hooks: ``smsgate_on_status`` runs for orphan reports a write applies
        self.hook = hook
        #: this process's send lease on the tenant (see :mod:`smsgate.core.recover`)
        self.lease = lease
        self._held = _Held()
        self._queue: list[tuple[LogWrite, asyncio.Future[LogResult]]] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._force = False  # write what is held with the next transaction (a flush)
        self._error: BaseException | None = None
        #: seconds a campaign's write-ahead may wait for others to go in its transaction
        self.gather = store.write_gather
        self._since = 0.0  # loop time when the first write of the queue was queued
        self._gathering: asyncio.Future[None] | None = None  # done once enough are queued

    async def write(self, write: LogWrite) -> LogResult:
        """Write ``write`` and return once it is committed (with what is held back, see the class)."""
        return await self.submit(write)

    def submit(self, write: LogWrite) -> asyncio.Future[LogResult]:
        """Queue ``write`` for the next transaction (with what is held back, see the class); its answer.

        Cancelling a wait for the answer does not stop the write (await the future
        through :func:`asyncio.shield` to learn it anyway)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LogResult] = loop.create_future()
        if self.lease is not None:
            self.lease.logging(write)
        if not self._queue:
            self._since = loop.time()
        self._queue.append((write, future))
        if self._gathering is not None and len(self._queue) >= self.gather_size:
            _wake(self._gathering)
        self._kick()
        return future

    def defer(self, write: LogWrite) -> None:
        """Hold ``write`` back: written when enough is held, or the oldest is old enough."""
        if self.lease is not None:
            self.lease.logging(write)
        self._held.add(write)
        if self._held.n >= self.size:
            self._kick()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_age, self._due)

    async def flush(self) -> None:
        """Write everything held back now (raises the error of a failed held-back write)."""
        if self._held.n or self._queue:
            self._force = bool(self._held.n)
            self._kick()
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _due(self) -> None:
        """The hold-back timer: write what is held once the oldest held write is ``max_age`` old.

        The timer is not cancelled by the writes that take the held-back ones along (a
        campaign makes one per request: arming and cancelling a timer for each cost the
        event loop's thread ~10 us a message); when it fires it re-arms itself for what
        was held since."""
        self._timer = None
        if not self._held.n:
            return
        left = self._held.since + self.max_age - time.monotonic()
        if left > 0.001:
            self._timer = asyncio.get_running_loop().call_later(left, self._due)
            return
        self._force = True
        self._kick()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._commit())

    def _held_due(self) -> bool:
        """Whether the writes held back are to be written now (else write-aheads go alone)."""
        return bool(self._held.n) and (self._force or self._held.due(self.size, self.max_age))

    async def _gather(self) -> None:
        """Wait until ``gather_size`` writes are queued or the first has waited ``gather`` seconds
        (only for a campaign's write-aheads, while nothing held back is due)."""
        loop = asyncio.get_running_loop()
        left = self._since + self.gather - loop.time()
        if (left <= 0 or len(self._queue) >= self.gather_size or self._held_due()
                or not any(write.claims for write, _ in self._queue)):
            return
        self._gathering = loop.create_future()
        timer = loop.call_later(left, _wake, self._gathering)
        try:
            await self._gathering
        except asyncio.CancelledError:
            pass  # cancelled (the loop ends): the queued writes are written now, not dropped
        finally:
            timer.cancel()
            self._gathering = None

    async def _commit(self) -> None:
        while self._queue or self._held_due():
            if self.gather > 0 and self._queue:
                await self._gather()
            waiters, self._queue = self._queue, []
            if not waiters or self._held_due() or not any(write.claims for write, _ in waiters):
                held, self._force = self._held.take(), False
            else:  # a campaign's write-ahead goes alone while what is held is not due
                held = LogWrite()
            # waiters are answered from the worker thread, a turn of the loop sooner than through
            # the executor's future (and before the held-back writes are tried again, if they are)
            answer = partial(_answer_soon, asyncio.get_running_loop(), waiters)
            try:
                commit = await self._run(_commit_group, self.store, self.tenant, held,
                                         [write for write, _ in waiters], answer, self.lease)
            except BaseException as exc:  # cancelled (the write goes on in its thread), or never run
                _answer(waiters, _Commit(error=exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                commit = _Commit(error=exc)
            _answer(waiters, commit)
            on_adopted(self.hook, self.tenant, commit.committed)
            if commit.error is not None and commit.committed is None and not waiters:
                self._error = commit.error  # nobody waited: the next flush() raises it


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _answer_soon(loop: asyncio.AbstractEventLoop, waiters: list[tuple[LogWrite, asyncio.Future[LogResult]]],
                 commit: _Commit) -> None:
    if waiters:
        try:
            loop.call_soon_threadsafe(_answer, waiters, commit)
        except RuntimeError:  # the loop is closed: nobody waits any more (the write is done)
            pass


def _answer(waiters: list[tuple[LogWrite, asyncio.Future[LogResult]]], commit: _Commit) -> None:
    for _, future in waiters:
        if not future.done():
            if commit.error is not None:
                future.set_exception(commit.error)
            else:
                assert commit.result is not None
                future.set_result(commit.result)


class AsyncPlanDriver:
    """Runs plans on an event loop: provider calls awaited, store calls in a worker thread."""

    def __init__(self, store: Store, writer: AsyncLogWriter, call: Callable[[Call | Admit, asyncio.Event], Awaitable[Any]],
                 executor: Executor | None = None, stop: asyncio.Event | None = None) -> None:
        self.store = store
        self.writer = writer
        self._call = call
        self._executor = executor
        #: Set to make :class:`~smsgate.core.steps.Dispatch` steps take no new batch.
        self.stop = stop or asyncio.Event()

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the driver's worker thread (never on the event loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    async def drive(self, plan: Plan[T]) -> T:
        """Run ``plan`` to its end and return its result.

        Cancelled while a provider call is under way, the plan gets
        :class:`~smsgate.errors.UnknownOutcome` for it (its request may have left: a
        message is logged ``unknown``, never left ``queued``); cancelled while a log
        write is under way, it gets that write's answer (the write goes on in its worker
        thread); cancelled in a :class:`~smsgate.core.steps.Dispatch`, it gets
        :class:`~smsgate.core.steps.Interrupted` once the batches in flight finished. Either way the plan then runs to its end without sending anything more
        (a further call is not sent: :class:`~smsgate.traffic.gate.StoppedWaiting`), and
        the cancellation is raised.
        """
        run = _Run(plan)
        shield: anyio.CancelScope | None = None  # entered once the plan is interrupted (see shielded)
        try:
            step = run.first()
            while step is not _END:
                try:
                    value: Any = None
                    if isinstance(step, Call):
                        if run.interrupted is not None:
                            raise StoppedWaiting("not sent: the caller was cancelled")
                        value = await self._call(step, self.stop)
                    elif isinstance(step, Admit):
                        if run.interrupted is not None:
                            raise StoppedWaiting("not sent: the caller was cancelled")
                        if run.admission is not None:  # a plan uses only its latest: given back now
                            held, run.admission = run.admission, None
                            await held.drop()
                        value = run.admission = await self._call(step, self.stop)
                    elif isinstance(step, Log):
                        if step.wait:
                            written = self.writer.submit(step.write)
                            try:
                                value = await asyncio.shield(written)
                            except asyncio.CancelledError as exc:
                                if run.interrupted is not None:
                                    raise
                                run.interrupted = exc
                                shield = shielded()
                                shield.__enter__()
                                value = await written
                        else:
                            self.writer.defer(step.write)
                    elif isinstance(step, Query):
                        value = await self.run_sync(getattr(self.store, step.method), *step.args, **step.kwargs)
                    elif isinstance(step, Renew):  # it may ask the tenant source: never on the loop
                        value = await self.run_sync(step.get)
                    elif isinstance(step, Flush):
                        await self.writer.flush()
                    elif isinstance(step, Sleep):
                        if run.interrupted is None:
                            await asyncio.sleep(step.seconds)
                    elif isinstance(step, Dispatch):
                        if run.interrupted is not None:
                            raise run.interrupted
                        value = await self.drive_feed(step.feed, step.concurrency, self.stop, keep=step.keep)
                    else:
                        raise TypeError(f"a plan yielded {step!r}, not a step")
                except asyncio.CancelledError as exc:
                    if run.interrupted is None and isinstance(step, (Dispatch, Call, Admit)):
                        shield = shielded()  # the rest of the plan runs to its end (see shielded)
                        shield.__enter__()
                    if isinstance(step, Dispatch):  # the batches in flight finished: the plan logs what it must
                        step = run.interrupt(exc, Interrupted(exc, "cancelled"))
                    elif isinstance(step, (Call, Admit)):
                        step = run.interrupt(exc, StoppedWaiting("not sent: cancelled before its request left")
                                             if isinstance(step, Admit) or step.unsent else
                                             UnknownOutcome("cancelled while the request was under way: it may "
                                                            "have been sent", provider=step.instance))
                    else:
                        raise
                except Exception as exc:
                    step = run.throw(exc)
                else:
                    step = run.send(value)
            return run.result()  # type: ignore[no-any-return]
        finally:
            try:
                if run.admission is not None:  # unless a call took it (and made a request): given back
                    await run.admission.drop()
            finally:
                if shield is not None:
                    shield.__exit__(None, None, None)

    async def drive_feed(self, feed: Feed, concurrency: int = 1, stop: asyncio.Event | None = None, *,
                         keep: bool = True) -> dict[str, Any]:
        """Run every batch of ``feed``, ``concurrency`` at a time (tasks); their results merged
        (unless not ``keep``: each batch's dropped as it ends, an empty dict returned).

        When ``stop`` is set, on an exception or when the caller is cancelled, no new
        batch is taken; the batches in flight finish (their answers are logged)
        before this returns or raises.

        The next chunk is prepared in a task of its own once fewer than half a chunk of
        batches is left, so the workers keep sending while its store queries run. One chunk is
        prepared at a time; workers that find no batch ready wait for that preparation (all
        of them woken at once when it ends), never in a queue of their own: with a lock,
        each waiter took it in turn, one turn of the event loop each, and the next chunk's
        preparation queued behind them, so with hundreds of workers the batches ran out
        before it began and every worker waited for every chunk (bench/analysis.md).
        """
        stop = asyncio.Event() if stop is None else stop
        results: dict[str, Any] = {}
        queue: deque[Batch] = deque()
        exhausted = False
        low = 0  # prepare the next chunk once fewer batches than this are left
        ahead: asyncio.Task[None] | None = None  # the chunk preparation under way (or the last one)

        async def fill(enough: int) -> None:
            """Prepare chunks until ``enough`` batches are queued or there are no more."""
            nonlocal exhausted, low
            try:
                while len(queue) < enough and not exhausted and not stop.is_set():
                    plan = feed()
                    if plan is None:
                        exhausted = True
                        return
                    batches = await self.drive(plan)
                    queue.extend(batches)
                    low = max(low, len(batches) // 2)
            except BaseException:
                stop.set()  # as when a worker's batch fails: no new batch is taken
                raise

        def preparing(enough: int) -> asyncio.Task[None]:
            """The chunk preparation under way, else a new one filling the queue to ``enough``
            (never a second one: the feed's chunks are prepared one after the other)."""
            nonlocal ahead
            if ahead is None or ahead.done():
                ahead = asyncio.ensure_future(fill(enough))
            return ahead

        def ready() -> Plan[dict[str, Any]] | None:
            """A prepared batch's plan (not the batch: a worker keeps nothing else of it alive),
            taken at once (a plain call, no coroutine per batch); ``None`` when none is ready or
            the feed is stopped."""
            if not queue or stop.is_set():  # one event loop: no lock needed to take a prepared batch
                return None
            batch = queue.popleft()
            # the next chunk is prepared while the last ones are sent, so the workers do not
            # wait for its store queries (a campaign's claim, the opt-out check, a write-ahead)
            if len(queue) < low and not exhausted and (ahead is None or ahead.done()):
                preparing(low)
            return batch.plan

        async def take() -> Plan[dict[str, Any]] | None:
            """The next batch's plan once the next chunk is prepared; ``None`` when there is none."""
            while True:
                plan = ready()
                if plan is not None or stop.is_set() or (exhausted and not queue):
                    return plan
                # wait for the preparation under way (or a new one), not cancelling it if this
                # wait is cancelled; its failure stops the feed and is raised once it ends
                await asyncio.wait([preparing(1)])

        async def work() -> None:
            try:
                while True:
                    plan = ready()
                    if plan is None:
                        if stop.is_set():
                            break
                        plan = await take()
                        if plan is None:
                            break
                    answered = await self.drive(plan)
                    if keep:
                        results.update(answered)
            except BaseException:
                stop.set()
                raise

        tasks = [asyncio.ensure_future(work()) for _ in range(max(1, concurrency))]
        try:
            await asyncio.wait(tasks)  # a cancellation here does not cancel the tasks ...
        except asyncio.CancelledError:
            stop.set()  # ... they finish the batches in flight, then stop
            with shielded():  # (not cancelled again by an enclosing anyio scope meanwhile)
                await asyncio.wait(tasks)
                for task in tasks:  # retrieved: the cancellation is what the caller sees
                    if not task.cancelled():
                        task.exception()
                if ahead is not None:
                    await asyncio.wait([ahead])
                    if not ahead.cancelled():
                        ahead.exception()  # retrieved: the cancellation is what the caller sees
                await self.writer.flush()
            raise
        if ahead is not None:
            await asyncio.wait([ahead])  # done: the workers take nothing while it runs
        # every worker's failure retrieved, not only the first one raised: asyncio logs each one
        # left unretrieved with its traceback ("Task exception was never retrieved"), as an async
        # campaign run whose lease was gone (its campaign deleted under it, or its claims taken
        # over after a pause) printed for every batch in flight that met the fence
        failures = [task.exception() for task in tasks]
        if ahead is not None and not ahead.cancelled():
            failures.append(ahead.exception())  # (the chunk preparation's: raised after the workers')
        await self.writer.flush()
        for failure in failures:
            if failure is not None:
                raise failure
        return results
