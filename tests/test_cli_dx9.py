"""dx9's leftovers: small errors a new user met, each now naming what was wrong as typed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from smsgate.cli import app
from smsgate.errors import ValidationError

runner = CliRunner()


def error_line(result: Result) -> str:
    """The one ``error: ...`` line of a failed command (exit 2)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ------------------------------------------------------------------ AsyncGateway(http_client=5)
@pytest.mark.parametrize("client", [5, "http://x", httpx.Client()])
def test_async_gateway_refuses_a_wrong_http_client_as_gateway_does(tmp_path: Path, client: object) -> None:
    """It was a plain TypeError from transport.async_client, after the store was opened."""
    from smsgate import AsyncGateway, Gateway

    db = tmp_path / "s.db"
    with pytest.raises(ValidationError, match=r"field 'http_client': expected an httpx.AsyncClient") as info:
        AsyncGateway({"store": f"sqlite:///{db}"}, http_client=client)  # type: ignore[arg-type]
    assert info.value.field == "http_client"
    assert not db.exists()  # refused before anything was opened
    with Gateway({"store": "memory://"}) as gw:
        with pytest.raises(ValidationError, match="field 'http_client'"):
            AsyncGateway.sharing(gw, http_client=client)  # type: ignore[arg-type]


def test_async_gateway_still_takes_an_aiohttp_session() -> None:
    import aiohttp

    from smsgate import AsyncGateway

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            gw = AsyncGateway({"store": "memory://"}, http_client=session)
            await gw.aclose()
        with pytest.raises(ValidationError, match="field 'http_client'"):
            AsyncGateway({"store": "memory://"}, http_client=aiohttp.TCPConnector)  # type: ignore[arg-type]

    asyncio.run(go())


# ------------------------------------------------------------------ an empty --config
@pytest.mark.parametrize("command", [["messages", "-c", ""], ["messages", "--config="], ["stats", "--config", ""],
                                     ["send", "+2348031234567", "hi", "-c", ""]])
def test_an_empty_config_flag_is_named_as_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                command: list[str]) -> None:
    """It said ``config file . is a directory`` (``Path("")`` is ``.``)."""
    monkeypatch.chdir(tmp_path)
    assert error_line(runner.invoke(app, command)) == (
        "error: field '--config': is empty; give the path of a TOML file (e.g. smsgate.toml)")
    out = runner.invoke(app, ["messages", "-c", "."])  # the directory itself still says so
    assert "config file . is a directory" in error_line(out)


# ------------------------------------------------------------------ tenant add/rotate given a directory
def test_tenant_add_and_rotate_given_a_directory_say_what_file_they_expect(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """They suggested DIR/smsgate.toml, the main configuration file's hint, not a tenant's file."""
    from cryptography.fernet import Fernet

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    env = {"SMSGATE_TENANT_KEY": Fernet.generate_key().decode()}
    store = ["--store", f"sqlite:///{tmp_path}/s.db"]
    added = error_line(runner.invoke(app, ["tenant", "add", "acme", "dir", *store], env=env))
    assert added == ("error: dir: is a directory; give the path of a tenant file: TOML or JSON of one tenant's "
                     "table (what follows [tenants.acme] in smsgate.toml), or - for standard input")
    (tmp_path / "acme.toml").write_text('[providers.main]\nplugin = "console"\n')
    assert runner.invoke(app, ["tenant", "add", "acme", "acme.toml", *store], env=env).exit_code == 0
    rotated = error_line(runner.invoke(app, ["tenant", "rotate", "acme", "main", "dir", *store], env=env))
    assert rotated.startswith("error: dir: is a directory; give the path of a file of the new credentials")
    assert "smsgate.toml" not in added.replace("[tenants.acme] in smsgate.toml", "") + rotated


# ------------------------------------------------------------------ errors name the flag or argument typed
@pytest.fixture
def console_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smsgate.toml").write_text(
        f'store = "sqlite:///{tmp_path}/s.db"\n[tenants.acme]\ndefault_region = "NG"\n'
        '[tenants.acme.providers.main]\nplugin = "console"\n')
    (tmp_path / "people.csv").write_text("phone\n08031234567\n")
    return tmp_path / "smsgate.toml"


@pytest.mark.parametrize(("command", "said"), [
    # a while too long ago for a date: "stats, field 'since'", after the store was opened
    (["stats", "--since", "99999999d"], "error: field '--since': duration too long: '99999999d'"),
    (["messages", "--since", "99999999d"], "error: field '--since': duration too long: '99999999d'"),
    (["inbound", "--since", "99999999d"], "error: field '--since': duration too long: '99999999d'"),
    # "invalid --delimiter: ...", unlike every other flag's error
    (["contacts", "create", "x", "--csv", "people.csv", "--delimiter", ""],
     "error: field '--delimiter': must be one character (not a quote or line break), not ''"),
    (["optout", "import", "people.csv", "--encoding", "klingon"], "error: field '--encoding': unknown encoding"),
    # "field 'name'": the library's name, not the argument's as --help lists it
    (["new-provider", "../x"], "error: argument 'name': provider name '../x' is not valid"),
    # the flag was not named at all (a ConfigError), or as the library's field 'provider'
    (["send", "08031234567", "hi", "--provider", "mian"],
     "error: field '--provider': tenant 'acme' has no provider 'mian' (did you mean 'main'?) (configured: main)"),
    (["campaign", "create", "--name", "x", "--text", "hi", "--csv", "people.csv", "--provider", "nope"],
     "error: field '--provider': tenant 'acme' has no provider 'nope' (configured: main)"),
    (["stats", "--provider", "nope"], "error: field '--provider': tenant 'acme' has no provider 'nope'"),
])
def test_errors_name_the_flag_or_argument_as_typed(console_config: Path, command: list[str], said: str) -> None:
    assert error_line(runner.invoke(app, command)).startswith(said)


def test_a_provider_the_tenant_has_still_sends_and_other_config_errors_are_unchanged(console_config: Path) -> None:
    out = runner.invoke(app, ["send", "08031234567", "hi", "--provider", "main"])
    assert out.exit_code == 0, out.output
    assert "field '--provider'" not in error_line(runner.invoke(app, ["send", "08031234567", "hi", "-t", "nope"]))


# ------------------------------------------------------------------ max_retries has an upper bound
@pytest.mark.parametrize(("retries", "ok"), [(0, True), (10, True), (11, False), (1_000_000, False)])
def test_max_retries_is_at_most_ten(tmp_path: Path, retries: int, ok: bool) -> None:
    """``max_retries = 1000000`` was taken: a send repeated for days against a vendor that was down."""
    from smsgate.config import load_config
    from smsgate.errors import ConfigError
    from smsgate.provider import MAX_RETRIES

    assert MAX_RETRIES == 10
    path = tmp_path / "smsgate.toml"
    path.write_text(f'[tenants.acme.providers.main]\nplugin = "console"\nmax_retries = {retries}\n')
    if ok:
        assert load_config(path).tenants["acme"].providers["main"].max_retries == retries
        return
    with pytest.raises(ConfigError, match=r"tenants\.acme\.providers\.main\.max_retries: Input should be less "
                                          r"than or equal to 10"):
        load_config(path)


@pytest.mark.parametrize("command", [["store", "purge", "--older-than", "99999999d"],
                                     ["status", "sync", "--max-age", "99999999d"]])
def test_a_duration_flag_past_the_librarys_bound_names_the_flag(console_config: Path, command: list[str]) -> None:
    """``store purge --older-than 99999999d`` said ``purge, field 'older_than': ... not 8639999913600.0``."""
    flag, typed = command[-2:]
    assert error_line(runner.invoke(app, command)) == (
        f"error: field {flag!r}: duration too long: {typed!r} (at most 1,000 years)")
