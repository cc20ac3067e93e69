"""The provider smsgate uses in the benchmarks: a generic HTTP/JSON SMS API.

``POST /messages`` ``{"to", "text", "from"}`` with header ``X-Api-Key`` -> any 2xx
``{"id": ..., "status": "accepted"}``: the same request every other client in the
benchmark sends, modelled on the reference "echo" provider (tests/reference_provider.py)
but without bulk, so every message is one HTTP request.
"""

from __future__ import annotations

from typing import Any

from smsgate.errors import MalformedResponse
from smsgate.hookspecs import hookimpl
from smsgate.models import OutboundMessage, SendResult, Status
from smsgate.plugins import PluginManager
from smsgate.provider import Capabilities, Operation, Provider

API_KEY = "bench-key-0123456789"
TEXT = "Your verification code is 482913. It expires in 10 minutes."

_STATUS = {"accepted": Status.SUBMITTED, "delivered": Status.DELIVERED}


class BenchJsonProvider(Provider):
    """Adapter for the benchmark endpoints."""

    name = "benchjson"
    capabilities = Capabilities(send=True, delivery_reports=True)

    def authenticate(self, request: Any) -> Operation[None]:
        request.headers["X-Api-Key"] = self.settings.secret("api_key") or ""
        return
        yield

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        body = {"to": msg.to, "text": msg.text, "from": msg.sender}
        response = yield from self.call_ok(self.request("POST", "/messages", json=body))
        data = self.json(response)
        try:
            return SendResult(
                to=msg.to, status=_STATUS[data["status"]], raw_status=data["status"],
                provider_message_id=str(data["id"]),
            )
        except (KeyError, TypeError) as exc:
            raise MalformedResponse(f"unexpected send result {data!r}", provider=self.instance_name) from exc


class BenchPlugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(BenchJsonProvider)


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(BenchPlugin())
    return pm


def config(base_url: str, store: str) -> dict[str, Any]:
    """One tenant (region NG) with one provider and a prefix route, logging to ``store``."""
    provider = {
        "plugin": "benchjson",
        "base_url": base_url,
        "credentials": {"api_key": API_KEY},
        "sender": "BENCH",
        "timeout": 30.0,
    }
    tenant = {
        "default_region": "NG",
        "providers": {"main": provider},
        "routes": [{"prefixes": ["+234"], "providers": ["main"]}],
    }
    return {"store": store, "tenants": {"bench": tenant}}
