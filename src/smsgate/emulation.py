"""Building blocks shared by every provider emulator (runtime code: ``smsgate sandbox``
and ``smsgate demo`` serve the emulators; tests use it through :mod:`smsgate.testing`).

An emulator is a Starlette app speaking one vendor's API. Wrapping it with
:func:`emulator_app` adds, without touching the vendor routes:

* a record of every request received (``GET /_emulator/requests``), so tests can
  prove what reached the "vendor" (e.g. that nobody got a message twice); each
  entry says which fault (if any) was applied to it, whether the vendor processed
  it and what HTTP status the client was answered;
* fault injection (``POST /_emulator/faults``, listed by ``GET``, cleared by
  ``DELETE``): latency, HTTP errors (5xx, 429 with ``Retry-After``), hanging
  responses (client timeouts), malformed bodies, connection resets (before or after
  the vendor acted), slowly dripped answers (read timeouts mid-body) and dropped
  callbacks. Each rule can target a path prefix and a method, fire ``count`` times,
  fire for a share of requests (``probability``, reproducible with ``seed``) and be
  active only in a time window (``after``, ``duration``); see :class:`FaultRule`;
* ``POST /_emulator/reset`` clears the record and the faults.

:class:`EmulatorControl` drives those endpoints from tests over HTTP;
in-process code can use :class:`EmulatorState` directly (``app.state.emulator``).
``smsgate sandbox --fault SPEC`` takes rules in the compact syntax of
:meth:`FaultRule.parse`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import httpx

from smsgate.errors import ValidationError

__all__ = [
    "CALLBACK_CONCURRENCY",
    "FAULT_KINDS",
    "ASGIApp",
    "CallbackPoster",
    "EmulatorControl",
    "EmulatorState",
    "FaultRule",
    "RecordedRequest",
    "callback_url",
    "emulator_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Every fault kind, in the order the docs list them.
FAULT_KINDS = ("status", "latency", "hang", "malformed", "reset", "drip", "drop_callbacks")

#: The kinds whose ``process`` flag means something (the others always, or never, reach the vendor).
_PROCESS_KINDS = ("status", "malformed", "reset")
#: The fields a kind uses beyond the common ones (path, method, count, probability, seed, after, duration).
_KIND_FIELDS = {
    "status": ("status", "retry_after", "process"),
    "latency": ("delay",),
    "hang": ("delay",),
    "malformed": ("process",),
    "reset": ("process",),
    "drip": ("delay", "chunk"),
    "drop_callbacks": (),
}
#: The keys of a spec (:meth:`FaultRule.parse`), in the order :meth:`FaultRule.spec` writes them.
_SPEC_KEYS = ("kind", "status", "retry_after", "delay", "chunk", "process", "path", "method", "count",
              "probability", "seed", "after", "duration")
_INT_KEYS = ("status", "count", "seed", "chunk")
_FLOAT_KEYS = ("retry_after", "delay", "probability", "after", "duration")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: float) -> str:
    """``value`` as a spec writes it: ``2`` rather than ``2.0``, otherwise exact (``repr``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass
class FaultRule:
    """One injected fault.

    ``kind``:

    * ``"status"``: answer ``status`` (default 500) with the vendor's error body,
      optionally with ``retry_after`` (a ``Retry-After`` header);
    * ``"latency"``: wait ``delay`` seconds, then the vendor answers normally;
    * ``"hang"``: wait ``delay`` seconds (default 30: a client timeout), then the
      vendor processes the request (its answer goes nowhere if the client left);
    * ``"malformed"``: answer 200 with an HTML body;
    * ``"reset"``: close the connection without any HTTP answer (a TCP reset: the
      client's read fails with ``ECONNRESET``, which httpx raises as
      :class:`httpx.ReadError`; see :func:`emulator_app`);
    * ``"drip"``: the vendor answers, but its body goes out ``chunk`` bytes at a time
      (default 16), the first piece at once and each next one ``delay`` seconds
      (default 1) later, so a client read timeout shorter than ``delay`` fires mid-body;
    * ``"drop_callbacks"``: emulators skip webhook callbacks while it is active
      (each skipped callback is one use of ``count``).

    ``process``: for ``status``, ``malformed`` and ``reset``, the vendor handles the
    request first and the fault replaces its answer (the vendor acted but the client
    cannot know); without it the vendor never sees the request. ``latency``,
    ``hang`` and ``drip`` always reach the vendor.

    Which requests: ``path`` (a prefix, case-insensitive) and ``method`` narrow the
    rule; ``after`` (seconds from when the emulator added the rule) and ``duration``
    (seconds from then; ``None`` = no end) box it in time; ``probability`` (0..1)
    applies it to that share of the requests it matches while active, decided by a
    :class:`random.Random` seeded with ``seed``: the n-th matching request meets the
    n-th draw, so a run with the same seed and the same requests in the same order
    gets the same faults (without a seed the emulator picks one and lists it in
    ``GET /_emulator/faults``). ``count``: how many times it fires (``None`` = until
    reset); a rule whose window closed, or whose count is spent, is dropped.
    Rules are independent (each draws for every request it matches); the first one
    in the order they were added that fires is the one applied.

    ``added_at`` is set by the emulator (epoch seconds, the clock of
    :attr:`RecordedRequest.at`) when it adds the rule. Invalid values raise
    :class:`~smsgate.errors.ValidationError` naming the field.
    """

    kind: str = "status"
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    path: str | None = None
    method: str | None = None
    count: int | None = 1
    process: bool = False
    probability: float | None = None
    seed: int | None = None
    after: float = 0.0
    duration: float | None = None
    chunk: int = 16
    added_at: float | None = None
    _rng: random.Random | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def bad(name: str, message: str) -> ValidationError:
            return ValidationError(message, field=name, value=getattr(self, name), location="fault rule")

        if self.kind not in FAULT_KINDS:
            raise bad("kind", f"unknown fault kind {self.kind!r} (kinds: {', '.join(FAULT_KINDS)})")
        if not _is_int(self.status) or not 100 <= self.status <= 599:
            raise bad("status", f"must be an HTTP status code 100..599, not {self.status!r}")
        for name in ("retry_after", "delay", "after", "duration"):
            value = getattr(self, name)
            if value is None and name in ("retry_after", "duration"):
                continue
            if not _is_number(value) or value < 0 or (name == "duration" and value == 0):
                floor = "above 0" if name == "duration" else "0 or more"
                raise bad(name, f"must be a number of seconds {floor}, not {value!r}")
        if self.path is not None and (not isinstance(self.path, str) or not self.path.startswith("/")):
            raise bad("path", f"must be a path prefix starting with '/', not {self.path!r}")
        if self.method is not None and (not isinstance(self.method, str) or not self.method.isalpha()):
            raise bad("method", f"must be an HTTP method such as POST, not {self.method!r}")
        if self.count is not None and (not _is_int(self.count) or self.count < 1):
            raise bad("count", f"must be a whole number 1 or more (or None: no limit), not {self.count!r}")
        if not isinstance(self.process, bool):
            raise bad("process", f"must be true or false, not {self.process!r}")
        if self.probability is not None and (not _is_number(self.probability) or not 0 <= self.probability <= 1):
            raise bad("probability", f"must be a number from 0 to 1 (0.2 = 20% of requests), not {self.probability!r}")
        if self.seed is not None and not _is_int(self.seed):
            raise bad("seed", f"must be a whole number, not {self.seed!r}")
        if not _is_int(self.chunk) or self.chunk < 1:
            raise bad("chunk", f"must be a number of bytes 1 or more, not {self.chunk!r}")
        if self.added_at is not None and not _is_number(self.added_at):
            raise bad("added_at", f"must be epoch seconds, not {self.added_at!r}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def error(cls, status: int = 500, *, retry_after: float | None = None, process: bool = False,
              **when: Any) -> FaultRule:
        """Answer ``status`` (after the vendor processed the request if ``process``).

        ``when``: ``path``, ``method``, ``count``, ``probability``, ``seed``, ``after``,
        ``duration`` (as the fields). E.g. down for 10 s starting 3 s from now:
        ``FaultRule.error(503, after=3, duration=10, count=None)``.
        """
        return cls(kind="status", status=status, retry_after=retry_after, process=process, **when)

    @classmethod
    def latency(cls, delay: float, **when: Any) -> FaultRule:
        """Wait ``delay`` seconds, then answer normally."""
        return cls(kind="latency", delay=delay, **when)

    @classmethod
    def hang(cls, delay: float = 30.0, **when: Any) -> FaultRule:
        """Wait ``delay`` seconds before the vendor processes the request (a client timeout)."""
        return cls(kind="hang", delay=delay, **when)

    @classmethod
    def malformed(cls, *, process: bool = False, **when: Any) -> FaultRule:
        """Answer 200 with an HTML body (after the vendor processed the request if ``process``)."""
        return cls(kind="malformed", process=process, **when)

    @classmethod
    def reset(cls, *, process: bool = False, **when: Any) -> FaultRule:
        """Close the connection without an answer: before the vendor saw the request, or
        after it acted on it (``process=True``)."""
        return cls(kind="reset", process=process, **when)

    @classmethod
    def drip(cls, delay: float = 1.0, *, chunk: int = 16, **when: Any) -> FaultRule:
        """Send the vendor's answer ``chunk`` bytes at a time, ``delay`` seconds apart."""
        return cls(kind="drip", delay=delay, chunk=chunk, **when)

    @classmethod
    def drop_callbacks(cls, **when: Any) -> FaultRule:
        """Skip webhook callbacks (``count=None``: every one while the rule is active)."""
        return cls(kind="drop_callbacks", **when)

    @classmethod
    def from_dict(cls, data: Any) -> FaultRule:
        """A rule from its JSON form (:meth:`to_dict`); unknown keys are a ``ValidationError``."""
        if not isinstance(data, dict):
            raise ValidationError(f"a fault rule is a JSON object, not {type(data).__name__}", location="fault rule")
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"unknown field(s) {', '.join(map(repr, unknown))} (fields: {', '.join(sorted(known))})",
                                  location="fault rule")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The rule's JSON form (what ``/_emulator/faults`` takes and lists)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    # ------------------------------------------------------------------ the spec syntax
    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """A rule from the compact syntax of ``smsgate sandbox --fault``.

        Comma-separated items: a kind (``status``, ``latency``, ``hang``, ``malformed``,
        ``reset``, ``drip``, ``drop_callbacks``; ``status=CODE`` alone implies
        ``status``), the flag ``process``, and ``key=value`` for the fields
        (``status``, ``retry_after``, ``delay``, ``chunk``, ``process``, ``path``,
        ``method``, ``count``, ``probability`` (also as ``20%``), ``seed``, ``after``,
        ``duration``). Unlike the Python default, ``count`` is unlimited unless given.
        Keys and kinds are case-insensitive; a ``path`` cannot contain a comma.
        Examples: ``status=503,probability=0.2,seed=7``; ``reset,after=5,duration=10,path=/api``;
        ``reset,process,count=1``; ``drip,delay=2,chunk=8``.

        A bad spec raises :class:`~smsgate.errors.ValidationError` naming the bad part.
        """
        where = f"fault {spec!r}"
        if not spec.strip():
            raise ValidationError("empty; e.g. 'status=503,probability=0.2'", location=where)
        raw: dict[str, str] = {}
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                raise ValidationError("empty item (two commas in a row, or a comma at an end)", location=where)
            if "=" in item:
                key, _, value = item.partition("=")
                key, value = key.strip().lower().replace("-", "_"), value.strip()
            elif item.lower() == "process":
                key, value = "process", "true"
            elif item.lower() in FAULT_KINDS:
                key, value = "kind", item.lower()
            else:
                raise ValidationError(f"{item!r} is neither a fault kind ({', '.join(FAULT_KINDS)}) "
                                      "nor key=value", location=where)
            if key not in _SPEC_KEYS:
                raise ValidationError(f"unknown key {key!r} (keys: {', '.join(_SPEC_KEYS)})", location=where)
            if key in raw:
                raise ValidationError("given twice", field=key, location=where)
            raw[key] = value
        kind = raw.pop("kind", None)
        if kind is None:
            if "status" not in raw:
                raise ValidationError(f"no fault kind: start with one of {', '.join(FAULT_KINDS)}, "
                                      "or give status=CODE", location=where)
            kind = "status"
        if kind not in FAULT_KINDS:
            raise ValidationError(f"unknown fault kind {kind!r} (kinds: {', '.join(FAULT_KINDS)})",
                                  field="kind", location=where)
        values: dict[str, Any] = {"count": None}
        for key, value in raw.items():
            if key in ("status", "retry_after", "delay", "chunk", "process") and key not in _KIND_FIELDS[kind]:
                uses = [k for k, f in _KIND_FIELDS.items() if key in f]
                raise ValidationError(f"applies to kind {' and '.join(uses)} only, not {kind}", field=key,
                                      location=where)
            values[key] = _spec_value(key, value, where)
        try:
            return cls(kind=kind, **values)
        except ValidationError as exc:
            raise ValidationError(exc.reason, field=exc.field, value=exc.value, location=where) from None

    def spec(self) -> str:
        """The rule in the syntax of :meth:`parse` (``FaultRule.parse(rule.spec()) == rule``
        for a rule that sets only fields its kind uses)."""
        items: list[str] = [] if self.kind == "status" else [self.kind]
        uses = _KIND_FIELDS[self.kind]
        if "status" in uses:
            items.append(f"status={self.status}")
        if "retry_after" in uses and self.retry_after is not None:
            items.append(f"retry_after={_num(self.retry_after)}")
        if "delay" in uses and self.delay:
            items.append(f"delay={_num(self.delay)}")
        if "chunk" in uses and self.chunk != 16:
            items.append(f"chunk={self.chunk}")
        if "process" in uses and self.process:
            items.append("process")
        if self.path is not None:
            items.append(f"path={self.path}")
        if self.method is not None:
            items.append(f"method={self.method}")
        if self.count is not None:
            items.append(f"count={self.count}")
        if self.probability is not None:
            items.append(f"probability={_num(self.probability)}")
        if self.seed is not None:
            items.append(f"seed={self.seed}")
        if self.after:
            items.append(f"after={_num(self.after)}")
        if self.duration is not None:
            items.append(f"duration={_num(self.duration)}")
        return ",".join(items)

    # ------------------------------------------------------------------ matching
    def matches(self, method: str, path: str) -> bool:
        """Whether the rule targets this request (by method and path; not time or chance)."""
        if self.kind == "drop_callbacks":
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path or path.lower().startswith(self.path.lower())

    def window(self) -> tuple[float, float]:
        """When the rule is active: ``(from, until)`` in epoch seconds (``until`` may be ``inf``);
        ``(inf, inf)`` before the emulator added it."""
        if self.added_at is None:
            return math.inf, math.inf
        start = self.added_at + self.after
        return start, math.inf if self.duration is None else start + self.duration

    def _fires(self) -> bool:
        """One draw: whether the rule applies to the request it matches (``probability``)."""
        if self.probability is None:
            return True
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng.random() < self.probability


def _spec_value(key: str, value: str, where: str) -> Any:
    """A spec's ``key=value`` converted to the field's type."""
    def bad(expected: str) -> ValidationError:
        return ValidationError(f"{value!r} is not {expected}", field=key, value=value, location=where)

    if key in _INT_KEYS:
        try:
            return int(value)
        except ValueError:
            raise bad("a whole number") from None
    if key in _FLOAT_KEYS:
        text, scale = (value[:-1], 100.0) if key == "probability" and value.endswith("%") else (value, 1.0)
        try:
            number = float(text) / scale
        except ValueError:
            raise bad("a number" + (" (0.2 or 20%)" if key == "probability" else " of seconds")) from None
        if not math.isfinite(number):
            raise bad("a finite number")
        return number
    if key == "process":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise bad("true or false")
    if key == "method":
        return value.upper()
    return value


@dataclass
class RecordedRequest:
    """A request the emulator received.

    ``fault``: the kind of the fault applied to it (``None``: none). ``processed``:
    whether the vendor app handled it (an injected error or reset without
    ``process`` never reaches it; a ``hang`` reaches it once its delay is over).
    ``status``: the HTTP status the client was answered (``None``: no answer, e.g. a
    reset, or not yet). Counting what the vendor acted on means counting requests
    with ``processed`` (and the vendor's own success status).
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    at: float = field(default_factory=time.time)
    fault: str | None = None
    processed: bool = False
    status: int | None = None

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

    def clear_faults(self) -> None:
        """Forget the fault rules (the request log stays)."""
        with self._lock:
            self.faults.clear()

    def add_fault(self, rule: FaultRule) -> FaultRule:
        """Activate a fault rule (its ``after``/``duration`` count from now); returns it, with
        ``added_at`` set and, for a ``probability`` without a ``seed``, the seed picked."""
        with self._lock:
            rule.added_at = time.time()
            if rule.probability is not None and rule.seed is None:
                rule.seed = random.SystemRandom().randrange(2**32)
            rule._rng = None
            self.faults.append(rule)
        return rule

    def active_faults(self) -> list[FaultRule]:
        """The rules still in force (closed windows and spent counts dropped)."""
        with self._lock:
            self._expire(time.time())
            return list(self.faults)

    def _expire(self, now: float) -> None:
        self.faults[:] = [r for r in self.faults if r.window()[1] > now and (r.count is None or r.count > 0)]

    def _take(self, rule_matches: Callable[[FaultRule], bool], now: float) -> FaultRule | None:
        """The first rule that fires for this request (one draw per matching active rule),
        consuming one use of it. Call with the lock held."""
        self._expire(now)
        chosen = None
        for rule in self.faults:
            start, end = rule.window()
            if rule_matches(rule) and start <= now < end and rule._fires() and chosen is None:
                chosen = rule
        if chosen is not None and chosen.count is not None:
            chosen.count -= 1
            if chosen.count <= 0:
                self.faults.remove(chosen)
        return chosen

    def take_fault(self, method: str, path: str, now: float | None = None) -> FaultRule | None:
        """The first rule that fires for this request, consuming one use of it."""
        with self._lock:
            return self._take(lambda rule: rule.matches(method, path), time.time() if now is None else now)

    def admit(self, req: RecordedRequest) -> FaultRule | None:
        """Decide the fault for ``req`` (at ``req.at``) and append it to the log, as one step:
        the log's order is the order of the decisions."""
        with self._lock:
            rule = self._take(lambda r: r.matches(req.method, req.path), req.at)
            req.fault = rule.kind if rule is not None else None
            self.requests.append(req)
            return rule

    def callbacks_dropped(self) -> bool:
        """Whether the next webhook callback is to be skipped (a ``drop_callbacks`` rule fires)."""
        with self._lock:
            if not self.faults:
                return False
            return self._take(lambda rule: rule.kind == "drop_callbacks", time.time()) is not None

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


class EmulatedReset(ConnectionResetError):
    """Raised by a ``reset`` fault when the server does not expose its connection: the
    server then drops the connection mid-answer (see :func:`emulator_app`)."""


async def _reset_connection(receive: Receive, send: Send) -> None:
    """Drop the client's connection without an HTTP answer.

    ASGI has no "abort" message, and uvicorn answers 500 to an app that raises before
    starting its response. So the connection is reached through the server: uvicorn's
    ``send`` is a method of its request cycle, which holds the asyncio transport. The
    socket gets ``SO_LINGER`` 0 and is aborted: the kernel sends a TCP RST, and the
    client's read fails with ``ECONNRESET`` (httpx: :class:`httpx.ReadError`; aiohttp:
    ``ClientOSError``). Then this waits for the server to see the disconnect, so it
    neither answers nor logs anything.

    On a server without that, it starts a 200 answer promising a body and raises
    :class:`EmulatedReset`: the server logs it and closes the connection mid-answer
    (httpx: :class:`httpx.RemoteProtocolError`, incomplete body).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not callable(getattr(transport, "abort", None)):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise EmulatedReset("injected connection reset")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    with contextlib.suppress(asyncio.TimeoutError):
        while (await asyncio.wait_for(receive(), 5.0))["type"] != "http.disconnect":
            pass


def emulator_app(
    app: ASGIApp,
    state: EmulatorState | None = None,
    error_body: Callable[[int, str], Any] | None = None,
    vendor: object | None = None,
) -> ASGIApp:
    """Wrap a vendor app with request recording, fault injection and control routes.

    ``error_body(status, message)`` shapes injected error bodies like the vendor's.
    ``vendor`` is the emulated vendor's own state object (what the account holds:
    messages, contacts, tokens); every emulator passes it, so tests reach it the same
    way for every vendor: ``app.vendor`` (also ``app.state.vendor`` on the wrapped
    Starlette app). The recording/fault state is ``app.state_obj`` (and
    ``app.state.emulator``).

    What a client sees (httpx over loopback, served by uvicorn as ``LiveServer`` and
    ``smsgate sandbox`` do): ``status`` and ``malformed`` are ordinary answers;
    ``hang`` and ``drip`` are :class:`httpx.ReadTimeout` once the client's read
    timeout is shorter than the delay (for ``drip`` after the status line, the headers
    and the first piece of the body arrived); ``reset`` is :class:`httpx.ReadError`
    (``[Errno 104] Connection reset by peer``), with no status line at all, whether
    the vendor processed the request or not: the client cannot tell the two apart;
    the request record can (``processed``).
    """
    st = state or EmulatorState()
    make_error = error_body or (lambda status, message: {"message": message})
    inner_state = getattr(app, "state", None)
    if inner_state is not None:
        inner_state.emulator = st
        inner_state.vendor = vendor

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
            try:
                spec = json.loads(body or b"{}")
                rules = [FaultRule.from_dict(item) for item in (spec if isinstance(spec, list) else [spec])]
            except (ValueError, TypeError) as exc:  # ValidationError is a ValueError, as is bad JSON
                await send_simple(send, *_json_response(400, {"message": str(exc)}))
                return
            added = [st.add_fault(rule).to_dict() for rule in rules]
            await send_simple(send, *_json_response(200, {"ok": True, "rules": added}))
        elif path == "/_emulator/faults" and method == "GET":
            await send_simple(send, *_json_response(200, [r.to_dict() for r in st.active_faults()]))
        elif path == "/_emulator/faults" and method == "DELETE":
            st.clear_faults()
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
        req = RecordedRequest(
            method=scope["method"], path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers, body=body.decode("utf-8", "replace"),
        )
        rule = st.admit(req)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def answer(message: Message) -> None:  # to the client, noting the status
            if message["type"] == "http.response.start":
                req.status = message["status"]
            await send(message)

        async def vendor(to: Send) -> None:
            req.processed = True
            await app(scope, replay, to)

        if rule is None:
            await vendor(answer)
            return
        if rule.kind in ("latency", "hang"):
            await asyncio.sleep(rule.delay or (30.0 if rule.kind == "hang" else 0.0))
            await vendor(answer)
            return
        if rule.kind == "drip":
            start: Message = {}
            parts: list[bytes] = []

            async def keep(message: Message) -> None:
                if message["type"] == "http.response.start":
                    start.update(message)
                elif message["type"] == "http.response.body":
                    parts.append(message.get("body", b""))

            await vendor(keep)
            await answer(start)
            whole = b"".join(parts)
            pieces = [whole[i:i + rule.chunk] for i in range(0, len(whole), rule.chunk)] or [b""]
            for i, piece in enumerate(pieces):
                if i:
                    await asyncio.sleep(rule.delay or 1.0)
                await send({"type": "http.response.body", "body": piece, "more_body": i < len(pieces) - 1})
            return
        if rule.process:
            async def discard(message: Message) -> None:
                return None

            await vendor(discard)
        if rule.kind == "reset":
            await _reset_connection(receive, send)
            return
        if rule.kind == "malformed":
            await send_simple(answer, 200, [(b"content-type", b"text/html")], b"<html><body>Bad Gateway</body></html>")
            return
        extra = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
        reason = "Too Many Requests" if rule.status == 429 else "injected fault"
        await send_simple(answer, *_json_response(rule.status, make_error(rule.status, reason), extra))

    wrapped.state_obj = st  # type: ignore[attr-defined]
    wrapped.vendor = vendor  # type: ignore[attr-defined]
    return wrapped


def callback_url(webhook: str, tenant: str, instance: str, token: str | None = None) -> str:
    """The URL an emulator posts ``tenant``'s ``instance`` delivery reports to (``smsgate sandbox --webhook``).

    ``webhook`` is where smsgate's webhook app (:func:`smsgate.webhooks.webhook_app`) is
    served: ``/{tenant}/{instance}`` is appended to its path. A URL holding the
    placeholders ``{tenant}`` and/or ``{instance}`` is used as written, with them filled in.
    ``token``: the ``webhook_token`` credential of a vendor that signs nothing; it is added
    to the query as ``token=...`` (where :meth:`smsgate.provider.Provider.check_webhook_token`
    looks), unless the URL already has a ``token``.
    """
    import urllib.parse

    if "{tenant}" in webhook or "{instance}" in webhook:
        url = (webhook.replace("{tenant}", urllib.parse.quote(tenant, safe=""))
               .replace("{instance}", urllib.parse.quote(instance, safe="")))
    else:
        parts = urllib.parse.urlsplit(webhook)
        path = f"{parts.path.rstrip('/')}/{urllib.parse.quote(tenant, safe='')}/{urllib.parse.quote(instance, safe='')}"
        url = urllib.parse.urlunsplit(parts._replace(path=path))
    parts = urllib.parse.urlsplit(url)
    if token and "token" not in urllib.parse.parse_qs(parts.query):
        query = "&".join(q for q in (parts.query, urllib.parse.urlencode({"token": token})) if q)
        url = urllib.parse.urlunsplit(parts._replace(query=query))
    return url


#: Callbacks one emulator has in flight at most; the others wait their turn in
#: :class:`CallbackPoster`. Without a bound they all waited in httpx's connection pool, whose
#: cost grows with its queue: at a campaign's pace (thousands of delivery reports due within a
#: second) a sandbox spent its CPU there, its own API answered after the senders' timeouts
#: (recipients left ``unknown``), and every queued callback timed out unsent.
CALLBACK_CONCURRENCY = 16


class CallbackPoster:
    """How an emulator posts its callbacks (delivery reports, inbound messages) to the app.

    One :class:`httpx.AsyncClient` per event loop, at most ``limit`` posts in flight
    (:data:`CALLBACK_CONCURRENCY`); the rest wait on a semaphore, at no cost, and
    ``timeout`` counts from when a post starts. :meth:`aclose` in the emulator's lifespan.
    """

    def __init__(self, *, limit: int = CALLBACK_CONCURRENCY, timeout: float = 5.0) -> None:
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, not {limit}", field="limit")
        self.limit = limit
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._client: httpx.AsyncClient | None = None

    def _bound(self) -> tuple[asyncio.Semaphore, httpx.AsyncClient]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._slots is None or self._client is None:
            # an app served again on another loop (a new server) starts afresh there
            self._loop, self._slots = loop, asyncio.Semaphore(self.limit)
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._slots, self._client

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST to ``url`` (``kwargs`` as :meth:`httpx.AsyncClient.post`) once a slot is free."""
        slots, client = self._bound()
        async with slots:
            return await client.post(url, **kwargs)

    async def aclose(self) -> None:
        """Close the client of the running loop (the emulator's server stops)."""
        client, self._client, self._slots, self._loop = self._client, None, None, None
        if client is not None:
            with contextlib.suppress(RuntimeError):  # made on a loop that is gone
                await client.aclose()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every control call: building one per call (what ``httpx.request``
    does by default) costs about 0.2 s, which would skew tests that watch the clock."""
    return ssl.create_default_context()


class EmulatorControl:
    """Drive an emulator's ``/_emulator`` endpoints from a test.

    ``ctl.add(FaultRule.reset(process=True, path="/sms"))``, ``ctl.fault(kind="status",
    status=503, count=None)``, ``ctl.requests("/sms", "POST")``, ``ctl.processed("/sms")``.
    Invalid rules raise :class:`~smsgate.errors.ValidationError` before anything is sent.
    ``timeout``: the seconds each call waits for the emulator (60 by default: one in a loaded
    test process took more than 5 s to return a record of thousands of requests).
    """

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, self.base_url + path, json=body, timeout=self.timeout, verify=_tls())
        if resp.status_code == 400:
            raise ValidationError(resp.json().get("message", resp.text), location=f"emulator {self.base_url}")
        resp.raise_for_status()
        return resp.json()

    def reset(self) -> None:
        """Clear the request log and faults."""
        self._call("POST", "/_emulator/reset")

    def fault(self, **rule: Any) -> FaultRule:
        """Add a :class:`FaultRule` (keyword arguments as its fields); returns it as added."""
        return self.add(FaultRule(**rule))[0]

    def add(self, *rules: FaultRule) -> list[FaultRule]:
        """Add rules (in order); returns them as the emulator holds them (``added_at``, ``seed``)."""
        added = self._call("POST", "/_emulator/faults", [r.to_dict() for r in rules])["rules"]
        return [FaultRule.from_dict(item) for item in added]

    def faults(self) -> list[FaultRule]:
        """The rules in force (each with what is left of its ``count``)."""
        return [FaultRule.from_dict(item) for item in self._call("GET", "/_emulator/faults")]

    def clear_faults(self) -> None:
        """Remove every fault rule; the request log stays."""
        self._call("DELETE", "/_emulator/faults")

    def requests(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """Requests received, optionally filtered by path prefix (case-insensitive) and method."""
        out = [RecordedRequest(**item) for item in self._call("GET", "/_emulator/requests")]
        if path:
            out = [r for r in out if r.path.lower().startswith(path.lower())]
        if method:
            out = [r for r in out if r.method == method.upper()]
        return out

    def processed(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """The requests the vendor handled (:attr:`RecordedRequest.processed`), filtered like
        :meth:`requests`: what an exactly-once claim counts."""
        return [r for r in self.requests(path, method) if r.processed]
