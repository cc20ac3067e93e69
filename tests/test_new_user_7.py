"""Found by a new user wiring stored tenants into a web app and Celery workers (helper user7):
each test fails without its fix."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bounded import drop_schema
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway
from smsgate.store import open_store
from smsgate.tenants import StoredTenants

KEY = Fernet.generate_key().decode()
ON_ANOTHER_STORE = "keeps its tenants in another store"


def _tenant() -> dict[str, object]:
    return {"default_region": "NG", "providers": {"mem": {"plugin": "memory"}}}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("smsgate")]


def test_stored_tenants_on_another_store_than_the_gateway_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``StoredTenants(URL)`` beside ``Gateway(config)`` whose ``store`` is another database
    ran without a word, and broke the promise of docs/tenants.md that a removed tenant's data is
    never inherited: ``add`` looks for the name's data in the tenants' store while the messages
    live in the gateway's, so a new tenant of a removed one's name read its messages."""
    caplog.set_level(logging.WARNING)
    tenants = StoredTenants(f"sqlite:///{tmp_path}/tenants.db", keys=KEY)
    with Gateway({"store": f"sqlite:///{tmp_path}/messages.db"}, tenants=tenants) as gw:
        tenants.add("zeta", _tenant())
        gw.tenant("zeta").send("+2348031234567", "hello", idempotency_key="z1")
        tenants.remove("zeta")
        tenants.add("zeta", _tenant())  # not refused: the data is in the other store
        assert gw.tenant("zeta").messages()  # the new zeta reads the old one's messages
    tenants.close()
    said = [m for m in _warnings(caplog) if ON_ANOTHER_STORE in m]
    assert len(said) == 1, _warnings(caplog)
    assert "tenants.db" in said[0] and "messages.db" in said[0]
    assert "never inherited" in said[0] or "inherit" in said[0]


def test_one_store_under_two_urls_or_one_object_is_not_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    (tmp_path / "sub").mkdir()
    tenants = StoredTenants(f"sqlite:///{tmp_path}/sub/../one.db", keys=KEY)
    with Gateway({"store": f"sqlite:///{tmp_path}/one.db"}, tenants=tenants):
        pass
    tenants.close()
    store = open_store("memory://")
    with Gateway({"store": "memory://"}, store=store, tenants=StoredTenants(store, keys=KEY)):
        pass
    assert not [m for m in _warnings(caplog) if ON_ANOTHER_STORE in m]


def test_memory_stores_apart_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with Gateway({"store": "memory://"}, tenants=StoredTenants("memory://", keys=KEY)):
        pass
    assert [m for m in _warnings(caplog) if ON_ANOTHER_STORE in m]


def test_postgres_urls_of_one_database_are_one_store(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """``localhost`` and ``127.0.0.1``, a port given or not, a user given or not: one database."""
    caplog.set_level(logging.WARNING)
    other = pg_url.replace("127.0.0.1:5432", "localhost").replace("postgres@", "")
    tenants = StoredTenants(other, keys=KEY)
    with Gateway({"store": pg_url}, tenants=tenants):
        pass
    tenants.close()
    assert not [m for m in _warnings(caplog) if ON_ANOTHER_STORE in m]
    elsewhere = StoredTenants(pg_url.split("?")[0] + "?schema=user7_other_schema", keys=KEY)
    try:
        with Gateway({"store": pg_url}, tenants=elsewhere):
            pass
    finally:
        elsewhere.store.close()
        drop_schema(pg_url.split("?")[0], "user7_other_schema")
    assert [m for m in _warnings(caplog) if ON_ANOTHER_STORE in m]


def _squad(**credentials: str) -> dict[str, object]:
    return {"default_region": "NG", "providers": {"main": {"plugin": "squad", "sender": "ACME",
                                                           "credentials": credentials}}}


def test_rotating_a_misspelled_credential_is_refused_and_the_old_key_not_kept_in_use() -> None:
    """``rotate("acme", "main", {"secret_kye": ...})`` (a typo) was stored as a new, unused
    credential beside the old ``secret_key``, which stayed in use: the CLI said
    "credentials of main replaced: secret_kye; kept: secret_key" and the (perhaps leaked) key
    went on sending. A name the instance lacks and its plugin does not know is refused now,
    naming the names it has; nothing is written."""
    from smsgate.errors import ConfigError

    tenants = StoredTenants(open_store("memory://"), keys=KEY)
    tenants.add("acme", _squad(secret_key="sk_live_old"))
    before = tenants.version()
    with pytest.raises(ConfigError) as caught:
        tenants.rotate("acme", "main", {"secret_kye": "sk_live_new"})
    text = str(caught.value)
    assert "secret_kye" in text and "did you mean 'secret_key'" in text and "sk_live" not in text
    assert caught.value.field == "tenants.acme.providers.main.credentials.secret_kye"
    assert tenants.version() == before  # nothing written
    found = tenants.get("acme")
    assert found is not None
    assert found[0].providers["main"].credentials["secret_key"].get_secret_value() == "sk_live_old"
    assert sorted(found[0].providers["main"].credentials) == ["secret_key"]


def test_rotate_still_adds_a_credential_the_plugin_knows_and_replace_takes_any() -> None:
    tenants = StoredTenants(open_store("memory://"), keys=KEY)
    tenants.add("acme", _squad(secret_key="sk_live_old"))
    tenants.rotate("acme", "main", {"webhook_secret": "whsec"})  # a name squad declares (secret_names)
    tenants.rotate("acme", "main", {"secret_key": "sk_live_new"})
    found = tenants.get("acme")
    assert found is not None
    creds = found[0].providers["main"].credentials
    assert sorted(creds) == ["secret_key", "webhook_secret"]
    assert creds["secret_key"].get_secret_value() == "sk_live_new"
    tenants.rotate("acme", "main", {"secret_key": "sk3", "custom_thing": "x"}, replace=True)  # the whole set: as given
    found = tenants.get("acme")
    assert found is not None and sorted(found[0].providers["main"].credentials) == ["custom_thing", "secret_key"]
