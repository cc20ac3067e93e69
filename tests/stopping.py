"""Landing a gateway's close or a caller's cancellation in the middle of a chunked work (a
campaign's preparation, a contact list's import), from the working thread: shared by the tests
of ``smsgate._stop``'s users."""

from __future__ import annotations

import asyncio
from typing import Any

from smsgate import GatewayClosed


def until_refused(gw: Any, tenant: str = "acme") -> None:
    """Return once ``gw``'s close (begun in another thread, or on the loop) has begun: the
    gateway refuses new use, and what stops work under way is set."""
    while True:
        try:
            gw.tenant(tenant)
        except GatewayClosed:
            return


def cancel_and_wait(loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` (running on ``loop``) from another thread, and return once the
    cancellation has reached it (its ``except CancelledError`` block ran up to its first
    await): a cancel seen at once, not a race with the rest of the chunk."""

    async def cancel() -> None:
        task.cancel()
        for _ in range(3):  # the task's wake-up was scheduled before this coroutine's
            await asyncio.sleep(0)

    asyncio.run_coroutine_threadsafe(cancel(), loop).result()
