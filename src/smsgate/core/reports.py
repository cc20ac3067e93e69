"""Delivery status: lookups at the provider and delivery-report webhooks, as plans."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pydantic

from smsgate.core.policy import TenantPolicy
from smsgate.core.steps import Call, Flush, Plan, Query
from smsgate.errors import ValidationError
from smsgate.models import DeliveryReport, MessageRecord
from smsgate.store.base import MessageUpdate

__all__ = ["MAX_JSON_DEPTH", "check_json_depth", "ingest", "status"]

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


def status(policy: TenantPolicy, message_id: str, refresh: bool) -> Plan[MessageRecord]:
    """The message's record, refreshed from its provider when it is not final and can be looked up."""
    record: MessageRecord = yield Query("get_message", policy.name, message_id)
    # A provider instance no longer configured cannot be asked: the log still answers.
    if (refresh and not record.status.is_final and record.provider in policy.config.providers
            and record.provider_message_id):
        prov = policy.provider(record.provider)
        if prov.capabilities.status_lookup:
            report: DeliveryReport = yield Call(record.provider, prov.status(policy.result_of(record)))
            (changed,) = yield Query("update_messages", policy.name, [MessageUpdate(
                message_id=record.message_id, status=report.status, at=report.occurred_at,
                raw_status=report.raw_status, source=f"{record.provider}:lookup", cost=report.cost,
                segments=report.segments, error=report.error_code,
            )])
            if changed:
                policy.hook.smsgate_on_status(tenant=policy.name, message_id=record.message_id, report=report)
                record = yield Query("get_message", policy.name, message_id)
    return record


def ingest(policy: TenantPolicy, instance: str, headers: Mapping[str, str], body: bytes) -> Plan[list[DeliveryReport]]:
    """Verify, parse and apply a delivery-report webhook of provider instance ``instance``.

    Reports are matched by provider message id within the tenant only. A report
    can overtake its message's answer while that is still held back in this
    process's log writer: those are written and the report matched again.
    """
    where = f"{instance} webhook"
    check_json_depth(body, where=where)
    try:
        reports = policy.provider(instance).parse_webhook(headers, body)
    except pydantic.ValidationError as exc:  # a value out of the model's bounds (pages: 10**30)
        errors = exc.errors()
        loc = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        msg = errors[0]["msg"] if errors else "invalid"
        raise ValidationError(f"value out of range ({msg})", field=loc or None, location=where) from None
    except (RecursionError, OverflowError) as exc:
        raise ValidationError(f"unreadable body ({type(exc).__name__})", field="body", location=where) from None
    for r in reports:
        r.provider = instance
    matched: list[str | None] = yield Query("apply_reports", policy.name, reports)
    missed = [i for i, mid in enumerate(matched) if mid is None and reports[i].provider_message_id]
    if missed:
        yield Flush()
        again: list[str | None] = yield Query("apply_reports", policy.name, [reports[i] for i in missed])
        for i, mid in zip(missed, again, strict=True):
            matched[i] = mid
    for report, mid in zip(reports, matched, strict=True):
        if mid is not None:
            policy.hook.smsgate_on_status(tenant=policy.name, message_id=mid, report=report)
    return reports
