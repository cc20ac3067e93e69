"""The WAABOT broadcast adapter (WhatsApp broadcasts, Nigeria): smsgate's neutral operations
mapped onto WAABOT's API.

The vendor (https://doc.waabot.com, SDK ``wasms-sdk``) sends one *broadcast* to several
numbers at once (``POST /api/v1/broadcast {send_type, to: "2348…,2349…", message: {text,
attachments, location, contactId}}``) and reports progress on the broadcast record: its
``status`` and the ``sent`` / ``pending`` / ``failed`` lists. Neutral mapping (see
docs/providers/broadcast.md):

* one neutral message -> one number of a broadcast; ``provider_message_id`` is
  ``"<broadcast _id>:<number>"`` and ``batch_id`` the broadcast ``_id``;
* ``send_many`` gets messages of one content (:meth:`BroadcastProvider.batch_key`) and puts
  them in one broadcast call (up to :data:`~smsgate_broadcast.options.MAX_BATCH` numbers);
* a number in ``pending`` is ``submitted``, in ``sent`` is ``sent``, in ``failed`` is
  ``failed``; a number in no list takes the broadcast's status.

Credentials travel in two layers: the bot pair ``session_id`` + ``access_token`` in every
body (:meth:`smsgate_broadcast.api.WaabotApi.request`) and an optional account session
(``POST /sessions`` -> ``accessToken``/``refreshToken``, sent as ``Authorization: Bearer``
and ``x-refresh``), cached here as :class:`~pydantic.SecretStr`.

This module reads top to bottom: construction and auth, the neutral operations (send,
status, contact lists, check), then the vendor operations a user may call directly
(broadcasts, attachments, contacts, contact groups, message log, logout), each mapping onto
one endpoint of :class:`~smsgate_broadcast.api.WaabotApi`. Payloads, status maps and
parsers are :mod:`smsgate_broadcast.wire`. Everything is sans-I/O: operations yield
:class:`httpx.Request` objects.
"""

from __future__ import annotations

import logging
import mimetypes
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import ClassVar, Literal, cast

import httpx
from pydantic import SecretStr

from smsgate import downloads
from smsgate import phone as phonelib
from smsgate.errors import (
    AuthFailed,
    ConfigError,
    DownloadRefused,
    ProviderError,
    ValidationError,
    request_where,
)
from smsgate.models import (
    Attachment,
    ContactList,
    DeliveryReport,
    Location,
    OutboundMessage,
    ProviderCheck,
    SendResult,
)
from smsgate.provider import Capabilities, Operation, Paged, Provider, ProviderSettings, before_sending
from smsgate_broadcast import wire
from smsgate_broadcast.api import WaabotApi
from smsgate_broadcast.options import MAX_BATCH, BroadcastOptions
from smsgate_broadcast.wire import (
    AttachmentRecord,
    BroadcastRecord,
    SessionTokens,
    UploadedAttachment,
    WaabotContact,
    WaabotContactGroup,
    WaabotMessageLog,
)

__all__ = ["BroadcastProvider"]

log = logging.getLogger("smsgate.broadcast")


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
    #: the account login (``email``) too.
    secret_names = Provider.secret_names | {"email"}
    uses_tokens = True
    distinct_recipients: ClassVar[bool] = True
    #: ``provider_options["contact_id"]`` (or ``"contactId"``): the contact card a message carries
    send_options: ClassVar[frozenset[str]] = frozenset({"contact_id", "contactId"})

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        self.opts = cast(BroadcastOptions, self.options)
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
        self.api = WaabotApi(self, self.opts)
        self._download_policy = self.opts.download_policy()

    # ------------------------------------------------------------ auth

    @property
    def can_login(self) -> bool:
        """True if account credentials (email + password) are configured."""
        return bool(self.settings.secret("email") and self.settings.secret("password"))

    def login(self) -> Operation[SessionTokens]:
        """``POST /sessions`` with the account email and password; caches the tokens."""
        email, password = self.settings.secret("email"), self.settings.secret("password")
        if not email or not password:
            raise ConfigError(
                f"provider {self.instance_name!r}: no 'email'/'password' credentials to log in with"
            )
        tokens = yield from self.api.login(email, password)
        self._token = SecretStr(tokens.access_token)
        self._refresh = SecretStr(tokens.refresh_token) if tokens.refresh_token else None
        return tokens

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
                f"{request_where(request)}: bot credentials refused: "
                f"{self.safe_error_message(response)} (check the credentials "
                "'session_id' and 'access_token'; logging in again cannot fix them)",
                provider=self.instance_name, status_code=response.status_code, body=self._safe_body(response),
            )
        if response.status_code in (401, 403) and self.can_login:
            self.invalidate_auth()
            yield from self.authorized(request)
            response = yield request
        return response

    def bot_credentials_refused(self, response: httpx.Response) -> bool:
        """Whether an auth error names the bot credentials, not the account session
        (:func:`~smsgate_broadcast.wire.names_bot_credentials`)."""
        return wire.names_bot_credentials(self.error_message(response))

    def secrets(self) -> list[str]:
        """Configured secrets plus the cached session tokens (redacted from errors)."""
        out = super().secrets()
        out.extend(t.get_secret_value() for t in (self._token, self._refresh) if t is not None)
        return out

    def error_message(self, response: httpx.Response) -> str:
        """The vendor's ``message`` (or ``error``, as the SDK reads it)."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return response.text[:200] or response.reason_phrase
        if isinstance(body, Mapping):
            return wire.error_text(body)
        return str(body)[:200]

    # ------------------------------------------------------------ neutral operations

    def batch_key(self, msg: OutboundMessage) -> object:
        """One broadcast is one content (text, attachments, location, contact) to many numbers."""
        return wire.content_key(msg)

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
        key = wire.content_key(first)
        numbers = [phonelib.to_international_digits(m.to) for m in msgs]
        if any(wire.content_key(m) != key for m in msgs) or len(set(numbers)) != len(numbers):
            raise ValueError("send_many takes messages of one content to distinct numbers (the gateway batches)")
        for att in first.attachments:
            self._check_attachment(att)
        # an upload's lost answer is no "maybe sent" for the broadcast, which has not left yet
        ids = yield from before_sending(self._attachment_ids(first.attachments), "POST /broadcast",
                                        "uploading its attachments")
        record = yield from self.create_broadcast(
            [m.to for m in msgs], first.text, attachments=ids, location=first.location,
            contact_id=wire.contact_id_of(first),
        )
        return [record.send_result(m, self.instance_name) for m in msgs]

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """Poll ``GET /broadcast/{id}`` and read this number's list membership."""
        broadcast_id, number = wire.split_message_id(result)
        record = yield from self.get_broadcast(broadcast_id)
        return record.report(number, self.instance_name)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """WAABOT documents no delivery-report webhook payload: always :class:`Unsupported`."""
        raise self.unsupported("delivery-report webhooks",
                               "WAABOT documents no webhook payload; poll status() instead")

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
            for number in numbers:  # the contacts are not read back (a listing of every contact each)
                yield from self.api.post_contact(wire.contact_changes(number="+" + number, group_id=group.id))
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

    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """``POST /sessions`` (with ``email``/``password``: a fresh login), then ``GET /message-log``
        (one entry) with the bot credentials. Messages go out from the bot instance's WhatsApp
        number, so there is no sender ID to check."""
        calls = []
        if self.can_login:
            yield from self.login()
            calls.append(f"POST {self.api.url('/sessions')}")
        paged = self.message_log(limit=1)
        yield from paged.fetch(paged.first)
        calls.append(f"GET {self.api.url('/message-log')}")
        return ProviderCheck(endpoint=", ".join(calls),
                             sender_detail="WAABOT sends from the bot instance's number (session_id accepted); "
                                           "no sender ID")

    # ------------------------------------------------------------ attachments of a message

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
        if not att.url.startswith(("http://", "https://")) and wire.decode_data_uri(att.url) is None:
            raise self.unsupported(
                f"attachment url {att.url[:40]!r}",
                "give an http(s) or base64 data: URL, or an attachment provider_id",
            )

    def _attachment_ids(self, attachments: Sequence[Attachment]) -> Operation[list[str]]:
        """Attachment ``_id`` s for a message, uploading URL-only attachments first (once per URL)."""
        ids: list[str] = []
        uploaded_ids: dict[str, str] = {}
        for i, att in enumerate(attachments):
            if att.provider_id:
                ids.append(att.provider_id)
                continue
            self._check_attachment(att)
            assert att.url is not None
            if att.url not in uploaded_ids:
                content, filename, ctype = yield from self._fetch(att, i)
                uploaded = yield from self.upload_attachment(content, filename, ctype)
                assert uploaded.id is not None
                uploaded_ids[att.url] = uploaded.id
            ids.append(uploaded_ids[att.url])
        return ids

    def _fetch(self, att: Attachment, index: int) -> Operation[tuple[bytes, str, str | None]]:
        """Content, filename and content type of an attachment given by URL (no vendor credentials)."""
        url = att.url or ""
        inline = wire.decode_data_uri(url)
        if inline is not None:
            content, ctype = inline
            ext = mimetypes.guess_extension(ctype or "") or ""
            return content, att.filename or f"attachment{index}{ext}", att.content_type or ctype
        policy = self._download_policy
        try:
            # the drivers check the host's addresses, stream the body and stop past the cap
            response = yield downloads.download_request(url, policy, timeout=self.settings.timeout)
            downloads.check_response(response, policy, received=len(response.content))
        except DownloadRefused as exc:
            raise exc.located(f"attachments[{index}].url") from None
        name = att.filename or urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        ctype = att.content_type or response.headers.get("content-type", "").split(";")[0].strip() or None
        return response.content, name or f"attachment{index}", ctype

    # ------------------------------------------------------------ broadcasts

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
            "to": wire.to_field(to, send_type),
            "message": wire.message_body(text, attachments, location, contact_id),
        }
        return (yield from self.api.create_broadcast(body))

    def list_broadcasts(self) -> Operation[list[BroadcastRecord]]:
        """``GET /broadcast``: every broadcast of the bot instance (not paged)."""
        return (yield from self.api.broadcasts())

    def get_broadcast(self, broadcast_id: str) -> Operation[BroadcastRecord]:
        """``GET /broadcast/{id}``: one broadcast with its progress lists."""
        return (yield from self.api.broadcast(broadcast_id))

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
        body = wire.broadcast_changes(to=to, text=text, attachments=attachments, location=location,
                                      contact_id=contact_id, send_type=send_type)
        return (yield from self.api.update_broadcast(broadcast_id, body))

    def delete_broadcast(self, broadcast_id: str) -> Operation[None]:
        """``DELETE /broadcast/{id}`` (204)."""
        yield from self.api.delete_broadcast(broadcast_id)

    def broadcast_reports(self, broadcast_id: str) -> Operation[list[DeliveryReport]]:
        """Per-number delivery reports of one broadcast (one ``GET /broadcast/{id}``)."""
        record = yield from self.get_broadcast(broadcast_id)
        return record.reports(self.instance_name)

    # ------------------------------------------------------------ attachments

    def list_attachments(self) -> Operation[list[AttachmentRecord]]:
        """``GET /attachment``: every uploaded attachment (not paged)."""
        return (yield from self.api.attachments())

    def get_attachment(self, attachment_id: str) -> Operation[AttachmentRecord]:
        """``GET /attachment/{id}``."""
        return (yield from self.api.attachment(attachment_id))

    def delete_attachment(self, attachment_id: str) -> Operation[None]:
        """``DELETE /attachment/{id}`` (204)."""
        yield from self.api.delete_attachment(attachment_id)

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
        upload and the new record is returned, so its ``_id`` can go in a broadcast
        (if several appeared: the newest with the same MIME type).
        """
        ctype = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        before: set[str] = set()
        if resolve_id:
            existing = yield from self.list_attachments()
            before = {a.id for a in existing}
        uploaded = yield from self.api.upload(content, filename, ctype)
        if uploaded.attachment is not None or not resolve_id:
            return uploaded
        after = yield from self.list_attachments()
        new = [a for a in after if a.id not in before]
        if not new:
            raise self.malformed(
                "POST /attachment: upload succeeded but no new attachment appeared in GET /attachment, "
                "so its _id is unknown"
            )
        same_type = [a for a in new if a.mimetype == ctype] or new
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        chosen = max(enumerate(same_type), key=lambda p: (p[1].created_at or epoch, p[0]))[1]
        return UploadedAttachment(data_uri=uploaded.data_uri, attachment=chosen)

    # ------------------------------------------------------------ contacts and contact groups

    def list_contacts(self, *, all_bots: bool = False) -> Operation[list[WaabotContact]]:
        """``GET /contact``: the bot's contacts (``all_bots``: ``?type=all``, every bot of the account)."""
        return (yield from self.api.contacts(all_bots=all_bots))

    def get_contact(self, contact_id: str) -> Operation[WaabotContact]:
        """``GET /contact/{id}``."""
        return (yield from self.api.contact(contact_id))

    def create_contact(
        self, number: str, name: str | None = None, *, group_id: str | None = None
    ) -> Operation[WaabotContact]:
        """``POST /contact``: a contact with an E.164 ``number`` (sent as digits), optionally in a group.

        The docs answer 204 No Content: the new record is then read back from ``GET /contact``.
        """
        body = wire.contact_changes(name=name, number=number, group_id=group_id)
        return (yield from self.api.create_contact(body))

    def update_contact(
        self, contact_id: str, *, name: str | None = None, number: str | None = None, group_id: str | None = None,
    ) -> Operation[WaabotContact]:
        """``PUT /contact/{id}``: only the fields given; read back when the answer is 204."""
        body = wire.contact_changes(name=name, number=number, group_id=group_id)
        if not body:
            raise ValidationError("nothing to update", field="contact")
        return (yield from self.api.update_contact(contact_id, body))

    def delete_contact(self, contact_id: str) -> Operation[None]:
        """``DELETE /contact/{id}`` (204)."""
        yield from self.api.delete_contact(contact_id)

    def list_contact_groups(self) -> Operation[list[WaabotContactGroup]]:
        """``GET /contact_groups``: the bot's contact groups (the ids a group broadcast takes)."""
        return (yield from self.api.contact_groups())

    def get_contact_group(self, group_id: str) -> Operation[WaabotContactGroup]:
        """``GET /contact_groups/{id}``."""
        return (yield from self.api.contact_group(group_id))

    def create_contact_group(self, title: str) -> Operation[WaabotContactGroup]:
        """``POST /contact_groups`` ``{title}``; the answer's ``data`` is the new group."""
        _check_title(title)
        return (yield from self.api.create_contact_group(title))

    def update_contact_group(self, group_id: str, *, title: str) -> Operation[WaabotContactGroup]:
        """``PUT /contact_groups/{id}`` ``{title}``; read back when the answer is 204."""
        _check_title(title)
        return (yield from self.api.update_contact_group(group_id, title))

    def delete_contact_group(self, group_id: str) -> Operation[None]:
        """``DELETE /contact_groups/{id}`` (204)."""
        yield from self.api.delete_contact_group(group_id)

    # ------------------------------------------------------------ message log and logout

    def message_log(self, *, limit: int = 100, all_bots: bool = False) -> Paged[WaabotMessageLog]:
        """``GET /message-log?page=&limit=`` (``all_bots``: ``&type=all``), every page.

        A page shorter than ``limit`` is the last. The answer is a list, bare or in the
        usual envelope's ``data`` (the docs say "a bare array" [INF]); entries are
        :class:`WaabotMessageLog` (only ``_id`` is required: the fields are undocumented).
        """
        if not 1 <= limit <= 1000:
            raise ValidationError("must be between 1 and 1000", field="limit", value=limit)
        return self.api.message_log(limit=limit, all_bots=all_bots)

    def get_message_log(self, log_id: str) -> Operation[WaabotMessageLog]:
        """``GET /message-log/{id}``."""
        return (yield from self.api.message_log_entry(log_id))

    def logout(self) -> Operation[bool]:
        """``DELETE /sessions`` (204): end the account session and forget its tokens.

        Returns ``False`` without a request when no account session is held, and after
        a 401 (the session had already ended). A later call logs in again when
        ``email``/``password`` are configured; a configured ``account_token`` is gone
        for good after a logout.
        """
        if self._token is None:
            return False
        refresh = self._refresh.get_secret_value() if self._refresh is not None else None
        ended = yield from self.api.logout(self._token.get_secret_value(), refresh)
        self._token = self._refresh = None
        return ended


def _nonempty(value: SecretStr | None) -> SecretStr | None:
    return value if value is not None and value.get_secret_value() else None


def _check_title(title: str) -> None:
    if not title.strip():
        raise ValidationError("a contact group needs a title", field="title", value=title)
