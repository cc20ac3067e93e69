"""A cancel scope that lets a cancellation already delivered finish its cleanup (see
:func:`shielded`); kept apart so the traffic gates and the kernel's drivers share one rule."""

from __future__ import annotations

import anyio

__all__ = ["shielded"]


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
