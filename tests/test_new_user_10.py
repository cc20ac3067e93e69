"""Found by a new user (helper newuser10) trying traffic control as configured in a tenant file
(rate limits per instance, sender ID and tenant, quiet hours, ``max_limit_wait``, breakers,
``traffic = "redis://..."``) and its misconfigurations, inbound messages and keywords through
``smsgate serve`` and a FastAPI app on ``AsyncGateway`` with a receive hook of its own, and
reading statistics and delivery status (``smsgate stats``, ``smsgate status``, ``providers
health``, ``route explain`` and the Python API): each test fails without its fix.
Real code paths: the Squad emulator over loopback HTTP, the ``memory`` provider (its outbox is
the vendor's record), real SQLite / PostgreSQL stores, the ``smsgate`` command through typer's
runner."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway, LimitWaitExceeded, OptedOut
from smsgate.cli import app
from smsgate.config import Settings, TenantConfig, load_config
from smsgate.errors import ConfigError
from smsgate.testing import Outbox

runner = CliRunner()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smsgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------- statistics
@pytest.mark.parametrize("store", ["memory", "sqlite", "postgres"])
def test_stats_count_the_messages_refused_as_opted_out(tmp_path: Path, store: str, request: pytest.FixtureRequest,
                                                       sms_outbox: Outbox) -> None:
    """``Stats`` has an ``opted_out`` count (``smsgate stats --json`` prints it), but it was 0
    whatever the log held: a message refused because its number opted out (``rejected``, raw
    status ``opted_out``) counted in ``rejected`` only, so ``opted_out`` read as "nobody"."""
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 's.db'}"}.get(store)
    if url is None:
        url = request.getfixturevalue("pg_url")
    config = {"store": url, "tenants": {"acme": {"default_region": "NG",
                                                 "providers": {"mem": {"plugin": "memory"}}}}}
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        acme.optouts.add("08031234567")
        with pytest.raises(OptedOut):
            acme.send("08031234567", "hi")
        results = acme.send_many(["08031234567", "08031234568"], "sale")
        assert [r.status.value for r in results] == ["rejected", "sent"]
        stats = acme.stats()
    assert (stats.total, stats.rejected, stats.opted_out) == (3, 2, 2)
    assert stats.detail[0].opted_out == 2
    assert [m.to for m in sms_outbox.messages()] == ["+2348031234568"]  # the vendor saw the other one only


def test_stats_command_shows_the_costs(tmp_path: Path, sms_emulator: Callable[..., Any]) -> None:
    """docs/campaigns.md: statistics compute the cost, per currency. ``smsgate stats`` printed
    counts and times only: the cost was in ``--json`` alone, so a user checking what a day cost
    saw no figure at all."""
    squad = sms_emulator("squad")
    settings = Settings(store=f"sqlite:///{tmp_path / 's.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings()})})
    with Gateway(settings) as gw:
        results = [gw.tenant("acme").send(f"0803123456{i}", "hello") for i in range(2)]
    assert len(squad.processed("/sms/send/instant")) == 2
    total = sum(r.cost for r in results if r.cost is not None)
    assert total > 0
    path = _write(tmp_path, f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n')
    out = runner.invoke(app, ["stats", "-c", str(path)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert f"cost {total} NGN" in out.output, out.output


# ----------------------------------------------------------------------- traffic control
LIMITED = """\
store = "sqlite:///{db}"

[tenants.acme]
default_region = "NG"
sender = "ACME"
limits = [{{ rate = 3, per = "minute", scope = "sender" }}]

[tenants.acme.providers.mem]
plugin = "memory"
limits = [{{ rate = 2, per = "minute" }}, {{ rate = 5, per = "hour", scope = "sender" }}]
"""


def test_health_shows_the_limits_per_sender_id(tmp_path: Path, sms_outbox: Outbox) -> None:
    """A limit with ``scope = "sender"`` (docs/routing.md's own example) was left out of
    ``tenant.health()`` and ``smsgate providers health``: of three limits configured the user saw
    two, and could not tell whether the third was read at all. They are shown for the sender ID
    the instance sends with (``sender ACME``)."""
    path = _write(tmp_path, LIMITED.format(db=tmp_path / "s.db"))
    with Gateway(path) as gw:
        acme = gw.tenant("acme")
        acme.send("08031234567", "hi")
        limits = acme.health()["mem"].limits
    assert len(sms_outbox.messages()) == 1
    shown = {(lim.key, lim.count, lim.period, lim.used) for lim in limits}
    # (per hour, not per second: on a loaded machine the CLI below may run a second later)
    assert ("provider:mem:sender:ACME", 5, 3600.0, 1) in shown, shown
    assert ("sender:ACME", 3, 60.0, 1) in shown, shown
    out = runner.invoke(app, ["providers", "health", "-c", str(path)], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    assert "sender ACME 1/5 messages per hour" in out.output, out.output
    assert "tenant sender ACME 1/3 messages per minute" in out.output, out.output


def test_a_limit_spacing_requests_is_not_called_full(tmp_path: Path, sms_outbox: Outbox) -> None:
    """Under ``rate = 2, per = "minute"`` one message sent made ``providers health`` say
    ``1/2 messages per minute, full for 29.9s`` and ``route explain`` ``limit full (1/2 messages
    per 60s)``: one of two used, yet "full". The wait is the spacing between requests
    (docs/routing.md: "traffic is smooth", 2 a minute is one every 30 s); they say so now."""
    path = _write(tmp_path, LIMITED.format(db=tmp_path / "s.db"))
    with Gateway(path) as gw:
        gw.tenant("acme").send("08031234567", "hi")
    assert len(sms_outbox.messages()) == 1
    health = runner.invoke(app, ["providers", "health", "-c", str(path)], env={"COLUMNS": "300"})
    assert health.exit_code == 0, health.output
    assert "full" not in health.output, health.output
    assert re.search(r"1/2 messages per minute, next in \d+\.\ds \(spaced 30s apart\)", health.output), \
        health.output
    explain = runner.invoke(app, ["route", "explain", "08031234567", "-c", str(path)], env={"COLUMNS": "300"})
    assert explain.exit_code == 0, explain.output
    assert "full" not in explain.output, explain.output
    assert re.search(r"limit 1/2 messages per 60s, spaced 30s apart: a request waits \d+\.\ds", explain.output), \
        explain.output


def test_a_limit_really_full_is_still_called_full(tmp_path: Path, sms_outbox: Outbox) -> None:
    path = _write(tmp_path, f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                            '[tenants.acme.providers.mem]\nplugin = "memory"\n'
                            'limits = [{ rate = 2, per = "minute", burst = 2 }]\n')
    with Gateway(path) as gw:
        gw.tenant("acme").send_many(["08031234567", "08031234568"], "hi")
    assert len(sms_outbox.messages()) == 2
    health = runner.invoke(app, ["providers", "health", "-c", str(path)], env={"COLUMNS": "300"})
    assert re.search(r"2/2 messages per minute, full for \d+\.\ds", health.output), health.output


def test_rate_limit_under_the_tenant_says_where_it_goes(tmp_path: Path) -> None:
    """``[tenants.acme] rate_limit = 5`` (the shorthand docs/routing.md shows, one table too
    high) said only ``tenants.acme.rate_limit: Extra inputs are not permitted``."""
    with pytest.raises(ConfigError) as exc:
        load_config({"tenants": {"acme": {"rate_limit": 5, "providers": {"mem": {"plugin": "memory"}}}}})
    text = str(exc.value)
    assert "tenants.acme.providers.<name>.rate_limit" in text, text
    assert "tenants.acme.limits" in text, text


@pytest.mark.parametrize(("zone", "hint"), [("Lagos", "'Africa/Lagos'"), ("+01:00", "a UTC offset is not a time zone")])
def test_an_unknown_timezone_names_its_key_and_the_form(zone: str, hint: str) -> None:
    """``timezone = "Lagos"`` (for quiet hours) said ``tenants.acme: timezone 'Lagos' is
    unknown``: neither the key's full path nor what a time zone looks like."""
    with pytest.raises(ConfigError) as exc:
        load_config({"tenants": {"acme": {"timezone": zone, "quiet_hours": ["21:00", "08:00"]}}})
    text = str(exc.value)
    assert "tenants.acme.timezone:" in text, text
    assert hint in text, text


def test_messages_never_sent_are_left_out_of_the_delivery_rate(tmp_path: Path, sms_outbox: Outbox) -> None:
    """A send refused by ``max_limit_wait`` is logged ``failed`` / ``not_sent``: it never left.
    ``smsgate stats`` then said ``delivery rate 0.0%`` for one message sent (no report yet) and
    one refused here: a delivery failure no vendor ever had. Like ``rejected`` (refused before
    anything was sent), they are left out of the rate, and counted as ``not_sent``."""
    path = _write(tmp_path, f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                            'max_limit_wait = 0.5\n[tenants.acme.providers.mem]\nplugin = "memory"\n'
                            'limits = [{ rate = 1, per = "minute" }]\n')
    with Gateway(path) as gw:
        acme = gw.tenant("acme")
        acme.send("08031234567", "one")
        with pytest.raises(LimitWaitExceeded):
            acme.send("08031234568", "two")
        stats = acme.stats()
    assert [m.to for m in sms_outbox.messages()] == ["+2348031234567"]
    assert (stats.total, stats.failed, stats.not_sent, stats.delivery_rate) == (2, 1, 1, None)
    out = runner.invoke(app, ["stats", "-c", str(path)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "failed 1 (1 never sent)" in out.output and "delivery rate -" in out.output, out.output


# ----------------------------------------------------------------------- smsgate serve
@pytest.mark.parametrize(("args", "flag"), [(["--path", "hooks"], "--path"), (["--port", "70000"], "--port"),
                                            (["--max-body", "0"], "--max-body")])
def test_serve_names_the_flag_it_refuses(tmp_path: Path, args: list[str], flag: str) -> None:
    """``smsgate serve --max-body 0`` said ``error: field 'max_body': ...`` and ``--path hooks``
    ``field 'path': --path must ...``: the library's field names, where every other command's
    flag errors name the flag as typed."""
    path = _write(tmp_path, f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n')
    out = runner.invoke(app, ["serve", "-c", str(path), *args])
    assert out.exit_code == 2, out.output
    assert f"field '{flag}'" in out.output, out.output
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened


# ----------------------------------------------------------------------- delivery status
def test_status_of_a_message_its_provider_cannot_be_asked_about_says_so(tmp_path: Path,
                                                                        sms_emulator: Callable[..., Any]) -> None:
    """docs/getting-started.md: ``status`` "asks the provider if not final". Squad's v2 API has
    no status lookup, so ``smsgate status ID`` of a message ``sent`` through it printed the log as
    it was, exactly as a fresh answer would read: the user waited for a ``delivered`` that no
    lookup could bring. It now says why the status was not refreshed and what moves it."""
    squad = sms_emulator("squad")
    key = squad.provider_settings().credentials["secret_key"].get_secret_value()
    path = _write(tmp_path, f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                            f'[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "{squad.url}"\n'
                            f'sender = "SMSGATE"\noptions = {{ api_version = "v2" }}\n'
                            f'credentials = {{ secret_key = "{key}" }}\n')
    with Gateway(path) as gw:
        sent = gw.tenant("acme").send("08031234567", "hello")
    assert len(squad.processed("/sms/send/instant")) == 1
    out = runner.invoke(app, ["status", sent.message_id, "-c", str(path)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "squad cannot be asked for a message's status" in out.output, out.output
    assert "delivery report" in out.output and "smsgate serve" in out.output, out.output
    final = runner.invoke(app, ["status", sent.message_id, "-c", str(path), "--no-refresh"], env={"COLUMNS": "200"})
    assert "cannot be asked" not in final.output, final.output  # not asked: nothing to explain


@pytest.mark.parametrize("command", [["stats"], ["campaign", "stats", "cmp_x"]])
def test_stats_with_an_unknown_period_names_the_flag(tmp_path: Path, command: list[str]) -> None:
    """``smsgate stats --period week`` said ``error: field 'period': period must be one of hour,
    day, month``: the library's field, where the other flags' errors name the flag."""
    path = _write(tmp_path, f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n')
    out = runner.invoke(app, [*command, "--period", "week", "-c", str(path)])
    assert out.exit_code == 2, out.output
    assert "field '--period': 'week' is not a period: hour, day or month" in out.output, out.output


# ----------------------------------------------------------------------- where limits are kept
@pytest.mark.parametrize("value", ["memory", "Store", "redis//:s3cret@cache:6379/0"])
def test_a_bad_traffic_value_says_what_it_takes(value: str) -> None:
    """``traffic = "memory"`` said ``traffic: String should match pattern
    '^(store|local|rediss?://.+)$'``: a regular expression, not what to write. A value holding a
    password is not echoed."""
    with pytest.raises(ConfigError) as exc:
        load_config({"traffic": value, "tenants": {"acme": {}}})
    text = str(exc.value)
    assert "pattern" not in text and "'store'" in text and "'local'" in text and "redis://" in text, text
    assert "s3cret" not in text, text


def test_config_check_reaches_the_redis_that_keeps_the_limits(tmp_path: Path) -> None:
    """With ``traffic = "redis://..."`` on a Redis that is not there, ``smsgate config check``
    (and ``--online``) said every instance was OK, then every send failed ("the Redis keeping
    limits and breakers failed"). It reads the limits once, as a send would, and says so."""
    from services import free_ports

    port = free_ports()
    path = _write(tmp_path, f'store = "sqlite:///{tmp_path / "s.db"}"\ntraffic = "redis://127.0.0.1:{port}/0"\n'
                            '[tenants.acme]\ndefault_region = "NG"\n[tenants.acme.providers.mem]\nplugin = "memory"\n')
    for extra in ([], ["--online"]):
        out = runner.invoke(app, ["config", "check", "-c", str(path), *extra])
        assert out.exit_code == 2, out.output
        assert f"127.0.0.1:{port}/0" in out.output and "Redis" in out.output, out.output


def test_a_send_refused_by_max_limit_wait_names_the_limits(tmp_path: Path, sms_emulator: Callable[..., Any]) -> None:
    """A send refused by ``max_limit_wait`` said ``not sent: its rate limits would hold it 4.98s,
    longer than max_limit_wait (1s) (after failing over from a: not sent: its rate limits would
    hold it 4.98s, ...)``: which limits, the instance's or the tenant's (here the tenant's, which
    every provider shares, so failing over could not help), it did not say."""
    squad = sms_emulator("squad")
    block = squad.provider_settings().model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    block["credentials"] = {k: v.get_secret_value() for k, v in squad.provider_settings().credentials.items()}
    config = {"store": "memory://", "tenants": {"acme": {
        "default_region": "NG", "max_limit_wait": 1, "limits": [{"rate": 1, "per": 60}],
        "providers": {"a": {**block, "limits": [{"rate": 10, "per": "minute"}]}, "b": block}}}}
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        assert acme.send("08031234567", "one").provider == "a"
        with pytest.raises(LimitWaitExceeded) as exc:
            acme.send("08031234568", "two")
    assert len(squad.processed("/sms/send/instant")) == 1  # the tenant's limit held on the failover
    text = str(exc.value)
    assert "(tenant: 1 message per 60s)" in text, text
    assert "(instance a: 10 messages per 60s; tenant: 1 message per 60s)" in text, text
