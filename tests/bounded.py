"""Bounded waits for what a test started (imported by the tests that need them).

A test interrupted by pytest-timeout (an exception in the main thread) still runs its
``finally`` blocks and fixture teardowns; one that waits there without a limit for a child
process or a thread that never ends hangs the worker for good. These wait generously, then
end the child (SIGKILL) and say so."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any


def reap(pid: int, timeout: float = 60.0) -> int:
    """``os.waitpid(pid, 0)`` for a forked child, at most ``timeout`` seconds: a child still
    running then (a fork that deadlocked on a lock another thread held) is SIGKILLed and reaped,
    and AssertionError says so. Returns the wait status."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"forked child {pid} still running after {timeout:g} s: killed")
        time.sleep(0.01)


def drop_schema(dsn: str, schema: str, lock_wait: float = 30.0) -> None:
    """``DROP SCHEMA IF EXISTS schema CASCADE`` on PostgreSQL server ``dsn``, in a fixture's
    teardown. A connection the interrupted test left open (a lock held, a transaction idle) made
    the drop wait for it for ever: the drop waits at most ``lock_wait`` seconds for a lock, then
    the server ends the sessions holding locks on the schema's tables and the drop runs again."""
    import psycopg
    from psycopg import sql

    drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(lock_wait * 1000)}ms")))
        try:
            conn.execute(drop)
        except psycopg.errors.LockNotAvailable:
            conn.execute("SELECT pg_terminate_backend(l.pid, 10000) FROM pg_locks l "
                         "JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE n.nspname = %s AND l.pid <> pg_backend_pid()", (schema,))
            conn.execute(drop)


def in_child(work: Callable[[], object]) -> tuple[int, Any]:
    """Fork; the child runs ``work`` and sends back what it returned (or the error's type and
    text); returns ``(pid, read)``: ``read()`` waits for the child and gives its answer."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            try:
                answer: object = ["ok", work()]
            except BaseException as exc:
                answer = ["error", type(exc).__name__, str(exc)]
            os.write(write, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(write)

    def result() -> Any:
        reap(pid)
        with os.fdopen(read, "rb") as fh:
            return json.loads(fh.read().decode())

    return pid, result
