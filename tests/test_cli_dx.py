"""The ``smsgate`` command as a user runs it: a real process (``python -m smsgate``), the
installed plugins, the Squad emulator on loopback. Issue 18: what a new user tripped over.

Exit codes: 0 ok, 1 a negative answer, 2 an error (one ``error: ...`` line, no traceback).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from services import free_ports
from smsgate.testing import EmulatorControl, LiveServer
from smsgate_squad.emulator import SANDBOX_SECRET_KEY, create_app


def smsgate(*args: str, cwd: Path, env: dict[str, str] | None = None, without: tuple[str, ...] = (),
            ) -> subprocess.CompletedProcess[str]:
    """Run ``smsgate ARGS`` in a new process; ``without`` names modules that import as if not installed."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    full_env = {**clean, "COLUMNS": "200", **(env or {})}
    if without:
        code = (f"import sys\nfor m in {list(without)!r}: sys.modules[m] = None\n"
                f"sys.argv = ['smsgate', *{list(args)!r}]\nfrom smsgate.cli import main\nmain()\n")
        command = [sys.executable, "-c", code]
    else:
        command = [sys.executable, "-m", "smsgate", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120)


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line a failed command prints (asserting exit 2 and no traceback)."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def squad() -> Iterator[LiveServer]:
    with LiveServer(create_app(delivery_delay=0.05)) as server:
        yield server


def write_config(path: Path, store: str, providers: str, tenant_extra: str = "") -> Path:
    path.write_text(f'store = "{store}"\n[tenants.acme]\ndefault_region = "NG"\n{tenant_extra}\n{providers}')
    return path


def squad_block(url: str, name: str = "sq", sender: str | None = "SMSGATE", extra: str = "") -> str:
    return (f'[tenants.acme.providers.{name}]\nplugin = "squad"\nbase_url = "{url}"\n'
            + (f'sender = "{sender}"\n' if sender else "")
            + 'credentials = { secret_key = "${SQUAD_KEY}" }\n' + extra)


@pytest.fixture
def cfg(tmp_path: Path, squad: LiveServer) -> Path:
    return write_config(tmp_path / "smsgate.toml", f"sqlite:///{tmp_path / 'log.db'}", squad_block(squad.url))


KEY = {"SQUAD_KEY": SANDBOX_SECRET_KEY}


# ----------------------------------------------------------------------------- 1. user data is not markup
def test_a_number_in_brackets_is_named_as_written(cfg: Path, tmp_path: Path) -> None:
    line = one_error_line(smsgate("send", "[/x]", "hi", cwd=tmp_path, env=KEY))
    assert "'[/x]'" in line


def test_brackets_in_texts_and_csv_values_are_previewed_as_written(cfg: Path, tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("phone,name\n08031234567,Ada [/b]\n[12],[bold]x\n")
    out = smsgate("campaign", "create", "--name", "[promo]", "--csv", "people.csv",
                  "--text", "Hi {name}, reply [stop] to opt out", cwd=tmp_path, env=KEY)
    assert out.returncode == 0, out.stderr
    assert "Hi Ada [/b], reply [stop] to opt out" in out.stdout  # not "reply  to opt out"
    assert "[12]" in out.stdout and "'[promo]'" in out.stdout
    listed = smsgate("campaign", "list", cwd=tmp_path, env=KEY)
    assert listed.returncode == 0 and "[promo]" in listed.stdout


def test_the_postgres_hint_and_a_provider_prefix_keep_their_brackets(cfg: Path, tmp_path: Path) -> None:
    line = one_error_line(smsgate("db", "upgrade", "--url", "postgresql://u@127.0.0.1/db", cwd=tmp_path,
                                  without=("psycopg",)))
    assert "pip install 'smsgate[postgres]'" in line
    line = one_error_line(smsgate("send", "08031234567", "hi", cwd=tmp_path, env={"SQUAD_KEY": "wrong"}))
    assert line.startswith("error: [sq] ")


# ----------------------------------------------------------------------------- 2. the server extra
@pytest.mark.parametrize("command", [["sandbox"], ["demo", "--db", "demo.db"]])
def test_sandbox_and_demo_without_uvicorn_name_the_extra(command: list[str], tmp_path: Path) -> None:
    line = one_error_line(smsgate(*command, cwd=tmp_path, without=("uvicorn",)))
    assert line == f"error: smsgate {command[0]} needs uvicorn, which is not installed: pip install 'smsgate[server]'"
    assert not (tmp_path / "demo.db").exists()


# ----------------------------------------------------------------------------- 3. no or bad configuration
@pytest.mark.parametrize("command", [["send", "08031234567", "hi"], ["config", "check"], ["messages"]])
def test_without_smsgate_toml_commands_say_where_they_looked(command: list[str], tmp_path: Path) -> None:
    line = one_error_line(smsgate(*command, cwd=tmp_path))
    assert f"no smsgate.toml in {tmp_path}" in line and "$SMSGATE_CONFIG" in line
    assert "--config" in line and "docs/configuration.md" in line


def test_config_check_passes_a_good_configuration(cfg: Path, tmp_path: Path) -> None:
    out = smsgate("config", "check", cwd=tmp_path, env=KEY)
    assert out.returncode == 0, out.stderr
    assert "acme/sq: squad at http://127.0.0.1:" in out.stdout


@pytest.mark.parametrize(("block", "expected"), [
    (squad_block("http://127.0.0.1:1", extra='options = { api_version = "v9" }\n'),
     "provider 'sq' (squad): invalid options: options.api_version: Input should be 'v2' or 'v1'"),
    (squad_block("127.0.0.1:8801"),
     "tenants.acme.providers.sq.base_url: '127.0.0.1:8801' needs a scheme: write 'https://127.0.0.1:8801'"),
    (squad_block("http://127.0.0.1:99999"), "tenants.acme.providers.sq.base_url: 'http://127.0.0.1:99999' is not"),
    (squad_block("http://127.0.0.1:1", sender=None),
     "tenants.acme.providers.sq: squad needs a sender and none is set; add sender"),
    (squad_block("http://127.0.0.1:1", extra="price_per_segment = -1\n"),
     "tenants.acme.providers.sq.price_per_segment: Input should be greater than or equal to 0"),
    ("", "tenants.acme: no providers"),
])
def test_config_check_fails_on_a_bad_configuration(block: str, expected: str, tmp_path: Path) -> None:
    write_config(tmp_path / "smsgate.toml", "memory://", block)
    line = one_error_line(smsgate("config", "check", cwd=tmp_path, env=KEY))
    assert expected in line


# ----------------------------------------------------------------------------- 5. connection errors
def test_a_connection_error_names_host_and_port_and_no_next_provider(tmp_path: Path) -> None:
    port = free_ports()
    write_config(tmp_path / "smsgate.toml", f"sqlite:///{tmp_path / 'log.db'}",
                 squad_block(f"http://127.0.0.1:{port}", extra="max_retries = 0\n"))
    line = one_error_line(smsgate("send", "08031234567", "hi", cwd=tmp_path, env=KEY))
    assert f"could not connect to 127.0.0.1:{port} (ConnectError: " in line
    assert "trying" not in line


def test_failover_says_which_provider_it_tries_next(squad: LiveServer, tmp_path: Path) -> None:
    port = free_ports()
    write_config(tmp_path / "smsgate.toml", f"sqlite:///{tmp_path / 'log.db'}",
                 squad_block(f"http://127.0.0.1:{port}", extra="max_retries = 0\n")
                 + squad_block(squad.url, name="backup"),
                 )
    (tmp_path / "smsgate.toml").write_text((tmp_path / "smsgate.toml").read_text().replace(
        "\n[tenants.acme.providers", '\n[[tenants.acme.routes]]\nprefixes = ["+234"]\nproviders = ["sq", "backup"]\n'
        "[tenants.acme.providers", 1))
    out = smsgate("send", "08031234567", "hi", "--json", cwd=tmp_path, env=KEY)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["provider"] == "backup"
    assert "send via sq failed (TransportError); trying backup" in out.stderr


# ----------------------------------------------------------------------------- 6. busy port, missing folder
def test_sandbox_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(smsgate("sandbox", "--port", str(port), cwd=tmp_path))
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in line and "another port" in line


@pytest.mark.parametrize("port", ["70000", "65535", "-5", "0"])
def test_sandbox_on_a_port_out_of_range_is_one_line(tmp_path: Path, port: str) -> None:
    """Was an OverflowError traceback from bind()."""
    line = one_error_line(smsgate("sandbox", "--port", port, cwd=tmp_path))
    assert f"--port {port}: the " in line and "outside 1..65535; choose a --port from 1 to 65531" in line


def test_new_provider_refuses_a_name_an_installed_plugin_has(tmp_path: Path) -> None:
    """Installing a plugin named like another (squad, or the testing kit's memory) silently replaced it."""
    for taken in ("squad", "memory"):
        line = one_error_line(smsgate("new-provider", taken, "--dir", str(tmp_path), cwd=tmp_path))
        assert f"provider name {taken!r} is taken" in line
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_store_in_a_missing_folder_is_one_line(tmp_path: Path, squad: LiveServer) -> None:
    write_config(tmp_path / "smsgate.toml", "sqlite:///nowhere/log.db", squad_block(squad.url))
    line = one_error_line(smsgate("messages", cwd=tmp_path, env=KEY))
    # a relative path in the configuration file is read from the file's folder, and named so
    folder = tmp_path / "nowhere"
    assert f"store 'sqlite:///{folder}/log.db': the folder '{folder}' does not exist; create it" in line
    line = one_error_line(smsgate("db", "upgrade", "--url", "sqlite:///nowhere/x.db", cwd=tmp_path))
    assert "the folder 'nowhere' does not exist" in line


# ----------------------------------------------------------------------------- 8. honest answers
def test_optout_check_answers_0_yes_1_no_2_error(cfg: Path, tmp_path: Path) -> None:
    assert smsgate("optout", "add", "08031234567", cwd=tmp_path, env=KEY).returncode == 0
    yes = smsgate("optout", "check", "+2348031234567", cwd=tmp_path, env=KEY)
    assert (yes.returncode, yes.stdout.strip()) == (0, "opted out")
    no = smsgate("optout", "check", "08031234568", cwd=tmp_path, env=KEY)
    assert (no.returncode, no.stdout.strip()) == (1, "not opted out")
    assert "'12'" in one_error_line(smsgate("optout", "check", "12", cwd=tmp_path, env=KEY))


def test_read_only_commands_need_no_provider_secrets(cfg: Path, tmp_path: Path) -> None:
    sent = smsgate("send", "08031234567", "hi", "--json", cwd=tmp_path, env=KEY)
    assert sent.returncode == 0, sent.stderr
    for command in (["messages"], ["campaign", "list"], ["stats"], ["optout", "list"]):
        out = smsgate(*command, cwd=tmp_path)  # SQUAD_KEY unset
        assert out.returncode == 0, (command, out.stderr)
    assert json.loads(sent.stdout)["message_id"] in smsgate("messages", cwd=tmp_path).stdout
    line = one_error_line(smsgate("send", "08031234567", "hi", cwd=tmp_path))  # sending still needs it
    assert "tenants.acme.providers.sq.credentials.secret_key: environment variable SQUAD_KEY is not set" in line


def test_a_placeholder_typo_is_an_error_and_leaves_no_campaign(cfg: Path, tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("phone,name,city\n08031234567,Ada,Lagos\n")
    line = one_error_line(smsgate("campaign", "create", "--name", "x", "--csv", "people.csv",
                                  "--text", "Hi {nmae} in {city}", cwd=tmp_path, env=KEY))
    assert "placeholder {nmae} (did you mean 'name'?) not in the columns of CSV people.csv" in line
    assert "(columns: city, name)" in line
    line = one_error_line(smsgate("campaign", "create", "--name", "x", "--csv", "people.csv",
                                  "--text", "Hi", "--phone-column", "msisdn", cwd=tmp_path, env=KEY))
    assert "no 'msisdn' column" in line
    listed = smsgate("campaign", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "cmp_" not in listed.stdout  # no orphan draft


def test_version(tmp_path: Path) -> None:
    out = smsgate("--version", cwd=tmp_path)
    assert (out.returncode, out.stdout.strip()) == (0, f"smsgate {version('smsgate')}")


def test_campaign_create_shows_progress_on_a_large_csv(cfg: Path, tmp_path: Path) -> None:
    rows = "".join(f"0803{i:07d},P{i}\n" for i in range(12_000))
    (tmp_path / "big.csv").write_text("phone,name\n" + rows)
    out = smsgate("campaign", "create", "--name", "big", "--csv", "big.csv", "--text", "Hi {name}",
                  cwd=tmp_path, env={**KEY, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1",
                                     "FORCE_COLOR": "1"})  # (rich 13 knows only FORCE_COLOR)
    assert out.returncode == 0, out.stderr
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.stderr)
    assert "preparing big.csv: 5,000 rows read" in err
    assert "preparing big.csv: 10,000 rows read" in err
    assert "to send: 12000" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.stdout)


def test_campaign_run_reaches_the_emulator_once_per_recipient(cfg: Path, tmp_path: Path, squad: LiveServer) -> None:
    """The per-message bar changes nothing about what is sent (the emulator's own record)."""
    numbers = [f"0803{i:07d}" for i in range(30)]
    (tmp_path / "few.csv").write_text("phone\n" + "\n".join(numbers) + "\n")
    created = smsgate("campaign", "create", "--name", "few", "--csv", "few.csv", "--text", "hello few",
                      cwd=tmp_path, env=KEY)
    assert created.returncode == 0, created.stderr
    cid = next(w for w in created.stdout.replace("'", " ").split() if w.startswith("cmp_"))
    before = len(EmulatorControl(squad.url).requests(method="POST"))
    ran = smsgate("campaign", "run", cid, cwd=tmp_path, env=KEY)
    assert ran.returncode == 0, ran.stderr
    assert f"{cid}: completed; sent 30" in ran.stdout
    posts = EmulatorControl(squad.url).requests(method="POST")[before:]
    received = [m["phone_number"] for r in posts if r.path.endswith("/sms/send/instant")
                for m in r.json()["messages"]]
    assert sorted(received) == sorted(numbers)  # Squad takes national numbers
