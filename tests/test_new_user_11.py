"""Found by a new user integrating smsgate in an app from the README and docs/ (helper
newuser11): each test fails without its fix."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsgate import AsyncGateway, Gateway
from smsgate.cli import app
from smsgate.config import load_config
from smsgate.errors import ConfigError, ValidationError
from smsgate.models import InboundMessage
from test_new_user_9 import no_config  # noqa: F401  (the fixture: an empty directory, no configuration)

runner = CliRunner()


# ----------------------------------------------------------------------- smsgate serve without a tenant
def test_serve_without_a_configuration_says_so_and_creates_no_store(no_config: Path) -> None:  # noqa: F811  (the fixture)
    """``smsgate serve`` in a directory without smsgate.toml served ``(tenants: none)`` (every
    vendor callback answered 404) and created ./smsgate.db; every other command that needs a
    tenant says where it looked and how to start one."""
    out = runner.invoke(app, ["serve", "--port", "0"])
    assert out.exit_code == 2, out.output
    assert "no configuration: there is no smsgate.toml in" in out.output
    assert "serving webhooks" not in out.output
    assert not any(no_config.iterdir()), sorted(p.name for p in no_config.iterdir())


def test_serve_with_a_configuration_of_no_tenant_says_so(no_config: Path) -> None:  # noqa: F811  (the fixture)
    config = no_config / "smsgate.toml"
    config.write_text(f'store = "sqlite:///{no_config / "s.db"}"\n', encoding="utf-8")
    out = runner.invoke(app, ["serve", "--port", "0", "-c", str(config)])
    assert out.exit_code == 2, out.output
    assert "configures no tenant and its store holds none" in out.output
    assert not (no_config / "s.db").exists()


# ----------------------------------------------------------------------- tenant.stats(): filters that match nothing by mistake
def _memory_gateway_config() -> dict[str, Any]:
    return {"store": "memory://", "tenants": {"acme": {"default_region": "NG",
                                                        "providers": {"mem": {"plugin": "memory"}}}}}


def test_stats_of_a_provider_the_tenant_never_had_is_an_error_naming_it() -> None:
    """``smsgate stats --provider nope`` said the tenant has no such provider, but
    ``tenant.stats(provider="nope")`` (a typo in an app) answered all zeros."""
    with Gateway(_memory_gateway_config()) as gw:
        acme = gw.tenant("acme")
        acme.send("08031234567", "hi")
        assert acme.stats(provider="mem").total == 1
        with pytest.raises(ValidationError) as info:
            acme.stats(provider="mme")
        assert info.value.field == "provider"
        assert "tenant 'acme' has no provider 'mme' (its providers: mem)" in str(info.value)


def test_async_stats_of_a_provider_the_tenant_never_had_is_an_error_naming_it() -> None:
    async def main() -> None:
        async with AsyncGateway(_memory_gateway_config()) as gw:
            acme = gw.tenant("acme")
            await acme.send("08031234567", "hi")
            assert (await acme.stats(provider="mem")).total == 1
            with pytest.raises(ValidationError, match="has no provider 'mme'"):
                await acme.stats(provider="mme")

    asyncio.run(main())


@pytest.mark.parametrize(("since", "until"), [
    ("1h", "2h"),                                                         # 1 h ago .. 2 h ago
    (datetime(2026, 12, 7, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc)),
])
def test_stats_with_since_after_until_is_an_error_not_zeros(since: Any, until: Any) -> None:
    """``tenant.stats(since="1h", until="2h")`` (the bounds swapped: "from one hour ago until two
    hours ago") answered all zeros as if nothing had been sent."""
    with Gateway(_memory_gateway_config()) as gw:
        acme = gw.tenant("acme")
        acme.send("08031234567", "hi")
        with pytest.raises(ValidationError) as info:
            acme.stats(since=since, until=until)
        assert info.value.field == "until" and "is before since" in str(info.value)
        assert acme.stats(since="2h", until=datetime.now(timezone.utc)).total == 1  # the right way round
        assert acme.stats(since="1h").total == 1


# ----------------------------------------------------------------------- number filters: blank or not a string
@pytest.mark.parametrize("value", ["", "   ", 2348031234567])
def test_a_blank_or_non_string_number_filter_is_an_error_naming_it(value: Any) -> None:
    """``tenant.inbound(from_number="")`` (an empty form field) listed every reply,
    ``inbound(from_number=2348031234567)`` none, and ``messages(to="")`` no message: each a
    silent answer to a mistake. Now a ValidationError naming the filter, as ``messages(to=5)`` was."""
    with Gateway(_memory_gateway_config()) as gw:
        acme = gw.tenant("acme")
        acme.send("08031234567", "hi")
        acme.ingest_inbound("mem", [InboundMessage(tenant="acme", provider="mem", vendor_id="v1",
                                                   from_number="+2348031234567", text="hello")])
        with pytest.raises(ValidationError) as info:
            acme.inbound(from_number=value)
        assert info.value.field == "from_number", info.value
        with pytest.raises(ValidationError) as info:
            acme.messages(to=value)
        assert info.value.field == "to", info.value
        assert len(acme.inbound(from_number="08031234567")) == 1
        assert len(acme.messages(to="08031234567")) == 1


def test_async_inbound_refuses_a_blank_number_filter() -> None:
    async def main() -> None:
        async with AsyncGateway(_memory_gateway_config()) as gw:
            with pytest.raises(ValidationError, match="from_number"):
                await gw.tenant("acme").inbound(from_number="")

    asyncio.run(main())


# ----------------------------------------------------------------------- smsgate inbound reads the store only
def _config_with_unset_secret(folder: Path) -> Path:
    path = folder / "smsgate.toml"
    path.write_text(f'store = "sqlite:///{folder / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\nsender = "ACME"\n'
                    '[tenants.acme.providers.squad]\nplugin = "squad"\n'
                    'credentials = { secret_key = "${NU11_UNSET_SQUAD_KEY}" }\n', encoding="utf-8")
    return path


def test_inbound_lists_replies_without_the_providers_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``smsgate inbound`` only reads the store, yet stopped with ``error: ...secret_key: environment
    variable SQUAD_SECRET_KEY is not set``, where ``messages`` and ``stats`` work without it."""
    monkeypatch.delenv("NU11_UNSET_SQUAD_KEY", raising=False)
    config = _config_with_unset_secret(tmp_path)
    out = runner.invoke(app, ["inbound", "-c", str(config)])
    assert out.exit_code == 0, out.output
    assert "no inbound messages (replies) stored for tenant 'acme'" in out.output
    polled = runner.invoke(app, ["inbound", "-c", str(config), "--poll", "squad"])  # polling calls the provider
    assert polled.exit_code == 2 and "NU11_UNSET_SQUAD_KEY" in polled.output, polled.output


@pytest.mark.parametrize(("args", "flag"), [(["messages", "--to", ""], "--to"), (["inbound", "--from", " "], "--from")])
def test_a_blank_number_flag_is_named_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                               flag: str) -> None:
    monkeypatch.delenv("NU11_UNSET_SQUAD_KEY", raising=False)
    out = runner.invoke(app, [*args, "-c", str(_config_with_unset_secret(tmp_path))])
    assert out.exit_code == 2, out.output
    assert f"field '{flag}': is blank" in out.output, out.output


# ----------------------------------------------------------------------- optout import --errors 0
def test_optout_import_errors_zero_says_how_many_in_one_line(tmp_path: Path) -> None:
    """``smsgate optout import FILE --errors 0`` printed an empty table under a title wrapped to
    its width ("invalid rows, not / recorded (0 of 3; / --errors N lists / more)"); ``contacts
    create --errors 0`` says it in one line, and so does it now."""
    config = tmp_path / "smsgate.toml"
    config.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                      '[tenants.acme.providers.mem]\nplugin = "memory"\n', encoding="utf-8")
    stops = tmp_path / "stops.csv"
    stops.write_text("phone,note\n08031234561,called\n0803123,typo\n,empty\n", encoding="utf-8")
    for errors in ("0", "-1"):
        out = runner.invoke(app, ["optout", "import", str(stops), "--errors", errors, "-c", str(config)],
                            env={"COLUMNS": "200"})
        assert out.exit_code == 0, out.output
        lines = out.output.splitlines()
        assert lines[1:] == ["invalid rows, not recorded: 2, not listed (--errors N lists them)"], out.output


# ----------------------------------------------------------------------- optouts.remove(scope=..., every_scope=True)
def test_remove_with_a_scope_and_every_scope_is_refused_and_removes_nothing() -> None:
    """``optouts.remove(phone, scope="AcmeShop", every_scope=True)`` (``smsgate optout remove N
    --scope AcmeShop --all-scopes``) removed every opt-out of the number, the opt-out from every
    sender included, where one flag asked for one sender's: now a ValidationError, nothing removed."""
    with Gateway(_memory_gateway_config()) as gw:
        acme = gw.tenant("acme")
        acme.optouts.add("08031234567")
        acme.optouts.add("08031234567", scope="AcmeShop")
        with pytest.raises(ValidationError) as info:
            acme.optouts.remove("08031234567", scope="AcmeShop", every_scope=True)
        assert info.value.field == "every_scope"
        assert acme.optouts.scopes("08031234567") == {"*", "acmeshop"}
        # a blank scope is refused as blank, not as "only that sender's" (attack16); "*" in
        # fullwidth form is every sender, as "*" is
        with pytest.raises(ValidationError, match="is blank") as blank:
            acme.optouts.remove("08031234567", scope=" ", every_scope=True)
        assert blank.value.field == "scope"
        assert acme.optouts.scopes("08031234567") == {"*", "acmeshop"}
        assert acme.optouts.remove("08031234567", scope="\uff0a", every_scope=True)
        acme.optouts.add("08031234567")
        acme.optouts.add("08031234567", scope="AcmeShop")
        assert acme.optouts.remove("08031234567", every_scope=True)
        assert acme.optouts.scopes("08031234567") == set()


def test_optout_remove_with_scope_and_all_scopes_names_the_flags(tmp_path: Path) -> None:
    config = tmp_path / "smsgate.toml"
    config.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                      '[tenants.acme.providers.mem]\nplugin = "memory"\n', encoding="utf-8")
    assert runner.invoke(app, ["optout", "add", "08031234567", "-c", str(config)]).exit_code == 0
    out = runner.invoke(app, ["optout", "remove", "08031234567", "--scope", "AcmeShop", "--all-scopes",
                              "-c", str(config)], env={"COLUMNS": "200"})
    assert out.exit_code == 2, out.output
    assert out.output.startswith("error: field '--all-scopes': removes every opt-out of the number, and --scope "
                                 "'AcmeShop' only that sender's: give one of them"), out.output
    assert runner.invoke(app, ["optout", "check", "08031234567", "-c", str(config)]).exit_code == 0  # still out


# ----------------------------------------------------------------------- traffic = "redis://host/abc"
@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/abc", "redis://:pw@127.0.0.1:6379/1x", "rediss://h/0/1"])
def test_a_redis_traffic_url_whose_database_is_not_a_number_is_refused_at_load(url: str) -> None:
    """``traffic = "redis://127.0.0.1:6379/abc"`` loaded, and redis-py ignores a database path it
    cannot read: the limits were kept in database 0, shared with whatever else uses it."""
    with pytest.raises(ConfigError) as info:
        load_config({"store": "memory://", "traffic": url})
    assert "traffic: " in str(info.value) and "database" in str(info.value)
    assert "pw@" not in str(info.value)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://h:6379/12",
                                 "redis://h/3?prefix=app", "rediss://u:p@h:6380/0", "redis://h:6379/0/"])
def test_redis_traffic_urls_with_a_database_number_or_none_load(url: str) -> None:
    assert load_config({"store": "memory://", "traffic": url}).traffic == url


def test_stats_of_a_removed_provider_in_a_window_without_its_messages_are_zeros_not_an_error(tmp_path: Path) -> None:
    """The figures of a provider since removed from the configuration are still asked for, also in
    a window that holds none of its messages: zeros, not "the tenant has no such provider"."""
    store = f"sqlite:///{tmp_path / 's.db'}"
    old = {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": {"old": {"plugin": "memory"}}}}}
    with Gateway(old) as gw:
        gw.tenant("acme").send("08031234567", "hi")
    new = {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": {"mem": {"plugin": "memory"}}}}}
    with Gateway(new) as gw:
        acme = gw.tenant("acme")
        assert acme.stats(provider="old").total == 1
        assert acme.stats(provider="old", since=datetime.now(timezone.utc)).total == 0
        with pytest.raises(ValidationError, match="has no provider 'olde'"):
            acme.stats(provider="olde", since="1h")


# ----------------------------------------------------------------------- smsgate sandbox --tenant / --webhook
@pytest.mark.parametrize("tenant", ["a b", "acme.eu", "ünï"])
def test_sandbox_blocks_for_a_tenant_that_is_not_a_bare_toml_key_load_as_printed(tmp_path: Path, tenant: str) -> None:
    """``smsgate sandbox --tenant 'a b'`` printed ``[tenants.a b.providers.squad]``, which is not
    TOML (and ``acme.eu`` a tenant ``acme`` with a table ``eu``): the blocks pasted into
    smsgate.toml did not load. The key is quoted where TOML needs it."""
    from smsgate.cli.sandbox import provider_block

    block = provider_block(tenant, "squad", {"plugin": "squad", "base_url": "http://127.0.0.1:8801",
                                            "credentials": {"secret_key": "k"}})
    config = tmp_path / "smsgate.toml"
    config.write_text(f'store = "memory://"\n\n{block}\n', encoding="utf-8")
    settings = load_config(config)
    assert settings.tenants[tenant].providers["squad"].base_url == "http://127.0.0.1:8801"
    assert provider_block("acme", "squad", {"plugin": "squad"}).startswith("[tenants.acme.providers.squad]\n")


@pytest.mark.parametrize(("args", "problem"), [
    (["--tenant", ""], "field '--tenant': '' is blank"),
    (["--tenant", " acme"], "field '--tenant': ' acme' has spaces around it"),
    (["--webhook", "http://127.0.0.1:8000/{tenat}/{instance}"],
     "field '--webhook': unknown placeholder {tenat} (did you mean {tenant}?): a URL may hold {tenant} and {instance}"),
])
def test_sandbox_refuses_a_tenant_or_webhook_it_would_print_or_call_wrongly(args: list[str], problem: str) -> None:
    """``--tenant ''`` printed ``[tenants..providers.squad]``; ``--webhook '.../{tenat}/...'`` (a
    typo) was called with ``{tenat}`` in its path, so every report went to a 404."""
    out = runner.invoke(app, ["sandbox", "--port", "1", *args], env={"COLUMNS": "200"})
    assert out.exit_code == 2, out.output
    assert out.output.startswith(f"error: {problem}"), out.output


def test_optout_check_with_a_blank_sender_is_refused_as_send_refuses_it() -> None:
    """``optouts.check(phone, sender="")`` (``smsgate optout check N --sender ''``: an unset
    variable) answered as if no sender were given, where ``send(..., sender="")`` is refused."""
    with Gateway(_memory_gateway_config()) as gw:
        acme = gw.tenant("acme")
        acme.optouts.add("08031234567", scope="AcmeShop")
        for blank in ("", "  "):
            with pytest.raises(ValidationError, match="is blank") as info:
                acme.optouts.check("08031234567", sender=blank)
            assert info.value.field == "sender"
        assert acme.optouts.check("08031234567", sender="AcmeShop")
        assert not acme.optouts.check("08031234567")
