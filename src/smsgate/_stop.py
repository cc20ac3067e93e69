"""Chunked store work (a campaign's preparation, a contact list's import) that its gateway's
close or its async caller's cancellation stops between two chunks: one rule for both.

The work runs in one thread (the caller's, or a worker thread of an async gateway) and checks
its ``stops`` (events) before each chunk with :func:`check`, raising :class:`Stopped`; what it
made is then removed by the work itself, as for any failure. :func:`stoppable` registers the
work with its gateway (whose close waits for it, and sets the event it hands over) and turns
:class:`Stopped` into the gateway's ``GatewayClosed``; :func:`run_stoppable` is the same for an
async caller, whose cancellation stops the thread too and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from smsgate._shield import outlast

__all__ = ["Event", "Stopped", "Work", "check", "run_stoppable", "stoppable"]

T = TypeVar("T")


class Event(Protocol):
    """What stops a work: a ``threading.Event`` or an ``asyncio.Event`` (read, never waited on)."""

    def is_set(self) -> bool: ...


#: What a gateway hands work that its close must wait for (``Gateway._sending``): a context
#: manager that registers the work under way and yields an event set once the gateway closes.
Work = Callable[[], contextlib.AbstractContextManager[Any]]


class Stopped(Exception):
    """A chunked work stopped between two chunks (its gateway closing, its async caller
    cancelled): raised in the working thread by :func:`check`, so that the work removes what it
    made as for any failure."""


def check(stops: Sequence[Event]) -> None:
    """Raise :class:`Stopped` if one of ``stops`` is set: called before each chunk."""
    if any(stop.is_set() for stop in stops):
        raise Stopped


@contextlib.contextmanager
def stoppable(work: Work | None, closed: Callable[[], BaseException] | None) -> Iterator[tuple[Event, ...]]:
    """A chunked work under way: registered with ``work`` (a gateway's, whose close waits for it;
    none: nothing stops it), yielding the events it checks. Stopped by the close, it raises
    ``closed()`` (the gateway's ``GatewayClosed``)."""
    if work is None:
        yield ()
        return
    with work() as closing:
        try:
            yield (closing,)
        except Stopped:
            raise (closed() if closed is not None else Stopped()) from None


async def run_stoppable(job: Callable[[tuple[Event, ...]], Awaitable[T]], work: Work | None,
                        closed: Callable[[], BaseException] | None,
                        undo: Callable[[T], Awaitable[None]] | None = None) -> T:
    """``await job(stops)`` (a chunked work in a worker thread) for an async caller.

    Cancelled, the thread is stopped at its next chunk (it removes what it made), and this waits
    for it before the cancellation is raised; ``undo(result)`` removes what a job finished
    before it saw the stop (a campaign or a list whose id its caller never learns). The waiting
    outlasts further cancellations (a request's timeout, then a shutdown's). Its gateway closed
    meanwhile (whose close waits for it), it raises ``closed()``."""
    cancelled = threading.Event()
    with stoppable(work, closed) as stops:
        task = asyncio.ensure_future(job((*stops, cancelled)))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled.set()

            async def finish() -> None:
                await asyncio.wait([task])
                if task.cancelled() or task.exception() is not None:  # (retrieved: the cancellation is raised)
                    return
                if undo is not None:
                    await undo(task.result())

            await outlast(finish())
            raise
