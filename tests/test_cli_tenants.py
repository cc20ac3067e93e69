"""Every ``smsgate`` command sees the tenants stored with ``smsgate tenant add``, as the Gateway
does: the configuration file's tenants win, then the store's. Run as a user runs them: a real
process (``python -m smsgate``), the installed Squad plugin, the Squad emulator on loopback;
stores on real SQLite and PostgreSQL. What was sent is read from the emulator's own record.

A missing or wrong ``SMSGATE_TENANT_KEY`` is one ``error: ...`` line naming the variable (exit 2,
no traceback); no command ever prints a credential.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from smsgate.testing import EmulatorControl, LiveServer
from smsgate_squad.emulator import SANDBOX_SECRET_KEY, create_app

KEY = Fernet.generate_key().decode()
FILED_SECRET = "filed-tenant-secret-that-must-not-leak-91c2"
SEND = "/sms/send/instant"


def smsgate(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: Any = None, input: str | None = None,
            timeout: float = 180, bug: bool = False) -> subprocess.CompletedProcess[str]:
    """``smsgate ARGS`` in a new process, with only the ``SMSGATE_*`` variables given in ``env``
    (``stdin``: its standard input, a file descriptor; ``input``: text piped to it; ``bug``: a
    traceback is allowed, as the log of an unexpected error)."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    out = subprocess.run([sys.executable, "-m", "smsgate", *args], capture_output=True, text=True, cwd=cwd,
                         env={**clean, "COLUMNS": "200", **(env or {})}, timeout=timeout, stdin=stdin, input=input)
    for stream in (out.stdout, out.stderr):  # never a credential, never a traceback
        assert SANDBOX_SECRET_KEY not in stream and FILED_SECRET not in stream and KEY not in stream
    assert bug or "Traceback" not in out.stderr, out.stderr
    return out


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, (out.stdout, out.stderr)
    return out.stdout


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a failed command (exit 2)."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


#: A provider plugin of someone else's with a bug: its adapter fails with a KeyError (not an
#: smsgate error) when BUGGY_BUG is set. Installed as a dist-info on ``PYTHONPATH``.
BUGGY_PLUGIN = '''
import os

from smsgate.hookspecs import hookimpl
from smsgate.testing.reference import EchoProvider


class BuggyProvider(EchoProvider):
    name = "buggy"

    def __init__(self, *args, **kwargs):
        if os.environ.get("BUGGY_BUG"):
            raise KeyError("a bug in the buggy plugin")
        super().__init__(*args, **kwargs)


@hookimpl
def register_providers(register):
    register(BuggyProvider)
'''


def buggy_plugin(where: Path) -> Path:
    """The ``buggy`` plugin installed in ``where`` (put it on PYTHONPATH)."""
    info = where / "buggy_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (where / "buggy_plugin.py").write_text(BUGGY_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: buggy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[smsgate.providers]\nbuggy = buggy_plugin\n")
    return where


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def squad() -> Iterator[LiveServer]:
    with LiveServer(create_app()) as server:
        yield server


@pytest.fixture
def ctl(squad: LiveServer) -> EmulatorControl:
    c = EmulatorControl(squad.url)
    c.reset()
    return c


def setup_files(tmp_path: Path, store: str, squad_url: str) -> None:
    """smsgate.toml with one file tenant (``filed``, whose vendor is unreachable: a message sent
    through it could not reach the emulator) and acme.toml, the tenant to store."""
    (tmp_path / "smsgate.toml").write_text(
        f'store = "{store}"\n[tenants.filed]\ndefault_region = "NG"\n'
        f'[tenants.filed.providers.sq]\nplugin = "squad"\nbase_url = "http://127.0.0.1:{closed_port()}"\n'
        f'sender = "FILED"\ncredentials = {{ secret_key = "{FILED_SECRET}" }}\n')
    (tmp_path / "acme.toml").write_text(
        f'default_region = "NG"\nsender = "ACME"\n[providers.main]\nplugin = "squad"\nbase_url = "{squad_url}"\n'
        'credentials = { secret_key = "${ACME_SQUAD_KEY}" }\n')


ENV = {"SMSGATE_TENANT_KEY": KEY}


def add_acme(tmp_path: Path) -> None:
    out = ok(smsgate("tenant", "add", "acme", "acme.toml", cwd=tmp_path,
                     env={**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}))
    assert "tenant acme added (version 1)" in out


def sent_to(ctl: EmulatorControl) -> Counter[str]:
    """How many times the emulator accepted a message to each number (its own record; Squad
    takes Nigerian numbers in the national format)."""
    return Counter(m["phone_number"] for r in ctl.processed(SEND, "POST") for m in r.json()["messages"])


def test_a_stored_tenant_sends_runs_a_campaign_and_lists_its_messages(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)

    sent = json.loads(ok(smsgate("send", "08031234567", "hello from a stored tenant", "-t", "acme", "--json",
                                 cwd=tmp_path, env=ENV)))
    assert (sent["status"], sent["provider"]) == ("sent", "main")
    [request] = ctl.processed(SEND, "POST")
    assert request.headers["authorization"] == f"Bearer {SANDBOX_SECRET_KEY}"  # the stored credential
    assert request.json()["sender_id"] == "ACME"
    assert [m["phone_number"] for m in request.json()["messages"]] == ["08031234567"]

    # two tenants now, one of each kind: --tenant is needed, and the error lists both
    line = one_error_line(smsgate("send", "08031234567", "hi", cwd=tmp_path, env=ENV))
    assert line == "error: --tenant is required (configured tenants: filed; stored tenants: acme)"

    numbers = [f"0803{i:07d}" for i in range(1, 31)]
    (tmp_path / "people.csv").write_text("phone,name\n" + "".join(f"{n},P{i}\n" for i, n in enumerate(numbers)))
    created = ok(smsgate("campaign", "create", "--name", "Sale", "--csv", "people.csv", "--text", "Hi {name}",
                         "--mode", "fanout", "-t", "acme", cwd=tmp_path, env=ENV))
    match = re.search(r"cmp_\w+", created)
    assert match is not None and "to send: 30" in created, created
    cid = match.group(0)
    ran = ok(smsgate("campaign", "run", cid, "-t", "acme", cwd=tmp_path, env=ENV))
    assert f"{cid}: completed; sent 30, failed 0" in ran
    status = json.loads(ok(smsgate("campaign", "status", cid, "-t", "acme", "--json", cwd=tmp_path, env=ENV)))
    assert (status["status"], status["sent"]) == ("completed", 30)
    received = sent_to(ctl)
    assert received == Counter(numbers) + Counter({"08031234567": 1})

    logged = json.loads(ok(smsgate("messages", "-t", "acme", "--json", "--limit", "100", cwd=tmp_path, env=ENV)))
    assert len(logged) == 31 and {m["provider"] for m in logged} == {"main"}
    assert sum(m["campaign_id"] == cid for m in logged) == 30
    shown = ok(smsgate("status", sent["message_id"], "-t", "acme", cwd=tmp_path, env=ENV))
    assert sent["message_id"] in shown
    # the stored tenant's messages are its own: the file's tenant has none
    assert json.loads(ok(smsgate("messages", "-t", "filed", "--json", cwd=tmp_path, env=ENV))) == []

    checked = ok(smsgate("config", "check", cwd=tmp_path, env=ENV))
    assert "acme/main: squad at " + squad.url in checked and "filed/sq: squad at" in checked
    assert "2 tenant(s), 2 provider instance(s) OK" in checked
    routed = ok(smsgate("route", "explain", "08031234567", "-t", "acme", cwd=tmp_path, env=ENV))
    assert "main" in routed
    assert ok(smsgate("providers", "health", "-t", "acme", "--json", cwd=tmp_path, env=ENV))
    ok(smsgate("optout", "add", "08031234567", "-t", "acme", cwd=tmp_path, env=ENV))
    assert smsgate("optout", "check", "08031234567", "-t", "acme", cwd=tmp_path, env=ENV).returncode == 0
    assert sent_to(ctl) == received  # none of these commands sent anything


def test_an_unknown_tenant_is_named_with_both_kinds_listed(tmp_path: Path, squad: LiveServer,
                                                          ctl: EmulatorControl) -> None:
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    for command in (["send", "08031234567", "hi"], ["messages"], ["campaign", "list"]):
        line = one_error_line(smsgate(*command, "-t", "nope", cwd=tmp_path, env=ENV))
        assert line == ("error: unknown tenant 'nope': configured tenants: filed; stored tenants: acme "
                        "(see 'smsgate tenant list')")
    # removed: refused like any unknown name
    ok(smsgate("tenant", "remove", "acme", cwd=tmp_path))
    line = one_error_line(smsgate("send", "08031234567", "hi", "-t", "acme", cwd=tmp_path, env=ENV))
    assert line.startswith("error: unknown tenant 'acme': configured tenants: filed; stored tenants: none")
    assert ctl.processed(SEND, "POST") == []


def test_the_only_tenant_may_be_a_stored_one(tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    (tmp_path / "smsgate.toml").write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n')
    (tmp_path / "acme.toml").write_text(
        f'default_region = "NG"\nsender = "ACME"\n[providers.main]\nplugin = "squad"\nbase_url = "{squad.url}"\n'
        'credentials = { secret_key = "${ACME_SQUAD_KEY}" }\n')
    # before any tenant is stored: the error says where tenants come from, and creates nothing
    line = one_error_line(smsgate("send", "08031234567", "hi", cwd=tmp_path, env=ENV))
    assert "configures no tenant" in line and "smsgate tenant add" in line
    assert not (tmp_path / "log.db").exists()
    add_acme(tmp_path)
    ok(smsgate("send", "08031234567", "no --tenant needed", cwd=tmp_path, env=ENV))
    assert sent_to(ctl) == Counter({"08031234567": 1})
    assert "1 tenant(s), 1 provider instance(s) OK" in ok(smsgate("config", "check", cwd=tmp_path, env=ENV))


@pytest.mark.slow
def test_a_missing_or_wrong_key_is_one_line_naming_the_variable(tmp_path: Path, squad: LiveServer,
                                                               ctl: EmulatorControl) -> None:
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    wrong = Fernet.generate_key().decode()
    cases = {
        "missing": ({}, "stored tenants need an encryption key: set SMSGATE_TENANT_KEY"),
        "empty": ({"SMSGATE_TENANT_KEY": ""}, "stored tenants need an encryption key: set SMSGATE_TENANT_KEY"),
        "not a key": ({"SMSGATE_TENANT_KEY": "not-a-fernet-key"}, "SMSGATE_TENANT_KEY: key 1 of 1 is not a Fernet key"),
        "another key": ({"SMSGATE_TENANT_KEY": wrong},
                        "tenant 'acme': its stored credentials cannot be decrypted with the key(s) in "
                        "SMSGATE_TENANT_KEY"),
    }
    for name, (env, expected) in cases.items():
        for command in (["send", "08031234567", "hi"], ["messages"], ["campaign", "list"]):
            out = smsgate(*command, "-t", "acme", cwd=tmp_path, env=env)
            line = one_error_line(out)
            assert expected in line, (name, command, line)
            assert wrong not in out.stderr and "not-a-fernet-key" not in out.stderr  # keys are never shown
        line = one_error_line(smsgate("config", "check", cwd=tmp_path, env=env))
        assert "SMSGATE_TENANT_KEY" in line, (name, line)
    # the configuration file's tenant needs no key, stored tenants or not
    assert json.loads(ok(smsgate("messages", "-t", "filed", "--json", cwd=tmp_path))) == []
    assert ctl.processed(SEND, "POST") == []


@pytest.mark.postgres
def test_a_stored_tenant_sends_and_runs_a_campaign_on_postgres(tmp_path: Path, squad: LiveServer,
                                                              ctl: EmulatorControl) -> None:
    from test_store_postgres import DSN, drop_schema, require_postgres, unique_schema

    require_postgres()
    schema = unique_schema()
    try:
        setup_files(tmp_path, f"{DSN}?schema={schema}", squad.url)
        add_acme(tmp_path)
        ok(smsgate("send", "08031234567", "hello", "-t", "acme", cwd=tmp_path, env=ENV))
        (tmp_path / "people.csv").write_text("phone\n08030000001\n08030000002\n08030000003\n")
        created = ok(smsgate("campaign", "create", "--name", "PG", "--csv", "people.csv", "--text", "Hi",
                             "--mode", "fanout", "-t", "acme", cwd=tmp_path, env=ENV))
        match = re.search(r"cmp_\w+", created)
        assert match is not None, created
        assert "completed; sent 3" in ok(smsgate("campaign", "run", match.group(0), "-t", "acme",
                                                 cwd=tmp_path, env=ENV))
        assert sent_to(ctl) == Counter({"08031234567": 1, "08030000001": 1, "08030000002": 1,
                                        "08030000003": 1})
        logged = json.loads(ok(smsgate("messages", "-t", "acme", "--json", cwd=tmp_path, env=ENV)))
        assert len(logged) == 4
        line = one_error_line(smsgate("messages", "-t", "acme", cwd=tmp_path))
        assert "SMSGATE_TENANT_KEY" in line
    finally:
        drop_schema(schema)


def test_serve_takes_callbacks_for_a_stored_tenant(tmp_path: Path, squad: LiveServer) -> None:
    import signal

    import httpx

    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    port = closed_port()
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    proc = subprocess.Popen([sys.executable, "-m", "smsgate", "serve", "--port", str(port)], cwd=tmp_path,
                            env={**clean, **ENV, "COLUMNS": "200"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "(tenants: filed, acme)" in line, line + (proc.stderr.read() if proc.stderr else "")
        base = f"http://127.0.0.1:{port}/hooks"
        assert httpx.post(f"{base}/nope/main", content=b"{}").status_code == 401  # unknown tenant: as unsigned
        # the stored tenant's Squad instance is there: it checks the signature (with the stored secret)
        assert httpx.post(f"{base}/acme/main", content=b'{"Event": "sms"}').status_code == 401
        assert httpx.post(f"{base}/acme/other", content=b"{}").status_code == 401  # no such instance: alike
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130) and "Traceback" not in err, err


def test_tenant_add_checks_the_tenant_as_config_check_does_and_stores_nothing_bad(
        tmp_path: Path, squad: LiveServer) -> None:
    """Before, ``tenant add`` stored an unknown plugin or invalid options (they failed at the
    first send); ``config check`` named neither the tenant nor whether it was stored."""
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)

    def add(name: str, table: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / f"{name}.toml").write_text(table)
        return smsgate("tenant", "add", name, f"{name}.toml", cwd=tmp_path, env=ENV)

    line = one_error_line(add("typo", 'sender = "ACME"\n[providers.main]\nplugin = "sqaud"\n'
                                      f'credentials = {{ secret_key = "{SANDBOX_SECRET_KEY}" }}\n'))
    assert line.startswith("error: typo.toml: providers.main.plugin: unknown provider plugin 'sqaud'; "
                           "installed providers: "), line
    line = one_error_line(add("opts", 'sender = "ACME"\n[providers.main]\nplugin = "squad"\n'
                                      'options = { api_version = "v9", regoin = "NG" }\n'
                                      f'credentials = {{ secret_key = "{SANDBOX_SECRET_KEY}" }}\n'))
    assert line.startswith("error: opts.toml: providers.main: provider 'main' (squad): invalid options: "), line
    assert "options.api_version: Input should be 'v2' or 'v1'" in line and "options.regoin" in line
    line = one_error_line(add("nosender", '[providers.main]\nplugin = "squad"\n'
                                          f'credentials = {{ secret_key = "{SANDBOX_SECRET_KEY}" }}\n'))
    assert line.startswith("error: nosender.toml: providers.main: squad needs a sender and none is set"), line
    listed = json.loads(ok(smsgate("tenant", "list", "--json", cwd=tmp_path, env=ENV)))
    assert listed == []  # nothing half-made stored
    checked = ok(smsgate("config", "check", cwd=tmp_path, env=ENV))
    assert "1 tenant(s), 1 provider instance(s) OK" in checked


def test_tenant_add_without_a_file_at_a_terminal_says_what_to_give(tmp_path: Path, squad: LiveServer) -> None:
    """``tenant add NAME`` (and ``rotate NAME INSTANCE``) without a file read standard input:
    at a terminal it waited silently for a paste nobody knew was expected. It now says to give
    a file or pipe the TOML; piping (and an explicit ``-``) still works."""
    import pty

    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    env = {**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}
    leader, terminal = pty.openpty()
    try:
        line = one_error_line(smsgate("tenant", "add", "acme", cwd=tmp_path, env=env, stdin=terminal, timeout=60))
        assert line == ("error: no file given and standard input is a terminal: give a file (smsgate tenant add "
                        "acme FILE) or pipe the tenant's configuration as TOML (cat FILE | smsgate tenant add "
                        "acme); 'smsgate tenant add acme -' reads what you type (Ctrl-D ends it)"), line
        assert json.loads(ok(smsgate("tenant", "list", "--json", cwd=tmp_path, env=ENV))) == []
        toml = (tmp_path / "acme.toml").read_text()
        assert "tenant acme added (version 1)" in ok(smsgate("tenant", "add", "acme", cwd=tmp_path, env=env,
                                                             input=toml))
        line = one_error_line(smsgate("tenant", "rotate", "acme", "main", cwd=tmp_path, env=env, stdin=terminal,
                                      timeout=60))
        assert "give a file (smsgate tenant rotate acme main FILE) or pipe the new credentials" in line, line
        rotated = ok(smsgate("tenant", "rotate", "acme", "main", "-", cwd=tmp_path, env=env,
                             input=f'secret_key = "{SANDBOX_SECRET_KEY}"\n'))
        assert "credentials of main replaced: secret_key (version 2)" in rotated
    finally:
        os.close(leader)
        os.close(terminal)


def test_config_check_names_the_tenant_and_where_it_is_kept(tmp_path: Path, squad: LiveServer) -> None:
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    config = tmp_path / "smsgate.toml"
    config.write_text(config.read_text().replace('sender = "FILED"', 'sender = "FILED"\noptions = { bogus = 1 }'))
    line = one_error_line(smsgate("config", "check", cwd=tmp_path, env=ENV))
    assert line.startswith("error: smsgate.toml: tenants.filed.providers.sq: provider 'sq' (squad"), line
    assert "options.bogus: Extra inputs are not permitted" in line
    config.write_text(config.read_text().replace("options = { bogus = 1 }\n", ""))

    # a tenant stored when its plugin was installed (here: by a store written directly), since uninstalled
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants

    store = open_store(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        from smsgate.plugins import PluginManager
        from smsgate.testing.reference import EchoProvider

        pm = PluginManager(load_entry_points=False)
        pm.add_provider(EchoProvider)
        StoredTenants(store, keys=KEY, plugins=pm).add(
            "legacy", {"providers": {"old": {"plugin": EchoProvider.name, "base_url": squad.url}}})
    finally:
        store.close()
    line = one_error_line(smsgate("config", "check", cwd=tmp_path, env=ENV))
    assert line.startswith("error: stored tenant 'legacy' (not in the configuration file; see 'smsgate tenant "
                           "list'): tenants.legacy.providers.old.plugin: unknown provider plugin 'echo'"), line


def test_status_sync_polls_every_tenant_with_all_tenants(tmp_path: Path, squad: LiveServer,
                                                         ctl: EmulatorControl) -> None:
    """The poller's cron line for an app with many tenants: ``status sync --all-tenants`` polls
    the configuration's tenants and the stored ones (without it, several tenants are an error
    that says so); a tenant that cannot be polled is reported and the others are polled."""
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    line = one_error_line(smsgate("status", "sync", "--older-than", "0", cwd=tmp_path, env=ENV))
    assert "--tenant is required" in line and "--all-tenants" in line

    every = json.loads(ok(smsgate("status", "sync", "--all-tenants", "--older-than", "0", "--json",
                                  cwd=tmp_path, env=ENV)))
    assert set(every) == {"filed", "acme"}
    assert all(set(summary) >= {"looked_up", "changed", "more"} for summary in every.values())

    text = ok(smsgate("status", "sync", "--all-tenants", "--older-than", "0", cwd=tmp_path, env=ENV))
    assert [ln.split(":")[0] for ln in text.splitlines()] == ["filed", "acme"]

    keyless = smsgate("status", "sync", "--all-tenants", "--older-than", "0", cwd=tmp_path)
    assert keyless.returncode == 2 and keyless.stdout.startswith("filed: looked up")
    errors = keyless.stderr.strip().splitlines()
    assert errors[0].startswith("error: tenant acme: ") and "SMSGATE_TENANT_KEY" in errors[0]
    assert errors[-1] == "error: 1 of 2 tenant(s) could not be polled: acme"
    # JSON: the failed tenant's summary says why, as Gateway.sync_statuses() reports it
    keyless_json = smsgate("status", "sync", "--all-tenants", "--older-than", "0", "--json", cwd=tmp_path)
    assert keyless_json.returncode == 2
    both_summaries = json.loads(keyless_json.stdout)
    assert both_summaries["filed"]["error"] is None and "SMSGATE_TENANT_KEY" in both_summaries["acme"]["error"]

    # a stored tenant whose provider plugin has a bug (not an smsgate error): reported by the
    # gateway's rule, its traceback logged (it used to end the loop, unreported, with a traceback
    # and exit 1), the others still polled
    plugin_env = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(buggy_plugin(tmp_path / "plug")),
                                                                     os.environ.get("PYTHONPATH")]))}
    (tmp_path / "buggy.toml").write_text('[providers.main]\nplugin = "buggy"\nbase_url = "http://127.0.0.1:9"\n'
                                         'credentials = { api_key = "k" }\n')
    ok(smsgate("tenant", "add", "buggy", "buggy.toml", cwd=tmp_path, env=plugin_env))
    broken = smsgate("status", "sync", "--all-tenants", "--older-than", "0", cwd=tmp_path,
                     env={**plugin_env, "BUGGY_BUG": "1"}, bug=True)
    assert broken.returncode == 2 and broken.stdout.startswith("filed: looked up"), broken.stderr
    assert "acme: looked up" in broken.stdout
    errors = [ln for ln in broken.stderr.strip().splitlines() if ln.startswith("error: ")]
    assert errors == ["error: tenant buggy: KeyError (an unexpected error: see the log)",
                      "error: 1 of 3 tenant(s) could not be polled: buggy"], broken.stderr
    assert "could not be polled (the others were)" in broken.stderr  # the log, with the traceback
    assert "a bug in the buggy plugin" in broken.stderr

    # a stored tenant whose stored configuration cannot be read (a corrupt row): a ConfigError
    # naming it (no traceback), the others still polled
    import sqlite3

    db = sqlite3.connect(tmp_path / "log.db")
    db.execute("UPDATE stored_tenants SET config = '[1, 2' WHERE name = 'acme'")
    db.commit()
    db.close()
    corrupt = smsgate("status", "sync", "--all-tenants", "--older-than", "0", cwd=tmp_path, env=plugin_env)
    assert corrupt.returncode == 2 and corrupt.stdout.startswith("filed: looked up"), corrupt.stderr
    assert "buggy: looked up" in corrupt.stdout
    errors = [ln for ln in corrupt.stderr.strip().splitlines() if ln.startswith("error: ")]
    assert len(errors) == 2 and errors[0].startswith(
        "error: tenant acme: ConfigError: tenant 'acme': its stored configuration cannot be read"), corrupt.stderr
    assert errors[1] == "error: 1 of 3 tenant(s) could not be polled: acme"

    both = one_error_line(smsgate("status", "sync", "--all-tenants", "-t", "acme", cwd=tmp_path, env=ENV))
    assert "--all-tenants and --tenant exclude each other" in both


CORRUPT_CONFIGS = ["[1, 2", '["a list"]', '{"providers": "main"}', '{"providers": {"main": 3}}']


@pytest.mark.parametrize("corrupt", CORRUPT_CONFIGS)
def test_a_corrupt_stored_tenant_is_a_config_error_naming_it_and_the_others_still_work(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl, corrupt: str) -> None:
    """A stored tenant whose row cannot be read (its configuration not the JSON smsgate wrote, or
    its credentials decrypting to something else) was a raw ``json.JSONDecodeError`` /
    ``AttributeError`` out of ``StoredTenants`` and a traceback out of ``smsgate tenant list``: it
    is a :class:`ConfigError` naming the tenant (never the row's text); ``tenant list`` lists every
    tenant, says which cannot be read (exit 2), and the other stored tenant still sends."""
    import sqlite3

    from smsgate.errors import ConfigError
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants

    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    out = ok(smsgate("tenant", "add", "bravo", "acme.toml", cwd=tmp_path,
                     env={**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}))
    assert "tenant bravo added" in out
    db = sqlite3.connect(tmp_path / "log.db")
    db.execute("UPDATE stored_tenants SET config = ? WHERE name = 'bravo'", (corrupt,))
    db.commit()
    db.close()

    store = open_store(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        tenants = StoredTenants(store, keys=KEY)
        for call in (lambda: tenants.get("bravo"), lambda: tenants.credential_names("bravo"),
                     lambda: tenants.rotate("bravo", "main", {"secret_key": "new"})):
            with pytest.raises(ConfigError) as info:
                call()
            assert str(info.value).startswith("tenant 'bravo': its stored configuration cannot be read")
            assert corrupt not in str(info.value) and SANDBOX_SECRET_KEY not in str(info.value)
        listed = {i.name: i for i in tenants.info()}
        assert listed["acme"].providers == {"main": "squad"} and listed["acme"].error is None
        assert listed["bravo"].providers == {} and "'bravo'" in (listed["bravo"].error or "")
        assert tenants.get("acme") is not None
        # credentials that decrypt to something else than smsgate wrote: the same
        row = store.get_tenant_row("acme")
        assert row is not None
        token = Fernet(KEY.encode()).encrypt(b'{"main": "not a table"}').decode()
        with pytest.raises(ConfigError, match="tenant 'acme': its stored credentials cannot be read"):
            tenants._decrypt("acme", token)
    finally:
        store.close()

    listing = smsgate("tenant", "list", cwd=tmp_path, env=ENV)
    assert listing.returncode == 2 and "acme" in listing.stdout and "main (squad)" in listing.stdout
    assert "bravo" in listing.stdout and "unreadable" in listing.stdout
    assert listing.stderr.strip().splitlines() == [
        "error: tenant 'bravo': its stored configuration cannot be read (the row is corrupt, or was not written "
        "by smsgate); store the tenant again ('smsgate tenant add bravo FILE --replace') or remove it "
        "('smsgate tenant remove bravo')"]
    as_json = smsgate("tenant", "list", "--json", cwd=tmp_path, env=ENV)
    assert as_json.returncode == 2
    rows = {r["name"]: r for r in json.loads(as_json.stdout)}
    assert rows["acme"]["error"] is None and "cannot be read" in rows["bravo"]["error"]

    line = one_error_line(smsgate("send", "08031234567", "hi", "-t", "bravo", cwd=tmp_path, env=ENV))
    assert "tenant 'bravo': its stored configuration cannot be read" in line
    line = one_error_line(smsgate("tenant", "rotate", "bravo", "main", "-", cwd=tmp_path, env=ENV,
                                  input='secret_key = "sk_new_one"\n'))
    assert "tenant 'bravo': its stored configuration cannot be read" in line
    sent = json.loads(ok(smsgate("send", "08031234567", "still here", "-t", "acme", "--json", cwd=tmp_path,
                                 env=ENV)))
    assert sent["status"] == "sent"
    assert [m["phone_number"] for r in ctl.processed(SEND, "POST") for m in r.json()["messages"]] == ["08031234567"]
    # and the store's own repair: replace it
    ok(smsgate("tenant", "add", "bravo", "acme.toml", "--replace", cwd=tmp_path,
               env={**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}))
    assert ok(smsgate("tenant", "list", cwd=tmp_path, env=ENV)).count("main (squad)") == 2


# What a removed tenant's name goes through (``tenant remove`` keeps the data; ``tenant add`` of
# the name is refused, ``tenant erase`` deletes it, ``--adopt-data`` takes it over), one step a
# test: each runs a few smsgate processes (~1 s of CPU each to start), well within the default
# timeout on a loaded machine (one test of 17 processes needed 360 s there).
def removed_acme_with_a_message(tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    """acme stored, one message sent through it (the emulator took it once), then removed."""
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    ok(smsgate("send", "08031234567", "for customer one", "-t", "acme", cwd=tmp_path, env=ENV))
    ok(smsgate("tenant", "remove", "acme", cwd=tmp_path))
    assert sent_to(ctl) == Counter({"08031234567": 1})


def test_tenant_erase_refuses_a_stored_tenant_and_the_files_tenant(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    """``tenant erase`` never deletes a stored tenant's data (remove it first) nor the file's tenant's."""
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    ok(smsgate("send", "08031234567", "for customer one", "-t", "acme", cwd=tmp_path, env=ENV))
    line = one_error_line(smsgate("tenant", "erase", "acme", "--yes", cwd=tmp_path))
    assert "tenant 'acme' is stored: remove it first" in line
    line = one_error_line(smsgate("tenant", "erase", "filed", "--yes", cwd=tmp_path))
    assert "defined in the configuration file" in line
    assert json.loads(ok(smsgate("messages", "-t", "acme", "--json", cwd=tmp_path, env=ENV)))  # still there


def test_tenant_add_of_a_removed_tenants_name_is_refused_naming_its_data(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    """``tenant remove`` keeps the data: ``tenant add`` of the name is one error line saying what
    is there and what to do."""
    removed_acme_with_a_message(tmp_path, squad, ctl)
    line = one_error_line(smsgate("tenant", "add", "acme", "acme.toml", cwd=tmp_path,
                                  env={**ENV, "ACME_SQUAD_KEY": "x"}))
    assert "holds data under the tenant name 'acme' (messages)" in line and "smsgate tenant erase acme" in line


def test_tenant_erase_asks_first_and_a_no_changes_nothing(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    removed_acme_with_a_message(tmp_path, squad, ctl)
    asked = smsgate("tenant", "erase", "acme", cwd=tmp_path, input="n\n")
    assert asked.returncode == 1 and "deletes its messages for good" in asked.stdout
    assert "nothing changed" in asked.stderr
    assert re.search(r"tenant name acme: \d+ row\(s\) erased", ok(smsgate("tenant", "erase", "acme", "--yes",
                                                                          cwd=tmp_path)))  # it was all there


def test_after_tenant_erase_the_name_is_free_and_the_new_tenant_starts_empty(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    removed_acme_with_a_message(tmp_path, squad, ctl)
    assert re.search(r"tenant name acme: \d+ row\(s\) erased", ok(smsgate("tenant", "erase", "acme", "--yes",
                                                                          cwd=tmp_path)))
    assert smsgate("tenant", "erase", "acme", "--yes", cwd=tmp_path).returncode == 1  # nothing left
    ok(smsgate("tenant", "add", "acme", "acme.toml", cwd=tmp_path, env={**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}))
    assert json.loads(ok(smsgate("messages", "-t", "acme", "--json", cwd=tmp_path, env=ENV))) == []


def test_tenant_remove_erase_removes_and_erases_at_once(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    ok(smsgate("send", "08031234568", "for customer two", "-t", "acme", cwd=tmp_path, env=ENV))
    assert "row(s) of its data erased" in ok(smsgate("tenant", "remove", "acme", "--erase", "--yes", cwd=tmp_path))
    assert sent_to(ctl) == Counter({"08031234568": 1})
    ok(smsgate("tenant", "add", "acme", "acme.toml", cwd=tmp_path, env={**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}))


def test_a_tenant_moved_from_the_file_to_the_store_takes_its_data_over_with_adopt_data(
        tmp_path: Path, squad: LiveServer) -> None:
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    ok(smsgate("optout", "add", "08031234569", "-t", "filed", cwd=tmp_path, env=ENV))
    (tmp_path / "smsgate.toml").write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n')
    (tmp_path / "filed.toml").write_text((tmp_path / "acme.toml").read_text())
    line = one_error_line(smsgate("tenant", "add", "filed", "filed.toml", cwd=tmp_path,
                                  env={**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}))
    assert "--adopt-data" in line
    ok(smsgate("tenant", "add", "filed", "filed.toml", "--adopt-data", cwd=tmp_path,
               env={**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}))
    assert smsgate("optout", "check", "08031234569", "-t", "filed", cwd=tmp_path, env=ENV).returncode == 0


def test_remove_erase_of_a_tenant_already_removed_erases_what_it_announced(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    """``tenant remove NAME --erase --yes`` after a plain ``remove`` said "erasing tenant name
    acme deletes its messages for good", then "tenant acme was not stored", and erased nothing:
    the name stayed refused. It erases the data left under the name (exit 1: not stored)."""
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    ok(smsgate("send", "08031234567", "for customer one", "-t", "acme", cwd=tmp_path, env=ENV))
    ok(smsgate("tenant", "remove", "acme", cwd=tmp_path))
    out = smsgate("tenant", "remove", "acme", "--erase", "--yes", cwd=tmp_path)
    assert out.returncode == 1
    assert re.search(r"tenant acme was not stored; \d+ row\(s\) of its data erased", out.stdout), out.stdout
    ok(smsgate("tenant", "add", "acme", "acme.toml", cwd=tmp_path, env={**ENV, "ACME_SQUAD_KEY": SANDBOX_SECRET_KEY}))
    assert json.loads(ok(smsgate("messages", "-t", "acme", "--json", cwd=tmp_path, env=ENV))) == []
    # nothing under the name and nothing stored: no question asked, nothing erased
    ok(smsgate("tenant", "remove", "acme", "--erase", "--yes", cwd=tmp_path))
    out = smsgate("tenant", "remove", "acme", "--erase", cwd=tmp_path)
    assert out.returncode == 1 and "Erase it?" not in out.stdout and "was not stored" in out.stdout


def test_a_command_for_a_removed_tenant_says_its_data_is_still_there(
        tmp_path: Path, squad: LiveServer, ctl: EmulatorControl) -> None:
    """``campaign list -t acme`` after ``tenant remove acme`` said "unknown tenant 'acme'" (or,
    with no tenant left, that the file "configures no tenant", ignoring -t) without a word of the
    messages and campaigns still stored under the name: it now says what is left and the two ways
    out (erase it, or add the tenant again with --adopt-data)."""
    setup_files(tmp_path, f"sqlite:///{tmp_path / 'log.db'}", squad.url)
    add_acme(tmp_path)
    ok(smsgate("send", "08031234567", "for customer one", "-t", "acme", cwd=tmp_path, env=ENV))
    ok(smsgate("tenant", "remove", "acme", cwd=tmp_path))
    line = one_error_line(smsgate("campaign", "list", "-t", "acme", cwd=tmp_path, env=ENV))
    assert "unknown tenant 'acme'" in line and "stored tenants: none" in line, line
    assert "holds data under the name (messages)" in line and "smsgate tenant erase acme" in line, line
    assert "--adopt-data" in line, line
    (tmp_path / "smsgate.toml").write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n')  # no tenant at all
    line = one_error_line(smsgate("messages", "-t", "acme", cwd=tmp_path, env=ENV))
    assert "unknown tenant 'acme'" in line and "configures no tenant" in line, line
    assert "smsgate tenant erase acme" in line, line
    line = one_error_line(smsgate("messages", "-t", "ghost", cwd=tmp_path, env=ENV))
    assert "unknown tenant 'ghost'" in line and "erase" not in line, line
