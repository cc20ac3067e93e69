"""The Starlette routes of the WAABOT emulator: decode a request, call the state, answer.

Each handler checks the credentials (a live ``Authorization: Bearer`` account token, then
the bot pair ``session_id`` + ``access_token`` from the JSON body, the form or the query
string), reads the body, calls one :class:`~smsgate_broadcast.emulator.state.WaabotState`
method and wraps its return value in WAABOT's envelope ``{"status": true, "message",
"data"}`` (the login answer is a bare object, the message log a bare array, deletes and
updates 204). A :class:`~smsgate_broadcast.emulator.state.VendorError` becomes
``{"status": false, "message"}`` with its status.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate.emulation import ASGIApp, emulator_app
from smsgate_broadcast.emulator.state import VendorError, WaabotState

__all__ = ["PREFIX", "WaabotRoutes", "create_app", "vendor_state"]

#: Path prefix of every route (as the real API: ``https://api.waabot.com/api/v1``).
PREFIX = "/api/v1"

Handler = Callable[[Request], Awaitable[Response]]
Files = dict[str, tuple[str, str, bytes]]


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"status": False, "message": message}


def _ok(message: str, data: Any) -> JSONResponse:
    return JSONResponse({"status": True, "message": message, "data": data})


def _no_content() -> Response:
    return Response(status_code=204)


async def read_body(request: Request) -> tuple[dict[str, Any], Files]:
    """Body fields (JSON, form or multipart form) and uploaded files ``{field: (filename, type, bytes)}``.

    :class:`ValueError` (or :class:`UnicodeDecodeError`) for a body that is none of these.
    """
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    fields: dict[str, Any] = {}
    files: Files = {}
    if not raw:
        return fields, files
    if ctype.startswith("multipart/form-data"):
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw)
        if not msg.is_multipart():
            raise ValueError("malformed multipart body")
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                files[name] = (filename, part.get_content_type(), content)
            else:
                fields[name] = content.decode("utf-8", "replace")
        return fields, files
    if ctype.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"))), files
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data, files


class WaabotRoutes:
    """The HTTP face of one :class:`WaabotState`: one handler per route."""

    def __init__(self, state: WaabotState) -> None:
        self.state = state

    async def bot_request(self, request: Request) -> tuple[str, dict[str, Any], Files]:
        """Check the bearer token, read the body, check the bot pair: ``(client_id, fields, files)``."""
        self.state.check_bearer(request.headers.get("authorization"))
        try:
            fields, files = await read_body(request)
        except (ValueError, UnicodeDecodeError):
            raise VendorError(400, "Invalid request body") from None
        query = request.query_params
        sid = fields.get("session_id") or query.get("session_id")
        token = fields.get("access_token") or query.get("access_token")
        return self.state.bot(sid, token), fields, files

    # ----------------------------------------------------------------- sessions
    async def sessions(self, request: Request) -> Response:
        """``POST /sessions`` ``{email, password}`` -> ``{accessToken, refreshToken}`` (no envelope)."""
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise VendorError(400, "Invalid request body") from None
        if not isinstance(body, dict):
            raise VendorError(400, "Invalid request body")
        return JSONResponse(self.state.login(str(body.get("email") or ""), str(body.get("password") or "")))

    async def logout(self, request: Request) -> Response:
        """``DELETE /sessions`` (204)."""
        self.state.logout(request.headers.get("authorization"), request.headers.get("x-refresh"))
        return _no_content()

    # ----------------------------------------------------------------- broadcasts
    async def create_broadcast(self, request: Request) -> Response:
        """``POST /broadcast``."""
        client_id, body, _ = await self.bot_request(request)
        return _ok("Broadcast group created successfully!", self.state.create_broadcast(client_id, body))

    async def list_broadcasts(self, request: Request) -> Response:
        """``GET /broadcast``."""
        client_id, _, _ = await self.bot_request(request)
        return _ok("Broadcast fetched successfully!", self.state.list_broadcasts(client_id))

    async def one_broadcast(self, request: Request) -> Response:
        """``GET PUT DELETE /broadcast/{id}``."""
        client_id, body, _ = await self.bot_request(request)
        bid = request.path_params["id"]
        if request.method == "GET":
            return _ok("Broadcast fetched successfully!", self.state.get_broadcast(client_id, bid))
        if request.method == "DELETE":
            self.state.delete_broadcast(client_id, bid)
        else:
            self.state.update_broadcast(client_id, bid, body)
        return _no_content()

    # ----------------------------------------------------------------- attachments
    async def attachments(self, request: Request) -> Response:
        """``GET /attachment`` (list), ``POST /attachment`` (multipart ``file``: a data URI back)."""
        client_id, _, files = await self.bot_request(request)
        if request.method == "GET":
            return _ok("Attachment fetched successfully!", self.state.list_attachments(client_id))
        uri = self.state.upload_attachment(client_id, files.get("file"))
        return _ok("Attachment uploaded successfully!", uri)

    async def one_attachment(self, request: Request) -> Response:
        """``GET DELETE /attachment/{id}``."""
        client_id, _, _ = await self.bot_request(request)
        aid = request.path_params["id"]
        if request.method == "DELETE":
            self.state.delete_attachment(client_id, aid)
            return _no_content()
        return _ok("Attachment fetched successfully!", self.state.get_attachment(client_id, aid))

    # ----------------------------------------------------------------- contacts and groups
    async def contacts(self, request: Request) -> Response:
        """``GET /contact`` (``?type=all``), ``POST /contact``."""
        client_id, body, _ = await self.bot_request(request)
        if request.method == "GET":
            every = request.query_params.get("type") == "all"
            return _ok("Contact fetched successfully!", self.state.list_contacts(client_id, every))
        self.state.create_contact(client_id, body)
        return _no_content()  # as documented (contact-groups.md: "Status: 204 No Content")

    async def one_contact(self, request: Request) -> Response:
        """``GET PUT DELETE /contact/{id}``."""
        client_id, body, _ = await self.bot_request(request)
        cid = request.path_params["id"]
        if request.method == "GET":
            return _ok("Contact fetched successfully!", self.state.get_contact(client_id, cid))
        if request.method == "DELETE":
            self.state.delete_contact(client_id, cid)
        else:
            self.state.update_contact(client_id, cid, body)
        return _no_content()

    async def groups(self, request: Request) -> Response:
        """``GET POST /contact_groups``."""
        client_id, body, _ = await self.bot_request(request)
        if request.method == "GET":
            return _ok("ContactGroup fetched successfully!", self.state.list_groups(client_id))
        return _ok("ContactGroup group created successfully!", self.state.create_group(client_id, body))

    async def one_group(self, request: Request) -> Response:
        """``GET PUT DELETE /contact_groups/{id}``."""
        client_id, body, _ = await self.bot_request(request)
        gid = request.path_params["id"]
        if request.method == "GET":
            return _ok("ContactGroup fetched successfully!", self.state.get_group(client_id, gid))
        if request.method == "DELETE":  # documented: 200 with Mongo's delete result
            self.state.delete_group(client_id, gid)
            return _ok("ContactGroup group deleted successfully!", {"n": 1, "ok": 1, "deletedCount": 1})
        self.state.update_group(client_id, gid, body)  # documented: 200 with the updated group
        return _ok("ContactGroup group updated successfully!", self.state.get_group(client_id, gid))

    # ----------------------------------------------------------------- message log
    async def message_log(self, request: Request) -> Response:
        """``GET /message-log?page=&limit=&type=all``: a bare array (FACTS 4.4)."""
        client_id, _, _ = await self.bot_request(request)
        try:
            page = int(request.query_params.get("page", "1"))
            limit = int(request.query_params.get("limit", "10"))
        except ValueError:
            raise VendorError(400, "page and limit must be integers") from None
        every = request.query_params.get("type") == "all"
        return JSONResponse(self.state.message_log(client_id, page, limit, every))

    async def one_message_log(self, request: Request) -> Response:
        """``GET /message-log/{id}``."""
        client_id, _, _ = await self.bot_request(request)
        entry = self.state.message_log_entry(client_id, request.path_params["id"])
        return _ok("Message log fetched successfully!", entry)

    # ----------------------------------------------------------------- routing
    def routes(self) -> list[Route]:
        """Every route, each answering a :class:`VendorError` with WAABOT's error body."""
        table: list[tuple[str, list[str], Handler]] = [
            ("/sessions", ["POST"], self.sessions),
            ("/sessions", ["DELETE"], self.logout),
            ("/contact", ["GET", "POST"], self.contacts),
            ("/contact/{id}", ["GET", "PUT", "DELETE"], self.one_contact),
            ("/contact_groups", ["GET", "POST"], self.groups),
            ("/contact_groups/{id}", ["GET", "PUT", "DELETE"], self.one_group),
            ("/message-log", ["GET"], self.message_log),
            ("/message-log/{id}", ["GET"], self.one_message_log),
            ("/broadcast", ["POST"], self.create_broadcast),
            ("/broadcast", ["GET"], self.list_broadcasts),
            ("/broadcast/{id}", ["GET", "PUT", "DELETE"], self.one_broadcast),
            ("/attachment", ["GET", "POST"], self.attachments),
            ("/attachment/{id}", ["GET", "DELETE"], self.one_attachment),
        ]
        return [Route(PREFIX + path, _vendor_errors(handler), methods=methods) for path, methods, handler in table]


def _vendor_errors(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except VendorError as exc:
            return JSONResponse(_error_body(exc.status, exc.message), status_code=exc.status)

    return run


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(_error_body(404, f"Cannot {request.method} {request.url.path}"), status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(_error_body(405, f"Method {request.method} not allowed on {request.url.path}"),
                        status_code=405)


def create_app(
    *,
    delivery_delay: float = 0.2,
    users: Mapping[str, str] | None = None,
    bots: Mapping[str, str] | None = None,
    require_bearer: bool = True,
    token_ttl: float | None = None,
    max_recipients: int | None = 1000,
) -> ASGIApp:
    """A fresh WAABOT emulator (wrapped with :func:`~smsgate.emulation.emulator_app`).

    ``users`` maps account emails to passwords and ``bots`` bot ``session_id`` s to
    their ``access_token`` (both default to
    :data:`~smsgate_broadcast.emulator.state.SANDBOX_CREDENTIALS`).
    ``delivery_delay``: seconds after creation before a number leaves ``pending``;
    ``token_ttl``: seconds an account access token lives (``None``: forever);
    ``max_recipients``: numbers accepted per broadcast ([INF] 1,000; ``None``: no limit).
    The vendor state (:class:`WaabotState`) is ``app.vendor`` (typed: :func:`vendor_state`).
    """
    state = WaabotState(delivery_delay=delivery_delay, users=users, bots=bots, require_bearer=require_bearer,
                        token_ttl=token_ttl, max_recipients=max_recipients)
    app = Starlette(routes=WaabotRoutes(state).routes(),
                    exception_handlers={404: _not_found, 405: _not_allowed})
    return emulator_app(app, error_body=_error_body, vendor=state)


def vendor_state(app: Any) -> WaabotState:
    """The :class:`WaabotState` of an app made by :func:`create_app` (its ``app.vendor``, typed)."""
    state = getattr(app, "vendor", None)
    if not isinstance(state, WaabotState):
        raise TypeError("not a WAABOT emulator app")
    return state
