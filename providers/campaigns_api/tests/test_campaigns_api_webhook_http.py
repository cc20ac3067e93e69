"""Campaigns REST callbacks through the webhook app over loopback HTTP: the token is required."""

from __future__ import annotations

import json

import httpx

from smsgate.gateway import Gateway
from smsgate.models import Status
from smsgate.plugins import PluginManager
from smsgate.store.memory import MemoryStore
from smsgate.testing.server import LiveServer
from smsgate.webhooks import webhook_app
from smsgate_campaigns_api import CampaignsApiProvider
from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

BODY = json.dumps({"webHookType": 1, "data": {"Id": 7, "phoneNumberId": "guid-1", "statusCode": 1}}).encode()


def gateway(url: str, creds: dict[str, str], **options: object) -> Gateway:
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(CampaignsApiProvider)
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "GB", "providers": {"dm": {
        "plugin": "campaigns_api", "base_url": url, "credentials": {"api_key": SANDBOX_API_KEY, **creds},
        "sender": "ACME", "options": options}}}}}
    return Gateway(cfg, store=MemoryStore(), plugins=pm)


def test_tenant_without_a_webhook_token_applies_no_report() -> None:
    with LiveServer(create_app()) as emu, gateway(emu.url, {}) as gw, LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send("+447912345678", "hi")
        body = json.dumps({"webHookType": 1, "data": {"phoneNumberId": sent.provider_message_id,
                                                      "statusCode": 5}}).encode()
        r = httpx.post(f"{hooks.url}/acme/dm", content=body)
        # answered as a failed authentication (as an unknown tenant: nobody learns the instance exists)
        assert r.status_code == 401 and r.json() == {"error": "authentication failed"}
        assert gw.tenant("acme").get(sent.message_id).status is not Status.UNDELIVERED  # the forgery did nothing


def test_token_check_failures_are_401_and_the_right_token_is_applied() -> None:
    with (LiveServer(create_app()) as emu, gateway(emu.url, {"webhook_token": "tok-9"}) as gw,
          LiveServer(webhook_app(gw)) as hooks):
        sent = gw.tenant("acme").send("+447912345678", "hi")
        body = json.dumps({"webHookType": 1, "data": {"phoneNumberId": sent.provider_message_id,
                                                      "statusCode": 1}}).encode()
        for query in ("", "?token=wrong", "?other=tok-9"):
            r = httpx.post(f"{hooks.url}/acme/dm{query}", content=body)
            assert r.status_code == 401, (query, r.text)
        assert httpx.post(f"{hooks.url}/acme/dm", content=body,
                          headers={"X-Webhook-Token": "nope"}).status_code == 401
        ok = httpx.post(f"{hooks.url}/acme/dm?token=tok-9", content=body)
        assert ok.status_code == 200 and ok.json()["matched"] == 1
        assert gw.tenant("acme").get(sent.message_id).status is Status.DELIVERED


def test_unauthenticated_callbacks_only_by_explicit_option() -> None:
    with (LiveServer(create_app()) as emu, gateway(emu.url, {}, webhook_token_required=False) as gw,
          LiveServer(webhook_app(gw)) as hooks):
        assert httpx.post(f"{hooks.url}/acme/dm", content=BODY).status_code == 200
