"""An in-memory emulator of Squad's SMS APIs (v2 ``/sms/...`` and legacy v1), for tests and demos.

Everything it answers is taken from Squad's documents (seeds 000/001, FACTS.md section 1);
where they are silent it follows the [INF] notes there, listed in docs/providers/squad.md:

* v2: ``Authorization: Bearer <secret key>``; envelope ``{status: 200, success, message,
  data}``; ``POST /sms/send/instant`` (double-nested ``data.data``), templates, buckets (the
  ``signed_url`` points back here: ``{base}/_s3/...?X-Amz-...``, PUT the CSV there within
  ``signed_url_ttl`` seconds), campaigns (run when due, then ``success``).
* v1: headers ``key`` / ``secret`` (names configurable); message routes under both
  ``/service/message...`` and ``/dashboard/message...``; ``/dashboard/bucket``,
  ``/dashboard/template``; v1 envelopes ``{status: "SUCCESS"|"CREATED", message, data}``,
  the ``total: [{"total": "N"}]`` quirk of message lists, cursor paging of ``by-params``.
* 401 ``{"success": false, "message": "", "data": {}}`` without credentials, 403
  ``"Merchant authentication failed"`` with wrong ones; other errors use Squad's generic
  ``{"status": 400, "success": false, "message": ..., "data": {}}``.
* Messages go ``submitted`` -> ``pending`` (after ``delivery_delay / 2``) -> ``delivered``, or
  ``delivery failed`` for numbers ending in 9 (after ``delivery_delay``). With
  ``webhook_url`` each transition is POSTed there, signed like Squad
  (``x-squad-encrypted-body``: upper-case HMAC-SHA512 hex of the body keyed with the secret key),
  unless a ``drop_callbacks`` fault is active.

``create_app()`` with no arguments accepts :data:`SANDBOX_CREDENTIALS` (v2) and
:data:`SANDBOX_V1_CREDENTIALS` with :data:`SANDBOX_V1_OPTIONS` (v1), any sender ID, and
Nigerian numbers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate.emulation import EmulatorState, emulator_app
from smsgate.text import count_segments
from smsgate_squad import wire as P
from smsgate_squad.auth import (
    SIGNATURE_HEADER,
    WAT,
    derive_v1_secret,
    have_cryptography,
    sign_body,
)

__all__ = [
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SECRET_KEY",
    "SANDBOX_SETTINGS",
    "SANDBOX_V1_CREDENTIALS",
    "SANDBOX_V1_OPTIONS",
    "SANDBOX_V1_SETTINGS",
    "SquadEmulator",
    "create_app",
]

log = logging.getLogger("smsgate_squad.emulator")

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


# ---------------------------------------------------------------- helpers

def _iso(ts: float | None) -> str | None:
    """``2025-05-22T09:34:58.800Z`` (Squad's timestamp format), or ``None``."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _js_date(moment: datetime) -> str:
    """JavaScript ``Date.toString()`` in Lagos time, as the v2 campaign sample shows ``scheduled_for``."""
    local = moment.astimezone(WAT)
    return local.strftime("%a %b %d %Y %H:%M:%S GMT+0100 (West Africa Standard Time)")


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _local_number(raw: object) -> str | None:
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


def _render(body: str, params: Mapping[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda m: params.get(m.group(1), m.group(0)), body)


def _err(status: int, message: str) -> JSONResponse:
    """Squad's generic error envelope [DOC, other Squad APIs]."""
    return JSONResponse({"status": status, "success": False, "message": message, "data": {}},
                        status_code=status)


def _v2(data: Any) -> JSONResponse:
    return JSONResponse({"status": 200, "success": True, "message": "Success", "data": data})


def _v1(message: str, data: Any, status: str | None = "SUCCESS", code: int = 200) -> JSONResponse:
    body: dict[str, Any] = {} if status is None else {"status": status}
    body["message"] = message
    if data is not None:
        body["data"] = data
    return JSONResponse(body, status_code=code)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _int_param(request: Request, name: str, default: int, *, low: int = 1, high: int = 1000) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = P.to_int(raw)
    if value is None or not low <= value <= high:
        raise _BadRequest(400, f"{name} must be an integer between {low} and {high}")
    return value


# ---------------------------------------------------------------- state

@dataclass
class _Message:
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
            "created_at": _iso(self.created),
            "sent_timestamp": _iso(sent_at),
            "dlr_timestamp": _iso(dlr_at),
            "pages": self.pages,
            "message_type": self.message_type,
        }


@dataclass
class SquadEmulator:
    """In-memory state and configuration of one emulator app (no module globals)."""

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
    control: EmulatorState = field(default_factory=EmulatorState)
    # state
    messages: list[_Message] = field(default_factory=list)
    templates_v2: dict[str, dict[str, Any]] = field(default_factory=dict)
    buckets_v2: dict[str, dict[str, Any]] = field(default_factory=dict)
    bucket_rows_v2: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    campaigns_v2: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates_v1: dict[int, dict[str, Any]] = field(default_factory=dict)
    buckets_v1: dict[int, dict[str, Any]] = field(default_factory=dict)
    bucket_rows_v1: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    campaigns_v1: dict[int, dict[str, Any]] = field(default_factory=dict)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    _ids: dict[str, int] = field(default_factory=dict)
    _secret_cache: dict[date, str] = field(default_factory=dict)
    _s3_key: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _batches: set[str] = field(default_factory=set)

    # ------------------------------------------------------------ basics
    def next_id(self, kind: str) -> int:
        """Sequential integer ids per kind (v1 ids are integers)."""
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def now(self) -> float:
        """Current time (epoch seconds)."""
        return time.time()

    def v1_secrets(self) -> set[str]:
        """Accepted v1 secrets: the static one, and the derived one for yesterday..tomorrow (WAT)."""
        valid = {self.v1_secret} if self.v1_secret else set()
        if have_cryptography():
            today = datetime.now(timezone.utc).astimezone(WAT).date()
            for offset in (-1, 0, 1):
                day = today + timedelta(days=offset)
                if day not in self._secret_cache:
                    self._secret_cache[day] = derive_v1_secret(
                        self.v1_encryption_key or self.v1_key, self.v1_iv,
                        str(self.client_id), str(self.user_id), day,
                    )
                valid.add(self._secret_cache[day])
        return valid

    def check_v2(self, request: Request) -> JSONResponse | None:
        """v2 auth: 401 without a key, 403 with a wrong one [DOC bodies]."""
        header = request.headers.get("authorization", "")
        if not header.strip():
            return JSONResponse({"success": False, "message": "", "data": {}}, status_code=401)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.secret_key):
            return JSONResponse({"success": False, "message": "Merchant authentication failed", "data": {}},
                                status_code=403)
        return None

    def check_v1(self, request: Request) -> JSONResponse | None:
        """v1 auth: key + daily secret headers (names configurable) [DOC; names INF]."""
        key = request.headers.get(self.v1_key_header, "")
        secret = request.headers.get(self.v1_secret_header, "")
        if not key or not secret:
            return JSONResponse({"success": False, "message": "", "data": {}}, status_code=401)
        if not hmac.compare_digest(key, self.v1_key) or secret not in self.v1_secrets():
            return JSONResponse({"success": False, "message": "Merchant authentication failed", "data": {}},
                                status_code=403)
        return None

    def check_sender(self, sender: object) -> None:
        """v2 sender IDs must be registered (3P-observed message)."""
        if not isinstance(sender, str) or not sender.strip():
            raise _BadRequest(400, "sender_id is required")
        if self.registered_senders is not None and sender not in self.registered_senders:
            raise _BadRequest(400, "Sender ID not found or registered")

    # ------------------------------------------------------------ messages
    def add_message(self, api: str, number: str, text: str, sender: str, batch_id: str, tx: str,
                    message_type: str, campaign_id: int | str | None, price: Decimal) -> _Message:
        """Record a message (it starts ``submitted``)."""
        pages = count_segments(text)
        msg = _Message(
            id=self.next_id("message") + 7_900_000, api=api, transaction_id=tx, batch_id=batch_id,
            phonenumber=number, message=text, sender_id=sender, charge=price * pages, pages=pages,
            created=self.now(), message_type=message_type, campaign_id=campaign_id,
        )
        self.messages.append(msg)
        return msg

    def items(self, msgs: Iterable[_Message]) -> list[dict[str, Any]]:
        """v1 items of ``msgs`` at the current time."""
        now = self.now()
        return [m.item(now, self.delivery_delay) for m in msgs]

    def schedule_callbacks(self, msgs: list[_Message]) -> None:
        """POST status callbacks for ``msgs`` as they advance (when a webhook URL is set)."""
        if not self.webhook_url or not msgs:
            return
        task = asyncio.get_running_loop().create_task(self._callbacks(list(msgs)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def callback_body(self, msg: _Message, now: float) -> bytes:
        """The [INF] callback payload: Squad's webhook envelope around a v1 message item."""
        item = msg.item(now, self.delivery_delay)
        item["batch_id"] = msg.batch_id
        payload = {"Event": "sms_status_update", "TransactionRef": msg.transaction_id, "Body": item}
        return json.dumps(payload, separators=(",", ":")).encode("utf-8")

    async def _callbacks(self, msgs: list[_Message]) -> None:
        assert self.webhook_url is not None
        key = self.webhook_secret or self.secret_key
        async with httpx.AsyncClient(timeout=5.0) as client:
            for fraction in (0.5, 1.0):
                wait = msgs[0].created + self.delivery_delay * fraction - self.now()
                if wait > 0:
                    await asyncio.sleep(wait)
                if self.control.callbacks_dropped():
                    continue
                for msg in msgs:
                    body = self.callback_body(msg, msg.created + self.delivery_delay * fraction)
                    headers = {"content-type": "application/json", SIGNATURE_HEADER: sign_body(key, body)}
                    try:
                        response = await client.post(self.webhook_url, content=body, headers=headers)
                        self.callbacks.append({"transaction_id": msg.transaction_id,
                                               "status_code": response.status_code})
                    except httpx.HTTPError as exc:
                        log.warning("squad emulator: callback to %s failed: %s", self.webhook_url, exc)

    async def shutdown(self) -> None:
        """Cancel pending callbacks."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------ v2 campaigns
    def tick(self) -> None:
        """Launch due v2 campaigns and complete finished ones (called on every request)."""
        now = self.now()
        for row in self.campaigns_v2.values():
            meta = row["_meta"]
            if row["status"] == "pending" and not meta["launched"] and meta["due"] <= now:
                self._launch_v2(row)
            finished = all(m.phase(now, self.delivery_delay)[2] is not None for m in meta["messages"])
            if row["status"] == "pending" and meta["launched"] and finished:
                row["status"] = "success"
                row["updatedAt"] = _iso(now)

    def _launch_v2(self, row: dict[str, Any]) -> None:
        meta = row["_meta"]
        meta["launched"] = True
        bucket = self.buckets_v2.get(row["bucket_id"])
        template = self.templates_v2.get(row["template_id"])
        rows = self.bucket_rows_v2.get(row["bucket_id"], [])
        if bucket is None or template is None or not rows:
            row["status"] = "failed"
            row["updatedAt"] = _iso(self.now())
            return
        texts = [_render(template["message"], params) for params in rows]
        cost = sum((self.price_v2 * count_segments(t) for t in texts), Decimal(0))
        batch, msgs, total = self.batch_id_v2(cost), [], Decimal(0)
        for i, (params, text) in enumerate(zip(rows, texts, strict=True)):
            msg = self.add_message("v2", params["phone_number"], text, row["sender_id"], batch,
                                   f"{batch}_{i:03d}", "campaign", row["uuid"], self.price_v2)
            msgs.append(msg)
            total += msg.charge
        meta["messages"] = msgs
        row["cost"] = f"{_money(total):.2f}"
        row["updatedAt"] = _iso(self.now())
        if self.delivery_delay <= 0:
            row["status"] = "success"
        self.schedule_callbacks(msgs)

    def batch_id_v2(self, cost: Decimal) -> str:
        """``yyyyMMddHHmmssSSS_<cost in kobo>_<merchant>_SQUADSMS_NGN`` [INF from the sample].

        Unique per emulator: a clash within the same millisecond moves the stamp on by 1 ms.
        """
        moment = datetime.now(timezone.utc).astimezone(WAT)
        while True:
            stamp = moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"
            batch = f"{stamp}_{int(_money(cost) * 100)}_{self.merchant_id}_SQUADSMS_NGN"
            if batch not in self._batches:
                self._batches.add(batch)
                return batch
            moment += timedelta(milliseconds=1)

    def campaign_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A campaign row as the API shows it."""
        return {k: v for k, v in row.items() if not k.startswith("_")}

    # ------------------------------------------------------------ S3 signing
    def sign_s3(self, path: str, amz_date: str) -> str:
        """Signature of an emulated pre-signed upload URL."""
        return hmac.new(self._s3_key, f"{path}\n{amz_date}".encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- listing helpers

def _paginate(rows: list[dict[str, Any]], request: Request, default_per_page: int | None) -> list[dict[str, Any]]:
    per_page = _int_param(request, "perPage", default_per_page or max(1, len(rows)), high=10_000)
    page = _int_param(request, "page", 1, high=1_000_000)
    start = (page - 1) * per_page
    return rows[start:start + per_page]


def _sort_filter(rows: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
    q = request.query_params
    sort_by = q.get("sort_by") or "createdAt"
    direction = (q.get("dir") or "DSC").upper()
    if direction not in ("ASC", "DSC", "DESC"):
        raise _BadRequest(400, "dir must be ASC or DSC")
    out = list(rows)
    for name in ("date_from", "date_to"):
        raw = q.get(name)
        if not raw:
            continue
        day = P.parse_timestamp(raw)
        if day is None:
            raise _BadRequest(400, f"{name} must be a date")
        limit = day.date()

        def keep(row: Mapping[str, Any], limit: date = limit, name: str = name) -> bool:
            created = P.parse_timestamp(row.get("createdAt"))
            if created is None:
                return False
            return created.date() >= limit if name == "date_from" else created.date() <= limit

        out = [r for r in out if keep(r)]
    out.sort(key=lambda r: (str(r.get(sort_by, "")), str(r.get("createdAt", ""))),
             reverse=direction != "ASC")
    return out


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise _BadRequest(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise _BadRequest(400, "Request body must be a JSON object")
    return body


def _required_text(body: Mapping[str, Any], *names: str) -> list[str]:
    out = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise _BadRequest(400, f"{name} is required")
        out.append(value)
    return out


Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    *,
    secret_key: str = SANDBOX_SECRET_KEY,
    v1_key: str = SANDBOX_V1_KEY,
    v1_secret: str | None = SANDBOX_V1_SECRET,
    v1_encryption_key: str | None = None,
    v1_iv: str = SANDBOX_V1_IV,
    client_id: int = SANDBOX_CLIENT_ID,
    user_id: int = SANDBOX_USER_ID,
    v1_key_header: str = "key",
    v1_secret_header: str = "secret",
    merchant_id: str = "SMSGATE01",
    delivery_delay: float = 0.5,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    registered_senders: Iterable[str] | None = None,
    price_v2: Decimal | str = "5.41",
    price_v1: Decimal | str = "4",
    signed_url_ttl: float = 300.0,
    max_instant_batch: int = 1000,
) -> Any:
    """Build the emulator ASGI app (wrapped with request recording and fault injection).

    ``delivery_delay`` seconds until a message is final; ``webhook_url`` receives signed
    status callbacks; ``registered_senders`` (``None`` = any) limits v2 sender IDs. The
    state is reachable in-process as ``app.squad`` (:class:`SquadEmulator`).
    """
    st = SquadEmulator(
        secret_key=secret_key, v1_key=v1_key, v1_secret=v1_secret, v1_encryption_key=v1_encryption_key,
        v1_iv=v1_iv, client_id=client_id, user_id=user_id, v1_key_header=v1_key_header.lower(),
        v1_secret_header=v1_secret_header.lower(), merchant_id=merchant_id,
        delivery_delay=max(0.0, delivery_delay), webhook_url=webhook_url, webhook_secret=webhook_secret,
        registered_senders=None if registered_senders is None else frozenset(registered_senders),
        price_v2=Decimal(str(price_v2)), price_v1=Decimal(str(price_v1)),
        signed_url_ttl=signed_url_ttl, max_instant_batch=max_instant_batch,
    )

    def v2(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            denied = st.check_v2(request)
            if denied is not None:
                return denied
            try:
                st.tick()
                return await handler(request)
            except _BadRequest as exc:
                return _err(exc.status, exc.message)
        return wrapped

    def v1(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            denied = st.check_v1(request)
            if denied is not None:
                return denied
            try:
                return await handler(request)
            except _BadRequest as exc:
                return _err(exc.status, exc.message)
        return wrapped

    def v1_client(request: Request) -> None:
        if P.to_int(request.path_params["client_id"]) != st.client_id:
            raise _BadRequest(403, "client does not match the credentials")

    # ================================================================ v2
    async def send_instant(request: Request) -> Response:
        body = await _json_body(request)
        sender = body.get("sender_id")
        st.check_sender(sender)
        entries = body.get("messages")
        if not isinstance(entries, list) or not entries:
            raise _BadRequest(400, "messages is required")
        if len(entries) > st.max_instant_batch:
            raise _BadRequest(400, f"at most {st.max_instant_batch} messages per request")
        valid: list[tuple[str, str, object]] = []
        errors: list[dict[str, Any]] = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                errors.append({"phone_number": None, "message": "invalid message entry"})
                continue
            raw_phone, text = entry.get("phone_number"), entry.get("message")
            number = _local_number(raw_phone)
            if number is None:
                errors.append({"phone_number": raw_phone, "message": "Invalid phone number"})
            elif not isinstance(text, str) or not text:
                errors.append({"phone_number": raw_phone, "message": "message is required"})
            else:
                valid.append((number, text, raw_phone))
        sent: list[dict[str, Any]] = []
        msgs: list[_Message] = []
        total = Decimal(0)
        batch = ""
        if valid:
            cost = sum((st.price_v2 * count_segments(t) for _, t, _ in valid), Decimal(0))
            batch = st.batch_id_v2(cost)
            for i, (number, text, raw_phone) in enumerate(valid):
                msg = st.add_message("v2", number, text, str(sender), batch, f"{batch}_{i:03d}",
                                     "direct", None, st.price_v2)
                msgs.append(msg)
                total += msg.charge
                sent.append({"phone_number": raw_phone, "status": "SENT", "cost": float(_money(msg.charge)),
                             "transaction_id": msg.transaction_id})
        st.schedule_callbacks(msgs)
        return _v2({
            "success": bool(sent),
            "message": "submitted successfully" if sent else "no message was submitted",
            "data": {"batch_id": batch or None, "sent": sent, "errors": errors,
                     "total_cost": float(_money(total)), "currency": "NGN"},
        })

    def template_v2(name: str, description: str, message: str) -> dict[str, Any]:
        now = _iso(st.now())
        return {"uuid": str(uuidlib.uuid4()), "merchant_id": st.merchant_id, "name": name,
                "description": description, "pages": count_segments(message), "message": message,
                "createdAt": now, "updatedAt": now}

    async def templates_v2(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            name, description, message = _required_text(body, "name", "description", "message")
            row = template_v2(name, description, message)
            st.templates_v2[row["uuid"]] = row
            return _v2(row)
        rows = _sort_filter(list(st.templates_v2.values()), request)
        return _v2({"count": len(rows), "rows": _paginate(rows, request, 10)})

    async def template_v2_item(request: Request) -> Response:
        uuid = request.path_params["uuid"]
        row = st.templates_v2.get(uuid)
        if row is None:
            raise _BadRequest(404, "Template not found")
        if request.method == "DELETE":
            del st.templates_v2[uuid]
            return _v2(row)
        body = await _json_body(request)
        changed = False
        for key in ("name", "description", "message"):
            if key in body:
                value = body[key]
                if not isinstance(value, str) or not value.strip():
                    raise _BadRequest(400, f"{key} must be a non-empty string")
                row[key] = value
                changed = True
        if not changed:
            raise _BadRequest(400, "nothing to update: name, description or message")
        row["pages"] = count_segments(row["message"])
        row["updatedAt"] = _iso(st.now())
        return _v2(row)

    async def buckets_v2(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            name, description, file_name = _required_text(body, "name", "description", "file_name")
            if not file_name.lower().endswith(".csv") or "/" in file_name:
                raise _BadRequest(400, "file_name should have a .csv extension")
            now = st.now()
            uuid = str(uuidlib.uuid4())
            row = {"uuid": uuid, "status": "pending", "name": name, "description": description,
                   "merchant_id": st.merchant_id, "updatedAt": _iso(now), "createdAt": _iso(now),
                   "size": None, "file_url": None, "estimated_cost": None, "headers": None, "meta": None}
            st.buckets_v2[uuid] = row
            path = (f"/_s3/squad-emulator-bucket/bulk_sms/{st.merchant_id}/campaign/{uuid}/"
                    f"{file_name}/{int(now * 1000)}-{secrets.randbelow(1_000_000):06d}.csv")
            amz_date = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            query = httpx.QueryParams({
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": f"EMULATOR/{amz_date[:8]}/eu-west-2/s3/aws4_request",
                "X-Amz-Date": amz_date,
                "X-Amz-Expires": str(int(st.signed_url_ttl)),
                "X-Amz-Signature": st.sign_s3(path, amz_date),
                "X-Amz-SignedHeaders": "host;x-amz-acl",
                "x-amz-acl": "public-read",
            })
            base = str(request.base_url).rstrip("/")
            return _v2({**row, "signed_url": f"{base}{path}?{query}"})
        rows = _sort_filter(list(st.buckets_v2.values()), request)
        return _v2({"count": len(rows), "rows": _paginate(rows, request, None)})

    async def bucket_v2_item(request: Request) -> Response:
        uuid = request.path_params["uuid"]
        row = st.buckets_v2.pop(uuid, None)
        if row is None:
            raise _BadRequest(404, "Bucket not found")
        st.bucket_rows_v2.pop(uuid, None)
        return _v2(row)

    def s3_error(status: int, code: str, message: str) -> Response:
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
               f"<Message>{message}</Message></Error>")
        return Response(xml, status_code=status, media_type="application/xml")

    async def s3_put(request: Request) -> Response:
        path = request.url.path
        q = request.query_params
        amz_date = q.get("X-Amz-Date", "")
        if not hmac.compare_digest(q.get("X-Amz-Signature", ""), st.sign_s3(path, amz_date)):
            return s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return s3_error(403, "AuthorizationQueryParametersError", "X-Amz-Date is malformed")
        if st.now() > signed_at.timestamp() + float(q.get("X-Amz-Expires", "0") or 0) + 1:
            return s3_error(403, "AccessDenied", "Request has expired")
        if "x-amz-acl" in q.get("X-Amz-SignedHeaders", "") and request.headers.get("x-amz-acl") != q.get("x-amz-acl"):
            return s3_error(403, "SignatureDoesNotMatch", "x-amz-acl header does not match the signed value")
        match = re.search(r"/campaign/([0-9a-f-]{36})/", path)
        row = st.buckets_v2.get(match.group(1)) if match else None
        if row is None:
            return s3_error(404, "NoSuchBucket", "The bucket was deleted")
        raw = await request.body()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = ""
        reader = csv.DictReader(io.StringIO(text))
        headers = [h.strip() for h in reader.fieldnames or []]
        phone_col = "phone_number" if "phone_number" in headers else (headers[0] if headers else "")
        rows = []
        for record in reader:
            clean = {(k or "").strip(): (v or "").strip() for k, v in record.items()}
            number = _local_number(clean.get(phone_col))
            if number is not None:
                rows.append({**clean, "phone_number": number})
        st.bucket_rows_v2[row["uuid"]] = rows
        base = str(request.base_url).rstrip("/")
        row.update({
            "status": "completed" if rows else "failed", "size": len(rows), "headers": headers,
            "file_url": f"{base}{path}", "estimated_cost": f"{_money(st.price_v2 * len(rows)):.2f}",
            "updatedAt": _iso(st.now()),
        })
        etag = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        return Response(b"", status_code=200, headers={"ETag": f'"{etag}"'})

    async def campaigns_v2(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            name, bucket_id, sender, template_id = _required_text(
                body, "name", "bucket_id", "sender_id", "template_id")
            st.check_sender(sender)
            if bucket_id not in st.buckets_v2:
                raise _BadRequest(404, "Bucket not found")
            if template_id not in st.templates_v2:
                raise _BadRequest(404, "Template not found")
            scheduled = _as_bool(body.get("is_scheduled", False))
            if scheduled is None:
                raise _BadRequest(400, "is_scheduled must be a boolean")
            now = st.now()
            due = now
            scheduled_for: str | None = None
            if scheduled:
                when = P.parse_timestamp(body.get("scheduled_for"))
                if when is None:
                    raise _BadRequest(400, "scheduled_for is required when is_scheduled is true")
                due = when.timestamp()
                scheduled_for = _js_date(when)
            uuid = str(uuidlib.uuid4())
            row: dict[str, Any] = {
                "uuid": uuid, "name": name, "cost": "0.00", "scheduled_for": scheduled_for,
                "status": "pending", "merchant_id": st.merchant_id, "createdAt": _iso(now),
                "updatedAt": _iso(now), "bucket_id": bucket_id, "sender_id": sender, "template_id": template_id,
                "_meta": {"due": due, "launched": False, "messages": []},
            }
            st.campaigns_v2[uuid] = row
            shown = st.campaign_row(row)  # as created: pending, nothing sent yet
            st.tick()
            return _v2(shown)
        rows = [st.campaign_row(r) for r in st.campaigns_v2.values()]
        status = request.query_params.get("status")
        if status:
            if status not in ("pending", "failed", "success"):
                raise _BadRequest(400, "status must be pending, failed or success")
            rows = [r for r in rows if r["status"] == status]
        wanted = request.query_params.get("name")
        if wanted:
            rows = [r for r in rows if wanted.lower() in str(r["name"]).lower()]
        rows = _sort_filter(rows, request)
        return _v2({"count": len(rows), "rows": _paginate(rows, request, 10)})

    async def campaign_v2_item(request: Request) -> Response:
        row = st.campaigns_v2.pop(request.path_params["uuid"], None)
        if row is None:
            raise _BadRequest(404, "Campaign not found")
        return _v2(st.campaign_row(row))

    # ================================================================ v1
    def v1_messages(predicate: Callable[[_Message], bool]) -> list[_Message]:
        return [m for m in st.messages if m.api == "v1" and predicate(m)]

    def v1_page(request: Request, items: list[Any]) -> list[Any]:
        count = _int_param(request, "count", 10, high=1000)
        page = _int_param(request, "page", 1, high=1_000_000)
        return items[(page - 1) * count:page * count]

    async def send_v1(request: Request) -> Response:
        body = await _json_body(request)
        flags = {}
        for name in ("is_campaign", "use_bucket", "use_template"):
            value = _as_bool(body.get(name, False))
            if value is None:
                raise _BadRequest(400, f"{name} must be a boolean")
            flags[name] = value
        recipients, text = body.get("recipients"), body.get("body")
        if recipients in (None, ""):
            raise _BadRequest(400, "recipients is required")
        if text in (None, ""):
            raise _BadRequest(400, "body is required")
        sender = body.get("sender")
        sender = sender if isinstance(sender, str) and sender else "SQUAD"
        template_id: int | None = None
        if flags["use_template"]:
            template_id = P.to_int(text)
            template = st.templates_v1.get(template_id) if template_id is not None else None
            if template is None:
                raise _BadRequest(404, "template not found")
            text = template["body"]
        if not isinstance(text, str):
            raise _BadRequest(400, "body must be a string")
        bucket_id: int | None = None
        if flags["use_bucket"]:
            bucket_id = P.to_int(recipients)
            if bucket_id is None or bucket_id not in st.buckets_v1:
                raise _BadRequest(404, "bucket not found")
            targets = st.bucket_rows_v1.get(bucket_id, [])
        else:
            number = _local_number(recipients)
            if number is None:
                raise _BadRequest(400, "recipients must be a phone number")
            targets = [{"phone_number": number}]
        batch = secrets.token_hex(6).upper()
        campaign_id: int | None = None
        if flags["is_campaign"]:
            campaign_id = st.next_id("campaign")
            reference = body.get("reference")
            st.campaigns_v1[campaign_id] = {
                "id": campaign_id, "name": str(reference) if reference else batch, "client_id": st.client_id,
                "template_id": template_id, "bucket_id": bucket_id, "total": len(targets),
                "created_at": _iso(st.now()), "created_by": None,
            }
        msgs = []
        for i, params in enumerate(targets):
            msgs.append(st.add_message(
                "v1", params["phone_number"], _render(text, params), sender, batch,
                f"{st.client_id}_{uuidlib.uuid4()}_{i}", "campaign" if campaign_id else "direct",
                campaign_id, st.price_v1,
            ))
        st.schedule_callbacks(msgs)
        return _v1("messages sent successfully", {"sent": len(msgs), "batch_id": batch})

    def message_list(request: Request, msgs: list[_Message], message: str) -> Response:
        items = st.items(msgs)
        return _v1(message, {"items": v1_page(request, items), "total": [{"total": str(len(items))}]})

    async def campaign_messages_v1(request: Request) -> Response:
        cid = P.to_int(request.path_params["campaign_id"])
        return message_list(request, v1_messages(lambda m: m.campaign_id == cid),
                            "campaign messages retrieved successfully")

    def stats_of(msgs: list[_Message]) -> dict[str, int]:
        counts = {"submitted": 0, "invalid": 0, "sent": 0, "absent": 0, "failed": 0, "delivered": 0,
                  "deliveryFailed": 0}
        now = st.now()
        key = {"submitted": "submitted", "pending": "sent", "delivered": "delivered",
               "delivery failed": "deliveryFailed"}
        for m in msgs:
            counts[key[m.phase(now, st.delivery_delay)[0]]] += 1
        return counts

    async def stats_client_v1(request: Request) -> Response:
        v1_client(request)
        return _v1("statistics retrieved successfully", stats_of(v1_messages(lambda m: True)))

    async def stats_campaign_v1(request: Request) -> Response:
        cid = P.to_int(request.path_params["campaign_id"])
        if cid not in st.campaigns_v1:
            raise _BadRequest(404, "campaign not found")
        return _v1("campaign statistics retrieved successfully",
                   stats_of(v1_messages(lambda m: m.campaign_id == cid)))

    async def by_phone_v1(request: Request) -> Response:
        number = _local_number(request.path_params["phone"]) or request.path_params["phone"]
        return message_list(request, v1_messages(lambda m: m.phonenumber == number),
                            "phone messages retrieved successfully")

    async def by_params_v1(request: Request) -> Response:
        batch = request.query_params.get("batch_id")
        if not batch:
            raise _BadRequest(400, "batch_id is required")
        msgs = sorted(v1_messages(lambda m: m.batch_id == batch), key=lambda m: m.id)
        size = _int_param(request, "count", 20, high=1000)
        cursor = request.query_params.get("cursor")
        start = 0
        if cursor:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
            except (ValueError, UnicodeDecodeError):
                raise _BadRequest(400, "invalid cursor") from None
        chunk = msgs[start:start + size]

        def enc(offset: int) -> str:
            return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()

        has_next = start + size < len(msgs)
        return _v1("messages retrieved successfully", {
            "items": st.items(chunk),
            "pageInfo": {"hasNextPage": has_next, "nextCursor": enc(start + size) if has_next else None,
                         "prevCursor": enc(max(0, start - size)) if start > 0 else None},
        })

    async def hourly_v1(request: Request) -> Response:
        v1_client(request)
        raw = request.query_params.get("date", "")
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise _BadRequest(400, "date must be YYYY-MM-DD") from None
        now = st.now()
        blank = {"submitted_count": 0, "sent_count": 0, "invalid_count": 0, "successful_count": 0,
                 "failed_count": 0, "absent_count": 0}
        detail: list[dict[str, Any]] = [{"hour": f"{h:02d}:00", **blank} for h in range(24)]
        queue, delivery, waiting = [], [], []
        for m in v1_messages(lambda m: True):
            created = datetime.fromtimestamp(m.created, timezone.utc).astimezone(WAT)
            if created.date() != day:
                continue
            status, sent_at, dlr_at = m.phase(now, st.delivery_delay)
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
        return _v1("hourly statistics retrieved successfully", {
            **totals,
            "avg_queue_time": round(sum(queue) / len(queue), 3) if queue else 0,
            "avg_delivery_time": round(sum(delivery) / len(delivery), 3) if delivery else 0,
            "oldest_on_queue": _iso(min(waiting)) if waiting else None,
            "queue_count": len(waiting) if waiting else None,
            "detail": detail,
        })

    async def campaigns_v1(request: Request) -> Response:
        v1_client(request)
        items = sorted(st.campaigns_v1.values(), key=lambda c: c["id"])
        return _v1("campaigns retrieved successfully", {"items": v1_page(request, items), "total": len(items)})

    def bucket_v1_shown(row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k != "bucket_items"}

    async def buckets_v1(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            name, description = _required_text(body, "name", "description")
            if P.to_int(body.get("client_id")) != st.client_id:
                raise _BadRequest(400, "client_id is required and must match the credentials")
            items = body.get("items")
            if not isinstance(items, list):
                raise _BadRequest(400, "items is required")
            rows, params = [], ["phone_number"]
            for i, item in enumerate(items):
                if not isinstance(item, Mapping):
                    raise _BadRequest(400, f"items[{i}] must be an object")
                number = _local_number(item.get("phone_number"))
                if number is None:
                    raise _BadRequest(400, f"items[{i}].phone_number is not a valid phone number")
                rows.append({**{str(k): str(v) for k, v in item.items()}, "phone_number": number})
                params.extend(str(k) for k in item if str(k) not in params)
            bid = st.next_id("bucket")
            row = {"id": bid, "name": name, "description": description.lower(), "params": params,
                   "client_id": st.client_id, "created_at": _iso(st.now()), "created_by": st.user_id,
                   "updated_at": None, "updated_by": None, "bucket_items": len(rows)}
            st.buckets_v1[bid] = row
            st.bucket_rows_v1[bid] = rows
            return _v1("bucket created successfully", row, status="CREATED")
        v1_client(request)
        items = [bucket_v1_shown(r) for r in sorted(st.buckets_v1.values(), key=lambda r: r["id"])]
        # the bucket list has no "status" key [DOC]
        return _v1("success", {"items": v1_page(request, items), "total": len(items)}, status=None)

    async def bucket_v1_item(request: Request) -> Response:
        bid = P.to_int(request.path_params["bucket_id"])
        row = st.buckets_v1.get(bid) if bid is not None else None
        if row is None or bid is None:
            raise _BadRequest(404, "bucket not found")
        if request.method == "DELETE":
            del st.buckets_v1[bid]
            st.bucket_rows_v1.pop(bid, None)
            return _v1("success", None, status=None)
        body = await _json_body(request)
        (name,) = _required_text(body, "name")
        row.update({"name": name, "updated_at": _iso(st.now()), "updated_by": st.user_id})
        return _v1("success", bucket_v1_shown(row), status=None)

    def template_v1_shown(row: Mapping[str, Any], with_body: bool) -> dict[str, Any]:
        shown = {k: v for k, v in row.items() if k not in ("body", "params")}
        if with_body:
            shown = {"id": row["id"], "name": row["name"], "body": row["body"],
                     "description": row["description"], "client_id": row["client_id"],
                     "params": ["phone_number", *_PLACEHOLDER_RE.findall(row["body"])],
                     **{k: v for k, v in shown.items() if k not in ("id", "name", "description", "client_id")}}
        return shown

    async def templates_v1(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            name, text, description = _required_text(body, "name", "body", "description")
            if P.to_int(body.get("client_id")) != st.client_id:
                raise _BadRequest(400, "client_id is required and must match the credentials")
            tid = st.next_id("template")
            row = {"id": tid, "name": name, "body": text, "description": description,
                   "client_id": st.client_id, "created_at": _iso(st.now()), "created_by": st.user_id,
                   "updated_at": None, "updated_by": None}
            st.templates_v1[tid] = row
            return _v1("template created successfully", template_v1_shown(row, False), status="CREATED")
        v1_client(request)
        items = [template_v1_shown(r, True) for r in sorted(st.templates_v1.values(), key=lambda r: r["id"])]
        return _v1("templates retrieved successfully", {"items": v1_page(request, items), "total": len(items)})

    async def template_v1_item(request: Request) -> Response:
        tid = P.to_int(request.path_params["template_id"])
        row = st.templates_v1.get(tid) if tid is not None else None
        if row is None or tid is None:
            raise _BadRequest(404, "template not found")
        if request.method == "DELETE":
            del st.templates_v1[tid]
            return _v1("success", None, status=None)
        body = await _json_body(request)
        changed = False
        for key in ("body", "name", "description"):
            if key in body:
                value = body[key]
                if not isinstance(value, str) or not value.strip():
                    raise _BadRequest(400, f"{key} must be a non-empty string")
                row[key] = value
                changed = True
        if not changed:
            raise _BadRequest(400, "body is required")
        row.update({"updated_at": _iso(st.now()), "updated_by": st.user_id})
        return _v1("template updated successfully", template_v1_shown(row, False))

    async def senders_v1(request: Request) -> Response:
        v1_client(request)
        names = sorted(st.registered_senders) if st.registered_senders is not None else ["SQUAD"]
        items = [{"id": i, "sender_id": n, "client_id": st.client_id} for i, n in enumerate(names, start=1)]
        return _v1("senders retrieved successfully", {"items": items, "total": len(items)})

    routes = [
        Route("/sms/send/instant", v2(send_instant), methods=["POST"]),
        Route("/sms/template", v2(templates_v2), methods=["GET", "POST"]),
        Route("/sms/template/{uuid}", v2(template_v2_item), methods=["PATCH", "DELETE"]),
        Route("/sms/bucket", v2(buckets_v2), methods=["GET", "POST"]),
        # GitBook: DELETE; docs.squadco.com: POST -- accept both
        Route("/sms/bucket/{uuid}", v2(bucket_v2_item), methods=["DELETE", "POST"]),
        Route("/sms/campaign", v2(campaigns_v2), methods=["GET", "POST"]),
        Route("/sms/campaign/{uuid}", v2(campaign_v2_item), methods=["DELETE"]),
        Route("/_s3/{key:path}", s3_put, methods=["PUT"]),
        # v1 routes that do not depend on the message prefix
        Route("/service/template/by-client/{client_id}", v1(campaigns_v1), methods=["GET"]),
        Route("/dashboard/bucket", v1(buckets_v1), methods=["POST"]),
        Route("/dashboard/bucket/by-client/{client_id}", v1(buckets_v1), methods=["GET"]),
        Route("/dashboard/bucket/{bucket_id}", v1(bucket_v1_item), methods=["PATCH", "DELETE"]),
        Route("/dashboard/template", v1(templates_v1), methods=["POST"]),
        Route("/dashboard/template/by-client/{client_id}", v1(templates_v1), methods=["GET"]),
        Route("/dashboard/template/{template_id}", v1(template_v1_item), methods=["PATCH", "DELETE"]),
    ]
    for prefix in ("/service", "/dashboard"):
        routes += [
            Route(f"{prefix}/message", v1(send_v1), methods=["POST"]),
            Route(f"{prefix}/message/campaign/messages/by-campaign/{{campaign_id}}",
                  v1(campaign_messages_v1), methods=["GET"]),
            Route(f"{prefix}/message/statistics/by-client/{{client_id}}", v1(stats_client_v1), methods=["GET"]),
            Route(f"{prefix}/message/statistics/by-campaign/{{campaign_id}}", v1(stats_campaign_v1),
                  methods=["GET"]),
            Route(f"{prefix}/message/by-phone/{{phone}}", v1(by_phone_v1), methods=["GET"]),
            Route(f"{prefix}/message/by-params", v1(by_params_v1), methods=["GET"]),
            Route(f"{prefix}/message.summary/hourly-statistics/by-client/{{client_id}}", v1(hourly_v1),
                  methods=["GET"]),
            Route(f"{prefix}/sender/{{client_id}}", v1(senders_v1), methods=["GET"]),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await st.shutdown()

    async def not_found(request: Request, exc: Exception) -> Response:
        return _err(404, "Route not found")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _err(405, "Method not allowed")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_allowed})
    app.state.squad = st
    wrapped = emulator_app(
        app, state=st.control,
        error_body=lambda status, message: {"status": status, "success": False, "message": message, "data": {}},
    )
    wrapped.squad = st  # type: ignore[attr-defined]
    return wrapped
