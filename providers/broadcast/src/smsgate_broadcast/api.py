"""WAABOT's endpoints, one method each: the request as the vendor documents it, the answer read.

Every route lives under ``/api/v1`` (:data:`~smsgate_broadcast.options.API_PREFIX`, added
to ``base_url`` unless it already ends with it). Two credential layers: the account session
(``Authorization: Bearer`` + ``x-refresh``, added by the provider's ``authenticate``) and
the bot pair ``session_id`` + ``access_token``, which :meth:`WaabotApi.request` puts in the
JSON or multipart body and/or the query string (option ``credentials_in``). Answers come in
the envelope ``{"status": true, "message", "data"}``; ``status: false`` inside a 2xx is an
error (:meth:`WaabotApi.data`).

Each endpoint method is an operation (a generator yielding requests, see
:mod:`smsgate.provider`) or a :class:`~smsgate.provider.Paged` listing, and returns the
records of :mod:`smsgate_broadcast.wire`. Nothing here maps to neutral models or chooses
between endpoints: that is :mod:`smsgate_broadcast.provider`'s job. Requests go through the
provider (``call_ok``: credentials, typed errors for non-2xx), except the login and logout
calls, which carry the account credentials themselves.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from smsgate.errors import AuthFailed, MalformedResponse, ValidationError, request_where
from smsgate.provider import Operation, Page, Paged, Provider
from smsgate_broadcast import wire
from smsgate_broadcast.options import BroadcastOptions
from smsgate_broadcast.wire import (
    AttachmentRecord,
    BroadcastRecord,
    SessionTokens,
    UploadedAttachment,
    WaabotContact,
    WaabotContactGroup,
    WaabotMessageLog,
)

__all__ = ["WaabotApi", "quote"]

T = TypeVar("T")
Parser = Callable[[object, str], T]


def quote(segment: str) -> str:
    """An id as one URL path segment; an empty id is a :class:`ValidationError`."""
    if not segment:
        raise ValidationError("an id is required", field="id", value=segment)
    return urllib.parse.quote(str(segment), safe="")


class WaabotApi:
    """WAABOT's endpoints over one provider instance."""

    def __init__(self, provider: Provider, options: BroadcastOptions) -> None:
        self.provider = provider
        self.opts = options
        prefix = "/" + options.api_prefix.strip("/") if options.api_prefix.strip("/") else ""
        base_path = urllib.parse.urlsplit(provider.base_url).path.rstrip("/")
        #: the route prefix added to every path ("" when base_url already ends with it)
        self.prefix = "" if (not prefix or base_path.endswith(prefix)) else prefix

    def url(self, path: str) -> str:
        """``path`` (e.g. ``/broadcast``) below ``base_url``, with the route prefix."""
        return self.prefix + path

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        files: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> httpx.Request:
        """A request carrying the bot credentials where ``credentials_in`` says (``query``: more parameters).

        The credentials are read from the provider's settings at each call, so no
        attribute holds them in plain text.
        """
        where = self.opts.credentials_in
        settings = self.provider.settings
        bot = {"session_id": settings.secret("session_id"), "access_token": settings.secret("access_token")}
        params = {**(bot if where in ("both", "query") else {}), **(query or {})} or None
        in_body = where in ("both", "body")
        if files is not None:
            return self.provider.request(method, self.url(path), params=params,
                                         data=dict(bot) if in_body else None, files=files)
        payload: dict[str, Any] = dict(bot) if in_body else {}
        payload.update(body or {})
        return self.provider.request(method, self.url(path), params=params, json=payload or None)

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        files: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> Operation[httpx.Response]:
        """Send one request through the provider; a non-2xx answer raises a typed error."""
        return (yield from self.provider.call_ok(self.request(method, path, body, files=files, query=query)))

    # ------------------------------------------------------------ reading answers

    @staticmethod
    def where(response: httpx.Response) -> str:
        """``METHOD /path`` of the request ``response`` answers (never the query)."""
        return f"{request_where(response)}"

    def data(self, response: httpx.Response, what: str) -> Any:
        """``data`` of a ``{"status": true, ...}`` envelope (``None`` for an empty body or 204).

        ``status: false`` inside a 2xx answer raises :class:`~smsgate.errors.RequestRejected`,
        or :class:`AuthFailed` when its message speaks of invalid credentials.
        """
        if response.status_code == 204 or not response.content:
            return None
        body = self.provider.json_object(response, what)
        status = body.get("status")
        if status is False or (isinstance(status, str) and status.strip().lower() == "false"):
            text = wire.error_text(body)
            message = f"{self.where(response)}: {what} refused: {self.provider.safe_text(text, response)}"
            if wire.speaks_of_auth(text):
                raise AuthFailed(message, provider=self.provider.instance_name,
                                 status_code=response.status_code, body=self.provider._safe_body(response))
            raise self.provider.provider_error(message, response)
        return body.get("data")

    def parse(self, parser: Parser[T], data: object, where: str) -> T:
        """Run a pure parser of :mod:`smsgate_broadcast.wire`, naming this provider instance in its errors."""
        try:
            return parser(data, where)
        except MalformedResponse as exc:
            raise self.provider.malformed(str(exc)) from None

    def record(self, response: httpx.Response, what: str, parser: Parser[T]) -> T:
        """The record in ``data`` of an answer; a missing one is :class:`MalformedResponse`."""
        return self.parse(parser, self.data(response, what), self.where(response))

    def records(self, response: httpx.Response, what: str, parser: Parser[T]) -> list[T]:
        """The records in ``data`` of a list answer (``None`` / 204: none)."""
        data = self.data(response, what)
        if data is None:
            return []
        if not isinstance(data, list):
            raise self.provider.malformed(f"expected a list in data, got {type(data).__name__}", response)
        where = self.where(response)
        return [self.parse(parser, item, f"{where}: item {i}") for i, item in enumerate(data)]

    def changed(self, path: str, body: Mapping[str, Any], what: str, parser: Parser[T]) -> Operation[T]:
        """``PUT path``; the record answered, or read back with a ``GET`` after a 204."""
        response = yield from self.call("PUT", path, body)
        data = self.data(response, what)
        if isinstance(data, Mapping) and "_id" in data:
            return self.parse(parser, data, f"PUT {path}")
        return (yield from self.fetch(path, what, parser))

    def fetch(self, path: str, what: str, parser: Parser[T]) -> Operation[T]:
        """``GET path``: the record in ``data``."""
        response = yield from self.call("GET", path)
        return self.record(response, what, parser)

    def fetch_all(self, path: str, what: str, parser: Parser[T],
                  query: Mapping[str, Any] | None = None) -> Operation[list[T]]:
        """``GET path``: the records in ``data`` (WAABOT's lists are not paged)."""
        response = yield from self.call("GET", path, query=query)
        return self.records(response, what, parser)

    def create(self, path: str, body: Mapping[str, Any], what: str, parser: Parser[T]) -> Operation[T]:
        """``POST path``: the new record in ``data`` (a missing one is :class:`MalformedResponse`)."""
        response = yield from self.call("POST", path, body)
        return self.record(response, what, parser)

    def delete(self, path: str, what: str) -> Operation[None]:
        """``DELETE path`` (204; a ``status: false`` body still raises)."""
        response = yield from self.call("DELETE", path)
        self.data(response, what)

    # ------------------------------------------------------------ /sessions

    def login(self, email: str, password: str) -> Operation[SessionTokens]:
        """``POST /sessions`` ``{email, password}`` -> ``{accessToken, refreshToken}`` (no envelope [DOC])."""
        request = self.provider.request("POST", self.url("/sessions"),
                                        json={"email": email, "password": password}, idempotent=True)
        response = yield request
        self.provider.raise_for_status(response)
        body = self.provider.json(response)
        if isinstance(body, Mapping) and body.get("status") is False:
            raise AuthFailed(f"POST /sessions: login refused: {self.provider.safe_text(wire.error_text(body), response)}",
                             provider=self.provider.instance_name, status_code=response.status_code)
        try:
            return wire.parse_session_tokens(body, "POST /sessions")
        except MalformedResponse as exc:  # no body in the error: it may hold other tokens
            raise MalformedResponse(str(exc), provider=self.provider.instance_name,
                                    status_code=response.status_code) from None

    def logout(self, access_token: str, refresh_token: str | None) -> Operation[bool]:
        """``DELETE /sessions`` (204 [DOC]) with the session's tokens; ``False`` after a 401 (already ended)."""
        request = self.provider.request("DELETE", self.url("/sessions"))
        request.headers["Authorization"] = f"Bearer {access_token}"
        if refresh_token is not None:
            request.headers["x-refresh"] = refresh_token
        response = yield request
        if response.status_code == 401:
            return False
        self.provider.raise_for_status(response)
        self.data(response, "logout")
        return True

    # ------------------------------------------------------------ /broadcast

    def create_broadcast(self, body: Mapping[str, Any]) -> Operation[BroadcastRecord]:
        """``POST /broadcast`` ``{send_type, to, message}``; ``data`` is the new broadcast.

        An answer whose ``data`` is a broadcast (it has an ``_id``) created it, whatever its
        envelope's ``status`` says (``false`` with some numbers ``failed``): it is read, never
        a refusal, since the gateway would send a refused broadcast again through the next
        provider (a provider never raises once the vendor accepted something).
        """
        response = yield from self.call("POST", "/broadcast", body)
        if response.status_code != 204 and response.content:
            envelope = self.provider.json_object(response, "create broadcast")
            data = envelope.get("data")
            if isinstance(data, Mapping) and data.get("_id") not in (None, ""):
                return self.parse(wire.parse_broadcast, data, self.where(response))
        return self.record(response, "create broadcast", wire.parse_broadcast)

    def broadcasts(self) -> Operation[list[BroadcastRecord]]:
        """``GET /broadcast``: every broadcast of the bot instance (not paged)."""
        return (yield from self.fetch_all("/broadcast", "list broadcasts", wire.parse_broadcast))

    def broadcast(self, broadcast_id: str) -> Operation[BroadcastRecord]:
        """``GET /broadcast/{id}``: one broadcast with its progress lists."""
        return (yield from self.fetch(f"/broadcast/{quote(broadcast_id)}", "get broadcast", wire.parse_broadcast))

    def update_broadcast(self, broadcast_id: str, body: Mapping[str, Any]) -> Operation[BroadcastRecord]:
        """``PUT /broadcast/{id}`` [SDK]; a record answered is read, else (204 [INF]) the broadcast is read back."""
        path = f"/broadcast/{quote(broadcast_id)}"
        response = yield from self.call("PUT", path, body)
        data = self.data(response, "update broadcast")
        if isinstance(data, Mapping) and ("_id" in data or "id" in data):
            return self.parse(wire.parse_broadcast, data, f"PUT {path}")
        return (yield from self.broadcast(broadcast_id))

    def delete_broadcast(self, broadcast_id: str) -> Operation[None]:
        """``DELETE /broadcast/{id}`` (204)."""
        yield from self.delete(f"/broadcast/{quote(broadcast_id)}", "delete broadcast")

    # ------------------------------------------------------------ /attachment

    def attachments(self) -> Operation[list[AttachmentRecord]]:
        """``GET /attachment``: every uploaded attachment (not paged)."""
        return (yield from self.fetch_all("/attachment", "list attachments", wire.parse_attachment))

    def attachment(self, attachment_id: str) -> Operation[AttachmentRecord]:
        """``GET /attachment/{id}``."""
        return (yield from self.fetch(f"/attachment/{quote(attachment_id)}", "get attachment", wire.parse_attachment))

    def delete_attachment(self, attachment_id: str) -> Operation[None]:
        """``DELETE /attachment/{id}`` (204)."""
        yield from self.delete(f"/attachment/{quote(attachment_id)}", "delete attachment")

    def upload(self, content: bytes, filename: str, content_type: str) -> Operation[UploadedAttachment]:
        """``POST /attachment``, multipart field ``file`` [INF]: the answer's ``data`` is a data URI [DOC].

        A server answering with the record itself is accepted too (then ``attachment`` is set).
        """
        response = yield from self.call("POST", "/attachment", files={"file": (filename, content, content_type)})
        data = self.data(response, "upload attachment")
        if isinstance(data, Mapping):
            record = self.parse(wire.parse_attachment, data, "POST /attachment")
            uri = data.get("data_uri") or data.get("data") or ""
            return UploadedAttachment(data_uri=str(uri) if isinstance(uri, str) else "", attachment=record)
        if not isinstance(data, str):
            raise MalformedResponse(
                f"POST /attachment: expected a data URI string in data, got {type(data).__name__}",
                provider=self.provider.instance_name, status_code=response.status_code,
            )
        return UploadedAttachment(data_uri=data)

    # ------------------------------------------------------------ /contact

    def contacts(self, *, all_bots: bool = False) -> Operation[list[WaabotContact]]:
        """``GET /contact`` (``?type=all``: every bot of the account)."""
        query = {"type": "all"} if all_bots else None
        return (yield from self.fetch_all("/contact", "list contacts", wire.parse_contact, query))

    def contact(self, contact_id: str) -> Operation[WaabotContact]:
        """``GET /contact/{id}``."""
        return (yield from self.fetch(f"/contact/{quote(contact_id)}", "get contact", wire.parse_contact))

    def post_contact(self, body: Mapping[str, Any]) -> Operation[tuple[httpx.Response, WaabotContact | None]]:
        """``POST /contact`` ``{number, name, group_id}``: the answer, and the new contact when it
        holds one (the docs answer ``204 No Content`` [DOC]; the SDK's tests read an ``_id``).
        For a caller that does not need the contact (a contact list's members): no read-back."""
        response = yield from self.call("POST", "/contact", body)
        data = self.data(response, "create contact")
        return response, None if data is None else self.parse(wire.parse_contact, data, self.where(response))

    def create_contact(self, body: Mapping[str, Any]) -> Operation[WaabotContact]:
        """``POST /contact`` ``{number, name, group_id}``: the new contact.

        A record in the answer is read (:meth:`post_contact`); without one the contact is read
        back from ``GET /contact`` (the newest with this number in this group,
        :func:`~smsgate_broadcast.wire.newest_contact`), or from ``GET /contact?type=all`` when
        the own-bot listing is empty (documented as 204 too) and the contact has a group.
        """
        response, made = yield from self.post_contact(body)
        if made is not None:
            return made
        number, group_id = body.get("number"), body.get("group_id")
        listed = yield from self.contacts()
        found = wire.newest_contact(listed, number=number, group_id=group_id)
        if found is None and group_id and not listed:
            # the docs answer the own-bot listing 204 too, ``?type=all`` with the contacts; the
            # group id (an ObjectId) singles the contact out among every bot's
            listed = yield from self.contacts(all_bots=True)
            found = wire.newest_contact(listed, number=number, group_id=group_id)
        if found is None:
            raise self.provider.malformed(
                f"POST /contact answered HTTP {response.status_code} without the contact, and GET /contact "
                "lists no contact with its number in its group", response)
        return found

    def update_contact(self, contact_id: str, body: Mapping[str, Any]) -> Operation[WaabotContact]:
        """``PUT /contact/{id}``; read back when the answer is 204."""
        return (yield from self.changed(f"/contact/{quote(contact_id)}", body, "update contact", wire.parse_contact))

    def delete_contact(self, contact_id: str) -> Operation[None]:
        """``DELETE /contact/{id}`` (204)."""
        yield from self.delete(f"/contact/{quote(contact_id)}", "delete contact")

    # ------------------------------------------------------------ /contact_groups

    def contact_groups(self) -> Operation[list[WaabotContactGroup]]:
        """``GET /contact_groups``."""
        return (yield from self.fetch_all("/contact_groups", "list contact groups", wire.parse_contact_group))

    def contact_group(self, group_id: str) -> Operation[WaabotContactGroup]:
        """``GET /contact_groups/{id}``."""
        path = f"/contact_groups/{quote(group_id)}"
        return (yield from self.fetch(path, "get contact group", wire.parse_contact_group))

    def create_contact_group(self, title: str) -> Operation[WaabotContactGroup]:
        """``POST /contact_groups`` ``{title}``; ``data`` is the new group."""
        body = {"title": title}
        return (yield from self.create("/contact_groups", body, "create contact group", wire.parse_contact_group))

    def update_contact_group(self, group_id: str, title: str) -> Operation[WaabotContactGroup]:
        """``PUT /contact_groups/{id}`` ``{title}``; read back when the answer is 204."""
        path = f"/contact_groups/{quote(group_id)}"
        return (yield from self.changed(path, {"title": title}, "update contact group", wire.parse_contact_group))

    def delete_contact_group(self, group_id: str) -> Operation[None]:
        """``DELETE /contact_groups/{id}`` (204)."""
        yield from self.delete(f"/contact_groups/{quote(group_id)}", "delete contact group")

    # ------------------------------------------------------------ /message-log

    def message_log(self, *, limit: int, all_bots: bool) -> Paged[WaabotMessageLog]:
        """``GET /message-log?page=&limit=`` (``&type=all``), numbered pages; a short page is the last.

        The answer is a list, bare (FACTS) or in the envelope's ``data``. A page whose
        entries were all on earlier pages of the walk means the server ignores ``page``:
        :class:`MalformedResponse` rather than a walk that never ends.
        """
        seen: set[str] = set()  # entry ids of the pages read so far in this walk

        def page_request(page: int) -> httpx.Request:
            query: dict[str, Any] = {"page": page, "limit": limit}
            if all_bots:
                query["type"] = "all"
            return self.request("GET", "/message-log", query=query)

        def parse(request: httpx.Request, response: httpx.Response) -> Page[WaabotMessageLog]:
            body = self.provider.json(response)
            items = body if isinstance(body, list) else self.data(response, "message log")
            if not isinstance(items, list):
                raise self.provider.malformed(f"expected a list of log entries, got {type(items).__name__}",
                                              response)
            where = self.where(response)
            entries = [self.parse(wire.parse_message_log, item, f"{where}: item {i}") for i, item in enumerate(items)]
            page = int(request.url.params.get("page", "1"))
            if page == 1:
                seen.clear()
            ids = {e.id for e in entries}
            if entries and ids <= seen:
                raise self.provider.malformed(
                    f"page {page} repeats entries of an earlier page (the server ignores 'page'?): "
                    "stopped walking the log", response)
            seen.update(ids)
            return Page(entries, page_request(page + 1) if len(entries) >= limit else None)

        return Paged(self.provider, page_request(1), parse)

    def message_log_entry(self, log_id: str) -> Operation[WaabotMessageLog]:
        """``GET /message-log/{id}``."""
        return (yield from self.fetch(f"/message-log/{quote(log_id)}", "get message log", wire.parse_message_log))

