"""The webhook ASGI app over real loopback HTTP."""

from __future__ import annotations

import json

import httpx

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from smsgate import Gateway, Status
from smsgate.plugins import PluginManager
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app


def test_webhook_app_applies_signed_reports_per_tenant() -> None:
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}},
                                                   "globex": {"providers": {"one": prov}}}}
        with Gateway(cfg, plugins=pm) as gw, LiveServer(webhook_app(gw)) as hooks:
            r = gw.tenant("acme").send("08031234567", "x")
            body = json.dumps([{"id": r.provider_message_id, "status": "delivered"}]).encode()
            ok = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
            assert ok.status_code == 200 and ok.json() == {"reports": 1, "matched": 1, "orphaned": 0, "inbound": 0, "duplicates": 0, "rejected": 0}
            assert gw.tenant("acme").get(r.message_id).status == Status.DELIVERED
            bad = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": "bad"})
            assert bad.status_code == 401
            assert httpx.post(f"{hooks.url}/nobody/one", content=body).status_code == 401  # as a bad signature
            assert httpx.post(f"{hooks.url}/acme/one", content=b"[{}]",
                              headers={"X-Echo-Signature": sign(b"[{}]")}).status_code == 400


def test_webhook_app_on_an_async_gateway_applies_reports_off_the_event_loop() -> None:
    """The app awaits AsyncGateway.ingest on its own event loop; the store work runs in worker threads."""
    import asyncio
    import threading

    from smsgate import AsyncGateway
    from smsgate.store.memory import MemoryStore

    class WatchedStore(MemoryStore):
        def apply_reports_changes(self, tenant: str, reports: list, **kw: bool) -> list:  # type: ignore[override,type-arg]
            threads.add(threading.current_thread().name)
            return super().apply_reports_changes(tenant, reports, **kw)

    threads: set[str] = set()
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}
        gw = AsyncGateway(cfg, store=WatchedStore(), plugins=pm)
        try:
            with LiveServer(webhook_app(gw)) as hooks:
                r = asyncio.run(gw.tenant("acme").send("08031234567", "x"))
                body = json.dumps([{"id": r.provider_message_id, "status": "delivered"}]).encode()
                ok = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
                assert ok.status_code == 200 and ok.json() == {"reports": 1, "matched": 1, "orphaned": 0, "inbound": 0, "duplicates": 0, "rejected": 0}
                assert asyncio.run(gw.tenant("acme").get(r.message_id)).status == Status.DELIVERED
        finally:
            asyncio.run(gw.aclose())
    assert threads and all(name.startswith("smsgate-store") for name in threads)
