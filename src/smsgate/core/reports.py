"""Delivery status: lookups at the provider and delivery-report webhooks, as plans."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

import pydantic

from smsgate.core import inbound as inbound_plans
from smsgate.core import received
from smsgate.core.policy import TenantPolicy, check_stored_text
from smsgate.core.steps import Call, Flush, Plan, Query
from smsgate.errors import SmsgateError, ValidationError, check_bool
from smsgate.models import (
    DeliveryReport,
    MessageRecord,
    Status,
    WebhookEvents,
    WebhookOutcome,
    refusing_alone,
)
from smsgate.store.base import AppliedReport

log = logging.getLogger(__name__)

__all__ = ["MAX_JSON_DEPTH", "Headers", "check_json_depth", "combine_parts", "ingest", "precheck", "status",
           "webhook_headers"]

#: The deepest nesting of arrays and objects a webhook body may have.
MAX_JSON_DEPTH = 64

# a JSON string (skipped whole, so brackets inside it do not count) or a bracket
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH, *, where: str = "webhook") -> None:
    """Refuse a JSON body nested deeper than ``limit`` with a :class:`~smsgate.errors.ValidationError`.

    Runs before any JSON parser sees the body: ``[`` x 100,000 would otherwise
    raise ``RecursionError`` deep inside it. Bodies that do not start like JSON
    (form-encoded callbacks) are left alone.
    """
    head = body[:64].lstrip()
    if not head.startswith((b"[", b"{")):
        return
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise ValidationError(f"JSON nested deeper than {limit} levels", field="body", location=where)
        elif token in (b"]", b"}"):
            depth -= 1


#: A webhook's headers: a mapping, or (name, value) pairs as ASGI servers, Starlette's
#: ``request.headers.raw`` and httpx give them (names and values ``str`` or ``bytes``).
Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


def _header_text(value: object, what: str, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")  # HTTP's own header encoding: never fails
    raise ValidationError(f"{what} must be str or bytes, not {type(value).__name__}", field="headers",
                          location=where)


def webhook_headers(headers: Headers, *, where: str = "webhook") -> dict[str, str]:
    """``headers`` as one dict with lower-case names (as the webhook app gives them to
    providers); a name given twice keeps its values joined by ``", "`` (RFC 9110).

    Takes any mapping or iterable of ``(name, value)`` pairs; anything else (a string, a
    pair of the wrong length, a value that is not text) is a :class:`ValidationError`
    naming ``headers``.
    """
    if isinstance(headers, Mapping):
        pairs: Iterable[object] = headers.items()
    elif isinstance(headers, (str, bytes, bytearray)) or not isinstance(headers, Iterable):
        raise ValidationError(f"expected a mapping or (name, value) pairs, got {type(headers).__name__}",
                              field="headers", location=where)
    else:
        pairs = headers
    out: dict[str, str] = {}
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes, bytearray)) or not isinstance(pair, Iterable) \
                or len(items := tuple(pair)) != 2:
            raise ValidationError(f"item {i} is not a (name, value) pair: {type(pair).__name__}",
                                  field="headers", location=where)
        name = _header_text(items[0], f"the name of header {i}", where).lower()
        value = _header_text(items[1], f"the value of header {name!r}", where)
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


#: A JSON escape of a surrogate (``\\ud800``): a body holding one may hold a lone one.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _check_storable(events: WebhookEvents, where: str) -> None:
    """:class:`~smsgate.errors.ValidationError` if any text of ``events`` (their raw fields
    too) holds a NUL character or a lone surrogate, which no store keeps alike: the whole
    webhook is refused before anything of it is applied."""

    def walk(value: object, path: str) -> None:
        if isinstance(value, str):
            check_stored_text(path, value)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(k, path)
                walk(v, f"{path}.{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")

    try:
        for kind in ("reports", "inbound"):
            for i, item in enumerate(getattr(events, kind)):
                walk(item.model_dump(), f"{kind}[{i}]")
    except ValidationError as exc:
        raise ValidationError(exc.reason, field=exc.field, location=where) from None


def status(policy: TenantPolicy, message_id: str, refresh: bool) -> Plan[MessageRecord]:
    """The message's record, refreshed from its provider when it is not final and can be looked up."""
    check_bool("refresh", refresh)
    record: MessageRecord = yield Query("get_message", policy.name, message_id)
    if refresh and not record.status.is_final and received.can_ask_status(policy, record):
        name = record.provider or ""
        report: DeliveryReport = yield Call(name, received.checked(
            policy.provider(name).status(policy.result_of(record)), name, "status()"))
        update = received.lookup_update(record, report, f"{name}:lookup")  # at the vendor's time
        if (yield from received.apply(policy, record, update, report)):
            record = yield Query("get_message", policy.name, message_id)
    return record


def combine_parts(known: Mapping[int, Status], parts: int) -> Status:
    """One status for a multipart message from its parts' statuses (``known``: part -> status).

    A part that ended without delivery decides the message (the lowest part
    first); the message is ``delivered`` only once all ``parts`` parts are; until
    then it is the least advanced part's status, a delivered part counting as
    ``sent``.
    """
    for part in sorted(known):
        if known[part].is_final and known[part] is not Status.DELIVERED:
            return known[part]
    if len(known) >= parts and all(s is Status.DELIVERED for s in known.values()):
        return Status.DELIVERED
    pending = [Status.SENT if s is Status.DELIVERED else s for s in known.values()]
    return min(pending, key=lambda s: s.rank) if pending else Status.SENT


def precheck(instance: str, headers: Headers, body: bytes) -> dict[str, str]:
    """What is checked of a callback for provider instance ``instance`` before its provider
    authenticates it: the headers' form (:func:`webhook_headers`, which gives them back as a
    dict), the body's type and its JSON depth (:func:`check_json_depth`); a
    :class:`~smsgate.errors.ValidationError` otherwise.

    :func:`ingest` runs it first; the webhook app runs it for a callback to an unknown tenant or
    instance too, so that caller meets the refusals a known instance's caller meets, word for
    word, and cannot tell the names apart by them.
    """
    where = f"{instance} webhook"
    fields = webhook_headers(headers, where=where)
    if not isinstance(body, (bytes, bytearray)):
        raise ValidationError(f"expected bytes, got {type(body).__name__}", field="body", location=where)
    check_json_depth(body, where=where)
    return fields


def ingest(policy: TenantPolicy, instance: str, headers: Headers, body: bytes) -> Plan[WebhookOutcome]:
    """Verify, parse and apply a webhook of provider instance ``instance``: delivery
    reports and inbound messages (the provider tells them apart).

    Reports are matched by provider message id within the tenant only. A report
    can overtake its message's answer while that is still held back in this
    process's log writer: those are written and the report matched again; one
    that still matches nothing is kept as an orphan by the store, applied when the
    message's provider id is logged. Part reports of a multipart message are
    combined first (:func:`combine_parts`). Inbound messages are stored and their
    keywords acted on (:func:`smsgate.core.inbound.store`). Only then do the
    application's hooks run, every one of them even when one raises
    (:func:`smsgate.core.inbound.notify`): a failing ``smsgate_on_status`` never
    loses a STOP of the same callback. ``headers``: see :func:`webhook_headers`.
    """
    where = f"{instance} webhook"
    fields = precheck(instance, headers, body)
    try:
        with refusing_alone():  # one item out of bounds is refused alone, not the whole callback
            events = policy.provider(instance).parse_events(fields, body)
    except pydantic.ValidationError as exc:  # a value out of the model's bounds (pages: 10**30)
        errors = exc.errors()
        loc = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        msg = errors[0]["msg"] if errors else "invalid"
        raise ValidationError(f"value out of range ({msg})", field=loc or None, location=where) from None
    except SmsgateError:
        raise  # the provider's own verdict: AuthFailed, MalformedResponse, ValidationError...
    except (RecursionError, OverflowError, AttributeError, LookupError, TypeError, ValueError) as exc:
        # a parser tripping on a body of an odd shape (a list where it indexes a dict, a
        # missing key, not JSON): the body is unreadable, whichever parser read it
        raise ValidationError(f"unreadable body ({type(exc).__name__})", field="body", location=where) from None
    # a NUL comes in raw, as a JSON escape or a URL escape; a lone surrogate only as a JSON
    # escape (UTF-8 has none): a body without one is not walked
    if b"\x00" in body or b"\\u0000" in body or b"%00" in body or (b"\\u" in body and _SURROGATE.search(body)):
        _check_storable(events, where)
    for r in events.reports:
        if r.rejected:  # one item out of bounds never fails the rest of its callback
            log.info("tenant %s: %s webhook: report %r refused on its own (%s)", policy.name, instance,
                     (r.provider_message_id or "")[:40], r.rejected)
    reports = [r for r in events.reports if not r.rejected]
    rejected = len(events.reports) - len(reports) + sum(1 for m in events.inbound if m.rejected)
    for r in reports:
        r.provider = instance
    if any(r.part is not None and r.parts is not None for r in reports):
        known: list[dict[int, Status]] = yield Query("record_parts", policy.name, reports)
        for r, parts in zip(reports, known, strict=True):
            if parts and r.parts is not None:
                combined = combine_parts(parts, r.parts)
                if combined is not r.status:
                    r.raw_status = f"part {r.part}/{r.parts}: {r.raw_status or r.status.value}"
                r.status = combined
    applied: list[AppliedReport] = []
    if reports:
        applied = yield Query("apply_reports_changes", policy.name, reports)
    missed = [i for i, a in enumerate(applied) if a.message_id is None and reports[i].provider_message_id]
    if missed:
        yield Flush()
        again: list[AppliedReport] = yield Query("apply_reports_changes", policy.name,
                                                 [reports[i] for i in missed], keep_orphans=True)
        for i, a in zip(missed, again, strict=True):
            applied[i] = a
    matched = [a.message_id for a in applied]
    hit = sum(1 for mid in matched if mid is not None)
    # everything the callback tells is stored and acted on (a STOP too) before any hook runs;
    # a status hook hears of a change once (a vendor retrying its callback is no new change)
    inbound, duplicates, new = yield from inbound_plans.store(policy, instance, events.inbound)
    inbound_plans.notify(policy, [(a.message_id, r) for r, a in zip(reports, applied, strict=True)
                                  if a.message_id is not None and a.changed], new)
    return WebhookOutcome(reports=reports, matched=hit,
                          orphaned=sum(1 for r, mid in zip(reports, matched, strict=True)
                                       if mid is None and r.provider_message_id),
                          inbound=inbound, duplicates=duplicates, rejected=rejected)
