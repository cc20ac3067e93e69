"""An in-memory emulator of Colony's REST API (Django REST framework style).

Speaks the same paths (``DEFAULT_PATHS``, or ``create_app(paths=...)``), field names,
OAuth2 password grant, DRF paging ``{count, next, previous, results}`` (or plain arrays
with ``paginate=False``), DRF error bodies (``{"detail": ...}``, ``{"field": ["msg"]}``)
and multipart CSV uploads (field ``file``) as the adapter expects. Everything the vendor
does not publish follows the [INF] notes of ``docs/providers/colony.md``.

Behaviour:

* every message costs one credit per started 160-character chunk;
* a message "settles" ``delivery_delay`` seconds after dispatch: numbers ending in 9
  end up unsent, others sent; statistics count ``total`` at once and sent/unsent once
  settled; deployments move scheduled (2) -> sending (3) -> sent (4), or failed (7);
* opted-out numbers are suppressed (counted in ``sms_optout_count``) for single and
  bulk sends and for deployments with ``optout`` or ``marketing`` set;
* opt-outs are seeded with ``create_app(optouts=[...])``, ``POST /_colony/optouts`` or
  a STOP reply ``POST /_colony/inbound {"originator", "text": "STOP"}``;
* saved queries (the numbers behind saved-query contact lists) are seeded with
  ``create_app(saved_queries={7: [...]})`` or ``POST /_colony/saved_queries``;
* collate campaigns (what ``campaign_pk`` names) are seeded with
  ``create_app(collate_campaigns=[...])`` (then ``campaign_pk`` is checked against them)
  or ``POST /_colony/campaigns``; every ``POST /_colony/inbound`` is also listed as a
  received message (``GET /collate/campaigns/message/``);
* deployments not yet sending may be changed (``PUT``/``PATCH``) or deleted;
* ``POST /_colony/reset`` forgets all state (a fresh account);
  ``POST /_colony/revoke_tokens`` invalidates every access token (to exercise the
  401 -> new token -> retry path); ``GET /_colony/filebox`` lists generated reports;
  ``GET /_colony/messages`` lists every message handed over.

Fault injection (latency, 5xx, 429, hangs, malformed bodies) comes from
:func:`smsgate.emulation.emulator_app`, with DRF-shaped error bodies.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate.emulation import emulator_app
from smsgate_colony.options import DEFAULT_PATHS
from smsgate_colony.wire import PERIODS, credits_for

__all__ = ["SANDBOX_CREDENTIALS", "SANDBOX_SETTINGS", "ColonyEmulator", "create_app", "parse_multipart"]

#: Credentials the emulator accepts by default (``smsgate sandbox``, README demo).
SANDBOX_CREDENTIALS: dict[str, str] = {
    "client_id": "colony-sandbox-client",
    "client_secret": "colony-sandbox-client-secret",
    "username": "sandbox@colony.test",
    "password": "colony-sandbox-password",
}

#: Settings hints for a provider pointing at the emulator (base_url is the server's).
SANDBOX_SETTINGS: dict[str, Any] = {"plugin": "colony", "credentials": dict(SANDBOX_CREDENTIALS)}

COMPANY_ID = 1
USER_ID = 1
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "OPT-OUT", "CANCEL", "END", "QUIT"})
_MSISDN_RE = re.compile(r"[1-9][0-9]{7,14}")
_BAD_NUMBER = "Enter a valid mobile number in international format, e.g. 27815854565."
Handler = Callable[..., Awaitable[Response]]


class _Invalid(Exception):
    """A DRF 400: ``detail`` is the error body."""

    def __init__(self, detail: Any, status: int = 400) -> None:
        super().__init__(str(detail))
        self.detail = detail
        self.status = status


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _truncate(moment: datetime, period: str) -> tuple[datetime, datetime]:
    """The period bucket [start, end) containing ``moment``."""
    if period == "hourly":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    if period == "daily":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    if period == "monthly":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start, nxt
    start = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, start.replace(year=start.year + 1)


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Split a ``multipart/form-data`` body into (fields, files) with the stdlib parser."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    msg = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise ValueError("not a multipart body")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = (str(filename), payload)
        else:
            fields[str(name)] = payload.decode("utf-8", "replace")
    return fields, files


@dataclass
class _Send:
    """One message handed to the network."""

    id: int
    destination: str
    message: str
    credits: int
    at: datetime
    due: float
    deployment: int | None = None
    campaign_pk: int | None = None
    suppressed: bool = False

    @property
    def fails(self) -> bool:
        return self.destination.endswith("9")

    def public(self, now: float) -> dict[str, Any]:
        if self.suppressed:
            state = "optout"
        elif now < self.due:
            state = "pending"
        else:
            state = "unsent" if self.fails else "sent"
        return {
            "id": self.id, "destination": self.destination, "message": self.message,
            "credits": self.credits, "deployment": self.deployment, "campaign_pk": self.campaign_pk,
            "date_sent": _iso(self.at), "state": state,
        }


@dataclass
class _Deployment:
    record: dict[str, Any]
    start: float
    rows: list[tuple[str, str]] = field(default_factory=list)


class ColonyEmulator:
    """State and route handlers of one emulated Colony account."""

    def __init__(
        self,
        *,
        credentials: Mapping[str, str] | None = None,
        delivery_delay: float = 0.2,
        token_ttl: int = 86399,
        page_size: int = 50,
        paginate: bool = True,
        saved_queries: Mapping[int, Iterable[str]] | None = None,
        optouts: Iterable[str | Mapping[str, Any]] | None = None,
        paths: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        collate_campaigns: Iterable[str | Mapping[str, Any]] | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "credentials": credentials, "delivery_delay": delivery_delay, "token_ttl": token_ttl,
            "page_size": page_size, "paginate": paginate, "saved_queries": saved_queries,
            "optouts": optouts, "paths": paths, "clock": clock, "collate_campaigns": collate_campaigns,
        }
        #: Seconds since the epoch; replace it to move the emulator through time in tests.
        self.clock = clock
        self.credentials = dict(credentials or SANDBOX_CREDENTIALS)
        self.delivery_delay = delivery_delay
        self.token_ttl = token_ttl
        self.page_size = page_size
        self.paginate = paginate
        self.paths = {**DEFAULT_PATHS, **(paths or {})}
        self.ids = {k: itertools.count(1) for k in
                    ("list", "contact", "deployment", "optout", "send", "stat", "file", "campaign", "inbound")}
        self.tokens: dict[str, float] = {}
        self.refresh_tokens: set[str] = set()
        self.company: dict[str, Any] = {"id": COMPANY_ID}
        self.lists: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.saved_queries: dict[int, list[str]] = {int(k): list(v) for k, v in (saved_queries or {}).items()}
        self.deployments: dict[int, _Deployment] = {}
        self.optouts: dict[int, dict[str, Any]] = {}
        self.sends: list[_Send] = []
        self.filebox: list[dict[str, Any]] = []
        self.stat_ids: dict[tuple[str, int | None, str], int] = {}
        #: collate campaigns by id; given campaigns make campaign_pk checked against them
        self.campaigns: dict[int, dict[str, Any]] = {}
        self.check_campaign_pk = collate_campaigns is not None
        self.inbound: dict[int, dict[str, Any]] = {}
        for entry in collate_campaigns or []:
            if isinstance(entry, str):
                self.add_campaign(entry)
            else:
                self.add_campaign(str(entry.get("title") or ""), entry.get("id"))
        for item in optouts or []:
            if isinstance(item, str):
                self.add_optout(item, "seeded")
            else:
                self.add_optout(str(item["originator"]), str(item.get("reason") or "seeded"))

    def reset(self) -> None:
        """Forget everything (lists, deployments, messages, opt-outs, tokens): a fresh account."""
        paths = self.paths
        self.__init__(**self._options)  # type: ignore[misc]
        if self.paths != paths:  # pragma: no cover - routes were built from the old paths
            raise RuntimeError("paths cannot change on reset")

    # ------------------------------------------------------------ plumbing
    def now(self) -> datetime:
        """The emulator's current time (UTC)."""
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def _ok(self, body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status)

    def _error(self, detail: Any, status: int = 400, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(detail, status_code=status, headers=headers)

    def _authorised(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        www = {"WWW-Authenticate": 'Bearer realm="api"'}
        if not header:
            return self._error({"detail": "Authentication credentials were not provided."}, 401, www)
        scheme, _, token = header.partition(" ")
        expiry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= self.clock():
            self.tokens.pop(token.strip(), None)
            return self._error({"detail": "Invalid token"}, 401, www)
        return None

    async def _json(self, request: Request) -> Any:
        body = await request.body()
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError as exc:
            raise _Invalid({"detail": f"JSON parse error - {exc}"}) from None

    async def _multipart(self, request: Request) -> tuple[dict[str, str], bytes]:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise _Invalid({"detail": f'Unsupported media type "{ctype}" in request.'}, 415)
        try:
            fields, files = parse_multipart(ctype, await request.body())
        except ValueError:
            raise _Invalid({"detail": "Multipart form parse error."}) from None
        if "file" not in files:
            raise _Invalid({"file": ["No file was submitted."]})
        content = files["file"][1]
        if not content.strip():
            raise _Invalid({"file": ["The submitted file is empty."]})
        return fields, content

    def _page(self, request: Request, items: list[Any]) -> JSONResponse:
        if not self.paginate:
            return self._ok(items)
        try:
            size = min(1000, max(1, int(request.query_params.get("page_size", self.page_size))))
            page = int(request.query_params.get("page", "1"))
        except ValueError:
            return self._error({"detail": "Invalid page."}, 404)
        pages = max(1, -(-len(items) // size))
        if page < 1 or page > pages:
            return self._error({"detail": "Invalid page."}, 404)
        chunk = items[(page - 1) * size : page * size]
        nxt = str(request.url.include_query_params(page=page + 1)) if page < pages else None
        prev = None
        if page > 1:
            prev = str(request.url.include_query_params(page=page - 1) if page > 2
                       else request.url.remove_query_params("page"))
        return self._ok({"count": len(items), "next": nxt, "previous": prev, "results": chunk})

    def _number(self, value: Any) -> str:
        text = str(value).strip() if value is not None else ""
        if not _MSISDN_RE.fullmatch(text):
            raise ValueError(_BAD_NUMBER)
        return text

    # -------------------------------------------------------------- opt-outs
    def active_optout(self, msisdn: str) -> dict[str, Any] | None:
        """The active opt-out of ``msisdn`` (digits), if any."""
        for o in self.optouts.values():
            if o["originator"] == msisdn and o["date_overwritten"] is None:
                return o
        return None

    def add_optout(self, originator: str, reason: str = "") -> dict[str, Any]:
        """Record an opt-out (``originator`` in digits or E.164); returns the existing active one if any."""
        msisdn = originator.strip().lstrip("+")
        existing = self.active_optout(msisdn)
        if existing is not None:
            return existing
        oid = next(self.ids["optout"])
        record = {
            "id": oid, "originator": msisdn, "date_opted_out": _iso(self.now()), "reason": reason,
            "date_overwritten": None, "overwritten_by": None, "company": COMPANY_ID,
        }
        self.optouts[oid] = record
        return record

    # --------------------------------------------------------------- collate
    def add_campaign(self, title: str, campaign_id: Any = None) -> dict[str, Any]:
        """Create a collate campaign (Colony's UI does this; the API only lists them)."""
        cid = int(campaign_id) if campaign_id is not None else next(self.ids["campaign"])
        if cid in self.campaigns:
            raise _Invalid({"id": [f"A campaign with id {cid} already exists."]})
        now = _iso(self.now())
        record = {"id": cid, "title": title or f"Campaign {cid}", "company": COMPANY_ID,
                  "date_created": now, "date_updated": now}
        self.campaigns[cid] = record
        return record

    def receive(self, originator: str, text: str, campaign: int | None = None,
                network: int | None = None) -> dict[str, Any]:
        """Record an inbound message (a reply) with the collate message model's fields."""
        if campaign is not None and campaign not in self.campaigns:
            raise _Invalid({"campaign": [f'Invalid pk "{campaign}" - object does not exist.']})
        mid = next(self.ids["inbound"])
        now = _iso(self.now())
        record = {
            "originator": originator, "campaign": campaign, "date_updated": now, "text": text,
            "company": COMPANY_ID, "fav": False, "blacklisted": self.active_optout(originator) is not None,
            "fraud_incident": False, "reason": None, "id": mid, "fraud_suspect": False, "slot": None,
            "extra_digits": "", "network": network, "session_data": None, "reply_path_message": False,
            "backend_id": f"emu-{mid:08d}", "longitude": None, "provider": None, "latitude": None,
            "date_created": now, "backend": "emulator", "additional_data": None,
        }
        self.inbound[mid] = record
        return record

    # ------------------------------------------------------------- sending
    def _dispatch(self, destination: str, message: str, *, at: float, deployment: int | None = None,
                  campaign_pk: int | None = None, honour_optouts: bool = True) -> _Send:
        send = _Send(
            id=next(self.ids["send"]), destination=destination, message=message,
            credits=credits_for(message), at=datetime.fromtimestamp(at, timezone.utc),
            due=at + self.delivery_delay, deployment=deployment, campaign_pk=campaign_pk,
            suppressed=honour_optouts and self.active_optout(destination) is not None,
        )
        self.sends.append(send)
        return send

    def _deployment_view(self, dep: _Deployment) -> dict[str, Any]:
        now = self.clock()
        rec = dep.record
        if rec["error"]:
            rec["status"] = 7
        elif now < dep.start:
            rec["status"] = 2
        elif now < dep.start + self.delivery_delay:
            rec["status"] = 3
        else:
            rec["status"] = 4
        return dict(rec)

    def _deployment_fields(self, fields: Mapping[str, Any]) -> tuple[str, dict[str, Any], float]:
        """Validate a deployment's title, flags and send_date: (title, flags, start epoch)."""
        errors: dict[str, list[str]] = {}
        title = str(fields.get("title") or "").strip()
        if not title:
            errors["title"] = ["This field may not be blank." if "title" in fields else "This field is required."]
        flags: dict[str, Any] = {}
        for name in ("marketing", "optout"):
            raw = fields.get(name, False)
            if isinstance(raw, str):
                if raw.lower() not in ("true", "false", "1", "0", ""):
                    errors[name] = ["Must be a valid boolean."]
                raw = raw.lower() in ("true", "1")
            flags[name] = bool(raw)
        for name in ("linked_campaign", "dispatch"):
            raw = fields.get(name)
            if raw in (None, ""):
                flags[name] = None if name == "linked_campaign" else 1
                continue
            try:
                flags[name] = int(raw)
            except (TypeError, ValueError):
                errors[name] = ["A valid integer is required."]
        start = self.clock()
        send_date = fields.get("send_date")
        if send_date not in (None, ""):
            try:
                when = datetime.fromisoformat(str(send_date).replace("Z", "+00:00"))
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                start = max(start, when.timestamp())
            except ValueError:
                errors["send_date"] = ["Datetime has wrong format."]
        if errors:
            raise _Invalid(errors)
        return title, flags, start

    def _new_deployment(self, fields: Mapping[str, Any], rows: list[tuple[str, str]]) -> _Deployment:
        title, flags, start = self._deployment_fields(fields)
        now = self.now()
        did = next(self.ids["deployment"])
        record = {
            "id": did, "title": title, "status": 2, "marketing": flags["marketing"],
            "optout": flags["optout"], "dispatch": flags["dispatch"], "total_credits": 0,
            "total_contacts": 0, "send_date": _iso(datetime.fromtimestamp(start, timezone.utc)),
            "error": "", "linked_campaign": flags["linked_campaign"], "company": COMPANY_ID,
            "created_by": USER_ID, "updated_by": USER_ID, "approved_by": USER_ID,
            "date_created": _iso(now), "date_updated": _iso(now),
        }
        dep = _Deployment(record, start)
        self.deployments[did] = dep
        self._add_rows(dep, rows)
        return dep

    def _add_rows(self, dep: _Deployment, rows: list[tuple[str, str]]) -> None:
        rec = dep.record
        honour = bool(rec["marketing"] or rec["optout"])
        for destination, message in rows:
            send = self._dispatch(destination, message, at=dep.start, deployment=rec["id"],
                                  campaign_pk=rec["linked_campaign"], honour_optouts=honour)
            dep.rows.append((destination, message))
            rec["total_contacts"] += 1
            if not send.suppressed:
                rec["total_credits"] += send.credits
        rec["date_updated"] = _iso(self.now())
        if not dep.rows:
            rec["error"] = "The deployment has no recipients."

    def _csv_rows(self, content: bytes, columns: tuple[str, ...]) -> list[dict[str, str]]:
        """CSV rows (header required); bad rows reported by row number, DRF style."""
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _Invalid({"file": ["The file must be UTF-8 encoded CSV."]}) from None
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in columns if c not in header]
        if missing:
            raise _Invalid({"file": [f"The CSV header must include the column(s): {', '.join(missing)}."]})
        rows: list[dict[str, str]] = []
        problems: list[str] = []
        for raw in reader:
            number = reader.line_num  # the file's line (header = 1), blank lines counted
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            if not any(row.values()):
                continue
            if "msisdn" in columns or "destination" in columns:
                key = "msisdn" if "msisdn" in columns else "destination"
                if not _MSISDN_RE.fullmatch(row.get(key, "")):
                    problems.append(f"Row {number}: {row.get(key, '')!r} is not a valid mobile number in "
                                    "international format (e.g. 27815854565).")
                    continue
            if "message" in columns and not row.get("message"):
                problems.append(f"Row {number}: message may not be blank.")
                continue
            rows.append(row)
        if problems:
            raise _Invalid({"file": problems})
        if not rows:
            raise _Invalid({"file": ["The file contains no rows."]})
        return rows

    # ============================================================ handlers
    async def token(self, request: Request) -> Response:
        """``POST /oauth2/access_token/`` (form-encoded password / refresh_token grants)."""
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return self._error({"error": "invalid_request"}, 400)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if (form.get("client_id") != self.credentials["client_id"]
                or form.get("client_secret") != self.credentials["client_secret"]):
            return self._error({"error": "invalid_client"}, 400)
        grant = form.get("grant_type")
        if grant == "password":
            if (form.get("username") != self.credentials["username"]
                    or form.get("password") != self.credentials["password"]):
                return self._error({"error": "invalid_grant"}, 400)
        elif grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if refresh not in self.refresh_tokens:
                return self._error({"error": "invalid_grant"}, 400)
            self.refresh_tokens.discard(refresh)
        else:
            return self._error({"error": "unsupported_grant_type"}, 400)
        access = secrets.token_hex(20)
        refresh = secrets.token_hex(20)
        self.tokens[access] = self.clock() + self.token_ttl
        self.refresh_tokens.add(refresh)
        return self._ok({"access_token": access, "scope": "read", "expires_in": self.token_ttl,
                         "refresh_token": refresh})

    # ---------------------------------------------------------- contact lists
    def _list_or_404(self, list_id: int) -> dict[str, Any]:
        record = self.lists.get(list_id)
        if record is None:
            raise _Invalid({"detail": "Not found."}, 404)
        return record

    def _list_fields(self, body: Any, partial: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
        errors: dict[str, list[str]] = {}
        out: dict[str, Any] = {}
        if "title" in body or not partial:
            title = str(body.get("title") or "").strip()
            if not title:
                errors["title"] = ["This field may not be blank." if "title" in body else "This field is required."]
            out["title"] = title
        if "saved_query" in body:
            q = body["saved_query"]
            if q is None:
                out["saved_query"] = None
            else:
                try:
                    qid = int(q)
                except (TypeError, ValueError):
                    errors["saved_query"] = ["Incorrect type. Expected pk value."]
                else:
                    if qid not in self.saved_queries:
                        errors["saved_query"] = [f'Invalid pk "{qid}" - object does not exist.']
                    out["saved_query"] = qid
        if errors:
            raise _Invalid(errors)
        return out

    def _create_list(self, title: str, saved_query: int | None = None) -> dict[str, Any]:
        now = _iso(self.now())
        lid = next(self.ids["list"])
        record = {"saved_query": saved_query, "title": title, "date_updated": now, "date_created": now,
                  "company": COMPANY_ID, "id": lid}
        self.lists[lid] = record
        return record

    def _list_numbers(self, list_id: int) -> list[str]:
        return [c["msisdn"] for c in self.contacts.values() if c["contact_list"] == list_id]

    def _add_contact(self, list_id: int, msisdn: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        cid = next(self.ids["contact"])
        record = {**(extra or {}), "id": cid, "contact_list": list_id, "msisdn": msisdn}
        self.contacts[cid] = record
        self.lists[list_id]["date_updated"] = _iso(self.now())
        return record

    async def contactlists(self, request: Request) -> Response:
        """``GET`` list / ``POST`` create contact lists."""
        if request.method == "GET":
            return self._page(request, [dict(v) for v in self.lists.values()])
        fields = self._list_fields(await self._json(request), partial=False)
        return self._ok(self._create_list(fields["title"], fields.get("saved_query")), 201)

    async def contactlist(self, request: Request) -> Response:
        """``GET PUT PATCH DELETE`` one contact list."""
        list_id = request.path_params["id"]
        record = self._list_or_404(list_id)
        if request.method == "GET":
            return self._ok(dict(record))
        if request.method == "DELETE":
            return await self.contactlist_delete(request)
        fields = self._list_fields(await self._json(request), partial=request.method == "PATCH")
        record.update(fields)
        record["date_updated"] = _iso(self.now())
        return self._ok(dict(record))

    async def contactlist_delete(self, request: Request) -> Response:
        """``DELETE`` a contact list and its contacts."""
        list_id = request.path_params["id"]
        self._list_or_404(list_id)
        del self.lists[list_id]
        for cid in [c for c, rec in self.contacts.items() if rec["contact_list"] == list_id]:
            del self.contacts[cid]
        return Response(status_code=204)

    async def contactlists_bulk_delete(self, request: Request) -> Response:
        """``DELETE {"ids": [...]}``: delete several lists and their contacts, all or nothing."""
        body = await self._json(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            raise _Invalid({"ids": ["This field is required." if not ids else "Expected a list of items."]})
        wanted: list[int] = []
        for value in ids:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Invalid({"ids": [f'Incorrect type. Expected pk value, received {type(value).__name__}.']})
            wanted.append(value)
        missing = [i for i in wanted if i not in self.lists]
        if missing:
            raise _Invalid({"detail": f"Not found: contact list(s) {', '.join(map(str, missing))}."}, 404)
        for list_id in wanted:
            del self.lists[list_id]
        self.contacts = {c: rec for c, rec in self.contacts.items() if rec["contact_list"] not in wanted}
        return Response(status_code=204)

    async def contactlist_import(self, request: Request) -> Response:
        """``POST`` a CSV (field ``file``, column ``msisdn``) creating a new list titled ``title``; answers ``{}``."""
        fields, content = await self._multipart(request)
        title = fields.get("title", "").strip()
        rows = self._csv_rows(content, ("msisdn",))
        if not title:
            raise _Invalid({"title": ["This field is required."]})
        record = self._create_list(title)
        for row in rows:
            self._add_contact(record["id"], row.pop("msisdn"), row)
        return self._ok({}, 201)  # seed 002 documents {} for this answer

    async def contactlist_import_into(self, request: Request) -> Response:
        """``POST`` a CSV adding contacts to an existing list; answers ``{}`` (seed 002)."""
        record = self._list_or_404(request.path_params["id"])
        _, content = await self._multipart(request)
        for row in self._csv_rows(content, ("msisdn",)):
            self._add_contact(record["id"], row.pop("msisdn"), row)
        return self._ok({}, 201)

    async def contactlist_refresh(self, request: Request) -> Response:
        """``GET``: re-run the list's saved query and repopulate it; answers ``{}`` (seed 002)."""
        record = self._list_or_404(request.path_params["id"])
        qid = record["saved_query"]
        if qid is None:
            raise _Invalid({"saved_query": ["This contact list is not backed by a saved query."]})
        for cid in [c for c, rec in self.contacts.items() if rec["contact_list"] == record["id"]]:
            del self.contacts[cid]
        for msisdn in self.saved_queries.get(qid, []):
            self._add_contact(record["id"], msisdn)
        return self._ok({})

    async def contactlist_generate(self, request: Request) -> Response:
        """``POST {contact_list, saved_query?}``: launch the task saving contacts into a list."""
        body = await self._json(request)
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        try:
            list_id = int(body.get("contact_list"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _Invalid({"contact_list": ["This field is required."]}) from None
        if list_id not in self.lists:
            raise _Invalid({"contact_list": [f'Invalid pk "{list_id}" - object does not exist.']})
        qid = body.get("saved_query", self.lists[list_id]["saved_query"])
        try:
            qid = int(qid) if qid is not None else None
        except (TypeError, ValueError):
            raise _Invalid({"saved_query": ["Incorrect type. Expected pk value."]}) from None
        if qid is None or qid not in self.saved_queries:
            raise _Invalid({"saved_query": ["A saved query is required to generate a contact list."]})
        have = set(self._list_numbers(list_id))
        for msisdn in self.saved_queries[qid]:
            if msisdn not in have:
                self._add_contact(list_id, msisdn)
                have.add(msisdn)
        return self._ok({"contact_list": list_id, "saved_query": qid}, 202)

    # --------------------------------------------------------------- contacts
    def _contact_fields(self, body: Any, partial: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        errors: dict[str, list[str]] = {}
        out = {k: v for k, v in body.items() if k not in ("id", "contact_list", "msisdn")}
        if "contact_list" in body or not partial:
            try:
                lid = int(body.get("contact_list"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                errors["contact_list"] = ["This field is required."]
            else:
                if lid not in self.lists:
                    errors["contact_list"] = [f'Invalid pk "{lid}" - object does not exist.']
                out["contact_list"] = lid
        if "msisdn" in body or not partial:
            try:
                out["msisdn"] = self._number(body.get("msisdn"))
            except ValueError as exc:
                errors["msisdn"] = [str(exc)]
        if errors:
            raise _Invalid(errors)
        return out

    async def contacts_view(self, request: Request) -> Response:
        """``GET`` (``?contact_list=``) / ``POST`` batch (array) or single contact creation."""
        if request.method == "GET":
            items = list(self.contacts.values())
            lid = request.query_params.get("contact_list")
            if lid:
                items = [c for c in items if str(c["contact_list"]) == lid]
            return self._page(request, [dict(c) for c in items])
        body = await self._json(request)
        many = isinstance(body, list)
        entries = body if many else [body]
        valid: list[dict[str, Any]] = []
        errors: list[Any] = []
        for entry in entries:
            try:
                valid.append(self._contact_fields(entry, partial=False))
                errors.append({})
            except _Invalid as exc:
                errors.append(exc.detail)
        if any(errors):
            raise _Invalid(errors if many else errors[0])
        created = []
        for fields in valid:
            lid = fields.pop("contact_list")
            created.append(self._add_contact(lid, fields.pop("msisdn"), fields))
        return self._ok([dict(c) for c in created] if many else dict(created[0]), 201)

    async def contact(self, request: Request) -> Response:
        """``GET PUT PATCH DELETE`` one contact."""
        cid = request.path_params["id"]
        record = self.contacts.get(cid)
        if record is None:
            raise _Invalid({"detail": "Not found."}, 404)
        if request.method == "GET":
            return self._ok(dict(record))
        if request.method == "DELETE":
            del self.contacts[cid]
            return Response(status_code=204)
        record.update(self._contact_fields(await self._json(request), partial=request.method == "PATCH"))
        return self._ok(dict(record))

    # ---------------------------------------------------------------- company
    async def company_view(self, request: Request) -> Response:
        """``GET PUT PATCH`` the company's details (field list unpublished: stored as given)."""
        if request.method == "GET":
            return self._ok(dict(self.company))
        body = await self._json(request)
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        if request.method == "PUT":
            self.company = {"id": COMPANY_ID}
        self.company.update({k: v for k, v in body.items() if k != "id"})
        return self._ok(dict(self.company))

    # ------------------------------------------------------------ deployments
    def _deployment_or_404(self, did: int) -> _Deployment:
        dep = self.deployments.get(did)
        if dep is None:
            raise _Invalid({"detail": "Not found."}, 404)
        return dep

    async def deployments_view(self, request: Request) -> Response:
        """``GET`` list / ``POST`` create a deployment from the published model's fields.

        The model (seed 002) has no audience or message field: like a DRF serializer,
        unknown fields (e.g. ``contact_list``, ``message``) are ignored, so a deployment
        created here has no recipients (it fails with an error); recipients come from
        the CSV imports.
        """
        if request.method == "GET":
            return self._page(request, [self._deployment_view(d) for d in self.deployments.values()])
        body = await self._json(request)
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        dep = self._new_deployment(body, [])
        return self._ok(self._deployment_view(dep), 201)

    async def deployment(self, request: Request) -> Response:
        """``GET PUT PATCH DELETE`` one deployment; changes only while it has not started sending."""
        dep = self._deployment_or_404(request.path_params["id"])
        if request.method == "GET":
            return self._ok(self._deployment_view(dep))
        if self._deployment_view(dep)["status"] != 2:
            raise _Invalid({"non_field_errors": ["This deployment has already been sent."]})
        did = dep.record["id"]
        if request.method == "DELETE":
            del self.deployments[did]
            self.sends = [s for s in self.sends if s.deployment != did]
            return Response(status_code=204)
        body = await self._json(request)
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        known = ("title", "send_date", "marketing", "optout", "linked_campaign", "dispatch")
        rec = dep.record
        current = {k: rec[k] for k in known if rec[k] is not None} if request.method == "PATCH" else {}
        title, flags, start = self._deployment_fields({**current, **{k: body[k] for k in known if k in body}})
        rec.update(title=title, **flags)
        rec["send_date"] = _iso(datetime.fromtimestamp(start, timezone.utc))
        rec["date_updated"] = _iso(self.now())
        dep.start = start
        honour = bool(rec["marketing"] or rec["optout"])
        rec["total_credits"] = 0
        for send in self.sends:
            if send.deployment == did:
                send.at = datetime.fromtimestamp(start, timezone.utc)
                send.due = start + self.delivery_delay
                send.campaign_pk = rec["linked_campaign"]
                send.suppressed = honour and self.active_optout(send.destination) is not None
                rec["total_credits"] += 0 if send.suppressed else send.credits
        return self._ok(self._deployment_view(dep))

    async def deployment_import(self, request: Request) -> Response:
        """``POST`` CSV ``destination,message`` rows creating a deployment."""
        fields, content = await self._multipart(request)
        rows = self._csv_rows(content, ("destination", "message"))
        dep = self._new_deployment(fields, [(r["destination"], r["message"]) for r in rows])
        return self._ok(self._deployment_view(dep), 201)

    async def deployment_import_numbers(self, request: Request) -> Response:
        """``POST`` CSV of ``destination`` numbers + form field ``message`` creating a deployment."""
        fields, content = await self._multipart(request)
        message = fields.get("message", "")
        if not message.strip():
            raise _Invalid({"message": ["This field is required."]})
        rows = self._csv_rows(content, ("destination",))
        dep = self._new_deployment(fields, [(r["destination"], message) for r in rows])
        return self._ok(self._deployment_view(dep), 201)

    async def deployment_import_into(self, request: Request) -> Response:
        """``POST`` CSV rows appended to a deployment that has not started sending."""
        dep = self._deployment_or_404(request.path_params["id"])
        if self._deployment_view(dep)["status"] != 2:
            raise _Invalid({"non_field_errors": ["This deployment has already been sent."]})
        _, content = await self._multipart(request)
        rows = self._csv_rows(content, ("destination", "message"))
        dep.record["error"] = ""
        self._add_rows(dep, [(r["destination"], r["message"]) for r in rows])
        return self._ok(self._deployment_view(dep), 201)

    async def deployment_report(self, request: Request) -> Response:
        """``POST`` (or ``GET``): generate a report into the company/user filebox."""
        dep = self._deployment_or_404(request.path_params["id"])
        fid = next(self.ids["file"])
        entry = {
            "id": fid, "deployment": dep.record["id"], "name": f"deployment-{dep.record['id']}-report.csv",
            "date_created": _iso(self.now()), "rows": len(dep.rows),
        }
        self.filebox.append(entry)
        return self._ok({"detail": "The report is being generated and will be placed in your filebox."}, 202)

    # ------------------------------------------------------------- statistics
    def _stats(self, period: str) -> list[dict[str, Any]]:
        now = self.clock()
        groups: dict[tuple[int | None, str], dict[str, Any]] = {}
        for s in self.sends:
            start, end = _truncate(s.at, period)
            key = (s.deployment, _iso(start) or "")
            row = groups.get(key)
            if row is None:
                sid = self.stat_ids.setdefault((period, s.deployment, key[1]), next(self.ids["stat"]))
                row = groups[key] = {
                    "email_sent_count": 0, "deployment": s.deployment, "sms_optout_count": 0,
                    "email_unsent_count": 0, "email_optout_count": 0, "period_type": PERIODS[period],
                    "period_end": _iso(end), "period_start": _iso(start), "total": 0, "id": sid,
                    "sms_sent_count": 0, "sms_unsent_count": 0,
                }
            row["total"] += 1
            if s.suppressed:
                row["sms_optout_count"] += 1
            elif now >= s.due:
                row["sms_unsent_count" if s.fails else "sms_sent_count"] += 1
        return sorted(groups.values(), key=lambda r: r["id"])

    async def deployment_stats(self, request: Request) -> Response:
        """``GET`` statistics rows for ``hourly|daily|monthly|yearly`` (``?deployment=``)."""
        period = request.path_params["period"]
        if period not in PERIODS:
            raise _Invalid({"detail": "Not found."}, 404)
        rows = self._stats(period)
        dep = request.query_params.get("deployment")
        if dep:
            rows = [r for r in rows if str(r["deployment"]) == dep]
        return self._page(request, rows)

    async def deployment_stat(self, request: Request) -> Response:
        """``GET`` one statistics row."""
        period = request.path_params["period"]
        if period not in PERIODS:
            raise _Invalid({"detail": "Not found."}, 404)
        for row in self._stats(period):
            if row["id"] == request.path_params["id"]:
                return self._ok(row)
        raise _Invalid({"detail": "Not found."}, 404)

    # --------------------------------------------------------------- messages
    def _message_fields(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        errors: dict[str, list[str]] = {}
        out: dict[str, Any] = {}
        message = body.get("message")
        if message is None:
            errors["message"] = ["This field is required."]
        elif not str(message).strip():
            errors["message"] = ["This field may not be blank."]
        else:
            out["message"] = str(message)
        if body.get("destination") is None:
            errors["destination"] = ["This field is required."]
        else:
            try:
                out["destination"] = self._number(body.get("destination"))
            except ValueError as exc:
                errors["destination"] = [str(exc)]
        pk = body.get("campaign_pk")
        if pk not in (None, ""):
            try:
                out["campaign_pk"] = int(pk)
            except (TypeError, ValueError):
                errors["campaign_pk"] = ["A valid integer is required."]
            else:
                if self.check_campaign_pk and out["campaign_pk"] not in self.campaigns:
                    errors["campaign_pk"] = [f'Invalid pk "{out["campaign_pk"]}" - object does not exist.']
        if errors:
            raise _Invalid(errors)
        return out

    async def message(self, request: Request) -> Response:
        """``POST {message, destination, campaign_pk?}``: send one message; answers ``{}`` (seed 002)."""
        fields = self._message_fields(await self._json(request))
        self._dispatch(fields["destination"], fields["message"], at=self.clock(),
                       campaign_pk=fields.get("campaign_pk"))
        return self._ok({}, 201)

    async def message_bulk(self, request: Request) -> Response:
        """``POST [{destination, message, campaign_pk?}, ...]``: validated as a whole; answers ``{}`` (seed 002)."""
        body = await self._json(request)
        if not isinstance(body, list):
            raise _Invalid({"non_field_errors": ['Expected a list of items but got type "dict".']})
        if not body:
            raise _Invalid({"non_field_errors": ["This list may not be empty."]})
        valid: list[dict[str, Any]] = []
        errors: list[Any] = []
        for entry in body:
            try:
                valid.append(self._message_fields(entry))
                errors.append({})
            except _Invalid as exc:
                errors.append(exc.detail)
        if any(errors):
            raise _Invalid(errors)
        at = self.clock()
        for fields in valid:
            self._dispatch(fields["destination"], fields["message"], at=at, campaign_pk=fields.get("campaign_pk"))
        return self._ok({}, 201)

    # ---------------------------------------------------------------- collate
    async def collate_campaigns_view(self, request: Request) -> Response:
        """``GET`` the company's collate campaigns."""
        return self._page(request, [dict(c) for c in self.campaigns.values()])

    async def collate_campaign(self, request: Request) -> Response:
        """``GET`` one collate campaign."""
        record = self.campaigns.get(request.path_params["id"])
        if record is None:
            raise _Invalid({"detail": "Not found."}, 404)
        return self._ok(dict(record))

    async def inbound_messages_view(self, request: Request) -> Response:
        """``GET`` received messages (``?campaign=``, ``?originator=``), oldest first."""
        items = list(self.inbound.values())
        campaign = request.query_params.get("campaign")
        if campaign:
            items = [m for m in items if str(m["campaign"]) == campaign]
        originator = request.query_params.get("originator")
        if originator:
            items = [m for m in items if m["originator"] == originator.strip().lstrip("+")]
        return self._page(request, [dict(m) for m in items])

    async def inbound_message(self, request: Request) -> Response:
        """``GET`` one received message."""
        record = self.inbound.get(request.path_params["id"])
        if record is None:
            raise _Invalid({"detail": "Not found."}, 404)
        return self._ok(dict(record))

    # --------------------------------------------------------------- opt-outs
    async def optouts_view(self, request: Request) -> Response:
        """``GET`` (``?originator=``) list; ``POST {originator, reason}`` create."""
        if request.method == "GET":
            items = list(self.optouts.values())
            originator = request.query_params.get("originator")
            if originator:
                want = originator.strip().lstrip("+")
                items = [o for o in items if o["originator"] == want]
            return self._page(request, [dict(o) for o in items])
        body = await self._json(request)
        if not isinstance(body, dict):
            raise _Invalid({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        try:
            msisdn = self._number(body.get("originator"))
        except ValueError as exc:
            raise _Invalid({"originator": [str(exc)]}) from None
        return self._ok(dict(self.add_optout(msisdn, str(body.get("reason") or ""))), 201)

    async def optout_overwrite(self, request: Request) -> Response:
        """``POST``: overwrite (lift) an opt-out."""
        record = self.optouts.get(request.path_params["id"])
        if record is None:
            raise _Invalid({"detail": "Not found."}, 404)
        if record["date_overwritten"] is not None:
            raise _Invalid({"non_field_errors": ["This opt-out has already been overwritten."]})
        record["date_overwritten"] = _iso(self.now())
        record["overwritten_by"] = USER_ID
        return self._ok(dict(record))

    # --------------------------------------------------------------- controls
    async def control_inbound(self, request: Request) -> Response:
        """``POST /_colony/inbound {originator, text}``: a reply; STOP words opt the sender out."""
        body = await self._json(request)
        originator = str(body.get("originator", "")).strip().lstrip("+")
        raw_text = str(body.get("text", ""))
        text = raw_text.strip().upper()
        campaign = body.get("campaign")
        message = self.receive(originator, raw_text, int(campaign) if campaign is not None else None,
                               body.get("network"))
        record = None
        if text.split()[:1] and text.split()[0] in STOP_WORDS:
            record = self.add_optout(originator, f"{text.split()[0]} reply")
        return self._ok({"optout": record, "message": message})

    async def control_campaigns(self, request: Request) -> Response:
        """``POST /_colony/campaigns {title, id?}``: create a collate campaign."""
        body = await self._json(request)
        return self._ok(self.add_campaign(str(body.get("title") or ""), body.get("id")), 201)

    async def control_optouts(self, request: Request) -> Response:
        """``POST /_colony/optouts {originator, reason}``: seed an opt-out."""
        body = await self._json(request)
        return self._ok(self.add_optout(str(body["originator"]), str(body.get("reason") or "seeded")), 201)

    async def control_saved_queries(self, request: Request) -> Response:
        """``POST /_colony/saved_queries {id, msisdns}``: define a saved query's result."""
        body = await self._json(request)
        self.saved_queries[int(body["id"])] = [str(m).lstrip("+") for m in body.get("msisdns", [])]
        return self._ok({"id": int(body["id"]), "count": len(self.saved_queries[int(body["id"])])})

    async def control_revoke(self, request: Request) -> Response:
        """``POST /_colony/revoke_tokens``: invalidate every access token."""
        n = len(self.tokens)
        self.tokens.clear()
        return self._ok({"revoked": n})

    async def control_reset(self, request: Request) -> Response:
        """``POST /_colony/reset``: a fresh account (the request log is reset via ``/_emulator/reset``)."""
        self.reset()
        return self._ok({"ok": True})

    async def control_filebox(self, request: Request) -> Response:
        """``GET /_colony/filebox``: generated reports."""
        return self._ok(list(self.filebox))

    async def control_messages(self, request: Request) -> Response:
        """``GET /_colony/messages``: every message handed over, with its state."""
        now = self.clock()
        return self._ok([s.public(now) for s in self.sends])

    # ----------------------------------------------------------------- routes
    def routes(self) -> list[Route]:
        """Starlette routes for the configured paths plus the ``/_colony`` controls."""
        table: dict[str, list[tuple[str, tuple[str, ...], Handler]]] = {
            "token": [("token", ("POST",), self.token)],
            "contactlists": [("contactlists", ("GET", "POST"), self.contactlists)],
            "contactlist": [("contactlist", ("GET", "PUT", "PATCH", "DELETE"), self.contactlist)],
            "contactlist_delete": [("contactlist_delete", ("DELETE",), self.contactlist_delete)],
            "contactlists_delete": [("contactlists_delete", ("DELETE",), self.contactlists_bulk_delete)],
            "contactlist_import": [("contactlist_import", ("POST",), self.contactlist_import)],
            "contactlist_import_into": [("contactlist_import_into", ("POST",), self.contactlist_import_into)],
            "contactlist_refresh": [("contactlist_refresh", ("GET",), self.contactlist_refresh)],
            "contactlist_generate": [("contactlist_generate", ("POST",), self.contactlist_generate)],
            "contacts": [("contacts", ("GET", "POST"), self.contacts_view)],
            "contact": [("contact", ("GET", "PUT", "PATCH", "DELETE"), self.contact)],
            "company": [("company", ("GET", "PUT", "PATCH"), self.company_view)],
            "deployments": [("deployments", ("GET", "POST"), self.deployments_view)],
            "deployment": [("deployment", ("GET", "PUT", "PATCH", "DELETE"), self.deployment)],
            "deployment_import": [("deployment_import", ("POST",), self.deployment_import)],
            "deployment_import_numbers": [("deployment_import_numbers", ("POST",), self.deployment_import_numbers)],
            "deployment_import_into": [("deployment_import_into", ("POST",), self.deployment_import_into)],
            "deployment_report": [("deployment_report", ("GET", "POST"), self.deployment_report)],
            "deployment_stats": [("deployment_stats", ("GET",), self.deployment_stats)],
            "deployment_stat": [("deployment_stat", ("GET",), self.deployment_stat)],
            "message": [("message", ("POST",), self.message)],
            "message_bulk": [("message_bulk", ("POST",), self.message_bulk)],
            "collate_campaigns": [("collate_campaigns", ("GET",), self.collate_campaigns_view)],
            "collate_campaign": [("collate_campaign", ("GET",), self.collate_campaign)],
            "inbound_messages": [("inbound_messages", ("GET",), self.inbound_messages_view)],
            "inbound_message": [("inbound_message", ("GET",), self.inbound_message)],
            "optouts": [("optouts", ("GET", "POST"), self.optouts_view)],
            "optout_filter": [("optout_filter", ("GET",), self.optouts_view)],
            "optout_create": [("optout_create", ("POST",), self.optouts_view)],
            "optout_overwrite": [("optout_overwrite", ("POST",), self.optout_overwrite)],
        }
        # several keys may share one path (e.g. list + filter + create): merge by path and method
        by_path: dict[str, dict[str, Handler]] = {}
        order: list[str] = []
        for key, handlers in table.items():
            template = _route_template(self.paths[key])
            if template not in by_path:
                by_path[template] = {}
                order.append(template)
            for _, methods, handler in handlers:
                for method in methods:
                    by_path[template].setdefault(method, handler)
        # literal paths before parameterised ones, so /import/ never reads as {id}
        ranked = sorted(enumerate(order), key=lambda it: (it[1].count("{"), it[0]))
        # every verb reaches the dispatcher, which answers unsupported ones with DRF's JSON 405
        verbs = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        routes = [Route(t, self._dispatcher(by_path[t]), methods=verbs) for _, t in ranked]
        routes += [
            Route("/_colony/inbound", self._guard(self.control_inbound), methods=["POST"]),
            Route("/_colony/optouts", self._guard(self.control_optouts), methods=["POST"]),
            Route("/_colony/campaigns", self._guard(self.control_campaigns), methods=["POST"]),
            Route("/_colony/saved_queries", self._guard(self.control_saved_queries), methods=["POST"]),
            Route("/_colony/revoke_tokens", self._guard(self.control_revoke), methods=["POST"]),
            Route("/_colony/reset", self._guard(self.control_reset), methods=["POST"]),
            Route("/_colony/filebox", self._guard(self.control_filebox), methods=["GET"]),
            Route("/_colony/messages", self._guard(self.control_messages), methods=["GET"]),
        ]
        return routes

    def _guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except _Invalid as exc:
                return self._error(exc.detail, exc.status)

        return run

    def _dispatcher(self, methods: Mapping[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        async def dispatch(request: Request) -> Response:
            handler = methods.get(request.method)
            if handler is None:
                return self._error({"detail": f'Method "{request.method}" not allowed.'}, 405)
            if handler != self.token:
                denied = self._authorised(request)
                if denied is not None:
                    return denied
            try:
                return await handler(request)
            except _Invalid as exc:
                return self._error(exc.detail, exc.status)

        return dispatch


def _route_template(path: str) -> str:
    """A path template as a Starlette route (``{id}`` -> ``{id:int}``); absolute URLs keep their path."""
    if path.startswith(("http://", "https://")):
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return path.replace("{id}", "{id:int}").replace("{period}", "{period:str}")


def _drf_error(status: int, message: str) -> dict[str, Any]:
    if status == 429:
        return {"detail": "Request was throttled."}
    return {"detail": message}


def create_app(**options: Any) -> Any:
    """A fresh Colony emulator (ASGI app) with its own state.

    Options: ``credentials`` (dict, default :data:`SANDBOX_CREDENTIALS`),
    ``delivery_delay`` (seconds, default 0.2), ``token_ttl`` (seconds, default 86399),
    ``page_size`` (default 50), ``paginate`` (default True; False answers plain arrays),
    ``saved_queries`` ({id: [msisdn, ...]}), ``optouts`` ([msisdn or {originator, reason}]),
    ``paths`` (endpoint path overrides, like the provider option), ``clock`` (a
    ``time.time``-like callable, to move the emulator through time in tests),
    ``collate_campaigns`` ([title or {id, title}]: the account's collate campaigns; when
    given, a send's ``campaign_pk`` must name one of them).
    The state object is reachable as ``app.colony``.
    """
    emulator = ColonyEmulator(**options)
    app = Starlette(routes=emulator.routes())
    app.state.colony = emulator
    wrapped = emulator_app(app, error_body=_drf_error)
    wrapped.colony = emulator  # type: ignore[attr-defined]
    return wrapped
