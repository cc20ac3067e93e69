"""``smsgate sandbox`` serves each emulator on its own port, whatever else is installed: run as a
user runs it (``python -m smsgate sandbox``), with and without one more plugin installed (a
dist-info on ``PYTHONPATH``, found through its entry points like any installed package)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from services import free_ports
from smsgate.cli.sandbox import BASE_PORT, plan_ports
from smsgate.errors import ValidationError
from smsgate.plugins import sandbox_account

ROOT = Path(__file__).resolve().parents[1]

#: Each built-in plugin's port, as docs/getting-started.md lists them.
BUILT_IN = {"squad": 8801, "colony": 8802, "campaigns_api": 8803, "broadcast": 8804, "generic_http": 8805}

#: A provider package of someone else's: a plugin named to sort before every built-in one (which
#: shifted every built-in emulator's port before), whose emulator has no port of its own unless
#: AARDVARK_PORT says.
PLUGIN = '''
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from smsgate.hookspecs import SandboxAccount, hookimpl


@hookimpl
def smsgate_sandbox_account(plugin):
    if plugin != "aardvark":
        return None
    port = os.environ.get("AARDVARK_PORT")
    return SandboxAccount(credentials={"api_key": "aardvark-sandbox"}, port=int(port) if port else None)


def create_app():
    return Starlette(routes=[Route("/ping", lambda request: JSONResponse({"aardvark": True}))])
'''


def install_plugin(where: Path) -> Path:
    """The ``aardvark`` plugin installed in ``where`` (put it on PYTHONPATH)."""
    where.mkdir()
    (where / "aardvark_plugin.py").write_text(PLUGIN)
    info = where / "aardvark_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aardvark-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[smsgate.providers]\naardvark = aardvark_plugin\n\n"
                                           "[smsgate.emulators]\naardvark = aardvark_plugin:create_app\n")
    return where


def env(plugin_dir: Path | None = None, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(("SMSGATE_", "AARDVARK_"))}
    clean.update(PYTHONUNBUFFERED="1", COLUMNS="200", **extra)
    if plugin_dir is not None:
        clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), clean.get("PYTHONPATH")]))
    return clean


def sandbox(*args: str, environ: dict[str, str], cwd: Path) -> dict[str, str]:
    """Run ``smsgate sandbox ARGS`` until it is up: each emulator's URL as printed (checked to answer);
    then Ctrl-C (exit 130)."""
    proc = subprocess.Popen([sys.executable, "-m", "smsgate", "sandbox", *args], cwd=cwd, env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Ctrl-C to stop." in line:
                break
        else:
            proc.wait(30)
            raise AssertionError(f"exit {proc.returncode}\n{''.join(seen)}{proc.stderr.read() if proc.stderr else ''}")
        urls = dict(re.findall(r"^(\w+) +(http://127\.0\.0\.1:\d+) ", "".join(seen), re.MULTILINE))
        for name, url in urls.items():  # each is served where it says
            path = "/ping" if name == "aardvark" else "/_emulator/requests"
            assert httpx.get(url + path, timeout=10).status_code == 200, (name, url)
        return urls
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - a sandbox that ignored Ctrl-C
            proc.kill()
            proc.communicate()
        assert proc.returncode == 130, proc.returncode


def one_error_line(*args: str, environ: dict[str, str], cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "smsgate", "sandbox", *args], cwd=cwd, env=environ, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def test_each_built_in_emulator_keeps_its_port_when_another_plugin_is_installed(tmp_path: Path) -> None:
    base = free_ports(len(BUILT_IN) + 3)
    expected = {name: f"http://127.0.0.1:{port - BASE_PORT + base}" for name, port in BUILT_IN.items()}
    assert sandbox("--port", str(base), environ=env(), cwd=tmp_path) == expected  # squad on --port, as for 8801
    plugin_dir = install_plugin(tmp_path / "site")
    more = sandbox("--port", str(base), environ=env(plugin_dir), cwd=tmp_path)
    assert {k: v for k, v in more.items() if k != "aardvark"} == expected
    assert int(more["aardvark"].rsplit(":", 1)[1]) > base + len(BUILT_IN) - 1  # a free port after them


def test_a_busy_port_names_the_plugin_and_the_flag_that_moves_it(tmp_path: Path) -> None:
    base = free_ports(len(BUILT_IN) + 3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 2))  # campaigns_api's place
        busy.listen()
        line = one_error_line("--port", str(base), environ=env(), cwd=tmp_path)
        assert line.startswith(f"error: the campaigns_api emulator: cannot listen on 127.0.0.1:{base + 2}: the port "
                               "is in use"), line
        assert "--plugin-port campaigns_api=PORT serves it on another, --port moves every emulator" in line
        urls = sandbox("--port", str(base), "--plugin-port", f"campaigns_api={base + 5}", environ=env(), cwd=tmp_path)
    assert urls["campaigns_api"] == f"http://127.0.0.1:{base + 5}" and urls["squad"] == f"http://127.0.0.1:{base}"


def test_a_plugin_that_wants_a_built_in_port_is_refused_naming_both(tmp_path: Path) -> None:
    plugin_dir = install_plugin(tmp_path / "site")
    line = one_error_line(environ=env(plugin_dir, AARDVARK_PORT="8801"), cwd=tmp_path)
    assert line == ("error: the aardvark and squad emulators both have port 8801: serve one elsewhere with "
                    "--plugin-port squad=PORT"), line
    base = free_ports(len(BUILT_IN) + 3)
    urls = sandbox("--port", str(base), "--plugin-port", f"aardvark={base + 6}",
                   environ=env(plugin_dir, AARDVARK_PORT="8801"), cwd=tmp_path)
    assert urls["aardvark"] == f"http://127.0.0.1:{base + 6}" and urls["squad"] == f"http://127.0.0.1:{base}"


@pytest.mark.parametrize(("args", "error"), [
    (["--plugin-port", "squad"], "error: --plugin-port squad: expected NAME=PORT, e.g. squad=9001"),
    (["--plugin-port", "nope=9000"], "error: --plugin-port nope=9000: no emulator 'nope' is installed"),
    (["--plugin-port", "squad=8802"], "error: --plugin-port squad=8802: that is the colony emulator's port; choose "
                                      "another, or move colony too (--plugin-port colony=PORT)"),
    (["--plugin-port", "squad=70000"], "error: --plugin-port squad=70000: a port is 1..65535"),
    (["--port", "65534"], "error: --port 65534: the generic_http emulator would be on port 65538, outside "
                          "1..65535; choose a --port from 1 to 65531"),
])
def test_bad_port_options_are_one_line(tmp_path: Path, args: list[str], error: str) -> None:
    assert one_error_line(*args, environ=env(), cwd=tmp_path).startswith(error)


def test_the_installed_plugins_declare_the_ports_the_docs_name() -> None:
    installed = {ep.name for ep in entry_points(group="smsgate.emulators")}
    assert {name: sandbox_account(name).port for name in installed} == BUILT_IN
    plan = plan_ports({name: sandbox_account(name).port for name in installed})
    assert plan.fixed == BUILT_IN and plan.free == []
    docs = (ROOT / "docs" / "getting-started.md").read_text()
    for name, port in BUILT_IN.items():
        assert f"`{name}` on {port}" in docs, name
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:  # squad's URL wherever it is given
        for line in page.read_text().splitlines():
            for port in re.findall(r"127\.0\.0\.1:(88\d\d)", line):
                assert int(port) in BUILT_IN.values(), (page, line)
                if "squad" in line.lower():
                    assert int(port) == BUILT_IN["squad"], (page, line)


def test_plan_ports() -> None:
    plan = plan_ports({"b": None, "squad": 8801, "colony": 8802, "a": None}, base=9001, chosen={"colony": 9500})
    assert plan.fixed == {"squad": 9001, "colony": 9500} and plan.free == ["a", "b"] and plan.after == 9501
    assert plan_ports({"x": None}).after == BASE_PORT  # nothing fixed: free ports from the base on
    with pytest.raises(ValidationError, match="the one and two emulators both have port 9000"):
        plan_ports({"one": 9000, "two": 9000})
    with pytest.raises(ValidationError, match="choose a --port from 1 to 65531"):
        plan_ports({"squad": 8801, "generic_http": 8805}, base=0)


@pytest.mark.parametrize("port", [0, 70000, "8801", 8801.0])
def test_a_sandbox_account_with_a_bad_port_is_a_config_error(port: object) -> None:
    from smsgate.errors import ConfigError
    from smsgate.hookspecs import SandboxAccount, hookimpl
    from smsgate.plugins import PluginManager

    class Odd:
        @hookimpl
        def smsgate_sandbox_account(self, plugin: str) -> SandboxAccount | None:
            return SandboxAccount(credentials={}, port=port) if plugin == "odd" else None  # type: ignore[arg-type]

    pm = PluginManager(load_entry_points=False)
    pm.register(Odd())
    with pytest.raises(ConfigError, match=rf"provider plugin 'odd': its SandboxAccount's port {port!r} is not a port"):
        pm.sandbox_account("odd")


def test_a_port_a_live_server_was_given_is_held_from_the_moment_it_is_made() -> None:
    """Two servers made for one port before either starts (two test workers picking the first
    free port of one range, two sandboxes): the second is refused when it is made, with the
    error that says the port is in use. It bound the port too (``SO_REUSEADDR``) and failed only
    once started, as "failed to start", after its caller had stopped looking for a free port."""
    from smsgate.errors import ConfigError
    from smsgate.server import LiveServer

    port = free_ports()
    first = LiveServer(lambda scope, receive, send: None, port=port)
    try:
        with pytest.raises(ConfigError, match="the port is in use"):
            LiveServer(lambda scope, receive, send: None, port=port)
    finally:
        first._sock.close()
