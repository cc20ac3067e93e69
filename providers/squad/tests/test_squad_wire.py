"""Property tests of the record readers and payload builders in ``smsgate_squad.wire``.

The scalar, status, number, timestamp and placeholder converters are covered in
test_squad_parsing.py; these cover what reads whole vendor records (any JSON object must give a
model or a typed value, never an exception) and what builds request payloads.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from smsgate.errors import MalformedResponse
from smsgate.models import CampaignStatus, Stats, Status
from smsgate_squad import wire
from smsgate_squad.auth import WAT

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)), max_leaves=8)
record_keys = st.sampled_from([
    "id", "uuid", "name", "description", "status", "message", "body", "size", "bucket_items", "total",
    "template_id", "bucket_id", "sender_id", "scheduled_for", "createdAt", "created_at", "cost", "charge",
    "pages", "transaction_id", "batch_id", "phonenumber", "phone_number", "dlr_timestamp", "sent_timestamp",
    "submitted", "sent", "delivered", "failed", "deliveryFailed", "invalid", "absent", "detail", "hour",
    "submitted_count", "successful_count", "avg_queue_time", "avg_delivery_time",
])
records = st.dictionaries(st.one_of(record_keys, st.text(max_size=8)), json_values, max_size=12)


@given(records)
def test_record_readers_are_total(row: dict[str, Any]) -> None:
    """Any JSON object reads as a model: vendors add, drop and retype fields."""
    assert wire.template_from_v2(row, "sq").raw == row
    assert wire.template_from_v1(row, "sq").raw == row
    assert wire.contact_list_from_v2(row, "sq").provider == "sq"
    assert wire.contact_list_from_v1(row, "sq").provider == "sq"
    assert isinstance(wire.campaign_from_v2(row, "sq").status, CampaignStatus)
    assert wire.campaign_from_v1(row, "sq").status is CampaignStatus.UNKNOWN
    try:
        report = wire.message_report(row, provider="sq")
    except MalformedResponse as exc:  # absurd numbers are a typed error, never a pydantic one
        assert "out of range" in str(exc)
    else:
        assert isinstance(report.status, Status)
        assert report.occurred_at.tzinfo is not None
    assert isinstance(wire.counts_stats(row, provider="sq"), Stats)
    assert isinstance(wire.hourly_stats(row, date(2025, 1, 1), provider="sq"), Stats)


@given(st.dictionaries(st.sampled_from(["submitted", "sent", "delivered", "failed", "deliveryFailed",
                                        "invalid", "absent"]),
                       st.one_of(st.integers(0, 10**6), st.integers(0, 10**6).map(str))))
def test_counts_stats_total_is_the_sum_and_state_follows(counts: dict[str, Any]) -> None:
    stats = wire.counts_stats(counts, provider="sq")
    assert stats.total == sum(int(v) for v in counts.values())
    assert stats.undelivered == int(counts.get("deliveryFailed", 0))
    state = wire.campaign_state_from_stats(stats)
    if stats.submitted + stats.sent:
        assert state is CampaignStatus.RUNNING
    elif stats.total:
        assert state is CampaignStatus.COMPLETED
    else:
        assert state is CampaignStatus.UNKNOWN


@given(st.lists(st.tuples(st.integers(0, 23), st.integers(0, 1000), st.integers(0, 1000)), max_size=24,
                unique_by=lambda t: t[0]))
def test_hourly_buckets_start_at_their_hour_in_lagos(hours: list[tuple[int, int, int]]) -> None:
    day = date(2025, 3, 12)
    detail = [{"hour": f"{h:02d}:00", "submitted_count": n, "successful_count": ok} for h, n, ok in hours]
    stats = wire.hourly_stats({"submitted_count": sum(n for _, n, _ in hours), "detail": detail}, day,
                              provider="sq")
    assert stats.total == sum(n for _, n, _ in hours)
    for bucket, (h, n, ok) in zip(stats.detail, hours, strict=True):
        assert bucket.period_start is not None
        assert bucket.period_start == datetime(2025, 3, 12, h, tzinfo=WAT)
        assert (bucket.total, bucket.delivered) == (n, ok)


cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=12)


@given(st.lists(st.dictionaries(st.sampled_from(["phone_number", "name", "city", "a,b", 'q"uote']), cells,
                                max_size=4), min_size=1, max_size=6))
def test_csv_bytes_reads_back_with_the_phone_column_first(rows: list[dict[str, str]]) -> None:
    data = wire.csv_bytes(rows, "phone_number")
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    assert reader.fieldnames is not None and reader.fieldnames[0] == "phone_number"
    back = list(reader)
    assert len(back) == len(rows)
    for original, read in zip(rows, back, strict=True):
        assert {k: read[k] for k in original} == original
        assert all(read[k] == "" for k in read if k not in original)


@given(st.text(max_size=80))
def test_slug_is_a_safe_non_empty_file_name(name: str) -> None:
    slug = wire.slug(name)
    assert slug and len(slug) <= 60
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in slug)


@given(st.one_of(st.integers(0, 10**12).map(str), st.text(max_size=12)))
@example("²")  # a digit to str.isdigit, but int() refuses it
def test_int_or_text_sends_digits_as_numbers(value: str) -> None:
    out = wire.int_or_text(value)
    if value.isascii() and value.isdigit():
        assert out == int(value)
    else:
        assert out == value


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)))
def test_iso_z_reads_back_to_the_second(moment: datetime) -> None:
    text = wire.iso_z(moment)
    assert text.endswith("Z")
    assert wire.parse_timestamp(text) == moment.replace(microsecond=0)


@given(st.one_of(json_values, records), st.one_of(st.none(), st.text(max_size=10)), st.booleans())
def test_webhook_items_unwraps_the_envelope(item: Any, ref: str | None, as_list: bool) -> None:
    envelope = {"Event": "sms_status_update", "TransactionRef": ref, "Body": [item] if as_list else item}
    bare = item if isinstance(item, list) else [item]  # a Body that is a list holds the items
    assert wire.webhook_items(envelope) == (ref, [item] if as_list else bare)
    if not (isinstance(item, dict) and ("Body" in item or "body" in item)):
        assert wire.webhook_items(item) == (None, bare)
