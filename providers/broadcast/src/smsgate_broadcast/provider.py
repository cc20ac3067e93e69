"""Adapter for the WAABOT broadcast API (WhatsApp broadcasts, Nigeria).

The vendor (https://doc.waabot.com, SDK ``wasms-sdk``) sends one *broadcast* to
several numbers at once::

    POST /api/v1/broadcast
    {"session_id": "...", "access_token": "...", "send_type": "individual",
     "to": "2348179803743,2349048988056",
     "message": {"text": "...", "attachments": ["<attachment _id>"],
                 "location": {"name": "...", "lat": "6.55", "lng": "3.27"},
                 "contactId": "<contact _id>"}}

and reports progress on the broadcast record: ``status`` (``"sending"``) and the
``sent`` / ``pending`` / ``failed`` lists. Credentials travel in two layers: an
account session (``POST /sessions`` -> ``accessToken``/``refreshToken``, sent as
``Authorization: Bearer`` and ``x-refresh``) and the bot instance pair
``session_id`` + ``access_token`` inside every JSON body (as the docs show; the SDK
also copies them into the query string, which the option ``credentials_in`` allows).

Neutral mapping (see docs/providers/broadcast.md):

* one neutral message -> one number of a broadcast; ``provider_message_id`` is
  ``"<broadcast _id>:<number>"`` and ``batch_id`` the broadcast ``_id``;
* ``send_many`` groups messages with the same content into one broadcast call
  (up to :data:`MAX_BATCH` numbers);
* a number in ``pending`` is ``submitted``, in ``sent`` is ``sent``, in
  ``failed`` is ``failed``; a number in no list takes the broadcast's status.

Everything here is sans-I/O: operations yield :class:`httpx.Request` objects.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from smsgate import phone as phonelib
from smsgate.errors import (
    AuthFailed,
    ConfigError,
    MalformedResponse,
    ProviderError,
    RequestRejected,
    UnknownOutcome,
    ValidationError,
    redact,
)
from smsgate.models import (
    Attachment,
    ContactList,
    DeliveryReport,
    Location,
    OutboundMessage,
    ProviderCheck,
    SendResult,
    Status,
    utcnow,
)
from smsgate.provider import Capabilities, Operation, Page, Paged, Provider, ProviderSettings
from smsgate_broadcast.wire import (
    WaabotContact,
    WaabotContactGroup,
    WaabotMessageLog,
    parse_contact,
    parse_contact_group,
    parse_message_log,
)

__all__ = [
    "API_PREFIX",
    "BROADCAST_STATUS",
    "MAX_BATCH",
    "AttachmentRecord",
    "BroadcastOptions",
    "BroadcastProvider",
    "BroadcastRecord",
    "SessionTokens",
    "UploadedAttachment",
    "entry_number",
    "neutral_status",
    "parse_attachment",
    "parse_broadcast",
]

T = TypeVar("T")

log = logging.getLogger("smsgate.broadcast")

#: Path prefix of every documented route (``https://api.waabot.com/api/v1``).
API_PREFIX = "/api/v1"

#: Numbers per broadcast call. Not documented by WAABOT: [INF] a conservative 1,000.
MAX_BATCH = 1000

#: Broadcast-level ``status`` strings -> neutral status of a number that is in none of
#: the ``sent``/``pending``/``failed`` lists. Only ``"sending"`` is documented; the
#: rest are [INF] spellings tolerated so an unexpected value never breaks a lookup.
BROADCAST_STATUS: dict[str, Status] = {
    "sending": Status.SUBMITTED,
    "pending": Status.SUBMITTED,
    "queued": Status.SUBMITTED,
    "processing": Status.SUBMITTED,
    "scheduled": Status.SUBMITTED,
    "created": Status.SUBMITTED,
    "started": Status.SUBMITTED,
    "running": Status.SUBMITTED,
    "in_progress": Status.SUBMITTED,
    "sent": Status.SENT,
    "completed": Status.SENT,
    "complete": Status.SENT,
    "done": Status.SENT,
    "finished": Status.SENT,
    "success": Status.SENT,
    "successful": Status.SENT,
    "failed": Status.FAILED,
    "error": Status.FAILED,
    "cancelled": Status.FAILED,
    "canceled": Status.FAILED,
    "stopped": Status.FAILED,
}

#: Per-number lists of a broadcast and what membership means, strongest first.
_LISTS: tuple[tuple[str, Status], ...] = (
    ("failed", Status.FAILED),
    ("sent", Status.SENT),
    ("pending", Status.SUBMITTED),
)

_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
_NUMBER_NOISE = re.compile(r"[\s\-().]")
_AUTH_WORDS = re.compile(r"(?i)unauthori[sz]ed|forbidden|invalid (?:session|access|token|credential)")
#: An auth error naming the bot pair (its field names; the account JWT is ``accessToken``).
_BOT_CREDENTIALS = re.compile(r"(?i)\b(?:session_id|access_token)\b")


def neutral_status(broadcast_status: object, list_name: str | None = None) -> Status:
    """The neutral status of one number of a broadcast.

    ``list_name`` is the per-number list the number was found in (``"sent"``,
    ``"pending"``, ``"failed"``) or ``None``; then the broadcast-level status
    decides (:data:`BROADCAST_STATUS`, anything unknown -> ``unknown``). Total:
    never raises.
    """
    for name, status in _LISTS:
        if list_name == name:
            return status
    if isinstance(broadcast_status, str):
        return BROADCAST_STATUS.get(broadcast_status.strip().lower(), Status.UNKNOWN)
    return Status.UNKNOWN


def entry_number(value: object) -> str | None:
    """International digits of one entry of a ``sent``/``pending``/``failed`` list.

    The documents do not show the lists' contents ([INF]): accepted are plain
    digit strings or integers, ``+``-prefixed numbers, WhatsApp JIDs
    (``2348012345678@s.whatsapp.net``, ``2348012345678:8@s.whatsapp.net``) and
    objects with a ``number``/``phone``/``to``/``chatId`` field. Anything else
    (e.g. a contact ``_id``) gives ``None``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        for key in ("number", "phone", "to", "chatId", "chat_id", "jid"):
            if key in value:
                found = entry_number(value[key])
                if found is not None:
                    return found
        return None
    else:
        return None
    text = text.strip().split("@", 1)[0].split(":", 1)[0]
    text = _NUMBER_NOISE.sub("", text).lstrip("+")
    return text if _DIGITS.fullmatch(text) else None


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _str_or_none(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _float(value: object, where: str, name: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MalformedResponse(f"{where}: location.{name} is not a number: {value!r}") from None


@dataclass(frozen=True)
class BroadcastRecord:
    """A broadcast as WAABOT reports it (``data`` of ``/broadcast`` answers)."""

    id: str
    status: str | None
    send_type: str | None = None
    to: tuple[str, ...] = ()
    text: str | None = None
    attachments: tuple[str, ...] = ()
    location: Location | None = None
    contact_id: str | None = None
    sent: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    client_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def numbers(self) -> list[str]:
        """Recipients in ``to`` that read as phone numbers (international digits)."""
        out = []
        for item in self.to:
            number = entry_number(item)
            if number is not None:
                out.append(number)
        return out

    def outcome(self, number: str) -> tuple[Status, str]:
        """Neutral status and raw status of ``number`` (international digits)."""
        for name, _status in _LISTS:
            entries: tuple[str, ...] = getattr(self, name)
            if number in entries:
                return neutral_status(self.status, name), name
        return neutral_status(self.status), self.status or ""

    def report(self, number: str, provider: str = "") -> DeliveryReport:
        """A delivery report for one number of this broadcast."""
        status, raw = self.outcome(number)
        return DeliveryReport(
            provider=provider,
            provider_message_id=f"{self.id}:{number}",
            batch_id=self.id,
            to=f"+{number}",
            status=status,
            raw_status=raw,
            occurred_at=self.updated_at or utcnow(),
            raw={"broadcast_id": self.id, "broadcast_status": self.status, "list": raw},
        )

    def reports(self, provider: str = "") -> list[DeliveryReport]:
        """One report per number of the broadcast (``to`` plus any listed number)."""
        seen: dict[str, None] = dict.fromkeys(self.numbers())
        for name, _status in _LISTS:
            seen.update(dict.fromkeys(getattr(self, name)))
        return [self.report(n, provider) for n in seen]


@dataclass(frozen=True)
class AttachmentRecord:
    """An uploaded attachment (``data`` of ``/attachment`` answers)."""

    id: str
    type: str | None = None
    mimetype: str | None = None
    name: str | None = None
    path: str | None = None
    client_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class UploadedAttachment:
    """The answer to an upload: the documented data URI, and the stored record.

    WAABOT answers an upload with a base64 ``data:`` URI only; the record (and so
    the ``_id`` a broadcast needs) is found by listing attachments ([INF]).
    ``attachment`` is ``None`` when the upload was made with ``resolve_id=False``.
    """

    data_uri: str
    attachment: AttachmentRecord | None = None

    @property
    def id(self) -> str | None:
        """The attachment ``_id`` (if resolved)."""
        return self.attachment.id if self.attachment else None


@dataclass(frozen=True)
class SessionTokens:
    """Account tokens from ``POST /sessions``."""

    access_token: str
    refresh_token: str | None = None

    def __repr__(self) -> str:
        return "SessionTokens(access_token='***', refresh_token='***')"


def _tuple_of_numbers(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for item in value:
        number = entry_number(item)
        if number is not None:
            out.append(number)
    return tuple(out)


def parse_broadcast(data: object, where: str = "broadcast") -> BroadcastRecord:
    """Read one broadcast object; :class:`MalformedResponse` says what is wrong where."""
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"{where}: expected a broadcast object, got {type(data).__name__}")
    bid = data.get("_id", data.get("id"))
    if not isinstance(bid, (str, int)) or isinstance(bid, bool) or not str(bid):
        raise MalformedResponse(f"{where}: broadcast has no _id")
    to_raw = data.get("to")
    if isinstance(to_raw, str):
        to = tuple(p.strip() for p in to_raw.split(",") if p.strip())
    elif isinstance(to_raw, list):
        to = tuple(str(p).strip() for p in to_raw if str(p).strip())
    else:
        to = ()
    message = data.get("message")
    text = None
    attachments: tuple[str, ...] = ()
    location = None
    contact_id = None
    if isinstance(message, Mapping):
        text = _str_or_none(message.get("text"))
        raw_att = message.get("attachments")
        if isinstance(raw_att, list):
            ids = []
            for item in raw_att:
                if isinstance(item, Mapping):
                    item = item.get("_id", item.get("id"))
                if item is not None:
                    ids.append(str(item))
            attachments = tuple(ids)
        loc = message.get("location")
        if isinstance(loc, Mapping) and loc.get("lat") not in (None, "") and loc.get("lng") not in (None, ""):
            location = Location(
                name=str(loc.get("name") or ""),
                lat=_float(loc.get("lat"), where, "lat"),
                lng=_float(loc.get("lng"), where, "lng"),
            )
        contact_id = _str_or_none(message.get("contactId"))
    elif isinstance(message, str):
        text = message
    status = data.get("status")
    return BroadcastRecord(
        id=str(bid),
        status=status if isinstance(status, str) else (None if status is None else str(status)),
        send_type=_str_or_none(data.get("send_type")),
        to=to,
        text=text,
        attachments=attachments,
        location=location,
        contact_id=contact_id,
        sent=_tuple_of_numbers(data.get("sent")),
        pending=_tuple_of_numbers(data.get("pending")),
        failed=_tuple_of_numbers(data.get("failed")),
        client_id=_str_or_none(data.get("client_id")),
        created_at=_timestamp(data.get("createdAt")),
        updated_at=_timestamp(data.get("updatedAt")),
        raw=dict(data),
    )


def parse_attachment(data: object, where: str = "attachment") -> AttachmentRecord:
    """Read one attachment object; :class:`MalformedResponse` says what is wrong where."""
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"{where}: expected an attachment object, got {type(data).__name__}")
    aid = data.get("_id", data.get("id"))
    if not isinstance(aid, (str, int)) or isinstance(aid, bool) or not str(aid):
        raise MalformedResponse(f"{where}: attachment has no _id")
    return AttachmentRecord(
        id=str(aid),
        type=_str_or_none(data.get("type")),
        mimetype=_str_or_none(data.get("mimetype")),
        name=_str_or_none(data.get("name")),
        path=_str_or_none(data.get("path")),
        client_id=_str_or_none(data.get("client_id")),
        created_at=_timestamp(data.get("createdAt")),
        updated_at=_timestamp(data.get("updatedAt")),
        raw=dict(data),
    )


def _decode_data_uri(uri: str) -> tuple[bytes, str | None] | None:
    """``(content, content_type)`` of a ``data:`` URI, or ``None`` if it is not one."""
    if not uri.startswith("data:") or "," not in uri:
        return None
    head, payload = uri[5:].split(",", 1)
    parts = head.split(";")
    ctype = parts[0] or None
    try:
        if "base64" in parts[1:]:
            return base64.b64decode(payload, validate=False), ctype
        return urllib.parse.unquote_to_bytes(payload), ctype
    except (binascii.Error, ValueError):
        return None


class BroadcastOptions(BaseModel):
    """Plugin options (``[tenants.<t>.providers.<i>.options]``)."""

    model_config = ConfigDict(extra="forbid")

    #: Route prefix added to ``base_url`` unless ``base_url`` already ends with it.
    api_prefix: str = API_PREFIX
    #: Where the bot credentials go: the JSON/form body (the docs' way, the default), the query
    #: string, or both (the SDK's way). A query string shows in proxies' and servers' logs.
    credentials_in: Literal["both", "body", "query"] = "body"
    #: Numbers per broadcast call (at most :data:`MAX_BATCH`).
    max_batch: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)


class BroadcastProvider(Provider):
    """The WAABOT broadcast API.

    Credentials (``settings.credentials``):

    * ``session_id`` and ``access_token`` (required): the bot instance, sent in
      every body (and/or the query string, see ``credentials_in``);
    * account session, optional: ``email`` + ``password`` (logged in through
      ``POST /sessions``, tokens cached per provider instance and renewed after a
      401), and/or ``account_token`` (an ``accessToken`` obtained elsewhere) with
      an optional ``refresh_token`` (sent as ``x-refresh``). Without either no
      ``Authorization`` header is sent (as the third-party Laravel channel does).
    """

    name = "broadcast"
    default_base_url = "https://api.waabot.com/api/v1"
    capabilities = Capabilities(
        bulk=True,
        max_batch=MAX_BATCH,
        media=True,
        location=True,
        status_lookup=True,
        contact_lists=True,
        delivery_reports=False,
    )
    options_model = BroadcastOptions
    uses_tokens = True
    #: 503 means "not processed" (the transport may repeat a send after it).
    not_processed_statuses: ClassVar[frozenset[int]] = frozenset({503})
    distinct_recipients: ClassVar[bool] = True

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        assert isinstance(self.options, BroadcastOptions)
        self.opts: BroadcastOptions = self.options
        self.capabilities = replace(type(self).capabilities, max_batch=self.opts.max_batch)
        # secrets stay in self.settings (SecretStr) and are read where a request needs them, so
        # no attribute of the provider holds one in plain text (repr, vars, debuggers)
        if not settings.secret("session_id") or not settings.secret("access_token"):
            raise ConfigError(
                f"provider {self.instance_name!r} (broadcast): credentials 'session_id' and "
                "'access_token' (the WAABOT bot instance) are required"
            )
        if bool(settings.secret("email")) != bool(settings.secret("password")):
            raise ConfigError(
                f"provider {self.instance_name!r} (broadcast): credentials 'email' and 'password' "
                "go together"
            )
        #: the account session tokens: configured (account_token/refresh_token) or from login()
        self._token: SecretStr | None = _nonempty(settings.credentials.get("account_token"))
        self._refresh: SecretStr | None = _nonempty(settings.credentials.get("refresh_token"))
        prefix = "/" + self.opts.api_prefix.strip("/") if self.opts.api_prefix.strip("/") else ""
        base_path = urllib.parse.urlsplit(self.base_url).path.rstrip("/")
        self._prefix = "" if (not prefix or base_path.endswith(prefix)) else prefix

    # ------------------------------------------------------------ auth

    @property
    def can_login(self) -> bool:
        """True if account credentials (email + password) are configured."""
        return bool(self.settings.secret("email") and self.settings.secret("password"))

    def login(self) -> Operation[SessionTokens]:
        """``POST /sessions`` with the account email and password; caches the tokens."""
        if not self.can_login:
            raise ConfigError(
                f"provider {self.instance_name!r}: no 'email'/'password' credentials to log in with"
            )
        account = {"email": self.settings.secret("email"), "password": self.settings.secret("password")}
        req = self.request("POST", self._url("/sessions"), json=account, idempotent=True)
        response = yield req
        self.raise_for_status(response)
        body = self.json(response)
        where = "POST /sessions"
        if isinstance(body, Mapping) and body.get("status") is False:
            raise AuthFailed(f"{where}: login refused: {self._message(body)}",
                             provider=self.instance_name, status_code=response.status_code)
        tokens = body.get("data") if isinstance(body, Mapping) and isinstance(body.get("data"), Mapping) else body
        access = tokens.get("accessToken") if isinstance(tokens, Mapping) else None
        if not isinstance(access, str) or not access:
            raise MalformedResponse(f"{where}: the answer carries no accessToken",
                                    provider=self.instance_name, status_code=response.status_code)
        refresh = tokens.get("refreshToken") if isinstance(tokens, Mapping) else None
        refresh = refresh if isinstance(refresh, str) and refresh else None
        self._token = SecretStr(access)
        self._refresh = SecretStr(refresh) if refresh else None
        return SessionTokens(access, refresh)

    def authenticate(self, request: httpx.Request) -> Operation[None]:
        """Add ``Authorization: Bearer`` and ``x-refresh``, logging in first if needed."""
        if self._token is None and self.can_login:
            yield from self.login()
        if self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        if self._refresh is not None:
            request.headers["x-refresh"] = self._refresh.get_secret_value()

    def invalidate_auth(self) -> None:
        """Forget the cached account tokens (after a 401)."""
        if self.can_login:
            self._token = None
            self._refresh = None

    def call(self, request: httpx.Request) -> Operation[httpx.Response]:
        """Authenticate and send; after a 401 or 403, log in again once (only if we can).

        403 is included because the vendor does not document which status an
        expired session gets ([INF]: servers of this design often answer 403).
        A 401/403 whose message names the bot pair (``session_id``/``access_token``)
        raises :class:`AuthFailed` at once: a new account session cannot fix those,
        and the cached one is kept.
        """
        yield from self.authorized(request)
        response = yield request
        if response.status_code in (401, 403) and self.bot_credentials_refused(response):
            raise AuthFailed(
                f"{request.method} {request.url.path}: bot credentials refused: "
                f"{redact(self.error_message(response), self.secrets())} (check the credentials "
                "'session_id' and 'access_token'; logging in again cannot fix them)",
                provider=self.instance_name, status_code=response.status_code, body=self._safe_body(response),
            )
        if response.status_code in (401, 403) and self.can_login:
            self.invalidate_auth()
            yield from self.authorized(request)
            response = yield request
        return response

    def bot_credentials_refused(self, response: httpx.Response) -> bool:
        """Whether an auth error names the bot credentials, not the account session.

        The vendor documents no error bodies ([INF]); the emulator answers
        ``403 {"status": false, "message": "Invalid session_id or access_token"}``.
        Only the field names count: an expired account token is the ``accessToken``.
        """
        return bool(_BOT_CREDENTIALS.search(self.error_message(response)))

    def secrets(self) -> list[str]:
        """Configured secrets plus the cached session tokens (redacted from errors)."""
        out = super().secrets()
        out.extend(t.get_secret_value() for t in (self._token, self._refresh) if t is not None)
        return out

    # ------------------------------------------------------------ helpers

    def _url(self, path: str) -> str:
        return self._prefix + path

    def _api(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        files: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> httpx.Request:
        """A request carrying the bot credentials where ``credentials_in`` says (``query``: more parameters)."""
        where = self.opts.credentials_in
        bot = {"session_id": self.settings.secret("session_id"), "access_token": self.settings.secret("access_token")}
        params = {**(bot if where in ("both", "query") else {}), **(query or {})} or None
        in_body = where in ("both", "body")
        if files is not None:
            return self.request(method, self._url(path), params=params,
                                data=dict(bot) if in_body else None, files=files)
        payload: dict[str, Any] = dict(bot) if in_body else {}
        payload.update(body or {})
        return self.request(method, self._url(path), params=params, json=payload or None)

    @staticmethod
    def _message(body: Mapping[str, Any]) -> str:
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return "no message"

    def error_message(self, response: httpx.Response) -> str:
        """The vendor's ``message`` (or ``error``, as the SDK reads it)."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return response.text[:200] or response.reason_phrase
        if isinstance(body, Mapping):
            return self._message(body)
        return str(body)[:200]

    def _data(self, response: httpx.Response, what: str) -> Any:
        """``data`` of a ``{"status": true, ...}`` envelope; errors inside a 2xx body raise."""
        where = f"{response.request.method} {response.request.url.path}"
        if response.status_code == 204 or not response.content:
            return None
        body = self.json(response)
        if not isinstance(body, Mapping):
            raise MalformedResponse(
                f"{where}: {what}: expected a JSON object, got {type(body).__name__}",
                provider=self.instance_name, status_code=response.status_code,
                body=self._safe_body(response),
            )
        status = body.get("status")
        if status is False or (isinstance(status, str) and status.strip().lower() == "false"):
            message = self._message(body)
            cls = AuthFailed if _AUTH_WORDS.search(message) else RequestRejected
            raise cls(f"{where}: {what} refused: {message}", provider=self.instance_name,
                      status_code=response.status_code, body=self._safe_body(response))
        return body.get("data")

    def _parse(self, parser: Callable[[object, str], T], data: object, where: str) -> T:
        """Run a pure parser, naming this provider instance in its errors."""
        try:
            return parser(data, where)
        except MalformedResponse as exc:
            raise MalformedResponse(str(exc), provider=self.instance_name) from None

    def _send_error(self, exc: ProviderError) -> Status:
        return Status.UNKNOWN if isinstance(exc, (UnknownOutcome, MalformedResponse)) else Status.FAILED

    # ------------------------------------------------------------ broadcasts

    def _message_body(
        self,
        text: str | None,
        attachments: Sequence[str],
        location: Location | None,
        contact_id: str | None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"text": text or "", "attachments": list(attachments)}
        if location is not None:
            message["location"] = {"name": location.name, "lat": repr(float(location.lat)),
                                   "lng": repr(float(location.lng))}
        if contact_id:
            message["contactId"] = contact_id
        return message

    @staticmethod
    def _to_field(to: Sequence[str], send_type: str) -> str:
        if isinstance(to, str):
            to = [to]
        if not to:
            raise ValidationError("at least one recipient is required", field="to")
        if send_type == "individual":
            return ",".join(phonelib.to_international_digits(n) for n in to)
        return ",".join(to)

    def create_broadcast(
        self,
        to: Sequence[str],
        text: str = "",
        *,
        attachments: Sequence[str] = (),
        location: Location | None = None,
        contact_id: str | None = None,
        send_type: Literal["individual", "group"] = "individual",
    ) -> Operation[BroadcastRecord]:
        """``POST /broadcast``: one message to several numbers (E.164) or contact groups.

        ``attachments`` are attachment ``_id`` s (see :meth:`upload_attachment`);
        with ``send_type="group"`` the entries of ``to`` are contact-group ids.
        """
        body = {
            "send_type": send_type,
            "to": self._to_field(to, send_type),
            "message": self._message_body(text, attachments, location, contact_id),
        }
        response = yield from self.call_ok(self._api("POST", "/broadcast", body))
        return self._parse(parse_broadcast, self._data(response, "create broadcast"), "POST /broadcast")

    def list_broadcasts(self) -> Operation[list[BroadcastRecord]]:
        """``GET /broadcast``: every broadcast of the bot instance (not paged)."""
        response = yield from self.call_ok(self._api("GET", "/broadcast"))
        data = self._data(response, "list broadcasts")
        if data is None:
            return []
        if not isinstance(data, list):
            raise MalformedResponse(f"GET /broadcast: expected a list in data, got {type(data).__name__}",
                                    provider=self.instance_name)
        return [self._parse(parse_broadcast, item, f"GET /broadcast: item {i}") for i, item in enumerate(data)]

    def get_broadcast(self, broadcast_id: str) -> Operation[BroadcastRecord]:
        """``GET /broadcast/{id}``: one broadcast with its progress lists."""
        response = yield from self.call_ok(self._api("GET", f"/broadcast/{_quote(broadcast_id)}"))
        return self._parse(parse_broadcast, self._data(response, "get broadcast"), f"GET /broadcast/{broadcast_id}")

    def update_broadcast(
        self,
        broadcast_id: str,
        *,
        to: Sequence[str] | None = None,
        text: str | None = None,
        attachments: Sequence[str] | None = None,
        location: Location | None = None,
        contact_id: str | None = None,
        send_type: Literal["individual", "group"] | None = None,
    ) -> Operation[BroadcastRecord]:
        """``PUT /broadcast/{id}`` (from the SDK): change fields of a broadcast.

        Only the arguments given are sent (a ``message`` object is built when any
        message field is given). The vendor may answer 204; the broadcast is then
        read back with :meth:`get_broadcast`.
        """
        body: dict[str, Any] = {}
        if send_type is not None:
            body["send_type"] = send_type
        if to is not None:
            body["to"] = self._to_field(to, send_type or "individual")
        if text is not None or attachments is not None or location is not None or contact_id is not None:
            message: dict[str, Any] = {}
            if text is not None:
                message["text"] = text
            if attachments is not None:
                message["attachments"] = list(attachments)
            if location is not None or contact_id is not None:
                message.update({k: v for k, v in self._message_body(None, (), location, contact_id).items()
                                if k in ("location", "contactId")})
            body["message"] = message
        if not body:
            raise ValidationError("nothing to update", field="broadcast")
        path = f"/broadcast/{_quote(broadcast_id)}"
        response = yield from self.call_ok(self._api("PUT", path, body))
        data = self._data(response, "update broadcast")
        if isinstance(data, Mapping) and ("_id" in data or "id" in data):
            return self._parse(parse_broadcast, data, f"PUT /broadcast/{broadcast_id}")
        record = yield from self.get_broadcast(broadcast_id)
        return record

    def delete_broadcast(self, broadcast_id: str) -> Operation[None]:
        """``DELETE /broadcast/{id}`` (204)."""
        response = yield from self.call_ok(self._api("DELETE", f"/broadcast/{_quote(broadcast_id)}"))
        self._data(response, "delete broadcast")

    def broadcast_reports(self, broadcast_id: str) -> Operation[list[DeliveryReport]]:
        """Per-number delivery reports of one broadcast (one ``GET /broadcast/{id}``)."""
        record = yield from self.get_broadcast(broadcast_id)
        return record.reports(self.instance_name)

    # ------------------------------------------------------------ attachments

    def list_attachments(self) -> Operation[list[AttachmentRecord]]:
        """``GET /attachment``: every uploaded attachment (not paged)."""
        response = yield from self.call_ok(self._api("GET", "/attachment"))
        data = self._data(response, "list attachments")
        if data is None:
            return []
        if not isinstance(data, list):
            raise MalformedResponse(f"GET /attachment: expected a list in data, got {type(data).__name__}",
                                    provider=self.instance_name)
        return [self._parse(parse_attachment, item, f"GET /attachment: item {i}") for i, item in enumerate(data)]

    def get_attachment(self, attachment_id: str) -> Operation[AttachmentRecord]:
        """``GET /attachment/{id}``."""
        response = yield from self.call_ok(self._api("GET", f"/attachment/{_quote(attachment_id)}"))
        return self._parse(parse_attachment, self._data(response, "get attachment"), f"GET /attachment/{attachment_id}")

    def delete_attachment(self, attachment_id: str) -> Operation[None]:
        """``DELETE /attachment/{id}`` (204)."""
        response = yield from self.call_ok(self._api("DELETE", f"/attachment/{_quote(attachment_id)}"))
        self._data(response, "delete attachment")

    def upload_attachment(
        self,
        content: bytes,
        filename: str,
        content_type: str | None = None,
        *,
        resolve_id: bool = True,
    ) -> Operation[UploadedAttachment]:
        """``POST /attachment`` as multipart field ``file`` ([INF]: the field is undocumented).

        The documented answer is a base64 ``data:`` URI, not a record. With
        ``resolve_id`` (default) the attachments are listed before and after the
        upload and the new record is returned, so its ``_id`` can go in a broadcast.
        """
        ctype = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        before: set[str] = set()
        if resolve_id:
            existing = yield from self.list_attachments()
            before = {a.id for a in existing}
        req = self._api("POST", "/attachment", files={"file": (filename, content, ctype)})
        response = yield from self.call_ok(req)
        data = self._data(response, "upload attachment")
        if isinstance(data, Mapping):  # tolerate a server that answers with the record
            record = self._parse(parse_attachment, data, "POST /attachment")
            uri = data.get("data_uri") or data.get("data") or ""
            return UploadedAttachment(data_uri=str(uri) if isinstance(uri, str) else "", attachment=record)
        if not isinstance(data, str):
            raise MalformedResponse(
                f"POST /attachment: expected a data URI string in data, got {type(data).__name__}",
                provider=self.instance_name, status_code=response.status_code,
            )
        if not resolve_id:
            return UploadedAttachment(data_uri=data)
        after = yield from self.list_attachments()
        new = [a for a in after if a.id not in before]
        if not new:
            raise MalformedResponse(
                "POST /attachment: upload succeeded but no new attachment appeared in GET /attachment, "
                "so its _id is unknown",
                provider=self.instance_name,
            )
        same_type = [a for a in new if a.mimetype == ctype] or new
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        chosen = max(enumerate(same_type), key=lambda p: (p[1].created_at or epoch, p[0]))[1]
        return UploadedAttachment(data_uri=data, attachment=chosen)

    # ------------------------------------------------------------ contacts and contact groups

    def _records(self, response: httpx.Response, what: str, parser: Callable[[object, str], T]) -> list[T]:
        """The records in ``data`` of a list answer (``None`` / 204: none)."""
        where = f"{response.request.method} {response.request.url.path}"
        data = self._data(response, what)
        if data is None:
            return []
        if not isinstance(data, list):
            raise MalformedResponse(f"{where}: expected a list in data, got {type(data).__name__}",
                                    provider=self.instance_name, status_code=response.status_code)
        return [self._parse(parser, item, f"{where}: item {i}") for i, item in enumerate(data)]

    def _record(self, response: httpx.Response, what: str, parser: Callable[[object, str], T]) -> T:
        """The record in ``data`` of an answer; a missing one is :class:`MalformedResponse`."""
        where = f"{response.request.method} {response.request.url.path}"
        return self._parse(parser, self._data(response, what), where)

    def _changed(
        self, path: str, body: Mapping[str, Any], what: str, parser: Callable[[object, str], T],
    ) -> Operation[T]:
        """``PUT path``; the record answered, or read back with a ``GET`` after a 204."""
        response = yield from self.call_ok(self._api("PUT", path, body))
        data = self._data(response, what)
        if isinstance(data, Mapping) and "_id" in data:
            return self._parse(parser, data, f"PUT {path}")
        response = yield from self.call_ok(self._api("GET", path))
        return self._record(response, what, parser)

    def list_contacts(self, *, all_bots: bool = False) -> Operation[list[WaabotContact]]:
        """``GET /contact``: the bot's contacts (``all_bots``: ``?type=all``, every bot of the account)."""
        query = {"type": "all"} if all_bots else None
        response = yield from self.call_ok(self._api("GET", "/contact", query=query))
        return self._records(response, "list contacts", parse_contact)

    def get_contact(self, contact_id: str) -> Operation[WaabotContact]:
        """``GET /contact/{id}``."""
        response = yield from self.call_ok(self._api("GET", f"/contact/{_quote(contact_id)}"))
        return self._record(response, "get contact", parse_contact)

    def create_contact(
        self, number: str, name: str | None = None, *, group_id: str | None = None
    ) -> Operation[WaabotContact]:
        """``POST /contact``: a contact with an E.164 ``number`` (sent as digits), optionally in a group.

        The answer's ``data`` is the new record ([INF]: the create answer is not shown).
        """
        body: dict[str, Any] = {"number": phonelib.to_international_digits(number)}
        if name is not None:
            body["name"] = name
        if group_id is not None:
            body["group_id"] = group_id
        response = yield from self.call_ok(self._api("POST", "/contact", body))
        return self._record(response, "create contact", parse_contact)

    def update_contact(
        self, contact_id: str, *, name: str | None = None, number: str | None = None, group_id: str | None = None,
    ) -> Operation[WaabotContact]:
        """``PUT /contact/{id}``: only the fields given; read back when the answer is 204."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if number is not None:
            body["number"] = phonelib.to_international_digits(number)
        if group_id is not None:
            body["group_id"] = group_id
        if not body:
            raise ValidationError("nothing to update", field="contact")
        return (yield from self._changed(f"/contact/{_quote(contact_id)}", body, "update contact", parse_contact))

    def delete_contact(self, contact_id: str) -> Operation[None]:
        """``DELETE /contact/{id}`` (204)."""
        response = yield from self.call_ok(self._api("DELETE", f"/contact/{_quote(contact_id)}"))
        self._data(response, "delete contact")

    def list_contact_groups(self) -> Operation[list[WaabotContactGroup]]:
        """``GET /contact_groups``: the bot's contact groups (the ids a group broadcast takes)."""
        response = yield from self.call_ok(self._api("GET", "/contact_groups"))
        return self._records(response, "list contact groups", parse_contact_group)

    def get_contact_group(self, group_id: str) -> Operation[WaabotContactGroup]:
        """``GET /contact_groups/{id}``."""
        response = yield from self.call_ok(self._api("GET", f"/contact_groups/{_quote(group_id)}"))
        return self._record(response, "get contact group", parse_contact_group)

    def create_contact_group(self, title: str) -> Operation[WaabotContactGroup]:
        """``POST /contact_groups`` ``{title}``; the answer's ``data`` is the new group."""
        if not title.strip():
            raise ValidationError("a contact group needs a title", field="title", value=title)
        response = yield from self.call_ok(self._api("POST", "/contact_groups", {"title": title}))
        return self._record(response, "create contact group", parse_contact_group)

    def update_contact_group(self, group_id: str, *, title: str) -> Operation[WaabotContactGroup]:
        """``PUT /contact_groups/{id}`` ``{title}``; read back when the answer is 204."""
        if not title.strip():
            raise ValidationError("a contact group needs a title", field="title", value=title)
        path = f"/contact_groups/{_quote(group_id)}"
        return (yield from self._changed(path, {"title": title}, "update contact group", parse_contact_group))

    def delete_contact_group(self, group_id: str) -> Operation[None]:
        """``DELETE /contact_groups/{id}`` (204)."""
        response = yield from self.call_ok(self._api("DELETE", f"/contact_groups/{_quote(group_id)}"))
        self._data(response, "delete contact group")

    def create_contact_list(self, contact_list: ContactList, phones: Sequence[str]) -> Operation[ContactList]:
        """Neutral contact list = a contact group plus one contact per number in it.

        Every number is checked before anything is created. If a step fails after the
        group was made, the group's contacts (listed, so one whose answer was lost goes
        too) and the group are deleted again before the error is raised: nothing
        half-made is left (a clean-up request that fails is logged as a warning).
        """
        numbers = [phonelib.to_international_digits(p) for p in phones]
        group = yield from self.create_contact_group(contact_list.name)
        try:
            for number in numbers:
                yield from self.create_contact("+" + number, group_id=group.id)
        except Exception:
            yield from self._remove_group(group.id)
            raise
        return ContactList(id=group.id, name=group.title, description=contact_list.description,
                           size=len(numbers), provider=self.instance_name, raw=group.raw())

    def _remove_group(self, group_id: str) -> Operation[None]:
        """Delete a contact group and its contacts, logging (not raising) what cannot be deleted."""
        try:
            contacts = yield from self.list_contacts()
            for contact in contacts:
                if contact.group_id == group_id:
                    yield from self.delete_contact(contact.id)
            yield from self.delete_contact_group(group_id)
        except ProviderError as undo:
            log.warning("broadcast %s: clean-up of contact group %s failed: %s", self.instance_name, group_id, undo)

    # ------------------------------------------------------------ online check

    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """``POST /sessions`` (with ``email``/``password``: a fresh login), then ``GET /message-log``
        (one entry) with the bot credentials. Messages go out from the bot instance's WhatsApp
        number, so there is no sender ID to check."""
        calls = []
        if self.can_login:
            yield from self.login()
            calls.append(f"POST {self._url('/sessions')}")
        paged = self.message_log(limit=1)
        yield from paged.fetch(paged.first)
        calls.append(f"GET {self._url('/message-log')}")
        return ProviderCheck(endpoint=", ".join(calls),
                             sender_detail="WAABOT sends from the bot instance's number (session_id accepted); "
                                           "no sender ID")

    # ------------------------------------------------------------ message log

    def message_log(self, *, limit: int = 100, all_bots: bool = False) -> Paged[WaabotMessageLog]:
        """``GET /message-log?page=&limit=`` (``all_bots``: ``&type=all``), every page.

        A page shorter than ``limit`` is the last. The answer is a list, bare or in the
        usual envelope's ``data`` (the docs say "a bare array" [INF]); entries are
        :class:`WaabotMessageLog` (only ``_id`` is required: the fields are undocumented).
        """
        if not 1 <= limit <= 1000:
            raise ValidationError("must be between 1 and 1000", field="limit", value=limit)

        seen: set[str] = set()  # entry ids of the pages read so far in this walk

        def page_request(page: int) -> httpx.Request:
            query: dict[str, Any] = {"page": page, "limit": limit}
            if all_bots:
                query["type"] = "all"
            return self._api("GET", "/message-log", query=query)

        def parse(request: httpx.Request, response: httpx.Response) -> Page[WaabotMessageLog]:
            body = self.json(response)
            items = body if isinstance(body, list) else self._data(response, "message log")
            if not isinstance(items, list):
                raise MalformedResponse(
                    f"GET {request.url.path}: expected a list of log entries, got {type(items).__name__}",
                    provider=self.instance_name, status_code=response.status_code,
                )
            entries = [self._parse(parse_message_log, item, f"GET {request.url.path}: item {i}")
                       for i, item in enumerate(items)]
            page = int(request.url.params.get("page", "1"))
            if page == 1:
                seen.clear()
            ids = {e.id for e in entries}
            if entries and ids <= seen:
                raise MalformedResponse(
                    f"GET {request.url.path}: page {page} repeats entries of an earlier page "
                    "(the server ignores 'page'?): stopped walking the log",
                    provider=self.instance_name, status_code=response.status_code,
                )
            seen.update(ids)
            return Page(entries, page_request(page + 1) if len(entries) >= limit else None)

        return Paged(self, page_request(1), parse)

    def get_message_log(self, log_id: str) -> Operation[WaabotMessageLog]:
        """``GET /message-log/{id}``."""
        response = yield from self.call_ok(self._api("GET", f"/message-log/{_quote(log_id)}"))
        return self._record(response, "get message log", parse_message_log)

    # ------------------------------------------------------------ logout

    def logout(self) -> Operation[bool]:
        """``DELETE /sessions`` (204): end the account session and forget its tokens.

        Returns ``False`` without a request when no account session is held, and after
        a 401 (the session had already ended). A later call logs in again when
        ``email``/``password`` are configured; a configured ``account_token`` is gone
        for good after a logout.
        """
        if self._token is None:
            return False
        request = self.request("DELETE", self._url("/sessions"))
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        if self._refresh is not None:
            request.headers["x-refresh"] = self._refresh.get_secret_value()
        response = yield request
        if response.status_code == 401:
            self._token = self._refresh = None
            return False
        self.raise_for_status(response)
        self._data(response, "logout")
        self._token = self._refresh = None
        return True

    def _fetch(self, att: Attachment, index: int) -> Operation[tuple[bytes, str, str | None]]:
        """Content, filename and content type of an attachment given by URL."""
        url = att.url or ""
        inline = _decode_data_uri(url)
        if inline is not None:
            content, ctype = inline
            ext = mimetypes.guess_extension(ctype or "") or ""
            return content, att.filename or f"attachment{index}{ext}", att.content_type or ctype
        response = yield self.request("GET", url)
        if response.status_code >= 400:
            raise RequestRejected(
                f"attachments[{index}]: downloading {urllib.parse.urlsplit(url).path or url} "
                f"for upload failed with HTTP {response.status_code}",
                provider=self.instance_name, status_code=response.status_code,
            )
        name = att.filename or urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        ctype = att.content_type or response.headers.get("content-type", "").split(";")[0].strip() or None
        return response.content, name or f"attachment{index}", ctype

    def _check_attachment(self, att: Attachment) -> None:
        """Raise :class:`Unsupported` for an attachment this adapter cannot send."""
        if att.provider_id:
            return
        if not att.url:
            raise self.unsupported(
                "attachments given only by filename",
                "upload the file with BroadcastProvider.upload_attachment(content, filename) and pass "
                "Attachment(provider_id=...), or give a url",
            )
        if not att.url.startswith(("http://", "https://")) and _decode_data_uri(att.url) is None:
            raise self.unsupported(
                f"attachment url {att.url[:40]!r}",
                "give an http(s) or base64 data: URL, or an attachment provider_id",
            )

    def _attachment_ids(
        self, attachments: Sequence[Attachment], cache: dict[str, str]
    ) -> Operation[list[str]]:
        """Attachment ``_id`` s for a message, uploading URL-only attachments first."""
        ids: list[str] = []
        for i, att in enumerate(attachments):
            if att.provider_id:
                ids.append(att.provider_id)
                continue
            self._check_attachment(att)
            assert att.url is not None
            if att.url not in cache:
                content, filename, ctype = yield from self._fetch(att, i)
                uploaded = yield from self.upload_attachment(content, filename, ctype)
                assert uploaded.id is not None
                cache[att.url] = uploaded.id
            ids.append(cache[att.url])
        return ids

    # ------------------------------------------------------------ neutral operations

    @staticmethod
    def _content_key(msg: OutboundMessage) -> tuple[Any, ...]:
        atts = tuple((a.provider_id, a.url, a.filename, a.content_type) for a in msg.attachments)
        loc = (msg.location.name, msg.location.lat, msg.location.lng) if msg.location else None
        return (msg.text, atts, loc, _contact_id(msg))

    def batch_key(self, msg: OutboundMessage) -> object:
        """One broadcast is one content (text, attachments, location, contact) to many numbers."""
        return self._content_key(msg)

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Send one message: a broadcast to one number."""
        results = yield from self.send_many([msg])
        return results[0]

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        """Send messages of one content (see :meth:`batch_key`) to distinct numbers: one ``POST /broadcast``.

        The gateway groups messages by content, puts each number at most once in a
        request (:attr:`distinct_recipients`) and at most ``max_batch`` numbers; the
        attachments are uploaded first where they are files or URLs.
        """
        if not msgs:
            return []
        first = msgs[0]
        key = self._content_key(first)
        numbers = [phonelib.to_international_digits(m.to) for m in msgs]
        if any(self._content_key(m) != key for m in msgs) or len(set(numbers)) != len(numbers):
            raise ValueError("send_many takes messages of one content to distinct numbers (the gateway batches)")
        for att in first.attachments:
            self._check_attachment(att)
        ids = yield from self._attachment_ids(first.attachments, {})
        record = yield from self.create_broadcast(
            [m.to for m in msgs], first.text, attachments=ids, location=first.location, contact_id=_contact_id(first),
        )
        return [self._result(m, record) for m in msgs]

    def _result(self, msg: OutboundMessage, record: BroadcastRecord) -> SendResult:
        number = phonelib.to_international_digits(msg.to)
        status, raw = record.outcome(number)
        if status == Status.UNKNOWN:
            # the broadcast was accepted ("status": true); its state word is just unfamiliar
            status = Status.SUBMITTED
        return SendResult(
            message_id=msg.message_id,
            to=msg.to,
            status=status,
            raw_status=raw,
            provider=self.instance_name,
            provider_message_id=f"{record.id}:{number}",
            batch_id=record.id,
            segments=1,
            error="WAABOT listed the number as failed" if status == Status.FAILED else None,
        )

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """Poll ``GET /broadcast/{id}`` and read this number's list membership."""
        broadcast_id, number = _split_message_id(result)
        record = yield from self.get_broadcast(broadcast_id)
        return record.report(number, self.instance_name)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """WAABOT documents no delivery-report webhook payload: always :class:`Unsupported`."""
        raise self.unsupported("delivery-report webhooks",
                               "WAABOT documents no webhook payload; poll status() instead")


def _nonempty(value: SecretStr | None) -> SecretStr | None:
    return value if value is not None and value.get_secret_value() else None


def _contact_id(msg: OutboundMessage) -> str | None:
    value = msg.provider_options.get("contact_id", msg.provider_options.get("contactId"))
    return str(value) if value else None


def _quote(segment: str) -> str:
    if not segment:
        raise ValidationError("an id is required", field="id", value=segment)
    return urllib.parse.quote(str(segment), safe="")


def _split_message_id(result: SendResult) -> tuple[str, str]:
    """``(broadcast _id, number digits)`` of a send result."""
    pmid = result.provider_message_id or ""
    if ":" in pmid:
        bid, number = pmid.rsplit(":", 1)
        if bid and number:
            return bid, number
    if result.batch_id:
        return result.batch_id, phonelib.to_international_digits(result.to)
    raise ValidationError(
        "cannot look up a broadcast status without '<broadcast _id>:<number>' or a batch_id",
        field="provider_message_id", value=pmid or None,
    )
