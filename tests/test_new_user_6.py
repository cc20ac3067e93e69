"""Found by a new user of tonight's features (helper user6): each test fails without its fix."""

from __future__ import annotations

import pickle

import pytest

from smsgate import Gateway, InboundMessage
from smsgate.config import TenantConfig
from smsgate.errors import ConfigError, NoCapableProvider
from smsgate.store import open_store
from smsgate.testing import outbox

LONG_REPLY = "Acme alerts: reply STOP to opt out. " + "y" * 200  # 236 GSM-7 characters: 2 segments


def _tenant(**extra: object) -> dict[str, object]:
    return {"default_region": "NG", "providers": {"mem": {"plugin": "memory"}}, **extra}


def test_a_help_reply_over_max_segments_is_a_config_error() -> None:
    """A ``help_reply`` longer than the tenant's ``max_segments`` was accepted by the
    configuration (and ``gw.check()``), then every HELP was answered by nothing but an ERROR
    log line ("help reply cannot be built"). It is static text: refused where it is set."""
    cfg = {"store": "memory://", "tenants": {"acme": _tenant(max_segments=1, inbound={"help_reply": LONG_REPLY})}}
    with pytest.raises(ConfigError) as caught:
        Gateway(cfg)
    assert "inbound.help_reply" in str(caught.value)
    assert "2 segments" in str(caught.value) and "max_segments = 1" in str(caught.value)
    assert "tenants.acme: inbound.help_reply" in str(caught.value)


def test_a_help_reply_within_max_segments_is_answered() -> None:
    """The same reply is fine with the default cap (10), with no cap, and shortened by
    smart_encoding (curly quotes to GSM-7) where that brings it under the cap."""
    TenantConfig.model_validate(_tenant(inbound={"help_reply": LONG_REPLY}))
    TenantConfig.model_validate(_tenant(max_segments=None, inbound={"help_reply": LONG_REPLY}))
    curly = "\u2019" + "y" * 150  # UCS-2: 3 segments; smart-encoded, 1
    with pytest.raises(ValueError, match=r"inbound\.help_reply"):
        TenantConfig.model_validate(_tenant(max_segments=1, inbound={"help_reply": curly}))
    TenantConfig.model_validate(_tenant(max_segments=1, smart_encoding=True, inbound={"help_reply": curly}))
    cfg = {"store": "memory://", "tenants": {"acme": _tenant(inbound={"help_reply": LONG_REPLY})}}
    outbox.clear()
    with Gateway(cfg) as gw:
        gw.tenant("acme").ingest_inbound("mem", [InboundMessage(vendor_id="v1", from_number="+2348031234567",
                                                                text="HELP")])
    assert [m.to for m in outbox] == ["+2348031234567"]


def test_a_number_no_provider_carries_is_named_by_the_error_and_masked_in_its_repr() -> None:
    """``NoCapableProvider`` for a recipient (Squad carries +234 only) showed the whole number in
    its ``repr`` (what Celery's worker logs of a failed task), unlike every other error naming a
    number, and gave the caller no way to tell "this number" (the client's input: a 400) from
    "this capability" (the configuration). Now ``exc.phone``; it survives pickling."""
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {
        "squad": {"plugin": "squad", "sender": "ACME", "credentials": {"secret_key": "sandbox_sk_x"}}}}}}
    with Gateway(cfg) as gw, pytest.raises(NoCapableProvider) as caught:
        gw.tenant("acme").send("+447912345678", "hi")
    exc = caught.value
    assert exc.phone == "+447912345678"
    assert "+447912345678" not in repr(exc) and "+447******678" in repr(exc), repr(exc)
    assert "+447912345678" not in str(exc)  # logged with its traceback too: masked; exc.phone is whole
    again = pickle.loads(pickle.dumps(exc))
    assert again.phone == "+447912345678" and str(again) == str(exc)
    made = NoCapableProvider(*exc.args)  # how Celery's JSON result backend makes it again
    assert made.phone == "+447912345678" and made.providers == ("squad",)
    assert NoCapableProvider("media", ["squad"]).phone is None


@pytest.mark.parametrize("url", ["memory", "sqlite", "postgresql", "user:secret@db.example/sms"])
def test_a_store_url_without_a_scheme_says_so(url: str) -> None:
    """``store = "memory"`` said "unsupported store URL 'memory'://...; use ... memory://": it named
    a URL it was not given, and suggested what it seemed to refuse. A URL without ``://`` is
    told as such (a bare scheme name gets its spelling), never echoed whole (it may hold a password)."""
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    text = str(caught.value)
    assert "'memory'://" not in text and "secret" not in text
    assert "no scheme" in text
    if url in ("memory", "sqlite", "postgresql"):
        assert f"did you mean '{url}://" in text
