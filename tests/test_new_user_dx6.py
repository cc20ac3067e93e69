"""Leftovers of a new user's trial (dx6): what the command line and the API said that was not so.

Each test reproduces what the user did, through the CLI or the Python API, with the README's
kind of configuration against the provider emulators over loopback HTTP, and a real store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from smsgate import Gateway
from smsgate.ids import new_id
from smsgate.models import utcnow
from smsgate.testing import EmulatorControl, LiveServer
from test_cli_interrupt import emulator_module, interrupt, last_line, start, wait_for, write_config


@pytest.fixture
def squad() -> Iterator[LiveServer]:
    """The Squad emulator over loopback HTTP (the sandbox's credentials: ``write_config``)."""
    factory, _ = emulator_module("squad")
    with LiveServer(factory()) as server:
        yield server


# ------------------------------------------------- 1. Ctrl-C in a second 'campaign run' of one campaign
def test_ctrl_c_in_a_second_campaign_run_says_another_runner_goes_on(tmp_path: Path, squad: LiveServer) -> None:
    """Two ``smsgate campaign run`` on one campaign (allowed: claims with owners and leases).
    Ctrl-C in the second said ``N sent so far; run 'smsgate campaign run cmp_...' again to
    resume`` while the first runner still held (and sent) its claims: as if the campaign had
    stopped and something were waiting for a re-run. It says now that another runner works on
    the campaign, how many recipients it holds, and that nothing is lost.

    The first runner is a live lease and its claims, made through the store as a runner makes
    them (its owner renews nothing here: the lease lasts the test)."""
    cfg = write_config(tmp_path, sq=("squad", squad))
    numbers = [f"0803{i:07d}" for i in range(1_000)]
    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("two runners", text="x", audience=numbers, batch_size=10,
                                                 concurrency=2).campaign_id
        gw.store.start_runner("acme", cid, "first-runner", utcnow() + timedelta(hours=1))
        held = gw.store.claim_recipients("acme", cid, 40, lambda: new_id("msg"), owner="first-runner")
    assert len(held) == 40
    vendor = squad.app.vendor  # type: ignore[attr-defined]
    EmulatorControl(squad.url).fault(kind="latency", delay=0.05, count=None)  # a run that lasts
    proc = start("campaign", "run", cid, cwd=tmp_path)
    wait_for(lambda: len(vendor.messages) >= 20, proc, "some messages sent")
    _, err = interrupt(proc)
    line = last_line(err)
    assert "again to resume" not in line.split("if they stop")[0], line
    assert f"1 other runner(s) still work on campaign {cid} (40 recipient(s) claimed by a live runner now)" \
        in line and "nothing is lost" in line, line
    EmulatorControl(squad.url).clear_faults()


# ------------------------------------------------- 2. campaign stats: a message "sent" is not "pending"
def test_campaign_stats_shows_sent_messages_as_sent_not_pending(tmp_path: Path, squad: LiveServer) -> None:
    """After a campaign's run, ``smsgate campaign status`` said ``sent 30, ... pending 0`` and
    ``smsgate campaign stats`` said ``pending 30`` of the same messages: its summary added
    ``queued``, ``submitted`` and ``sent`` (handed on by the vendor, no delivery report yet)
    under "pending", and its table had no ``queued`` column. Each status is shown as itself."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    cfg = write_config(tmp_path, sq=("squad", squad))
    with Gateway(cfg) as gw:
        camp = gw.tenant("acme").campaigns.create("stats", text="x",
                                                  audience=[f"0803{i:07d}" for i in range(30)])
        assert camp.run().sent == 30
        stats = camp.stats()
    assert (stats.sent, stats.delivered, stats.queued, stats.submitted) == (30, 0, 0, 0)  # the emulator's "sent"
    runner = CliRunner()
    out = runner.invoke(app, ["campaign", "stats", camp.campaign_id, "-c", str(cfg)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    summary, header, _, row = out.stdout.splitlines()[:4]
    assert "pending" not in summary and summary.startswith(
        "total 30: queued 0, submitted 0, sent 30, delivered 0, failed 0, rejected 0, expired 0, unknown 0;"), summary
    assert header.split() == ["period", "total", "queued", "submitted", "sent", "delivered", "failed", "rejected",
                              "expired", "unknown"], out.stdout
    assert row.split()[-9:] == ["30", "0", "0", "30", "0", "0", "0", "0", "0"], out.stdout
    status = json.loads(runner.invoke(app, ["campaign", "status", camp.campaign_id, "-c", str(cfg), "--json"]).stdout)
    assert (status["sent"], status["pending"]) == (30, 0)


# ------------------------------------------------- 3. optout import: repeats within the file
def test_optout_import_counts_numbers_repeated_in_the_file_apart_from_those_already_opted_out(
        tmp_path: Path) -> None:
    """``smsgate optout import`` of a file with a number three times (in two forms) and nothing
    opted out before said ``4 row(s): 2 opted out ..., 2 already were``: the repeats were counted
    as numbers opted out before. They are ``repeated in the file`` now, across batches too (a
    repeat in a later batch found the number the import itself had added), and the second import
    of the same file finds all its numbers opted out before."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.mem]\nplugin = "memory"\n')
    path = tmp_path / "stops.csv"
    path.write_text("phone\n+2348031234567\n08031234567\n08031234568\n+2348031234567\n")
    runner = CliRunner()
    out = runner.invoke(app, ["optout", "import", str(path), "-c", str(cfg)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert ("stops.csv: 4 row(s): 2 opted out of every sender, 0 already were, 2 repeated in the file, "
            "0 invalid") in out.stdout, out.stdout
    again = json.loads(runner.invoke(app, ["optout", "import", str(path), "-c", str(cfg), "--json"]).stdout)
    assert (again["added"], again["already"], again["repeated"]) == (0, 2, 2)
    with Gateway(cfg) as gw:  # a repeat two batches later is a repeat too
        report = gw.tenant("acme").optouts.add_many(["08031234569", "08031234570", "+2348031234569"],
                                                    batch_size=1)
    assert (report.added, report.already, report.repeated) == (2, 0, 1)


# ------------------------------------------------- 4. sqlite://rel.db (two slashes)
@pytest.mark.parametrize("url", ["sqlite://rel.db", "sqlite://data/rel.db", "sqlite://:memory:"])
def test_a_sqlite_url_with_two_slashes_is_refused_saying_how_to_write_it(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``store = "sqlite://rel.db"`` was taken as ``sqlite:///rel.db`` (a file beside the
    configuration file) without a word, though what follows ``//`` in a URL is a host (other
    tools read it so, or refuse it). It is a ConfigError naming the setting and both right forms,
    from ``open_store``, a dict, a configuration file, ``SMSGATE_STORE`` and the command line;
    nothing is created."""
    from typer.testing import CliRunner

    from smsgate.cli import app
    from smsgate.config import load_config
    from smsgate.errors import ConfigError
    from smsgate.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_STORE", raising=False)
    (tmp_path / "data").mkdir()
    rest = url[len("sqlite://"):]
    said = (f"store URL {url!r} has two slashes after 'sqlite:', which would make {rest!r} a host, not a file: "
            f"write 'sqlite:///{rest}' (a relative path: three slashes) or 'sqlite:////abs/path.db' (an absolute "
            "path: four)")
    with pytest.raises(ConfigError) as exc:
        open_store(url)
    assert str(exc.value) == said
    tenants = {"acme": {"default_region": "NG", "providers": {"mem": {"plugin": "memory"}}}}
    with pytest.raises(ConfigError) as exc:
        Gateway({"store": url, "tenants": tenants})
    assert said in str(exc.value) and "store:" in str(exc.value)
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "{url}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.mem]\nplugin = "memory"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    assert said in str(exc.value), exc.value
    out = CliRunner().invoke(app, ["campaign", "list", "-c", str(cfg)], env={"COLUMNS": "400"})
    assert out.exit_code == 2 and said in " ".join(out.output.split()), out.output
    monkeypatch.setenv("SMSGATE_STORE", url)
    with pytest.raises(ConfigError) as exc:
        load_config({"tenants": tenants})
    assert said in str(exc.value) and "SMSGATE_STORE" in str(exc.value), exc.value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "smsgate.toml"]  # no database made


# ------------------------------------------------- 5. a blank message id
@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_message_id_is_a_validation_error_naming_it_not_not_found(blank: str, tmp_path: Path) -> None:
    """``tenant.status("")`` (an unset form field, an empty variable) raised ``NotFound: no
    message ''``, as if such a message might exist; ``smsgate status ""`` printed the same. A
    blank id is bad input: a ValidationError naming the argument (``message_id``; the command
    line's ``argument 'message_id'``, as a missing one), from ``status``, ``get`` and ``look_up``, sync and async; a
    well-formed id that names nothing stays NotFound."""
    import asyncio

    from typer.testing import CliRunner

    from smsgate import AsyncGateway
    from smsgate.cli import app
    from smsgate.errors import NotFound, ValidationError

    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.mem]\nplugin = "memory"\n')
    said = f"is blank ({blank!r}): give the message's id (msg_..., as send() returned it)"
    with Gateway(cfg) as gw:
        t = gw.tenant("acme")
        for call in (t.status, t.get, t.look_up):
            with pytest.raises(ValidationError) as exc:
                call(blank)
            assert (exc.value.field, exc.value.reason) == ("message_id", said), call
            assert not isinstance(exc.value, NotFound)
        with pytest.raises(NotFound):
            t.status("msg_nothere")

    async def async_errors() -> list[tuple[str | None, str]]:
        async with AsyncGateway(cfg) as agw:
            at = agw.tenant("acme")
            errors = []
            for call in (at.status, at.get, at.look_up):
                try:
                    await call(blank)
                except ValidationError as exc:
                    errors.append((exc.field, exc.reason))
            return errors

    assert asyncio.run(async_errors()) == [("message_id", said)] * 3
    out = CliRunner().invoke(app, ["status", blank, "-c", str(cfg)], env={"COLUMNS": "300"})
    assert out.exit_code == 2, out.output
    assert out.output.strip() == (f"error: argument 'message_id': is blank ({blank!r}): give the message's id "
                                  "(msg_...), as 'smsgate send' and 'smsgate messages' print it"), out.output


# ------------------------------------------------- 6. campaign create names its options
@pytest.mark.parametrize(("args", "said"), [
    (["--name", "", "--text", "Hi"],
     "field '--name': '' is blank: a campaign needs a name (shown by 'smsgate campaign list')"),
    (["--name", "x" * 300, "--text", "Hi"], "field '--name': is 300 characters long; at most 200"),
    (["--name", "spring", "--text", " "], "field '--text': is empty: a campaign needs a message text"),
    (["--name", "spring", "--text", "Hi {nope}"], "field '--text': placeholder {nope} not in the columns"),
    (["--name", "spring", "--text", "Hi", "--sender", "much too long a sender"], "field '--sender': "),
])
def test_campaign_create_names_its_options_in_its_errors(args: list[str], said: str, tmp_path: Path) -> None:
    """``smsgate campaign create --name ""`` said ``field 'name'``: the library's argument, where
    every other check of the command names its option (``--mode``, ``--start-at``; ``smsgate
    send``'s ``field '--idempotency-key'``). ``--name``, ``--text`` and ``--sender`` are named as
    --help shows them; nothing is created."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.mem]\nplugin = "memory"\n')
    (tmp_path / "c.csv").write_text("phone,name\n08031234567,Ada\n")
    out = CliRunner().invoke(app, ["campaign", "create", *args, "--csv", str(tmp_path / "c.csv"), "-c", str(cfg)],
                             env={"COLUMNS": "400"})
    assert out.exit_code == 2, out.output
    assert out.output.startswith(f"error: {said}"), out.output
    with Gateway(cfg) as gw:
        assert gw.tenant("acme").campaigns.list() == []
