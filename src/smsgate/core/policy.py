"""One tenant's policy: what happens to a message before it is handed to a provider.

:class:`TenantPolicy` holds what every plan of a tenant needs (its configuration,
router, phone normaliser, provider adapters and plugin hooks) and the rules that
need no I/O: building a message (normalise the number with the tenant's region,
render the text or template, check it can be encoded), routing it (by prefix,
country, kind, weight and capability), the message as a given provider should receive it
(sender, template id), segments and cost, and the log records and updates of a
message's life. :meth:`TenantPolicy.prepare` is the one preparation plan for a
single send, a bulk send and a campaign chunk alike: opt-out check (one store
query per chunk), routing, and the log entries of messages refused before any
provider saw them.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError as PydanticValidationError

from smsgate import phone as phonelib
from smsgate import text as textlib
from smsgate.config import TenantConfig
from smsgate.core import hooks
from smsgate.core.steps import Log, Plan, Query
from smsgate.errors import (
    ConfigError,
    InvalidPhoneNumber,
    MalformedResponse,
    NoCapableProvider,
    NoRoute,
    NotFound,
    OptedOut,
    RecipientSuppressed,
    SmsgateError,
    TemplateError,
    UnknownOutcome,
    Unsupported,
    ValidationError,
    mask_phone,
    shown_value,
)
from smsgate.ids import new_id
from smsgate.keyhints import closest
from smsgate.keywords import ScopeRule
from smsgate.lifecycle import Status
from smsgate.models import (
    EVERY_SENDER,
    OPTED_OUT,
    UNSTORABLE,
    Attachment,
    Location,
    MessageRecord,
    OptOut,
    OutboundMessage,
    SendResult,
    Template,
    _storable_value,
    sender_problem,
    utcnow,
)
from smsgate.provider import Provider
from smsgate.routing import CandidateExplanation, Route, RouteExplanation, check_kind, share_of, weight_key
from smsgate.store.base import Claim, LogWrite, MessageUpdate, NewMessage
from smsgate.traffic.breaker import BreakerState
from smsgate.traffic.health import LimitState
from smsgate.traffic.limits import Charge, LimitPlan, Usage

__all__ = ["MessageSpec", "Prepared", "TenantPolicy", "check_encodable", "check_id", "cost_currency", "mask", "storable_fields", "unstorable"]

log = logging.getLogger("smsgate")

#: Distinct texts whose segment counts a tenant remembers (a bulk send repeats one text).
_SEGMENT_CACHE = 1024

#: The longest idempotency key, in bytes of UTF-8 (PostgreSQL indexes keys up to ~2.7 kB
#: with their tenant's name; room is left for derived keys such as ``"{key}:retry:{n}"``).
MAX_IDEMPOTENCY_KEY_BYTES = 2000

#: The start of the idempotency keys smsgate binds for its own messages (auto-replies to
#: keywords, and their cap's slots: :mod:`smsgate.core.inbound`); an application's key may not
#: start with it, so none can take an auto-reply's place (:func:`check_idempotency_key`).
RESERVED_KEY_PREFIX = "smsgate:"


def unstorable(value: object) -> str | None:
    """What makes ``value``, a text a store is to keep, one no store keeps (``None``: nothing):
    a NUL character (PostgreSQL's text has none) or a lone surrogate (not UTF-8), as
    :data:`smsgate.models.UNSTORABLE` finds them. The one rule of every text kept, whichever
    the store (the memory store kept what SQLite and PostgreSQL refused):
    :func:`check_stored_text` raises it, a contact list's import reports it per row."""
    if not isinstance(value, str) or (value.isascii() and "\x00" not in value):
        return None
    found = UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\x00)"
    return f"contains a lone surrogate ({found.group()!a}) at position {found.start()}"


def storable_fields(fields: dict[str, str]) -> dict[str, str]:
    """A campaign row's ``fields`` as every store keeps them: each NUL and lone surrogate of a
    name or value (:func:`unstorable`) replaced by U+FFFD; ``fields`` itself when it holds none.
    A row is never refused for a field its text does not use (one it uses is refused first:
    ``invalid_text``), yet PostgreSQL's jsonb refused the whole campaign for it while the other
    stores kept it as given (:mod:`smsgate.campaigns.preparation`)."""
    fixed: dict[str, str] = _storable_value(fields)
    return fixed


#: Longest name of a contact list or a campaign (for people: shown in listings), in characters.
MAX_NAME = 200


def check_label(field: str, value: object, longest: int, blank: str, location: str | None = None) -> str:
    """``value`` if it is a string of printable characters, not blank, at most ``longest``
    long; else a :class:`ValidationError` naming ``field`` (and ``location``), ``blank`` saying
    why a blank one is refused. The rule of the names and ids people read in listings (a contact
    list's name and id, a campaign's name)."""
    if not isinstance(value, str):
        raise ValidationError(f"expected a string, got {type(value).__name__}", field=field, location=location)
    if not value.strip():
        raise ValidationError(f"{value!r} is blank: {blank}", field=field, location=location)
    if len(value) > longest:
        raise ValidationError(f"is {len(value)} characters long; at most {longest}", field=field,
                              location=location)
    bad = next((ch for ch in value if not ch.isprintable()), None)
    if bad is not None:
        raise ValidationError(f"{value[:40]!r} contains {bad!r}: no line breaks or control characters",
                              field=field, location=location)
    return value


def check_stored_text(field: str, value: object, location: str | None = None) -> None:
    """:class:`ValidationError` naming ``field`` when ``value``, a text the log keeps, holds
    what no store keeps (:func:`unstorable`): a NUL character or a lone surrogate
    (``"\\ud800"``: it was a bare ``UnicodeEncodeError`` from the store, after a ``send_many``
    had sent its first chunks)."""
    problem = unstorable(value)
    if problem is not None:
        raise ValidationError(f"{problem}, which the log cannot keep", field=field, location=location)


def check_idempotency_key(key: object) -> None:
    """:class:`ValidationError` for an idempotency key that cannot name one message: blank
    (an unset header read as ``""`` would bind every message to one key, all but the first
    then silently replaying it), holding NUL, over :data:`MAX_IDEMPOTENCY_KEY_BYTES`, or in
    smsgate's own namespace (:data:`RESERVED_KEY_PREFIX`)."""
    if not isinstance(key, str):
        return  # None: no key; another type is refused with the other fields' types
    if not key.strip():
        raise ValidationError(f"is blank ({key!r}): give a key that names the message, or none "
                              "(None) to send without one", field="idempotency_key")
    check_stored_text("idempotency_key", key)
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_IDEMPOTENCY_KEY_BYTES:
        raise ValidationError(f"is longer than {MAX_IDEMPOTENCY_KEY_BYTES} bytes ({size} in UTF-8): "
                              "use a shorter key (a hash of a long one)", field="idempotency_key")
    if key.startswith(RESERVED_KEY_PREFIX):
        raise ValidationError(f"starts with {RESERVED_KEY_PREFIX!r}, reserved for the keys of smsgate's own "
                              "messages (replies to keywords): use another prefix", field="idempotency_key")


@dataclass
class MessageSpec:
    """One message for :meth:`~smsgate.Tenant.send_many` (a plain number string also works)."""

    to: str
    text: str | None = None
    variables: Mapping[str, str] | None = None
    reference: str | None = None
    idempotency_key: str | None = None
    #: the message's kind (else the one given to ``send_many``)
    kind: str | None = None


@dataclass(slots=True)
class Prepared:
    """A message after preparation: to send through ``candidates``, or already answered."""

    message: OutboundMessage
    candidates: Sequence[str] = ()
    #: the answer when the message is not sent (opted out, no route, idempotency replay)
    result: SendResult | None = None
    #: the error behind ``result``, for a caller that raises
    error: SmsgateError | None = None


def mask(phone: str) -> str:
    """A phone number with its middle digits hidden, for logs (:func:`smsgate.errors.mask_phone`)."""
    return mask_phone(phone)


#: The C0 control characters a message text may not hold: all but tab, newline and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def check_encodable(text: str, what: str = "text") -> None:
    """Raise :class:`ValidationError` (field ``what``) if ``text`` cannot be sent: a lone
    surrogate (not encodable), or a C0 control character other than tab, newline and carriage
    return (NUL, ESC, BEL...: no SMS alphabet has them, and no vendor documents what it does
    with them). The one rule for every text sent (:meth:`TenantPolicy.render`) and every
    campaign row prepared. The error names the character and its position, never the text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"the {what} cannot be encoded: {exc.reason} at position {exc.start} ({text[exc.start:exc.end]!a})",
            field=what,
        ) from None
    found = _CONTROL.search(text)
    if found is not None:
        raise ValidationError(
            f"the {what} contains control character {found.group()!a} at position {found.start()}: only tab, "
            "newline and carriage return are sent; remove it", field=what)


def wrong_type(field: str, value: object, expected: str) -> ValidationError:
    """The error of an argument of the wrong type (``sender=12345``): names the argument and
    the type given, not the value."""
    return ValidationError(f"expected {expected}, got {type(value).__name__}", field=field)


def check_body(text: object, template: object) -> None:
    """A message's ``text`` and ``template`` (:meth:`TenantPolicy.render`): each of its type,
    and not both (neither is silently dropped); a :class:`ValidationError` naming ``text`` or
    ``template`` otherwise."""
    if text is not None and not isinstance(text, str):
        raise wrong_type("text", text, "a string")
    if template is not None and not isinstance(template, Template):
        raise wrong_type("template", template, "a smsgate.Template")
    if template is not None and text is not None:
        raise ValidationError("give exactly one of text or template", field="text")


def check_containers(variables: object, provider_options: object, attachments: object) -> None:
    """A message's ``variables`` and ``provider_options`` are mappings and its ``attachments``
    a list (not one string, bytes or mapping): a :class:`ValidationError` naming the one that
    is not (:meth:`TenantPolicy.build`; what each holds is the model's to check)."""
    # ``type(x) is dict`` first: an ABC isinstance check costs ~0.5 us, on every recipient of a bulk send
    if variables is not None and type(variables) is not dict and not isinstance(variables, Mapping):
        raise wrong_type("variables", variables, "a mapping of names to values")
    if provider_options is not None and type(provider_options) is not dict \
            and not isinstance(provider_options, Mapping):
        raise wrong_type("provider_options", provider_options, "a mapping")
    if attachments is not None and type(attachments) is not list \
            and (isinstance(attachments, (str, bytes, Mapping)) or not isinstance(attachments, Iterable)):
        raise wrong_type("attachments", attachments, "a list of smsgate.Attachment")


def model_error(exc: PydanticValidationError) -> ValidationError:
    """The :class:`ValidationError` of the first field of an :class:`OutboundMessage` that pydantic
    refused, naming it (``sender=12345``: ``sender``, "expected a string, got int"), without the
    input's value or pydantic's error (raise it outside the ``except`` block: nothing chained)."""
    err = exc.errors()[0]  # e.g. sender=12345: ("sender",) "Input should be a valid string"
    where = ".".join(str(p) for p in err["loc"])
    what = "expected a string" if err["type"] == "string_type" else err["msg"]
    return ValidationError(f"{what}, got {type(err['input']).__name__}", field=where)


def check_id(field: str, value: object, location: str | None = None, *, blank: str | None = None) -> str:
    """``value`` if it can name a stored row (a message, campaign, contact list or tenant): a
    string the store can hold (:func:`check_stored_text`); else a :class:`ValidationError`
    naming ``field`` (``tenant.get(obj)`` was a ``sqlite3.ProgrammingError`` from the store, a
    psycopg error on PostgreSQL). An object carrying the id (the ``ImportReport`` that
    ``contact_lists.create`` returns) is named with the attribute to pass. The one rule for
    every id a public method reads; a well-formed id that names nothing stays ``NotFound``.
    With ``blank`` (what to give instead, e.g. ``"the message's id (msg_...)"``), a blank
    ``value`` (``""``, spaces: an unset form field or variable) is a :class:`ValidationError`
    too, not a ``NotFound`` as if such a message might exist."""
    if isinstance(value, str):
        if blank is not None and not value.strip():
            raise ValidationError(f"is blank ({value!r}): give {blank}", field=field, location=location)
        check_stored_text(field, value, location)
        return value
    carried = next((path for path in _ID_ATTRIBUTES if isinstance(_attribute(value, path), str)), None)
    hint = f": pass its .{carried}" if carried else ""
    raise ValidationError(f"expected a string id, got {type(value).__name__}{hint}", field=field,
                          location=location)


#: Where an object a method returned keeps the id another method wants (``check_id``'s hint).
_ID_ATTRIBUTES = ("list_id", "campaign_id", "message_id", "contact_list.list_id")


def _attribute(value: object, path: str) -> object:
    for name in path.split("."):
        value = getattr(value, name, None)
    return value



def cost_currency(reported: str | None, configured: str | None) -> str | None:
    """The currency of a cost a vendor reported: the one it gave with it, else the provider
    instance's configured ``currency`` (the account's: a vendor that states none bills in it),
    else ``None``. A vendor's own currency is kept even when it differs from the configured one:
    nothing is converted, and a cost is never labelled with a currency it is not in."""
    if reported is not None and reported.strip():
        return reported.strip()
    return configured

class TenantPolicy:
    """The rules of one tenant, shared by every driver (see the module docstring)."""

    def __init__(self, name: str, config: TenantConfig, provider: Callable[[str], Provider], hook: Any) -> None:
        self.name = name
        self.config = config
        self._provider = provider
        self._providers: dict[str, Provider] = {}
        self.hook = hook
        self.router = config.router
        self.normalizer = phonelib.PhoneNormalizer(config.default_region)
        self._segments: dict[str, int | None] = {}
        self._limits: dict[str, LimitPlan | None] = {}
        senders = {settings.sender or config.sender for settings in config.providers.values()}
        #: the sender every provider instance gives a message without one of its own (``None``
        #: when they differ): set when the message is built, so no copy is made per provider
        self._sender = senders.pop() if len(senders) == 1 else None
        self._good_senders: set[str] = set()
        #: how the tenant keys and matches opt-out scopes (:meth:`scope_of`, :meth:`optout_holds`)
        self.scope_rule = ScopeRule(self.normalizer.region, self.senders())

    def check_sender(self, sender: object, field: str = "sender") -> str | None:
        """``sender`` if it is ``None`` or a valid sender ID (:data:`~smsgate.models.SENDER_RULE`),
        else a :class:`ValidationError` naming ``field`` and the rule."""
        if sender is None:
            return None
        if not isinstance(sender, str):
            raise wrong_type(field, sender, "a string")
        if sender in self._good_senders:
            return sender
        problem = sender_problem(sender)
        if problem is not None:
            raise ValidationError(problem, field=field)
        if len(self._good_senders) < 64:  # a bulk send checks its sender once, not per recipient
            self._good_senders.add(sender)
        return sender

    def build_sender(self, sender: str | None) -> str | None:
        """The sender of a new message: its own, else the one each provider instance would give it
        if they all give the same (see :meth:`for_provider`), else ``None``."""
        return sender or self._sender or None

    def provider(self, instance: str) -> Provider:
        """The adapter of one of the tenant's provider instances (:class:`ConfigError` if unknown)."""
        prov = self._providers.get(instance)
        if prov is None:
            prov = self._providers[instance] = self._provider(instance)
        return prov

    # ------------------------------------------------------------------ building
    def normalize(self, raw: str) -> str:
        """``raw`` in E.164, read with the tenant's region (:class:`InvalidPhoneNumber` otherwise)."""
        return self.normalizer.normalize(raw)

    def render(self, text: str | None, template: Template | None, variables: Mapping[str, str]) -> str:
        """The body of a message: ``template`` or ``text`` with ``variables`` filled in (not both:
        neither is silently dropped)."""
        check_body(text, template)
        if template is not None:
            body = template.render(dict(variables))
        elif text is not None:
            # A placeholder without a value is an error, never sent as "{name}" (nor as a blank).
            try:
                body = textlib.render_template(text, variables) if variables or textlib.is_template(text) else text
            except TemplateError as exc:  # the caller gave a text: name it, and the way out
                hint = "" if variables else ("; no variables were given: pass variables, or write {{ and }} for "
                                             "literal braces")
                raise TemplateError(exc.reason + hint, field="text", value=text) from None
        else:
            raise ValidationError("either text or template is required", field="text")
        if self.config.smart_encoding:
            body = textlib.smart_encode(body)
        check_encodable(body)
        self.check_segments(body)
        return body

    def check_segments(self, text: str, segments: int | None = None) -> None:
        """Raise :class:`~smsgate.errors.TooManySegments` (field ``text``) when ``text`` takes
        more segments than the tenant's ``max_segments``: the one length rule of every send
        (single, bulk, a campaign's preparation and dispatch: :meth:`render` applies it;
        :func:`smsgate.text.check_segments`). ``segments``: its count when the caller has it already."""
        textlib.check_segments(text, self.config.max_segments,
                               count=self._count_for_cap if segments is None else lambda _text: segments)

    def _count_for_cap(self, text: str) -> int | None:
        # a huge text is counted once, not kept in the memo
        return self.segments(text) if len(text) <= 2000 else textlib.segment_info(text).segments

    def build(
        self, to: str, text: str | None, *, sender: str | None = None, template: Template | None = None,
        variables: Mapping[str, str] | None = None, reference: str | None = None,
        idempotency_key: str | None = None, attachments: Sequence[Attachment] | None = None,
        location: Location | None = None, provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None, message_id: str | None = None, kind: str | None = None,
    ) -> OutboundMessage:
        """A message ready to prepare: number normalised, text rendered and checked, kind checked.

        An argument of the wrong type is a :class:`ValidationError` naming it (its ``field``),
        as any other bad input; nothing is logged.
        """
        if not isinstance(to, str):
            raise InvalidPhoneNumber(f"expected a string, got {type(to).__name__}", field="to")
        if variables is not None or provider_options is not None or attachments is not None:
            check_containers(variables, provider_options, attachments)
        check_stored_text("reference", reference)
        check_stored_text("sender", sender)
        check_idempotency_key(idempotency_key)
        if campaign_id is not None:  # kept with the message: send_many's rule (check_shared)
            check_id("campaign_id", campaign_id)
        vars_ = {k: str(v) for k, v in variables.items()} if variables else {}
        body = self.render(text, template, vars_)
        if not body.strip() and not attachments and location is None:
            raise ValidationError("is empty: a message needs a text (or media or a location)", field="text")
        # only the fields that differ from the model's defaults: validating the others costs
        # ~2.5 of ~6 us per message (a bulk send builds one per recipient)
        try:
            number = self.normalize(to)
        except InvalidPhoneNumber as exc:  # named as the argument is: send(to=...)
            raise InvalidPhoneNumber(exc.reason, field="to", value=exc.value, location=exc.location) from None
        fields: dict[str, Any] = {"to": number, "text": body, "message_id": message_id or new_id("msg")}
        sender = self.build_sender(self.check_sender(sender))
        if sender is not None:
            fields["sender"] = sender
        if reference is not None:
            fields["reference"] = reference
        if idempotency_key is not None:
            fields["idempotency_key"] = idempotency_key
        if vars_:
            fields["variables"] = vars_
        if attachments:
            fields["attachments"] = list(attachments)
        if location is not None:
            fields["location"] = location
        if campaign_id is not None:
            fields["campaign_id"] = campaign_id
        if provider_options:
            fields["provider_options"] = dict(provider_options)
        if kind is not None:
            fields["kind"] = check_kind(kind)
        try:
            return OutboundMessage(**fields)
        except PydanticValidationError as exc:
            problem = model_error(exc)
        raise problem  # outside the except block: no pydantic error (with the inputs) chained

    def check_shared(self, text: object, template: object, options: Mapping[str, Any]) -> None:
        """The arguments a call gives every message it builds (``send_many``'s ``text``,
        ``template``, ``sender``, ``attachments``, ``location``, ``provider_options``,
        ``campaign_id``; ``explain_route``'s), checked once by :meth:`build`'s rules: a
        :class:`ValidationError` naming the first wrong one before any message is built.
        ``send_many(numbers, text, campaign_id=object())`` answered one ``rejected`` result per
        recipient, each saying the same thing about the call."""
        check_body(text, template)
        check_stored_text("sender", options.get("sender"))
        self.check_sender(options.get("sender"))
        check_containers(None, options.get("provider_options"), options.get("attachments"))
        campaign_id = options.get("campaign_id")
        if campaign_id is not None:
            check_id("campaign_id", campaign_id)
        fields = {name: options[name] for name in ("attachments", "location", "provider_options")
                  if options.get(name) is not None}
        if fields:
            try:
                OutboundMessage(to="", **fields)
            except PydanticValidationError as exc:
                problem = model_error(exc)
            else:
                return
            raise problem

    # ------------------------------------------------------------------- routing
    @staticmethod
    def weight_key(msg: OutboundMessage) -> str:
        """What picks among a route's weighted providers (see :func:`smsgate.routing.weight_key`)."""
        return weight_key(msg.message_id, msg.idempotency_key, msg.campaign_id, msg.to)

    @staticmethod
    def required(msg: OutboundMessage) -> list[str]:
        """The provider capabilities ``msg`` needs (names of :class:`~smsgate.provider.Capabilities`
        flags), and each of its ``provider_options`` keys as ``provider_options['KEY']`` (a
        provider reads it only if it declares it: :attr:`~smsgate.provider.Provider.send_options`)."""
        needs = []
        if msg.attachments:
            needs.append("media")
        if msg.location is not None:
            needs.append("location")
        if msg.provider_options:
            needs.extend(_option_need(key) for key in msg.provider_options)
        return needs

    def lacks(self, instance: str, needs: Sequence[str]) -> list[str]:
        """Which of the capabilities (and option keys, see :meth:`required`) ``needs`` provider
        instance ``instance`` lacks."""
        if not needs:
            return []
        prov = self.provider(instance)
        caps, options = prov.capabilities, _option_needs(prov.send_options)
        return [c for c in needs if (c not in options if c.startswith(_OPTION) else not getattr(caps, c))]

    def route(self, msg: OutboundMessage, provider: str | None, key: str | None) -> tuple[Route | None, tuple[str, ...]]:
        """The rule ``msg`` matches (``None`` with ``provider`` or without rules) and its
        providers in the order ``key`` gives them. :class:`ConfigError` when it has no route
        (the tenant has no providers at all, or no rule matches)."""
        if not self.config.providers:
            where = f"tenants.{self.name}"
            raise ConfigError(f"tenant {self.name!r} has no providers: nothing can be sent; add a "
                              f"[{where}.providers.NAME] table with plugin = \"...\" (see docs/configuration.md)",
                              field=f"{where}.providers")
        if provider is not None:
            self.check_provider(provider)
            return None, (provider,)
        rule = self.router.match(msg.to, msg.kind)
        if rule is None:
            raise NoRoute(self.name, msg.to, msg.kind)
        return rule, rule.order(key)

    def check_provider(self, provider: object, field: str = "provider") -> None:
        """Refuse a ``provider`` forced by name that is not one of the tenant's instances
        (:class:`ConfigError` naming ``field``), or not a name at all (a :class:`ValidationError` naming
        ``field``: ``instance`` for the tenant's methods taking one, ``run``, ``iterate``...)."""
        if not isinstance(provider, str):
            raise wrong_type(field, provider, "the name of one of the tenant's provider instances")
        if provider not in self.config.providers:
            close = closest(provider, self.config.providers)
            raise ConfigError(
                f"tenant {self.name!r} has no provider {shown_value(provider)} "
                + (f"(did you mean {close!r}?) " if close else "")
                + f"(configured: {', '.join(self.config.providers) or 'none'})",
                field=field,
            )

    def capable(self, names: Sequence[str], needs: Sequence[str]) -> Sequence[str]:
        """``names`` without the instances lacking one of ``needs`` (``names`` itself when
        nothing is needed); :class:`NoCapableProvider` when none is left."""
        if not needs:
            return names
        lacking = {n: self.lacks(n, needs) for n in names}
        capable = [n for n in names if not lacking[n]]
        if not capable:
            nowhere = [c for c in needs if all(c in lack for lack in lacking.values())]
            raise NoCapableProvider(nowhere[0] if nowhere else " and ".join(needs), list(names), needs)
        return capable

    def candidates(self, msg: OutboundMessage, provider: str | None) -> Sequence[str]:
        """The provider instances that may carry ``msg``, in failover order.

        The route by number and kind (weights applied with :meth:`weight_key`), without
        the instances lacking a capability the message needs or not carrying messages to its
        number (:meth:`reaches`). ``provider`` forces one instance (tried whatever the number:
        its own refusal says why, and how to allow it). Raises :class:`ConfigError` (no route) or :class:`NoCapableProvider`
        (an :class:`Unsupported`: no provider on the route can carry the message).
        """
        _, names = self.route(msg, provider, self.weight_key(msg))
        capable = self.capable(names, self.required(msg))
        # a provider given by name is tried: its own refusal says why, and how to allow the number
        return capable if provider is not None else self.reaching(capable, msg.to)

    def reaches(self, instance: str, to: str) -> bool:
        """Whether provider instance ``instance`` carries messages to ``to``
        (:meth:`~smsgate.provider.Provider.reaches`). An instance that cannot be built (a
        missing credential...) counts as carrying them: it is tried, and fails with its own
        error, as before routing asked."""
        try:
            prov = self.provider(instance)
        except ConfigError:
            return True
        return prov.reaches(to)

    def reaching(self, names: Sequence[str], to: str) -> Sequence[str]:
        """``names`` without the instances that cannot carry a message to ``to``
        (:meth:`~smsgate.provider.Provider.reaches`; ``names`` itself when each can: no list
        per message); :class:`NoCapableProvider` when none is left."""
        for n in names:
            if not self.reaches(n, to):
                break
        else:
            if names:
                return names
        out = [n for n in names if self.reaches(n, to)]
        if not out:
            raise NoCapableProvider(f"messages to {to}", list(names), phone=to)
        return out

    def explain(self, msg: OutboundMessage, provider: str | None, key: str | None,
                state: Callable[[str], tuple[BreakerState, list[LimitState]]]) -> RouteExplanation:
        """How :meth:`candidates` and the kernel would treat ``msg`` now, and why.

        ``key`` is the weight key (``None``: weighted providers in configured order);
        ``state(instance)`` gives an instance's breaker and limits (read by the caller).
        """
        needs = self.required(msg)
        info = textlib.segment_info(msg.text) if msg.text else None
        out = RouteExplanation(
            tenant=self.name, to=msg.to, kind=msg.kind, key=key, rule=None, rule_matches="",
            checks=[] if provider is not None else self.router.checks(msg.to, msg.kind), requires=needs,
            candidates=[], order=[], segments=info.segments if info else None,
            encoding=info.encoding.value if info else None,
        )
        try:
            rule, names = self.route(msg, provider, key)
        except ConfigError as exc:
            out.error = str(exc)
            return out
        if provider is not None:
            out.rule_matches = f"provider={provider!r} was given: the routes are not used"
        elif rule is not None and rule.index is not None:
            out.rule, out.rule_matches = rule.index, rule.describe()
        else:
            out.rule_matches = "no routes configured: every provider, in configured order"
        shares = share_of(rule)
        lacking = {n: self.lacks(n, needs) for n in names}
        unreached = {n for n in names if not self.reaches(n, msg.to)} if provider is None else set()
        usable = [n for n in names if not lacking[n] and n not in unreached]
        for n in names:
            breaker, limits = state(n)
            cand = CandidateExplanation(n, self.config.providers[n].plugin, "try", breaker=breaker, limits=limits,
                                        lacks=lacking[n])
            if n in shares:
                cand.weight, cand.share = shares[n]
                how = (f"picked first by weight for key {key!r}" if key is not None and n == names[0]
                       else "the first provider is picked per message by weight" if key is None else "")
                cand.reasons.append(f"weight {cand.weight:g} ({cand.share:.0%} of the first tier)"
                                    + (f"; {how}" if how else ""))
            if cand.lacks or n in unreached:
                cand.action = "excluded"
                cand.reasons.append(f"lacks {', '.join(cand.lacks)}, which the message needs" if cand.lacks
                                    else f"does not carry messages to {msg.to}")
                out.candidates.append(cand)
                continue
            later = usable.index(n) < len(usable) - 1
            if breaker.state == "open":
                if later:
                    cand.action = "skip"
                    cand.reasons.append(f"circuit breaker open (probe in {breaker.retry_in:.0f}s): skipped, "
                                        "the next provider takes the message")
                else:
                    cand.reasons.append("circuit breaker open, but tried: no later provider can carry the message")
            elif breaker.state == "half-open":
                cand.reasons.append("circuit breaker half-open: one request goes as the probe"
                                    + (" (skipped while another probe is out)" if later else ""))
            cap = self.config.max_limit_wait
            for lim in limits:
                if lim.unit == "requests" and not lim.lost:
                    if lim.used >= lim.count:
                        cand.reasons.append(f"{lim.used}/{lim.count} requests in flight: a request waits for one "
                                            "to end")
                elif lim.wait > 0:
                    who = f"{lim.label} limit" if lim.label else "limit"
                    full = ("its state was lost (Redis emptied): counted full" if lim.lost
                            else f"full ({lim.used}/{lim.count} {lim.unit} per {lim.period:g}s)"
                            if lim.spacing is None
                            else f"{lim.used}/{lim.count} {lim.unit} per {lim.period:g}s, spaced "
                                 f"{lim.spacing:g}s apart")
                    if cap is not None and lim.wait > cap:
                        then = "the next provider takes the message" if later else "not sent (LimitWaitExceeded)"
                        cand.reasons.append(f"{who} {full}: a request waits {lim.wait:.1f}s, longer than "
                                            f"max_limit_wait ({cap:g}s): {then}")
                    else:
                        cand.reasons.append(f"{who} {full}: a request waits {lim.wait:.1f}s")
            if cand.action == "try":
                out.order.append(n)
                if not cand.reasons or (key is not None and all(r.startswith("weight") for r in cand.reasons)):
                    cand.reasons.append("first choice" if len(out.order) == 1 else "failover")
            out.candidates.append(cand)
        if not usable:
            try:
                self.reaching(self.capable(names, needs), msg.to) if provider is None else self.capable(names, needs)
            except NoCapableProvider as exc:
                out.error = str(exc)
        return out

    def senders(self) -> list[str | None]:
        """The sender IDs the tenant's configuration names (its own, the help reply's, each
        instance's)."""
        cfg = self.config
        return [cfg.sender, cfg.inbound.reply_sender, *(p.sender for p in cfg.providers.values())]

    def scope_of(self, sender: str) -> str:
        """The opt-out scope key of messages from ``sender`` for this tenant: :func:`optout_scope`'s,
        except that a number is read with the tenant's region and, when it is one of the
        tenant's :meth:`senders`, keyed as that sender is (``08020000000`` and ``+234 802 000 0000``
        are the sender configured as ``+2348020000000``), as a stop word to that number keys it
        (:func:`~smsgate.keywords.keyword_scope`). :class:`ValueError` for a bad sender ID."""
        return self.scope_rule.key(sender)

    def same_scope(self, stored: str, key: str) -> bool:
        """Whether the opt-out scope ``stored`` (as the store keeps it) names the sender whose
        scope key (:meth:`scope_of`) is ``key``, in any form it was kept in
        (:meth:`ScopeRule.same <smsgate.keywords.ScopeRule.same>`)."""
        return self.scope_rule.same(stored, key)

    def optout_holds(self, scopes: Collection[str], key: str | None) -> bool:
        """Whether a number opted out of ``scopes`` (as stored) must not get a message whose sender
        has the scope key ``key`` (:meth:`sender_scope`; ``None``: no sender): the one rule of every
        opt-out check of a tenant (:meth:`ScopeRule.holds <smsgate.keywords.ScopeRule.holds>`)."""
        return self.scope_rule.holds(scopes, key)

    def scopes_named(self, phone: str, key: str) -> Plan[list[str]]:
        """The stored scopes of ``phone``'s opt-outs that name the sender keyed ``key``
        (:meth:`same_scope`; ``key`` itself when none does): what removing its opt-out removes."""
        if key == EVERY_SENDER or not key.isdigit():
            return [key]
        found: dict[str, set[str]] = yield Query("optout_scopes", self.name, [phone])
        return sorted(s for s in found.get(phone, ()) if self.same_scope(s, key)) or [key]

    def sender_of(self, sender: str | None, instance: str) -> str | None:
        """The sender ID a message asking for ``sender`` goes out with through ``instance``:
        its own, else the instance's, else the tenant's (``None``: the vendor's default)."""
        return sender or self.config.providers[instance].sender or self.config.sender

    def for_provider(self, msg: OutboundMessage, instance: str, template: Template | None) -> OutboundMessage:
        """The message as provider instance ``instance`` should receive it (sender, template id)."""
        sender = self.sender_of(msg.sender, instance)
        if template is None:
            return msg if sender == msg.sender else msg.model_copy(update={"sender": sender})
        update: dict[str, Any] = {"sender": sender}
        prov = self.provider(instance)
        if prov.capabilities.templates:
            update["template_id"] = template.provider_ids.get(instance) or template.provider_ids.get(prov.name)
        return msg.model_copy(update=update)

    def max_batch(self, instance: str) -> int:
        """Messages per request to ``instance`` (1 for a provider without bulk sending)."""
        caps = self.provider(instance).capabilities
        if not caps.bulk:
            return 1
        size = max(1, caps.max_batch)
        limit = self.config.providers[instance].max_batch
        return min(size, limit) if limit is not None else size

    # ------------------------------------------------------------------- limits
    def limits(self, instance: str) -> LimitPlan | None:
        """The limits requests through ``instance`` are charged to (``None``: none)."""
        try:
            return self._limits[instance]
        except KeyError:
            settings = self.config.providers[instance]
            plan = self._limits[instance] = LimitPlan.build(
                instance, rate_limit=settings.rate_limit, limits=settings.limits,
                max_concurrency=settings.max_concurrency, tenant_limits=self.config.limits)
            return plan

    def charges(self, instance: str, outgoing: Sequence[OutboundMessage]) -> tuple[Charge, ...]:
        """What a request carrying ``outgoing`` (as the provider gets them) is charged to."""
        plan = self.limits(instance)
        if plan is None:
            return ()
        by_sender: dict[str, list[int]] = {}
        for m in outgoing:
            counts = by_sender.setdefault(m.sender or "", [0, 0])
            counts[0] += 1
            counts[1] += self.segments(m.text) or 1
        return plan.charges({k: Usage(n, segs) for k, (n, segs) in by_sender.items()})

    def fit(self, instance: str, msgs: list[OutboundMessage]) -> list[list[OutboundMessage]]:
        """``msgs`` in requests no larger than ``instance``'s limits allow at once.

        A single message larger than a limit in segments stays one request (it
        goes alone, see :func:`smsgate.traffic.limits.admit`).
        """
        plan = self.limits(instance)
        if plan is None or len(msgs) < 2:
            return [msgs]
        most, most_segments = plan.capacity("messages"), plan.capacity("segments")
        if most is None and most_segments is None:
            return [msgs]
        parts: list[list[OutboundMessage]] = [[]]
        segments = 0
        for m in msgs:
            size = self.segments(m.text) or 1
            part = parts[-1]
            if part and ((most is not None and len(part) >= most)
                         or (most_segments is not None and segments + size > most_segments)):
                parts.append([])
                segments = 0
            parts[-1].append(m)
            segments += size
        return parts

    # ------------------------------------------------------------------ preparing
    def prepare(self, msgs: Sequence[OutboundMessage], provider: str | None = None,
                claims: Mapping[str, Claim] | None = None, *,
                exempt: str | Literal[True] | None = None) -> Plan[list[Prepared]]:
        """The preparation of a chunk of built messages, one per message, in order.

        One opt-out query for the chunk; opted-out and unroutable messages are
        answered ``rejected`` and logged as such (with their idempotency key, so a
        repeat with the key gets the same answer; for a campaign, only while the
        recipient is still claimed, see ``claims``). The others are logged only
        just before their request leaves (see :mod:`smsgate.core.deliver`).

        ``exempt``: one opt-out scope not checked (internal: the one a stop word just
        recorded, for its confirmation, see :mod:`smsgate.core.inbound`); every other
        opt-out of the number still holds its messages back. ``True``: no opt-out is checked
        (internal: the answer to a help word, which carriers ask to answer whatever the
        number's opt-outs).
        """
        if not msgs:
            return []
        if provider is not None:  # a mistyped name is the call's error: nothing is prepared or logged
            self.check_provider(provider)
        scopes: dict[str, set[str]] = yield Query("optout_scopes", self.name, {m.to for m in msgs})
        now = utcnow()
        out: list[Prepared] = []
        refused: list[Prepared] = []
        for msg in msgs:
            opted = scopes.get(msg.to)
            if opted and exempt is not None:  # (that sender's scope in any form it was kept in)
                opted = None if exempt is True else {s for s in opted if not self.same_scope(s, exempt)}
            if opted and EVERY_SENDER in opted:
                err: SmsgateError = OptedOut(msg.to, self.name)
                p = Prepared(msg, (), self.refusal(msg, err, OPTED_OUT, "opted out"), err)
            else:
                try:
                    names = self.candidates(msg, provider)
                    p = self._without_opted_out_senders(msg, names, opted) if opted else Prepared(msg, names)
                except (ConfigError, Unsupported) as exc:
                    code = "unsupported" if isinstance(exc, Unsupported) else "no_route"
                    p = Prepared(msg, (), self.refusal(msg, exc, code, str(exc)), exc)
            out.append(p)
            if p.result is not None:
                refused.append(p)
        if refused:
            write = LogWrite(
                inserts=[self.record(p.message, Status.REJECTED, now, error=p.result.error if p.result else None,
                                     raw=p.result.error_code if p.result else None) for p in refused],
                keys={p.message.message_id: p.message.idempotency_key for p in refused if p.message.idempotency_key},
            )
            if claims:
                write.claims = {p.message.message_id: claims[p.message.message_id] for p in refused
                                if p.message.message_id in claims}
            if write.keys or write.claims:
                answer = yield Log(write)
                for p in refused:
                    mid = p.message.message_id
                    first = answer.replays.get(mid)
                    if first is not None:
                        p.result = yield from self.replay(first, p.message.to)
                        p.error = None
                    elif mid in answer.lost:
                        p.result = SendResult(message_id=mid, to=p.message.to, status=Status.QUEUED,
                                              error_code="claim_lost", error="the recipient is no longer claimed "
                                              "by this runner; not sent")
            else:
                yield Log(write, wait=False)
        return out

    def _without_opted_out_senders(self, msg: OutboundMessage, names: Sequence[str], scopes: set[str]) -> Prepared:
        """``msg`` to a number opted out of some senders: sent only through the candidates
        whose sender it did not opt out of; refused ``opted_out`` if there is none."""
        kept = [n for n in names if not self.optout_holds(scopes, self.sender_scope(self.sender_of(msg.sender, n)))]
        if kept:
            return Prepared(msg, kept)
        err = OptedOut(msg.to, self.name, sender=self.sender_of(msg.sender, names[0]) if names else msg.sender)
        return Prepared(msg, (), self.refusal(msg, err, OPTED_OUT, "opted out"), err)

    def record_suppressions(self, instance: str, refused: Sequence[tuple[OutboundMessage, str]]) -> Plan[None]:
        """Opt-outs for messages ``instance`` refused because the recipient opted out at the
        vendor (``(message, the vendor's reason)``): source ``vendor``, scoped to the sender ID
        each went out with, so the next send from it is refused locally."""
        optouts = [OptOut(phone=msg.to, source="vendor", scope=self._scope_or_every(self.sender_of(msg.sender, instance)),
                          reason=f"{instance}: {why}"[:200]) for msg, why in refused]
        yield Query("add_optouts", self.name, optouts)
        for o in optouts:
            log.info("tenant %s: %s opted out of %s at %s (the vendor refused it)", self.name, mask(o.phone),
                     "every sender" if o.scope == EVERY_SENDER else f"sender {o.scope!r}", instance)

    def sender_scope(self, sender: str | None) -> str | None:
        """``sender``'s opt-out scope key (:meth:`scope_of`), or ``sender`` itself when it has none
        (``None``, a sender ID no scope can name: :func:`optout_applies` decides)."""
        if sender is None:
            return None
        try:
            return self.scope_of(sender)
        except ValueError:
            return sender

    def _scope_or_every(self, sender: str | None) -> str:
        """``sender``'s opt-out scope (:meth:`scope_of`); every sender for ``None`` or one no scope
        can name (too long, control characters)."""
        if sender is None:
            return EVERY_SENDER
        try:
            return self.scope_of(sender)
        except ValueError:
            return EVERY_SENDER

    def refusal(self, msg: OutboundMessage, exc: SmsgateError, code: str, error: str) -> SendResult:
        """The answer for a message refused before any provider saw it."""
        return SendResult(message_id=msg.message_id, to=msg.to, status=Status.REJECTED, error=str(exc) or error,
                          error_code=code, segments=self.segments(msg.text))

    def replay(self, message_id: str, to: str) -> Plan[SendResult]:
        """The answer of the message an idempotency key is already bound to."""
        try:
            rec: MessageRecord = yield Query("get_message", self.name, message_id)
        except NotFound:
            return SendResult(message_id=message_id, to=to, status=Status.UNKNOWN,
                              error="idempotency key already used; its message was not recorded")
        return self.result_of(rec)

    # ---------------------------------------------------------------- log entries
    def segments(self, text: str) -> int | None:
        """Segments of ``text`` (memoised: a bulk send repeats one text)."""
        if not text:
            return None
        cache = self._segments
        n = cache.get(text, -1)
        if n == -1:
            if len(cache) >= _SEGMENT_CACHE:
                cache.clear()
            n = cache[text] = textlib.segment_info(text).segments
        return n

    def record(self, msg: OutboundMessage, status: Status, now: datetime, *, error: str | None = None,
               raw: str | None = None) -> NewMessage:
        """The log entry of a new message."""
        return NewMessage(self.name, msg.message_id, msg.to, status, now, raw, msg.sender, msg.reference,
                          msg.campaign_id, self.segments(msg.text), error)

    def success(self, msg: OutboundMessage, instance: str, result: SendResult, sender: str | None) -> MessageUpdate:
        """Complete ``result`` (ids, segments, cost) and give the log update of a provider's answer."""
        result.message_id = msg.message_id
        result.provider = instance
        result.to = msg.to
        if result.segments is None:
            result.segments = self.segments(msg.text)
        settings = self.config.providers[instance]
        if result.cost is None and settings.price_per_segment is not None and result.segments:
            # the configured price is in the configured currency, whatever the vendor said
            result.cost = Decimal(str(settings.price_per_segment)) * result.segments
            result.currency = settings.currency
        else:  # the vendor's cost (or none yet: a report's cost, given without one, is in it)
            result.currency = cost_currency(result.currency, settings.currency)
        return MessageUpdate(
            message_id=msg.message_id, status=result.status, at=utcnow(),
            raw_status=result.raw_status, source=instance, provider=instance,
            provider_message_id=result.provider_message_id, batch_id=result.batch_id,
            segments=result.segments, cost=result.cost, currency=result.currency,
            error=result.error, sender=sender,
        )

    def failure(self, msg: OutboundMessage, instance: str | None, exc: Exception,
                status: Status | None = None) -> tuple[SendResult, MessageUpdate]:
        """The answer and log update of a message no provider accepted.

        ``unknown`` when the last attempt may have reached the vendor, else
        ``failed`` (or the given ``status``).
        """
        if status is None:
            status = Status.UNKNOWN if isinstance(exc, (UnknownOutcome, MalformedResponse)) else Status.FAILED
        code = type(exc).__name__
        result = SendResult(message_id=msg.message_id, to=msg.to, status=status, provider=instance or "",
                            error=str(exc), error_code=code, segments=self.segments(msg.text),
                            suppressed=isinstance(exc, RecipientSuppressed))
        update = MessageUpdate(message_id=msg.message_id, status=status, at=utcnow(), raw_status=code,
                               source=instance or "gateway", provider=instance, error=str(exc),
                               detail=str(exc)[:300])
        return result, update

    @staticmethod
    def result_of(record: MessageRecord) -> SendResult:
        """A logged message as a send result."""
        return SendResult(
            message_id=record.message_id, to=record.to, status=record.status, raw_status=record.raw_status,
            provider=record.provider or "", provider_message_id=record.provider_message_id,
            batch_id=record.batch_id, segments=record.segments, cost=record.cost, currency=record.currency,
            error=record.error,
        )

    # ---------------------------------------------------------------------- hooks
    def before_send(self, msg: OutboundMessage) -> None:
        """Run the ``smsgate_before_send`` hooks."""
        hook = self.hook.smsgate_before_send
        if hook.get_hookimpls():  # calling a hook nobody implements still costs a few us
            hook(tenant=self.name, message=msg)

    def after_send(self, msg: OutboundMessage, result: SendResult) -> None:
        """Run the ``smsgate_after_send`` hooks and log the outcome at DEBUG (number masked, no
        text): a line per message costs a busy worker noticeable CPU at INFO."""
        hook = self.hook.smsgate_after_send
        if hook.get_hookimpls():
            # the send has happened: raising would lose its result (and invite a resend)
            hooks.guarded(self.name, "smsgate_after_send", "message", msg.message_id, hook,
                          tenant=self.name, message=msg, result=result)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sent %s to %s via %s: %s", msg.message_id, mask(msg.to), result.provider or "-",
                      result.status.value)


#: How :meth:`TenantPolicy.required` names a ``provider_options`` key a message needs read.
_OPTION = "provider_options["


def _option_need(key: str) -> str:
    return f"{_OPTION}{key!r}]"


@functools.lru_cache(maxsize=64)
def _option_needs(keys: frozenset[str]) -> frozenset[str]:
    """A provider's :attr:`~smsgate.provider.Provider.send_options` as :meth:`TenantPolicy.required` names them."""
    return frozenset(_option_need(k) for k in keys)
