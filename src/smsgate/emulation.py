"""Building blocks shared by every provider emulator (runtime code: ``smsgate sandbox``
and ``smsgate demo`` serve the emulators; tests use it through :mod:`smsgate.testing`).

An emulator is a Starlette app speaking one vendor's API. Wrapping it with
:func:`emulator_app` adds, without touching the vendor routes:

* a record of every request received (``GET /_emulator/requests``), so tests can
  prove what reached the "vendor" (e.g. that nobody got a message twice);
* fault injection (``POST /_emulator/faults``): latency, HTTP errors (5xx, 429
  with ``Retry-After``), hanging responses (client timeouts), malformed bodies,
  dropped callbacks; each rule can target a path prefix and a method and fire
  ``count`` times;
* ``POST /_emulator/reset`` clears both.

:class:`EmulatorControl` drives those endpoints from tests over HTTP;
in-process code can use :class:`EmulatorState` directly (``app.state.emulator``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

__all__ = [
    "ASGIApp",
    "EmulatorControl",
    "EmulatorState",
    "FaultRule",
    "RecordedRequest",
    "emulator_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class FaultRule:
    """One injected fault.

    ``kind``: ``"status"`` (answer ``status`` with an error body, optionally with
    ``retry_after``; with ``process=True`` the request is handled first and the
    error replaces its answer: the vendor acted but the client cannot know),
    ``"latency"`` (delay ``delay`` seconds then answer normally), ``"hang"`` (delay
    ``delay`` seconds, default 30, i.e. a client timeout), ``"malformed"``
    (answer 200 with an HTML body), ``"drop_callbacks"`` (emulators skip webhook
    callbacks while it is active).
    ``count``: how many requests it applies to (``None`` = until reset).
    """

    kind: str = "status"
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    path: str | None = None
    method: str | None = None
    count: int | None = 1
    process: bool = False

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule targets this request."""
        if self.kind == "drop_callbacks":
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path or path.lower().startswith(self.path.lower())


@dataclass
class RecordedRequest:
    """A request the emulator received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


class EmulatorState:
    """Request log and fault rules of one emulator (thread-safe)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.faults: list[FaultRule] = []
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget requests and faults."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()

    def add_fault(self, rule: FaultRule) -> None:
        """Activate a fault rule."""
        with self._lock:
            self.faults.append(rule)

    def take_fault(self, method: str, path: str) -> FaultRule | None:
        """The first matching rule, consuming one use of it."""
        with self._lock:
            for rule in self.faults:
                if rule.matches(method, path):
                    if rule.count is not None:
                        rule.count -= 1
                        if rule.count <= 0:
                            self.faults.remove(rule)
                    return rule
        return None

    def callbacks_dropped(self) -> bool:
        """True while a ``drop_callbacks`` rule is active."""
        with self._lock:
            return any(r.kind == "drop_callbacks" for r in self.faults)

    def record(self, req: RecordedRequest) -> None:
        """Append to the request log."""
        with self._lock:
            self.requests.append(req)


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    for k, v in (headers or {}).items():
        hdrs.append((k.lower().encode(), v.encode()))
    return status, hdrs, raw


def emulator_app(
    app: ASGIApp,
    state: EmulatorState | None = None,
    error_body: Callable[[int, str], Any] | None = None,
) -> ASGIApp:
    """Wrap a vendor app with request recording, fault injection and control routes.

    ``error_body(status, message)`` shapes injected error bodies like the vendor's.
    The returned app exposes the state as ``app.state_obj`` and, if the wrapped app
    has a Starlette ``state``, as ``app.state.emulator``.
    """
    st = state or EmulatorState()
    make_error = error_body or (lambda status, message: {"message": message})
    inner_state = getattr(app, "state", None)
    if inner_state is not None:
        inner_state.emulator = st

    async def send_simple(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def control(scope: Scope, body: bytes, send: Send) -> None:
        path = scope["path"]
        method = scope["method"]
        if path == "/_emulator/requests" and method == "GET":
            with st._lock:
                data = [asdict(r) for r in st.requests]
            await send_simple(send, *_json_response(200, data))
        elif path == "/_emulator/faults" and method == "POST":
            spec = json.loads(body or b"{}")
            for item in spec if isinstance(spec, list) else [spec]:
                st.add_fault(FaultRule(**item))
            await send_simple(send, *_json_response(200, {"ok": True}))
        elif path == "/_emulator/reset" and method == "POST":
            st.reset()
            await send_simple(send, *_json_response(200, {"ok": True}))
        else:
            await send_simple(send, *_json_response(404, {"message": "unknown emulator control route"}))

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away mid-request: never processed, never recorded
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if scope["path"].startswith("/_emulator/"):
            await control(scope, body, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        st.record(RecordedRequest(
            method=scope["method"], path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers, body=body.decode("utf-8", "replace"),
        ))
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        rule = st.take_fault(scope["method"], scope["path"])
        if rule is None:
            await app(scope, replay, send)
            return
        if rule.kind in ("latency", "hang"):
            await asyncio.sleep(rule.delay or (30.0 if rule.kind == "hang" else 0.0))
            await app(scope, replay, send)
            return
        if rule.kind == "malformed":
            await send_simple(send, 200, [(b"content-type", b"text/html")], b"<html><body>Bad Gateway</body></html>")
            return
        if rule.process:
            async def discard(message: Message) -> None:
                return None

            await app(scope, replay, discard)
        extra = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
        reason = "Too Many Requests" if rule.status == 429 else "injected fault"
        await send_simple(send, *_json_response(rule.status, make_error(rule.status, reason), extra))

    wrapped.state_obj = st  # type: ignore[attr-defined]
    return wrapped


class EmulatorControl:
    """Drive an emulator's ``/_emulator`` endpoints from a test."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _post(self, path: str, body: Any = None) -> None:
        httpx.post(self.base_url + path, json=body, timeout=5).raise_for_status()

    def reset(self) -> None:
        """Clear the request log and faults."""
        self._post("/_emulator/reset")

    def fault(self, **rule: Any) -> None:
        """Add a :class:`FaultRule` (keyword arguments as its fields)."""
        self._post("/_emulator/faults", rule)

    def requests(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """Requests received, optionally filtered by path prefix (case-insensitive) and method."""
        resp = httpx.get(self.base_url + "/_emulator/requests", timeout=5)
        resp.raise_for_status()
        out = [RecordedRequest(**item) for item in resp.json()]
        if path:
            out = [r for r in out if r.path.lower().startswith(path.lower())]
        if method:
            out = [r for r in out if r.method == method.upper()]
        return out
