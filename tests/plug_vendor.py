"""A third-party provider plugin ("loopsms") and the tiny loopback vendor it talks to.

Written as a plugin author would from docs/writing-a-provider.md: a provider class, a
``register_providers`` hook in a module an entry point names, and an emulator-like vendor
(here a plain ``http.server``, not smsgate's emulator kit) that records every request it
receives with a timestamp, so tests count what the vendor took from its own record.

The vendor ("loop"): header ``X-Loop-Key``;
``POST /send`` ``{"to", "text", "ref"}`` -> ``{"id", "status": "queued"}``;
``POST /bulk`` ``{"messages": [{"to", "text", "ref"}]}`` -> ``{"results": [{"ref", "id", "status"}]}``;
``GET /msg/{id}`` -> ``{"id", "status"}``; ``GET /ref/{ref}`` -> ``{"found": [{"id", "status"}]}``.
Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from smsgate.hookspecs import hookimpl
from smsgate.models import DeliveryReport, OutboundMessage, SendResult, Status
from smsgate.provider import Capabilities, Operation, Provider

API_KEY = "loop-key-7f3a"

_STATUS = {"queued": Status.SUBMITTED, "sent": Status.SENT, "delivered": Status.DELIVERED,
           "failed": Status.FAILED}


@dataclass
class Received:
    at: float
    method: str
    path: str
    body: Any
    processed: bool = False
    accepted: list[str] = field(default_factory=list)  # vendor ids of the messages it took


# A behaviour: what the vendor does with one request. Each takes (handler, record, body)
# and answers. A queue of them per path is consumed one per request; the default is "ok".
Behaviour = Callable[["_Handler", Received, Any], None]


class LoopVendor:
    """The vendor: state, the request record, and a per-path queue of behaviours."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.record: list[Received] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.script: dict[str, list[Behaviour]] = {}
        self.release = threading.Event()  # ends every hang at teardown
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.vendor = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopVendor:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def then(self, path: str, *behaviours: Behaviour) -> None:
        with self.lock:
            self.script.setdefault(path, []).extend(behaviours)

    def accept(self, item: dict[str, Any]) -> dict[str, Any]:
        mid = f"L{next(self.ids)}"
        with self.lock:
            self.messages[mid] = {"id": mid, "to": item["to"], "text": item.get("text"),
                                  "ref": item.get("ref"), "status": "queued"}
        return {"ref": item.get("ref"), "id": mid, "status": "queued"}

    def taken(self) -> list[dict[str, Any]]:
        """Every message the vendor accepted (its own state)."""
        with self.lock:
            return list(self.messages.values())

    def taken_to(self, to: str) -> int:
        return sum(1 for m in self.taken() if m["to"] == to)

    def sends(self) -> list[Received]:
        return [r for r in self.record if r.method == "POST"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def vendor(self) -> LoopVendor:
        return self.server.vendor  # type: ignore[attr-defined,no-any-return]

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = Received(at=time.time(), method=method, path=self.path, body=body)
        vendor = self.vendor
        with vendor.lock:
            vendor.record.append(rec)
            queue = vendor.script.get(self.path)
            behaviour = queue.pop(0) if queue else ok
        if self.headers.get("X-Loop-Key") != API_KEY:
            self.answer(401, {"error": "bad key"})
            return
        behaviour(self, rec, body)

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")


# -- behaviours ------------------------------------------------------------------------------

def process(handler: _Handler, rec: Received, body: Any) -> Any:
    """What the vendor does with a request: the answer it would give (and state kept)."""
    vendor = handler.vendor
    path = rec.path
    if rec.method == "POST" and path == "/send":
        out = vendor.accept(body)
        rec.accepted = [out["id"]]
        return {"id": out["id"], "status": "queued"}
    if rec.method == "POST" and path == "/bulk":
        results = [vendor.accept(m) for m in body["messages"]]
        rec.accepted = [r["id"] for r in results]
        return {"results": results}
    if rec.method == "GET" and path.startswith("/msg/"):
        msg = vendor.messages.get(path[5:])
        return {"id": msg["id"], "status": msg["status"]} if msg else None
    if rec.method == "GET" and path.startswith("/ref/"):
        ref = path[5:]
        return {"found": [{"id": m["id"], "status": m["status"]} for m in vendor.taken() if m["ref"] == ref]}
    return None


def ok(handler: _Handler, rec: Received, body: Any) -> None:
    out = process(handler, rec, body)
    rec.processed = True
    if out is None:
        handler.answer(404, {"error": "no such thing"})
    else:
        handler.answer(200, out)


def answer_with(transform: Callable[[Any], Any], status: int = 200) -> Behaviour:
    """The vendor processes the request, then answers ``transform(its answer)``."""
    def run(handler: _Handler, rec: Received, body: Any) -> None:
        out = process(handler, rec, body)
        rec.processed = True
        handler.answer(status, transform(out))
    return run


def refuse(status: int, headers: dict[str, str] | None = None) -> Behaviour:
    """Answers ``status`` without processing."""
    def run(handler: _Handler, rec: Received, body: Any) -> None:
        handler.answer(status, {"error": f"refused {status}"}, headers)
    return run


def after_processing(status: int, raw: bytes = b'{"error": "oops"}') -> Behaviour:
    def run(handler: _Handler, rec: Received, body: Any) -> None:
        process(handler, rec, body)
        rec.processed = True
        handler.answer(status, raw)
    return run


def cut(handler: _Handler, rec: Received, body: Any) -> None:
    """Processes, sends the head and half the body, then closes the connection."""
    out = json.dumps(process(handler, rec, body)).encode()
    rec.processed = True
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(out)))
    handler.end_headers()
    handler.wfile.write(out[: len(out) // 2])
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def hang(seconds: float) -> Behaviour:
    """Processes, then says nothing for ``seconds`` (or until the vendor stops), then answers."""
    def run(handler: _Handler, rec: Received, body: Any) -> None:
        out = process(handler, rec, body)
        rec.processed = True
        handler.vendor.release.wait(seconds)
        try:
            handler.answer(200, out)
        except OSError:
            pass
    return run


# -- the plugin ------------------------------------------------------------------------------

class LoopProvider(Provider):
    """The loop vendor's adapter, as the docs describe."""

    name = "loopsms"
    default_base_url = "http://127.0.0.1:1"
    capabilities = Capabilities(bulk=True, max_batch=3, status_lookup=True, client_reference=True)

    def authenticate(self, request: httpx.Request) -> None:
        request.headers["X-Loop-Key"] = self.settings.secret("api_key") or ""

    def error_message(self, response: httpx.Response) -> str:
        try:
            return str(response.json().get("error", ""))
        except ValueError:
            return ""

    def _item(self, msg: OutboundMessage) -> dict[str, Any]:
        return {"to": msg.to, "text": msg.text, "ref": msg.message_id}

    def _result(self, msg: OutboundMessage, item: Any, response: httpx.Response) -> SendResult:
        item = self.expect_object(item, response, "send result")
        status = item.get("status")
        if status not in _STATUS or not isinstance(item.get("id"), str):
            raise self.malformed("unexpected send result", response)
        return SendResult(to=msg.to, status=_STATUS[status], raw_status=status, provider_message_id=item["id"])

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        response = yield from self.call_ok(self.request("POST", "/send", json=self._item(msg)))
        return self._result(msg, self.json_object(response), response)

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        response = yield from self.call_ok(self.request("POST", "/bulk", json={
            "messages": [self._item(m) for m in msgs]}))
        data = self.json_object(response)
        rows = self.expect_rows(data.get("results"), response, "results")
        by_ref = {row.get("ref"): row for row in rows}
        out = []
        for m in msgs:
            row = by_ref.get(m.message_id)
            if row is None:  # the vendor did not mention it: unknown (the docs' rule)
                out.append(SendResult(to=m.to, status=Status.UNKNOWN, error="not in the vendor's answer"))
            else:
                out.append(self._result(m, row, response))
        return out

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        response = yield from self.call_ok(self.request("GET", f"/msg/{result.provider_message_id}"))
        data = self.json_object(response)
        return DeliveryReport(provider=self.instance_name, provider_message_id=str(data["id"]),
                              status=_STATUS[data["status"]], raw_status=data["status"])

    def find_by_reference(self, message_id: str, to: str) -> Operation[DeliveryReport | None]:
        response = yield from self.call_ok(self.request("GET", f"/ref/{message_id}"))
        found = self.expect_rows(self.json_object(response).get("found"), response, "found")
        if not found:
            return None
        return DeliveryReport(provider=self.instance_name, provider_message_id=str(found[0]["id"]),
                              status=_STATUS[found[0]["status"]], raw_status=found[0]["status"])


@hookimpl
def register_providers(register: Any) -> None:
    register(LoopProvider)


def settings(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"plugin": "loopsms", "base_url": base_url, "credentials": {"api_key": API_KEY},
            "timeout": 2.0, **extra}


def config(base_url: str, *, plugin: str = "loopsms", providers: dict[str, Any] | None = None,
           **extra: Any) -> dict[str, Any]:
    provs = providers if providers is not None else {"loop": {**settings(base_url, **extra), "plugin": plugin}}
    return {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": provs}}}


def numbers(n: int, start: int = 0) -> Sequence[str]:
    return [f"+23480123{start + i:05d}" for i in range(n)]


def create_emulator() -> Any:
    """The loop vendor as an ASGI app wrapped with ``emulator_app`` (for the conformance kit)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from smsgate.testing.emulator import emulator_app

    ids = itertools.count(1)
    messages: dict[str, dict[str, Any]] = {}

    def authorised(request: Request) -> bool:
        return request.headers.get("x-loop-key") == API_KEY

    def accept(item: dict[str, Any]) -> dict[str, Any]:
        mid = f"L{next(ids)}"
        messages[mid] = {"id": mid, "to": item["to"], "ref": item.get("ref"), "status": "queued"}
        return {"ref": item.get("ref"), "id": mid, "status": "queued"}

    async def send(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "bad key"}, status_code=401)
        out = accept(await request.json())
        return JSONResponse({"id": out["id"], "status": "queued"})

    async def bulk(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "bad key"}, status_code=401)
        body = await request.json()
        return JSONResponse({"results": [accept(m) for m in body["messages"]]})

    async def get(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "bad key"}, status_code=401)
        msg = messages.get(request.path_params["id"])
        if msg is None:
            return JSONResponse({"error": "no such message"}, status_code=404)
        return JSONResponse({"id": msg["id"], "status": msg["status"]})

    async def by_ref(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "bad key"}, status_code=401)
        ref = request.path_params["ref"]
        return JSONResponse({"found": [{"id": m["id"], "status": m["status"]}
                                       for m in messages.values() if m["ref"] == ref]})

    app = Starlette(routes=[Route("/send", send, methods=["POST"]), Route("/bulk", bulk, methods=["POST"]),
                            Route("/msg/{id}", get), Route("/ref/{ref}", by_ref)])
    return emulator_app(app, error_body=lambda status, message: {"error": message}, vendor=messages)
