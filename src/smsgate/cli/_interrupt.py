"""Ctrl-C in a long-running command: one line saying what was kept and how to resume, exit 130.

Every command that can run for long (``campaign create`` and ``run``, ``status sync``,
``optout sync``, ``serve``, ``sandbox``, ``demo``) runs its work inside
:func:`on_interrupt` with its own hint, e.g.
``interrupted: 120 sent so far; run 'smsgate campaign run cmp_...' again to resume``.
The hint is written (or computed, after the interrupt) by the command, from what its code
keeps: each command's docstring says what that is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NoReturn

import typer

from smsgate.cli._common import err_console

__all__ = ["INTERRUPTED_EXIT", "interrupted", "on_interrupt"]

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
        if callable(hint):
            try:
                text = hint()
            except Exception as exc:  # the store itself was interrupted, say: still one line
                text = f"what was kept could not be read ({type(exc).__name__}: {exc})"
        else:
            text = hint
        interrupted(text)
