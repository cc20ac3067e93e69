"""dx8's leftovers: ``smsgate tenant add NAME FILE`` names FILE (and the key at fault in it) in
every error, and ``smsgate campaign run`` of a campaign it cannot run says why and exits non-zero."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner, Result

from smsgate.cli import app
from smsgate.testing import Outbox

runner = CliRunner()
KEY = Fernet.generate_key().decode()


def error_line(result: Result) -> str:
    """The one ``error: ...`` line of a failed command (exit 2)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ------------------------------------------------------------------ tenant add names the file
@pytest.mark.parametrize(("content", "said"), [
    ('sender = "ACME"\n[providers.main]\nplugin = "sqaud"\n',
     "acme.toml: providers.main.plugin: unknown provider plugin 'sqaud'"),
    ('default_region = 5\n[providers.main]\nplugin = "console"\n',
     "acme.toml: invalid configuration: default_region: Input should be a valid string"),
    ('[providers.main]\nplugin = "squad"\ncredentials = { secret_key = "x" }\n',
     'acme.toml: providers.main: squad needs a sender and none is set; add sender = "..." (a sender ID '
     "registered with the vendor) under [providers.main] or at the file's top level"),
    ('default_region = "NG"\n', 'acme.toml: no providers; add a [providers.NAME] table with plugin = "..."'),
    ('sender = "ACME"\n[providers.main]\nplugin = "squad"\ncredentials = { secret_key = "${DX8_UNSET}" }\n'
     'bogus = 1\n', "acme.toml: providers.main.credentials.secret_key: environment variable DX8_UNSET is not "
                    "set; and invalid configuration: providers.main.bogus: Extra inputs are not permitted"),
    ('[tenants.acme.providers.main]\nplugin = "console"\n', "acme.toml: this is smsgate.toml's form"),
])
def test_tenant_add_names_the_file_and_the_key_in_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     content: str, said: str) -> None:
    """Each error named the key as in smsgate.toml (``tenants.acme.providers.main.plugin``) or only
    the tenant (``tenant 'acme': invalid configuration``), never the file the user gave."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DX8_UNSET", raising=False)
    (tmp_path / "acme.toml").write_text(content)
    out = runner.invoke(app, ["tenant", "add", "acme", "acme.toml", "--store", f"sqlite:///{tmp_path}/s.db"],
                        env={"SMSGATE_TENANT_KEY": KEY})
    assert said in error_line(out)
    piped = runner.invoke(app, ["tenant", "add", "acme", "-", "--store", f"sqlite:///{tmp_path}/s.db"],
                          env={"SMSGATE_TENANT_KEY": KEY}, input=content)
    assert said.replace("acme.toml: ", "standard input: ") in error_line(piped)


def test_tenant_add_says_which_file_was_not_stored_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors that are not about what the file says (the name's data left in the store, the name
    already stored, no key) name the file too, as not stored."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smsgate.toml").write_text('store = "sqlite:///s.db"\n[tenants.acme]\ndefault_region = "NG"\n'
                                           '[tenants.acme.providers.main]\nplugin = "console"\n')
    env = {"SMSGATE_TENANT_KEY": KEY}
    assert runner.invoke(app, ["optout", "add", "08031234567", "-t", "acme"], env=env).exit_code == 0
    (tmp_path / "smsgate.toml").write_text('store = "sqlite:///s.db"\n')  # acme moves to the store
    (tmp_path / "acme.toml").write_text('default_region = "NG"\n[providers.main]\nplugin = "console"\n')
    line = error_line(runner.invoke(app, ["tenant", "add", "acme", "acme.toml"], env=env))
    assert line.startswith("error: acme.toml: nothing stored: the store holds data under the tenant name 'acme'")
    assert runner.invoke(app, ["tenant", "add", "acme", "acme.toml", "--adopt-data"], env=env).exit_code == 0
    line = error_line(runner.invoke(app, ["tenant", "add", "acme", "acme.toml"], env=env))
    assert line.startswith("error: acme.toml: nothing stored: tenant 'acme' is already stored")
    line = error_line(runner.invoke(app, ["tenant", "add", "other", "acme.toml"], env={"SMSGATE_TENANT_KEY": ""}))
    assert line.startswith("error: acme.toml: nothing stored: stored tenants need an encryption key")
    line = error_line(runner.invoke(app, ["tenant", "add", "acme", "missing.toml"], env=env))
    assert line == "error: config file missing.toml does not exist"  # named once


def test_validate_tenant_and_an_unset_variable_carry_the_key_at_fault_as_field(tmp_path: Path) -> None:
    """``validate_tenant``'s error and an unset ``${VAR}``'s had ``field`` None."""
    from smsgate.config import load_config
    from smsgate.errors import ConfigError
    from smsgate.tenants import validate_tenant

    with pytest.raises(ConfigError) as info:
        validate_tenant("acme", {"default_region": 5, "providers": {}})
    assert info.value.field == "tenants.acme.default_region"
    (tmp_path / "smsgate.toml").write_text('[tenants.acme.providers.main]\nplugin = "console"\n'
                                           'base_url = "${DX8_UNSET_TOO}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "smsgate.toml", environ={})
    assert info.value.field == "tenants.acme.providers.main.base_url"


# ------------------------------------------------------------------ campaign run of a campaign it cannot run
def _campaign(config: Path) -> str:
    from smsgate import Gateway

    with Gateway(config) as gw:
        return gw.tenant("acme").campaigns.create("Sale", text="Hi", audience=["08031234567", "08031234568"]).campaign_id


def _status(config: Path, cid: str) -> str:
    from smsgate import Gateway

    with Gateway(config) as gw:
        return gw.tenant("acme").campaigns.get(cid).progress().status.value


def test_campaign_run_of_a_paused_campaign_says_nothing_was_sent_and_exits_1(config: Path, sms_outbox: Outbox) -> None:
    """It printed ``paused; sent 0, ...`` and exited 0: a script (``run && notify``) took it as sent."""
    cid = _campaign(config)
    assert runner.invoke(app, ["campaign", "pause", cid, "-c", str(config)]).exit_code == 0
    ran = runner.invoke(app, ["campaign", "run", cid, "-c", str(config)], env={"COLUMNS": "300"})
    assert ran.exit_code == 1, ran.output
    assert f"{cid}: paused; nothing was sent (sent 0, failed 0, unknown 0, skipped 0, pending 2)" in ran.stdout
    assert f"'smsgate campaign resume {cid}'; then run 'smsgate campaign run {cid}'" in ran.stdout
    assert sms_outbox.messages() == [] and _status(config, cid) == "paused"
    assert runner.invoke(app, ["campaign", "resume", cid, "-c", str(config)]).exit_code == 0
    assert runner.invoke(app, ["campaign", "run", cid, "-c", str(config)]).exit_code == 0
    assert len(sms_outbox.messages()) == 2


def test_campaign_run_of_a_cancelled_campaign_says_nothing_was_sent_and_exits_1(
        config: Path, sms_outbox: Outbox) -> None:
    cid = _campaign(config)
    assert runner.invoke(app, ["campaign", "cancel", cid, "-c", str(config)]).exit_code == 0
    ran = runner.invoke(app, ["campaign", "run", cid, "-c", str(config)], env={"COLUMNS": "300"})
    assert ran.exit_code == 1, ran.output
    assert f"{cid}: cancelled; sent 0, failed 0, unknown 0, skipped 2, pending 0" in ran.stdout
    assert f"{cid} is cancelled: nothing was sent; a cancelled campaign cannot be run again" in ran.stdout
    assert sms_outbox.messages() == []


def test_campaign_run_of_a_completed_campaign_says_nothing_was_left_and_exits_0(
        config: Path, sms_outbox: Outbox) -> None:
    """Safe to re-run (docs/campaigns.md): exit 0, but it says that this run sent nothing."""
    cid = _campaign(config)
    first = runner.invoke(app, ["campaign", "run", cid, "-c", str(config)], env={"COLUMNS": "300"})
    assert first.exit_code == 0 and "already completed" not in first.stdout, first.output
    again = runner.invoke(app, ["campaign", "run", cid, "-c", str(config)], env={"COLUMNS": "300"})
    assert again.exit_code == 0, again.output
    assert f"{cid} was already completed: nothing was left to send" in again.stdout
    assert len(sms_outbox.messages()) == 2


# ------------------------------------------------------------------ a new user's and an attacker's findings
@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_tenant_flag_is_refused_not_taken_as_no_flag(config: Path, sms_outbox: Outbox, blank: str) -> None:
    """``smsgate send N TEXT -t "$TENANT"`` with the variable unset sent as the only tenant there
    was, as if --tenant had not been given (``smsgate sandbox --tenant ''`` was refused already)."""
    out = runner.invoke(app, ["send", "08031234567", "hi", "-t", blank, "-c", str(config)])
    assert error_line(out) == (f"error: field '--tenant': {blank!r} is blank: give a tenant's name, or leave "
                               "--tenant out when there is only one tenant")
    assert sms_outbox.messages() == []
    listed = runner.invoke(app, ["messages", "--tenant", blank, "-c", str(config)])
    assert "is blank" in error_line(listed)


def test_config_check_names_the_file_for_a_tenant_without_providers_or_sender(tmp_path: Path) -> None:
    """docs/configuration.md: the line names the configuration file's path for a tenant of the
    file; these two (raised by check_tenant, not when a provider is built) did not."""
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text('store = "memory://"\n[tenants.acme]\ndefault_region = "NG"\n')
    line = error_line(runner.invoke(app, ["config", "check", "-c", str(cfg)]))
    assert line.startswith(f"error: {cfg}: tenants.acme: no providers; add a [tenants.acme.providers.NAME]"), line
    cfg.write_text('store = "memory://"\n[tenants.acme.providers.s]\nplugin = "squad"\ncredentials = { secret_key = "x" }\n')
    line = error_line(runner.invoke(app, ["config", "check", "-c", str(cfg)]))
    assert line.startswith(f"error: {cfg}: tenants.acme.providers.s: squad needs a sender"), line


@pytest.mark.parametrize(("name", "problem"), [("", "tenant name '' is blank"),
                                               (" acme", "tenant name ' acme' has spaces around it: write 'acme'")])
def test_a_blank_or_spaced_tenant_name_in_the_configuration_is_refused(name: str, problem: str) -> None:
    """``[tenants.""]`` and ``[tenants." acme"]`` loaded (and sent) where StoredTenants refuses such names."""
    from smsgate.config import load_config
    from smsgate.errors import ConfigError

    with pytest.raises(ConfigError, match="tenants: " + problem.replace("'", ".")):
        load_config({"tenants": {name: {"providers": {"m": {"plugin": "memory"}}}}})


@pytest.mark.parametrize(("args", "said"), [
    (["send", "08031234567", "hi", "--sender", ""], "error: field '--sender': '' is empty: a sender ID is"),
    (["optout", "add", "08031234569", "--scope", ""], "error: field '--scope': is blank: give a sender ID"),
    (["optout", "remove", "08031234569", "--scope", " "], "error: field '--scope': is blank: give a sender ID"),
    (["optout", "check", "08031234569", "--sender", ""], "error: field '--sender': is blank: give a sender ID"),
])
def test_a_bad_sender_or_scope_is_named_as_the_flag_typed(config: Path, sms_outbox: Outbox, args: list[str],
                                                          said: str) -> None:
    """They were named as the library's argument (``field 'sender'``, ``field 'scope'``) where the
    CLI names every other bad value as typed (``field '--kind'``, ``field '--tenant'``)."""
    out = runner.invoke(app, [*args, "-c", str(config)])
    assert error_line(out).startswith(said), out.output
    assert sms_outbox.messages() == []


def test_campaign_create_names_a_bad_placeholder_as_the_text_flag(config: Path) -> None:
    """``--text 'Hi {0}'`` said ``field 'template'``: there is no such flag."""
    audience = config.parent / "people.csv"
    audience.write_text("phone,name\n08031234567,Ada\n")
    out = runner.invoke(app, ["campaign", "create", "--name", "T", "--text", "Hi {0}", "--csv", str(audience),
                              "-c", str(config)])
    assert error_line(out).startswith("error: field '--text': invalid placeholder '{0}'"), out.output


def test_serve_lists_the_callback_urls_of_stored_tenants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``smsgate serve`` printed ``acme: not listed (unknown tenant 'acme': a tenant of the tenant
    source that this gateway has not loaded yet: await one of the handle's calls (e.g. 'await
    handle.load()') first)`` for every tenant stored with ``smsgate tenant add``."""
    import asyncio

    from smsgate.cli._common import open_async_gateway
    from smsgate.cli.serve import callback_lines
    from smsgate.config import load_config
    from smsgate.tenants import StoredTenants

    url = f"sqlite:///{tmp_path / 's.db'}"
    tenants = StoredTenants(url, keys=KEY)
    try:
        tenants.add("beta", {"default_region": "NG", "providers": {"main": {"plugin": "console"}}})
    finally:
        tenants.close()
    monkeypatch.setenv("SMSGATE_TENANT_KEY", KEY)
    gw = open_async_gateway(load_config({"store": url}))
    try:
        lines = callback_lines(gw, ["beta"], "http://127.0.0.1:8000/hooks")
    finally:
        asyncio.run(gw.aclose())
    assert lines == ["beta/main (console): http://127.0.0.1:8000/hooks/beta/main (the vendor documents no delivery "
                     "reports: only what its plugin takes, e.g. replies)"]


def test_tenant_rotate_names_the_file_and_the_credential_in_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``tenant add``: ``tenants.beta.providers.main.credentials.secret_key: environment variable
    ... is not set`` named neither the file nor the key as written in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DX8_UNSET", raising=False)
    store = ["--store", f"sqlite:///{tmp_path}/s.db"]
    env = {"SMSGATE_TENANT_KEY": KEY}
    (tmp_path / "beta.toml").write_text('sender = "BETA"\n[providers.main]\nplugin = "squad"\n'
                                        'credentials = { secret_key = "old" }\n')
    assert runner.invoke(app, ["tenant", "add", "beta", "beta.toml", *store], env=env).exit_code == 0

    def rotate(content: str, instance: str = "main") -> str:
        (tmp_path / "new.toml").write_text(content)
        return error_line(runner.invoke(app, ["tenant", "rotate", "beta", instance, "new.toml", *store], env=env))

    assert rotate('secret_key = "${DX8_UNSET}"\n') == (
        "error: new.toml: secret_key: environment variable DX8_UNSET is not set")
    assert rotate('secret_kye = "new"\n').startswith(
        "error: new.toml: provider 'main' (squad) has no credential 'secret_kye' (did you mean 'secret_key'?)")
    assert rotate('secret_key = ["new"]\n').startswith(
        "error: new.toml: credentials of beta/main: expected a table of strings")
    assert rotate('secret_key = "new"\n', "other") == (
        "error: new.toml: nothing rotated: tenant 'beta' has no provider 'other' (stored: main)")


# ------------------------------------------------------------------ wrong types given to Gateway / load_config
def test_a_file_descriptor_number_is_not_read_as_the_configuration(tmp_path: Path) -> None:
    """``Gateway(fd)`` (an int) opened that file descriptor as smsgate.toml, read it and closed it:
    whatever the process had open there (a log file, a socket) was gone."""
    import os

    from smsgate import AsyncGateway, Gateway
    from smsgate.config import load_config
    from smsgate.errors import ValidationError

    path = tmp_path / "kept.txt"
    with open(path, "w") as kept:
        fd = kept.fileno()
        for make in (Gateway, AsyncGateway, load_config):
            with pytest.raises(ValidationError, match="expected the path of a configuration file") as info:
                make(fd)  # type: ignore[operator]
            assert info.value.field in ("config", "source")
        os.fstat(fd)  # still open
        kept.write("still mine")
    assert path.read_text() == "still mine"
    with pytest.raises(ValidationError, match=r"field 'config': .* got list"):
        Gateway(["smsgate.toml"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("argument", "field"), [({"plugins": 5}, "plugins"), ({"tenants": "x"}, "tenants"),
                                                  ({"http_client": 5}, "http_client")])
def test_gateway_refuses_a_wrong_type_of_its_arguments_at_once(argument: dict[str, object], field: str,
                                                              config: Path) -> None:
    """They were taken, and an AttributeError at the first send (``'int' object has no attribute 'hook'``)."""
    from smsgate import Gateway
    from smsgate.errors import ValidationError

    with pytest.raises(ValidationError) as info:
        Gateway(config, **argument)  # type: ignore[arg-type]
    assert info.value.field == field


def test_tenant_add_names_the_file_for_a_tenant_name_with_a_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.toml").write_text('default_region = 5\n[providers.main]\nplugin = "console"\n')
    out = runner.invoke(app, ["tenant", "add", "acme.eu", "t.toml", "--store", f"sqlite:///{tmp_path}/s.db"],
                        env={"SMSGATE_TENANT_KEY": KEY})
    assert error_line(out) == "error: t.toml: invalid configuration: default_region: Input should be a valid string"


@pytest.mark.parametrize(("call", "field"), [
    (lambda t: t.add("b", 5), "config"),
    (lambda t: t.add("b", {"providers": {"main": {"plugin": "console"}}}, adopt_data="no"), "adopt_data"),
    (lambda t: t.rotate("a", "main", "sk_live_the_bare_key"), "credentials"),
    (lambda t: t.rotate("a", "main", {"k": "v"}, replace="yes"), "replace"),
])
def test_stored_tenants_refuse_arguments_of_the_wrong_type(tmp_path: Path, call: object, field: str) -> None:
    """An AttributeError (``'int' object has no attribute 'get'``), or a string flag taken as
    true (``adopt_data="no"`` adopted the data); never the bare key in the error."""
    from smsgate.errors import ValidationError
    from smsgate.tenants import StoredTenants

    tenants = StoredTenants(f"sqlite:///{tmp_path / 's.db'}", keys=KEY)
    try:
        tenants.add("a", {"providers": {"main": {"plugin": "console"}}})
        with pytest.raises(ValidationError) as info:
            call(tenants)  # type: ignore[operator]
        assert info.value.field == field and "sk_live" not in str(info.value)
        assert tenants.names() == ["a"]
    finally:
        tenants.close()


@pytest.mark.parametrize(("kwargs", "field"), [({"store": 5}, "store"), ({"store": "memory://", "keys": 5}, "keys")])
def test_stored_tenants_refuse_a_store_or_keys_of_the_wrong_type(kwargs: dict[str, object], field: str) -> None:
    from smsgate.errors import ValidationError
    from smsgate.tenants import StoredTenants

    with pytest.raises(ValidationError) as info:
        StoredTenants(**kwargs).add("z", {"providers": {"main": {"plugin": "console"}}})  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(("content", "said"), [
    ("[1, 2]", "error: t.json: expected a table of tenant settings (a JSON object), not a list"),
    ('"acme"', "error: t.json: expected a table of tenant settings (a JSON object), not a str"),
])
def test_a_json_tenant_file_that_is_not_an_object_is_not_called_invalid_toml(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, said: str) -> None:
    """Only a text starting with ``{`` was read as JSON: a .json file holding a list said
    ``t.json: invalid TOML: Expected ']' at the end of a table declaration``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.json").write_text(content)
    out = runner.invoke(app, ["tenant", "add", "t", "t.json", "--store", f"sqlite:///{tmp_path}/s.db"],
                        env={"SMSGATE_TENANT_KEY": KEY})
    assert error_line(out) == said
