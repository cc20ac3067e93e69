"""Delivery status: lookups at the provider and delivery-report webhooks, as plans."""

from __future__ import annotations

from collections.abc import Mapping

from smsgate.core.policy import TenantPolicy
from smsgate.core.steps import Call, Flush, Plan, Query
from smsgate.models import DeliveryReport, MessageRecord
from smsgate.store.base import MessageUpdate

__all__ = ["ingest", "status"]


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
    reports = policy.provider(instance).parse_webhook(headers, body)
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
