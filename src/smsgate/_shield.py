"""A cancel scope that lets a cancellation already delivered finish its cleanup (see
:func:`shielded`); kept apart so the traffic gates and the kernel's drivers share one rule."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import anyio

__all__ = ["outlast", "shielded"]

T = TypeVar("T")


def shielded() -> anyio.CancelScope:
    """A scope in which a cancellation already delivered is finished without being delivered
    again: what an interrupted plan, a stopped feed or a run's release awaits to its end.

    asyncio cancels once (``Task.cancel``, ``wait_for``, ``timeout``, ``TaskGroup``); anyio's
    cancel scopes (``anyio.move_on_after`` / ``fail_after``, Starlette's and FastAPI's task
    groups) cancel again at every await until the task leaves them, which cut the finishing
    short: a message left ``queued``, a run's claims left ``sending`` (tests/test_verify8.py),
    a request's rate-limit place kept until its lease ended (tests/test_limits_anyio.py).
    Inside this scope an enclosing anyio scope does not cancel; a further ``Task.cancel()``
    still does, at once (a second Ctrl-C, a caller that means it)."""
    return anyio.CancelScope(shield=True)


async def outlast(work: Awaitable[T]) -> T:
    """Await ``work`` (in a task of its own) to its end through every cancellation of the caller,
    an anyio scope's and a further ``Task.cancel()`` alike: a cleanup that must not be cut short
    because what it leaves would be nobody's (a campaign or a contact list whose creation was
    cancelled, finished meanwhile: its id known to nobody). Meant for a caller's ``except
    CancelledError`` block, which raises the cancellation once this returns; the cleanup must be
    bounded (one chunk of work and a removal)."""
    task = asyncio.ensure_future(work)
    with shielded():
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():
                    raise
    return await task  # (not reached: a shielded scope has no cancellation of its own to swallow)
