"""The Squad emulator's state: accounts, messages, templates, buckets and campaigns, with no HTTP.

:class:`SquadEmulator` holds everything the vendor would store and answers each documented
operation as a method taking plain values (a JSON body as a dict, the query as a mapping) and
returning the ``data`` the vendor's envelope carries; a request the vendor would refuse raises
:class:`Rejected` (HTTP status and Squad's message). The Starlette routes in
:mod:`smsgate_squad.emulator.app` only read requests, call these methods and wrap the answers,
so the behaviour is unit-testable without a server.

Messages go ``submitted`` -> ``pending`` (after ``delivery_delay / 2``) -> ``delivered``, or
``delivery failed`` for numbers ending in 9 (after ``delivery_delay``). Every message created
is handed to :attr:`SquadEmulator.on_messages` (the app schedules signed status callbacks
there); the state itself never does I/O.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import re
import secrets
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import httpx

from smsgate.emulation import EmulatorState
from smsgate.text import count_segments
from smsgate_squad import wire
from smsgate_squad.auth import WAT, derive_v1_secret, have_cryptography

__all__ = [
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SECRET_KEY",
    "SANDBOX_SETTINGS",
    "SANDBOX_USER_ID",
    "SANDBOX_V1_CREDENTIALS",
    "SANDBOX_V1_IV",
    "SANDBOX_V1_KEY",
    "SANDBOX_V1_OPTIONS",
    "SANDBOX_V1_SECRET",
    "SANDBOX_V1_SETTINGS",
    "Message",
    "Rejected",
    "S3Error",
    "SquadEmulator",
]

#: The v2 secret key the emulator accepts by default (sandbox keys start ``sandbox_sk_``).
SANDBOX_SECRET_KEY: Final = "sandbox_sk_5m5gate0em0lat0r0a1b2c3d4e5f60718293a4b5c6d7e8f9"
#: v1 key (32 characters: it doubles as the AES-256 key deriving the daily secret).
SANDBOX_V1_KEY: Final = "smsgate-squad-v1-sandbox-key-32b"
#: v1 IV (16 characters).
SANDBOX_V1_IV: Final = "smsgate-v1-iv-16"
#: A pre-computed v1 secret the emulator accepts on any day.
SANDBOX_V1_SECRET: Final = "c21zZ2F0ZS1zcXVhZC12MS1zdGF0aWMtc2VjcmV0"
SANDBOX_CLIENT_ID: Final = 1
SANDBOX_USER_ID: Final = 1

#: Credentials the emulator accepts by default (v2, the adapter's default API version).
SANDBOX_CREDENTIALS: dict[str, str] = {"secret_key": SANDBOX_SECRET_KEY}
#: Provider settings hints for the sandbox and the demo (v2 needs nothing more).
SANDBOX_SETTINGS: dict[str, Any] = {"options": {"api_version": "v2"}}
#: Credentials for the legacy v1 API: key + pre-computed secret.
SANDBOX_V1_CREDENTIALS: dict[str, str] = {
    "key": SANDBOX_V1_KEY, "secret": SANDBOX_V1_SECRET, "secret_key": SANDBOX_SECRET_KEY,
}
#: Options for the legacy v1 API against the emulator.
SANDBOX_V1_OPTIONS: dict[str, Any] = {
    "api_version": "v1", "client_id": str(SANDBOX_CLIENT_ID), "user_id": str(SANDBOX_USER_ID),
}
#: Provider settings for v1 against the emulator (status lookups and statistics work in v1).
SANDBOX_V1_SETTINGS: dict[str, Any] = {"credentials": SANDBOX_V1_CREDENTIALS, "options": SANDBOX_V1_OPTIONS}

_LOCAL_RE: Final = re.compile(r"0[0-9]{10}")
_PLACEHOLDER_RE: Final = re.compile(r"#\$([A-Za-z_][A-Za-z0-9_]*)\$#")

Query = Mapping[str, str]
Body = Mapping[str, Any]


class Rejected(Exception):
    """A request Squad refuses: answered with its generic error envelope and ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class S3Error(Exception):
    """A refused upload to the emulated S3 pre-signed URL (answered as S3's XML error)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# ---------------------------------------------------------------- helpers

def iso(ts: float | None) -> str | None:
    """``2025-05-22T09:34:58.800Z`` (Squad's timestamp format), or ``None``."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def js_date(moment: datetime) -> str:
    """JavaScript ``Date.toString()`` in Lagos time, as the v2 campaign sample shows ``scheduled_for``."""
    local = moment.astimezone(WAT)
    return local.strftime("%a %b %d %Y %H:%M:%S GMT+0100 (West Africa Standard Time)")


def money(value: Decimal) -> Decimal:
    """``value`` rounded to kobo."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def local_number(raw: object) -> str | None:
    """A Nigerian number as Squad writes it (``0806...``), from local, ``234...`` or ``+234...``."""
    text = re.sub(r"[\s\-()]", "", str(raw)) if raw is not None else ""
    if text.startswith("+"):
        text = text[1:]
    if text.startswith("234") and len(text) == 13:
        text = "0" + text[3:]
    return text if _LOCAL_RE.fullmatch(text) else None


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def render(body: str, params: Mapping[str, str]) -> str:
    """A template body with its ``#$name$#`` placeholders filled from ``params``."""
    return _PLACEHOLDER_RE.sub(lambda m: params.get(m.group(1), m.group(0)), body)


def _int_param(query: Query, name: str, default: int, *, low: int = 1, high: int = 1000) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = wire.to_int(raw)
    if value is None or not low <= value <= high:
        raise Rejected(400, f"{name} must be an integer between {low} and {high}")
    return value


def _required_text(body: Body, *names: str) -> list[str]:
    out = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise Rejected(400, f"{name} is required")
        out.append(value)
    return out


def _paginate(rows: list[dict[str, Any]], query: Query, default_per_page: int | None) -> list[dict[str, Any]]:
    per_page = _int_param(query, "perPage", default_per_page or max(1, len(rows)), high=10_000)
    page = _int_param(query, "page", 1, high=1_000_000)
    start = (page - 1) * per_page
    return rows[start:start + per_page]


def _sort_filter(rows: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    sort_by = query.get("sort_by") or "createdAt"
    direction = (query.get("dir") or "DSC").upper()
    if direction not in ("ASC", "DSC", "DESC"):
        raise Rejected(400, "dir must be ASC or DSC")
    out = list(rows)
    for name in ("date_from", "date_to"):
        raw = query.get(name)
        if not raw:
            continue
        day = wire.parse_timestamp(raw)
        if day is None:
            raise Rejected(400, f"{name} must be a date")
        limit = day.date()

        def keep(row: Mapping[str, Any], limit: date = limit, name: str = name) -> bool:
            created = wire.parse_timestamp(row.get("createdAt"))
            if created is None:
                return False
            return created.date() >= limit if name == "date_from" else created.date() <= limit

        out = [r for r in out if keep(r)]
    out.sort(key=lambda r: (str(r.get(sort_by, "")), str(r.get("createdAt", ""))),
             reverse=direction != "ASC")
    return out


def _v1_page(query: Query, items: list[Any]) -> list[Any]:
    count = _int_param(query, "count", 10, high=1000)
    page = _int_param(query, "page", 1, high=1_000_000)
    return items[(page - 1) * count:page * count]


def _listing(items: list[Any], query: Query) -> dict[str, Any]:
    return {"items": _v1_page(query, items), "total": len(items)}


@dataclass
class Message:
    """One message the emulator accepted (either API), and where it is in its lifecycle."""

    id: int
    api: str
    transaction_id: str
    batch_id: str
    phonenumber: str
    message: str
    sender_id: str
    charge: Decimal
    pages: int
    created: float
    message_type: str = "direct"
    campaign_id: int | str | None = None

    def phase(self, now: float, delay: float) -> tuple[str, float | None, float | None]:
        """(status, sent_timestamp, dlr_timestamp) at ``now``."""
        sent_at = self.created + delay / 2
        done_at = self.created + delay
        if now < sent_at:
            return "submitted", None, None
        if now < done_at:
            return "pending", sent_at, None
        final = "delivery failed" if self.phonenumber.endswith("9") else "delivered"
        return final, sent_at, done_at

    def item(self, now: float, delay: float) -> dict[str, Any]:
        """The v1 message item [DOC, by-params sample]."""
        status, sent_at, dlr_at = self.phase(now, delay)
        return {
            "status": status,
            "id": self.id,
            "transaction_id": self.transaction_id,
            "phonenumber": self.phonenumber,
            "message": self.message,
            "sender_id": self.sender_id,
            "network": None,
            "charge": format(self.charge.normalize(), "f"),
            "created_at": iso(self.created),
            "sent_timestamp": iso(sent_at),
            "dlr_timestamp": iso(dlr_at),
            "pages": self.pages,
            "message_type": self.message_type,
        }


def _no_callbacks(msgs: list[Message]) -> None:
    return None


@dataclass
class SquadEmulator:
    """In-memory state and configuration of one emulator (no module globals, no I/O)."""

    secret_key: str = SANDBOX_SECRET_KEY
    v1_key: str = SANDBOX_V1_KEY
    v1_secret: str | None = SANDBOX_V1_SECRET
    v1_encryption_key: str | None = None
    v1_iv: str = SANDBOX_V1_IV
    client_id: int = SANDBOX_CLIENT_ID
    user_id: int = SANDBOX_USER_ID
    v1_key_header: str = "key"
    v1_secret_header: str = "secret"
    merchant_id: str = "SMSGATE01"
    delivery_delay: float = 0.5
    webhook_url: str | None = None
    webhook_secret: str | None = None
    registered_senders: frozenset[str] | None = None
    price_v2: Decimal = Decimal("5.41")
    price_v1: Decimal = Decimal("4")
    signed_url_ttl: float = 300.0
    max_instant_batch: int = 1000
    #: Request record and fault injection (shared with :func:`smsgate.emulation.emulator_app`).
    control: EmulatorState = field(default_factory=EmulatorState)
    #: Called with the messages each operation creates (the app schedules callbacks here).
    on_messages: Callable[[list[Message]], None] = _no_callbacks
    #: The clock (epoch seconds); tests may replace it.
    clock: Callable[[], float] = time.time
    # state
    messages: list[Message] = field(default_factory=list)
    templates_v2: dict[str, dict[str, Any]] = field(default_factory=dict)
    buckets_v2: dict[str, dict[str, Any]] = field(default_factory=dict)
    bucket_rows_v2: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    campaigns_v2: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates_v1: dict[int, dict[str, Any]] = field(default_factory=dict)
    buckets_v1: dict[int, dict[str, Any]] = field(default_factory=dict)
    bucket_rows_v1: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    campaigns_v1: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Status callbacks delivered: ``{transaction_id, status_code}``.
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    _ids: dict[str, int] = field(default_factory=dict)
    _secret_cache: dict[date, str] = field(default_factory=dict)
    _s3_key: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    _batches: set[str] = field(default_factory=set)

    # ------------------------------------------------------------ basics
    def next_id(self, kind: str) -> int:
        """Sequential integer ids per kind (v1 ids are integers)."""
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def now(self) -> float:
        """Current time (epoch seconds)."""
        return self.clock()

    # ------------------------------------------------------------ accounts
    def v1_secrets(self) -> set[str]:
        """Accepted v1 secrets: the static one, and the derived one for yesterday..tomorrow (WAT)."""
        valid = {self.v1_secret} if self.v1_secret else set()
        if have_cryptography():
            today = datetime.fromtimestamp(self.now(), timezone.utc).astimezone(WAT).date()
            for offset in (-1, 0, 1):
                day = today + timedelta(days=offset)
                if day not in self._secret_cache:
                    self._secret_cache[day] = derive_v1_secret(
                        self.v1_encryption_key or self.v1_key, self.v1_iv,
                        str(self.client_id), str(self.user_id), day,
                    )
                valid.add(self._secret_cache[day])
        return valid

    def check_v2(self, authorization: str) -> Rejected | None:
        """v2 auth: 401 without a key, 403 with a wrong one [DOC bodies]; None when accepted."""
        if not authorization.strip():
            return Rejected(401, "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.secret_key):
            return Rejected(403, "Merchant authentication failed")
        return None

    def check_v1(self, key: str, secret: str) -> Rejected | None:
        """v1 auth: key + daily secret headers [DOC; names INF]; None when accepted."""
        if not key or not secret:
            return Rejected(401, "")
        if not hmac.compare_digest(key, self.v1_key) or secret not in self.v1_secrets():
            return Rejected(403, "Merchant authentication failed")
        return None

    def check_client(self, client_id: object) -> None:
        """The ``by-client/{client_id}`` routes answer only the credentials' own client."""
        if wire.to_int(client_id) != self.client_id:
            raise Rejected(403, "client does not match the credentials")

    def check_sender(self, sender: object) -> None:
        """v2 sender IDs must be registered (3P-observed message)."""
        if not isinstance(sender, str) or not sender.strip():
            raise Rejected(400, "sender_id is required")
        if self.registered_senders is not None and sender not in self.registered_senders:
            raise Rejected(400, "Sender ID not found or registered")

    # ------------------------------------------------------------ messages
    def add_message(self, api: str, number: str, text: str, sender: str, batch_id: str, tx: str,
                    message_type: str, campaign_id: int | str | None, price: Decimal) -> Message:
        """Record a message (it starts ``submitted``)."""
        pages = count_segments(text)
        msg = Message(
            id=self.next_id("message") + 7_900_000, api=api, transaction_id=tx, batch_id=batch_id,
            phonenumber=number, message=text, sender_id=sender, charge=price * pages, pages=pages,
            created=self.now(), message_type=message_type, campaign_id=campaign_id,
        )
        self.messages.append(msg)
        return msg

    def items(self, msgs: Iterable[Message]) -> list[dict[str, Any]]:
        """v1 items of ``msgs`` at the current time."""
        now = self.now()
        return [m.item(now, self.delivery_delay) for m in msgs]

    def callback_body(self, msg: Message, now: float) -> bytes:
        """The [INF] callback payload: Squad's webhook envelope around a v1 message item."""
        item = msg.item(now, self.delivery_delay)
        item["batch_id"] = msg.batch_id
        payload = {"Event": "sms_status_update", "TransactionRef": msg.transaction_id, "Body": item}
        return json.dumps(payload, separators=(",", ":")).encode("utf-8")

    def batch_id_v2(self, cost: Decimal) -> str:
        """``yyyyMMddHHmmssSSS_<cost in kobo>_<merchant>_SQUADSMS_NGN`` [INF from the sample].

        Unique per emulator: a clash within the same millisecond moves the stamp on by 1 ms.
        """
        moment = datetime.fromtimestamp(self.now(), timezone.utc).astimezone(WAT)
        while True:
            stamp = moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"
            batch = f"{stamp}_{int(money(cost) * 100)}_{self.merchant_id}_SQUADSMS_NGN"
            if batch not in self._batches:
                self._batches.add(batch)
                return batch
            moment += timedelta(milliseconds=1)

    # ================================================================ v2

    def send_instant(self, body: Body) -> dict[str, Any]:
        """``POST /sms/send/instant``: the double-nested ``data`` (``data.data.{batch_id, sent, errors}``)."""
        sender = body.get("sender_id")
        self.check_sender(sender)
        entries = body.get("messages")
        if not isinstance(entries, list) or not entries:
            raise Rejected(400, "messages is required")
        if len(entries) > self.max_instant_batch:
            raise Rejected(400, f"at most {self.max_instant_batch} messages per request")
        valid: list[tuple[str, str, object]] = []
        errors: list[dict[str, Any]] = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                errors.append({"phone_number": None, "message": "invalid message entry"})
                continue
            raw_phone, text = entry.get("phone_number"), entry.get("message")
            number = local_number(raw_phone)
            if number is None:
                errors.append({"phone_number": raw_phone, "message": "Invalid phone number"})
            elif not isinstance(text, str) or not text:
                errors.append({"phone_number": raw_phone, "message": "message is required"})
            else:
                valid.append((number, text, raw_phone))
        sent: list[dict[str, Any]] = []
        msgs: list[Message] = []
        total = Decimal(0)
        batch = ""
        if valid:
            cost = sum((self.price_v2 * count_segments(t) for _, t, _ in valid), Decimal(0))
            batch = self.batch_id_v2(cost)
            for i, (number, text, raw_phone) in enumerate(valid):
                msg = self.add_message("v2", number, text, str(sender), batch, f"{batch}_{i:03d}",
                                       "direct", None, self.price_v2)
                msgs.append(msg)
                total += msg.charge
                sent.append({"phone_number": raw_phone, "status": "SENT", "cost": float(money(msg.charge)),
                             "transaction_id": msg.transaction_id})
        if msgs:
            self.on_messages(msgs)
        return {
            "success": bool(sent),
            "message": "submitted successfully" if sent else "no message was submitted",
            "data": {"batch_id": batch or None, "sent": sent, "errors": errors,
                     "total_cost": float(money(total)), "currency": "NGN"},
        }

    # ------------------------------------------------------------ v2 templates
    def create_template_v2(self, body: Body) -> dict[str, Any]:
        """``POST /sms/template``: the template row."""
        name, description, message = _required_text(body, "name", "description", "message")
        now = iso(self.now())
        uuid = str(uuidlib.uuid4())
        row: dict[str, Any] = {"uuid": uuid, "merchant_id": self.merchant_id, "name": name,
               "description": description, "pages": count_segments(message), "message": message,
               "createdAt": now, "updatedAt": now}
        self.templates_v2[uuid] = row
        return row

    def list_templates_v2(self, query: Query) -> dict[str, Any]:
        """``GET /sms/template``: ``{count, rows}``."""
        rows = _sort_filter(list(self.templates_v2.values()), query)
        return {"count": len(rows), "rows": _paginate(rows, query, 10)}

    def edit_template_v2(self, uuid: str, body: Body) -> dict[str, Any]:
        """``PATCH /sms/template/{uuid}``: the changed row."""
        row = self.templates_v2.get(uuid)
        if row is None:
            raise Rejected(404, "Template not found")
        changed = False
        for key in ("name", "description", "message"):
            if key in body:
                value = body[key]
                if not isinstance(value, str) or not value.strip():
                    raise Rejected(400, f"{key} must be a non-empty string")
                row[key] = value
                changed = True
        if not changed:
            raise Rejected(400, "nothing to update: name, description or message")
        row["pages"] = count_segments(row["message"])
        row["updatedAt"] = iso(self.now())
        return row

    def delete_template_v2(self, uuid: str) -> dict[str, Any]:
        """``DELETE /sms/template/{uuid}``: the deleted row."""
        row = self.templates_v2.pop(uuid, None)
        if row is None:
            raise Rejected(404, "Template not found")
        return row

    # ------------------------------------------------------------ v2 buckets
    def create_bucket_v2(self, body: Body, base_url: str) -> dict[str, Any]:
        """``POST /sms/bucket``: the bucket with a ``signed_url`` under ``base_url`` to PUT its CSV to."""
        name, description, file_name = _required_text(body, "name", "description", "file_name")
        if not file_name.lower().endswith(".csv") or "/" in file_name:
            raise Rejected(400, "file_name should have a .csv extension")
        now = self.now()
        uuid = str(uuidlib.uuid4())
        row = {"uuid": uuid, "status": "pending", "name": name, "description": description,
               "merchant_id": self.merchant_id, "updatedAt": iso(now), "createdAt": iso(now),
               "size": None, "file_url": None, "estimated_cost": None, "headers": None, "meta": None}
        self.buckets_v2[uuid] = row
        path = (f"/_s3/squad-emulator-bucket/bulk_sms/{self.merchant_id}/campaign/{uuid}/"
                f"{file_name}/{int(now * 1000)}-{secrets.randbelow(1_000_000):06d}.csv")
        amz_date = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        query = httpx.QueryParams({
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"EMULATOR/{amz_date[:8]}/eu-west-2/s3/aws4_request",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(int(self.signed_url_ttl)),
            "X-Amz-Signature": self.sign_s3(path, amz_date),
            "X-Amz-SignedHeaders": "host;x-amz-acl",
            "x-amz-acl": "public-read",
        })
        return {**row, "signed_url": f"{base_url.rstrip('/')}{path}?{query}"}

    def list_buckets_v2(self, query: Query) -> dict[str, Any]:
        """``GET /sms/bucket``: ``{count, rows}``."""
        rows = _sort_filter(list(self.buckets_v2.values()), query)
        return {"count": len(rows), "rows": _paginate(rows, query, None)}

    def delete_bucket_v2(self, uuid: str) -> dict[str, Any]:
        """``DELETE`` (or ``POST``) ``/sms/bucket/{uuid}``: the deleted bucket."""
        row = self.buckets_v2.pop(uuid, None)
        if row is None:
            raise Rejected(404, "Bucket not found")
        self.bucket_rows_v2.pop(uuid, None)
        return row

    def sign_s3(self, path: str, amz_date: str) -> str:
        """Signature of an emulated pre-signed upload URL."""
        return hmac.new(self._s3_key, f"{path}\n{amz_date}".encode(), hashlib.sha256).hexdigest()

    def upload_csv(self, path: str, query: Query, acl_header: str | None, content: bytes, base_url: str) -> str:
        """``PUT`` to a pre-signed URL: the bucket takes the CSV's valid Nigerian numbers; the ETag."""
        amz_date = query.get("X-Amz-Date", "")
        if not hmac.compare_digest(query.get("X-Amz-Signature", ""), self.sign_s3(path, amz_date)):
            raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise S3Error(403, "AuthorizationQueryParametersError", "X-Amz-Date is malformed") from None
        if self.now() > signed_at.timestamp() + float(query.get("X-Amz-Expires", "0") or 0) + 1:
            raise S3Error(403, "AccessDenied", "Request has expired")
        if "x-amz-acl" in query.get("X-Amz-SignedHeaders", "") and acl_header != query.get("x-amz-acl"):
            raise S3Error(403, "SignatureDoesNotMatch", "x-amz-acl header does not match the signed value")
        match = re.search(r"/campaign/([0-9a-f-]{36})/", path)
        row = self.buckets_v2.get(match.group(1)) if match else None
        if row is None:
            raise S3Error(404, "NoSuchBucket", "The bucket was deleted")
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = ""
        reader = csv.DictReader(io.StringIO(text))
        headers = [h.strip() for h in reader.fieldnames or []]
        phone_col = "phone_number" if "phone_number" in headers else (headers[0] if headers else "")
        rows = []
        for record in reader:
            clean = {(k or "").strip(): (v or "").strip() for k, v in record.items()}
            number = local_number(clean.get(phone_col))
            if number is not None:
                rows.append({**clean, "phone_number": number})
        self.bucket_rows_v2[row["uuid"]] = rows
        row.update({
            "status": "completed" if rows else "failed", "size": len(rows), "headers": headers,
            "file_url": f"{base_url.rstrip('/')}{path}",
            "estimated_cost": f"{money(self.price_v2 * len(rows)):.2f}", "updatedAt": iso(self.now()),
        })
        return hashlib.md5(content, usedforsecurity=False).hexdigest()

    # ------------------------------------------------------------ v2 campaigns
    def create_campaign_v2(self, body: Body) -> dict[str, Any]:
        """``POST /sms/campaign``: the campaign as created (pending, nothing sent yet); a due one
        launches right after."""
        name, bucket_id, sender, template_id = _required_text(body, "name", "bucket_id", "sender_id", "template_id")
        self.check_sender(sender)
        if bucket_id not in self.buckets_v2:
            raise Rejected(404, "Bucket not found")
        if template_id not in self.templates_v2:
            raise Rejected(404, "Template not found")
        scheduled = _as_bool(body.get("is_scheduled", False))
        if scheduled is None:
            raise Rejected(400, "is_scheduled must be a boolean")
        now = self.now()
        due = now
        scheduled_for: str | None = None
        if scheduled:
            when = wire.parse_timestamp(body.get("scheduled_for"))
            if when is None:
                raise Rejected(400, "scheduled_for is required when is_scheduled is true")
            due = when.timestamp()
            scheduled_for = js_date(when)
        uuid = str(uuidlib.uuid4())
        row: dict[str, Any] = {
            "uuid": uuid, "name": name, "cost": "0.00", "scheduled_for": scheduled_for,
            "status": "pending", "merchant_id": self.merchant_id, "createdAt": iso(now),
            "updatedAt": iso(now), "bucket_id": bucket_id, "sender_id": sender, "template_id": template_id,
            "_meta": {"due": due, "launched": False, "messages": []},
        }
        self.campaigns_v2[uuid] = row
        shown = self.campaign_row(row)
        self.tick()
        return shown

    def list_campaigns_v2(self, query: Query) -> dict[str, Any]:
        """``GET /sms/campaign``: ``{count, rows}`` (``status``, ``name``, sorting, dates, pages)."""
        rows = [self.campaign_row(r) for r in self.campaigns_v2.values()]
        status = query.get("status")
        if status:
            if status not in ("pending", "failed", "success"):
                raise Rejected(400, "status must be pending, failed or success")
            rows = [r for r in rows if r["status"] == status]
        wanted = query.get("name")
        if wanted:
            rows = [r for r in rows if wanted.lower() in str(r["name"]).lower()]
        rows = _sort_filter(rows, query)
        return {"count": len(rows), "rows": _paginate(rows, query, 10)}

    def delete_campaign_v2(self, uuid: str) -> dict[str, Any]:
        """``DELETE /sms/campaign/{uuid}``: the deleted campaign."""
        row = self.campaigns_v2.pop(uuid, None)
        if row is None:
            raise Rejected(404, "Campaign not found")
        return self.campaign_row(row)

    def campaign_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A campaign row as the API shows it."""
        return {k: v for k, v in row.items() if not k.startswith("_")}

    def tick(self) -> None:
        """Launch due v2 campaigns and complete finished ones (the app calls it on every v2 request)."""
        now = self.now()
        for row in self.campaigns_v2.values():
            meta = row["_meta"]
            if row["status"] == "pending" and not meta["launched"] and meta["due"] <= now:
                self._launch_v2(row)
            finished = all(m.phase(now, self.delivery_delay)[2] is not None for m in meta["messages"])
            if row["status"] == "pending" and meta["launched"] and finished:
                row["status"] = "success"
                row["updatedAt"] = iso(now)

    def _launch_v2(self, row: dict[str, Any]) -> None:
        meta = row["_meta"]
        meta["launched"] = True
        bucket = self.buckets_v2.get(row["bucket_id"])
        template = self.templates_v2.get(row["template_id"])
        rows = self.bucket_rows_v2.get(row["bucket_id"], [])
        if bucket is None or template is None or not rows:
            row["status"] = "failed"
            row["updatedAt"] = iso(self.now())
            return
        texts = [render(template["message"], params) for params in rows]
        cost = sum((self.price_v2 * count_segments(t) for t in texts), Decimal(0))
        batch, msgs, total = self.batch_id_v2(cost), [], Decimal(0)
        for i, (params, text) in enumerate(zip(rows, texts, strict=True)):
            msg = self.add_message("v2", params["phone_number"], text, row["sender_id"], batch,
                                   f"{batch}_{i:03d}", "campaign", row["uuid"], self.price_v2)
            msgs.append(msg)
            total += msg.charge
        meta["messages"] = msgs
        row["cost"] = f"{money(total):.2f}"
        row["updatedAt"] = iso(self.now())
        if self.delivery_delay <= 0:
            row["status"] = "success"
        self.on_messages(msgs)

    # ================================================================ v1

    def v1_messages(self, predicate: Callable[[Message], bool]) -> list[Message]:
        """The v1 messages ``predicate`` keeps, oldest first."""
        return [m for m in self.messages if m.api == "v1" and predicate(m)]

    def send_v1(self, body: Body) -> dict[str, Any]:
        """``POST {prefix}/message``: ``{sent, batch_id}``; ``is_campaign`` records a campaign named
        by ``reference``."""
        flags = {}
        for name in ("is_campaign", "use_bucket", "use_template"):
            value = _as_bool(body.get(name, False))
            if value is None:
                raise Rejected(400, f"{name} must be a boolean")
            flags[name] = value
        recipients, text = body.get("recipients"), body.get("body")
        if recipients in (None, ""):
            raise Rejected(400, "recipients is required")
        if text in (None, ""):
            raise Rejected(400, "body is required")
        sender = body.get("sender")
        sender = sender if isinstance(sender, str) and sender else "SQUAD"
        template_id: int | None = None
        if flags["use_template"]:
            template_id = wire.to_int(text)
            template = self.templates_v1.get(template_id) if template_id is not None else None
            if template is None:
                raise Rejected(404, "template not found")
            text = template["body"]
        if not isinstance(text, str):
            raise Rejected(400, "body must be a string")
        bucket_id: int | None = None
        if flags["use_bucket"]:
            bucket_id = wire.to_int(recipients)
            if bucket_id is None or bucket_id not in self.buckets_v1:
                raise Rejected(404, "bucket not found")
            targets = self.bucket_rows_v1.get(bucket_id, [])
        else:
            number = local_number(recipients)
            if number is None:
                raise Rejected(400, "recipients must be a phone number")
            targets = [{"phone_number": number}]
        batch = secrets.token_hex(6).upper()
        campaign_id: int | None = None
        if flags["is_campaign"]:
            campaign_id = self.next_id("campaign")
            reference = body.get("reference")
            self.campaigns_v1[campaign_id] = {
                "id": campaign_id, "name": str(reference) if reference else batch, "client_id": self.client_id,
                "template_id": template_id, "bucket_id": bucket_id, "total": len(targets),
                "created_at": iso(self.now()), "created_by": None,
            }
        msgs = []
        for i, params in enumerate(targets):
            msgs.append(self.add_message(
                "v1", params["phone_number"], render(text, params), sender, batch,
                f"{self.client_id}_{uuidlib.uuid4()}_{i}", "campaign" if campaign_id else "direct",
                campaign_id, self.price_v1,
            ))
        if msgs:
            self.on_messages(msgs)
        return {"sent": len(msgs), "batch_id": batch}

    def _message_list(self, msgs: list[Message], query: Query) -> dict[str, Any]:
        items = self.items(msgs)
        return {"items": _v1_page(query, items), "total": [{"total": str(len(items))}]}

    def campaign_messages_v1(self, campaign_id: str, query: Query) -> dict[str, Any]:
        """``GET .../campaign/messages/by-campaign/{id}``: ``{items, total: [{total}]}`` [DOC quirk]."""
        cid = wire.to_int(campaign_id)
        return self._message_list(self.v1_messages(lambda m: m.campaign_id == cid), query)

    def messages_by_phone_v1(self, phone: str, query: Query) -> dict[str, Any]:
        """``GET .../message/by-phone/{phone}``."""
        number = local_number(phone) or phone
        return self._message_list(self.v1_messages(lambda m: m.phonenumber == number), query)

    def messages_by_batch_v1(self, query: Query) -> dict[str, Any]:
        """``GET .../message/by-params?batch_id=``: ``{items, pageInfo}``, cursor paged."""
        batch = query.get("batch_id")
        if not batch:
            raise Rejected(400, "batch_id is required")
        msgs = sorted(self.v1_messages(lambda m: m.batch_id == batch), key=lambda m: m.id)
        size = _int_param(query, "count", 20, high=1000)
        cursor = query.get("cursor")
        start = 0
        if cursor:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
            except (ValueError, UnicodeDecodeError):
                raise Rejected(400, "invalid cursor") from None
        chunk = msgs[start:start + size]

        def enc(offset: int) -> str:
            return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()

        has_next = start + size < len(msgs)
        return {
            "items": self.items(chunk),
            "pageInfo": {"hasNextPage": has_next, "nextCursor": enc(start + size) if has_next else None,
                         "prevCursor": enc(max(0, start - size)) if start > 0 else None},
        }

    # ------------------------------------------------------------ v1 statistics
    def _counts(self, msgs: list[Message]) -> dict[str, int]:
        counts = {"submitted": 0, "invalid": 0, "sent": 0, "absent": 0, "failed": 0, "delivered": 0,
                  "deliveryFailed": 0}
        now = self.now()
        key = {"submitted": "submitted", "pending": "sent", "delivered": "delivered",
               "delivery failed": "deliveryFailed"}
        for m in msgs:
            counts[key[m.phase(now, self.delivery_delay)[0]]] += 1
        return counts

    def client_statistics_v1(self, client_id: str) -> dict[str, int]:
        """``GET .../message/statistics/by-client/{client_id}``: counts by state."""
        self.check_client(client_id)
        return self._counts(self.v1_messages(lambda m: True))

    def campaign_statistics_v1(self, campaign_id: str) -> dict[str, int]:
        """``GET .../message/statistics/by-campaign/{id}``: counts by state."""
        cid = wire.to_int(campaign_id)
        if cid not in self.campaigns_v1:
            raise Rejected(404, "campaign not found")
        return self._counts(self.v1_messages(lambda m: m.campaign_id == cid))

    def hourly_statistics_v1(self, client_id: str, day_text: str) -> dict[str, Any]:
        """``GET .../message.summary/hourly-statistics/by-client/{client_id}?date=``."""
        self.check_client(client_id)
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise Rejected(400, "date must be YYYY-MM-DD") from None
        now = self.now()
        blank = {"submitted_count": 0, "sent_count": 0, "invalid_count": 0, "successful_count": 0,
                 "failed_count": 0, "absent_count": 0}
        detail: list[dict[str, Any]] = [{"hour": f"{h:02d}:00", **blank} for h in range(24)]
        queue, delivery, waiting = [], [], []
        for m in self.v1_messages(lambda m: True):
            created = datetime.fromtimestamp(m.created, timezone.utc).astimezone(WAT)
            if created.date() != day:
                continue
            status, sent_at, dlr_at = m.phase(now, self.delivery_delay)
            row = detail[created.hour]
            row["submitted_count"] += 1
            if sent_at is not None:
                row["sent_count"] += 1
                queue.append(sent_at - m.created)
            else:
                waiting.append(m.created)
            if status == "delivered":
                row["successful_count"] += 1
            elif status == "delivery failed":
                row["failed_count"] += 1
            if dlr_at is not None and sent_at is not None:
                delivery.append(dlr_at - sent_at)
        totals = {k: sum(int(r[k]) for r in detail) for k in blank}
        return {
            **totals,
            "avg_queue_time": round(sum(queue) / len(queue), 3) if queue else 0,
            "avg_delivery_time": round(sum(delivery) / len(delivery), 3) if delivery else 0,
            "oldest_on_queue": iso(min(waiting)) if waiting else None,
            "queue_count": len(waiting) if waiting else None,
            "detail": detail,
        }

    # ------------------------------------------------------------ v1 campaigns, buckets, templates
    def campaigns_v1_listing(self, client_id: str, query: Query) -> dict[str, Any]:
        """The documented "get all campaigns" route: ``{items, total}``."""
        self.check_client(client_id)
        return _listing(sorted(self.campaigns_v1.values(), key=lambda c: c["id"]), query)

    def create_bucket_v1(self, body: Body) -> dict[str, Any]:
        """``POST /dashboard/bucket`` with the numbers inline (``items``): the bucket."""
        name, description = _required_text(body, "name", "description")
        if wire.to_int(body.get("client_id")) != self.client_id:
            raise Rejected(400, "client_id is required and must match the credentials")
        items = body.get("items")
        if not isinstance(items, list):
            raise Rejected(400, "items is required")
        rows, params = [], ["phone_number"]
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise Rejected(400, f"items[{i}] must be an object")
            number = local_number(item.get("phone_number"))
            if number is None:
                raise Rejected(400, f"items[{i}].phone_number is not a valid phone number")
            rows.append({**{str(k): str(v) for k, v in item.items()}, "phone_number": number})
            params.extend(str(k) for k in item if str(k) not in params)
        bid = self.next_id("bucket")
        row = {"id": bid, "name": name, "description": description.lower(), "params": params,
               "client_id": self.client_id, "created_at": iso(self.now()), "created_by": self.user_id,
               "updated_at": None, "updated_by": None, "bucket_items": len(rows)}
        self.buckets_v1[bid] = row
        self.bucket_rows_v1[bid] = rows
        return row

    @staticmethod
    def _bucket_v1_shown(row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k != "bucket_items"}

    def buckets_v1_listing(self, client_id: str, query: Query) -> dict[str, Any]:
        """``GET /dashboard/bucket/by-client/{client_id}``: ``{items, total}``."""
        self.check_client(client_id)
        return _listing([self._bucket_v1_shown(r) for r in sorted(self.buckets_v1.values(), key=lambda r: r["id"])],
                        query)

    def find_bucket_v1(self, bucket_id: str) -> tuple[int, dict[str, Any]]:
        """A v1 bucket's id and row, or a 404."""
        bid = wire.to_int(bucket_id)
        row = self.buckets_v1.get(bid) if bid is not None else None
        if row is None or bid is None:
            raise Rejected(404, "bucket not found")
        return bid, row

    def rename_bucket_v1(self, bucket_id: str, body: Body) -> dict[str, Any]:
        """``PATCH /dashboard/bucket/{id}`` ``{name}``: the bucket."""
        _, row = self.find_bucket_v1(bucket_id)
        (name,) = _required_text(body, "name")
        row.update({"name": name, "updated_at": iso(self.now()), "updated_by": self.user_id})
        return self._bucket_v1_shown(row)

    def delete_bucket_v1(self, bucket_id: str) -> None:
        """``DELETE /dashboard/bucket/{id}``."""
        bid, _ = self.find_bucket_v1(bucket_id)
        del self.buckets_v1[bid]
        self.bucket_rows_v1.pop(bid, None)

    @staticmethod
    def _template_v1_shown(row: Mapping[str, Any], with_body: bool) -> dict[str, Any]:
        shown = {k: v for k, v in row.items() if k not in ("body", "params")}
        if with_body:
            shown = {"id": row["id"], "name": row["name"], "body": row["body"],
                     "description": row["description"], "client_id": row["client_id"],
                     "params": ["phone_number", *_PLACEHOLDER_RE.findall(row["body"])],
                     **{k: v for k, v in shown.items() if k not in ("id", "name", "description", "client_id")}}
        return shown

    def create_template_v1(self, body: Body) -> dict[str, Any]:
        """``POST /dashboard/template``: the template (without its body, as the sample shows)."""
        name, text, description = _required_text(body, "name", "body", "description")
        if wire.to_int(body.get("client_id")) != self.client_id:
            raise Rejected(400, "client_id is required and must match the credentials")
        tid = self.next_id("template")
        row = {"id": tid, "name": name, "body": text, "description": description,
               "client_id": self.client_id, "created_at": iso(self.now()), "created_by": self.user_id,
               "updated_at": None, "updated_by": None}
        self.templates_v1[tid] = row
        return self._template_v1_shown(row, False)

    def templates_v1_listing(self, client_id: str, query: Query) -> dict[str, Any]:
        """``GET /dashboard/template/by-client/{client_id}``: ``{items, total}`` with bodies and params."""
        self.check_client(client_id)
        rows = sorted(self.templates_v1.values(), key=lambda r: r["id"])
        return _listing([self._template_v1_shown(r, True) for r in rows], query)

    def find_template_v1(self, template_id: str) -> tuple[int, dict[str, Any]]:
        """A v1 template's id and row, or a 404."""
        tid = wire.to_int(template_id)
        row = self.templates_v1.get(tid) if tid is not None else None
        if row is None or tid is None:
            raise Rejected(404, "template not found")
        return tid, row

    def edit_template_v1(self, template_id: str, body: Body) -> dict[str, Any]:
        """``PATCH /dashboard/template/{id}``: the template (without its body)."""
        _, row = self.find_template_v1(template_id)
        changed = False
        for key in ("body", "name", "description"):
            if key in body:
                value = body[key]
                if not isinstance(value, str) or not value.strip():
                    raise Rejected(400, f"{key} must be a non-empty string")
                row[key] = value
                changed = True
        if not changed:
            raise Rejected(400, "body is required")
        row.update({"updated_at": iso(self.now()), "updated_by": self.user_id})
        return self._template_v1_shown(row, False)

    def delete_template_v1(self, template_id: str) -> None:
        """``DELETE /dashboard/template/{id}``."""
        tid, _ = self.find_template_v1(template_id)
        del self.templates_v1[tid]

    def senders_v1(self, client_id: str) -> dict[str, Any]:
        """``GET .../sender/{client_id}``: ``{items: [{id, sender_id, client_id}], total}`` [INF]."""
        self.check_client(client_id)
        names = sorted(self.registered_senders) if self.registered_senders is not None else ["SQUAD"]
        items = [{"id": i, "sender_id": n, "client_id": self.client_id} for i, n in enumerate(names, start=1)]
        return {"items": items, "total": len(items)}

