"""Squad's signed delivery reports through the webhook app, over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from smsgate.config import Settings, TenantConfig
from smsgate.gateway import Gateway
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing.server import LiveServer
from smsgate.webhooks import webhook_app
from smsgate_squad import SquadProvider
from smsgate_squad.auth import sign_body
from smsgate_squad.emulator import SANDBOX_CREDENTIALS, SANDBOX_SECRET_KEY


@pytest.fixture()
def hook_url(tmp_path: object) -> Iterator[str]:
    settings = Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG", providers={
        "sq": ProviderSettings(plugin="squad", base_url="http://127.0.0.1:9", credentials=dict(SANDBOX_CREDENTIALS),
                               sender="SMSGATE")})})
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(SquadProvider)
    store = SQLiteStore(f"{tmp_path}/log.db")
    store.migrate()
    with Gateway(settings, store=store, plugins=pm) as gw, LiveServer(webhook_app(gw)) as server:
        yield f"{server.url}/t/sq"


@pytest.mark.parametrize("field,value", [("pages", 10**30), ("pages", -1), ("charge", "1e400")])
def test_signed_report_with_an_absurd_value_is_refused_alone_not_500(hook_url: str, field: str, value: object
                                                                     ) -> None:
    """A report with a value out of its bounds is refused on its own (counted, never applied)
    and answered 200, so that Squad stops resending it (it was a 400 for the whole callback)."""
    body = json.dumps({"Event": "sms", "TransactionRef": "tx-1",
                       "Body": {"status": "delivered", "transaction_id": "tx-1", field: value}}).encode()
    r = httpx.post(hook_url, content=body, headers={"x-squad-encrypted-body": sign_body(SANDBOX_SECRET_KEY, body)})
    assert r.status_code == 200, r.text
    assert (r.json()["reports"], r.json()["rejected"]) == (0, 1)


def test_unsigned_or_forged_report_is_401(hook_url: str) -> None:
    body = b'{"Body": {"status": "delivered", "transaction_id": "tx-3"}}'
    assert httpx.post(hook_url, content=body).status_code == 401
    assert httpx.post(hook_url, content=body, headers={"x-squad-encrypted-body": "AB" * 64}).status_code == 401
def test_signed_report_for_an_unknown_message_matches_nothing(hook_url: str) -> None:
    body = json.dumps({"Event": "sms", "TransactionRef": "tx-2",
                       "Body": {"status": "delivered", "transaction_id": "tx-2", "pages": 2}}).encode()
    r = httpx.post(hook_url, content=body, headers={"x-squad-encrypted-body": sign_body(SANDBOX_SECRET_KEY, body)})
    assert r.status_code == 200 and r.json()["matched"] == 0


# docs.squadco.com/webhook-direct-url/webhook-and-direct-url: one webhook URL per merchant
# (dashboard Profile > API & Webhook), "triggered whenever a transaction is successful", signed with
# x-squad-encrypted-body; sample {"Event": "charge_successful", "TransactionRef", "Body": {amount,
# transaction_ref, gateway_ref, transaction_status, ...}} (older pages: "Charge.Successful").
SQUAD_CHARGE = {
    "Event": "charge_successful", "TransactionRef": "4678388588A0",
    "Body": {"amount": 83000, "transaction_ref": "4678388588A0", "gateway_ref": "4678388588A0_1_1",
             "transaction_status": "success", "email": "payer@example.com", "merchant_id": "SBN1EBZEQ8",
             "currency": "NGN", "transaction_type": "Card", "merchant_amount": 82170,
             "created_at": "2022-09-06T15:28:02.477", "customer_mobile": None, "meta": {}},
}


def test_squad_payment_event_at_the_sms_webhook_is_acknowledged(hook_url: str) -> None:
    """Squad posts its (documented, signed) payment events to the merchant's one webhook URL:
    smsgate's Squad webhook answers them 200 with nothing applied, not 400 (a refusal the vendor
    would keep re-sending)."""
    for event in ("charge_successful", "Charge.Successful"):
        body = json.dumps({**SQUAD_CHARGE, "Event": event}).encode()
        r = httpx.post(hook_url, content=body, headers={"x-squad-encrypted-body": sign_body(SANDBOX_SECRET_KEY, body)})
        assert r.status_code == 200, r.text
        assert r.json()["reports"] == 0
    # still signed: a forged payment event is refused
    body = json.dumps(SQUAD_CHARGE).encode()
    assert httpx.post(hook_url, content=body, headers={"x-squad-encrypted-body": "AB" * 64}).status_code == 401
