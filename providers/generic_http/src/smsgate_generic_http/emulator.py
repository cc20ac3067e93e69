"""An emulator of whatever vendor a :class:`~smsgate_generic_http.options.GenericHttpOptions` describes.

The same option model that drives the adapter drives this Starlette app, so the
conformance kit and ``smsgate sandbox`` run against any configuration:

* the send route is ``request.method`` + the path of ``request.url`` (placeholders
  become path parameters); the status-lookup route likewise;
* every configured header, Basic authentication and ``{secret.NAME}`` anywhere in
  the request must carry the emulator's credentials (401 otherwise);
* the request is read back through its templates (each placeholder's value is
  recovered from the JSON body, form, query or path): no recipient -> 400; with
  ``[bulk]`` each item of the list at ``bulk.items_path`` is one message, and the
  answer carries one result per message at ``bulk.results_path``;
* a send is answered with the first ``response.success_status`` and a body holding
  a new id at ``response.id_path`` and the vendor status at ``response.status_path``;
  errors carry their message at ``response.error_path``;
* a message is ``submitted`` at once, ``sent`` after half of ``delivery_delay`` and
  ``delivered`` after it (a failure the map names, e.g. ``failed``, for numbers ending in 9), each written as the
  vendor string the ``status_map`` gives that neutral status (a stage the map has no
  string for is skipped); with ``webhook_url`` and ``[webhook]`` options each change
  is POSTed there, shaped by the webhook paths and carrying the shared token.

Without options it emulates :data:`SANDBOX_OPTIONS`, an invented JSON API with bearer
auth (what ``smsgate sandbox`` and the demo serve). State lives in the app instance.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hmac
import itertools
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate.emulation import CallbackPoster, emulator_app
from smsgate.lifecycle import Status
from smsgate_generic_http.options import GenericHttpOptions
from smsgate_generic_http.wire import SECRET_PREFIX, Template

__all__ = ["SANDBOX_CREDENTIALS", "SANDBOX_OPTIONS", "SANDBOX_SETTINGS", "GenericEmulator", "create_app"]

log = logging.getLogger("smsgate_generic_http.emulator")

#: Credentials the emulator accepts by default (``smsgate sandbox`` and the demo).
SANDBOX_CREDENTIALS: dict[str, str] = {
    "api_key": "sandbox-generic-key-0001",
    "webhook_token": "sandbox-generic-hook-token",
}

#: The invented vendor the sandbox serves: a JSON API with a bearer key, a list of messages
#: per request (bulk), nested ids, a status lookup and token-checked delivery callbacks.
SANDBOX_OPTIONS: dict[str, Any] = {
    "headers": {"Authorization": "Bearer {secret.api_key}"},
    "request": {
        "method": "POST",
        "url": "/v1/messages",
        "json": {"messages": [{"to": "{to}", "body": "{text}", "from": "{sender}", "client_ref": "{message_id}"}]},
    },
    "response": {
        "success_status": [201],
        "id_path": "data.messages.0.id",
        "status_path": "data.messages.0.status",
        "error_path": "error.message",
    },
    "status_map": {"accepted": "submitted", "sent": "sent", "delivered": "delivered", "failed": "failed",
                   "expired": "expired"},
    "status_lookup": {"url": "/v1/messages/{id}", "status_path": "data.status"},
    "bulk": {"max_batch": 100, "items_path": "messages", "results_path": "data.messages", "id_path": "id",
             "status_path": "status"},
    "check": {"url": "/v1/account", "senders_path": "data.senders", "sender_field": "name"},
    "webhook": {"id_path": "message_id", "status_path": "status", "timestamp_path": "timestamp", "to_path": "to",
                "token": "{secret.webhook_token}", "token_header": "X-Webhook-Token"},
}

#: Provider settings the sandbox needs besides credentials: the options above.
SANDBOX_SETTINGS: dict[str, Any] = {"options": SANDBOX_OPTIONS}

_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
_PROGRESS = (Status.SUBMITTED, Status.SENT)


class _Mismatch(Exception):
    """The request does not fit the templates (400), or carries wrong credentials (401)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Message:
    id: str
    to: str
    text: str
    sender: str | None
    created: float
    final: Status

    def status(self, now: float, delay: float) -> Status:
        if now >= self.created + delay:
            return self.final
        if now >= self.created + delay / 2:
            return Status.SENT
        return Status.SUBMITTED


def _route_path(url: Template) -> tuple[str, list[str]]:
    """A Starlette route path for a URL template, and the placeholder of each path parameter."""
    source = url.source
    path_parts: list[str] = []
    names: list[str] = []
    for part in url.parts:
        if isinstance(part, str):
            path_parts.append(part)
        else:
            path_parts.append(f"{{p{len(names)}}}")
            names.append(part[0])
    path = "".join(path_parts)
    if source.startswith(("http://", "https://")):
        path = urllib.parse.urlsplit(path).path
    return path or "/", names


class GenericEmulator:
    """The state and behaviour of one emulated vendor (thread-safe)."""

    def __init__(self, options: GenericHttpOptions, credentials: Mapping[str, str], delivery_delay: float,
                 webhook_url: str | None) -> None:
        self.opts = options
        self.credentials = dict(credentials)
        self.delivery_delay = max(0.0, delivery_delay)
        self.webhook_url = webhook_url
        #: the sender IDs the ``[check]`` route lists as registered
        self.senders: list[str] = ["SMSGATE"]
        #: numbers (digits) on the vendor's suppression list: see :meth:`suppression`
        self.suppressed: set[str] = set()
        self.messages: dict[str, _Message] = {}
        self.callbacks: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._poster = CallbackPoster()
        self.control: Any = None

    # ------------------------------------------------------------ vendor words
    def vendor_status(self, status: Status) -> str | None:
        """The first status-map string meaning ``status`` (``None`` if the map has none)."""
        for key, value in self.opts.status_map.items():
            if value == status:
                return key
        return None

    def failure_status(self) -> Status:
        """The final status of a failing number: the first failure the status map has a word for."""
        for status in (Status.FAILED, Status.UNDELIVERED, Status.REJECTED, Status.EXPIRED):
            if self.vendor_status(status) is not None:
                return status
        return Status.FAILED

    def shown_status(self, msg: _Message, now: float) -> str:
        """The vendor string of a message now: its stage, or the latest earlier stage the map names."""
        status = msg.status(now, self.delivery_delay)
        stages = [*_PROGRESS, msg.final]
        for stage in reversed(stages[: stages.index(status) + 1] if status in stages else stages[:1]):
            word = self.vendor_status(stage)
            if word is not None:
                return word
        return self.vendor_status(Status.QUEUED) or "accepted"

    def error_body(self, status: int, message: str) -> Any:
        """An error body with ``message`` at ``response.error_path``."""
        path = self.opts.response.error_path
        return path.set({}, message) if path is not None and path.steps else {"message": message}

    def error(self, status: int, message: str) -> JSONResponse:
        return JSONResponse(self.error_body(status, message), status_code=status)

    def suppression(self) -> str:
        """The code the vendor refuses a suppressed number with: the first of
        ``response.opted_out_codes`` (``"opted_out"`` without one)."""
        codes = self.opts.response.opted_out_codes
        return codes[0] if codes else "opted_out"

    def suppression_error(self, index: int) -> JSONResponse:
        """HTTP 400 for a request to a suppressed number, its code at ``response.error_code_path``."""
        body = self.error_body(400, f"message {index}: the recipient opted out")
        path = self.opts.response.error_code_path
        if path is not None and path.steps:
            body = path.set(body, self.suppression())
        return JSONResponse(body, status_code=400)

    # ------------------------------------------------------------ reading requests
    def secret(self, name: str) -> str:
        value = self.credentials.get(name)
        if value is None:
            raise _Mismatch(401, f"no credential {name!r} is known")
        return value

    def check_auth(self, request: Request) -> None:
        """The configured headers and Basic authentication, with the emulator's credentials."""
        for name, template in self.opts.headers.items():
            expected = str(template.render({}, self.secret))
            given = request.headers.get(name)
            if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
                raise _Mismatch(401, "invalid or missing credentials")
        auth = self.opts.basic_auth
        if auth is not None:
            pair = f"{auth.username.render({}, self.secret)}:{auth.password.render({}, self.secret)}"
            expected = "Basic " + base64.b64encode(pair.encode()).decode()
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise _Mismatch(401, "invalid or missing credentials")

    def bind(self, template: Template, text: str, out: dict[str, str], where: str) -> None:
        """Record the placeholder values that render ``text`` (400 if it does not fit)."""
        found = template.match(text)
        if found is None:
            raise _Mismatch(400, f"{where} does not have the expected form")
        for name, value in found.items():
            if out.setdefault(name, value) != value:
                raise _Mismatch(400, f"{where}: {name} differs from elsewhere in the request")

    def bind_structure(self, node: Any, value: Any, out: dict[str, str], where: str) -> None:
        """Walk a JSON template and the body side by side, binding placeholders."""
        if isinstance(node, Template):
            if not isinstance(value, str):
                raise _Mismatch(400, f"{where or 'body'} must be a string")
            self.bind(node, value, out, where or "body")
        elif isinstance(node, dict):
            if not isinstance(value, dict):
                raise _Mismatch(400, f"{where or 'body'} must be an object")
            for key, sub in node.items():
                inner = f"{where}.{key}" if where else key
                if key not in value:
                    if isinstance(sub, Template) and sub.whole and not sub.whole.startswith(SECRET_PREFIX):
                        continue  # a field left out because its value was absent
                    raise _Mismatch(400, f"{inner} is required")
                self.bind_structure(sub, value[key], out, inner)
        elif isinstance(node, list):
            if not isinstance(value, list):
                raise _Mismatch(400, f"{where or 'body'} must be a list")
            for i, (sub, item) in enumerate(zip(node, value, strict=False)):
                self.bind_structure(sub, item, out, f"{where}.{i}" if where else str(i))

    def read(self, request: Request, body: bytes, url: Template, names: list[str],
             query: Mapping[str, Template], json_body: Any = None, form: Mapping[str, Template] | None = None,
             ) -> dict[str, str]:
        """Every placeholder value of a request, its secrets checked."""
        self.check_auth(request)
        out: dict[str, str] = {}
        for i, name in enumerate(names):
            value = request.path_params.get(f"p{i}", "")
            if out.setdefault(name, value) != value:
                raise _Mismatch(400, f"URL: {name} differs from elsewhere in the request")
        for key, template in query.items():
            given = request.query_params.get(key)
            if given is None:
                if template.whole and not template.whole.startswith(SECRET_PREFIX):
                    continue
                raise _Mismatch(400, f"query parameter {key} is required")
            self.bind(template, given, out, f"query parameter {key}")
        if json_body is not None:
            try:
                data = json.loads(body)
            except ValueError:
                raise _Mismatch(400, "the body is not JSON") from None
            self.bind_structure(json_body, data, out, "")
        if form is not None:
            fields = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            for key, template in form.items():
                if key not in fields:
                    if template.whole and not template.whole.startswith(SECRET_PREFIX):
                        continue
                    raise _Mismatch(400, f"form field {key} is required")
                self.bind(template, fields[key], out, f"form field {key}")
        for name, value in out.items():
            if name.startswith(SECRET_PREFIX):
                expected = self.secret(name[len(SECRET_PREFIX):])
                if not hmac.compare_digest(value.encode(), expected.encode()):
                    raise _Mismatch(401, "invalid credentials")
        return out

    # ------------------------------------------------------------ handlers
    def bodies(self, body: bytes) -> list[bytes]:
        """One body per message: a bulk body (``[bulk]``) split into single-item bodies."""
        bulk = self.opts.bulk
        if bulk is None:
            return [body]
        try:
            data = json.loads(body)
        except ValueError:
            raise _Mismatch(400, "the body is not JSON") from None
        items = bulk.items_path.get(data)
        if not isinstance(items, list) or not items:
            raise _Mismatch(400, f"{bulk.items_path} must be a list of messages")
        if len(items) > bulk.max_batch:
            raise _Mismatch(400, f"at most {bulk.max_batch} messages per request")
        return [json.dumps(bulk.items_path.set(copy.deepcopy(data), [item])).encode() for item in items]

    async def send(self, request: Request) -> Response:
        spec = self.opts.request
        _, names = _route_path(spec.url)
        try:
            bodies = self.bodies(await request.body())
            every = [self.read(request, b, spec.url, names, spec.query, spec.json_body, spec.form) for b in bodies]
        except _Mismatch as exc:
            return self.error(exc.status, str(exc))
        for i, values in enumerate(every):
            digits = values.get("to_digits") or values.get("to", "").lstrip("+")
            if not _DIGITS.fullmatch(digits):
                return self.error(400, f"message {i}: the recipient is not a valid international number")
            if "text" in spec_fields(spec) and values.get("text") is None:
                return self.error(400, f"message {i}: text is required")
        res, bulk = self.opts.response, self.opts.bulk
        digits_of = [v.get("to_digits") or v.get("to", "").lstrip("+") for v in every]
        blocked = [i for i, digits in enumerate(digits_of) if digits in self.suppressed]
        if blocked and (len(every) == 1 or bulk is None or bulk.status_path is None):
            return self.suppression_error(blocked[0])
        now = time.time()
        msgs: list[_Message | None] = []
        with self.lock:
            for values in every:
                digits = values.get("to_digits") or values.get("to", "").lstrip("+")
                if digits in self.suppressed:  # a bulk result says so, nothing is sent
                    msgs.append(None)
                    continue
                new = _Message(id=f"msg-{next(self._ids):06d}-{int(now * 1000) % 100000:05d}", to=digits,
                               text=values.get("text", ""), sender=values.get("sender"), created=now,
                               final=self.failure_status() if digits.endswith("9") else Status.DELIVERED)
                self.messages[new.id] = new
                msgs.append(new)
        answer: Any = {}
        if bulk is not None:
            results = []
            for sent in msgs:
                if sent is None:
                    assert bulk.status_path is not None
                    results.append(bulk.status_path.set({}, self.suppression()))
                    continue
                item: Any = bulk.id_path.set({}, sent.id)
                if bulk.status_path is not None:
                    item = bulk.status_path.set(item, self.shown_status(sent, now))
                results.append(item)
            answer = bulk.results_path.set(answer, results)
        first = msgs[0]
        if first is not None and res.id_path is not None:
            answer = res.id_path.set(answer, first.id)
        if first is not None and res.status_path is not None:
            answer = res.status_path.set(answer, self.shown_status(first, now))
        for sent in msgs:
            if sent is not None:
                self.schedule_callbacks(sent)
        return JSONResponse(answer, status_code=res.success_status[0])

    async def lookup(self, request: Request) -> Response:
        spec = self.opts.status_lookup
        assert spec is not None
        _, names = _route_path(spec.url)
        try:
            values = self.read(request, await request.body(), spec.url, names, spec.query)
        except _Mismatch as exc:
            return self.error(exc.status, str(exc))
        with self.lock:
            msg = self.messages.get(values.get("id", ""))
        if msg is None:
            return self.error(404, "no such message")
        return JSONResponse(spec.status_path.set({}, self.shown_status(msg, time.time())))

    async def account(self, request: Request) -> Response:
        """The ``[check]`` route: credentials checked; the registered sender IDs at ``senders_path``."""
        spec = self.opts.check
        assert spec is not None
        try:
            self.read(request, b"", spec.url, [], spec.query)
        except _Mismatch as exc:
            return self.error(exc.status, str(exc))
        answer: Any = {"ok": True}
        if spec.senders_path is not None:
            field = spec.sender_field
            answer = spec.senders_path.set({}, [{field: s} if field else s for s in self.senders])
        return JSONResponse(answer, status_code=spec.success_status[0])

    # ------------------------------------------------------------ callbacks
    def callback_body(self, msg: _Message, status: str, at: float) -> tuple[bytes, str]:
        """A delivery-report body shaped by the webhook paths, and its content type."""
        hook = self.opts.webhook
        assert hook is not None
        item: Any = {}
        item = hook.id_path.set(item, msg.id)
        item = hook.status_path.set(item, status)
        if hook.timestamp_path is not None:
            stamp = datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z")
            item = hook.timestamp_path.set(item, stamp)
        if hook.to_path is not None:
            item = hook.to_path.set(item, msg.to)
        if hook.format == "form":
            flat = {k: str(v) for k, v in item.items()} if isinstance(item, dict) else {}
            return urllib.parse.urlencode(flat).encode(), "application/x-www-form-urlencoded"
        payload = hook.items_path.set({}, [item]) if hook.items_path is not None else item
        return json.dumps(payload).encode(), "application/json"

    def schedule_callbacks(self, msg: _Message) -> None:
        """POST the message's later statuses to ``webhook_url`` (when configured)."""
        if not self.webhook_url or self.opts.webhook is None:
            return
        task = asyncio.get_running_loop().create_task(self._callbacks(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _callbacks(self, msg: _Message) -> None:
        hook = self.opts.webhook
        assert hook is not None and self.webhook_url is not None
        url = self.webhook_url
        headers: dict[str, str] = {}
        if hook.token is not None:
            token = str(hook.token.render({}, self.secret))
            if hook.token_header is not None:
                headers[hook.token_header] = token
            else:
                sep = "&" if urllib.parse.urlsplit(url).query else "?"
                url = f"{url}{sep}{urllib.parse.urlencode({hook.token_query or '': token})}"
        for fraction in (0.5, 1.0):
            at = msg.created + self.delivery_delay * fraction
            wait = at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.control is not None and self.control.callbacks_dropped():
                continue
            body, ctype = self.callback_body(msg, self.shown_status(msg, at), at)
            try:
                response = await self._poster.post(url, content=body, headers={**headers, "content-type": ctype})
                self.callbacks.append({"id": msg.id, "status_code": response.status_code})
            except httpx.HTTPError as exc:
                log.warning("generic_http emulator: callback failed: %s", type(exc).__name__)

    async def shutdown(self) -> None:
        """Cancel pending callbacks."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._poster.aclose()


def spec_fields(spec: Any) -> frozenset[str]:
    """Every placeholder a request spec uses."""
    return frozenset().union(*(t.fields for _, t in spec.templates()))


def create_app(
    options: GenericHttpOptions | Mapping[str, Any] | None = None,
    credentials: Mapping[str, str] | None = None,
    *,
    delivery_delay: float = 0.5,
    webhook_url: str | None = None,
    suppressed: Iterable[str] = (),
) -> Any:
    """Build the emulator of the vendor ``options`` describe (default :data:`SANDBOX_OPTIONS`).

    ``credentials`` are the values the vendor accepts for ``{secret.NAME}``
    (default :data:`SANDBOX_CREDENTIALS`). The state is ``app.vendor``
    (:class:`GenericEmulator`). ``suppressed`` numbers are on the vendor's suppression
    list: a send to one alone is refused (HTTP 400 with the first of
    ``response.opted_out_codes`` at ``response.error_code_path``); in a bulk request
    whose results carry a status, its result's status is that code and it is not sent.
    """
    opts = options if isinstance(options, GenericHttpOptions) else \
        GenericHttpOptions.model_validate(SANDBOX_OPTIONS if options is None else options)
    st = GenericEmulator(opts, SANDBOX_CREDENTIALS if credentials is None else credentials,
                         delivery_delay, webhook_url)
    st.suppressed.update(n.lstrip("+") for n in suppressed)
    send_path, _ = _route_path(opts.request.url)
    routes = [Route(send_path, st.send, methods=[opts.request.method])]
    if opts.status_lookup is not None:
        lookup_path, _ = _route_path(opts.status_lookup.url)
        routes.append(Route(lookup_path, st.lookup, methods=[opts.status_lookup.method]))
    if opts.check is not None:
        routes.append(Route(_route_path(opts.check.url)[0], st.account, methods=[opts.check.method]))

    async def not_found(request: Request, exc: Exception) -> Response:
        return st.error(404, f"Cannot {request.method} {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return st.error(405, f"Method {request.method} not allowed on {request.url.path}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await st.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_allowed})
    wrapped = emulator_app(app, error_body=st.error_body, vendor=st)
    st.control = wrapped.state_obj  # type: ignore[attr-defined]
    return wrapped
