"""Tenants at run time (smsgate.tenants): added, rotated and removed without rebuilding the
Gateway, through the echo emulator over loopback HTTP, with stores on real SQLite and PostgreSQL;
secrets never in plain text in the database, logs or reprs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Gateway
from smsgate.cli import app
from smsgate.errors import AuthFailed, ConfigError, UnknownProvider, UnknownTenant
from smsgate.plugins import PluginManager
from smsgate.store import Store
from smsgate.store.sqlite import SQLiteStore
from smsgate.tenants import StoredTenants, TenantSource
from smsgate.testing import EmulatorControl, LiveServer

OLD_KEY = "old-echo-key-that-must-not-leak-7f3a"  # a credential the emulator refuses
KEY = Fernet.generate_key().decode()
runner = CliRunner()


@pytest.fixture(scope="module")
def emulator() -> Iterator[LiveServer]:
    server = LiveServer(create_emulator()).start()
    yield server
    server.stop()


@pytest.fixture
def ctl(emulator: LiveServer) -> EmulatorControl:
    c = EmulatorControl(emulator.url)
    c.reset()
    return c


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


@pytest.fixture(autouse=True)
def echo_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The echo plugin as if installed: a tenant is checked against the installed plugins
    before it is stored (``StoredTenants.add``, ``smsgate tenant add``)."""
    import smsgate.plugins

    monkeypatch.setattr(smsgate.plugins, "_default", plugins())


def tenant_cfg(url: str, api_key: str = API_KEY) -> dict[str, Any]:
    return {"default_region": "NG", "sender": "ACME",
            "providers": {"main": {"plugin": "echo", "base_url": url, "credentials": {"api_key": api_key}}}}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tenants.db'}"
        return
    from test_store_postgres import DSN, drop_schema, require_postgres, unique_schema

    require_postgres()
    schema = unique_schema()
    yield f"{DSN}?options=-csearch_path%3D{schema}"
    drop_schema(schema)


def open_store_at(url: str) -> Store:
    if url.startswith("postgresql"):
        from smsgate.store.postgres import PostgresStore

        base, _, options = url.partition("?options=-csearch_path%3D")
        store: Store = PostgresStore(base, schema=options)
    else:
        store = SQLiteStore(url.removeprefix("sqlite:///"))
    store.migrate()
    return store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store_at(store_url)
    yield s
    s.close()


def gateway(store: Store, tenants: TenantSource, **kw: Any) -> Gateway:
    return Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(), tenants=tenants, **kw)


def raw_database_text(store: Store) -> bytes:
    """Everything the database holds about stored tenants, as the database has it."""
    if isinstance(store, SQLiteStore):
        store.close()  # checkpoint the WAL into the file, then read the file's bytes
        data = Path(store.path).read_bytes()
        wal = Path(store.path + "-wal")
        return data + (wal.read_bytes() if wal.exists() else b"")
    from smsgate.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    with store._conn() as conn:
        rows = conn.execute("SELECT name, config, secrets, version FROM stored_tenants").fetchall()
    return repr(rows).encode()


def test_added_rotated_and_removed_at_run_time(store: Store, emulator: LiveServer, ctl: EmulatorControl,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tenants = StoredTenants(store, keys=KEY)
    with gateway(store, tenants, tenant_refresh=0) as gw:
        with pytest.raises(UnknownTenant, match="'acme'"):
            gw.tenant("acme")
        # added at run time: sends immediately, through the same gateway
        tenants.add("acme", tenant_cfg(emulator.url, OLD_KEY))
        acme = gw.tenant("acme")
        with pytest.raises(AuthFailed):
            acme.send("08031234567", "first")
        assert [r.headers["x-api-key"] for r in ctl.requests("/messages", "POST")] == [OLD_KEY]
        # rotated: the next request (same handle) carries the new key, and is accepted
        tenants.rotate("acme", "main", {"api_key": API_KEY})
        result = acme.send("08031234567", "second")
        assert result.provider == "main" and result.provider_message_id
        posted = ctl.requests("/messages", "POST")
        assert [r.headers["x-api-key"] for r in posted] == [OLD_KEY, API_KEY]
        assert [r.status for r in posted] == [401, 201]
        # removed: refused with an error naming it, from a new handle and from the old one
        assert tenants.remove("acme") and not tenants.remove("acme")
        with pytest.raises(UnknownTenant, match=r"unknown tenant 'acme'.*tenant source"):
            gw.tenant("acme")
        with pytest.raises(UnknownTenant, match="'acme'"):
            acme.send("08031234567", "third")
        assert len(ctl.requests("/messages", "POST")) == 2
        assert "acme" not in repr(gw.tenants) and OLD_KEY not in repr(gw.tenants)
    for secret in (OLD_KEY, API_KEY, KEY):
        assert secret not in caplog.text
        assert secret not in repr(tenants) and secret not in repr(store.list_tenant_rows())


def test_stored_secrets_are_only_ciphertext_in_the_database(store: Store, emulator: LiveServer) -> None:
    tenants = StoredTenants(store, keys=KEY)
    tenants.add("acme", tenant_cfg(emulator.url, OLD_KEY))
    tenants.add("globex", tenant_cfg(emulator.url, API_KEY))
    tenants.rotate("acme", "main", {"api_key": "rotated-" + OLD_KEY})
    raw = raw_database_text(store)
    assert b"acme" in raw and b"globex" in raw and emulator.url.encode() in raw  # the rows are there
    for secret in (OLD_KEY, API_KEY, KEY, "rotated-" + OLD_KEY):
        assert secret.encode() not in raw


OPTION_SECRET = "sk_live_put-under-options-by-mistake-91c2"


@pytest.mark.parametrize("plugin", ["echo", "squad"])
def test_a_secret_under_options_is_refused_and_never_stored(
        store: Store, emulator: LiveServer, plugin: str, caplog: pytest.LogCaptureFixture) -> None:
    """A setting the plugin declares secret (``Provider.secret_names``) passed under ``options``
    is refused, naming the key and where it belongs, never its value; nothing is stored.
    The echo plugin has no options model (options were stored verbatim); squad's forbids
    unknown options (the error now says what to do)."""
    caplog.set_level(logging.DEBUG)
    pm = plugins()
    if plugin == "squad":
        import smsgate_squad

        pm.register(smsgate_squad, name="squad")
    tenants = StoredTenants(store, keys=KEY, plugins=pm)
    settings = {"plugin": plugin, "base_url": emulator.url, "sender": "ACME",
                "credentials": {"api_key": API_KEY, "secret_key": "sandbox_sk_ok"}}
    for key in ("secret_key", "Secret-Key"):
        with pytest.raises(ConfigError) as refused:
            tenants.add("acme", {"providers": {"main": {**settings, "options": {key: OPTION_SECRET}}}})
        message = str(refused.value)
        assert f"options.{key}: a secret of this plugin: pass it as credentials.{key}" in message
        assert refused.value.field == f"tenants.acme.providers.main.options.{key}"
        assert OPTION_SECRET not in message and OPTION_SECRET not in repr(refused.value)
        assert refused.value.__cause__ is None and refused.value.__context__ is None
    assert tenants.names() == [] and store.tenants_version() == 0
    # where it belongs it is accepted, and stored encrypted
    tenants.add("acme", {"providers": {"main": {**settings, "credentials": {
        "api_key": API_KEY, "secret_key": OPTION_SECRET}}}})
    config, _ = tenants.get("acme") or pytest.fail("not stored")
    assert OPTION_SECRET not in repr(config) and OPTION_SECRET not in repr(tenants)
    assert OPTION_SECRET not in caplog.text
    assert OPTION_SECRET.encode() not in raw_database_text(store)


def test_cli_tenant_add_refuses_a_secret_under_options(tmp_path: Path, emulator: LiveServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cli.db"
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{db}"\n')
    monkeypatch.setenv("SMSGATE_TENANT_KEY", KEY)
    toml = tmp_path / "acme.toml"
    toml.write_text(f'[providers.main]\nplugin = "echo"\nbase_url = "{emulator.url}"\n'
                    f'options = {{ api_key = "{OPTION_SECRET}" }}\n')
    out = runner.invoke(app, ["tenant", "add", "acme", str(toml), "--config", str(cfg)])
    assert out.exit_code == 2, out.output
    assert "options.api_key: a secret of this plugin" in out.output and "credentials.api_key" in out.output
    assert OPTION_SECRET not in out.output
    assert OPTION_SECRET.encode() not in db.read_bytes()


def test_key_rotation_with_several_keys(tmp_path: Path, emulator: LiveServer) -> None:
    store = SQLiteStore(str(tmp_path / "k.db"))
    store.migrate()
    old = StoredTenants(store, keys=KEY)
    old.add("acme", tenant_cfg(emulator.url))
    new_key = Fernet.generate_key().decode()
    both = StoredTenants(store, keys=f"{new_key},{KEY}")  # the new key first: it encrypts
    assert both.get("acme") is not None  # the old key still decrypts
    assert both.rekey() == 1
    only_new = StoredTenants(store, keys=new_key)
    found = only_new.get("acme")
    assert found is not None and found[0].providers["main"].secret("api_key") == API_KEY
    with pytest.raises(ConfigError, match="cannot be decrypted") as info:
        StoredTenants(store, keys=KEY).get("acme")  # the old key alone no longer works
    assert KEY not in str(info.value)
    with pytest.raises(ConfigError, match="not a Fernet key") as bad:
        StoredTenants(store, keys="not-a-key-secret").get("acme")
    assert "not-a-key-secret" not in str(bad.value)
    with pytest.raises(ConfigError, match="SMSGATE_TENANT_KEY"):
        StoredTenants(store, environ={}).get("acme")
    store.close()


def test_config_file_tenants_win_and_keep_working(store: Store, emulator: LiveServer, ctl: EmulatorControl,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    tenants = StoredTenants(store, keys=KEY)
    tenants.add("acme", tenant_cfg(emulator.url, OLD_KEY))  # shadowed by the file's acme
    cfg = {"store": "memory://", "tenants": {"acme": tenant_cfg(emulator.url)}}
    with Gateway(cfg, store=store, plugins=plugins(), tenants=tenants) as gw:
        assert gw.tenant("acme").send("08031234567", "hi").status.value == "submitted"
    assert [r.headers["x-api-key"] for r in ctl.requests("/messages", "POST")] == [API_KEY]
    assert "configuration's is used" in caplog.text


def test_invalid_tenant_config_is_refused_and_nothing_stored(store: Store) -> None:
    tenants = StoredTenants(store, keys=KEY)
    with pytest.raises(ConfigError, match="routes"):
        tenants.add("acme", {"providers": {"main": {"plugin": "echo", "credentials": {"api_key": OLD_KEY}}},
                             "routes": [{"prefixes": ["+234"], "providers": ["missing"]}]})
    assert tenants.names() == [] and store.tenants_version() == 0
    # checked as 'smsgate config check' checks every tenant, before anything is stored
    with pytest.raises(ConfigError, match="no providers") as empty:
        tenants.add("acme", {"providers": {}})
    assert empty.value.field == "tenants.acme.providers"
    with pytest.raises(UnknownProvider) as unknown:
        tenants.add("acme", {"providers": {"main": {"plugin": "nosuch", "base_url": "http://127.0.0.1:9"}}})
    assert unknown.value.field == "tenants.acme.providers.main.plugin"
    assert str(unknown.value).startswith("tenants.acme.providers.main.plugin: unknown provider plugin 'nosuch'")
    with pytest.raises(ConfigError, match="base_url is required") as no_url:
        tenants.add("acme", {"providers": {"main": {"plugin": "echo"}}})
    assert no_url.value.field == "tenants.acme.providers.main.base_url"
    assert tenants.names() == [] and store.tenants_version() == 0
    valid = {"providers": {"main": {"plugin": "echo", "base_url": "http://127.0.0.1:9"}}}
    tenants.add("acme", valid)
    with pytest.raises(ConfigError, match="already stored"):
        tenants.add("acme", valid)
    with pytest.raises(UnknownProvider):  # a replacement is checked too, and the stored one kept
        tenants.update("acme", {"providers": {"main": {"plugin": "nosuch", "base_url": "http://127.0.0.1:9"}}})
    assert tenants.info()[0].providers == {"main": "echo"}
    with pytest.raises(ConfigError, match="no provider 'nope'"):
        tenants.rotate("acme", "nope", {"api_key": "x"})
    with pytest.raises(UnknownTenant, match="'ghost'"):
        tenants.rotate("ghost", "main", {"api_key": "x"})


WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from reference_provider import EchoPlugin
    from smsgate import Gateway
    from smsgate.plugins import PluginManager
    from smsgate.tenants import StoredTenants
    from test_tenants_runtime import open_store_at

    store = open_store_at(sys.argv[1])
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    with Gateway({{"store": "memory://", "tenants": {{}}}}, store=store, plugins=pm,
                 tenants=StoredTenants(store)) as gw:
        print("ready", flush=True)
        for line in sys.stdin:
            try:
                result = gw.tenant(line.strip()).send("08031234567", "from the other process")
                print("sent", result.provider_message_id, flush=True)
            except Exception as exc:
                print("error", type(exc).__name__, flush=True)
    store.close()
""")


def test_two_processes_sharing_a_store_see_added_and_removed_tenants(
        store_url: str, store: Store, emulator: LiveServer, ctl: EmulatorControl, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "SMSGATE_TENANT_KEY": KEY}
    proc = subprocess.Popen([sys.executable, str(script), store_url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"

        def ask(name: str) -> str:
            proc.stdin.write(name + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            return proc.stdout.readline().strip()  # type: ignore[union-attr]

        assert ask("acme") == "error UnknownTenant"
        tenants = StoredTenants(store, keys=KEY)
        tenants.add("acme", tenant_cfg(emulator.url))  # added by this process...
        answer = ask("acme")  # ...sent by the other one, at once
        assert answer.startswith("sent ")
        assert [r.headers["x-api-key"] for r in ctl.requests("/messages", "POST")] == [API_KEY]
        tenants.remove("acme")
        assert ask("acme") == "error UnknownTenant"
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert len(ctl.requests("/messages", "POST")) == 1


def test_cli_add_list_rotate_remove(tmp_path: Path, emulator: LiveServer, ctl: EmulatorControl,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cli.db"
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{db}"\n\n[tenants.filed]\ndefault_region = "NG"\n')
    monkeypatch.setenv("SMSGATE_TENANT_KEY", KEY)
    monkeypatch.setenv("ECHO_OLD", OLD_KEY)
    toml = tmp_path / "acme.toml"
    toml.write_text(f'default_region = "NG"\nsender = "ACME"\n[providers.main]\nplugin = "echo"\n'
                    f'base_url = "{emulator.url}"\ncredentials = {{ api_key = "${{ECHO_OLD}}" }}\n')
    c = ["--config", str(cfg)]
    out = runner.invoke(app, ["tenant", "add", "acme", str(toml), *c])
    assert out.exit_code == 0, out.output
    assert "added (version 1)" in out.output
    out = runner.invoke(app, ["tenant", "add", "acme", str(toml), *c])
    assert out.exit_code == 2 and "already stored" in out.output
    out = runner.invoke(app, ["tenant", "add", "filed", str(toml), *c])
    assert out.exit_code == 2 and "configuration file" in out.output
    out = runner.invoke(app, ["tenant", "add", "bad", "-", *c], input='{"providers": {"p": {}}}')
    assert out.exit_code == 2 and "plugin" in out.output
    out = runner.invoke(app, ["tenant", "list", *c])
    assert out.exit_code == 0 and "acme" in out.output and "main (echo)" in out.output
    out = runner.invoke(app, ["tenant", "list", "--json", *c], env={"SMSGATE_TENANT_KEY": ""})  # needs no key
    assert out.exit_code == 0 and json.loads(out.output)[0]["providers"] == {"main": "echo"}
    assert OLD_KEY not in out.output
    out = runner.invoke(app, ["tenant", "rotate", "acme", "main", "-", *c], input=f'api_key = "{API_KEY}"\n')
    assert out.exit_code == 0 and "version 2" in out.output and API_KEY not in out.output
    store = SQLiteStore(str(db))
    store.migrate()
    try:
        with gateway(store, StoredTenants(store)) as gw:
            gw.tenant("acme").send("08031234567", "via the cli's tenant")
        assert [r.headers["x-api-key"] for r in ctl.requests("/messages", "POST")] == [API_KEY]
    finally:
        store.close()
    out = runner.invoke(app, ["tenant", "remove", "acme", *c])
    assert out.exit_code == 0 and "removed" in out.output
    out = runner.invoke(app, ["tenant", "remove", "acme", *c])
    assert out.exit_code == 1 and "was not stored" in out.output
    out = runner.invoke(app, ["tenant", "rotate", "acme", "main", "-", *c], input='api_key = "x"\n')
    assert out.exit_code == 2 and "unknown tenant 'acme'" in out.output
    assert OLD_KEY.encode() not in db.read_bytes() and API_KEY.encode() not in db.read_bytes()


def test_unchanged_source_tenant_keeps_its_providers(store: Store, emulator: LiveServer) -> None:
    """Another tenant's change does not rebuild this one's providers (only its etag matters)."""
    tenants = StoredTenants(store, keys=KEY)
    tenants.add("acme", tenant_cfg(emulator.url))
    with gateway(store, tenants) as gw:
        first = gw.tenant("acme").provider("main")
        tenants.add("globex", tenant_cfg(emulator.url))
        assert gw.tenant("acme").provider("main") is first
        tenants.update("acme", tenant_cfg(emulator.url, "changed"))
        assert gw.tenant("acme").provider("main") is not first
        assert gw.has_provider("globex", "main") and not gw.has_provider("ghost", "main")
        assert {line.split(":")[0] for line in gw.check()} == {"acme/main", "globex/main"}


def test_kept_handles_see_changes_within_tenant_refresh(store: Store, emulator: LiveServer,
                                                        ctl: EmulatorControl) -> None:
    """Through a kept handle the source is asked at most every ``tenant_refresh`` seconds;
    ``refresh_tenants()`` (or ``gw.tenant()``) asks at once; a request under way keeps its tenant."""
    tenants = StoredTenants(store, keys=KEY)
    tenants.add("acme", tenant_cfg(emulator.url))
    with gateway(store, tenants, tenant_refresh=3600) as gw:
        acme = gw.tenant("acme")
        tenants.remove("acme")
        acme.send("08031234567", "not checked yet")  # within tenant_refresh: the last configuration
        gw.refresh_tenants()
        with pytest.raises(UnknownTenant, match="'acme'"):
            acme.send("08031234567", "refused")
        # calls inside a request never ask (check=False): one under way finishes
        assert gw._core_.provider("acme", "main").settings.secret("api_key") == API_KEY
        tenants.add("acme", tenant_cfg(emulator.url), adopt_data=True)  # back again, its data its own
        assert gw.tenant("acme").send("08031234567", "back").provider == "main"
    assert [r.json()["text"] for r in ctl.requests("/messages", "POST")] == ["not checked yet", "back"]


def test_async_gateway_uses_the_source(store: Store, emulator: LiveServer, ctl: EmulatorControl) -> None:
    import asyncio

    from smsgate import AsyncGateway

    tenants = StoredTenants(store, keys=KEY)

    async def main() -> None:
        async with AsyncGateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(),
                                tenants=tenants, tenant_refresh=0) as gw:
            tenants.add("acme", tenant_cfg(emulator.url, OLD_KEY))
            acme = gw.tenant("acme")
            tenants.rotate("acme", "main", {"api_key": API_KEY})
            assert (await acme.send("08031234567", "async")).provider == "main"
            tenants.remove("acme")
            with pytest.raises(UnknownTenant):
                await acme.send("08031234567", "refused")

    asyncio.run(main())
    assert [r.headers["x-api-key"] for r in ctl.requests("/messages", "POST")] == [API_KEY]


def test_webhook_app_serves_a_source_tenant_until_it_is_removed(store: Store, emulator: LiveServer) -> None:
    import httpx

    from reference_provider import sign
    from smsgate.webhooks import webhook_app

    tenants = StoredTenants(store, keys=KEY)
    tenants.add("acme", tenant_cfg(emulator.url))
    with gateway(store, tenants, tenant_refresh=0) as gw, LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send("08031234567", "x")
        body = json.dumps([{"id": sent.provider_message_id, "status": "delivered"}]).encode()
        ok = httpx.post(f"{hooks.url}/acme/main", content=body, headers={"X-Echo-Signature": sign(body)})
        assert ok.status_code == 200 and ok.json()["matched"] == 1
        assert httpx.post(f"{hooks.url}/acme/other", content=body).status_code == 401
        tenants.remove("acme")
        gone = httpx.post(f"{hooks.url}/acme/main", content=body, headers={"X-Echo-Signature": sign(body)})
        assert gone.status_code == 401


def test_the_status_poller_of_the_gateway_covers_the_sources_tenants(store: Store, emulator: LiveServer) -> None:
    """``gw.sync_statuses()`` without names polls every tenant the gateway serves: the
    configuration's and the tenant source's (it used to poll the configuration's only, so a
    poller loop over a gateway with stored tenants never looked their messages up)."""
    import asyncio

    from smsgate import AsyncGateway

    tenants = StoredTenants(store, keys=KEY)
    tenants.add("acme", tenant_cfg(emulator.url))
    cfg = {"store": "memory://", "tenants": {"filed": tenant_cfg(emulator.url)}}
    with Gateway(cfg, store=store, plugins=plugins(), tenants=tenants) as gw:
        gw.tenant("acme").send("08031234567", "stored")
        gw.tenant("filed").send("08031234567", "filed")
        summaries = gw.sync_statuses(older_than=0)
        assert set(summaries) == {"filed", "acme"}
        assert summaries["acme"].looked_up == 1 and summaries["filed"].looked_up == 1

    async def main() -> None:
        async with AsyncGateway(cfg, store=store, plugins=plugins(), tenants=tenants) as agw:
            assert set(await agw.sync_statuses(older_than=0)) == {"filed", "acme"}

    asyncio.run(main())


def test_a_stored_tenant_keeps_the_order_of_its_providers(store: Store, emulator: LiveServer) -> None:
    """Without routes the first provider declared is the primary one: a stored tenant must keep
    the declared order (it was stored as JSON with sorted keys, so ``zeta``, declared first,
    became the failover of ``alpha`` and every message went through ``alpha``)."""
    prov = {"plugin": "echo", "base_url": emulator.url, "credentials": {"api_key": API_KEY}}
    tenants = StoredTenants(store, keys=KEY)
    tenants.add("acme", {"default_region": "NG", "sender": "ACME", "providers": {"zeta": prov, "alpha": prov}})
    found = tenants.get("acme")
    assert found is not None and list(found[0].providers) == ["zeta", "alpha"]
    tenants.rotate("acme", "alpha", {"api_key": API_KEY})  # a rewrite keeps it too
    found = tenants.get("acme")
    assert found is not None and list(found[0].providers) == ["zeta", "alpha"]
    assert list(tenants.info()[0].providers) == ["zeta", "alpha"]
    with gateway(store, tenants) as gw:
        assert gw.tenant("acme").send("08031234567", "primary").provider == "zeta"


class _ListsAGhost:
    """A tenant source that still lists a tenant it no longer has (removed between the listing
    and the lookup, as happens when a tenant is removed while the poller runs)."""

    def __init__(self, inner: StoredTenants) -> None:
        self.inner = inner

    def version(self) -> int:
        return self.inner.version()

    def get(self, name: str) -> Any:
        return self.inner.get(name)

    def names(self) -> list[str]:
        return ["aaa-gone", *self.inner.names()]


def test_the_status_poller_skips_a_tenant_removed_while_it_runs(store: Store, emulator: LiveServer) -> None:
    import asyncio

    from smsgate import AsyncGateway

    tenants = StoredTenants(store, keys=KEY)
    tenants.add("acme", tenant_cfg(emulator.url))
    source = _ListsAGhost(tenants)
    with gateway(store, source) as gw:
        gw.tenant("acme").send("08031234567", "stored")
        assert set(gw.sync_statuses(older_than=0)) == {"acme"}
        with pytest.raises(UnknownTenant, match="aaa-gone"):  # named explicitly: still an error
            gw.sync_statuses(["aaa-gone"])

    async def main() -> None:
        async with AsyncGateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(),
                                tenants=source) as agw:
            assert set(await agw.sync_statuses(older_than=0)) == {"acme"}

    asyncio.run(main())


class _OneBroken:
    """A tenant source whose lookup of one tenant raises (a bug in it, a dropped connection):
    the other tenants are looked up as ``inner`` has them."""

    def __init__(self, inner: StoredTenants, broken: str) -> None:
        self.inner, self.broken = inner, broken

    def version(self) -> int:
        return self.inner.version()

    def get(self, name: str) -> Any:
        if name == self.broken:
            raise RuntimeError(f"the source's lookup of {name} failed")
        return self.inner.get(name)

    def names(self) -> list[str]:
        return [*self.inner.names(), self.broken]


def test_one_failing_tenant_never_stops_the_status_poller_for_the_others(
        store: Store, emulator: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """A stored tenant whose secrets cannot be decrypted ("aaa-locked", listed first) and one
    whose lookup raises ("zzz-raises") are reported (logged at ERROR with their names, their
    summaries say why, no secret anywhere) and every other tenant is polled all the same; they
    used to end the tick at the first of them, so no tenant after it was ever polled."""
    import asyncio

    from smsgate import AsyncGateway
    from smsgate.errors import ValidationError

    other_key = Fernet.generate_key().decode()
    StoredTenants(store, keys=other_key).add("aaa-locked", tenant_cfg(emulator.url, api_key=OLD_KEY))
    tenants = StoredTenants(store, keys=KEY)  # cannot decrypt aaa-locked's secrets
    tenants.add("acme", tenant_cfg(emulator.url))
    source = _OneBroken(tenants, "zzz-raises")

    def check(summaries: dict[str, Any]) -> None:
        assert list(summaries) == ["aaa-locked", "acme", "zzz-raises"]
        assert summaries["acme"].error is None and summaries["acme"].looked_up >= 1  # a fresh message at least
        locked, raised = summaries["aaa-locked"], summaries["zzz-raises"]
        assert locked.error.startswith("ConfigError: ") and "cannot be decrypted" in locked.error
        assert raised.error.startswith("RuntimeError") and locked.looked_up == raised.looked_up == 0
        failures = [r for r in caplog.records if r.levelno == logging.ERROR and "could not be polled" in r.message]
        assert ["aaa-locked" in failures[0].message, "zzz-raises" in failures[1].message] == [True, True]
        logged = caplog.text + repr(summaries)
        assert OLD_KEY not in logged and KEY not in logged and other_key not in logged
        caplog.clear()

    with gateway(store, source) as gw:
        gw.tenant("acme").send("08031234567", "stored")
        with caplog.at_level(logging.ERROR, logger="smsgate"):
            check(gw.sync_statuses(older_than=0))
            # named explicitly: the same (a tenant that exists and fails is reported)
            gw.tenant("acme").send("08031234567", "again")
            check(gw.sync_statuses(["aaa-locked", "acme", "zzz-raises"], older_than=0, backoff=0))
        # the caller's own mistakes are raised before any tenant is polled
        with pytest.raises(UnknownTenant, match="nobody"):
            gw.sync_statuses(["acme", "nobody"], older_than=0)
        with pytest.raises(ValidationError, match="limit"):
            gw.sync_statuses(limit=0)
        with pytest.raises(TypeError, match="older_then"):
            gw.sync_statuses(older_then=0)

    async def main() -> None:
        async with AsyncGateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(),
                                tenants=source) as agw:
            with caplog.at_level(logging.ERROR, logger="smsgate"):
                await agw.tenant("acme").send("08031234567", "async")
                check(await agw.sync_statuses(older_than=0, backoff=0))
                await agw.tenant("acme").send("08031234567", "async again")
                check(await agw.sync_statuses(["aaa-locked", "acme", "zzz-raises"], older_than=0, backoff=0))
            with pytest.raises(UnknownTenant, match="nobody"):
                await agw.sync_statuses(["nobody"])
            with pytest.raises(ValidationError, match="limit"):
                await agw.sync_statuses(limit=0)

    asyncio.run(main())


def test_smsgate_toml_s_form_pasted_whole_is_refused_saying_how_to_write_it(store: Store,
                                                                           emulator: LiveServer) -> None:
    """The blocks ``smsgate sandbox`` prints are for smsgate.toml (``[tenants.acme.providers.squad]``);
    pasted whole into a tenant file they were refused with ``tenants: Extra inputs are not
    permitted``, which does not say what to write instead."""
    tenants = StoredTenants(store, keys=KEY)
    pasted = {"tenants": {"acme": {"providers": {"sq": tenant_cfg(emulator.url)["providers"]["main"]}}}}
    with pytest.raises(ConfigError, match=r"write \[providers\.sq\], not \[tenants\.acme\.providers\.sq\]") as err:
        tenants.add("acme", pasted)
    assert err.value.field == "tenants" and tenants.names() == []
