"""A gateway or a store made before its process forked (``gunicorn --preload`` with a
module-level gateway or store, ``multiprocessing``'s ``fork`` start method, ``os.fork()``), used
in the forked child.

Before: the child's gateway wrote its requests on the parent's kept-alive connection while the
parent wrote its own: the vendor read ``Invalid JSON body`` (two processes' bytes on one socket),
the child's send timed out as ``unknown``; a store made before the fork was used through the
parent's SQLite connection (which SQLite forbids) or the parent's PostgreSQL session, and a
lock another thread of the parent held at the fork was never released in the child. Now a
gateway made before the fork is refused in the child (``GatewayForked``; nothing sent), and a
store made before it opens connections of its own there. Checked from the Squad emulator's own
record of requests and from the PostgreSQL server's sessions."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bounded import in_child
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway, GatewayClosed, GatewayForked
from smsgate.config import Settings, TenantConfig
from smsgate.store import open_store

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _config(store: str, squad: Any) -> Settings:
    return Settings(store=store, tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings()})})


def _numbers(squad: Any) -> list[str]:
    return sorted(m["phone_number"] for r in squad.processed("/sms/send/instant") for m in r.json()["messages"])


def test_a_gateway_used_before_a_fork_is_refused_in_the_child_and_works_on_in_the_parent(
        sms_emulator: Callable[..., Any], tmp_path: Path) -> None:
    squad = sms_emulator("squad")
    gw = Gateway(_config(f"sqlite:///{tmp_path / 'sms.db'}", squad))
    acme = gw.tenant("acme")
    assert acme.send("08031234500", "before the fork").status == "sent"  # a kept-alive connection now

    def child() -> object:
        refused = []
        for use in (lambda: acme.send("08031234600", "from the child"),  # a handle made before
                    lambda: gw.tenant("acme").send("08031234601", "from the child"),
                    lambda: acme.messages()):
            try:
                use()
            except GatewayForked as exc:
                assert isinstance(exc, GatewayClosed) and exc.parent == os.getppid()
                refused.append(str(exc))
        return refused

    _, result = in_child(child)
    mine = [acme.send(f"080312347{i:02d}", f"parent {i}") for i in range(20)]  # meanwhile
    answer = result()
    assert answer[0] == "ok" and len(answer[1]) == 3, answer
    assert "made in process" in answer[1][0] and "make a gateway in each process" in answer[1][0]
    assert [r.status for r in mine] == ["sent"] * 20
    assert len({r.provider_message_id for r in mine}) == 20
    assert _numbers(squad) == sorted(["08031234500", *(f"080312347{i:02d}" for i in range(20))])
    gw.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_store_made_before_a_fork_gets_connections_of_its_own_in_the_child(
        sms_emulator: Callable[..., Any], tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    """The documented one-store pattern (``Gateway(..., store=store)``), the store made at import
    time, the gateways in each process after the fork."""
    squad = sms_emulator("squad")
    url = f"sqlite:///{tmp_path / 'sms.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = open_store(url)
    gw = Gateway(_config(url, squad), store=store)
    assert gw.tenant("acme").send("08031234500", "before the fork").status == "sent"

    def session() -> object:  # what the child's statements run on
        if backend == "postgres":
            with store._conn() as conn:  # type: ignore[attr-defined]
                return conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        return id(store._conn)  # type: ignore[attr-defined]

    parents = session()

    def child() -> object:
        own = Gateway(_config(url, squad), store=store)
        sent = [own.tenant("acme").send(f"080312346{i:02d}", f"child {i}").status for i in range(20)]
        return [session(), sent]

    _, result = in_child(child)
    mine = [gw.tenant("acme").send(f"080312347{i:02d}", f"parent {i}").status for i in range(20)]
    answer = result()
    assert answer[0] == "ok", answer
    childs, sent = answer[1]
    assert childs != parents  # before: the parent's connection (SQLite) or session (PostgreSQL)
    assert sent == ["sent"] * 20 and mine == ["sent"] * 20
    assert len(_numbers(squad)) == 41 and len(set(_numbers(squad))) == 41
    assert sorted(m.status.value for m in gw.tenant("acme").messages(limit=100)) == ["sent"] * 41
    gw.close()
    store.close()


def test_a_lock_held_by_another_thread_at_the_fork_does_not_stop_the_childs_store(tmp_path: Path) -> None:
    """Another thread of the parent inside a store call at the fork (its lock held): the child's
    first statement waited for ever on a lock no thread of the child would release."""
    store = open_store(f"sqlite:///{tmp_path / 'sms.db'}")
    held, release = threading.Event(), threading.Event()

    def busy() -> None:
        with store._lock:  # type: ignore[attr-defined]  # as a store call in another thread holds it
            held.set()
            release.wait()

    thread = threading.Thread(target=busy)
    thread.start()
    held.wait()
    try:
        _, result = in_child(lambda: store.list_campaigns("acme"))
        answer = result()  # (reap: a child still waiting after 60 s is killed, and this fails)
    finally:
        release.set()
        thread.join()
    assert answer == ["ok", []], answer
    store.close()
