"""Ctrl-C in a long-running command: one line saying what was kept and how to resume, exit 130.

Every command that can run for long (``campaign create`` and ``run``, ``status sync``,
``optout sync``, ``serve``, ``sandbox``, ``demo``) runs its work inside
:func:`on_interrupt` with its own hint, e.g.
``interrupted: 120 sent so far; run 'smsgate campaign run cmp_...' again to resume``.
The hint is written (or computed, after the interrupt) by the command, from what its code
keeps: each command's docstring says what that is.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, NoReturn, TypeVar

import typer

from smsgate.cli._common import err_console

__all__ = ["INTERRUPTED_EXIT", "interrupted", "on_interrupt", "run_async"]

_T = TypeVar("_T")

#: The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED_EXIT = 130


def interrupted(hint: str) -> NoReturn:
    """Print ``interrupted: <hint>`` as one line on stderr; exit 130 (:data:`INTERRUPTED_EXIT`)."""
    err_console.print(f"interrupted: {hint}", soft_wrap=True, highlight=False)
    raise typer.Exit(INTERRUPTED_EXIT)


@contextlib.contextmanager
def on_interrupt(hint: str | Callable[[], str]) -> Iterator[None]:
    """Turn Ctrl-C (:class:`KeyboardInterrupt`) inside the block into :func:`interrupted` with ``hint``.

    A callable ``hint`` is called after the interrupt (to read what was kept from the store,
    or to clean up first); if it fails in turn, :func:`interrupted` still ends the command with
    a line of its own and exit 130, never a traceback.
    """
    try:
        yield
    except KeyboardInterrupt:
        with _presses_ignored():  # another Ctrl-C while the hint is read: still one line, exit 130
            if callable(hint):
                try:
                    text = hint()
                except Exception as exc:  # the store itself was interrupted, say: still one line
                    text = f"what was kept could not be read ({type(exc).__name__}: {exc})"
            else:
                text = hint
        interrupted(text)


@contextlib.contextmanager
def _presses_ignored() -> Iterator[None]:
    """Ignore SIGINT inside the block (main thread only: elsewhere signals are not ours)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Stopped:
    """What :func:`_stop_once` returns when Ctrl-C stopped the run."""


async def _stop_once(main: Coroutine[Any, Any, _T]) -> _T | _Stopped:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    pressed = False

    def on_sigint() -> None:
        nonlocal pressed
        if not pressed and task is not None:
            pressed = True
            task.cancel()

    # SIGTERM (docker stop, systemd, Kubernetes) stops the run as Ctrl-C does, not the process at once
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not Unix / not the main thread
            loop.add_signal_handler(signum, on_sigint)  # replaces asyncio.run's handler; removed on close
    try:
        return await main
    except asyncio.CancelledError:
        if pressed:
            return _Stopped()
        raise


def run_async(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` for a command: Ctrl-C cancels ``main`` once, then raises
    :class:`KeyboardInterrupt` (for :func:`on_interrupt`) when it has stopped.

    asyncio.run's own SIGINT handler raises :class:`KeyboardInterrupt` at a second Ctrl-C
    wherever the code happens to be, usually inside one of the run's tasks: that task dies
    with it (``Task exception was never retrieved`` and a traceback), the clean stop the first
    press started is cut short, and the interrupt may escape the command. Here SIGINT is read
    by the event loop (``loop.add_signal_handler``): the first press cancels ``main``, later
    ones are ignored while it stops (requests in flight end within their timeout), until the
    loop is closed. Where the loop cannot handle signals (Windows, not the main thread),
    Ctrl-C raises as it would in ``asyncio.run``. SIGTERM (``docker stop``, systemd,
    Kubernetes) is handled the same way: a clean stop, exit 130, instead of the process ending
    with requests in flight and its claims held until their lease ends.
    """
    result = asyncio.run(_stop_once(main))
    if isinstance(result, _Stopped):
        raise KeyboardInterrupt
    return result
