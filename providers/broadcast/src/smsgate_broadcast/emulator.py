"""An emulator of the WAABOT broadcast API (``/api/v1``), for tests and ``smsgate sandbox``.

What it claims about the vendor, and where each claim comes from
(``[DOC]`` vendor docs / seed 004, ``[SDK]`` the vendor's ``wasms-sdk``,
``[INF]`` inference, see docs/providers/broadcast.md):

* ``POST /api/v1/sessions`` ``{email, password}`` -> ``{accessToken, refreshToken}``
  (a bare object, no envelope) [DOC]; wrong password -> 401 [INF body];
* every other route wants ``Authorization: Bearer <accessToken>`` [DOC] (401
  otherwise [INF]; switch off with ``require_bearer=False``) and the bot pair
  ``session_id`` + ``access_token`` in the JSON body, the multipart form or the
  query string [DOC/SDK] (403 when wrong [INF]);
* ``POST /api/v1/broadcast`` / ``GET`` / ``GET|PUT|DELETE /api/v1/broadcast/{id}``
  with the documented fields and envelope ``{"status": true, "message", "data"}``
  [DOC]; PUT [SDK] and DELETE answer 204 [DOC for delete, INF for PUT];
* a broadcast starts ``"sending"`` with empty ``sent``/``pending``/``failed`` lists
  [DOC]; afterwards each number sits in ``pending`` and, ``delivery_delay`` seconds
  after creation, moves to ``sent`` (or ``failed`` if it ends in 9); once every
  number is done the status becomes ``"completed"`` [INF: only "sending" is documented];
* ``POST /api/v1/attachment`` takes multipart field ``file`` [INF] and answers with
  a base64 ``data:`` URI [DOC]; ``GET`` lists / gets records, ``DELETE`` -> 204 [DOC];
* ``/contact`` and ``/contact_groups`` (GET POST, ``/{id}`` GET PUT DELETE) per bot, with
  the documented fields [DOC]; PUT answers 204 [INF]; a ``send_type: "group"`` broadcast
  goes to the named groups' contacts [INF];
* ``GET /message-log?page=&limit=`` answers a bare array of one entry per broadcast number
  (fields [INF]); ``GET /message-log/{id}``; ``DELETE /sessions`` ends the session (204) [DOC];
* errors are ``{"status": false, "message": "..."}`` with a 4xx status [INF from the SDK].

State lives in the app instance (:class:`WaabotState`), never in module globals.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import secrets
import string
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate.emulation import ASGIApp, emulator_app

__all__ = [
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SETTINGS",
    "WaabotState",
    "create_app",
    "vendor_state",
]

#: Credentials the emulator accepts by default (used by ``smsgate sandbox`` and the demo).
SANDBOX_CREDENTIALS: dict[str, str] = {
    "email": "sandbox@waabot.test",
    "password": "sandbox-password",
    "session_id": "sandbox-session-0001",
    "access_token": "sandbox-bot-access-token",
}

#: Extra provider settings for the sandbox (none needed: the adapter adds ``/api/v1``).
SANDBOX_SETTINGS: dict[str, Any] = {}

PREFIX = "/api/v1"
_NUMBER = re.compile(r"[1-9][0-9]{6,14}")
_NAME_CHARS = string.ascii_uppercase + string.digits


def _iso(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": False, "message": message}, status_code=status)


class _Broadcast:
    """One stored broadcast plus when each of its numbers entered the pipeline."""

    def __init__(self, doc: dict[str, Any], now: float, members: list[str] | None = None) -> None:
        self.doc = doc
        self.started: dict[str, float] = {}
        #: numbers of the contact groups a group broadcast names (fixed when it is created or changed)
        self.members = list(members or [])
        #: message-log entry id per number
        self.logs: dict[str, str] = {}
        self.set_numbers(now)

    def numbers(self) -> list[str]:
        """The numbers of ``to``, or of the named groups' contacts for a group broadcast."""
        if self.doc.get("send_type") != "individual":
            return list(self.members)
        return [n.strip() for n in str(self.doc.get("to", "")).split(",") if n.strip()]

    def set_numbers(self, now: float) -> None:
        """Start the clock for numbers new in ``to``; drop pending ones no longer there."""
        numbers = self.numbers()
        self.started = {n: self.started.get(n, now) for n in numbers}
        self.doc["pending"] = [n for n in self.doc["pending"] if n in self.started]
        done = set(self.doc["sent"]) | set(self.doc["failed"])
        if any(n not in done for n in numbers):
            self.doc["status"] = "sending"


class WaabotState:
    """In-memory vendor state of one emulator instance (thread-safe)."""

    def __init__(
        self,
        *,
        delivery_delay: float,
        users: Mapping[str, str],
        bots: Mapping[str, str],
        require_bearer: bool,
        token_ttl: float | None,
        max_recipients: int | None,
    ) -> None:
        self._ids = itertools.count(int.from_bytes(os.urandom(3), "big"))
        self.delivery_delay = delivery_delay
        self.users = dict(users)
        self.bots = {sid: (token, self.new_id()) for sid, token in bots.items()}
        self.require_bearer = require_bearer
        self.token_ttl = token_ttl
        self.max_recipients = max_recipients
        self.tokens: dict[str, tuple[str, float]] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.broadcasts: dict[str, _Broadcast] = {}
        self.attachments: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        #: message-log entries in the order they were written
        self.logs: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()

    def new_id(self) -> str:
        """A Mongo-style 24-hex ObjectId (seconds, 5 random bytes, a counter)."""
        return f"{int(time.time()):08x}{os.urandom(5).hex()}{next(self._ids) % 0xFFFFFF:06x}"

    # ------------------------------------------------------------- auth
    def login(self, email: str, password: str) -> dict[str, str] | None:
        """Issue tokens for valid account credentials."""
        with self.lock:
            if not email or self.users.get(email) != password:
                return None
            access = "eyJ" + secrets.token_urlsafe(24)
            refresh = "eyJ" + secrets.token_urlsafe(24)
            self.tokens[access] = (email, time.monotonic())
            self.refresh_tokens[refresh] = email
            return {"accessToken": access, "refreshToken": refresh}

    def issue_token(self, email: str) -> str:
        """An access token for ``email`` without a login call (for tests)."""
        with self.lock:
            token = "eyJ" + secrets.token_urlsafe(24)
            self.tokens[token] = (email, time.monotonic())
            return token

    def logout(self, header: str | None, refresh: str | None) -> bool:
        """End the session of the bearer token in ``header`` (and its ``x-refresh`` token)."""
        if not header or not header.lower().startswith("bearer "):
            return False
        with self.lock:
            if self.tokens.pop(header[7:].strip(), None) is None:
                return False
            if refresh:
                self.refresh_tokens.pop(refresh, None)
            return True

    def revoke_tokens(self) -> None:
        """Invalidate every access token (as if they had all expired)."""
        with self.lock:
            self.tokens.clear()

    def bearer_ok(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries a live access token."""
        if not self.require_bearer:
            return True
        if not header or not header.lower().startswith("bearer "):
            return False
        token = header[7:].strip()
        with self.lock:
            entry = self.tokens.get(token)
            if entry is None:
                return False
            if self.token_ttl is not None and time.monotonic() - entry[1] > self.token_ttl:
                del self.tokens[token]
                return False
            return True

    def bot(self, session_id: object, access_token: object) -> str | None:
        """The bot instance's ``client_id`` for valid bot credentials."""
        entry = self.bots.get(str(session_id)) if session_id else None
        if entry is None or not access_token or entry[0] != str(access_token):
            return None
        return entry[1]

    # ------------------------------------------------------------- broadcasts
    def advance(self, b: _Broadcast) -> None:
        """Move numbers along pending -> sent/failed according to the clock."""
        with self.lock:
            now = time.monotonic()
            doc = b.doc
            changed = False
            done = set(doc["sent"]) | set(doc["failed"])
            for number, started in b.started.items():
                if number not in b.logs:
                    b.logs[number] = self._log(b, number)
                if number in done:
                    continue
                if now - started >= self.delivery_delay:
                    target = "failed" if number.endswith("9") else "sent"
                    self.logs[b.logs[number]].update(status=target, updatedAt=_iso(time.time()))
                    doc[target].append(number)
                    if number in doc["pending"]:
                        doc["pending"].remove(number)
                    done.add(number)
                    changed = True
                elif number not in doc["pending"]:
                    doc["pending"].append(number)
                    changed = True
            if b.started and all(n in done for n in b.started) and doc["status"] != "completed":
                doc["status"] = "completed"
                changed = True
            if changed:
                doc["updatedAt"] = _iso(time.time())

    def _log(self, b: _Broadcast, number: str) -> str:
        """Write a message-log entry for one number of a broadcast [INF: fields undocumented]."""
        lid = self.new_id()
        now = _iso(time.time())
        message = b.doc.get("message")
        self.logs[lid] = {
            "_id": lid, "client_id": b.doc["client_id"], "broadcast_id": b.doc["_id"], "type": "broadcast",
            "to": number, "message": message.get("text", "") if isinstance(message, dict) else "",
            "status": "pending", "createdAt": now, "updatedAt": now, "__v": 0,
        }
        return lid

    def group_members(self, client_id: str, group_ids: list[str]) -> list[str] | str:
        """Distinct numbers of the contacts in ``group_ids``, or the problem with them."""
        with self.lock:
            for gid in group_ids:
                group = self.groups.get(gid)
                if group is None or group["client_id"] != client_id:
                    return f"Contact group not found: {gid}"
            members = [c["number"] for c in self.contacts.values()
                       if c["client_id"] == client_id and c["group_id"] in group_ids]
        if not members:
            return "The contact group has no contacts"
        return list(dict.fromkeys(members))

    def snapshot(self, b: _Broadcast) -> dict[str, Any]:
        """The broadcast as the API shows it now."""
        self.advance(b)
        with self.lock:
            return json.loads(json.dumps(b.doc))  # type: ignore[no-any-return]


def vendor_state(app: Any) -> WaabotState:
    """The :class:`WaabotState` of an app made by :func:`create_app`."""
    state = getattr(app, "vendor", None)
    if not isinstance(state, WaabotState):
        raise TypeError("not a WAABOT emulator app")
    return state


async def _read(request: Request) -> tuple[dict[str, Any], dict[str, tuple[str, str, bytes]]]:
    """Body fields (JSON or multipart form) and uploaded files ``{field: (filename, type, bytes)}``."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    fields: dict[str, Any] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    if not raw:
        return fields, files
    if ctype.startswith("multipart/form-data"):
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw
        )
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
        from urllib.parse import parse_qsl

        return dict(parse_qsl(raw.decode("utf-8", "replace"))), files
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data, files


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
    their ``access_token`` (both default to :data:`SANDBOX_CREDENTIALS`).
    ``delivery_delay``: seconds after creation before a number leaves ``pending``;
    ``token_ttl``: seconds an account access token lives (``None``: forever);
    ``max_recipients``: numbers accepted per broadcast ([INF] 1,000; ``None``: no limit).
    The vendor state is ``app.vendor`` (typed: :func:`vendor_state`).
    """
    st = WaabotState(
        delivery_delay=delivery_delay,
        users=users if users is not None else {SANDBOX_CREDENTIALS["email"]: SANDBOX_CREDENTIALS["password"]},
        bots=bots if bots is not None else {SANDBOX_CREDENTIALS["session_id"]: SANDBOX_CREDENTIALS["access_token"]},
        require_bearer=require_bearer,
        token_ttl=token_ttl,
        max_recipients=max_recipients,
    )

    async def guarded(request: Request) -> tuple[str, dict[str, Any], dict[str, tuple[str, str, bytes]]] | Response:
        """Check bearer + bot credentials; returns (client_id, body fields, files) or an error."""
        if not st.bearer_ok(request.headers.get("authorization")):
            return _error(401, "Unauthorized: a valid Bearer access token is required")
        try:
            fields, files = await _read(request)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "Invalid request body")
        query = request.query_params
        sid = fields.get("session_id") or query.get("session_id")
        token = fields.get("access_token") or query.get("access_token")
        client_id = st.bot(sid, token)
        if client_id is None:
            return _error(403, "Invalid session_id or access_token")
        return client_id, fields, files

    # ----------------------------------------------------------------- sessions
    async def sessions(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "Invalid request body")
        if not isinstance(body, dict):
            return _error(400, "Invalid request body")
        tokens = st.login(str(body.get("email") or ""), str(body.get("password") or ""))
        if tokens is None:
            return _error(401, "Invalid email or password")
        return JSONResponse(tokens)

    # ----------------------------------------------------------------- broadcasts
    def check_message(client_id: str, message: object) -> str | dict[str, Any]:
        if not isinstance(message, dict):
            return "message is required"
        text = message.get("text", "")
        if not isinstance(text, str):
            return "message.text must be a string"
        atts = message.get("attachments", [])
        if not isinstance(atts, list):
            return "message.attachments must be an array of attachment ids"
        with st.lock:
            for aid in atts:
                entry = st.attachments.get(str(aid))
                if entry is None or entry[0].get("client_id") != client_id:
                    return f"Attachment not found: {aid}"
        loc = message.get("location")
        if loc is not None:
            if not isinstance(loc, dict):
                return "message.location must be an object"
            for key in ("lat", "lng"):
                try:
                    float(loc.get(key))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    return f"message.location.{key} must be a number"
        contact = message.get("contactId")
        if not (text or atts or loc or contact):
            return "message needs text, attachments, a location or a contactId"
        return message

    def check_to(client_id: str, send_type: object, to: object) -> str | list[str]:
        """The numbers a broadcast goes to, or the problem with ``send_type``/``to``."""
        if send_type not in ("individual", "group"):
            return "send_type must be 'individual' or 'group'"
        if not isinstance(to, str) or not to.strip():
            return "to is required"
        if send_type == "group":
            numbers = st.group_members(client_id, [g.strip() for g in to.split(",") if g.strip()])
            if isinstance(numbers, str):
                return numbers
        else:
            numbers = [n.strip() for n in to.split(",")]
            for n in numbers:
                if not _NUMBER.fullmatch(n):
                    return f"Invalid number {n!r}: use international digits without '+'"
        if st.max_recipients is not None and len(numbers) > st.max_recipients:
            return f"Too many recipients: {len(numbers)} (at most {st.max_recipients})"
        return numbers

    async def create_broadcast(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id, body, _ = auth
        send_type = body.get("send_type", "individual")
        numbers = check_to(client_id, send_type, body.get("to"))
        if isinstance(numbers, str):
            return _error(400, numbers)
        message = check_message(client_id, body.get("message"))
        if isinstance(message, str):
            return _error(400, message)
        now = time.time()
        bid = st.new_id()
        doc = {
            "client_id": client_id,
            "send_type": send_type,
            "to": body["to"],
            "message": message,
            "status": "sending",
            "sent": [],
            "pending": [],
            "failed": [],
            "_id": bid,
            "createdAt": _iso(now),
            "updatedAt": _iso(now),
            "__v": 0,
        }
        with st.lock:
            b = _Broadcast(doc, time.monotonic(), numbers if send_type == "group" else None)
            st.broadcasts[bid] = b
            data = json.loads(json.dumps(doc))
        st.advance(b)  # writes the message-log entries
        return JSONResponse({"status": True, "message": "Broadcast group created successfully!", "data": data})

    def own_broadcast(client_id: str, bid: str) -> _Broadcast | None:
        with st.lock:
            b = st.broadcasts.get(bid)
        return b if b is not None and b.doc["client_id"] == client_id else None

    async def list_broadcasts(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id = auth[0]
        with st.lock:
            mine = [b for b in st.broadcasts.values() if b.doc["client_id"] == client_id]
        data = [st.snapshot(b) for b in mine]
        return JSONResponse({"status": True, "message": "Broadcast fetched successfully!", "data": data})

    async def one_broadcast(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id, body, _ = auth
        bid = request.path_params["id"]
        b = own_broadcast(client_id, bid)
        if b is None:
            return _error(404, "Broadcast not found")
        if request.method == "GET":
            return JSONResponse({"status": True, "message": "Broadcast fetched successfully!",
                                 "data": st.snapshot(b)})
        if request.method == "DELETE":
            with st.lock:
                st.broadcasts.pop(bid, None)
            return Response(status_code=204)
        # PUT
        send_type = body.get("send_type", b.doc["send_type"])
        to = body.get("to", b.doc["to"])
        members = None
        if "send_type" in body or "to" in body:
            numbers = check_to(client_id, send_type, to)
            if isinstance(numbers, str):
                return _error(400, numbers)
            members = numbers if send_type == "group" else []
        message = b.doc["message"]
        if "message" in body:
            if not isinstance(body["message"], dict):
                return _error(400, "message must be an object")
            merged = {**message, **body["message"]}
            checked = check_message(client_id, merged)
            if isinstance(checked, str):
                return _error(400, checked)
            message = checked
        st.advance(b)
        with st.lock:
            b.doc.update({"send_type": send_type, "to": to, "message": message,
                          "updatedAt": _iso(time.time())})
            b.doc["__v"] = int(b.doc.get("__v", 0)) + 1
            if members is not None:
                b.members = members
            b.set_numbers(time.monotonic())
        return Response(status_code=204)

    # ----------------------------------------------------------------- attachments
    async def attachments(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id, _, files = auth
        if request.method == "GET":
            with st.lock:
                data = [dict(rec) for rec, _ in st.attachments.values() if rec.get("client_id") == client_id]
            return JSONResponse({"status": True, "message": "Attachment fetched successfully!", "data": data})
        upload = files.get("file")
        if upload is None:
            return _error(400, "No file uploaded: send the file as multipart field 'file'")
        _filename, ctype, content = upload
        if not content:
            return _error(400, "The uploaded file is empty")
        mimetype = ctype or "application/octet-stream"
        kind = mimetype.split("/", 1)[-1].split("+", 1)[0] or "bin"
        name = "".join(secrets.choice(_NAME_CHARS) for _ in range(15))
        now = _iso(time.time())
        aid = st.new_id()
        rec: dict[str, Any] = {
            "_id": aid,
            "type": kind,
            "mimetype": mimetype,
            "name": name,
            "path": f"./public/attachments/{name}.{kind}",
            "client_id": client_id,
            "createdAt": now,
            "updatedAt": now,
            "__v": 0,
        }
        with st.lock:
            st.attachments[aid] = (rec, content)
        uri = f"data:{mimetype};base64," + base64.b64encode(content).decode("ascii")
        return JSONResponse({"status": True, "message": "Attachment uploaded successfully!", "data": uri})

    async def one_attachment(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id = auth[0]
        aid = request.path_params["id"]
        with st.lock:
            entry = st.attachments.get(aid)
            if entry is None or entry[0].get("client_id") != client_id:
                return _error(404, "Attachment not found")
            if request.method == "DELETE":
                del st.attachments[aid]
                return Response(status_code=204)
            data = dict(entry[0])
        return JSONResponse({"status": True, "message": "Attachment fetched successfully!", "data": data})

    # ----------------------------------------------------------------- contacts and groups
    def envelope(message: str, data: Any) -> JSONResponse:
        return JSONResponse({"status": True, "message": message, "data": json.loads(json.dumps(data))})

    def contact_fields(client_id: str, body: Mapping[str, Any], partial: bool) -> str | dict[str, Any]:
        out: dict[str, Any] = {}
        if "number" in body or not partial:
            number = body.get("number")
            if not isinstance(number, str) or not _NUMBER.fullmatch(number):
                return "number must be international digits without '+'"
            out["number"] = number
        if "name" in body:
            if body["name"] is not None and not isinstance(body["name"], str):
                return "name must be a string"
            out["name"] = body["name"]
        if "group_id" in body:
            gid = body["group_id"]
            group = st.groups.get(str(gid)) if gid is not None else None
            if gid is not None and (group is None or group["client_id"] != client_id):
                return f"Contact group not found: {gid}"
            out["group_id"] = gid
        return out

    async def contacts(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id, body, _ = auth
        if request.method == "GET":
            every = request.query_params.get("type") == "all"
            with st.lock:
                data = [c for c in st.contacts.values() if every or c["client_id"] == client_id]
            return envelope("Contact fetched successfully!", data)
        fields = contact_fields(client_id, body, partial=False)
        if isinstance(fields, str):
            return _error(400, fields)
        now = _iso(time.time())
        cid = st.new_id()
        doc = {"_id": cid, "name": fields.get("name"), "number": fields["number"], "client_id": client_id,
               "group_id": fields.get("group_id"), "channel": "whatsapp",
               "transaction": {"survey_id": None, "survey_sort_id": None},
               "createdAt": now, "updatedAt": now, "__v": 0}
        with st.lock:
            st.contacts[cid] = doc
        return envelope("Contact created successfully!", doc)

    async def one_contact(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id, body, _ = auth
        cid = request.path_params["id"]
        with st.lock:
            doc = st.contacts.get(cid)
            if doc is None or doc["client_id"] != client_id:
                return _error(404, "Contact not found")
            if request.method == "GET":
                return envelope("Contact fetched successfully!", doc)
            if request.method == "DELETE":
                del st.contacts[cid]
                return Response(status_code=204)
            fields = contact_fields(client_id, body, partial=True)
            if isinstance(fields, str):
                return _error(400, fields)
            doc.update(fields, updatedAt=_iso(time.time()))
        return Response(status_code=204)

    async def groups(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id, body, _ = auth
        if request.method == "GET":
            with st.lock:
                data = [g for g in st.groups.values() if g["client_id"] == client_id]
            return envelope("ContactGroup fetched successfully!", data)
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            return _error(400, "title is required")
        now = _iso(time.time())
        gid = st.new_id()
        doc = {"_id": gid, "title": title, "is_default": False, "survey_id": None, "survey_sort_id": None,
               "client_id": client_id, "createdAt": now, "updatedAt": now, "__v": 0}
        with st.lock:
            st.groups[gid] = doc
        return envelope("ContactGroup group created successfully!", doc)

    async def one_group(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id, body, _ = auth
        gid = request.path_params["id"]
        with st.lock:
            doc = st.groups.get(gid)
            if doc is None or doc["client_id"] != client_id:
                return _error(404, "Contact group not found")
            if request.method == "GET":
                return envelope("ContactGroup fetched successfully!", doc)
            if request.method == "DELETE":
                del st.groups[gid]
                for contact in st.contacts.values():  # [INF] members stay, outside any group
                    if contact["group_id"] == gid:
                        contact["group_id"] = None
                return Response(status_code=204)
            title = body.get("title", doc["title"])
            if not isinstance(title, str) or not title.strip():
                return _error(400, "title is required")
            doc.update(title=title, updatedAt=_iso(time.time()))
        return Response(status_code=204)

    # ----------------------------------------------------------------- message log and logout
    async def message_log(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id = auth[0]
        try:
            page = int(request.query_params.get("page", "1"))
            limit = int(request.query_params.get("limit", "10"))
        except ValueError:
            return _error(400, "page and limit must be integers")
        if page < 1 or limit < 1:
            return _error(400, "page and limit must be at least 1")
        every = request.query_params.get("type") == "all"
        with st.lock:
            broadcasts = [b for b in st.broadcasts.values() if every or b.doc["client_id"] == client_id]
        for b in broadcasts:
            st.advance(b)
        with st.lock:
            entries = [e for e in reversed(st.logs.values()) if every or e["client_id"] == client_id]
            chunk = json.loads(json.dumps(entries[(page - 1) * limit : page * limit]))
        return JSONResponse(chunk)  # a bare array (FACTS 4.4)

    async def one_message_log(request: Request) -> Response:
        auth = await guarded(request)
        if isinstance(auth, Response):
            return auth
        client_id = auth[0]
        with st.lock:
            broadcasts = [b for b in st.broadcasts.values() if b.doc["client_id"] == client_id]
        for b in broadcasts:
            st.advance(b)
        with st.lock:
            entry = st.logs.get(request.path_params["id"])
            if entry is None or entry["client_id"] != client_id:
                return _error(404, "Message log not found")
            return envelope("Message log fetched successfully!", entry)

    async def logout(request: Request) -> Response:
        if not st.logout(request.headers.get("authorization"), request.headers.get("x-refresh")):
            return _error(401, "Unauthorized: a valid Bearer access token is required")
        return Response(status_code=204)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, f"Cannot {request.method} {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, f"Method {request.method} not allowed on {request.url.path}")

    app = Starlette(
        routes=[
            Route(f"{PREFIX}/sessions", sessions, methods=["POST"]),
            Route(f"{PREFIX}/sessions", logout, methods=["DELETE"]),
            Route(f"{PREFIX}/contact", contacts, methods=["GET", "POST"]),
            Route(f"{PREFIX}/contact/{{id}}", one_contact, methods=["GET", "PUT", "DELETE"]),
            Route(f"{PREFIX}/contact_groups", groups, methods=["GET", "POST"]),
            Route(f"{PREFIX}/contact_groups/{{id}}", one_group, methods=["GET", "PUT", "DELETE"]),
            Route(f"{PREFIX}/message-log", message_log, methods=["GET"]),
            Route(f"{PREFIX}/message-log/{{id}}", one_message_log, methods=["GET"]),
            Route(f"{PREFIX}/broadcast", create_broadcast, methods=["POST"]),
            Route(f"{PREFIX}/broadcast", list_broadcasts, methods=["GET"]),
            Route(f"{PREFIX}/broadcast/{{id}}", one_broadcast, methods=["GET", "PUT", "DELETE"]),
            Route(f"{PREFIX}/attachment", attachments, methods=["GET", "POST"]),
            Route(f"{PREFIX}/attachment/{{id}}", one_attachment, methods=["GET", "DELETE"]),
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )
    return emulator_app(app, error_body=lambda status, message: {"status": False, "message": message}, vendor=st)
