"""Properties of Colony's pure wire parsers (:mod:`smsgate_colony.wire`) not covered elsewhere."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticValidationError

from smsgate.errors import MalformedResponse, ValidationError
from smsgate.models import Contact
from smsgate.provider import parse_model as parse_object
from smsgate_colony.api import period_key
from smsgate_colony.wire import (
    PERIODS,
    ColonyCollateCampaign,
    ColonyContactList,
    ColonyDeployment,
    ColonyModel,
    ColonyOptOut,
    ColonyStat,
    parse_collate_campaign,
    parse_listing,
    personalised_rows,
    stats_from_rows,
)

quick = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
MODELS: list[type[ColonyModel]] = [ColonyContactList, ColonyDeployment, ColonyStat, ColonyOptOut, ColonyCollateCampaign]
_field_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.text(max_size=6),
                          st.just("2026-03-01T10:00:00"), st.just(""), st.lists(st.integers(), max_size=2))


@quick
@given(json_values)
def test_parse_listing_is_total_and_keeps_the_items(body: Any) -> None:
    try:
        listing = parse_listing(body, "GET /x/")
    except MalformedResponse as exc:
        assert "GET /x/" in str(exc)
        assert not isinstance(body, list) and body is not None
        return
    if isinstance(body, list):
        assert listing.items == body and listing.total == len(body) and listing.next is None
    elif body is None:
        assert listing.items == [] and listing.next is None
    else:
        assert listing.items == body["results"] and listing.next == body.get("next")
        assert listing.total is None or isinstance(listing.total, int)


@quick
@given(st.lists(st.integers(), max_size=5), st.one_of(st.none(), st.integers(0, 100), st.text(max_size=4)),
       st.one_of(st.none(), st.text(max_size=20)))
def test_parse_listing_reads_a_drf_page(results: list[int], count: Any, nxt: Any) -> None:
    listing = parse_listing({"count": count, "next": nxt, "previous": None, "results": results}, "w")
    assert listing.items == results and listing.next == nxt
    expected = None
    if count is not None:
        try:
            expected = int(count)
        except ValueError:
            expected = None
    assert listing.total == expected


@quick
@given(st.sampled_from(MODELS), json_values)
def test_parse_object_gives_the_model_or_a_malformed_response_naming_it(cls: type[ColonyModel], data: Any) -> None:
    try:
        record = parse_object(cls, data, "GET /thing/1/")
    except MalformedResponse as exc:
        assert str(exc).startswith("GET /thing/1/: ") and cls.__name__ in str(exc)
        return
    assert isinstance(record, cls) and isinstance(data, dict)


@quick
@given(st.sampled_from(MODELS), st.dictionaries(st.sampled_from(
    ["id", "title", "status", "originator", "total", "sms_sent_count", "send_date", "date_created",
     "period_start", "date_overwritten", "error", "extra_field"]), _field_values, max_size=8))
def test_models_read_vendor_quirks(cls: type[ColonyModel], data: dict[str, Any]) -> None:
    try:
        record = cls.model_validate(data)
    except PydanticValidationError:  # parse_object turns a refusal into MalformedResponse
        with pytest.raises(MalformedResponse):
            parse_object(cls, data, "w")
        return
    for name, value in record.model_dump().items():
        if isinstance(value, datetime):
            assert value.tzinfo is not None  # naive times are read as UTC
        if name in data and isinstance(data[name], str) and not data[name].strip() and name in type(record).model_fields:
            assert value is None or (cls is ColonyStat and value == 0)  # "" is null (a count: 0)
    assert record.raw() == record.model_dump(mode="json")


@quick
@given(st.integers(1, 10**12))
def test_number_typed_originators_are_text(n: int) -> None:
    o = parse_object(ColonyOptOut, {"id": 1, "originator": n}, "w")
    assert o.originator == str(n) and o.active


@quick
@given(st.dictionaries(st.sampled_from(["total", "sms_sent_count", "sms_unsent_count", "sms_optout_count"]),
                       st.none() | st.just("") | st.integers(0, 10**6)))
def test_null_stat_counts_are_zero(data: dict[str, Any]) -> None:
    stat = parse_object(ColonyStat, data, "w")
    for name in ("total", "sms_sent_count", "sms_unsent_count", "sms_optout_count"):
        value = data.get(name)
        assert getattr(stat, name) == (value if isinstance(value, int) else 0)


def test_naive_dates_are_utc_and_collate_campaigns_need_an_id() -> None:
    dep = parse_object(ColonyDeployment, {"id": 3, "send_date": "2026-03-01T10:00:00", "error": "  "}, "w")
    assert dep.send_date == datetime(2026, 3, 1, 10, tzinfo=timezone.utc) and dep.error is None
    assert parse_collate_campaign({"id": "7", "title": "Replies", "colour": "red"}).raw()["colour"] == "red"
    with pytest.raises(MalformedResponse, match="field 'id'"):
        parse_collate_campaign({"title": "no id"})


@quick
@given(st.text(max_size=10))
def test_period_key_accepts_the_periods_and_their_aliases_only(text: str) -> None:
    aliases = {"hour": "hourly", "day": "daily", "month": "monthly", "year": "yearly"}
    want = aliases.get(text.lower(), text.lower())
    if want in PERIODS:
        assert period_key(text) == want
    else:
        with pytest.raises(ValidationError, match="unknown period"):
            period_key(text)


_starts = st.none() | st.sampled_from([datetime(2026, 1, d, tzinfo=timezone.utc) for d in (1, 2, 3)])
_counts = st.integers(0, 1000)


@quick
@given(st.lists(st.builds(ColonyStat, period_start=_starts, total=_counts, sms_sent_count=_counts,
                          sms_unsent_count=_counts, sms_optout_count=_counts, email_sent_count=_counts),
                max_size=8))
def test_stats_from_rows_sums_every_row_into_one_bucket_per_period(rows: list[ColonyStat]) -> None:
    stats = stats_from_rows(rows, instance="za", period="daily", deployment=None)
    assert stats.provider == "za" and stats.raw["rows"] == len(rows)
    assert stats.submitted == sum(r.total for r in rows) and stats.sent == sum(r.sms_sent_count for r in rows)
    assert stats.failed == sum(r.sms_unsent_count for r in rows)
    assert stats.opted_out == sum(r.sms_optout_count for r in rows)
    assert stats.raw["email_sent_count"] == sum(r.email_sent_count for r in rows)
    starts = [b.period_start for b in stats.detail]
    assert len(starts) == len(set(starts)) == len({r.period_start for r in rows})
    dated = [s for s in starts if s is not None]
    assert dated == sorted(dated) and (None not in starts or starts[-1] is None)


@quick
@given(st.lists(st.builds(Contact, phone=st.just("+27815854565"), name=st.none() | st.text(max_size=5),
                          fields=st.dictionaries(st.sampled_from(["city", "code"]), st.text(max_size=5))),
                max_size=5),
       st.sampled_from(["Hi {name}", "Plain text", "From {city}", "{code}!"]))
def test_personalised_rows_render_or_name_the_contact(contacts: list[Contact], text: str) -> None:
    try:
        rows = personalised_rows(text, contacts)
    except ValidationError as exc:
        assert exc.location is not None and exc.location.startswith("contact ")
        return
    assert len(rows) == len(contacts) and all(phone == "+27815854565" for phone, _ in rows)
    if "{" not in text:
        assert all(rendered == text for _, rendered in rows)
