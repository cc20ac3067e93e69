"""The reference provider: a minimal adapter and its emulator (the "echo" vendor).

It proves the contract, the conformance kit and the gateway, and it is the worked
example of docs/writing-a-provider.md; it ships in the wheel so that a plugin author
can read it (and run it: ``from smsgate.testing.reference import EchoProvider``).
Importing it needs the ``server`` extra (starlette).

The "echo" vendor: ``POST /messages`` ``{"to", "text", "from"}`` with header
``X-Api-Key`` -> 201 ``{"id", "status": "accepted"}``; ``POST /messages/bulk``
``{"messages": [...]}`` -> ``{"results": [...]}``; ``GET /messages/{id}`` ->
``{"id", "status", "updated_at"}`` where status becomes ``delivered`` (or ``failed`` for
numbers ending in 9) once looked up (numbers in the emulator's ``in_flight`` keep theirs,
``accepted`` unless a test set another) and ``updated_at`` is the vendor's time of it, where
a test set one (ISO 8601), else null; ``GET /messages?client_ref=...`` finds messages by client reference;
errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smsgate.errors import AuthFailed, MalformedResponse
from smsgate.hookspecs import hookimpl
from smsgate.models import DeliveryReport, InboundMessage, OutboundMessage, SendResult, Status, WebhookEvents
from smsgate.provider import Capabilities, Operation, Provider
from smsgate.testing.emulator import emulator_app

__all__ = ["API_KEY", "EchoPlugin", "EchoProvider", "create_emulator", "sign"]

#: The API key the echo emulator accepts.
API_KEY = "echo-secret-key-123"

_STATUS = {"accepted": Status.SUBMITTED, "sent": Status.SENT, "delivered": Status.DELIVERED, "failed": Status.FAILED}


class EchoProvider(Provider):
    """Adapter for the echo vendor."""

    name = "echo"
    capabilities = Capabilities(bulk=True, max_batch=2, status_lookup=True, delivery_reports=True,
                                client_reference=True)

    def authenticate(self, request: httpx.Request) -> None:
        request.headers["X-Api-Key"] = self.settings.secret("api_key") or ""

    def error_message(self, response: httpx.Response) -> str:
        """The vendor's ``{"error": "..."}`` text."""
        return str(response.json().get("error", "")) if response.content else ""

    def _result(self, msg: OutboundMessage, item: Mapping[str, Any]) -> SendResult:
        try:
            return SendResult(
                to=msg.to,
                status=_STATUS[item["status"]],
                raw_status=item["status"],
                provider_message_id=str(item["id"]),
            )
        except (KeyError, TypeError) as exc:
            raise MalformedResponse(f"unexpected send result {item!r}", provider=self.instance_name) from exc

    def _body(self, msg: OutboundMessage) -> dict[str, Any]:
        return {"to": msg.to, "text": msg.text, "from": msg.sender, "client_ref": msg.message_id}

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        response = yield from self.call_ok(self.request("POST", "/messages", json=self._body(msg)))
        data = self.json(response)
        if not isinstance(data, dict):
            raise MalformedResponse("send answer is not an object", provider=self.instance_name)
        return self._result(msg, data)

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        body = {"messages": [self._body(m) for m in msgs]}
        response = yield from self.call_ok(self.request("POST", "/messages/bulk", json=body))
        data = self.json(response)
        return [self._result(m, item) for m, item in zip(msgs, data["results"], strict=False)]

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        response = yield from self.call_ok(self.request("GET", f"/messages/{result.provider_message_id}"))
        data = self.json(response)
        # the vendor's time of the status where it says it (else the report's time: now)
        when = {"occurred_at": datetime.fromisoformat(data["updated_at"])} if data.get("updated_at") else {}
        return DeliveryReport(
            provider=self.instance_name,
            provider_message_id=str(data["id"]),
            status=_STATUS[data["status"]],
            raw_status=data["status"],
            **when,
        )

    def find_by_reference(self, message_id: str, to: str) -> Operation[DeliveryReport | None]:
        response = yield from self.call_ok(self.request("GET", "/messages", params={"client_ref": message_id}))
        found = self.json(response)
        if not found:
            return None
        item = found[0]
        return DeliveryReport(provider=self.instance_name, provider_message_id=str(item["id"]),
                              status=_STATUS[item["status"]], raw_status=item["status"])

    def parse_events(self, headers: Mapping[str, str], body: bytes) -> WebhookEvents:
        """Reports, and inbound messages: items ``{"type": "inbound", "id", "from", "to", "text"}``."""
        items = json.loads(self._verified(headers, body))
        inbound = [InboundMessage(provider=self.instance_name, vendor_id=str(i["id"]), from_number=i["from"],
                                  to=i.get("to"), text=i["text"], raw=i) for i in items if i.get("type") == "inbound"]
        reports = self._reports([i for i in items if i.get("type") != "inbound"])
        return WebhookEvents(reports=reports, inbound=inbound)

    def _verified(self, headers: Mapping[str, str], body: bytes) -> bytes:
        given = {k.lower(): v for k, v in headers.items()}.get("x-echo-signature", "")
        if not hmac.compare_digest(sign(body, self.settings.secret("api_key") or ""), given.lower()):
            raise AuthFailed("bad webhook signature", provider=self.instance_name)
        return body

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        return self._reports(json.loads(self._verified(headers, body)))

    def _reports(self, items: list[dict[str, Any]]) -> list[DeliveryReport]:
        return [
            DeliveryReport(
                provider=self.instance_name,
                provider_message_id=item["id"],
                status=_STATUS[item["status"]],
                raw_status=item["status"],
                part=item.get("part"),
                parts=item.get("parts"),
            )
            for item in items
        ]


class EchoPlugin:
    """The plugin object registering the provider (as an entry point module would)."""

    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(EchoProvider)


def sign(body: bytes, key: str = API_KEY) -> str:
    """The echo vendor's webhook signature: HMAC-SHA256 hex of the body with the API key."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def create_emulator(messages: dict[str, dict[str, Any]] | None = None, *, in_flight: Sequence[str] = ()) -> Any:
    """The echo vendor's emulator; ``messages`` (if given) is where it keeps what it accepted,
    by its id: the vendor's own record, for tests that count what it took. Messages to the
    numbers in ``in_flight`` stay ``accepted`` when looked up (never delivered)."""
    ids = itertools.count(1)
    messages = {} if messages is None else messages

    def authorised(request: Request) -> bool:
        return request.headers.get("x-api-key") == API_KEY

    def accept(item: dict[str, Any]) -> dict[str, Any]:
        mid = f"m{next(ids)}"
        messages[mid] = {"id": mid, "to": item["to"], "status": "accepted", "client_ref": item.get("client_ref")}
        return {"id": mid, "status": "accepted"}

    async def send(request: Request) -> JSONResponse:
        if request.method == "GET":
            return await find(request)
        if not authorised(request):
            return JSONResponse({"error": "bad api key"}, status_code=401)
        body = await request.json()
        if not str(body.get("to", "")).startswith("+"):
            return JSONResponse({"error": "to must be E.164"}, status_code=400)
        return JSONResponse(accept(body), status_code=201)

    async def bulk(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "bad api key"}, status_code=401)
        body = await request.json()
        return JSONResponse({"results": [accept(m) for m in body["messages"]]}, status_code=201)

    async def find(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "bad api key"}, status_code=401)
        ref = request.query_params.get("client_ref")
        found = [{"id": m["id"], "status": m["status"]} for m in messages.values() if ref and m["client_ref"] == ref]
        return JSONResponse(found)

    async def get(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "bad api key"}, status_code=401)
        msg = messages.get(request.path_params["id"])
        if msg is None:
            return JSONResponse({"error": "no such message"}, status_code=404)
        if msg["to"] not in in_flight:
            msg["status"] = "failed" if msg["to"].endswith("9") else "delivered"
        return JSONResponse({"id": msg["id"], "status": msg["status"], "updated_at": msg.get("updated_at")})

    app = Starlette(
        routes=[
            Route("/messages", send, methods=["GET", "POST"]),
            Route("/messages/bulk", bulk, methods=["POST"]),
            Route("/messages/{id}", get, methods=["GET"]),
        ]
    )
    return emulator_app(app, error_body=lambda status, message: {"error": message}, vendor=messages)
