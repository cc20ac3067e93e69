"""Retention from the outside: ``tenant.purge``, ``gw.purge`` (sync and async), ``smsgate
store purge`` and the ``smsgate.purge`` Celery task, on an SQLite store."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsgate import AsyncGateway, Gateway
from smsgate.cli import app
from smsgate.errors import ValidationError
from smsgate.models import Status, utcnow
from smsgate.store import open_store
from smsgate.store.base import Store
from store_contract import make_record

runner = CliRunner()


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "smsgate.toml"
    path.write_text(f"""
store = "sqlite:///{tmp_path / "purge.db"}"
[tenants.acme]
default_region = "NG"
[tenants.acme.providers.one]
plugin = "sandbox"
[tenants.globex]
default_region = "NG"
[tenants.globex.providers.one]
plugin = "sandbox"
""")
    return path


def _seed(store: Store) -> None:
    """Per tenant (acme, globex and gone, a tenant no longer configured): a message
    delivered 100 days ago, one still ``sent`` 100 days ago, one delivered yesterday."""
    old, recent = utcnow() - timedelta(days=100), utcnow() - timedelta(days=1)
    for tenant in ("acme", "globex", "gone"):
        store.insert_messages([
            make_record(f"{tenant}-old", tenant=tenant, status=Status.DELIVERED).model_copy(
                update={"created_at": old, "updated_at": old}),
            make_record(f"{tenant}-waiting", tenant=tenant, status=Status.SENT).model_copy(
                update={"created_at": old, "updated_at": old}),
            make_record(f"{tenant}-recent", tenant=tenant, status=Status.DELIVERED).model_copy(
                update={"created_at": recent, "updated_at": recent}),
        ])


def _left(store: Store) -> dict[str, set[str]]:
    return {t: {m.message_id for m in store.list_messages(t)} for t in ("acme", "globex", "gone")}


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = _config(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'purge.db'}")
    _seed(store)
    store.close()
    return path


def test_tenant_and_gateway_purge(cfg: Path) -> None:
    with Gateway(cfg) as gw:
        acme = gw.tenant("acme")
        assert acme.purge(older_than=timedelta(days=90), dry_run=True).messages == 1
        assert acme.purge(older_than=timedelta(days=200)).messages == 0
        assert acme.purge(older_than=timedelta(days=90)).messages == 1
        assert _left(gw.store)["acme"] == {"acme-waiting", "acme-recent"}
        assert _left(gw.store)["globex"] == {"globex-old", "globex-waiting", "globex-recent"}
        # every tenant in the store, configured or not any more
        result = gw.purge(older_than=90 * 86400.0)
        assert (result.messages, result.kept_messages) == (2, 3)
        assert _left(gw.store) == {t: {f"{t}-waiting", f"{t}-recent"} for t in ("acme", "globex", "gone")}
        for bad in (-1, float("inf"), "90 days"):  # "90d" is read as messages(since=) reads it
            with pytest.raises(ValidationError, match="older_than"):
                gw.purge(older_than=bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="batch_size"):
            acme.purge(older_than=1.0, batch_size=0)


def test_async_tenant_and_gateway_purge(cfg: Path) -> None:
    async def main() -> tuple[int, int]:
        async with AsyncGateway(cfg) as gw:
            one = await gw.tenant("acme").purge(older_than=timedelta(days=90))
            rest = await gw.purge(older_than=timedelta(days=90))
            return one.messages, rest.messages

    assert asyncio.run(main()) == (1, 2)


def test_cli_store_purge(cfg: Path, tmp_path: Path) -> None:
    out = runner.invoke(app, ["store", "purge", "--older-than", "90d", "--dry-run", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert "would delete" in out.stdout and "dry run: nothing was deleted" in out.stdout
    out = runner.invoke(app, ["store", "purge", "--older-than", "90d", "-t", "acme", "--json", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) | {"messages": 1, "kept_messages": 1, "dry_run": False} == json.loads(out.stdout)
    out = runner.invoke(app, ["store", "purge", "--older-than", "90d", "--batch-size", "1", "--json",
                              "-c", str(cfg)])
    assert json.loads(out.stdout)["messages"] == 2
    store = open_store(f"sqlite:///{tmp_path / 'purge.db'}")
    assert _left(store) == {t: {f"{t}-waiting", f"{t}-recent"} for t in ("acme", "globex", "gone")}
    store.close()
    # errors: one line, exit 2
    out = runner.invoke(app, ["store", "purge", "--older-than", "90d", "-t", "nope", "-c", str(cfg)])
    assert out.exit_code == 2 and out.output.startswith("error: unknown tenant 'nope'")
    out = runner.invoke(app, ["store", "purge", "--older-than", "ninety", "-c", str(cfg)])
    assert out.exit_code == 2 and "not a duration" in out.output
    out = runner.invoke(app, ["store", "purge", "-c", str(cfg)])
    assert out.exit_code == 2 and "--older-than" in out.output


def test_celery_purge_task(cfg: Path) -> None:
    from celery import Celery

    from smsgate.contrib.celery import configure

    with Gateway(cfg) as gw:
        celery_app = Celery(f"purge-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
        configure(celery_app, gateway=lambda: gw)
        task: Any = celery_app.tasks["smsgate.purge"]
        dry = task.apply(kwargs={"older_than": 90 * 86400, "tenant": "globex", "dry_run": True})
        assert dry.successful(), dry.traceback
        assert dry.result["messages"] == 1 and dry.result["dry_run"] is True
        done = task.apply(kwargs={"older_than": 90 * 86400})
        assert done.successful(), done.traceback
        assert done.result["messages"] == 3 and done.result["kept_messages"] == 3
        assert _left(gw.store) == {t: {f"{t}-waiting", f"{t}-recent"} for t in ("acme", "globex", "gone")}


def test_celery_purge_task_of_a_stored_tenant_needs_no_key(tmp_path: Path) -> None:
    """The ``smsgate.purge`` task given a tenant loaded that tenant (its configuration decrypted)
    before purging it by name: on a worker without the tenants' key it failed, as ``smsgate store
    purge -t`` did (newuser13); both now purge by name."""
    pytest.importorskip("cryptography")
    from celery import Celery

    from smsgate.contrib.celery import configure
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants, new_key

    url = f"sqlite:///{tmp_path / 'sms.db'}"
    with open_store(url) as store:
        StoredTenants(store, keys=[new_key()]).add("acme", {"default_region": "NG", "providers": {"main": {
            "plugin": "squad", "sender": "ACME", "credentials": {"secret_key": "sk_test_x"}}}})
    store = open_store(url)
    with Gateway({"store": url, "tenants": {}}, store=store, tenants=StoredTenants(store, keys=[new_key()])) as gw:
        celery_app = Celery(f"purge-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
        configure(celery_app, gateway=lambda: gw)
        done = celery_app.tasks["smsgate.purge"].apply(kwargs={"older_than": 86400, "tenant": "acme"})
        assert done.successful(), done.traceback
        assert done.result["dry_run"] is False
