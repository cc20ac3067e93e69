"""A new user's walk through the day's changes (helper newuser15): large CSV campaigns with
Ctrl-C, inbound filters and replies, a clock stepping back under a rate limit, Colony's scope.

Each test is a finding: it failed on main's code before its fix. Real code paths: emulators
over loopback HTTP, real SQLite stores.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smsgate import Gateway
from smsgate.cli import app
from smsgate.models import Status
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import EmulatorControl
from test_cli import cfg, emulator, runner  # noqa: F401  (a fixture)
from test_traffic import arrivals, config, echo, plugins, provider  # noqa: F401  (a fixture)

HOUR = 3600.0


# ----------------------------------------------------------------------------- a clock stepping back
@pytest.mark.timeout(60)
def test_after_a_clock_step_back_sends_are_spaced_again_not_sent_in_pairs(
        echo: tuple[str, EmulatorControl], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811  (the fixture)
    """``rate_limit = 2`` (one every 0.5 s, ``burst`` 1). A process whose wall clock was an hour
    ahead sent 4; the clock is then stepped back and the same tenant sends 8 more, one after the
    other. docs/routing.md: the step costs one window more at most and "the spacing starts again
    from now". Before: the sends after the step left in pairs, two at the same instant every
    second, for as long as the sending went on (each one held by the window past its spacing
    slot, and the slot not moved to when it left)."""
    url, ctl = echo
    ahead = [HOUR]
    real_now = SQLiteStore._traffic_now
    monkeypatch.setattr(SQLiteStore, "_traffic_now", lambda self, conn: real_now(self, conn) + ahead[0])
    settings = config(f"sqlite:///{tmp_path / 'limits.db'}", {"one": provider(url, rate_limit=2)})
    with Gateway(settings, plugins=plugins()) as gw:
        tenant = gw.tenant("acme")
        for i in range(4):
            assert tenant.send(f"0803910{i:04d}", "x").status == Status.SUBMITTED
        ahead[0] = 0.0  # NTP steps the clock back an hour
        for i in range(4, 12):
            assert tenant.send(f"0803910{i:04d}", "x").status == Status.SUBMITTED
    after = [at for at, _ in arrivals(ctl)][4:]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(after)]
    assert min(gaps) > 0.4, f"after the step back, sends were not spaced 0.5 s apart: gaps {gaps}"


# ----------------------------------------------------------------------------- Colony's scope option
COLONY_CREDENTIALS = {"client_id": "colony-sandbox-client", "client_secret": "colony-sandbox-client-secret",
                      "username": "sandbox@colony.test", "password": "colony-sandbox-password"}


def test_a_colony_scope_the_token_endpoint_refuses_is_named_as_the_scope_not_the_credentials() -> None:
    """docs/providers/colony.md: ``options.scope`` is sent with the password grant. A user writing
    ``scope = "read,write"`` (OAuth2 scopes are space-separated) got "the token endpoint refused
    the credentials: invalid_scope": the credentials were right; the option was wrong, and the
    error named neither it nor the fix."""
    from smsgate.errors import AuthFailed
    from smsgate.testing import LiveServer
    from smsgate_colony.emulator import create_app

    with LiveServer(create_app(write_scope=True)) as vendor:
        cfg = {"store": "memory://", "tenants": {"t": {"default_region": "ZA", "providers": {"colony": {
            "plugin": "colony", "base_url": vendor.url, "sender": "X", "credentials": COLONY_CREDENTIALS,
            "options": {"scope": "read,write"}}}}}}
        with Gateway(cfg) as gw, pytest.raises(AuthFailed) as caught:
            gw.tenant("t").send("+27821234567", "hi")
    text = str(caught.value)
    assert "invalid_scope" in text and "credentials" not in text, text
    assert "options.scope = 'read,write'" in text and "separated by spaces" in text and '"read write"' in text, text


# ----------------------------------------------------------------------------- reserved idempotency keys
def test_smsgate_send_names_the_flag_of_a_reserved_idempotency_key(cfg: Path) -> None:  # noqa: F811  (the fixture)
    """docs/inbound.md: keys starting with ``smsgate:`` are refused. The CLI's errors name its
    flags (``--since``, ``--action``...); ``smsgate send --idempotency-key smsgate:x`` named the
    library's argument, ``field 'idempotency_key'``, which is no option of the command."""
    out = runner.invoke(app, ["send", "08031234567", "hi", "-c", str(cfg), "--idempotency-key", "smsgate:x"])
    assert out.exit_code == 2, out.output
    assert "field '--idempotency-key'" in out.output and "reserved" in out.output, out.output


# ----------------------------------------------------------------------------- a tenant's setting under a provider
def test_a_tenant_setting_written_under_a_provider_instance_is_pointed_up_to_the_tenant(tmp_path: Path) -> None:
    """docs/routing.md: ``max_limit_wait`` is a tenant's setting. Written under the provider
    instance next to its ``rate_limit`` (where a user trying limits puts it), the error said
    only "Extra inputs are not permitted", while a setting of a table one level down
    (``optout_scope`` -> ``inbound.optout_scope``) gets a "did you mean"."""
    from smsgate.config import load_config
    from smsgate.errors import ConfigError

    path = tmp_path / "smsgate.toml"
    path.write_text('[tenants.clk]\ndefault_region = "NG"\n[tenants.clk.providers.squad]\nplugin = "squad"\n'
                    'rate_limit = 2\nmax_limit_wait = 5\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "tenants.clk.providers.squad.max_limit_wait: Extra inputs are not permitted" in str(caught.value)
    assert "it is a setting of tenants.clk: did you mean tenants.clk.max_limit_wait?" in str(caught.value), caught.value


# ----------------------------------------------------------------------------- Ctrl-C while the writer child starts
_CREATE = """
import sys
from smsgate import Gateway
from smsgate.campaigns import CsvAudience
try:
    with Gateway({"store": "sqlite:///" + sys.argv[1], "tenants": {"acme": {"default_region": "NG",
                  "providers": {"m": {"plugin": "memory"}}}}}) as gw:
        gw.tenant("acme").campaigns.create("big", text="Hi {name}", audience=CsvAudience(sys.argv[2]))
except KeyboardInterrupt:
    print("parent: interrupted", file=sys.stderr)
    sys.exit(130)
"""


def _writer_children(pid: int) -> list[int]:
    """``pid``'s children running the writer's program (started: past their exec)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    started = b"writer_process" in f.read()
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid and started:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (not gone, not a zombie its parent has yet to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc for the child")
@pytest.mark.timeout(120)
def test_ctrl_c_reaching_the_writer_child_while_it_starts_is_ignored(tmp_path: Path) -> None:
    """docs/campaigns.md "Large CSV files use a second core": the child ignores Ctrl-C (a
    terminal's reaches the whole process group; the application decides). It ignored SIGINT
    only once its main() ran: one arriving while it was still importing smsgate (its first
    half second or so) killed it with its own KeyboardInterrupt traceback, twenty lines of
    importlib frames under the application's output, and failed the creation."""
    csv_path = tmp_path / "big.csv"
    with csv_path.open("w") as f:
        f.write("phone,name\n")
        f.writelines(f"0803{i:07d},Name{i}\n" for i in range(200_000))
    script = tmp_path / "create.py"
    script.write_text(_CREATE)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "c.db"), str(csv_path)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (children := _writer_children(proc.pid)):
        assert proc.poll() is None and time.monotonic() < deadline, "the writer child never started"
        time.sleep(0.002)
    # The child's share of a terminal's Ctrl-C, from the moment its program runs and through
    # its start (importing smsgate: some 0.3 s or more), every few milliseconds: one sent
    # 0.05 s in found it still importing ``signal`` at times, before it could ignore anything
    # (one arriving before the interpreter set up its own handling killed it silently: the
    # parent then wrote every row itself, slower; the child must outlive every one of them)
    until = time.monotonic() + 0.5
    while time.monotonic() < until and _alive(children[0]):
        with contextlib.suppress(ProcessLookupError):  # (reaped: the check below says so)
            os.kill(children[0], signal.SIGINT)
        time.sleep(0.003)
    assert _alive(children[0]), "the writer child died of a Ctrl-C"
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
