"""Colony's REST endpoints, one method each: the request as the vendor documents it, the answer read.

Colony is a Django REST framework API: listings come as a plain JSON array or as a page
``{count, next, previous, results}``; validation errors are ``{"field": ["message"]}``,
other errors ``{"detail": "..."}``. :class:`ColonyApi` holds, in one place, the envelope
checks, malformed-answer errors and page walking every endpoint shares (to be switched to
the shared helpers on :class:`~smsgate.provider.Provider` later), then one method per
endpoint of :data:`~smsgate_colony.options.DEFAULT_PATHS`.

Each endpoint method is an operation (a generator yielding requests, see
:mod:`smsgate.provider`) or a :class:`~smsgate.provider.Paged` listing, and returns the
vendor models of :mod:`smsgate_colony.wire`. Nothing here maps to neutral models or
chooses between endpoints: that is :mod:`smsgate_colony.provider`'s job. Requests go
through the provider (``call_ok``: credentials, typed errors for non-2xx).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx

from smsgate.errors import MalformedResponse, UnknownOutcome, ValidationError, request_where
from smsgate.provider import Operation, Page, Paged, Provider, parse_model
from smsgate_colony import wire
from smsgate_colony.options import DEFAULT_PATHS, ColonyOptions
from smsgate_colony.wire import (
    PERIODS,
    ColonyCollateCampaign,
    ColonyContact,
    ColonyContactList,
    ColonyDeployment,
    ColonyInboundMessage,
    ColonyModel,
    ColonyOptOut,
    ColonyStat,
    drf_error_text,
)

__all__ = ["NOT_JSON", "SEND_STATUSES", "ColonyApi", "OAuthToken", "TokenGrant", "period_key"]

M = TypeVar("M", bound=ColonyModel)
T = TypeVar("T")

#: The statuses of a send's documented answer, the model ``{}`` (seed 002 gives no status): a
#: Django REST framework create view answers 201, a plain view 200 [INF]. See :meth:`ColonyApi.confirmed`.
SEND_STATUSES: Final = frozenset({200, 201})

#: Marks a body that is not JSON (distinct from ``None``, an empty body).
NOT_JSON: Final[Any] = object()

_PERIOD_ALIASES: Final = {"hour": "hourly", "day": "daily", "month": "monthly", "year": "yearly"}


def period_key(period: str) -> str:
    """A statistics period as Colony's path segment (``hourly`` ... ``yearly``; ``day`` etc. accepted)."""
    key = period.lower()
    key = _PERIOD_ALIASES.get(key, key)
    if key not in PERIODS:
        raise ValidationError(
            f"unknown period {period!r}; use one of {', '.join(PERIODS)}", field="period", value=period
        )
    return key


def _bytes(file: bytes | str) -> bytes:
    return file.encode("utf-8") if isinstance(file, str) else file


def _form(fields: Mapping[str, Any]) -> dict[str, str]:
    return {k: wire.flag(v) if isinstance(v, bool) else str(v) for k, v in fields.items()}


class OAuthToken:
    """The OAuth2 tokens of one provider instance; its repr never shows them.

    Held by the provider in a private attribute, so ``vars(provider)`` and logs of it
    show ``OAuthToken(access=<redacted>, ...)`` rather than a usable bearer token.
    """

    __slots__ = ("access", "expires_at", "refresh", "scope")

    def __init__(self) -> None:
        self.access: str | None = None
        self.refresh: str | None = None
        #: The scope the token answer stated (FACTS: ``"read"``); ``None`` when it stated none.
        self.scope: str | None = None
        #: Monotonic time after which the access token is refreshed (None: rely on 401).
        self.expires_at: float | None = None

    def clear(self) -> None:
        """Forget both tokens and the expiry."""
        self.access = self.refresh = self.scope = None
        self.expires_at = None

    def values(self) -> list[str]:
        """The token strings held (for redaction of error texts)."""
        return [t for t in (self.access, self.refresh) if t]

    def __repr__(self) -> str:
        def shown(value: str | None) -> str:
            return "None" if value is None else "<redacted>"

        return f"OAuthToken(access={shown(self.access)}, refresh={shown(self.refresh)}, expires_at={self.expires_at})"


@dataclass(frozen=True, repr=False)
class TokenGrant:
    """A token endpoint's answer: the access token, an optional refresh token, its life in seconds
    and the scope granted (``None`` when the answer states none)."""

    access: str
    refresh: str | None
    expires_in: float | None
    scope: str | None = None

    def __repr__(self) -> str:
        return f"TokenGrant(access=<redacted>, expires_in={self.expires_in})"


class ColonyApi:
    """Colony's endpoints over one provider instance (paths from its options)."""

    def __init__(self, provider: Provider, options: ColonyOptions) -> None:
        self.provider = provider
        self.opts = options
        self.paths: dict[str, str] = {**DEFAULT_PATHS, **options.paths}

    @property
    def instance(self) -> str:
        """The provider instance's name (recorded in errors)."""
        return self.provider.instance_name

    def path(self, key: str, **values: object) -> str:
        """The path of endpoint ``key`` with its placeholders filled in (URL-quoted)."""
        template = self.paths[key]
        for name, value in values.items():
            template = template.replace("{" + name + "}", quote(str(value), safe=""))
        return template

    def call(self, method: str, key: str, *, path_values: Mapping[str, object] | None = None,
             **kwargs: Any) -> Operation[httpx.Response]:
        """Send one request to endpoint ``key``; a non-2xx answer raises a typed error."""
        request = self.provider.request(method, self.path(key, **(path_values or {})), **kwargs)
        return (yield from self.provider.call_ok(request))

    # ============================================================ reading answers
    @staticmethod
    def where(response: httpx.Response) -> str:
        """``METHOD /path`` of the request ``response`` answers, for error messages."""
        return f"{request_where(response)}"

    def malformed(self, message: str, response: httpx.Response | None = None) -> MalformedResponse:
        """A :class:`MalformedResponse` of this instance carrying the (redacted) answer."""
        return MalformedResponse(
            message,
            provider=self.instance,
            status_code=response.status_code if response is not None else None,
            body=self.provider._safe_body(response) if response is not None else None,
        )

    def body(self, response: httpx.Response) -> Any:
        """The JSON body, ``None`` when empty; :class:`MalformedResponse` when not JSON."""
        if not response.content.strip():
            return None
        return self.provider.json(response)

    def body_or_marker(self, response: httpx.Response) -> Any:
        """Like :meth:`body`, but :data:`NOT_JSON` instead of raising for a body that is not JSON."""
        try:
            return self.body(response)
        except MalformedResponse:
            return NOT_JSON

    @staticmethod
    def describe(data: Any) -> str:
        """What a body was, for error messages (``an empty body``, ``a JSON list`` ...)."""
        if data is None:
            return "an empty body"
        if data is NOT_JSON:
            return "a body that is not JSON"
        return f"a JSON {type(data).__name__}"

    def parse(self, cls: type[M], data: Any, where: str, response: httpx.Response | None = None) -> M:
        """``data`` as a ``cls`` (:func:`smsgate.provider.parse_model`), errors carrying the answer."""
        try:
            return parse_model(cls, data, where)
        except MalformedResponse as exc:
            raise self.malformed(str(exc), response) from None

    def model(self, cls: type[M], response: httpx.Response) -> M:
        """The answer's body as one ``cls`` object."""
        return self.parse(cls, self.body(response), self.where(response), response)

    def json_object(self, response: httpx.Response) -> dict[str, Any]:
        """The answer's JSON object (``{}`` for an empty body)."""
        data = self.body(response)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.malformed(f"{self.where(response)}: expected a JSON object", response)
        return data

    @staticmethod
    def body_error(data: Any) -> str | None:
        """The error a body reports (``{"error": ...}`` / ``{"errors": ...}``) as one line, if any."""
        if isinstance(data, dict):
            err = data.get("error") or data.get("errors")
            if err:
                return drf_error_text(err)
        return None

    def raise_body_error(self, data: Any, response: httpx.Response) -> None:
        """Errors reported inside a 2xx body (``{"error": ...}`` / ``{"errors": ...}``)."""
        err = self.body_error(data)
        if err is not None:
            raise self.provider.provider_error(f"{self.where(response)}: rejected: {err}", response)

    def confirmed(self, response: httpx.Response) -> dict[str, Any]:
        """The body of a send's success answer; anything but the documented one is an error.

        Seed 002 documents the (empty) model ``{}`` for the single and the bulk send, and no
        status: as a Django REST framework view [INF] that is 201 (a ``CreateAPIView``) or 200
        (a plain ``APIView``, which an empty model suggests), :data:`SEND_STATUSES`; both are
        the documented answer and neither carries a message id. Any other answer below 400 (a
        redirect, 202, 204, an empty, non-JSON or non-object body) does not confirm that
        Colony took the messages: ``MalformedResponse``, which the gateway records as
        ``unknown`` and never re-sends blindly (nor fails over).

        So is a 2xx whose body carries ``error``/``errors``: nothing documents an error inside a
        success answer, and a 201 says "created", so Colony may have sent the messages. Read as
        ``RequestRejected`` (not sent), the gateway would fail over and another provider would
        send them again: a duplicate.
        """
        data = self.body_or_marker(response)
        err = self.body_error(data) if response.is_success else None
        if err is not None:
            raise self.malformed(
                f"{self.where(response)}: HTTP {response.status_code} with an error in the body ({err}): "
                "Colony did not confirm the send and may have sent it (an error inside a success answer "
                "is not documented); not sent again", response,
            )
        if response.status_code not in SEND_STATUSES or not isinstance(data, dict):
            raise self.malformed(
                f"{self.where(response)}: expected HTTP 200 or 201 with a JSON object (seed 002), got HTTP "
                f"{response.status_code} with {self.describe(data)}: Colony did not confirm the send", response,
            )
        return data

    def deleted(self, response: httpx.Response, what: str, check: str) -> None:
        """A delete's answer: DRF's 204 (or a 2xx with an empty or ``{}`` body).

        A 2xx carrying ``error``/``errors`` is :class:`~smsgate.errors.UnknownOutcome`, as for
        :meth:`applied` (Colony may have deleted it: ``check``); another body is ``MalformedResponse``.
        """
        data = self.body_or_marker(response)
        self.raise_maybe_applied(data, response, what, check)
        if data is not None and not isinstance(data, dict):
            raise self.malformed(
                f"{self.where(response)}: expected HTTP 204 after the {what}, got HTTP "
                f"{response.status_code} with {self.describe(data)}", response,
            )

    def raise_maybe_applied(self, data: Any, response: httpx.Response, what: str, check: str) -> None:
        """An error inside the 2xx answer to an action (an import, a delete): undocumented, and
        Colony may have applied the action, so :class:`~smsgate.errors.UnknownOutcome` saying so
        and how to ``check`` before repeating it, never ``RequestRejected`` ("not applied")."""
        err = self.body_error(data)
        if err is not None:
            raise UnknownOutcome(
                f"{self.where(response)}: HTTP {response.status_code} with an error in the body ({err}): "
                f"Colony may have applied the {what} (an error inside a success answer is not documented); "
                f"check before repeating it: {check}",
                provider=self.instance, status_code=response.status_code, body=self.provider._safe_body(response),
            )

    def applied(self, response: httpx.Response, what: str, check: str) -> dict[str, Any]:
        """The body of an answer that seed 002 documents as ``{}`` (the vendor has acted).

        A 2xx whose body carries ``error``/``errors`` is :class:`~smsgate.errors.UnknownOutcome`,
        never ``RequestRejected``: nothing documents an error inside a success answer, and the
        vendor may have applied the action (as a send answered so may have gone out); the
        error says so and how to ``check`` before repeating it. A body that is not a JSON
        object is ``MalformedResponse`` saying the same.
        """
        data = self.body_or_marker(response)
        self.raise_maybe_applied(data, response, what, check)
        if not isinstance(data, dict):
            raise self.malformed(
                f"{self.where(response)}: expected a JSON object ({{}}) after the {what}, got "
                f"{self.describe(data)}; the {what} may have been applied: check before repeating it: {check}",
                response,
            )
        return data

    def contact_list_in(self, data: Mapping[str, Any], response: httpx.Response) -> ColonyContactList | None:
        """A contact list carried by an answer documented as ``{}`` (some accounts may send one)."""
        if data.get("id") is None:
            return None
        return self.parse(ColonyContactList, dict(data), self.where(response), response)

    @staticmethod
    def item_errors(response: httpx.Response, n: int) -> list[Any] | None:
        """The per-item errors of a 400 to a bulk request (DRF ``many=True``), if it lists ``n``."""
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            return None
        if (isinstance(data, list) and len(data) == n and any(data)
                and all(isinstance(item, dict) for item in data)):
            return data
        return None

    # ===================================================================== paging
    def paged(self, cls: type[M], key: str, params: Mapping[str, Any] | None = None,
              **path_values: object) -> Paged[M]:
        """A listing of endpoint ``key`` (array or DRF page), ``?page_size=`` when configured."""
        query: dict[str, Any] = dict(params or {})
        if self.opts.page_size is not None:
            query.setdefault("page_size", self.opts.page_size)
        first = self.provider.request("GET", self.path(key, **path_values), params=query)

        def parse(request: httpx.Request, response: httpx.Response) -> Page[M]:
            return self.page(cls, request, response)

        return Paged(self.provider, first, parse)

    def page(self, cls: type[M], request: httpx.Request, response: httpx.Response) -> Page[M]:
        """Read one listing page: a plain array or DRF ``{count, next, previous, results}``."""
        where = f"{request_where(request)}"
        try:
            listing = wire.parse_listing(self.body(response), where)
        except MalformedResponse as exc:
            raise self.malformed(str(exc), response) from None
        items = [self.parse(cls, item, f"{where}: item {i}", response) for i, item in enumerate(listing.items)]
        next_url = listing.next
        next_request = None
        if next_url:
            if not isinstance(next_url, str):
                raise self.malformed(f"{where}: 'next' is not a URL: {next_url!r}", response)
            # DRF builds 'next' from the Host header it saw: behind a proxy that can be an
            # internal host or plain http. Keep its path and query, on our base URL's origin.
            base = httpx.URL(self.provider.base_url)
            try:
                url = request.url.join(next_url).copy_with(scheme=base.scheme, host=base.host, port=base.port)
            except (httpx.InvalidURL, ValueError) as exc:  # control characters, a bad host or port...
                raise self.malformed(f"{where}: 'next' is not a valid URL ({exc}): {next_url!r}", response) from None
            if url == request.url:
                raise self.malformed(f"{where}: 'next' points at the same page", response)
            try:
                next_request = self.provider.request("GET", str(url))
            except (httpx.InvalidURL, ValueError) as exc:
                raise self.malformed(f"{where}: 'next' is not a valid URL ({exc}): {next_url!r}", response) from None
        return Page(items, next_request, listing.total)

    # ======================================================================= auth
    def token_request(self, grant: Mapping[str, str], client_id: str, client_secret: str) -> httpx.Request:
        """``POST token`` (form body): the password or refresh grant [DOC]. Not authenticated."""
        data = {"client_id": client_id, "client_secret": client_secret, **grant}
        return self.provider.request("POST", self.path("token"), data=data, idempotent=True)

    def token_refused(self, response: httpx.Response) -> bool:
        """True if a token answer carries an OAuth2 ``error`` and no ``access_token``."""
        data = self.body(response)
        return isinstance(data, dict) and bool(data.get("error")) and not data.get("access_token")

    def read_token(self, response: httpx.Response) -> TokenGrant | None:
        """The token of a token answer; None when it has no ``access_token`` (see :meth:`token_refused`).

        A ``token_type`` other than ``bearer`` is :class:`MalformedResponse`; an
        ``expires_in`` that is missing, NaN or not positive is ``None`` (rely on 401).
        """
        data = self.body(response)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return None
        assert isinstance(data, dict)
        kind = data.get("token_type")
        if isinstance(kind, str) and kind and kind.lower() != "bearer":
            raise self.malformed(f"{self.where(response)}: unsupported token_type {kind!r}", response)
        refresh = data.get("refresh_token")
        try:
            life: float | None = float(data.get("expires_in"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            life = None
        if life is not None and (life != life or life <= 0):
            life = None
        scope = data.get("scope")
        return TokenGrant(token, refresh if isinstance(refresh, str) and refresh else None, life,
                          scope.strip() if isinstance(scope, str) else None)

    # =================================================================== messages
    def send_message(self, entry: Mapping[str, Any]) -> Operation[dict[str, Any]]:
        """``POST message`` ``{destination, message, campaign_pk?}``: Colony's body (``{}``, HTTP 200/201)."""
        response = yield from self.send_message_answer(entry)
        return self.confirmed(response)

    def send_message_answer(self, entry: Mapping[str, Any]) -> Operation[httpx.Response]:
        """``POST message``, the answer returned once :meth:`confirmed` has read it (its status is
        the send's ``raw_status``)."""
        response = yield from self.call("POST", "message", json=dict(entry))
        self.confirmed(response)
        return response

    def send_bulk(self, entries: Sequence[Mapping[str, Any]]) -> Operation[dict[str, Any]]:
        """``POST message_bulk`` with a JSON array of entries: Colony's body (``{}``, HTTP 200/201)."""
        response = yield from self.call("POST", "message_bulk", json=[dict(e) for e in entries])
        return self.confirmed(response)

    def send_bulk_answer(self, entries: Sequence[Mapping[str, Any]]) -> Operation[httpx.Response]:
        """``POST message_bulk`` returning the raw answer, 4xx included (per-item errors are read
        by :meth:`item_errors`; anything else goes through :meth:`confirmed`)."""
        request = self.provider.request("POST", self.path("message_bulk"), json=[dict(e) for e in entries])
        return (yield from self.provider.call(request))

    # =================================================================== opt-outs
    def optouts(self, originator: str | None = None) -> Paged[ColonyOptOut]:
        """``GET optouts`` (``?originator=`` digits when given) [INF]."""
        return self.paged(ColonyOptOut, "optouts", {"originator": originator} if originator else None)

    def optouts_for(self, originator: str) -> Paged[ColonyOptOut]:
        """``GET optout_filter?originator=27...`` [INF]."""
        return self.paged(ColonyOptOut, "optout_filter", {"originator": originator})

    def create_optout(self, originator: str, reason: str) -> Operation[None]:
        """``POST optout_create`` ``{originator, reason}`` [INF: not documented]."""
        yield from self.call("POST", "optout_create", json={"originator": originator, "reason": reason})

    def overwrite_optout(self, optout_id: int) -> Operation[ColonyOptOut | None]:
        """``POST optout_overwrite``; the opt-out when Colony answers with it."""
        response = yield from self.call("POST", "optout_overwrite", path_values={"id": optout_id}, json={})
        data = self.body(response)
        if isinstance(data, dict) and "id" in data and "originator" in data:
            return self.parse(ColonyOptOut, data, self.where(response), response)
        return None

    # ============================================================== contact lists
    def contact_lists(self) -> Paged[ColonyContactList]:
        """``GET contactlists`` [DOC]."""
        return self.paged(ColonyContactList, "contactlists")

    def add_contact_list(self, body: Mapping[str, Any]) -> Operation[ColonyContactList]:
        """``POST contactlists`` ``{title, saved_query?}`` [DOC]."""
        response = yield from self.call("POST", "contactlists", json=dict(body))
        return self.model(ColonyContactList, response)

    def get_contact_list(self, list_id: int) -> Operation[ColonyContactList]:
        """``GET contactlist`` [INF]."""
        response = yield from self.call("GET", "contactlist", path_values={"id": list_id})
        return self.model(ColonyContactList, response)

    def update_contact_list(self, list_id: int, body: Mapping[str, Any]) -> Operation[ColonyContactList]:
        """``PATCH contactlist`` with the fields to change [INF]."""
        response = yield from self.call("PATCH", "contactlist", path_values={"id": list_id}, json=dict(body))
        return self.model(ColonyContactList, response)

    def delete_contact_list(self, list_id: int) -> Operation[None]:
        """``DELETE contactlist_delete`` [INF]."""
        response = yield from self.call("DELETE", "contactlist_delete", path_values={"id": list_id})
        self.deleted(response, f"deletion of contact list {list_id}",
                     f"get_contact_list({list_id}) raises ResourceNotFound once it is deleted")

    def delete_contact_lists(self, ids: Sequence[int]) -> Operation[None]:
        """``DELETE contactlists_delete`` ``{"ids": [...]}`` [INF: path and body not published]."""
        response = yield from self.call("DELETE", "contactlists_delete", json={"ids": list(ids)})
        self.deleted(response, "deletion of contact lists " + ", ".join(map(str, ids)),
                     "get_contact_list(id) raises ResourceNotFound for each list deleted")

    def import_contact_list(self, title: str, file: bytes | str, filename: str) -> Operation[httpx.Response]:
        """``POST contactlist_import`` (multipart ``title`` + ``file``); Colony answers ``{}``."""
        return (yield from self.call(
            "POST", "contactlist_import", data={"title": title},
            files={"file": (filename, _bytes(file), "text/csv")},
        ))

    def import_contacts(self, list_id: int, file: bytes | str, filename: str) -> Operation[httpx.Response]:
        """``POST contactlist_import_into`` (multipart ``file``); Colony answers ``{}``."""
        return (yield from self.call(
            "POST", "contactlist_import_into", path_values={"id": list_id},
            files={"file": (filename, _bytes(file), "text/csv")},
        ))

    def refresh_contact_list(self, list_id: int) -> Operation[httpx.Response]:
        """``GET contactlist_refresh``: re-run the saved query; Colony answers ``{}``."""
        return (yield from self.call("GET", "contactlist_refresh", path_values={"id": list_id}))

    def generate_contact_list(self, body: Mapping[str, Any]) -> Operation[dict[str, Any]]:
        """``POST contactlist_generate`` [DOC]: launch the task filling a list."""
        response = yield from self.call("POST", "contactlist_generate", json=dict(body))
        return self.json_object(response)

    # =================================================================== contacts
    def contacts(self, params: Mapping[str, Any] | None = None) -> Paged[ColonyContact]:
        """``GET contacts`` (``?contact_list=<id>`` [INF])."""
        return self.paged(ColonyContact, "contacts", params)

    def add_contacts(self, bodies: Sequence[Mapping[str, Any]]) -> Operation[list[ColonyContact]]:
        """``POST contacts`` with a JSON array (batch create [DOC]); the created contacts if listed."""
        response = yield from self.call("POST", "contacts", json=[dict(b) for b in bodies])
        data = self.body(response)
        if not isinstance(data, list):
            return []
        where = self.where(response)
        return [self.parse(ColonyContact, d, f"{where}: item {i}", response) for i, d in enumerate(data)]

    def get_contact(self, contact_id: int) -> Operation[ColonyContact]:
        """``GET contact``."""
        response = yield from self.call("GET", "contact", path_values={"id": contact_id})
        return self.model(ColonyContact, response)

    def update_contact(self, contact_id: int, body: Mapping[str, Any]) -> Operation[ColonyContact]:
        """``PATCH contact``."""
        response = yield from self.call("PATCH", "contact", path_values={"id": contact_id}, json=dict(body))
        return self.model(ColonyContact, response)

    def delete_contact(self, contact_id: int) -> Operation[None]:
        """``DELETE contact``."""
        response = yield from self.call("DELETE", "contact", path_values={"id": contact_id})
        self.deleted(response, f"deletion of contact {contact_id}",
                     f"get_contact({contact_id}) raises ResourceNotFound once it is deleted")

    # ==================================================================== company
    def get_company(self) -> Operation[dict[str, Any]]:
        """``GET company`` [DOC] (no field list published: a dict)."""
        response = yield from self.call("GET", "company")
        return self.json_object(response)

    def update_company(self, fields: Mapping[str, Any], replace: bool) -> Operation[dict[str, Any]]:
        """``PATCH company`` (``PUT`` with ``replace``)."""
        response = yield from self.call("PUT" if replace else "PATCH", "company", json=dict(fields))
        return self.json_object(response)

    # ================================================================ deployments
    def deployments(self) -> Paged[ColonyDeployment]:
        """``GET deployments`` [INF]."""
        return self.paged(ColonyDeployment, "deployments")

    def get_deployment(self, deployment_id: int) -> Operation[ColonyDeployment]:
        """``GET deployment`` [INF]."""
        response = yield from self.call("GET", "deployment", path_values={"id": deployment_id})
        return self.model(ColonyDeployment, response)

    def update_deployment(self, deployment_id: int, body: Mapping[str, Any]) -> Operation[ColonyDeployment]:
        """``PATCH deployment`` with the fields to change [INF]."""
        response = yield from self.call("PATCH", "deployment", path_values={"id": deployment_id}, json=dict(body))
        return self.model(ColonyDeployment, response)

    def delete_deployment(self, deployment_id: int) -> Operation[None]:
        """``DELETE deployment`` (204 [INF])."""
        response = yield from self.call("DELETE", "deployment", path_values={"id": deployment_id})
        self.deleted(response, f"deletion of deployment {deployment_id}",
                     f"get_deployment({deployment_id}) raises ResourceNotFound once it is deleted")

    def deployment_fields(
        self, title: str, send_date: datetime | None, marketing: bool | None, optout: bool | None,
        linked_campaign: int | None, dispatch: int | None,
    ) -> dict[str, Any]:
        """The deployment model's fields for an import, with the options' defaults."""
        body: dict[str, Any] = {
            "title": title,
            "marketing": self.opts.marketing if marketing is None else marketing,
            "optout": self.opts.optout if optout is None else optout,
        }
        if send_date is not None:
            body["send_date"] = send_date.isoformat()
        if linked_campaign is not None:
            body["linked_campaign"] = linked_campaign
        dispatch = self.opts.dispatch if dispatch is None else dispatch
        if dispatch is not None:
            body["dispatch"] = dispatch
        return body

    def import_deployment(self, key: str, fields: Mapping[str, Any], file: bytes | str, filename: str,
                          **path_values: object) -> Operation[ColonyDeployment]:
        """``POST`` a deployment import (``deployment_import``, ``deployment_import_numbers`` or
        ``deployment_import_into``): form ``fields`` plus the CSV as multipart ``file``."""
        response = yield from self.call(
            "POST", key, path_values=path_values, data=_form(fields) if fields else None,
            files={"file": (filename, _bytes(file), "text/csv")},
        )
        return self.model(ColonyDeployment, response)

    def generate_deployment_report(self, deployment_id: int) -> Operation[dict[str, Any]]:
        """``POST deployment_report``: build a report into the filebox."""
        response = yield from self.call("POST", "deployment_report", path_values={"id": deployment_id}, json={})
        return self.json_object(response)

    # ==================================================================== collate
    def collate_campaigns(self) -> Paged[ColonyCollateCampaign]:
        """``GET /collate/campaigns/`` [DOC]."""
        return self.paged(ColonyCollateCampaign, "collate_campaigns")

    def get_collate_campaign(self, campaign_id: int) -> Operation[ColonyCollateCampaign]:
        """``GET collate_campaign`` [INF]."""
        response = yield from self.call("GET", "collate_campaign", path_values={"id": campaign_id})
        return self.model(ColonyCollateCampaign, response)

    def inbound_messages(self, params: Mapping[str, Any] | None) -> Paged[ColonyInboundMessage]:
        """``GET /collate/campaigns/message/`` [DOC] (filter names [INF])."""
        return self.paged(ColonyInboundMessage, "inbound_messages", params)

    def get_inbound_message(self, message_id: int) -> Operation[ColonyInboundMessage]:
        """``GET inbound_message`` [INF]."""
        response = yield from self.call("GET", "inbound_message", path_values={"id": message_id})
        return self.model(ColonyInboundMessage, response)

    # ================================================================= statistics
    def deployment_stats(self, period: str, deployment: int | None = None) -> Paged[ColonyStat]:
        """``GET deployment_stats`` for a period key (``?deployment=`` when given)."""
        params = {"deployment": deployment} if deployment is not None else None
        return self.paged(ColonyStat, "deployment_stats", params, period=period)

    def get_deployment_stat(self, period: str, stat_id: int) -> Operation[ColonyStat]:
        """``GET deployment_stat``."""
        response = yield from self.call("GET", "deployment_stat", path_values={"period": period, "id": stat_id})
        return self.model(ColonyStat, response)
