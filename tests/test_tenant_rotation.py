"""Rotating a stored tenant's credentials keeps the ones not named (a real plugin and emulator).

A Campaigns REST instance has two credentials: ``api_key`` (its requests) and
``webhook_token`` (its delivery reports). Rotating the API key the documented way
(``echo 'api_key = "..."' | smsgate tenant rotate acme camp -``) dropped the webhook
token: from then on every delivery report was answered 503 and nothing was applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from smsgate import Gateway, Status
from smsgate.cli import app
from smsgate.emulation import callback_url
from smsgate.store.base import TenantRow
from smsgate.store.sqlite import SQLiteStore
from smsgate.tenants import StoredTenants
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app
from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, SANDBOX_WEBHOOK_TOKEN, create_app

KEY = Fernet.generate_key().decode()
OLD_API_KEY = "dm-api-key-revoked-after-a-leak-5c1e"


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[tuple[Gateway, StoredTenants, str, Path]]:
    """A gateway on stored tenants, its webhook app, and a Campaigns REST emulator posting
    its delivery reports there with the sandbox webhook token."""
    db = tmp_path / "tenants.db"
    tenants = StoredTenants(f"sqlite:///{db}", keys=KEY)
    with Gateway({"store": f"sqlite:///{db}", "tenants": {}}, tenants=tenants, tenant_refresh=0) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        hook = callback_url(hooks.url, "acme", "camp", SANDBOX_WEBHOOK_TOKEN)
        with LiveServer(create_app(delivery_delay=0.2, webhook_url=hook)) as emu:
            tenants.add("acme", {"default_region": "NG", "sender": "ACME", "providers": {"camp": {
                "plugin": "campaigns_api", "base_url": emu.url,
                "credentials": {"api_key": OLD_API_KEY, "webhook_token": SANDBOX_WEBHOOK_TOKEN}}}})
            yield gw, tenants, emu.url, db
    tenants.close()


def delivered_after_rotation(gw: Gateway) -> Status:
    """Send through the rotated key, then wait for the emulator's delivery reports."""
    sent = gw.tenant("acme").send("08031234567", "after the rotation")
    assert sent.ok, sent
    deadline = time.monotonic() + 10
    status = sent.status
    while time.monotonic() < deadline and not status.is_final:
        time.sleep(0.05)
        status = gw.tenant("acme").get(sent.message_id).status
    return status


def test_rotating_one_credential_keeps_the_others(hooked: tuple[Gateway, StoredTenants, str, Path]) -> None:
    gw, tenants, _, _ = hooked
    tenants.rotate("acme", "camp", {"api_key": SANDBOX_API_KEY})
    # the new key sends, and the kept webhook token still authenticates the reports
    assert delivered_after_rotation(gw) is Status.DELIVERED
    assert tenants.credential_names("acme") == {"camp": ["api_key", "webhook_token"]}


def test_replace_makes_the_given_credentials_the_whole_set(
    hooked: tuple[Gateway, StoredTenants, str, Path]
) -> None:
    _, tenants, _, _ = hooked
    tenants.rotate("acme", "camp", {"api_key": SANDBOX_API_KEY}, replace=True)
    assert tenants.credential_names("acme") == {"camp": ["api_key"]}


def test_cli_rotate_keeps_the_others_and_says_so(hooked: tuple[Gateway, StoredTenants, str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    gw, tenants, _, db = hooked
    monkeypatch.setenv("SMSGATE_TENANT_KEY", KEY)
    out = CliRunner().invoke(app, ["tenant", "rotate", "acme", "camp", "-", "--store", f"sqlite:///{db}"],
                             input=f'api_key = "{SANDBOX_API_KEY}"\n')
    assert out.exit_code == 0, out.output
    said = " ".join(out.output.split())
    assert "credentials of camp replaced: api_key; kept: webhook_token (version 2)" in said
    assert SANDBOX_API_KEY not in out.output and SANDBOX_WEBHOOK_TOKEN not in out.output
    assert delivered_after_rotation(gw) is Status.DELIVERED
    out = CliRunner().invoke(app, ["tenant", "rotate", "acme", "camp", "-", "--replace-all", "--store",
                                   f"sqlite:///{db}"], input=f'api_key = "{SANDBOX_API_KEY}"\n')
    assert out.exit_code == 0, out.output
    assert "replaced: api_key; removed: webhook_token (version 3)" in " ".join(out.output.split())
    assert tenants.credential_names("acme") == {"camp": ["api_key"]}


# ------------------------------------------------------------------ two writers at once
class LetsAnotherWriterIn(SQLiteStore):
    """A real SQLite store that runs ``between`` (another process's write, through its own
    connection) once, right after this store's next read of stored tenants: the moment a
    read-modify-write (``rotate``, ``rekey``) can lose a change made meanwhile."""

    between: Callable[[], object] | None = None

    def _then(self) -> None:
        if self.between is not None:
            run, self.between = self.between, None
            run()

    def get_tenant_row(self, name: str) -> TenantRow | None:
        row = super().get_tenant_row(name)
        self._then()
        return row

    def list_tenant_rows(self) -> list[TenantRow]:
        rows = super().list_tenant_rows()
        self._then()
        return rows


CAMP = {"default_region": "NG", "sender": "ACME", "providers": {"camp": {
    "plugin": "campaigns_api", "base_url": "http://127.0.0.1:9",
    "credentials": {"api_key": "api-key-1", "webhook_token": "hook-token-1"}}}}


@pytest.fixture
def two_writers(tmp_path: Path) -> Iterator[tuple[LetsAnotherWriterIn, SQLiteStore]]:
    path = str(tmp_path / "tenants.db")
    mine, theirs = LetsAnotherWriterIn(path), SQLiteStore(path)
    mine.migrate()
    yield mine, theirs
    mine.close()
    theirs.close()


def credentials(store: SQLiteStore, keys: str) -> dict[str, str]:
    found = StoredTenants(store, keys=keys).get("acme")
    assert found is not None
    return {k: v.get_secret_value() for k, v in found[0].providers["camp"].credentials.items()}


def test_two_rotations_at_once_both_stay(two_writers: tuple[LetsAnotherWriterIn, SQLiteStore]) -> None:
    """Two jobs rotate a tenant's credentials at the same moment (the API key, the webhook
    token): the one that writes second read the tenant before the first wrote. Its write
    restored the other's old credential."""
    mine, theirs = two_writers
    StoredTenants(theirs, keys=KEY).add("acme", CAMP)
    mine.between = lambda: StoredTenants(theirs, keys=KEY).rotate("acme", "camp", {"webhook_token": "hook-token-2"})
    StoredTenants(mine, keys=KEY).rotate("acme", "camp", {"api_key": "api-key-2"})
    assert mine.between is None  # the other writer did come in between
    assert credentials(theirs, KEY) == {"api_key": "api-key-2", "webhook_token": "hook-token-2"}


def test_a_rotation_during_rekey_is_kept_and_re_encrypted(
    two_writers: tuple[LetsAnotherWriterIn, SQLiteStore]
) -> None:
    """``smsgate tenant rekey`` wrote back every tenant as it had read it: a credential rotated
    meanwhile (after a leak, say) was silently replaced by the old one."""
    mine, theirs = two_writers
    new_key = Fernet.generate_key().decode()
    StoredTenants(theirs, keys=KEY).add("acme", CAMP)
    both = f"{new_key},{KEY}"
    mine.between = lambda: StoredTenants(theirs, keys=both).rotate("acme", "camp", {"api_key": "api-key-2"})
    assert StoredTenants(mine, keys=both).rekey() == 1
    assert mine.between is None
    # the rotated key stayed, and it is encrypted with the new key alone
    assert credentials(theirs, new_key) == {"api_key": "api-key-2", "webhook_token": "hook-token-1"}
