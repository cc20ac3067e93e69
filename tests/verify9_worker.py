"""One runner process of the verify9 harness (tests/test_verify9.py), stopped inside a
PostgreSQL transaction.

Run as ``python tests/verify9_worker.py MODE CONFIG.json CAMPAIGN_ID`` (``run`` / ``arun``, as
tests/verify6_worker.py). With ``V9_STOP_SQL`` (a piece of SQL) in its environment, it SIGSTOPs
itself right after the ``V9_STOP_AT``-th (default 1) statement containing it has run, inside
that statement's transaction (its row locks held); ``V9_IDLE_TX`` sets
``PostgresStore.idle_in_transaction_timeout`` (seconds) first. With ``V9_STOP_SEND=N``, it
SIGSTOPs itself when its ``N``-th request has passed the transport's fence, before the HTTP
client takes a connection for it (``arun``: holding its slot in ``smsgate.aio.AiohttpClient``;
``run``: entering ``httpx.Client.send``) (a pause of the whole
process there: a VM paused, a laptop asleep). Its run's result, or the error it ended with (a
``StoreError`` once the server ended the stopped session), is printed as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from typing import Any

import psycopg

import verify6_worker as v6
from smsgate.store.postgres import PostgresStore


class _StopAt:
    """Stops the process (SIGSTOP) the ``at``-th time it is called, in the calling thread: the
    process stops right there (a ``kill()`` of the process may be taken by another thread, and
    the caller runs on a moment: a request's headers written, a transaction committed)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.seen += 1
            now = self.seen == self.at
        if now:
            print("stopping", flush=True)
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


def _stop_at_send(at: int, mode: str) -> None:
    """SIGSTOP at the ``at``-th request handed to the HTTP client, before it takes a connection:
    ``AiohttpClient._request`` (``arun``), ``httpx.Client.send`` (``run``: before httpcore)."""
    import httpx

    from smsgate.aio import AiohttpClient

    owner: Any = AiohttpClient if mode == "arun" else httpx.Client
    name = "_request" if mode == "arun" else "send"
    request = getattr(owner, name)
    stop = _StopAt(at)

    def stopping(self: Any, *args: Any, **kw: Any) -> Any:
        stop()
        return request(self, *args, **kw)

    setattr(owner, name, stopping)


def _stop_at_sql(piece: str, at: int) -> None:
    """SIGSTOP right after the ``at``-th statement containing ``piece`` ran, inside its transaction."""
    execute = psycopg.Connection.execute
    stop = _StopAt(at)

    def stopping(self: Any, query: Any, *args: Any, **kw: Any) -> Any:
        cur = execute(self, query, *args, **kw)
        if isinstance(query, str) and piece in query:
            stop()
        return cur

    psycopg.Connection.execute = stopping  # type: ignore[method-assign]


def _install(mode: str) -> None:
    if os.environ.get("V9_STOP_SEND"):
        _stop_at_send(int(os.environ["V9_STOP_SEND"]), mode)
    if os.environ.get("V9_IDLE_TX"):
        PostgresStore.idle_in_transaction_timeout = float(os.environ["V9_IDLE_TX"])
    if piece := os.environ.get("V9_STOP_SQL"):
        _stop_at_sql(piece, int(os.environ.get("V9_STOP_AT", "1")))


def main(argv: list[str]) -> None:
    mode, config_path, cid = argv[1], argv[2], argv[3]
    _install(mode)
    config = v6._config(config_path)
    try:
        result = v6._run(config, cid) if mode == "run" else asyncio.run(v6._arun(config, cid))
    except Exception as exc:  # the stopped runner's transaction was ended by the server
        print(json.dumps({"error": type(exc).__name__, "detail": str(exc)[:500]}), flush=True)
        sys.exit(3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
