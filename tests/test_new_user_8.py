"""Found by a new user working through the README and docs/ (helper newuser8): each test fails
without its fix."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from smsgate import Gateway
from smsgate.cli import app
from smsgate.config import load_config
from smsgate.errors import ConfigError
from smsgate.traffic.limits import Limit

runner = CliRunner()


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_command_help_paragraphs_have_no_hard_line_breaks() -> None:
    """A docstring's line breaks (the source's 100 columns) reached the help as written: on an
    80-column terminal ``smsgate serve --help`` showed ``... are in the store. One`` and then
    ``process, no access log ...`` on a line of its own, and ``campaign create --help`` left
    ``fails`` and ``nothing`` alone on their lines; the commands list of ``campaign --help``
    broke ``create``'s and ``resume``'s lines in the middle. Paragraphs are now one line each
    for rich to wrap at the terminal's width."""
    root = typer.main.get_command(app)
    broken = [" ".join(path) for path, command in _commands(root)
              if any("\n" in para.strip() for para in re.split(r"\n\s*\n", command.help or ""))]
    assert broken == []


def test_serve_help_on_80_columns_wraps_cleanly() -> None:
    out = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "80"})
    assert out.exit_code == 0
    lines = [line.strip(" │") for line in out.output.splitlines()]
    assert "One" not in lines and "nothing" not in lines, out.output
    words = " ".join(" ".join(lines).split())
    assert "the reports and replies it took are in the store. One process, no access log" in words


# ----------------------------------------------------------------------- a limit's period
def test_a_limit_per_an_unknown_period_says_which_periods_there_are(tmp_path: Path) -> None:
    """``limits = [{rate = 5, per = "week"}]`` was refused with pydantic's two union branches:
    ``limits.0.per.literal['second','minute','hour','day']: Input should be ...;
    limits.0.per.float: Input should be a valid number, unable to parse string as a number``.
    One sentence now names the value and every period there is."""
    path = tmp_path / "smsgate.toml"
    path.write_text('[tenants.acme]\ndefault_region = "NG"\n[tenants.acme.providers.m]\nplugin = "memory"\n'
                    'limits = [{rate = 5, per = "week"}]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "tenants.acme.providers.m.limits.0.per" in message
    assert "literal[" not in message and ".float" not in message, message
    assert "'week'" in message and "second, minute, hour, day" in message, message
    assert "number of seconds" in message


@pytest.mark.parametrize("per", ["second", "day", 60, 0.5, "60"])
def test_a_limit_per_a_known_period_or_seconds_is_still_taken(per: object) -> None:
    assert Limit(rate=5, per=per).rule().count == 5  # type: ignore[arg-type]


# ----------------------------------------------------------------------- campaign create's flags
def _memory_config(tmp_path: Path) -> Path:
    path = tmp_path / "smsgate.toml"
    path.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                    '[tenants.acme.providers.mem]\nplugin = "memory"\n', encoding="utf-8")
    (tmp_path / "people.csv").write_text("phone,name\n08031234567,Ada\n", encoding="utf-8")
    return path


def _create(tmp_path: Path, *flags: str) -> Any:
    config = _memory_config(tmp_path)
    return runner.invoke(app, ["campaign", "create", "--name", "Sale", "--csv", str(tmp_path / "people.csv"),
                               "--text", "Hi {name}", "-c", str(config), *flags], env={"COLUMNS": "80"})


@pytest.mark.parametrize("value", ["tomorrow", "06/01/2027", "2027-13-01"])
def test_campaign_create_start_at_not_a_date_says_the_format(tmp_path: Path, value: str) -> None:
    """``--start-at tomorrow`` answered in a usage box, cut at 80 columns: ``Invalid value for
    '--start-at': Input should be a valid datetime or date, input is too short`` (pydantic's
    words, no format named). It is now one ``error:`` line naming the flag, the value and the
    format, as ``--quiet-hours 25:00-08:00`` is."""
    out = _create(tmp_path, "--start-at", value)
    assert out.exit_code == 2
    assert out.stderr.strip().splitlines() == [
        f"error: field '--start-at': {value!r} is not a date and time: give it in ISO 8601, e.g. "
        "2027-06-01T09:00 (UTC) or 2027-06-01T09:00+01:00"], out.stderr


@pytest.mark.parametrize("value", ["2099-06-01", "2099-06-01T09:00", "2099-06-01 09:00", "2099-06-01T09:00Z",
                                   "2099-06-01T10:00+01:00"])
def test_campaign_create_start_at_iso_forms_are_still_taken(tmp_path: Path, value: str) -> None:
    out = _create(tmp_path, "--start-at", value, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["start_at"].startswith("2099-06-01T")


def test_campaign_create_unknown_mode_names_the_flag(tmp_path: Path) -> None:
    """``--mode bogus`` said ``error: field 'mode': ...`` where ``--quiet-hours`` and
    ``--start-at`` name their flag; it now says ``field '--mode'``."""
    out = _create(tmp_path, "--mode", "bogus")
    assert out.exit_code == 2
    assert out.stderr.strip() == "error: field '--mode': unknown mode 'bogus': one of auto, fanout, native"


# ----------------------------------------------------------------------- durations on the command line
def test_messages_since_not_a_duration_names_the_flag(tmp_path: Path) -> None:
    """``smsgate messages --since yesterday`` said ``error: messages, field 'since': ...``: the
    library's field name (and its method's) where every other flag error names the flag."""
    out = runner.invoke(app, ["messages", "--since", "yesterday", "-c", str(_memory_config(tmp_path))])
    assert out.exit_code == 2
    assert out.stderr.strip() == ("error: field '--since': not a duration: 'yesterday' "
                                  "(expected e.g. 30s, 5m, 2h, 1d)")


def test_a_duration_option_not_a_duration_does_not_say_field_duration(tmp_path: Path) -> None:
    """``smsgate store purge --older-than 1x`` said ``Invalid value for '--older-than': field
    'duration': not a duration``: a field no user typed, beside the flag they did. (It is one
    ``error:`` line now, no longer click's box: tests/test_cli_usage_errors.py.)"""
    out = runner.invoke(app, ["store", "purge", "--older-than", "1x", "-c", str(_memory_config(tmp_path))],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 2
    assert "field 'duration'" not in out.output, out.output
    assert out.stderr.strip() == "error: field '--older-than': not a duration: '1x' (expected e.g. 30s, 5m, 2h, 1d)"


# ----------------------------------------------------------------------- secrets in a repr
def test_settings_repr_masks_the_store_and_traffic_passwords(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/configuration.md allows ``store = "postgresql://app:${DB_PASSWORD}@db/sms"``; the
    loaded ``Settings``' repr (a debugger, a log line ``%r``, an error report's locals) showed
    the password, and a ``traffic = "redis://:PASSWORD@host"`` one too. Both are ``***`` in
    ``repr()`` and ``str()``; the values themselves are unchanged."""
    monkeypatch.setenv("DB_PASSWORD", "s3cretpw")
    monkeypatch.setenv("REDIS_PASSWORD", "r3dispw")
    path = tmp_path / "smsgate.toml"
    path.write_text('store = "postgresql://app:${DB_PASSWORD}@db.internal:5432/sms"\n'
                    'traffic = "redis://:${REDIS_PASSWORD}@cache.internal:6379/0"\n', encoding="utf-8")
    settings = load_config(path)
    for shown in (repr(settings), str(settings)):
        assert "s3cretpw" not in shown and "r3dispw" not in shown, shown
        assert "postgresql://app:***@db.internal:5432/sms" in shown, shown
        assert "redis://:***@cache.internal:6379/0" in shown, shown
    assert settings.store == "postgresql://app:s3cretpw@db.internal:5432/sms"
    assert settings.traffic == "redis://:r3dispw@cache.internal:6379/0"
    assert "sqlite:///x.db" in repr(load_config({"store": "sqlite:///x.db"}))


# ----------------------------------------------------------------------- a campaign's unknown provider
def test_campaign_with_an_unknown_provider_lists_the_configured_ones(tmp_path: Path) -> None:
    """``campaigns.create(..., provider="nope")`` (``smsgate campaign create --provider nope``)
    said only ``tenant 'acme' has no provider 'nope'``, where ``send(..., provider="nope")`` names
    the instances there are; both say ``(configured: mem)`` now."""
    with Gateway(_memory_config(tmp_path)) as gw, pytest.raises(ConfigError) as caught:
        gw.tenant("acme").campaigns.create("Sale", text="hi", audience=["08031234567"], provider="nope")
    assert str(caught.value) == "tenant 'acme' has no provider 'nope' (configured: mem)"


# ----------------------------------------------------------------------- smsgate stats' summary
def test_stats_summary_says_no_average_when_nothing_was_delivered(tmp_path: Path) -> None:
    """``smsgate stats`` of a log with nothing delivered said ``avg delivery 0.00s`` (its
    ``--json`` says ``null``): as if messages were delivered at once. It says ``-`` now, as the
    delivery rate does."""
    config = tmp_path / "smsgate.toml"
    config.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                      '[tenants.acme.providers.mem]\nplugin = "memory"\noptions = { deliver = false }\n',
                      encoding="utf-8")
    with Gateway(config) as gw:
        gw.tenant("acme").send("08031234567", "hello")
    out = runner.invoke(app, ["stats", "-c", str(config)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert json.loads(runner.invoke(app, ["stats", "-c", str(config), "--json"]).stdout)[
        "avg_delivery_seconds"] is None
    assert "avg delivery -" in out.stdout and "avg delivery 0.00s" not in out.stdout, out.stdout


def test_stats_summary_and_table_count_expired_messages(capsys: pytest.CaptureFixture[str]) -> None:
    """An ``expired`` message (the vendor gave up) was in ``total`` but in no figure of the
    summary or column of the table: ``total 3: delivered 1, failed 0, pending 1, rejected 0,
    unknown 0``. docs/campaigns.md lists ``expired`` among the counts; the CLI shows it."""
    from smsgate.cli.stats import print_stats
    from smsgate.models import Stats, StatsBucket

    bucket = {"label": "2026-12-05", "total": 3, "delivered": 1, "sent": 1, "expired": 1}
    print_stats(Stats(**bucket, detail=[StatsBucket(**bucket)]), False)
    out = capsys.readouterr().out
    assert "expired 1" in out, out
    header, _, row = out.splitlines()[1:4]
    assert "expired" in header.split() and row.split()[header.split().index("expired")] == "1", out


# ----------------------------------------------------------------------- smsgate send with a used key
def test_send_with_a_used_idempotency_key_says_nothing_was_sent(tmp_path: Path) -> None:
    """``smsgate send 0803... "different" --idempotency-key k1`` after a first send under ``k1``
    printed ``msg_... sent via ...`` (exit 0) exactly as a send does: nothing said that this
    text was never sent and the line was the first message's (docs/concepts.md: the key alone
    names the message). The line now says so; ``--json`` is unchanged."""
    from smsgate.testing import outbox

    outbox.clear()
    config = str(_memory_config(tmp_path))
    first = runner.invoke(app, ["send", "08031234567", "hello", "--idempotency-key", "k1", "-c", config])
    assert first.exit_code == 0 and "already" not in first.stdout, first.output
    again = runner.invoke(app, ["send", "08031234568", "different", "--idempotency-key", "k1", "-c", config],
                          env={"COLUMNS": "300"})
    assert again.exit_code == 0, again.output
    message_id = first.stdout.split()[0]
    assert again.stdout.split()[0] == message_id
    assert (f"idempotency key 'k1' was already used by {message_id} (to +2348031234567): "
            "nothing was sent; this is that message's result") in again.stdout, again.stdout
    assert len(outbox.messages()) == 1
    as_json = runner.invoke(app, ["send", "08031234567", "x", "--idempotency-key", "k1", "-c", config, "--json"])
    assert json.loads(as_json.stdout)["message_id"] == message_id
    outbox.clear()


# ----------------------------------------------------------------------- flags in --help
def test_no_help_shows_a_flag_as_taking_a_value() -> None:
    """typer printed every flag with a type, ``--json <bool>``, ``--no-recover <bool>``,
    ``--help <bool>`` (106 times across the commands), as if it took a value: ``smsgate
    messages --json true`` then failed with "unexpected extra argument (true)". Flags show no
    type now; options that take a value keep theirs."""
    root = typer.main.get_command(app)
    shown = []
    for path, _ in _commands(root):
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert out.exit_code == 0, (path, out.output)
        shown += [f"{' '.join(path)}: {line.strip()}" for line in out.output.splitlines() if "<bool>" in line]
    assert shown == []
    send = runner.invoke(app, ["send", "--help"], env={"COLUMNS": "200"}).output
    assert "<str>" in send and "--json" in send  # a value's type is still shown


# ----------------------------------------------------------------------- an SMSGATE_* variable at fault
def test_a_bad_smsgate_variable_is_named_not_only_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``SMSGATE_TENANTS__ACME__SENDR=X`` (a typo of ``SENDER``) was refused as ``smsgate.toml:
    invalid configuration: tenants.acme.sendr: Extra inputs are not permitted``: the user
    searched the file for a key that was never in it. The variable is named now."""
    path = tmp_path / "smsgate.toml"
    path.write_text('[tenants.acme]\ndefault_region = "NG"\n[tenants.acme.providers.m]\nplugin = "memory"\n',
                    encoding="utf-8")
    monkeypatch.setenv("SMSGATE_TENANTS__ACME__SENDR", "X")
    monkeypatch.setenv("SMSGATE_TENANTS__ACME__MAX_SEGMENTS", "abc")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "tenants.acme.sendr: Extra inputs are not permitted; did you mean tenants.acme.sender? " \
           "(from environment variable SMSGATE_TENANTS__ACME__SENDR)" in message, message
    assert "tenants.acme.max_segments: Input should be a valid integer, unable to parse string as an integer " \
           "(from environment variable SMSGATE_TENANTS__ACME__MAX_SEGMENTS)" in message, message


def test_a_bad_key_of_the_file_names_no_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "smsgate.toml"
    path.write_text('[tenants.acme]\ndefault_region = "NG"\nmax_segments = "abc"\n', encoding="utf-8")
    monkeypatch.setenv("SMSGATE_TENANTS__ACME__SENDER", "ACME")  # a good one, about another key
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "environment variable" not in str(caught.value)
    assert "tenants.acme.max_segments: Input should be a valid integer" in str(caught.value)


def test_an_smsgate_variable_overrides_a_credential_whose_reference_is_unset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/configuration.md: ``SMSGATE_TENANTS__..._CREDENTIALS__SECRET_KEY`` "sets the key"
    and ``SMSGATE_*`` variables override the file. With the file's ``secret_key =
    "${SQUAD_SECRET_KEY}"`` and that variable unset, loading failed on it anyway (``environment
    variable SQUAD_SECRET_KEY is not set``) although the override gave the key."""
    path = tmp_path / "smsgate.toml"
    path.write_text('[tenants.acme]\ndefault_region = "NG"\nsender = "ACME"\n[tenants.acme.providers.squad]\n'
                    'plugin = "squad"\ncredentials = { secret_key = "${NU8_UNSET_KEY}" }\n', encoding="utf-8")
    monkeypatch.delenv("NU8_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match="NU8_UNSET_KEY is not set"):
        load_config(path)  # no override: the reference's error, as before
    monkeypatch.setenv("SMSGATE_TENANTS__ACME__PROVIDERS__SQUAD__CREDENTIALS__SECRET_KEY", "sk_from_env")
    settings = load_config(path)
    assert settings.tenants["acme"].providers["squad"].credentials["secret_key"].get_secret_value() == "sk_from_env"


# ----------------------------------------------------------------------- send_many's recipients
def _memory_gateway(tmp_path: Path) -> Gateway:
    return Gateway({"store": f"sqlite:///{tmp_path / 'm.db'}", "tenants": {"acme": {
        "default_region": "NG", "providers": {"mem": {"plugin": "memory"}}}}})


@pytest.mark.parametrize("recipients", ["08031234567", {"to": "08031234567"}, b"08031234567"])
def test_send_many_refuses_one_recipient_where_a_list_is_expected(tmp_path: Path, recipients: object) -> None:
    """``send_many("08031234567", "hi")`` read the string a character a row: eleven ``rejected``
    results (``'0' is not a valid phone number``), logged, and no error; a dict was read a key a
    row. ``campaigns.create`` and contact lists refuse the same mistake; ``send_many`` (sync and
    async) does now, with nothing logged."""
    import asyncio

    from smsgate import AsyncGateway, ValidationError

    with _memory_gateway(tmp_path) as gw:
        with pytest.raises(ValidationError) as caught:
            gw.tenant("acme").send_many(recipients, "hi")  # type: ignore[arg-type]
        assert caught.value.field == "recipients"
        assert "wrap it in a list" in str(caught.value)
        assert gw.tenant("acme").messages() == []

    async def main() -> None:
        async with AsyncGateway({"store": f"sqlite:///{tmp_path / 'm.db'}", "tenants": {"acme": {
                "default_region": "NG", "providers": {"mem": {"plugin": "memory"}}}}}) as agw:
            with pytest.raises(ValidationError, match="wrap it in a list"):
                await agw.tenant("acme").send_many(recipients, "hi")  # type: ignore[arg-type]

    asyncio.run(main())


def test_send_many_recipient_with_an_unknown_key_names_the_keys(tmp_path: Path) -> None:
    """``send_many([{"phone": "0803..."}], "hi")`` (a campaign contact's key) said
    ``recipient 0: MessageSpec.__init__() got an unexpected keyword argument 'phone'``."""
    from smsgate import ValidationError

    with _memory_gateway(tmp_path) as gw, pytest.raises(ValidationError) as caught:
        gw.tenant("acme").send_many([{"phone": "08031234567"}], "hi")
    message = str(caught.value)
    assert "__init__" not in message, message
    assert "recipient 0" in message and "'phone'" in message
    assert "to, text, variables, reference, idempotency_key, kind" in message
    assert "did you mean 'to'?" in message, message


def test_inbound_poll_counts_one_reply_in_the_singular(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``smsgate inbound --poll colony`` said ``colony: 1 replies listed``."""
    from smsgate.gateway import Tenant

    config = str(_memory_config(tmp_path))
    for count, said in ((1, "mem: 1 reply listed"), (2, "mem: 2 replies listed"), (0, "mem: 0 replies listed")):
        monkeypatch.setattr(Tenant, "poll_inbound", lambda self, instance, n=count: [object()] * n)
        out = runner.invoke(app, ["inbound", "--poll", "mem", "-c", config])
        assert out.exit_code == 0, out.output
        assert out.stderr.startswith(f"{said} (each stored and acted on once)"), out.stderr
