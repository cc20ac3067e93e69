"""The state of one emulated Colony account: every vendor operation as a plain method.

No HTTP here: :class:`ColonyEmulator` is unit-testable on its own; the Starlette routes of
:mod:`smsgate_colony.emulator.app` decode requests and call it. What the emulated API
does (credits, settling, opt-out suppression, deployments' lifecycle, DRF error bodies)
is described in :mod:`smsgate_colony.emulator`.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser
from typing import Any

from smsgate_colony.options import DEFAULT_PATHS
from smsgate_colony.wire import PERIODS, credits_for

__all__ = [
    "COMPANY_ID",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SETTINGS",
    "SANDBOX_WEBHOOK_TOKEN",
    "STOP_WORDS",
    "USER_ID",
    "ColonyEmulator",
    "Rejected",
    "parse_multipart",
]

#: Credentials the emulator accepts by default (``smsgate sandbox``, README demo).
SANDBOX_CREDENTIALS: dict[str, str] = {
    "client_id": "colony-sandbox-client",
    "client_secret": "colony-sandbox-client-secret",
    "username": "sandbox@colony.test",
    "password": "colony-sandbox-password",
}

#: The ``webhook_token`` credential of the sandbox account (``smsgate sandbox``): an inbound
#: relay's shared secret, checked by the provider's webhook, never by the emulator.
SANDBOX_WEBHOOK_TOKEN = "colony-sandbox-webhook-token"

#: Settings hints for a provider pointing at the emulator (base_url is the server's).
SANDBOX_SETTINGS: dict[str, Any] = {"plugin": "colony", "credentials": dict(SANDBOX_CREDENTIALS)}

COMPANY_ID = 1
USER_ID = 1
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "OPT-OUT", "CANCEL", "END", "QUIT"})
_MSISDN_RE = re.compile(r"[1-9][0-9]{7,14}")
_BAD_NUMBER = "Enter a valid mobile number in international format, e.g. 27815854565."


class Rejected(Exception):
    """An error answer of the emulated API: ``detail`` is the DRF error body, ``status`` its HTTP status."""

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
    """The state of one emulated Colony account, every operation a plain method (no HTTP).

    Methods take what a request carries (decoded JSON, form fields, CSV bytes, query
    values) and return the answer's body; a refused request raises :class:`Rejected`
    with DRF's error body and status. :mod:`smsgate_colony.emulator.app` maps routes onto them.
    """

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
        write_scope: bool = False,
        invalid_numbers: Iterable[str] = (),
    ) -> None:
        self._options: dict[str, Any] = {
            "credentials": credentials, "delivery_delay": delivery_delay, "token_ttl": token_ttl,
            "page_size": page_size, "paginate": paginate, "saved_queries": saved_queries,
            "optouts": optouts, "paths": paths, "clock": clock, "collate_campaigns": collate_campaigns,
            "write_scope": write_scope, "invalid_numbers": invalid_numbers,
        }
        #: Numbers (MSISDNs, digits only) Colony refuses as not a valid mobile number though well
        #: formed (a range it does not deliver to): a send or a bulk item to one is a 400 with
        #: DRF's field error, as for a malformed number.
        self.invalid_numbers = frozenset(invalid_numbers)
        #: Refuse a write (POST, PUT, PATCH, DELETE) made with a token whose scope lacks ``write``
        #: (403, DRF's permission message) [INF: django-oauth2-provider + DRF]; off by default, as
        #: Colony documents no scope per endpoint.
        self.write_scope = write_scope
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
        #: the scope granted with each access token (``"read"`` unless ``write`` was asked for)
        self.token_scopes: dict[str, str] = {}
        self.refresh_scopes: dict[str, str] = {}
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

    # ================================================================ plumbing
    def now(self) -> datetime:
        """The emulator's current time (UTC)."""
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def _number(self, value: Any) -> str:
        text = str(value).strip() if value is not None else ""
        if not _MSISDN_RE.fullmatch(text) or text in self.invalid_numbers:
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
            raise Rejected({"id": [f"A campaign with id {cid} already exists."]})
        now = _iso(self.now())
        record = {"id": cid, "title": title or f"Campaign {cid}", "company": COMPANY_ID,
                  "date_created": now, "date_updated": now}
        self.campaigns[cid] = record
        return record

    def receive(self, originator: str, text: str, campaign: int | None = None,
                network: int | None = None) -> dict[str, Any]:
        """Record an inbound message (a reply) with the collate message model's fields."""
        if campaign is not None and campaign not in self.campaigns:
            raise Rejected({"campaign": [f'Invalid pk "{campaign}" - object does not exist.']})
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
            raise Rejected(errors)
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
            raise Rejected({"file": ["The file must be UTF-8 encoded CSV."]}) from None
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in columns if c not in header]
        if missing:
            raise Rejected({"file": [f"The CSV header must include the column(s): {', '.join(missing)}."]})
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
            raise Rejected({"file": problems})
        if not rows:
            raise Rejected({"file": ["The file contains no rows."]})
        return rows

    # ===================================================================== auth
    def grant_token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The OAuth2 token endpoint: ``password`` / ``refresh_token`` grants (form fields)."""
        if (form.get("client_id") != self.credentials["client_id"]
                or form.get("client_secret") != self.credentials["client_secret"]):
            raise Rejected({"error": "invalid_client"})
        grant = form.get("grant_type")
        if grant == "password":
            if (form.get("username") != self.credentials["username"]
                    or form.get("password") != self.credentials["password"]):
                raise Rejected({"error": "invalid_grant"})
        elif grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if refresh not in self.refresh_tokens:
                raise Rejected({"error": "invalid_grant"})
            self.refresh_tokens.discard(refresh)
        else:
            raise Rejected({"error": "unsupported_grant_type"})
        asked = set((form.get("scope") or "").replace("+", " ").split())
        if asked - {"read", "write"}:
            raise Rejected({"error": "invalid_scope"})
        if grant == "refresh_token" and not asked:  # a refreshed token keeps its scope
            asked = set(self.refresh_scopes.pop(form.get("refresh_token", ""), "read").split())
        scope = " ".join(s for s in ("read", "write") if s in asked) or "read"
        access = secrets.token_hex(20)
        refresh = secrets.token_hex(20)
        self.tokens[access] = self.clock() + self.token_ttl
        self.token_scopes[access] = scope
        self.refresh_tokens.add(refresh)
        self.refresh_scopes[refresh] = scope
        return {"access_token": access, "scope": scope, "expires_in": self.token_ttl, "refresh_token": refresh}

    def check_scope(self, header: str, method: str) -> None:
        """With ``write_scope``, a 403 for a write made with a token lacking the ``write`` scope."""
        if not self.write_scope or method in ("GET", "HEAD", "OPTIONS"):
            return
        token = header.partition(" ")[2].strip()
        if "write" not in self.token_scopes.get(token, "").split():
            raise Rejected({"detail": "You do not have permission to perform this action."}, 403)

    def check_auth(self, header: str) -> None:
        """Accept an ``Authorization`` header value carrying a live bearer token, else a 401."""
        if not header:
            raise Rejected({"detail": "Authentication credentials were not provided."}, 401)
        scheme, _, token = header.partition(" ")
        expiry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= self.clock():
            self.tokens.pop(token.strip(), None)
            raise Rejected({"detail": "Invalid token"}, 401)

    def revoke_tokens(self) -> int:
        """Invalidate every access token; how many there were."""
        n = len(self.tokens)
        self.tokens.clear()
        return n

    # ============================================================ contact lists
    def _list_or_404(self, list_id: int) -> dict[str, Any]:
        record = self.lists.get(list_id)
        if record is None:
            raise Rejected({"detail": "Not found."}, 404)
        return record

    def _list_fields(self, body: Any, partial: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Rejected({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
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
            raise Rejected(errors)
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

    def list_contact_lists(self) -> list[dict[str, Any]]:
        """Every contact list."""
        return [dict(v) for v in self.lists.values()]

    def create_contact_list(self, body: Any) -> dict[str, Any]:
        """Create a list from ``{title, saved_query?}`` (answered with 201)."""
        fields = self._list_fields(body, partial=False)
        return self._create_list(fields["title"], fields.get("saved_query"))

    def get_contact_list(self, list_id: int) -> dict[str, Any]:
        """One contact list."""
        return dict(self._list_or_404(list_id))

    def update_contact_list(self, list_id: int, body: Any, partial: bool) -> dict[str, Any]:
        """``PUT`` (``partial=False``) or ``PATCH`` a list."""
        record = self._list_or_404(list_id)
        record.update(self._list_fields(body, partial=partial))
        record["date_updated"] = _iso(self.now())
        return dict(record)

    def delete_contact_list(self, list_id: int) -> None:
        """Delete a list and its contacts (answered with 204)."""
        self._list_or_404(list_id)
        del self.lists[list_id]
        for cid in [c for c, rec in self.contacts.items() if rec["contact_list"] == list_id]:
            del self.contacts[cid]

    def delete_contact_lists(self, body: Any) -> None:
        """``{"ids": [...]}``: delete several lists and their contacts, all or nothing (204)."""
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            raise Rejected({"ids": ["This field is required." if not ids else "Expected a list of items."]})
        wanted: list[int] = []
        for value in ids:
            if isinstance(value, bool) or not isinstance(value, int):
                raise Rejected({"ids": [f'Incorrect type. Expected pk value, received {type(value).__name__}.']})
            wanted.append(value)
        missing = [i for i in wanted if i not in self.lists]
        if missing:
            raise Rejected({"detail": f"Not found: contact list(s) {', '.join(map(str, missing))}."}, 404)
        for list_id in wanted:
            del self.lists[list_id]
        self.contacts = {c: rec for c, rec in self.contacts.items() if rec["contact_list"] not in wanted}

    def import_contact_list(self, title: str, content: bytes) -> dict[str, Any]:
        """A CSV (column ``msisdn``) creating a new list titled ``title``; answers ``{}`` (seed 002)."""
        rows = self._csv_rows(content, ("msisdn",))
        if not title.strip():
            raise Rejected({"title": ["This field is required."]})
        record = self._create_list(title.strip())
        for row in rows:
            self._add_contact(record["id"], row.pop("msisdn"), row)
        return {}

    def import_contacts(self, list_id: int, content: bytes) -> dict[str, Any]:
        """A CSV adding contacts to an existing list; answers ``{}`` (seed 002)."""
        record = self._list_or_404(list_id)
        for row in self._csv_rows(content, ("msisdn",)):
            self._add_contact(record["id"], row.pop("msisdn"), row)
        return {}

    def refresh_contact_list(self, list_id: int) -> dict[str, Any]:
        """Re-run the list's saved query and repopulate it; answers ``{}`` (seed 002)."""
        record = self._list_or_404(list_id)
        qid = record["saved_query"]
        if qid is None:
            raise Rejected({"saved_query": ["This contact list is not backed by a saved query."]})
        for cid in [c for c, rec in self.contacts.items() if rec["contact_list"] == record["id"]]:
            del self.contacts[cid]
        for msisdn in self.saved_queries.get(qid, []):
            self._add_contact(record["id"], msisdn)
        return {}

    def generate_contact_list(self, body: Any) -> dict[str, Any]:
        """``{contact_list, saved_query?}``: add the saved query's numbers to a list (202)."""
        if not isinstance(body, dict):
            raise Rejected({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        try:
            list_id = int(body.get("contact_list"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise Rejected({"contact_list": ["This field is required."]}) from None
        if list_id not in self.lists:
            raise Rejected({"contact_list": [f'Invalid pk "{list_id}" - object does not exist.']})
        qid = body.get("saved_query", self.lists[list_id]["saved_query"])
        try:
            qid = int(qid) if qid is not None else None
        except (TypeError, ValueError):
            raise Rejected({"saved_query": ["Incorrect type. Expected pk value."]}) from None
        if qid is None or qid not in self.saved_queries:
            raise Rejected({"saved_query": ["A saved query is required to generate a contact list."]})
        have = set(self._list_numbers(list_id))
        for msisdn in self.saved_queries[qid]:
            if msisdn not in have:
                self._add_contact(list_id, msisdn)
                have.add(msisdn)
        return {"contact_list": list_id, "saved_query": qid}

    def set_saved_query(self, query_id: int, msisdns: Iterable[Any]) -> dict[str, Any]:
        """Define what a saved query returns (numbers, ``+`` optional)."""
        self.saved_queries[query_id] = [str(m).lstrip("+") for m in msisdns]
        return {"id": query_id, "count": len(self.saved_queries[query_id])}

    # ================================================================= contacts
    def _contact_fields(self, body: Any, partial: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Rejected({"non_field_errors": ["Invalid data. Expected a dictionary."]})
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
            raise Rejected(errors)
        return out

    def list_contacts(self, contact_list: str | None = None) -> list[dict[str, Any]]:
        """Contacts, of one list when ``contact_list`` (the query value) is given."""
        items = list(self.contacts.values())
        if contact_list:
            items = [c for c in items if str(c["contact_list"]) == contact_list]
        return [dict(c) for c in items]

    def create_contacts(self, body: Any) -> Any:
        """One contact (an object) or a batch (an array), validated as a whole (201)."""
        many = isinstance(body, list)
        entries = body if many else [body]
        valid: list[dict[str, Any]] = []
        errors: list[Any] = []
        for entry in entries:
            try:
                valid.append(self._contact_fields(entry, partial=False))
                errors.append({})
            except Rejected as exc:
                errors.append(exc.detail)
        if any(errors):
            raise Rejected(errors if many else errors[0])
        created = []
        for fields in valid:
            lid = fields.pop("contact_list")
            created.append(self._add_contact(lid, fields.pop("msisdn"), fields))
        return [dict(c) for c in created] if many else dict(created[0])

    def _contact_or_404(self, contact_id: int) -> dict[str, Any]:
        record = self.contacts.get(contact_id)
        if record is None:
            raise Rejected({"detail": "Not found."}, 404)
        return record

    def get_contact(self, contact_id: int) -> dict[str, Any]:
        """One contact."""
        return dict(self._contact_or_404(contact_id))

    def update_contact(self, contact_id: int, body: Any, partial: bool) -> dict[str, Any]:
        """``PUT`` / ``PATCH`` one contact."""
        record = self._contact_or_404(contact_id)
        record.update(self._contact_fields(body, partial=partial))
        return dict(record)

    def delete_contact(self, contact_id: int) -> None:
        """Delete one contact (204)."""
        self._contact_or_404(contact_id)
        del self.contacts[contact_id]

    # ================================================================== company
    def get_company(self) -> dict[str, Any]:
        """The company's details (field list unpublished: stored as given)."""
        return dict(self.company)

    def update_company(self, body: Any, replace: bool) -> dict[str, Any]:
        """``PATCH`` (or ``PUT`` with ``replace``) the company's details."""
        if not isinstance(body, dict):
            raise Rejected({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        if replace:
            self.company = {"id": COMPANY_ID}
        self.company.update({k: v for k, v in body.items() if k != "id"})
        return dict(self.company)

    # ============================================================== deployments
    def _deployment_or_404(self, did: int) -> _Deployment:
        dep = self.deployments.get(did)
        if dep is None:
            raise Rejected({"detail": "Not found."}, 404)
        return dep

    def ensure_not_started(self, deployment_id: int) -> None:
        """Refuse (400) a change to a deployment that has started sending (404 if unknown)."""
        self._not_started(self._deployment_or_404(deployment_id))

    def _not_started(self, dep: _Deployment) -> None:
        if self._deployment_view(dep)["status"] != 2:
            raise Rejected({"non_field_errors": ["This deployment has already been sent."]})

    def list_deployments(self) -> list[dict[str, Any]]:
        """Every deployment with its current status."""
        return [self._deployment_view(d) for d in self.deployments.values()]

    def create_deployment(self, body: Any) -> dict[str, Any]:
        """A deployment from the published model's fields (201).

        The model (seed 002) has no audience or message field: like a DRF serializer,
        unknown fields (e.g. ``contact_list``, ``message``) are ignored, so a deployment
        created here has no recipients (it fails with an error); recipients come from
        the CSV imports.
        """
        if not isinstance(body, dict):
            raise Rejected({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        return self._deployment_view(self._new_deployment(body, []))

    def get_deployment(self, deployment_id: int) -> dict[str, Any]:
        """One deployment with its current status."""
        return self._deployment_view(self._deployment_or_404(deployment_id))

    def update_deployment(self, deployment_id: int, body: Any, partial: bool) -> dict[str, Any]:
        """``PUT`` / ``PATCH`` a deployment that has not started sending."""
        dep = self._deployment_or_404(deployment_id)
        self._not_started(dep)
        if not isinstance(body, dict):
            raise Rejected({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        did = dep.record["id"]
        known = ("title", "send_date", "marketing", "optout", "linked_campaign", "dispatch")
        rec = dep.record
        current = {k: rec[k] for k in known if rec[k] is not None} if partial else {}
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
        return self._deployment_view(dep)

    def delete_deployment(self, deployment_id: int) -> None:
        """Delete a deployment that has not started sending, with its messages (204)."""
        dep = self._deployment_or_404(deployment_id)
        self._not_started(dep)
        did = dep.record["id"]
        del self.deployments[did]
        self.sends = [s for s in self.sends if s.deployment != did]

    def import_deployment(self, fields: Mapping[str, Any], content: bytes) -> dict[str, Any]:
        """CSV ``destination,message`` rows creating a deployment (201)."""
        rows = self._csv_rows(content, ("destination", "message"))
        dep = self._new_deployment(fields, [(r["destination"], r["message"]) for r in rows])
        return self._deployment_view(dep)

    def import_deployment_numbers(self, fields: Mapping[str, Any], content: bytes) -> dict[str, Any]:
        """A CSV of ``destination`` numbers plus form field ``message`` creating a deployment (201)."""
        message = str(fields.get("message", ""))
        if not message.strip():
            raise Rejected({"message": ["This field is required."]})
        rows = self._csv_rows(content, ("destination",))
        dep = self._new_deployment(fields, [(r["destination"], message) for r in rows])
        return self._deployment_view(dep)

    def import_deployment_rows(self, deployment_id: int, content: bytes) -> dict[str, Any]:
        """CSV rows appended to a deployment that has not started sending (201)."""
        dep = self._deployment_or_404(deployment_id)
        self._not_started(dep)
        rows = self._csv_rows(content, ("destination", "message"))
        dep.record["error"] = ""
        self._add_rows(dep, [(r["destination"], r["message"]) for r in rows])
        return self._deployment_view(dep)

    def deployment_report(self, deployment_id: int) -> dict[str, Any]:
        """Generate a report into the company/user filebox (202)."""
        dep = self._deployment_or_404(deployment_id)
        fid = next(self.ids["file"])
        self.filebox.append({
            "id": fid, "deployment": dep.record["id"], "name": f"deployment-{dep.record['id']}-report.csv",
            "date_created": _iso(self.now()), "rows": len(dep.rows),
        })
        return {"detail": "The report is being generated and will be placed in your filebox."}

    # =============================================================== statistics
    def _stats(self, period: str) -> list[dict[str, Any]]:
        if period not in PERIODS:
            raise Rejected({"detail": "Not found."}, 404)
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

    def deployment_stats(self, period: str, deployment: str | None = None) -> list[dict[str, Any]]:
        """Statistics rows for ``hourly|daily|monthly|yearly`` (of one deployment when given)."""
        rows = self._stats(period)
        if deployment:
            rows = [r for r in rows if str(r["deployment"]) == deployment]
        return rows

    def deployment_stat(self, period: str, stat_id: int) -> dict[str, Any]:
        """One statistics row."""
        for row in self._stats(period):
            if row["id"] == stat_id:
                return row
        raise Rejected({"detail": "Not found."}, 404)

    # ================================================================= messages
    def _message_fields(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Rejected({"non_field_errors": ["Invalid data. Expected a dictionary."]})
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
            raise Rejected(errors)
        return out

    def send_message(self, body: Any) -> dict[str, Any]:
        """``{message, destination, campaign_pk?}``: send one message; answers ``{}`` (seed 002, 201)."""
        fields = self._message_fields(body)
        self._dispatch(fields["destination"], fields["message"], at=self.clock(),
                       campaign_pk=fields.get("campaign_pk"))
        return {}

    def send_bulk(self, body: Any) -> dict[str, Any]:
        """``[{destination, message, campaign_pk?}, ...]``: validated as a whole; answers ``{}`` (201)."""
        if not isinstance(body, list):
            raise Rejected({"non_field_errors": ['Expected a list of items but got type "dict".']})
        if not body:
            raise Rejected({"non_field_errors": ["This list may not be empty."]})
        valid: list[dict[str, Any]] = []
        errors: list[Any] = []
        for entry in body:
            try:
                valid.append(self._message_fields(entry))
                errors.append({})
            except Rejected as exc:
                errors.append(exc.detail)
        if any(errors):
            raise Rejected(errors)
        at = self.clock()
        for fields in valid:
            self._dispatch(fields["destination"], fields["message"], at=at, campaign_pk=fields.get("campaign_pk"))
        return {}

    def messages(self) -> list[dict[str, Any]]:
        """Every message handed over, with its state."""
        now = self.clock()
        return [s.public(now) for s in self.sends]

    # ================================================================== collate
    def list_collate_campaigns(self) -> list[dict[str, Any]]:
        """The company's collate campaigns."""
        return [dict(c) for c in self.campaigns.values()]

    def get_collate_campaign(self, campaign_id: int) -> dict[str, Any]:
        """One collate campaign."""
        record = self.campaigns.get(campaign_id)
        if record is None:
            raise Rejected({"detail": "Not found."}, 404)
        return dict(record)

    def list_inbound(self, campaign: str | None = None, originator: str | None = None) -> list[dict[str, Any]]:
        """Received messages (filtered by campaign id / originator when given), oldest first."""
        items = list(self.inbound.values())
        if campaign:
            items = [m for m in items if str(m["campaign"]) == campaign]
        if originator:
            items = [m for m in items if m["originator"] == originator.strip().lstrip("+")]
        return [dict(m) for m in items]

    def get_inbound(self, message_id: int) -> dict[str, Any]:
        """One received message."""
        record = self.inbound.get(message_id)
        if record is None:
            raise Rejected({"detail": "Not found."}, 404)
        return dict(record)

    def reply(self, body: Any) -> dict[str, Any]:
        """A reply ``{originator, text, campaign?, network?}``; a STOP word opts the sender out."""
        originator = str(body.get("originator", "")).strip().lstrip("+")
        raw_text = str(body.get("text", ""))
        text = raw_text.strip().upper()
        campaign = body.get("campaign")
        message = self.receive(originator, raw_text, int(campaign) if campaign is not None else None,
                               body.get("network"))
        record = None
        if text.split()[:1] and text.split()[0] in STOP_WORDS:
            record = self.add_optout(originator, f"{text.split()[0]} reply")
        return {"optout": record, "message": message}

    # ================================================================= opt-outs
    def list_optouts(self, originator: str | None = None) -> list[dict[str, Any]]:
        """Opt-outs (overwritten ones included), of one originator when given."""
        items = list(self.optouts.values())
        if originator:
            want = originator.strip().lstrip("+")
            items = [o for o in items if o["originator"] == want]
        return [dict(o) for o in items]

    def create_optout(self, body: Any) -> dict[str, Any]:
        """``{originator, reason}``: record an opt-out (201)."""
        if not isinstance(body, dict):
            raise Rejected({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        try:
            msisdn = self._number(body.get("originator"))
        except ValueError as exc:
            raise Rejected({"originator": [str(exc)]}) from None
        return dict(self.add_optout(msisdn, str(body.get("reason") or "")))

    def overwrite_optout(self, optout_id: int) -> dict[str, Any]:
        """Overwrite (lift) an opt-out."""
        record = self.optouts.get(optout_id)
        if record is None:
            raise Rejected({"detail": "Not found."}, 404)
        if record["date_overwritten"] is not None:
            raise Rejected({"non_field_errors": ["This opt-out has already been overwritten."]})
        record["date_overwritten"] = _iso(self.now())
        record["overwritten_by"] = USER_ID
        return dict(record)
