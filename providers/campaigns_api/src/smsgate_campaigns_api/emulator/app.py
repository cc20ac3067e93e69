"""The Starlette routes of the Campaigns REST emulator: decode a request, call the state, answer.

Routes are matched case-insensitively (ASP.NET routing) by one dispatcher: it checks the
API key, calls one :class:`~smsgate_campaigns_api.emulator.state.DMState` method and
answers its result; a :class:`~smsgate_campaigns_api.emulator.state.Problem` becomes an
RFC 7807 ProblemDetails answer (a 401 an empty one with ``WWW-Authenticate: Bearer``).
Delivery-report callbacks and campaign start times are scheduled here, on the server's
event loop, through the state's ``on_message`` / ``on_schedule`` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from decimal import Decimal
from typing import Any, Final

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from smsgate.emulation import CallbackPoster, EmulatorState, emulator_app
from smsgate_campaigns_api.emulator.state import SANDBOX_API_KEY, DMState, Problem, SmsRec
from smsgate_campaigns_api.wire import ci_get

__all__ = ["create_app", "problem"]

_PROBLEM_TYPES: Final = {
    400: "https://tools.ietf.org/html/rfc7231#section-6.5.1",
    401: "https://tools.ietf.org/html/rfc7235#section-3.1",
    404: "https://tools.ietf.org/html/rfc7231#section-6.5.4",
    405: "https://tools.ietf.org/html/rfc7231#section-6.5.5",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc7231#section-6.6.1",
    503: "https://tools.ietf.org/html/rfc7231#section-6.6.4",
}
_TITLES: Final = {
    400: "One or more validation errors occurred.",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "An error occurred while processing your request.",
    503: "Service Unavailable",
}


def _trace_id() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"


def problem(status: int, title: str | None = None, errors: Mapping[str, list[str]] | None = None,
            detail: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An ASP.NET-style RFC 7807 ProblemDetails response."""
    body: dict[str, Any] = {
        "type": _PROBLEM_TYPES.get(status, "about:blank"),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body["traceId"] = _trace_id()
    if errors:
        body["errors"] = dict(errors)
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers=dict(headers or {}))


def _answer(exc: Problem) -> Response:
    if exc.status == 401:  # ASP.NET JwtBearer: no body [INF]
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer", **exc.headers})
    return problem(exc.status, errors=exc.errors, headers=exc.headers)


async def _json(request: Request) -> Any:
    """The JSON body (None when empty); a 400 when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, {"$": ["The JSON value could not be converted."]}) from None


class _Timers:
    """Campaign start times and delivery-report callbacks, as tasks on the server's event loop."""

    def __init__(self, state: DMState, control: EmulatorState) -> None:
        self.state = state
        self.control = control
        self.tasks: set[asyncio.Task[None]] = set()
        self._poster = CallbackPoster()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the running loop (not serving, e.g. seeding: nothing to schedule)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            return
        task = loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def schedule_start(self, delay: float) -> None:
        """Start the campaigns due ``delay`` seconds from now, then."""
        self.spawn(self._advance_later(delay))

    def schedule_callbacks(self, rec: SmsRec) -> None:
        """Post the message's ``Sent`` and final status to ``webhook_url`` as they happen."""
        if self.state.webhook_url:
            self.spawn(self._callbacks(rec))

    async def _advance_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.state.advance()

    async def _callbacks(self, rec: SmsRec) -> None:
        await asyncio.sleep(self.state.delivery_delay / 2)
        await self._post(rec)
        await asyncio.sleep(self.state.delivery_delay / 2)
        await self._post(rec)

    async def _post(self, rec: SmsRec) -> None:
        url = self.state.webhook_url
        if not url or self.control.callbacks_dropped():
            return
        payload = self.state.callback_payload(rec)
        try:
            await self._poster.post(url, json=payload)
        except httpx.HTTPError:
            return
        self.state.callbacks_sent.append(payload)

    async def aclose(self) -> None:
        """Cancel pending timers/callbacks and close the callback client."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._poster.aclose()


def create_app(
    *,
    api_key: str = SANDBOX_API_KEY,
    delivery_delay: float = 1.0,
    campaign_delay: float = 1.0,
    seed_campaigns: int = 0,
    webhook_url: str | None = None,
    default_page_size: int = 10,
    max_page_size: int = 1000,
    price_per_sms: str = "0.035",
    client_id: int = 8,
    clock: Callable[[], float] = time.time,
) -> Any:
    """Build the emulator app (wrapped with request recording and fault injection).

    ``delivery_delay``: seconds from Accepted to the final SMS status;
    ``campaign_delay``: seconds from a campaign's start to Completed;
    ``seed_campaigns``: campaigns to pre-create (statuses cycle, two contacts each);
    ``webhook_url``: where delivery-report callbacks go (set by DM staff in real life);
    ``default_page_size``/``max_page_size``: Sieve paging defaults [INF].
    The vendor state is ``app.vendor`` (:class:`DMState`).
    """
    state = DMState(
        api_key=api_key, delivery_delay=delivery_delay, campaign_delay=campaign_delay,
        webhook_url=webhook_url, default_page_size=default_page_size, max_page_size=max_page_size,
        price_per_sms=Decimal(price_per_sms), client_id=client_id, clock=clock,
    )
    state.seed(seed_campaigns)
    control = EmulatorState()
    timers = _Timers(state, control)
    state.on_message = timers.schedule_callbacks
    state.on_schedule = timers.schedule_start

    # ----------------------------------------------------------- handlers
    async def list_campaigns(request: Request) -> Response:
        return JSONResponse(state.list_campaigns(dict(request.query_params)))

    async def get_campaign(request: Request, ident: str) -> Response:
        return JSONResponse(state.get_campaign(ident))

    async def list_contacts(request: Request, ident: str) -> Response:
        return JSONResponse(state.campaign_contacts(ident, dict(request.query_params)))

    async def create_campaign(request: Request, ignore: bool | None = None) -> Response:
        return JSONResponse(state.create_campaign(await _json(request), ignore), status_code=201)

    async def update_campaign(request: Request, ident: str) -> Response:
        state.update_campaign(ident, await _json(request))
        return Response(status_code=204)

    async def delete_campaign(request: Request, ident: str) -> Response:
        state.delete_campaign(ident)
        return Response(status_code=204)

    async def post_campaign_segment(request: Request, ident: str) -> Response:
        if ident.lower() in ("true", "false"):  # POST /api/campaigns/{ignoreInvalidPhoneNumbers}
            return await create_campaign(request, ignore=ident.lower() == "true")
        if (await request.body()).strip():  # documented update form
            return await update_campaign(request, ident)
        return await delete_campaign(request, ident)  # documented delete form

    async def list_messages(request: Request) -> Response:
        return JSONResponse(state.list_messages(dict(request.query_params)))

    async def get_message(request: Request, ident: str) -> Response:
        return JSONResponse(state.get_message(ident))

    async def send_message(request: Request) -> Response:
        # the docs' example is the bare GUID (ASP.NET writes a string result as text/plain)
        return PlainTextResponse(state.send_message(await _json(request)), status_code=201)

    segment = r"/(?P<id>[^/]+)"
    table: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Response]]]] = [
        ("GET", re.compile(r"/api/campaigns", re.I), list_campaigns),
        ("POST", re.compile(r"/api/campaigns", re.I), create_campaign),
        ("GET", re.compile(r"/api/campaigns" + segment, re.I), get_campaign),
        ("PUT", re.compile(r"/api/campaigns" + segment, re.I), update_campaign),
        ("DELETE", re.compile(r"/api/campaigns" + segment, re.I), delete_campaign),
        ("POST", re.compile(r"/api/campaigns" + segment, re.I), post_campaign_segment),
        ("GET", re.compile(r"/api/campaigns" + segment + r"/contacts", re.I), list_contacts),
        ("GET", re.compile(r"/api/smsmessages", re.I), list_messages),
        ("POST", re.compile(r"/api/smsmessages", re.I), send_message),
        ("GET", re.compile(r"/api/smsmessages" + segment, re.I), get_message),
    ]

    async def dispatch(request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        allowed = []
        for method, pattern, handler in table:
            match = pattern.fullmatch(path)
            if not match:
                continue
            if method != request.method and not (method == "GET" and request.method == "HEAD"):
                allowed.append(method)
                continue
            if not state.authorised(authorization=request.headers.get("authorization"),
                                    api_key_header=request.headers.get("api-key"),
                                    api_key_query=ci_get(dict(request.query_params), "api-key")):
                return _answer(Problem(401))
            args = [match.group("id")] if "id" in match.groupdict() else []
            try:
                return await handler(request, *args)
            except Problem as exc:
                return _answer(exc)
        if allowed:
            return _answer(Problem(405, headers={"Allow": ", ".join(sorted(set(allowed)))}))
        return _answer(Problem(404))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await timers.aclose()

    inner = Starlette(
        routes=[Route("/{path:path}", dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])],
        lifespan=lifespan,
    )
    return emulator_app(inner, state=control, error_body=lambda status, message: {
        "type": _PROBLEM_TYPES.get(status, "about:blank"), "title": message, "status": status,
        "traceId": _trace_id(),
    }, vendor=state)
