"""A credential given in the wrong place is never repeated by smsgate's errors.

A careless user pastes an API key as ``base_url``, ``sender``, ``plugin``, ``timezone``, a
``--sender`` / ``--tenant`` flag...; a vendor echoes our key in an error body longer than the
excerpt smsgate keeps. Each error still names the key at fault and says what is wrong, with
the value hidden (``'***' (value hidden: it looks like a credential)``). Every test goes through
a real path: ``load_config`` and the ``smsgate`` CLI in a subprocess, a stored tenant in SQLite,
a send over loopback HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from reference_provider import API_KEY, EchoPlugin
from smsgate import Gateway
from smsgate.config import Settings, load_config
from smsgate.errors import (
    AuthFailed,
    ConfigError,
    UnknownProvider,
    ValidationError,
    looks_like_credential,
    redact,
    shown_value,
)
from smsgate.plugins import PluginManager, build_provider
from smsgate.provider import ProviderSettings
from smsgate.testing import LiveServer

#: A key as vendors issue them: no known prefix, no word a pattern would catch.
KEY = "7Hq2xLp9Rv4sKm8TzW3nYb6c"
#: Squad's live-key form.
LIVE = "sk_live_9f8e7d6c5b4a3210fedcba98"
HIDDEN = "(value hidden: it looks like a credential)"


def config_file(tmp_path: Path, instance: str = "", tenant: str = "", credentials: str = "") -> Path:
    path = tmp_path / "smsgate.toml"
    path.write_text(
        'store = "memory://"\n[tenants.acme]\ndefault_region = "NG"\n' + tenant
        + '\n[tenants.acme.providers.main]\nplugin = "squad"\n'
        + (credentials or 'credentials = { secret_key = "sandbox_sk_abcdefgh" }') + "\n" + instance,
        encoding="utf-8")
    return path


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smsgate", *args], capture_output=True, text=True, timeout=120,
                          input=stdin, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("line", "key", "why"), [
    (f'base_url = "{KEY}"', "providers.main.base_url", "needs a scheme"),
    (f'base_url = "{LIVE}"', "providers.main.base_url", "needs a scheme"),
    (f'base_url = "https://api.example.com:{KEY}"', "providers.main.base_url", "is not a valid URL"),
    (f'sender = "{KEY}"', "providers.main.sender", "is 24 characters long"),
    (f'rate_limit = "{KEY}"', "providers.main.rate_limit", "is not a number"),
])
def test_a_key_in_a_providers_setting_is_not_repeated_by_load_config(tmp_path: Path, line: str, key: str,
                                                                      why: str) -> None:
    path = config_file(tmp_path, line)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert KEY not in text and LIVE not in text, text
    assert f"tenants.acme.{key}: " in text and why in text and HIDDEN in text, text
    assert KEY not in repr(info.value.args)


@pytest.mark.parametrize(("line", "key"), [
    (f'timezone = "{KEY}"', "tenants.acme.timezone"),
    (f'quiet_hours = ["{KEY}", "08:00"]', "tenants.acme.quiet_hours"),
    (f'max_limit_wait = "{KEY}"', "tenants.acme.max_limit_wait"),
])
def test_a_key_in_a_tenants_setting_is_not_repeated(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(config_file(tmp_path, tenant=line))
    assert KEY not in str(info.value) and key in str(info.value), str(info.value)


def test_default_region_pasted_key_is_hidden(tmp_path: Path) -> None:
    path = tmp_path / "smsgate.toml"
    path.write_text(f'store = "memory://"\n[tenants.acme]\ndefault_region = "{KEY}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert KEY not in str(info.value) and "default_region '***'" in str(info.value) and HIDDEN in str(info.value)


def test_a_configured_credential_copied_into_another_setting_is_hidden_whatever_it_looks_like(tmp_path: Path) -> None:
    """A password (no key shape) used as the sender too: the configured credentials' values are
    never repeated."""
    path = config_file(tmp_path, 'sender = "hunter2hunter2"', credentials='credentials = { secret_key = "hunter2hunter2" }')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "hunter2" not in str(info.value) and "providers.main.sender: '***'" in str(info.value), str(info.value)


@pytest.mark.parametrize("line", [
    f'base_url = "https://api.example.com/bot{KEY}"',  # httpx would log it at INFO with each request
    f'options = {{ api_version = "{KEY}" }}',
])
def test_a_credentials_value_in_base_url_or_an_option_is_refused_without_showing_it(tmp_path: Path, line: str) -> None:
    path = config_file(tmp_path, line, credentials=f'credentials = {{ secret_key = "{KEY}" }}')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert KEY not in text and "holds the value of credentials.secret_key (not shown)" in text, text


def test_an_ordinary_mistake_is_still_shown() -> None:
    """Values that are names, addresses and numbers are repeated as before: the rule hides keys."""
    for value in ("api.squadco.com", "squad_main2024_backup", "Africa/Lagos", "+447700900123", "ACME SHOP 2"):
        assert not looks_like_credential(value), value
        assert shown_value(value) == repr(value)
    for value in (KEY, LIVE, "9f8e7d6c5b4a3210fedcba98aa11bb22", "123e4567-e89b-12d3-a456-426614174000",
                  "eyJhbGciOiJIUzI1NiJ9"):
        assert looks_like_credential(value), value


def test_pydantic_models_built_directly_repeat_no_key() -> None:
    """``ProviderSettings(...)`` / ``Settings(...)`` from Python: pydantic's own text has no
    ``input_value=...``, and smsgate's validators hide a key."""
    attempts: list[Any] = [
        lambda: ProviderSettings(plugin="squad", base_url=KEY),
        lambda: ProviderSettings(plugin="squad", timeout=KEY),
        lambda: ProviderSettings(plugin="squad", sender=KEY),
        lambda: ProviderSettings(plugin="squad", breaker={"failures": KEY}),
        lambda: ProviderSettings(plugin="squad", limits=[{"rate": KEY}]),
        lambda: Settings(tenants={"acme": {"timezone": KEY}}),
        lambda: Settings(tenants={"acme": {"routes": [{"providers": ["m"], "kinds": [KEY]}]}}),
    ]
    for attempt in attempts:
        with pytest.raises(pydantic.ValidationError) as info:
            attempt()
        assert KEY not in str(info.value), str(info.value)


def test_unknown_plugin_named_with_a_key() -> None:
    with pytest.raises(UnknownProvider) as info:
        build_provider(PluginManager(load_entry_points=False), "acme", "main", ProviderSettings(plugin=KEY))
    text = str(info.value)
    assert KEY not in text and KEY.lower() not in text.lower() and HIDDEN in text, text
    assert "tenants.acme.providers.main.plugin" in text


def test_cli_config_check_hides_a_key_pasted_as_plugin_or_base_url(tmp_path: Path) -> None:
    for line in (f'base_url = "{KEY}"', f'sender = "{LIVE}"'):
        out = cli("config", "check", "--config", str(config_file(tmp_path, line)))
        assert out.returncode == 2, out.stderr
        assert KEY not in out.stderr and LIVE not in out.stderr and HIDDEN in out.stderr, out.stderr
    path = config_file(tmp_path)
    path.write_text(path.read_text().replace('plugin = "squad"', f'plugin = "{KEY}"'))
    out = cli("config", "check", "--config", str(path))
    assert out.returncode == 2 and "unknown provider plugin '***'" in out.stderr, out.stderr
    assert KEY not in out.stderr and KEY.lower() not in out.stderr.lower()


def test_cli_send_flags_given_a_key(tmp_path: Path) -> None:
    path = tmp_path / "smsgate.toml"
    path.write_text('store = "memory://"\n[tenants.acme]\ndefault_region = "NG"\n'
                    '[tenants.acme.providers.m]\nplugin = "console"\n', encoding="utf-8")
    for flag in ("--sender", "--tenant", "--provider"):
        out = cli("send", "--config", str(path), flag, KEY, "+2348031234567", "hi")
        assert out.returncode == 2, (flag, out.stdout, out.stderr)
        assert KEY not in out.stderr + out.stdout and HIDDEN in out.stderr, (flag, out.stderr)


def test_cli_tenant_add_hides_a_key_in_the_wrong_field(tmp_path: Path) -> None:
    store = tmp_path / "t.db"
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{store}"\n', encoding="utf-8")
    key_env = {"SMSGATE_TENANT_KEY": "ujCgjJwRHZAAm_l2GaTmO5rsMzD8Hf_TuzTuG3efXGE="}
    for table in (f'[providers.m]\nplugin = "squad"\nbase_url = "{KEY}"\ncredentials = {{ secret_key = "{KEY}" }}\n',
                  '[providers.m]\nplugin = "squad"\nsender = "pa55word-x"\ncredentials = { secret_key = "pa55word-x" }\n'):
        out = cli("tenant", "add", "--config", str(cfg), "acme", "-", stdin=table, env=key_env)
        assert out.returncode == 2, out.stderr
        assert KEY not in out.stderr and "pa55word" not in out.stderr, out.stderr
        assert "'***'" in out.stderr or "holds the value of credentials.secret_key (not shown)" in out.stderr


@pytest.fixture()
def echoing_vendor() -> Iterator[LiveServer]:
    """A vendor refusing every request 401 with a long message that repeats the key it was
    given, past the excerpt an error keeps."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        key = dict(scope["headers"]).get(b"x-api-key", b"").decode()
        body = json.dumps({"message": "x" * 190 + " invalid api key " + key}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    with LiveServer(app) as server:
        yield server


def test_a_vendor_echoing_the_key_past_the_kept_excerpt(echoing_vendor: LiveServer) -> None:
    """The vendor's message is cut to 200 characters before it is redacted: the head of the key
    it ended with was kept whole ("[one] POST /messages: authentication failed: xxx... invalid
    api key echo-secr")."""
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    prov = {"plugin": "echo", "base_url": echoing_vendor.url, "credentials": {"api_key": API_KEY}}
    with Gateway({"store": "memory://", "tenants": {"acme": {"default_region": "NG", "sender": "ACME",
                                                              "providers": {"one": prov}}}}, plugins=pm) as gw:
        with pytest.raises(AuthFailed) as info:
            gw.tenant("acme").send("+2348031234567", "hi")
    err = info.value
    shown = "\n".join([str(err), repr(err), repr(err.args), str(err.body)])
    assert "invalid api key" in shown  # the vendor's words are kept
    assert API_KEY[:4] not in shown, shown


def test_redact_hides_the_head_of_a_cut_secret() -> None:
    assert redact("... key sk_live_9f8e", [LIVE]) == "... key ***"
    assert redact("... key ab", ["abcdef"]) == "... key ab"  # under 4 characters: nothing told
    assert redact("fine", [LIVE]) == "fine"


def test_validation_error_of_a_sender_argument() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    prov = {"plugin": "echo", "base_url": "http://127.0.0.1:1", "credentials": {"api_key": API_KEY}}
    with Gateway({"store": "memory://", "tenants": {"acme": {"default_region": "NG",
                                                              "providers": {"one": prov}}}}, plugins=pm) as gw:
        with pytest.raises(ValidationError) as info:
            gw.tenant("acme").send("+2348031234567", "hi", sender=KEY)
    assert info.value.field == "sender" and KEY not in str(info.value) and HIDDEN in str(info.value)


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


@pytest.mark.parametrize("auth", ["query", "bearer", "header"])
def test_the_httpx_error_an_error_chains_keeps_no_credential(auth: str) -> None:
    """A connection reset after the request left (``UnknownOutcome``) and a refused connection
    (``TransportError``) chain httpx's error, whose ``request`` was the one sent: the API key in
    its query string (Campaigns REST ``auth = "query"``) or headers, and the text in its body."""
    from smsgate.errors import ProviderError
    from smsgate.testing.sandbox import start_emulator

    emu = start_emulator("campaigns_api")
    key = emu.provider_settings().secret("api_key")
    assert key
    try:
        gw = emu.gateway("acme", region="NG", options={"auth": auth})
        dead = emu.gateway("dead", region="NG", options={"auth": auth}, base_url="http://127.0.0.1:1")
        emu.fault(kind="reset", count=10)
        failures = []
        for tenant in (gw.tenant("acme"), dead.tenant("dead")):
            with pytest.raises(ProviderError) as info:
                tenant.send("+2348031234567", "the message text")
            failures.append(info.value)
    finally:
        emu.stop()
    for failure in failures:
        causes = [exc for exc in _chain(failure) if getattr(exc, "_request", None) is not None]
        assert causes, _chain(failure)  # httpx's error is still the cause, with a request
        for cause in causes:
            request = cause.request  # type: ignore[attr-defined]
            told = f"{request.url} {dict(request.headers)} {request.content!r}"
            assert key not in told and "the message text" not in told, told
            assert request.url.path == "/api/SMSMessages"


def test_an_unreadable_answer_chains_no_copy_of_the_whole_body() -> None:
    """``MalformedResponse`` for a body that is not JSON chained the decoder's error, whose
    ``doc`` is the whole body, unredacted: a vendor's page repeating the key it was given (its
    own ``body`` is a redacted excerpt)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        key = dict(scope["headers"]).get(b"x-api-key", b"").decode()
        body = f"<html>{'x' * 600} your key {key} is wrong</html>".encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": body})

    from smsgate.errors import MalformedResponse

    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    with LiveServer(app) as vendor:
        prov = {"plugin": "echo", "base_url": vendor.url, "credentials": {"api_key": API_KEY}}
        with Gateway({"store": "memory://", "tenants": {"acme": {"default_region": "NG", "sender": "ACME",
                                                                  "providers": {"one": prov}}}}, plugins=pm) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(MalformedResponse) as info:
                acme.run("one", acme.provider("one").send_many([]))
    told = [f"{exc!r} {exc} {vars(exc)} {getattr(exc, 'doc', '')}" for exc in _chain(info.value)]
    assert not any(API_KEY in text for text in told), told


@pytest.mark.parametrize("path", ["/sessions", "/message-log"])
def test_broadcast_refusals_repeating_a_credential(path: str) -> None:
    """Broadcast's ``{"status": false, "message": ...}`` answers (a refused login, a refused
    send) were put in the error as the vendor wrote them: a vendor repeating the password or
    token it was given (in words no pattern catches) had it in the error."""
    password, token = "correct-horse-battery", "bot-token-0123456789"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].endswith("/sessions") and path != "/sessions":
            answer: dict[str, Any] = {"accessToken": "session-a", "refreshToken": "session-r"}
        else:
            answer = {"status": False, "message": f"you gave {password} and {token}: refused"}
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    from smsgate.errors import ProviderError

    with LiveServer(app) as vendor:
        prov = {"plugin": "broadcast", "base_url": vendor.url, "credentials": {
            "email": "ops@example.com", "password": password, "session_id": "s-1", "access_token": token}}
        with Gateway({"store": "memory://", "tenants": {"acme": {"default_region": "NG",
                                                                  "providers": {"wa": prov}}}}) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(ProviderError) as info:
                acme.run("wa", acme.provider("wa").check())
    told = " ".join(f"{exc} {exc!r} {exc.args!r}" for exc in _chain(info.value))
    assert "refused" in told and password not in told and token not in told, told


def test_stored_tenants_rotate_for_an_instance_named_with_a_key(tmp_path: Path) -> None:
    """``smsgate tenant rotate acme KEY -`` (the key given where the instance goes)."""
    from smsgate.tenants import StoredTenants

    tenants = StoredTenants(f"sqlite:///{tmp_path / 't.db'}", keys="ujCgjJwRHZAAm_l2GaTmO5rsMzD8Hf_TuzTuG3efXGE=")
    try:
        tenants.add("acme", {"default_region": "NG", "sender": "ACME", "providers": {
            "m": {"plugin": "squad", "credentials": {"secret_key": "sandbox_sk_abcdefgh"}}}})
        with pytest.raises(ConfigError) as info:
            tenants.rotate("acme", KEY, {"secret_key": KEY})
    finally:
        tenants.close()
    assert KEY not in str(info.value) and "has no provider '***'" in str(info.value), str(info.value)


def test_a_secret_variable_substituted_into_the_wrong_setting(tmp_path: Path) -> None:
    """``sender = "${COLONY_PASSWORD}"`` (a line copied to the wrong key): the variable's value is
    no key by its looks, but its name says it is a secret."""
    path = config_file(tmp_path, 'sender = "${COLONY_PASSWORD}"')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"COLONY_PASSWORD": "correct horse battery"})
    text = str(info.value)
    assert "horse" not in text and "providers.main.sender: '***'" in text, text
