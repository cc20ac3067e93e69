"""The state of one emulated WAABOT account: every vendor operation as a plain method.

No HTTP here: :class:`WaabotState` is unit-testable on its own; the Starlette routes of
:mod:`smsgate_broadcast.emulator.app` decode requests, call it and wrap what it returns
in WAABOT's envelope. A request the vendor refuses raises :class:`VendorError` (the routes
answer ``{"status": false, "message"}`` with its status). What the emulated API claims
about the vendor, and where each claim comes from, is in :mod:`smsgate_broadcast.emulator`.

Records are kept as the JSON documents the API shows; methods return copies, so a caller
may keep or change what it got without touching the state. Thread-safe (one lock).
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
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

__all__ = ["SANDBOX_CREDENTIALS", "SANDBOX_SETTINGS", "VendorError", "WaabotState"]

#: Credentials the emulator accepts by default (used by ``smsgate sandbox`` and the demo).
SANDBOX_CREDENTIALS: dict[str, str] = {
    "email": "sandbox@waabot.test",
    "password": "sandbox-password",
    "session_id": "sandbox-session-0001",
    "access_token": "sandbox-bot-access-token",
}

#: Extra provider settings for the sandbox (none needed: the adapter adds ``/api/v1``).
SANDBOX_SETTINGS: dict[str, Any] = {}

_NUMBER = re.compile(r"[1-9][0-9]{6,14}")
_NAME_CHARS = string.ascii_uppercase + string.digits
_NO_BEARER = "Unauthorized: a valid Bearer access token is required"

J = TypeVar("J")


class VendorError(Exception):
    """A request the emulated vendor refuses: HTTP ``status`` and WAABOT's ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _iso(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _copy(value: J) -> J:
    """A deep copy of a JSON value (what the API would serialise)."""
    return json.loads(json.dumps(value))  # type: ignore[no-any-return]


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
    """In-memory vendor state of one emulator instance (thread-safe).

    ``users`` maps account emails to passwords and ``bots`` bot ``session_id`` s to their
    ``access_token``; ``delivery_delay``: seconds after creation before a number leaves
    ``pending`` (numbers ending in 9 then fail); ``token_ttl``: seconds an account access
    token lives (``None``: forever); ``max_recipients``: numbers per broadcast (``None``: no
    limit); ``require_bearer=False`` skips the account-token check. ``clock`` is the
    monotonic clock delivery and token expiry follow (tests move it by hand).
    """

    def __init__(
        self,
        *,
        delivery_delay: float = 0.2,
        users: Mapping[str, str] | None = None,
        bots: Mapping[str, str] | None = None,
        require_bearer: bool = True,
        token_ttl: float | None = None,
        max_recipients: int | None = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ids = itertools.count(int.from_bytes(os.urandom(3), "big"))
        self.clock = clock
        self.delivery_delay = delivery_delay
        if users is None:
            users = {SANDBOX_CREDENTIALS["email"]: SANDBOX_CREDENTIALS["password"]}
        if bots is None:
            bots = {SANDBOX_CREDENTIALS["session_id"]: SANDBOX_CREDENTIALS["access_token"]}
        self.users = dict(users)
        #: bot session_id -> (access_token, client_id)
        self.bots = {sid: (token, self.new_id()) for sid, token in bots.items()}
        self.require_bearer = require_bearer
        self.token_ttl = token_ttl
        self.max_recipients = max_recipients
        #: access token -> (email, issued at on ``clock``)
        self.tokens: dict[str, tuple[str, float]] = {}
        #: refresh token -> email
        self.refresh_tokens: dict[str, str] = {}
        self.broadcasts: dict[str, _Broadcast] = {}
        #: attachment _id -> (record, content)
        self.attachments: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        #: message-log entries in the order they were written
        self.logs: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()

    def new_id(self) -> str:
        """A Mongo-style 24-hex ObjectId (seconds, 5 random bytes, a counter)."""
        return f"{int(time.time()):08x}{os.urandom(5).hex()}{next(self._ids) % 0xFFFFFF:06x}"

    # ------------------------------------------------------------- sessions and credentials
    def login(self, email: str, password: str) -> dict[str, str]:
        """``POST /sessions``: tokens for valid account credentials (a bare object [DOC])."""
        with self.lock:
            if not email or self.users.get(email) != password:
                raise VendorError(401, "Invalid email or password")
            access = "eyJ" + secrets.token_urlsafe(24)
            refresh = "eyJ" + secrets.token_urlsafe(24)
            self.tokens[access] = (email, self.clock())
            self.refresh_tokens[refresh] = email
            return {"accessToken": access, "refreshToken": refresh}

    def issue_token(self, email: str) -> str:
        """An access token for ``email`` without a login call (for tests)."""
        with self.lock:
            token = "eyJ" + secrets.token_urlsafe(24)
            self.tokens[token] = (email, self.clock())
            return token

    def logout(self, authorization: str | None, refresh: str | None) -> None:
        """``DELETE /sessions``: end the session of the bearer token (and its ``x-refresh`` token)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise VendorError(401, _NO_BEARER)
        with self.lock:
            if self.tokens.pop(authorization[7:].strip(), None) is None:
                raise VendorError(401, _NO_BEARER)
            if refresh:
                self.refresh_tokens.pop(refresh, None)

    def revoke_tokens(self) -> None:
        """Invalidate every access token (as if they had all expired)."""
        with self.lock:
            self.tokens.clear()

    def bearer_ok(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries a live access token (always, without ``require_bearer``)."""
        if not self.require_bearer:
            return True
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        token = authorization[7:].strip()
        with self.lock:
            entry = self.tokens.get(token)
            if entry is None:
                return False
            if self.token_ttl is not None and self.clock() - entry[1] > self.token_ttl:
                del self.tokens[token]
                return False
            return True

    def check_bearer(self, authorization: str | None) -> None:
        """Refuse (401) a request without a live account token."""
        if not self.bearer_ok(authorization):
            raise VendorError(401, _NO_BEARER)

    def bot(self, session_id: object, access_token: object) -> str:
        """The bot instance's ``client_id`` for valid bot credentials; 403 otherwise."""
        entry = self.bots.get(str(session_id)) if session_id else None
        if entry is None or not access_token or entry[0] != str(access_token):
            raise VendorError(403, "Invalid session_id or access_token")
        return entry[1]

    # ------------------------------------------------------------- broadcasts
    def advance(self, b: _Broadcast) -> None:
        """Move numbers along pending -> sent/failed according to the clock (writing log entries)."""
        with self.lock:
            now = self.clock()
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

    def snapshot(self, b: _Broadcast) -> dict[str, Any]:
        """The broadcast as the API shows it now."""
        self.advance(b)
        with self.lock:
            return _copy(b.doc)

    def group_members(self, client_id: str, group_ids: list[str]) -> list[str]:
        """Distinct numbers of the contacts in ``group_ids`` (400 for an unknown or empty group)."""
        with self.lock:
            for gid in group_ids:
                group = self.groups.get(gid)
                if group is None or group["client_id"] != client_id:
                    raise VendorError(400, f"Contact group not found: {gid}")
            members = [c["number"] for c in self.contacts.values()
                       if c["client_id"] == client_id and c["group_id"] in group_ids]
        if not members:
            raise VendorError(400, "The contact group has no contacts")
        return list(dict.fromkeys(members))

    def recipients(self, client_id: str, send_type: object, to: object) -> list[str]:
        """The numbers a broadcast goes to; 400 for a bad ``send_type``/``to``."""
        if send_type not in ("individual", "group"):
            raise VendorError(400, "send_type must be 'individual' or 'group'")
        if not isinstance(to, str) or not to.strip():
            raise VendorError(400, "to is required")
        if send_type == "group":
            numbers = self.group_members(client_id, [g.strip() for g in to.split(",") if g.strip()])
        else:
            numbers = [n.strip() for n in to.split(",")]
            for n in numbers:
                if not _NUMBER.fullmatch(n):
                    raise VendorError(400, f"Invalid number {n!r}: use international digits without '+'")
        if self.max_recipients is not None and len(numbers) > self.max_recipients:
            raise VendorError(400, f"Too many recipients: {len(numbers)} (at most {self.max_recipients})")
        return numbers

    def checked_message(self, client_id: str, message: object) -> dict[str, Any]:
        """A broadcast's ``message`` object, checked (400: what is wrong)."""
        if not isinstance(message, dict):
            raise VendorError(400, "message is required")
        text = message.get("text", "")
        if not isinstance(text, str):
            raise VendorError(400, "message.text must be a string")
        atts = message.get("attachments", [])
        if not isinstance(atts, list):
            raise VendorError(400, "message.attachments must be an array of attachment ids")
        with self.lock:
            for aid in atts:
                entry = self.attachments.get(str(aid))
                if entry is None or entry[0].get("client_id") != client_id:
                    raise VendorError(400, f"Attachment not found: {aid}")
        loc = message.get("location")
        if loc is not None:
            if not isinstance(loc, dict):
                raise VendorError(400, "message.location must be an object")
            for key in ("lat", "lng"):
                try:
                    float(loc.get(key))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise VendorError(400, f"message.location.{key} must be a number") from None
        if not (text or atts or loc or message.get("contactId")):
            raise VendorError(400, "message needs text, attachments, a location or a contactId")
        return message

    def create_broadcast(self, client_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /broadcast``: the new broadcast as created (``"sending"``, empty lists [DOC])."""
        send_type = body.get("send_type", "individual")
        numbers = self.recipients(client_id, send_type, body.get("to"))
        message = self.checked_message(client_id, body.get("message"))
        now = time.time()
        bid = self.new_id()
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
        with self.lock:
            b = _Broadcast(doc, self.clock(), numbers if send_type == "group" else None)
            self.broadcasts[bid] = b
            created = _copy(doc)
        self.advance(b)  # writes the message-log entries
        return created

    def _own_broadcast(self, client_id: str, bid: str) -> _Broadcast:
        with self.lock:
            b = self.broadcasts.get(bid)
        if b is None or b.doc["client_id"] != client_id:
            raise VendorError(404, "Broadcast not found")
        return b

    def list_broadcasts(self, client_id: str) -> list[dict[str, Any]]:
        """``GET /broadcast``: the bot's broadcasts as they are now."""
        with self.lock:
            mine = [b for b in self.broadcasts.values() if b.doc["client_id"] == client_id]
        return [self.snapshot(b) for b in mine]

    def get_broadcast(self, client_id: str, bid: str) -> dict[str, Any]:
        """``GET /broadcast/{id}``."""
        return self.snapshot(self._own_broadcast(client_id, bid))

    def update_broadcast(self, client_id: str, bid: str, body: Mapping[str, Any]) -> None:
        """``PUT /broadcast/{id}``: merge the fields given (``message`` field by field) [SDK; 204 INF]."""
        b = self._own_broadcast(client_id, bid)
        send_type = body.get("send_type", b.doc["send_type"])
        to = body.get("to", b.doc["to"])
        members = None
        if "send_type" in body or "to" in body:
            numbers = self.recipients(client_id, send_type, to)
            members = numbers if send_type == "group" else []
        message = b.doc["message"]
        if "message" in body:
            if not isinstance(body["message"], dict):
                raise VendorError(400, "message must be an object")
            message = self.checked_message(client_id, {**message, **body["message"]})
        self.advance(b)
        with self.lock:
            b.doc.update({"send_type": send_type, "to": to, "message": message, "updatedAt": _iso(time.time())})
            b.doc["__v"] = int(b.doc.get("__v", 0)) + 1
            if members is not None:
                b.members = members
            b.set_numbers(self.clock())

    def delete_broadcast(self, client_id: str, bid: str) -> None:
        """``DELETE /broadcast/{id}``."""
        self._own_broadcast(client_id, bid)
        with self.lock:
            self.broadcasts.pop(bid, None)

    # ------------------------------------------------------------- attachments
    def upload_attachment(self, client_id: str, upload: tuple[str, str, bytes] | None) -> str:
        """``POST /attachment`` of ``(filename, content type, content)``: the stored file as a data URI [DOC]."""
        if upload is None:
            raise VendorError(400, "No file uploaded: send the file as multipart field 'file'")
        _filename, ctype, content = upload
        if not content:
            raise VendorError(400, "The uploaded file is empty")
        mimetype = ctype or "application/octet-stream"
        kind = mimetype.split("/", 1)[-1].split("+", 1)[0] or "bin"
        name = "".join(secrets.choice(_NAME_CHARS) for _ in range(15))
        now = _iso(time.time())
        aid = self.new_id()
        record: dict[str, Any] = {
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
        with self.lock:
            self.attachments[aid] = (record, content)
        return f"data:{mimetype};base64," + base64.b64encode(content).decode("ascii")

    def list_attachments(self, client_id: str) -> list[dict[str, Any]]:
        """``GET /attachment``: the bot's attachment records."""
        with self.lock:
            return [dict(rec) for rec, _ in self.attachments.values() if rec.get("client_id") == client_id]

    def _own_attachment(self, client_id: str, aid: str) -> dict[str, Any]:
        entry = self.attachments.get(aid)
        if entry is None or entry[0].get("client_id") != client_id:
            raise VendorError(404, "Attachment not found")
        return entry[0]

    def get_attachment(self, client_id: str, aid: str) -> dict[str, Any]:
        """``GET /attachment/{id}``."""
        with self.lock:
            return dict(self._own_attachment(client_id, aid))

    def delete_attachment(self, client_id: str, aid: str) -> None:
        """``DELETE /attachment/{id}``."""
        with self.lock:
            self._own_attachment(client_id, aid)
            del self.attachments[aid]

    # ------------------------------------------------------------- contacts
    def _contact_fields(self, client_id: str, body: Mapping[str, Any], partial: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "number" in body or not partial:
            number = body.get("number")
            if not isinstance(number, str) or not _NUMBER.fullmatch(number):
                raise VendorError(400, "number must be international digits without '+'")
            out["number"] = number
        if "name" in body:
            if body["name"] is not None and not isinstance(body["name"], str):
                raise VendorError(400, "name must be a string")
            out["name"] = body["name"]
        if "group_id" in body:
            gid = body["group_id"]
            group = self.groups.get(str(gid)) if gid is not None else None
            if gid is not None and (group is None or group["client_id"] != client_id):
                raise VendorError(400, f"Contact group not found: {gid}")
            out["group_id"] = gid
        return out

    def list_contacts(self, client_id: str, every_bot: bool = False) -> list[dict[str, Any]]:
        """``GET /contact`` (``every_bot``: ``?type=all``)."""
        with self.lock:
            return _copy([c for c in self.contacts.values() if every_bot or c["client_id"] == client_id])

    def create_contact(self, client_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /contact`` ``{number, name?, group_id?}``: the new contact (the route answers 204 [DOC])."""
        with self.lock:
            fields = self._contact_fields(client_id, body, partial=False)
            now = _iso(time.time())
            cid = self.new_id()
            doc = {"_id": cid, "name": fields.get("name"), "number": fields["number"], "client_id": client_id,
                   "group_id": fields.get("group_id"), "channel": "whatsapp",
                   "transaction": {"survey_id": None, "survey_sort_id": None},
                   "createdAt": now, "updatedAt": now, "__v": 0}
            self.contacts[cid] = doc
            return _copy(doc)

    def _own_contact(self, client_id: str, cid: str) -> dict[str, Any]:
        doc = self.contacts.get(cid)
        if doc is None or doc["client_id"] != client_id:
            raise VendorError(404, "Contact not found")
        return doc

    def get_contact(self, client_id: str, cid: str) -> dict[str, Any]:
        """``GET /contact/{id}``."""
        with self.lock:
            return _copy(self._own_contact(client_id, cid))

    def update_contact(self, client_id: str, cid: str, body: Mapping[str, Any]) -> None:
        """``PUT /contact/{id}``: the fields given [204 INF]."""
        with self.lock:
            doc = self._own_contact(client_id, cid)
            doc.update(self._contact_fields(client_id, body, partial=True), updatedAt=_iso(time.time()))

    def delete_contact(self, client_id: str, cid: str) -> None:
        """``DELETE /contact/{id}``."""
        with self.lock:
            self._own_contact(client_id, cid)
            del self.contacts[cid]

    # ------------------------------------------------------------- contact groups
    def list_groups(self, client_id: str) -> list[dict[str, Any]]:
        """``GET /contact_groups``."""
        with self.lock:
            return _copy([g for g in self.groups.values() if g["client_id"] == client_id])

    def create_group(self, client_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /contact_groups`` ``{title}``: the new group."""
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise VendorError(400, "title is required")
        now = _iso(time.time())
        gid = self.new_id()
        doc = {"_id": gid, "title": title, "is_default": False, "survey_id": None, "survey_sort_id": None,
               "client_id": client_id, "createdAt": now, "updatedAt": now, "__v": 0}
        with self.lock:
            self.groups[gid] = doc
            return _copy(doc)

    def _own_group(self, client_id: str, gid: str) -> dict[str, Any]:
        doc = self.groups.get(gid)
        if doc is None or doc["client_id"] != client_id:
            raise VendorError(404, "Contact group not found")
        return doc

    def get_group(self, client_id: str, gid: str) -> dict[str, Any]:
        """``GET /contact_groups/{id}``."""
        with self.lock:
            return _copy(self._own_group(client_id, gid))

    def update_group(self, client_id: str, gid: str, body: Mapping[str, Any]) -> None:
        """``PUT /contact_groups/{id}`` ``{title}`` (the route answers 200 with the group [DOC])."""
        with self.lock:
            doc = self._own_group(client_id, gid)
            title = body.get("title", doc["title"])
            if not isinstance(title, str) or not title.strip():
                raise VendorError(400, "title is required")
            doc.update(title=title, updatedAt=_iso(time.time()))

    def delete_group(self, client_id: str, gid: str) -> None:
        """``DELETE /contact_groups/{id}``: its contacts stay, outside any group [INF]."""
        with self.lock:
            self._own_group(client_id, gid)
            del self.groups[gid]
            for contact in self.contacts.values():
                if contact["group_id"] == gid:
                    contact["group_id"] = None

    # ------------------------------------------------------------- message log
    def _advance_all(self, client_id: str | None) -> None:
        """Bring the broadcasts of ``client_id`` (``None``: every bot) up to date."""
        with self.lock:
            broadcasts = [b for b in self.broadcasts.values() if client_id is None or b.doc["client_id"] == client_id]
        for b in broadcasts:
            self.advance(b)

    def message_log(self, client_id: str, page: int, limit: int, every_bot: bool = False) -> list[dict[str, Any]]:
        """``GET /message-log?page=&limit=`` (``every_bot``: ``&type=all``): one page, newest first."""
        if page < 1 or limit < 1:
            raise VendorError(400, "page and limit must be at least 1")
        self._advance_all(None if every_bot else client_id)
        with self.lock:
            entries = [e for e in reversed(self.logs.values()) if every_bot or e["client_id"] == client_id]
            return _copy(entries[(page - 1) * limit : page * limit])

    def message_log_entry(self, client_id: str, log_id: str) -> dict[str, Any]:
        """``GET /message-log/{id}``."""
        self._advance_all(client_id)
        with self.lock:
            entry = self.logs.get(log_id)
            if entry is None or entry["client_id"] != client_id:
                raise VendorError(404, "Message log not found")
            return _copy(entry)
