"""dx24: user-facing leftovers (a refused broker login, a lazy webhook app's store, the worker's
start-up check of stored tenants, a config path that is not a file, duplicate vendor ids in one
answer, a broken plugin's error shown once)."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

from smsgate import Gateway

BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672


def _rabbit_up() -> None:
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=3).close()
    except OSError as exc:
        pytest.skip(f"RabbitMQ unreachable: {exc}")


def test_a_broker_that_refuses_the_password_is_a_typed_error_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    """A wrong password in the broker URL: ``send_later`` and ``dispatch_campaign.delay`` raised
    py-amqp's raw ``AccessRefused`` (no broker named, nothing to check). Now a
    :class:`BrokerRefused` (a ``ConfigError``) naming the broker, its password masked, and what to
    check; the password is in no text and no log record."""
    pytest.importorskip("celery")
    _rabbit_up()
    from celery import Celery

    from smsgate.contrib.celery import DISPATCH, BrokerRefused, configure, send_later
    from smsgate.errors import ConfigError

    password = f"wrong-{uuid.uuid4().hex[:8]}"
    app = Celery(f"dx24-{uuid.uuid4().hex[:8]}", broker=f"amqp://guest:{password}@{BROKER_HOST}:{BROKER_PORT}//",
                 set_as_current=False)
    configure(app, gateway=lambda: Gateway({"store": "memory://"}))
    app.conf.task_ignore_result = True
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(BrokerRefused) as sent:
            send_later("shop", "08031234567", "Your code is 123456", idempotency_key="otp-1", app=app)
        with pytest.raises(BrokerRefused) as dispatched:
            app.tasks[DISPATCH].delay("shop", "camp-1")
    finally:
        app.close()
    for info, task in ((sent, "smsgate.send_message"), (dispatched, DISPATCH)):
        assert isinstance(info.value, ConfigError)
        text = str(info.value)
        assert f"amqp://guest:**@{BROKER_HOST}:{BROKER_PORT}//" in text, text
        assert "ACCESS_REFUSED" in text and task in text and "password" in text and "not queued" in text, text
        assert password not in text and password not in repr(info.value)
        assert "123456" not in text and "08031234567" not in text
    assert all(password not in r.getMessage() for r in caplog.records)


def _echo_tenant(sender: str) -> dict[str, object]:
    from reference_provider import API_KEY

    return {"default_region": "NG", "providers": {"one": {
        "plugin": "echo", "base_url": "http://127.0.0.1:9", "sender": sender, "credentials": {"api_key": API_KEY}}}}


def test_a_worker_checks_the_tenant_sources_tenants_as_it_starts(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A worker process checked only the configuration's tenants as it started: a tenant stored
    with ``smsgate tenant add`` whose credentials the worker's ``SMSGATE_TENANT_KEY`` cannot
    decrypt (or whose plugin the worker lacks) said nothing until its first task failed. Now
    each tenant of the source is checked too (in a thread of its own) and the one that cannot
    send is logged at ERROR; the good one is not named. Run through Celery's own
    ``worker_process_init`` signal, as a prefork child sends it."""
    pytest.importorskip("celery")
    import time

    from celery import Celery
    from celery.signals import worker_process_init

    from reference_provider import API_KEY, EchoPlugin
    from smsgate.contrib.celery import close_gateways, configure
    from smsgate.plugins import PluginManager
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants, new_key

    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    url = f"sqlite:///{tmp_path / 'w.db'}"
    old_key, worker_key = new_key(), new_key()
    admin = StoredTenants(url, keys=old_key, plugins=pm)
    admin.add("acme", _echo_tenant("ACME"))  # encrypted with a key the worker no longer has
    admin.close()
    admin = StoredTenants(url, keys=worker_key, plugins=pm)
    admin.add("beta", _echo_tenant("BETA"))
    admin.close()

    def make_gateway() -> Gateway:
        store = open_store(url)
        return Gateway({"tenants": {"shop": _echo_tenant("SHOP")}}, store=store, plugins=pm,
                       tenants=StoredTenants(store, keys=worker_key))

    app = Celery(f"dx24-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
    configure(app, gateway=make_gateway)
    caplog.set_level(logging.INFO, logger="smsgate")
    from celery import current_app

    before = current_app._get_current_object()
    app.set_current()
    try:
        worker_process_init.send(sender=None)
        deadline = time.monotonic() + 30
        while not any("tenant source" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        close_gateways()
        before.set_current()
        app.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "tenant 'acme' cannot send" in errors[0] and "cannot be decrypted" in errors[0], errors
    assert "checked the 2 tenants of the tenant source (1 cannot send)" in caplog.text
    assert API_KEY not in caplog.text


def _smsgate(*args: str, cwd: object, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``python -m smsgate ARGS`` in a child (the smsgate this test imports); its exit code and stderr."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import smsgate

    src = str(Path(smsgate.__file__).resolve().parents[1])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SMSGATE_")}
    environ.update(PYTHONPATH=src, **(env or {}))
    done = subprocess.run([sys.executable, "-m", "smsgate", *args], cwd=str(cwd), env=environ,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr


def test_a_config_that_is_a_pipe_makes_no_store_beside_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``smsgate db upgrade -c <(...)`` (a pipe: /dev/fd/63) or ``-c /dev/null``: the default
    store, relative to the configuration file's folder, was made there (``/dev/smsgate.db`` as
    root). A configuration that is not a regular file now refuses a store derived from its folder:
    exit code 2, the path named, nothing made beside it."""
    import os
    import threading

    fifo = tmp_path / "smsgate.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as fh:
            fh.write('[tenants.shop]\ndefault_region = "NG"\n')

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    code, err = _smsgate("db", "upgrade", "-c", str(fifo), cwd=tmp_path)
    if writer.is_alive():  # never opened by the command: let the writer go
        with open(fifo):
            pass
    writer.join(10)
    assert code == 2, err
    assert f"config file {fifo} is a pipe" in err and str(tmp_path / "smsgate.db") in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smsgate.fifo"]
    # an absolute store (SMSGATE_STORE) is not beside it: the pipe is then a configuration as any
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    code, err = _smsgate("db", "upgrade", "-c", str(fifo), cwd=tmp_path,
                         env={"SMSGATE_STORE": f"sqlite:///{tmp_path / 'kept.db'}"})
    writer.join(10)
    assert code == 0, err
    assert (tmp_path / "kept.db").exists()


def test_dev_null_as_the_config_makes_no_store_in_dev(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``smsgate db upgrade -c /dev/null`` (as root) made ``/dev/smsgate.db``."""
    from pathlib import Path

    made = Path("/dev/smsgate.db")
    if made.exists():
        pytest.skip("/dev/smsgate.db exists already (made by an earlier release?)")
    try:
        code, err = _smsgate("db", "upgrade", "-c", "/dev/null", cwd=tmp_path)
        assert code == 2, err
        assert "config file /dev/null is a character device" in err and "/dev/smsgate.db" in err, err
        assert not made.exists()
    finally:
        for leftover in (made, Path("/dev/smsgate.db-wal"), Path("/dev/smsgate.db-shm")):
            if leftover.exists() and leftover.is_file():  # made by the code before the fix
                leftover.unlink()


def test_one_vendor_id_for_two_messages_of_a_request_is_said_and_kept(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A bulk answer giving two messages of one request the same vendor message id passed in
    silence. Their delivery reports are ambiguous: the stores apply a report of that id to the
    newest message logged with it. The answer is kept as the vendor gave it (both messages
    submitted with their vendor id: a report of it is matched, never dropped, and a status
    look-up of either asks by it), and a WARNING names the provider and the count."""
    import itertools

    import plug_vendor as pv
    from plug_vendor import LoopProvider, LoopVendor
    from smsgate.models import DeliveryReport, Status
    from smsgate.plugins import PluginManager

    vendor = None
    for port in itertools.islice(itertools.count(47470), 20):
        try:
            vendor = LoopVendor(port).start()
            break
        except OSError:
            continue
    assert vendor is not None

    def same_id(out):  # type: ignore[no-untyped-def]
        out["results"][2]["id"] = out["results"][0]["id"]
        return out

    vendor.then("/bulk", pv.answer_with(same_id))
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(LoopProvider)
    cfg = {**pv.config(vendor.url), "store": f"sqlite:///{tmp_path / 'dup.db'}"}
    nums = list(pv.numbers(3))
    caplog.set_level(logging.WARNING, logger="smsgate")
    try:
        with Gateway(cfg, plugins=pm) as gw:
            acme = gw.tenant("acme")
            results = acme.send_many(nums, "hi")
            assert [r.status for r in results] == [Status.SUBMITTED] * 3
            assert [r.provider_message_id for r in results] == ["L1", "L2", "L1"]
            applied = gw.store.apply_reports("acme", [DeliveryReport(
                provider="loop", provider_message_id="L1", status=Status.DELIVERED)])
            assert applied == [results[2].message_id]  # matched (the newest of the two), not orphaned
    finally:
        vendor.stop()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, warned
    assert "provider 'loop'" in warned[0] and "2 of the 3 messages" in warned[0] and "'L1'" in warned[0], warned
    assert all(n not in warned[0] for n in nums)


@pytest.mark.parametrize("args", [("providers",), ("providers", "--json")])
def test_smsgate_providers_says_a_broken_plugin_once(tmp_path, args) -> None:  # type: ignore[no-untyped-def]
    """``smsgate providers`` with an installed plugin whose entry point fails to import said it
    twice on stderr: the library's log line as the plugins loaded, then the command's warning.
    Now once: the command's warning (the other plugins listed)."""
    dist = tmp_path / "smsgate_boom-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: smsgate-boom\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[smsgate.providers]\nboom = dx24_boom_plugin\n")
    (tmp_path / "dx24_boom_plugin.py").write_text("raise ImportError('needs libfoo 2')\n")
    import os
    import subprocess
    import sys
    from pathlib import Path

    import smsgate

    src = str(Path(smsgate.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGATE_")}
    env["PYTHONPATH"] = os.pathsep.join([src, str(tmp_path)])
    done = subprocess.run([sys.executable, "-m", "smsgate", *args], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "memory" in done.stdout
    assert done.stderr.count("failed to import") == 1, done.stderr
    assert "warning: provider plugin 'boom' (dx24_boom_plugin) failed to import: ImportError: needs libfoo 2" \
        in done.stderr


def _hooks_module(tmp_path, store: str) -> object:  # type: ignore[no-untyped-def]
    """Import (as an app server or a test collector does) a module making
    ``webhook_app(AsyncGateway(...))`` at import, as docs/inbound.md's asgi.py does."""
    import importlib.util

    module = tmp_path / f"dx24_hooks_{uuid.uuid4().hex[:8]}.py"
    module.write_text(
        "from reference_provider import API_KEY, EchoPlugin\n"
        "from smsgate import AsyncGateway\n"
        "from smsgate.plugins import PluginManager\n"
        "from smsgate.webhooks import webhook_app\n"
        "pm = PluginManager(load_entry_points=False)\n"
        "pm.register(EchoPlugin())\n"
        f"gateway = AsyncGateway({{'store': {store!r}, 'tenants': {{'shop': {{'default_region': 'NG', 'providers': "
        "{'one': {'plugin': 'echo', 'base_url': 'http://127.0.0.1:9', 'sender': 'SHOP', "
        "'credentials': {'api_key': API_KEY}}}}}}, plugins=pm)\n"
        "app = webhook_app(gateway)\n")
    spec = importlib.util.spec_from_file_location(module.stem, module)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _report() -> tuple[bytes, dict[str, str]]:
    import json

    from reference_provider import sign

    body = json.dumps([{"id": "vendor-1", "status": "delivered"}]).encode()
    return body, {"x-echo-signature": sign(body), "content-type": "application/json"}


def test_importing_a_webhook_app_module_opens_no_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``webhook_app(AsyncGateway(...))`` at import (docs/inbound.md's asgi.py, docs/fastapi.md's
    main.py) opened the store then: an SQLite file made and migrated (a PostgreSQL server
    reached) by a test collector or ``uvicorn --reload`` importing the module. Now a gateway
    opens its store at its first use: the webhook app opens it at startup (off the event loop),
    the sync Gateway at its first call."""
    pytest.importorskip("starlette")
    import asyncio

    import httpx

    from smsgate.testing import LiveServer

    db = tmp_path / "hooks.db"
    mod = _hooks_module(tmp_path, f"sqlite:///{db}")
    assert list(tmp_path.glob("hooks.db*")) == []  # imported: nothing opened
    sync = Gateway({"store": f"sqlite:///{tmp_path / 'sync.db'}"})
    assert not (tmp_path / "sync.db").exists()
    sync.close()  # closed before any use: nothing was opened, nothing made
    assert not (tmp_path / "sync.db").exists()
    body, headers = _report()
    with LiveServer(mod.app, port=47480) as server:  # type: ignore[attr-defined]
        assert db.exists()  # opened at the app's startup
        answer = httpx.post(f"{server.url}/shop/one", content=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["reports"] == 1
    asyncio.run(mod.gateway.aclose())  # type: ignore[attr-defined]


def test_a_mounted_webhook_app_opens_its_store_at_the_first_callback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Mounted in another app (no lifespan events reach it), the webhook app opens the store at
    the first callback, off the event loop; a store that cannot be opened then (PostgreSQL down)
    is answered 503 (the vendor retries), not 401 as a configuration problem would be."""
    pytest.importorskip("starlette")
    import asyncio

    import httpx

    body, headers = _report()

    async def post(app: object) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
            return await client.post("/shop/one", content=body, headers=headers)

    db = tmp_path / "mounted.db"
    mod = _hooks_module(tmp_path, f"sqlite:///{db}")
    assert not db.exists()
    answer = asyncio.run(post(mod.app))  # type: ignore[attr-defined]
    assert answer.status_code == 200, answer.text
    assert db.exists()
    asyncio.run(mod.gateway.aclose())  # type: ignore[attr-defined]

    with socket.socket() as s:  # a port nothing listens on: PostgreSQL down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = _hooks_module(tmp_path, f"postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=3")
    answer = asyncio.run(post(down.app))  # type: ignore[attr-defined]
    assert answer.status_code == 503, answer.text
    asyncio.run(down.gateway.aclose())  # type: ignore[attr-defined]


def test_a_relative_sqlite_store_is_the_folder_current_when_the_gateway_was_made(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Opened at its first use, a relative ``sqlite:///`` store of a gateway made from a dict is
    still the file in the folder current when the gateway was made (as when it was opened then),
    whatever the current folder at its first use."""
    (tmp_path / "made").mkdir()
    (tmp_path / "used").mkdir()
    monkeypatch.chdir(tmp_path / "made")
    gw = Gateway({"store": "sqlite:///rel.db"})
    monkeypatch.chdir(tmp_path / "used")
    try:
        assert gw.store.location() == f"sqlite:{(tmp_path / 'made' / 'rel.db').resolve()}"
    finally:
        gw.close()
    assert (tmp_path / "made" / "rel.db").exists() and not (tmp_path / "used" / "rel.db").exists()
