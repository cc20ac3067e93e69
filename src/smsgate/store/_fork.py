"""A store made before its process forked (a module-level store under ``gunicorn --preload``,
``multiprocessing``'s ``fork`` start method, ``os.fork()``), used in the forked child.

The child's copy of the store would use the parent's connections: SQLite forbids carrying a
connection across a fork, and two processes on one PostgreSQL connection write each other's
statements into one session. In a child, each store made before the fork opens connections of
its own (:meth:`_after_fork`), and what it inherited is kept in :data:`INHERITED`, never used,
closed or finalized there (closing a PostgreSQL connection sends the server its end, on the
parent's session). Locks are made again too: another thread of the parent may have held one
at the fork, and no thread of the child would ever release it.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["INHERITED", "reopen_after_fork"]


class _Reopens(Protocol):
    def _after_fork(self) -> None: ...


_STORES: weakref.WeakSet[_Reopens] = weakref.WeakSet()

#: what a forked child inherited of its parent's stores' connections (see the module doc)
INHERITED: list[object] = []


def reopen_after_fork(store: _Reopens) -> None:
    """Have ``store._after_fork()`` called in every child this process forks from now on."""
    _STORES.add(store)


def _after_fork() -> None:
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
