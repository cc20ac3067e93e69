"""Idempotency keys attacked: concurrent sends with one key from threads and processes
(SQLite and PostgreSQL), and one key reused for a different message.

What reached the vendor is read from the echo emulator's own record, never from smsgate's log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway, SendResult
from smsgate.plugins import PluginManager
from smsgate.testing import LiveServer

HERE = Path(__file__).parent

def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm



@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'idem.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def vendor() -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    record: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(record)) as server:
        yield server.url, record


def config(url: str, store: str) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}


def test_one_key_from_eight_threads_reaches_the_vendor_once(
    store_url: str, vendor: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    url, record = vendor
    with Gateway(config(url, store_url), plugins=plugins()) as gw:
        gw.store.migrate()
        for round_ in range(5):
            key = f"order-{round_}"
            barrier = threading.Barrier(8, timeout=60)  # a party that never came: an error, not a hang
            results: list[SendResult] = []
            errors: list[BaseException] = []

            def send(key: str = key, barrier: threading.Barrier = barrier) -> None:
                tenant = gw.tenant("acme")
                barrier.wait()
                try:
                    results.append(tenant.send("08031234567", "your order", idempotency_key=key))
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=send) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            assert len({r.message_id for r in results}) == 1
        assert len(record) == 5, record


def test_one_key_from_four_processes_reaches_the_vendor_once(
    tmp_path: Path, store_url: str, vendor: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    url, record = vendor
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(config(url, store_url)))
    with Gateway(config(url, store_url), plugins=plugins()) as gw:
        gw.store.migrate()
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    for round_ in range(3):
        go = tmp_path / f"go-{round_}"
        procs = [subprocess.Popen([sys.executable, str(HERE / "idempotency_worker.py"), str(cfg), str(go),
                                   f"key-{round_}", "08031234567", "your order"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
        deadline = time.monotonic() + 120  # every worker loaded before the start
        while len(list(tmp_path.glob(f"{go.name}.ready-*"))) < len(procs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker died"
            time.sleep(0.01)
        go.touch()
        answers = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()[-2000:]
            answers.append(json.loads(out))
        assert len({a["message_id"] for a in answers}) == 1, answers
    assert len(record) == 3, record


def test_a_key_reused_for_another_message_sends_nothing_and_answers_with_the_first(
    store_url: str, vendor: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    """The documented rule (docs/concepts.md): the key names the message, whatever else
    the call says. The answer is the first message's, so its ``to`` tells the caller."""
    url, record = vendor
    with Gateway(config(url, store_url), plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        first = acme.send("08031234567", "your order shipped", idempotency_key="order-9")
        other = acme.send("08031234568", "a different text", idempotency_key="order-9")
        assert other.message_id == first.message_id
        assert other.to == "+2348031234567"
        many = acme.send_many([{"to": "08031234569", "text": "third", "idempotency_key": "order-9"}])
        assert [(r.message_id, r.to) for r in many] == [(first.message_id, "+2348031234567")]
        assert [m.to for m in acme.messages()] == ["+2348031234567"]
    assert [m["to"] for m in record.values()] == ["+2348031234567"]


@pytest.mark.parametrize(("field", "value", "why"), [
    ("idempotency_key", "", "blank"),
    ("idempotency_key", "   ", "blank"),
    ("idempotency_key", "order\x00-1", "NUL"),
    ("idempotency_key", os.urandom(1500).hex(), "longer than 2000 bytes"),
    ("reference", "ref\x00", "NUL"),
    ("sender", "AC\x00ME", "NUL"),
])
def test_a_key_or_field_no_store_can_keep_is_refused_before_anything_is_sent(
    store_url: str, vendor: tuple[str, dict[str, dict[str, Any]]], field: str, value: str, why: str
) -> None:
    """A blank key (``request.headers.get("Idempotency-Key", "")``) would bind every
    message without one to one key: the first sent, every later one silently its replay.
    NUL characters and keys over PostgreSQL's index limit failed there with psycopg's own
    error (SQLite kept them): both stores now refuse them alike, naming the field, and
    ``send_many`` rejects that recipient only (a call-wide ``sender`` is refused up front)."""
    from smsgate.errors import ValidationError

    url, record = vendor
    with Gateway(config(url, store_url), plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError, match=why) as caught:
            acme.send("08031234567", "hi", **{field: value})
        assert caught.value.field == field
        rows: list[dict[str, Any]] = [{"to": "08031234561", "text": "ok"}, {"to": "08031234562", "text": "hi"}]
        if field == "sender":  # a call-wide argument: refused once, up front (nothing logged)
            with pytest.raises(ValidationError, match=why) as caught:
                acme.send_many(rows, sender=value)
            assert caught.value.field == "sender"
            assert acme.messages() == []
        else:
            rows[1][field] = value
            results = acme.send_many(rows)
            assert [r.status.value for r in results] == ["submitted", "rejected"]
            assert field in (results[1].error or "")
        assert acme.messages(to="08031234567") == []
    assert "+2348031234567" not in {m["to"] for m in record.values()}
