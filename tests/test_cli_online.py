"""``smsgate config check --online`` and ``smsgate sandbox --webhook``, run as a user runs them: a real
process (``python -m smsgate``) against the provider emulators on loopback.

``config check --online`` calls every instance (:meth:`smsgate.provider.Provider.check`, a harmless
authenticated call) and reports per instance whether the vendor was reachable, accepted the
credentials and lists the sender; exit 0 when all passed, 2 when any failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services import free_ports
from smsgate import Gateway
from smsgate.cli.sandbox import _toml_value
from smsgate.emulation import callback_url
from smsgate.models import Status
from smsgate.testing import EmulatorControl, LiveServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import smsgate_broadcast.emulator as broadcast_emu
import smsgate_campaigns_api.emulator as dm_emu
import smsgate_colony.emulator as colony_emu
import smsgate_generic_http.emulator as generic_emu
import smsgate_squad.emulator as squad_emu

#: plugin -> (emulator module, credential to spoil, wrong value)
EMULATORS: dict[str, tuple[Any, str, str]] = {
    "squad": (squad_emu, "secret_key", "sandbox_sk_not_the_key"),
    "colony": (colony_emu, "password", "not-the-password"),
    "campaigns_api": (dm_emu, "api_key", "not-the-key"),
    "broadcast": (broadcast_emu, "access_token", "not-the-bot-token"),
    "generic_http": (generic_emu, "api_key", "not-the-key"),
}


def smsgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    return subprocess.run([sys.executable, "-m", "smsgate", *args], capture_output=True, text=True, cwd=cwd,
                          env={**env, "COLUMNS": "200"}, timeout=120)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, LiveServer]]:
    started = {name: LiveServer(module.create_app()).start() for name, (module, _, _) in EMULATORS.items()}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


def block(instance: str, plugin: str, base_url: str, *, sender: str | None = "SMSGATE",
          credentials: dict[str, str] | None = None, settings: dict[str, Any] | None = None,
          extra: str = "") -> str:
    module = EMULATORS[plugin][0]
    values: dict[str, Any] = {"plugin": plugin, "base_url": base_url, **(settings if settings is not None
                                                                          else module.SANDBOX_SETTINGS)}
    if sender:
        values["sender"] = sender
    values["credentials"] = {**module.SANDBOX_CREDENTIALS, **(credentials or {})}
    lines = [f"[tenants.acme.providers.{instance}]", *(f"{k} = {_toml_value(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n" + extra


def write(tmp_path: Path, *blocks: str) -> None:
    (tmp_path / "smsgate.toml").write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\n'
                                           'default_region = "NG"\n' + "\n".join(blocks))


def online(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    out = smsgate("config", "check", "--online", "--json", cwd=tmp_path)
    assert "Traceback" not in out.stderr, out.stderr
    return out, {row["instance"]: row for row in json.loads(out.stdout)}


def test_every_provider_passes_with_good_credentials(tmp_path: Path, servers: dict[str, LiveServer]) -> None:
    write(tmp_path, *(block(name, name, servers[name].url) for name in EMULATORS))
    for ctl in (EmulatorControl(s.url) for s in servers.values()):
        ctl.reset()
    out, rows = online(tmp_path)
    assert out.returncode == 0, out.stderr
    assert set(rows) == set(EMULATORS)
    for name, row in rows.items():
        assert (row["outcome"], row["reachable"], row["credentials_accepted"]) == ("ok", True, True), row
    # the generic vendor lists its sender IDs: the configured one is among them
    assert rows["generic_http"]["sender_valid"] is True
    assert rows["squad"]["sender_valid"] is None and "no sender-ID API" in rows["squad"]["detail"]
    # harmless: the vendors received no send, created nothing (their own request records)
    for name, server in servers.items():
        methods = {(r.method, r.path) for r in EmulatorControl(server.url).processed()}
        assert methods, name
        writes = {m for m in methods if m[0] != "GET"}
        allowed = {("POST", "/oauth2/access_token/"), ("POST", "/api/v1/sessions")}  # logins, not sends
        assert writes <= allowed, (name, writes)


def test_bad_credentials_are_rejected_per_instance_and_exit_2(tmp_path: Path, servers: dict[str, LiveServer]) -> None:
    write(tmp_path, *(block(name, name, servers[name].url, credentials={key: wrong})
                      for name, (_, key, wrong) in EMULATORS.items()))
    out, rows = online(tmp_path)
    assert out.returncode == 2
    for name, row in rows.items():
        assert (row["outcome"], row["reachable"], row["credentials_accepted"]) == ("failed", True, False), row
        assert row["detail"].startswith("credentials rejected: "), row
        assert EMULATORS[name][2] not in row["detail"]  # the secret is not echoed
    error = out.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: 5 of 5 provider instance(s) failed the online check")


def test_the_table_names_what_failed(tmp_path: Path, servers: dict[str, LiveServer]) -> None:
    write(tmp_path, block("good", "squad", servers["squad"].url),
          block("bad", "campaigns_api", servers["campaigns_api"].url, credentials={"api_key": "nope"}))
    out = smsgate("config", "check", "--online", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("acme/")}
    assert "REJECTED" in rows["acme/bad"] and "failed: credentials rejected" in rows["acme/bad"]
    assert "ok: GET /sms/template answered" in rows["acme/good"]
    assert "1 ok, 1 failed, 0 not checked" in out.stdout
    assert out.stderr.strip() == "error: 1 of 2 provider instance(s) failed the online check: acme/bad"


@pytest.mark.parametrize("plugin", sorted(EMULATORS))
def test_an_unreachable_base_url_names_host_and_port(plugin: str, tmp_path: Path) -> None:
    port = free_ports()
    write(tmp_path, block("gone", plugin, f"http://127.0.0.1:{port}", extra="max_retries = 0\n"))
    out, rows = online(tmp_path)
    assert out.returncode == 2
    row = rows["gone"]
    assert (row["outcome"], row["reachable"], row["credentials_accepted"]) == ("failed", False, None)
    assert row["detail"].startswith("unreachable") and f"127.0.0.1:{port}" in row["detail"], row


def test_squad_v1_checks_the_sender_against_its_sender_listing(tmp_path: Path, servers: dict[str, LiveServer]) -> None:
    v1 = {"options": squad_emu.SANDBOX_V1_OPTIONS}
    creds = dict(squad_emu.SANDBOX_V1_CREDENTIALS)
    write(tmp_path, block("listed", "squad", servers["squad"].url, sender="SQUAD", settings=v1, credentials=creds),
          block("unlisted", "squad", servers["squad"].url, sender="NOTMINE", settings=v1, credentials=creds))
    out, rows = online(tmp_path)
    assert out.returncode == 2
    assert (rows["listed"]["outcome"], rows["listed"]["sender_valid"]) == ("ok", True)
    bad = rows["unlisted"]
    assert (bad["outcome"], bad["credentials_accepted"], bad["sender_valid"]) == ("failed", True, False)
    assert "NOTMINE" == bad["sender"] and "not among the registered sender IDs (SQUAD)" in bad["detail"]


def test_generic_http_without_a_check_endpoint_is_not_checked(tmp_path: Path, servers: dict[str, LiveServer]) -> None:
    options = {k: v for k, v in generic_emu.SANDBOX_OPTIONS.items() if k != "check"}
    write(tmp_path, block("plain", "generic_http", servers["generic_http"].url, settings={"options": options}))
    out, rows = online(tmp_path)
    assert out.returncode == 0, out.stderr  # nothing failed; the table says it was not checked
    row = rows["plain"]
    assert (row["outcome"], row["reachable"], row["credentials_accepted"]) == ("not checked", None, None)
    assert "online check" in row["detail"] and "[options.check]" in row["detail"]


def test_generic_http_sender_not_listed_fails(tmp_path: Path, servers: dict[str, LiveServer]) -> None:
    write(tmp_path, block("gh", "generic_http", servers["generic_http"].url, sender="OTHER"))
    out, rows = online(tmp_path)
    assert out.returncode == 2
    assert (rows["gh"]["outcome"], rows["gh"]["sender_valid"]) == ("failed", False)


# ----------------------------------------------------------------------------- sandbox --webhook
class Recorder:
    """ASGI app recording each callback (path, query, answer status) and passing it to ``app`` once set."""

    def __init__(self) -> None:
        self.app: Any = None
        self.calls: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        status: list[int] = []

        async def noted(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        if self.app is None:
            await noted({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await self.app(scope, receive, noted)
        self.calls.append((scope["path"], scope["query_string"].decode(), status[0] if status else 0))


def read_until(stream: Any, marker: str, timeout: float = 60) -> str:
    """What ``stream`` prints up to and including the line holding ``marker``."""
    lines: list[str] = []
    done = threading.Event()

    def reader() -> None:
        for line in stream:
            lines.append(line)
            if marker in line:
                break
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    assert done.wait(timeout), "".join(lines)
    text = "".join(lines)
    assert marker in text, text
    return text


def wait_for(check: Any, timeout: float = 15, why: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out: {why() if why else ''}"
        time.sleep(0.1)


def test_sandbox_webhook_delivers_reports_to_the_webhook_app(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from smsgate.webhooks import webhook_app

    recorder = Recorder()
    port = free_ports(len(EMULATORS))
    with LiveServer(recorder) as hooks:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
        proc = subprocess.Popen([sys.executable, "-m", "smsgate", "sandbox", "--port", str(port),
                                 "--webhook", f"{hooks.url}/hooks"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                env={**env, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"})
        try:
            try:
                printed = read_until(proc.stdout, "Ctrl-C to stop.")
            except AssertionError:
                proc.kill()
                raise AssertionError(proc.communicate()[1]) from None
            # the exact URLs it calls, and a word for every emulator that cannot call back
            assert f"squad           -> {hooks.url}/hooks/acme/squad\n" in printed
            assert f"-> {hooks.url}/hooks/acme/campaigns_api?token=sandbox-dm-webhook-token" in printed
            assert "colony          cannot call back: the vendor documents no delivery-report callbacks" in printed
            assert "broadcast       cannot call back" in printed and "smsgate status" in printed
            toml_text = printed.split("not real secrets):", 1)[1].split("Ctrl-C to stop.", 1)[0]
            config = tomllib.loads(f'store = "sqlite:///{tmp_path / "hooks.db"}"\n[tenants.acme]\n'
                                   f'default_region = "NG"\n{toml_text}')
            with Gateway(config) as gw:
                recorder.app = Starlette(routes=[Mount("/hooks", app=webhook_app(gw))])  # mounted as in an app
                tenant = gw.tenant("acme")
                # Squad v2 has no status lookup and campaigns_api's is never called here: a
                # delivered status can only have come through the webhook app
                sent = {name: tenant.send(to, "hello", provider=name)
                        for name, to in (("squad", "+2348031234567"), ("campaigns_api", "+447912345678"))}
                for name, result in sent.items():
                    assert not result.status.is_final, (name, result)
                    wait_for(lambda r=result: tenant.get(r.message_id).status == Status.DELIVERED,
                             why=lambda r=result: (name, tenant.get(r.message_id).status, recorder.calls))
            for name in sent:
                answered = [code for path, _, code in recorder.calls if path == f"/hooks/acme/{name}"]
                assert answered and set(answered) == {200}, (name, recorder.calls)
            assert any(q == "token=sandbox-dm-webhook-token" for p, q, _ in recorder.calls
                       if p.endswith("/campaigns_api"))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck sandbox
                proc.kill()
                proc.wait()
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_sandbox_refuses_a_webhook_url_without_a_scheme(tmp_path: Path) -> None:
    out = smsgate("sandbox", "--webhook", "localhost:8000/hooks", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("error: invalid --webhook: 'localhost:8000/hooks' needs a scheme")


@pytest.mark.parametrize(("webhook", "token", "expected"), [
    ("http://h:8000", None, "http://h:8000/acme/squad"),
    ("http://h:8000/hooks/", None, "http://h:8000/hooks/acme/squad"),
    ("http://h/x?instance={instance}&t={tenant}", None, "http://h/x?instance=squad&t=acme"),
    ("http://h/cb", "s3cr&t", "http://h/cb/acme/squad?token=s3cr%26t"),
    ("http://h/{tenant}/{instance}?a=1", "tok", "http://h/acme/squad?a=1&token=tok"),
    ("http://h/{instance}?token=mine", "tok", "http://h/squad?token=mine"),
])
def test_callback_url(webhook: str, token: str | None, expected: str) -> None:
    assert callback_url(webhook, "acme", "squad", token) == expected


def test_offline_check_prints_json_too(tmp_path: Path, servers: dict[str, LiveServer]) -> None:
    EmulatorControl(servers["squad"].url).reset()
    write(tmp_path, block("sq", "squad", servers["squad"].url))
    out = smsgate("config", "check", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"store": f"sqlite:///{tmp_path / 'log.db'}",
                                      "instances": [f"acme/sq: squad at {servers['squad'].url}"]}
    assert not EmulatorControl(servers["squad"].url).requests("/sms")  # offline: no vendor called
