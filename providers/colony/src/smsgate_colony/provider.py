"""The Colony (Tritech Media) adapter: smsgate's neutral operations mapped onto Colony's API.

Auth is an OAuth2 *password grant* at ``/oauth2/access_token/``; the bearer token is
cached on the provider instance (in a holder whose repr redacts it), refreshed with the
``refresh_token`` grant shortly before it expires, and obtained afresh (then the call
retried once) after a 401. Token fetches are ordinary ``yield`` s inside whichever
operation needs them.

The endpoints themselves, their answers and page walking are :mod:`smsgate_colony.api`;
payloads and status maps :mod:`smsgate_colony.wire`. This module reads top to bottom:
construction and auth, sending, opt-outs and inbound, contact lists and contacts,
deployments (native campaigns), collate, statistics. Vendor operations a user may call
directly (``deployments()``, ``import_contact_list_csv()`` ...) are kept here by name and
map one to one onto :class:`~smsgate_colony.api.ColonyApi`. Most paths are not published
and are configurable (``options.paths``); see ``docs/providers/colony.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar, cast

import httpx
from pydantic import BaseModel

from smsgate import phone as phonelib
from smsgate.errors import AuthFailed, ConfigError, InvalidPhoneNumber, ValidationError, redact
from smsgate.models import (
    Campaign,
    Contact,
    ContactList,
    InboundMessage,
    OptOut,
    OutboundMessage,
    ProviderCheck,
    SendResult,
    Stats,
    Status,
    WebhookEvents,
)
from smsgate.provider import Capabilities, Operation, Paged, Provider, ProviderSettings, is_auth_request
from smsgate_colony import wire
from smsgate_colony.api import ColonyApi, OAuthToken, period_key
from smsgate_colony.inbound import inbound_from_collate, parse_inbound_webhook
from smsgate_colony.options import ColonyOptions
from smsgate_colony.wire import (
    DEFAULT_DEPLOYMENT_STATUSES,
    ColonyCollateCampaign,
    ColonyContact,
    ColonyContactList,
    ColonyDeployment,
    ColonyInboundMessage,
    ColonyOptOut,
    ColonyStat,
    credits_for,
    deployment_csv,
    deployment_state,
    digits,
    drf_error_text,
)

__all__ = ["CREDENTIAL_KEYS", "ColonyProvider"]

log = logging.getLogger("smsgate.colony")

T = TypeVar("T")

#: Credentials the OAuth2 password grant needs.
CREDENTIAL_KEYS = ("client_id", "client_secret", "username", "password")

#: Credit "currency" used when no ``price_per_segment`` is configured.
CREDITS = "credits"


class ColonyProvider(Provider):
    """Adapter for Colony's REST API (contact lists, deployments, messages, opt-outs)."""

    name = "colony"
    default_base_url = "https://api.colonyhq.com"
    capabilities = Capabilities(
        send=True,
        bulk=True,
        max_batch=100,
        native_campaigns=True,
        contact_lists=True,
        optout_sync=True,
        statistics=True,
    )
    options_model: ClassVar[type[BaseModel] | None] = ColonyOptions
    #: the OAuth2 client and account: every one a credential.
    secret_names: ClassVar[frozenset[str]] = Provider.secret_names | {"client_id", "username"}
    uses_tokens = True
    #: ``provider_options["campaign_pk"]``: the Colony campaign a message is filed under (else the instance's)
    send_options: ClassVar[frozenset[str]] = frozenset({"campaign_pk"})

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        missing = [k for k in CREDENTIAL_KEYS if not settings.secret(k)]
        if missing:
            raise ConfigError(
                f"provider {self.instance_name!r} (colony): missing credentials {', '.join(missing)}; "
                f"the OAuth2 password grant needs {', '.join(CREDENTIAL_KEYS)}"
            )
        self.opts = cast(ColonyOptions, self.options)
        self.api = ColonyApi(self, self.opts)
        self.statuses = {**DEFAULT_DEPLOYMENT_STATUSES, **self.opts.deployment_statuses}
        #: Monotonic clock used for token expiry (replaceable in tests).
        self.clock: Callable[[], float] = time.monotonic
        self.__tokens = OAuthToken()

    # ================================================================ paths, errors
    @property
    def paths(self) -> dict[str, str]:
        """Every endpoint path by key (defaults with ``options.paths`` applied)."""
        return self.api.paths

    def path(self, key: str, **values: object) -> str:
        """The path of endpoint ``key`` with its placeholders filled in (URL-quoted)."""
        return self.api.path(key, **values)

    def error_message(self, response: httpx.Response) -> str:
        """Colony's error text: DRF ``detail`` / field errors, or OAuth2 ``error``."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return response.text[:200] or response.reason_phrase
        return drf_error_text(body) or response.reason_phrase

    def secrets(self) -> list[str]:
        """The credentials and the OAuth2 tokens held, so errors can redact them."""
        return [*super().secrets(), *self.__tokens.values()]

    def raise_for_status(self, response: httpx.Response) -> None:
        """The typed error of a non-2xx answer; a 403 to a call made with a token names the
        token's scope.

        Colony's token answer states the scope it granted (``"read"`` in its docs [DOC]) and no
        endpoint's needed scope is published: under DRF with django-oauth2-provider [INF] a
        read-only token is refused a write with 403 ``You do not have permission to perform
        this action.`` The :class:`~smsgate.errors.AuthFailed` says so, naming the scope
        granted and ``options.scope``, which asks for another one.
        """
        if response.status_code == 403 and not is_auth_request(response.request):
            tokens = self.__tokens
            granted = tokens.scope
            msg = self.safe_error_message(response)
            wanted = "'write'" if response.request.method not in ("GET", "HEAD", "OPTIONS") else "'read'"
            held = f"scope {granted!r}" if granted is not None else "no scope stated in the token answer"
            asked = f" (options.scope = {self.opts.scope!r} was asked for)" if self.opts.scope else ""
            raise AuthFailed(
                f"{self.api.where(response)}: permission denied: {msg}; the OAuth2 token was granted {held}"
                f"{asked}: Colony does not publish the scope each endpoint needs, and a "
                f"{response.request.method} likely needs {wanted} [INF]: set options.scope (e.g. "
                f"\"read write\", sent with the password grant) or ask Colony to grant it",
                provider=self.instance_name, status_code=response.status_code, body=self._safe_body(response),
            )
        super().raise_for_status(response)

    # ========================================================================= auth
    # The token lives in a private OAuthToken (its repr redacts it); these properties
    # keep the attribute names tests and subclasses use without storing plain strings.
    @property
    def _token(self) -> str | None:
        return self.__tokens.access

    @_token.setter
    def _token(self, value: str | None) -> None:
        self.__tokens.access = value

    @property
    def _refresh_token(self) -> str | None:
        return self.__tokens.refresh

    @property
    def _expires_at(self) -> float | None:
        return self.__tokens.expires_at

    def authenticate(self, request: httpx.Request) -> Operation[None]:
        """Add ``Authorization: Bearer``; obtains or refreshes the token when needed."""
        tokens = self.__tokens
        if tokens.access is None or (tokens.expires_at is not None and self.clock() >= tokens.expires_at):
            yield from self.obtain_token()
        request.headers["Authorization"] = f"Bearer {tokens.access}"

    def invalidate_auth(self) -> None:
        """Forget the cached tokens (after a 401): the next call runs the password grant."""
        self.__tokens.clear()

    def obtain_token(self) -> Operation[str]:
        """Refresh the access token (``refresh_token`` grant) or obtain one (password grant)."""
        client = (self.settings.secret("client_id") or "", self.settings.secret("client_secret") or "")
        refresh = self.__tokens.refresh
        if refresh:
            response = yield self.api.token_request({"grant_type": "refresh_token", "refresh_token": refresh}, *client)
            if response.is_success and self._store_token(response, fallback=True):
                return cast(str, self.__tokens.access)
            if response.status_code not in (200, 201, 400, 401, 403):
                self.raise_for_status(response)
            log.debug("colony %s: refresh grant refused; using the password grant", self.instance_name)
            self.invalidate_auth()
        grant = {
            "grant_type": "password",
            "username": self.settings.secret("username") or "",
            "password": self.settings.secret("password") or "",
        }
        if self.opts.scope is not None:
            grant["scope"] = self.opts.scope
        response = yield self.api.token_request(grant, *client)
        if not response.is_success:
            if response.status_code in (400, 401, 403):
                raise self._auth_failed(response)
            self.raise_for_status(response)
        self._store_token(response, fallback=False)
        return cast(str, self.__tokens.access)

    def _auth_failed(self, response: httpx.Response) -> AuthFailed:
        """The token endpoint's refusal: of the credentials, or (OAuth2 ``invalid_scope``) of the
        scope ``options.scope`` asked for, named with the fix."""
        msg = redact(self.error_message(response), self.secrets())
        body = self.api.body_or_marker(response)  # a body that is not JSON is still AuthFailed
        if isinstance(body, dict) and body.get("error") == "invalid_scope" and self.opts.scope is not None:
            what = (f"refused the scope asked for, options.scope = {self.opts.scope!r} ({msg}): OAuth2 scopes "
                    'are separated by spaces, e.g. "read write"; leave options.scope out to be granted '
                    "the account's default scope")
        else:
            what = f"refused the credentials: {msg}"
        return AuthFailed(
            f"{self.api.where(response)}: the token endpoint {what}",
            provider=self.instance_name,
            status_code=response.status_code,
            body=self._safe_body(response),
        )

    def _store_token(self, response: httpx.Response, *, fallback: bool) -> bool:
        """Cache the token from a token response; False (with ``fallback``) if it has none."""
        refused = self.api.token_refused(response)
        grant = None if refused else self.api.read_token(response)
        if grant is None:
            if fallback:
                return False
            if refused:
                raise self._auth_failed(response)
            raise self.api.malformed(f"{self.api.where(response)}: token response has no access_token", response)
        tokens = self.__tokens
        tokens.access, tokens.refresh, tokens.scope = grant.access, grant.refresh, grant.scope
        if grant.expires_in is None:
            tokens.expires_at = None
        else:
            lead = min(self.opts.token_refresh_margin, grant.expires_in * 0.1)
            tokens.expires_at = self.clock() + grant.expires_in - lead
        return True

    # ===================================================================== sending
    def _cost(self, credits: int | None) -> tuple[Decimal | None, str | None]:
        """Credits as cost: money when ``price_per_segment`` is set, else plain credits."""
        if credits is None:
            return None, None
        price = self.settings.price_per_segment
        if price is not None:
            return Decimal(str(price)) * credits, self.settings.currency
        return Decimal(credits), CREDITS

    def _entry(self, msg: OutboundMessage) -> dict[str, Any]:
        """The vendor entry ``{destination, message, campaign_pk?}`` of a neutral message."""
        if msg.has_media:
            raise self.unsupported("media attachments", "Colony sends text only")
        # a blank text is left for Colony to reject (400 "This field may not be blank.")
        entry: dict[str, Any] = {"destination": digits(msg.to), "message": msg.text}
        raw = msg.provider_options.get("campaign_pk", self.opts.campaign_pk)
        if raw is not None:
            try:
                entry["campaign_pk"] = int(raw)
            except (TypeError, ValueError):
                raise ValidationError(
                    "must be the integer primary key of a Colony campaign", field="campaign_pk", value=raw
                ) from None
        return entry

    def _accepted(self, msg: OutboundMessage, status_code: int) -> SendResult:
        credits = credits_for(msg.text)
        cost, currency = self._cost(credits)
        return SendResult(
            message_id=msg.message_id, to=msg.to, status=Status.SUBMITTED,
            raw_status=f"HTTP {status_code}", provider=self.instance_name,
            segments=credits, cost=cost, currency=currency,
        )

    def send_message(
        self, destination: str, message: str, campaign_pk: int | None = None
    ) -> Operation[dict[str, Any]]:
        """Vendor call: send one message (``destination`` E.164); returns Colony's body (``{}`` in seed 002)."""
        entry: dict[str, Any] = {"destination": digits(destination), "message": message}
        if campaign_pk is not None:
            entry["campaign_pk"] = campaign_pk
        return (yield from self.api.send_message(entry))

    def send_bulk(self, entries: Sequence[Mapping[str, Any]]) -> Operation[dict[str, Any]]:
        """Vendor call: bulk send ``[{"destination", "message", "campaign_pk"?}]`` (E.164 destinations).

        Returns Colony's body (``{}`` in seed 002); an answer other than 200 or 201 with a JSON
        object is ``MalformedResponse``.
        """
        body = [{**e, "destination": digits(str(e.get("destination", "")), f"entry {i}")}
                for i, e in enumerate(entries)]
        return (yield from self.api.send_bulk(body))

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Send one message (``POST`` ``message``, ``destination``, ``campaign_pk``)."""
        response = yield from self.api.send_message_answer(self._entry(msg))
        return self._accepted(msg, response.status_code)

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        """Bulk send: one request (a JSON array); one result per message, in order.

        Colony validates the array as a whole (DRF ``many=True``): a 400 answered with a
        list of per-item errors means nothing was sent, so the items with errors come back
        ``rejected`` and the others ``resend=True`` (the gateway sends them again).
        """
        results: list[SendResult | None] = [None] * len(msgs)
        entries: list[tuple[int, dict[str, Any]]] = []
        for i, m in enumerate(msgs):
            try:
                entries.append((i, self._entry(m)))
            except ValidationError as exc:  # e.g. a bad campaign_pk: this message only
                results[i] = SendResult(
                    message_id=m.message_id, to=m.to, status=Status.REJECTED, provider=self.instance_name,
                    error=str(exc), error_code=type(exc).__name__,
                )
        if entries:
            response = yield from self.api.send_bulk_answer([entry for _, entry in entries])
            errors = self.api.item_errors(response, len(entries)) if response.status_code == 400 else None
            if errors is not None:
                for (i, _), err in zip(entries, errors, strict=True):
                    results[i] = SendResult(
                        message_id=msgs[i].message_id, to=msgs[i].to, status=Status.REJECTED,
                        raw_status=f"HTTP {response.status_code}", provider=self.instance_name,
                        error=drf_error_text(err) or "rejected", error_code="invalid",
                    ) if err else SendResult(
                        message_id=msgs[i].message_id, to=msgs[i].to, status=Status.FAILED,
                        provider=self.instance_name, resend=True, error_code="refused_with_others",
                        error="not processed: Colony refused the whole request because of other items")
            else:
                self.raise_for_status(response)
                self.api.confirmed(response)
                for i, _ in entries:
                    results[i] = self._accepted(msgs[i], response.status_code)
        return [r for r in results if r is not None]

    # ========================================================= opt-outs and inbound
    def optouts(self, originator: str | None = None) -> Paged[ColonyOptOut]:
        """Opt-outs recorded at Colony (overwritten ones included), optionally for one E.164 number."""
        return self.api.optouts(digits(originator) if originator else None)

    def optouts_for(self, phone: str) -> Paged[ColonyOptOut]:
        """Opt-outs filtered by originator (``?originator=27...``) on the filter endpoint."""
        return self.api.optouts_for(digits(phone))

    def overwrite_optout(self, optout_id: int) -> Operation[ColonyOptOut | None]:
        """Overwrite (lift) one opt-out; returns it when Colony answers with it."""
        return (yield from self.api.overwrite_optout(optout_id))

    def to_optout(self, record: ColonyOptOut) -> OptOut:
        """The neutral opt-out of a Colony record (E.164 when the originator is a valid number)."""
        try:
            phone = phonelib.normalize(record.originator, self.opts.region)
        except InvalidPhoneNumber:
            phone = record.originator  # the gateway reports and skips it
        kw: dict[str, Any] = {}
        if record.date_opted_out is not None:
            kw["created_at"] = record.date_opted_out
        return OptOut(phone=phone, reason=record.reason, source=f"provider:{self.instance_name}", **kw)

    def list_optouts(self) -> Operation[list[OptOut]]:
        """Every active (not overwritten) opt-out at Colony, all pages."""
        records = yield from self.optouts().collect()
        return [self.to_optout(r) for r in records if r.active]

    def add_optout(self, phone: str, reason: str | None = None) -> Operation[None]:
        """Record an opt-out at Colony (only with ``allow_optout_create``: not documented)."""
        if not self.opts.allow_optout_create:
            raise self.unsupported(
                "opt-out push",
                "Colony's API documents listing and overwriting opt-outs, not creating them "
                "(they come from recipients); set option allow_optout_create = true if your "
                "account accepts POST on the opt-out endpoint",
            )
        yield from self.api.create_optout(digits(phone), reason or "")

    def remove_optout(self, phone: str) -> Operation[None]:
        """Overwrite every active opt-out of ``phone`` at Colony (none: nothing to do)."""
        records = yield from self.optouts_for(phone).collect()
        for record in records:
            if record.active and self.to_optout(record).phone == phone:
                yield from self.overwrite_optout(record.id)

    def parse_events(self, headers: Mapping[str, str], body: bytes) -> WebhookEvents:
        """Collate inbound messages posted to the webhook app (Colony documents no
        webhook and no delivery reports; see :mod:`smsgate_colony.inbound`).
        The ``webhook_token`` credential is required."""
        self.check_webhook_token(headers)
        return parse_inbound_webhook(body, instance=self.instance_name, region=self.opts.region)

    # ================================================================ contact lists
    def contact_lists(self) -> Paged[ColonyContactList]:
        """The company's contact lists."""
        return self.api.contact_lists()

    def add_contact_list(self, title: str, saved_query: int | None = None) -> Operation[ColonyContactList]:
        """Create an (empty, or saved-query backed) contact list."""
        body: dict[str, Any] = {"title": title}
        if saved_query is not None:
            body["saved_query"] = saved_query
        return (yield from self.api.add_contact_list(body))

    def get_contact_list(self, list_id: int) -> Operation[ColonyContactList]:
        """One contact list."""
        return (yield from self.api.get_contact_list(list_id))

    def update_contact_list(
        self, list_id: int, *, title: str | None = None, saved_query: int | None = None,
        clear_saved_query: bool = False,
    ) -> Operation[ColonyContactList]:
        """Change a list's title and/or saved query (``PATCH``)."""
        body: dict[str, Any] = {}
        if title is not None:
            body["title"] = title
        if saved_query is not None:
            body["saved_query"] = saved_query
        elif clear_saved_query:
            body["saved_query"] = None
        if not body:
            raise ValidationError("nothing to update", field="title")
        return (yield from self.api.update_contact_list(list_id, body))

    def delete_contact_list(self, list_id: int) -> Operation[None]:
        """Delete a contact list."""
        yield from self.api.delete_contact_list(list_id)

    def delete_contact_lists(self, list_ids: Sequence[int]) -> Operation[None]:
        """Delete several contact lists in one request (seed 002: "delete contact lists").

        ``DELETE contactlists_delete`` with ``{"ids": [...]}`` [INF: path and body are not
        published]. The emulator deletes all or nothing: an unknown id is a 404
        (:class:`~smsgate.errors.ResourceNotFound`) and no list is deleted.
        """
        for i, value in enumerate(list_ids):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError("must be a contact list id (an integer)", field="list_ids",
                                      value=value, location=f"item {i}")
        if not list_ids:
            raise ValidationError("no contact list ids given", field="list_ids")
        yield from self.api.delete_contact_lists(list(list_ids))

    def find_contact_list(self, title: str) -> Operation[ColonyContactList | None]:
        """The newest contact list (highest id) titled ``title``, or None; walks every page."""
        records = yield from self.contact_lists().collect()
        matching = [r for r in records if r.title == title]
        if len(matching) > 1:
            log.warning("colony %s: %d contact lists are titled %r; taking the newest (id %s)",
                        self.instance_name, len(matching), title, max(r.id for r in matching))
        return max(matching, key=lambda r: r.id) if matching else None

    def import_contact_list_csv(
        self, title: str, file: bytes | str, filename: str = "contacts.csv"
    ) -> Operation[ColonyContactList]:
        """Create a contact list from a CSV upload (multipart field ``file``).

        Colony answers ``{}`` (seed 002): the new list is then found by its title (the
        newest list of that title, so keep titles unique). Post it once: if the list cannot
        be found afterwards, the error says so rather than inviting a second import. An error
        inside Colony's 2xx answer is :class:`~smsgate.errors.UnknownOutcome` (the list may
        have been created: look for it before importing again), never ``RequestRejected``.
        """
        response = yield from self.api.import_contact_list(title, file, filename)
        record = self.api.contact_list_in(self.api.applied(
            response, "contact list import", f"look for a list titled {title!r} with find_contact_list() or "
            "contact_lists() (the portal lists it too)"), response)
        if record is None:
            record = yield from self.find_contact_list(title)
        if record is None:
            raise self.api.malformed(
                f"{self.api.where(response)}: Colony accepted the import of contact list {title!r} but no list "
                "of that title is listed; it may still be being created: do not import it again, look "
                "for it with contact_lists()", response,
            )
        return record

    def import_contacts_csv(
        self, list_id: int, file: bytes | str, filename: str = "contacts.csv"
    ) -> Operation[ColonyContactList]:
        """Add the contacts of a CSV upload (field ``file``) to an existing list.

        Colony answers ``{}`` (seed 002); the list is then read back by its id. An error inside
        a 2xx answer is :class:`~smsgate.errors.UnknownOutcome` (the contacts may have been
        added: list them before importing again), never ``RequestRejected``.
        """
        response = yield from self.api.import_contacts(list_id, file, filename)
        record = self.api.contact_list_in(self.api.applied(
            response, "contact import", f"list the contacts of list {list_id} with contacts({list_id})"), response)
        return record if record is not None else (yield from self.get_contact_list(list_id))

    def refresh_contact_list(self, list_id: int) -> Operation[ColonyContactList]:
        """Re-run the saved query behind a list and repopulate it.

        Colony answers ``{}`` (seed 002); the list is then read back by its id. An error inside
        a 2xx answer is :class:`~smsgate.errors.UnknownOutcome` (the list may have been
        repopulated), never ``RequestRejected``.
        """
        response = yield from self.api.refresh_contact_list(list_id)
        record = self.api.contact_list_in(self.api.applied(
            response, "refresh", f"list the contacts of list {list_id} with contacts({list_id})"), response)
        return record if record is not None else (yield from self.get_contact_list(list_id))

    def generate_contact_list(self, list_id: int, saved_query: int | None = None) -> Operation[dict[str, Any]]:
        """Launch the task saving contacts (of ``saved_query`` or the list's own) into a list."""
        body: dict[str, Any] = {self.opts.contact_list_field: list_id}
        if saved_query is not None:
            body["saved_query"] = saved_query
        return (yield from self.api.generate_contact_list(body))

    def to_contact_list(self, record: ColonyContactList, size: int | None = None) -> ContactList:
        """The neutral view of a Colony contact list."""
        return ContactList(
            id=str(record.id), name=record.title or "", size=size, provider=self.instance_name,
            raw=record.raw(),
        )

    def create_contact_list(self, contact_list: ContactList, phones: Sequence[str]) -> Operation[ContactList]:
        """Create a list titled ``contact_list.name`` and add ``phones`` in batches."""
        record = yield from self.add_contact_list(contact_list.name)
        yield from self.add_contacts(record.id, phones)
        return self.to_contact_list(record, size=len(phones)).model_copy(
            update={"description": contact_list.description}
        )

    # ===================================================================== contacts
    def contacts(self, list_id: int | None = None) -> Paged[ColonyContact]:
        """Contacts, optionally of one list (``?contact_list=<id>`` [INF])."""
        return self.api.contacts({self.opts.contact_list_field: list_id} if list_id is not None else None)

    def _contact_body(self, list_id: int, item: str | Contact, i: int) -> dict[str, Any]:
        contact = Contact(phone=item) if isinstance(item, str) else item
        body: dict[str, Any] = dict(contact.fields)
        if contact.name is not None:
            body.setdefault("name", contact.name)
        body[self.opts.contact_list_field] = list_id
        body[self.opts.contact_phone_field] = digits(contact.phone, f"contact {i}")
        return body

    def add_contacts(self, list_id: int, contacts: Sequence[str | Contact]) -> Operation[list[ColonyContact]]:
        """Batch-create contacts (E.164 numbers or :class:`Contact`) in list ``list_id``."""
        bodies = [self._contact_body(list_id, c, i) for i, c in enumerate(contacts)]
        created: list[ColonyContact] = []
        size = self.opts.contact_batch_size
        for start in range(0, len(bodies), size):
            created.extend((yield from self.api.add_contacts(bodies[start : start + size])))
        return created

    def get_contact(self, contact_id: int) -> Operation[ColonyContact]:
        """One contact."""
        return (yield from self.api.get_contact(contact_id))

    def update_contact(self, contact_id: int, **fields: Any) -> Operation[ColonyContact]:
        """Change fields of a contact (``PATCH``); a ``phone`` keyword is given as E.164."""
        body = dict(fields)
        if "phone" in body:
            body[self.opts.contact_phone_field] = digits(str(body.pop("phone")))
        if not body:
            raise ValidationError("nothing to update", field="fields")
        return (yield from self.api.update_contact(contact_id, body))

    def delete_contact(self, contact_id: int) -> Operation[None]:
        """Delete a contact."""
        yield from self.api.delete_contact(contact_id)

    def to_contact(self, record: ColonyContact) -> Contact:
        """The neutral view of a Colony contact (E.164 phone when it is a valid number)."""
        raw = record.get(self.opts.contact_phone_field)
        phone = str(raw) if raw is not None else ""
        try:
            phone = phonelib.normalize(phone, self.opts.region)
        except InvalidPhoneNumber:
            pass
        skip = {self.opts.contact_phone_field, self.opts.contact_list_field, "id", "name"}
        extra = {k: str(v) for k, v in (record.model_extra or {}).items() if k not in skip and v is not None}
        name = record.get("name")
        return Contact(
            phone=phone, id=str(record.id) if record.id is not None else None,
            name=str(name) if name is not None else None, fields=extra,
        )

    def list_members(self, list_id: int) -> Operation[list[ColonyContact]]:
        """Every contact of list ``list_id``, each checked to name that list.

        The contacts listing is filtered with ``?contact_list=<id>`` [INF]; contacts of
        other lists (a server ignoring the filter) are dropped, and a contact that does
        not say which list it belongs to (field ``contact_list_field``) is
        ``MalformedResponse``: its membership cannot be told, so nothing is sent.
        """
        field = self.opts.contact_list_field
        members: list[ColonyContact] = []
        for record in (yield from self.contacts(list_id).collect()):
            value = record.get(field)
            if value is None:
                raise self.api.malformed(
                    f"GET {self.path('contacts')}: contact {record.id} has no {field!r} field, so the "
                    f"members of contact list {list_id} cannot be told from other contacts; set option "
                    "contact_list_field to the field Colony uses"
                )
            if str(value) == str(list_id):
                members.append(record)
        return members

    # ====================================================================== company
    def get_company(self) -> Operation[dict[str, Any]]:
        """The company's details (Colony publishes no field list: returned as a dict)."""
        return (yield from self.api.get_company())

    def update_company(self, *, replace: bool = False, **fields: Any) -> Operation[dict[str, Any]]:
        """Update company details (``PATCH``, or ``PUT`` with ``replace=True``)."""
        if not fields:
            raise ValidationError("nothing to update", field="fields")
        return (yield from self.api.update_company(fields, replace))

    # ========================================================= deployments (campaigns)
    def deployments(self) -> Paged[ColonyDeployment]:
        """The company's deployments."""
        return self.api.deployments()

    def get_deployment(self, deployment_id: int) -> Operation[ColonyDeployment]:
        """One deployment with its current status and credits."""
        return (yield from self.api.get_deployment(deployment_id))

    def _member_rows(self, list_id: int, members: Sequence[ColonyContact], message: str) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        for record in members:
            raw = record.get(self.opts.contact_phone_field)
            try:
                phone = phonelib.normalize(str(raw) if raw is not None else "", self.opts.region)
            except InvalidPhoneNumber as exc:
                raise InvalidPhoneNumber(
                    exc.reason, field=self.opts.contact_phone_field, value=raw,
                    location=f"contact {record.id} of contact list {list_id}",
                ) from None
            rows.append((phone, message))
        return rows

    def create_deployment(
        self,
        *,
        title: str,
        contact_list: int,
        message: str,
        send_date: datetime | None = None,
        marketing: bool | None = None,
        optout: bool | None = None,
        linked_campaign: int | None = None,
        dispatch: int | None = None,
    ) -> Operation[ColonyDeployment]:
        """Create a deployment sending ``message`` to a contact list (at ``send_date`` or now).

        Colony's published deployment model has no audience or message field (a server
        ignoring unknown fields would create an empty deployment that never sends), so
        the list's members are read (:meth:`list_members`) and uploaded as a
        ``destination,message`` CSV through the documented deployment import. A list
        without contacts is a ``ValidationError`` and nothing is created.
        """
        members = yield from self.list_members(contact_list)
        if not members:
            raise ValidationError(
                f"contact list {contact_list} has no contacts: nothing to deploy",
                field="contact_list", value=contact_list,
            )
        rows = self._member_rows(contact_list, members, message)
        record = yield from self.import_deployment_csv(
            deployment_csv(rows), title=title, send_date=send_date, marketing=marketing, optout=optout,
            linked_campaign=linked_campaign, dispatch=dispatch,
        )
        return record

    def update_deployment(
        self,
        deployment_id: int,
        *,
        title: str | None = None,
        send_date: datetime | None = None,
        marketing: bool | None = None,
        optout: bool | None = None,
        linked_campaign: int | None = None,
        dispatch: int | None = None,
    ) -> Operation[ColonyDeployment]:
        """Change a deployment not yet sent (``PATCH deployment``): only the fields given.

        The detail path and its verbs are [INF] (DRF detail: GET PUT PATCH DELETE). A
        deployment already sending is refused by Colony (``RequestRejected``).
        """
        body: dict[str, Any] = {}
        if title is not None:
            if not title.strip():
                raise ValidationError("may not be blank", field="title", value=title)
            body["title"] = title
        if send_date is not None:
            body["send_date"] = send_date.isoformat()
        for key, value in (("marketing", marketing), ("optout", optout)):
            if value is not None:
                body[key] = value
        for key, number in (("linked_campaign", linked_campaign), ("dispatch", dispatch)):
            if number is not None:
                body[key] = number
        if not body:
            raise ValidationError("nothing to update", field="deployment")
        return (yield from self.api.update_deployment(deployment_id, body))

    def delete_deployment(self, deployment_id: int) -> Operation[None]:
        """Delete a deployment not yet sent (``DELETE deployment``, 204 [INF])."""
        yield from self.api.delete_deployment(deployment_id)

    def import_deployment_csv(
        self, file: bytes | str, *, title: str, send_date: datetime | None = None,
        marketing: bool | None = None, optout: bool | None = None, linked_campaign: int | None = None,
        dispatch: int | None = None, filename: str = "deployment.csv",
    ) -> Operation[ColonyDeployment]:
        """Create a deployment from a CSV of ``destination,message`` rows (field ``file``)."""
        fields = self.api.deployment_fields(title, send_date, marketing, optout, linked_campaign, dispatch)
        return (yield from self.api.import_deployment("deployment_import", fields, file, filename))

    def import_deployment_numbers_csv(
        self, file: bytes | str, *, title: str, message: str, send_date: datetime | None = None,
        marketing: bool | None = None, optout: bool | None = None, linked_campaign: int | None = None,
        dispatch: int | None = None, filename: str = "numbers.csv",
    ) -> Operation[ColonyDeployment]:
        """Create a deployment sending one ``message`` to a CSV of ``destination`` numbers."""
        fields = self.api.deployment_fields(title, send_date, marketing, optout, linked_campaign, dispatch)
        fields["message"] = message
        return (yield from self.api.import_deployment("deployment_import_numbers", fields, file, filename))

    def import_deployment_rows_csv(
        self, deployment_id: int, file: bytes | str, filename: str = "deployment.csv"
    ) -> Operation[ColonyDeployment]:
        """Append ``destination,message`` rows from a CSV to a deployment not yet sent."""
        return (yield from self.api.import_deployment("deployment_import_into", {}, file, filename, id=deployment_id))

    def generate_deployment_report(self, deployment_id: int) -> Operation[dict[str, Any]]:
        """Ask Colony to build a deployment report and place it in the company/user filebox."""
        return (yield from self.api.generate_deployment_report(deployment_id))

    def to_campaign(self, record: ColonyDeployment, base: Campaign | None = None) -> Campaign:
        """The neutral campaign of a deployment (``base`` keeps text / audience); its cost
        (``total_credits``) in the unit a send's cost has (:meth:`_cost`)."""
        cost, currency = self._cost(record.total_credits)
        update: dict[str, Any] = {
            "id": str(record.id),
            "name": record.title or (base.name if base else ""),
            "status": deployment_state(record.status, record.error, self.statuses),
            "raw_status": str(record.status) if record.status is not None else None,
            "recipient_count": record.total_contacts,
            "cost": cost,
            "currency": currency,
            "provider": self.instance_name,
            "created_at": record.date_created,
            "start_at": record.send_date or (base.start_at if base else None),
            "raw": record.raw(),
        }
        return (base or Campaign()).model_copy(update=update)

    def create_campaign(self, campaign: Campaign) -> Operation[Campaign]:
        """Run a neutral campaign natively as a Colony deployment.

        Either way a ``destination,message`` CSV is uploaded to the deployment import
        (the documented way to give a deployment its recipients): with
        ``contact_list_id`` one row per member of that Colony list (the text as given),
        with ``contacts`` one row per contact (``{name}`` / field placeholders rendered). ``start_at`` becomes ``send_date``;
        ``provider_options`` may set ``marketing``, ``optout``, ``linked_campaign``, ``dispatch``.
        """
        if campaign.text is None:
            if campaign.template_id is not None:
                raise self.unsupported("templates", "give the campaign a text")
            raise ValidationError("a Colony deployment needs a message text", field="text")
        po = campaign.provider_options
        flags: dict[str, Any] = {
            "send_date": campaign.start_at,
            "marketing": wire.opt_bool(po, "marketing"),
            "optout": wire.opt_bool(po, "optout"),
            "linked_campaign": wire.opt_int(po, "linked_campaign"),
            "dispatch": wire.opt_int(po, "dispatch"),
        }
        title = campaign.name or "smsgate campaign"
        if campaign.contact_list_id is not None:
            try:
                list_id = int(campaign.contact_list_id)
            except ValueError:
                raise ValidationError(
                    "must be a Colony contact list id (an integer)",
                    field="contact_list_id", value=campaign.contact_list_id,
                ) from None
            record = yield from self.create_deployment(
                title=title, contact_list=list_id, message=campaign.text, **flags
            )
        elif campaign.contacts:
            rows = wire.personalised_rows(campaign.text, campaign.contacts)
            record = yield from self.import_deployment_csv(deployment_csv(rows), title=title, **flags)
        else:
            raise ValidationError(
                "a campaign needs a contact_list_id or contacts", field="contact_list_id"
            )
        return self.to_campaign(record, campaign)

    def get_campaign(self, campaign_id: str) -> Operation[Campaign]:
        """The deployment ``campaign_id`` as a neutral campaign."""
        try:
            did = int(campaign_id)
        except ValueError:
            raise ValidationError(
                "must be a Colony deployment id (an integer)", field="campaign_id", value=campaign_id
            ) from None
        record = yield from self.get_deployment(did)
        return self.to_campaign(record)

    # ================================================================ online check
    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """The password grant, then ``GET /collate/campaigns/`` (the vendor's own smoke test [DOC]).

        Colony's sends carry no sender ID, so there is none to check.
        """
        self.invalidate_auth()  # a fresh password grant: the credentials, not a cached token
        paged = self.collate_campaigns()
        yield from paged.fetch(paged.first)
        return ProviderCheck(endpoint=f"POST {self.path('token')}, GET {self.path('collate_campaigns')}",
                             sender_detail="Colony's sends carry no sender ID")

    # ====================================================================== collate
    def collate_campaigns(self) -> Paged[ColonyCollateCampaign]:
        """The company's collate campaigns (``GET /collate/campaigns/`` [DOC]).

        Their ``id`` s are what a sent message's ``campaign_pk`` (and a deployment's
        ``linked_campaign``) must name.
        """
        return self.api.collate_campaigns()

    def get_collate_campaign(self, campaign_id: int) -> Operation[ColonyCollateCampaign]:
        """One collate campaign (detail path [INF])."""
        return (yield from self.api.get_collate_campaign(campaign_id))

    def inbound_messages(
        self, *, campaign: int | None = None, originator: str | None = None
    ) -> Paged[ColonyInboundMessage]:
        """Messages received (replies), read-only: ``GET /collate/campaigns/message/`` [DOC].

        Optionally filtered by collate campaign id and by sender (E.164; sent as
        international digits); the filter parameter names are [INF]. Each item is read
        by :func:`smsgate_colony.wire.parse_inbound_message`.
        """
        params: dict[str, Any] = {}
        if campaign is not None:
            params["campaign"] = campaign
        if originator is not None:
            params["originator"] = digits(originator)
        return self.api.inbound_messages(params or None)

    def list_inbound(self) -> Operation[list[InboundMessage]]:
        """Every reply the collate message list holds, as neutral events (Colony has no inbound
        webhook: :meth:`smsgate.Tenant.poll_inbound` calls this and stores each event once)."""
        items = yield from self.inbound_messages().collect()
        return [inbound_from_collate(item.model_dump(mode="json"), instance=self.instance_name,
                                     region=self.opts.region, where=f"collate message {item.id}") for item in items]

    def get_inbound_message(self, message_id: int) -> Operation[ColonyInboundMessage]:
        """One received message (detail path [INF]; the vendor's "get and put a Message")."""
        return (yield from self.api.get_inbound_message(message_id))

    # =================================================================== statistics
    def deployment_stats(self, period: str = "daily", deployment: int | None = None) -> Paged[ColonyStat]:
        """Deployment statistics by ``hourly`` / ``daily`` / ``monthly`` / ``yearly`` period."""
        return self.api.deployment_stats(period_key(period), deployment)

    def get_deployment_stat(self, period: str, stat_id: int) -> Operation[ColonyStat]:
        """One statistics row."""
        return (yield from self.api.get_deployment_stat(period_key(period), stat_id))

    def statistics(self, **filters: Any) -> Operation[Stats]:
        """Neutral statistics from Colony's deployment stats.

        Filters: ``period`` (``hourly``/``daily``/``monthly``/``yearly``, default daily),
        ``deployment`` (id; ``campaign_id`` is accepted as the neutral alias), ``since`` / ``until`` (datetimes, on ``period_start``).
        ``sms_sent_count`` -> sent, ``sms_unsent_count`` -> failed,
        ``sms_optout_count`` -> opted_out, ``total`` -> submitted; email counts stay in ``raw``.
        """
        if "campaign_id" in filters:  # the neutral name for a provider-side campaign (a deployment here)
            filters = dict(filters)
            campaign_id = filters.pop("campaign_id")
            if filters.get("deployment") is not None and str(filters["deployment"]) != str(campaign_id):
                raise ValidationError(
                    "give campaign_id or deployment, not two different ones",
                    field="campaign_id", value=campaign_id,
                )
            filters["deployment"] = campaign_id
        unknown = set(filters) - {"period", "deployment", "since", "until"}
        if unknown:
            raise ValidationError(
                f"unknown statistics filter(s) {', '.join(sorted(unknown))}; "
                "use period, deployment, since, until", field=sorted(unknown)[0]
            )
        period = period_key(str(filters.get("period") or "daily"))
        deployment = wire.opt_int(filters, "deployment")
        since, until = wire.opt_when(filters, "since"), wire.opt_when(filters, "until")
        rows = yield from self.deployment_stats(period, deployment).collect()
        if since is not None or until is not None:
            rows = [r for r in rows if r.period_start is None or (
                (since is None or r.period_start >= since) and (until is None or r.period_start < until)
            )]
        return wire.stats_from_rows(rows, instance=self.instance_name, period=period, deployment=deployment)
