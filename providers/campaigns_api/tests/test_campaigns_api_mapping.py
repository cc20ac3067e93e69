"""Property tests of the neutral <-> vendor mappings: statuses, numbers, dates, merge fields."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smsgate.errors import TemplateError
from smsgate.models import CampaignStatus, Status
from smsgate.provider import ProviderSettings
from smsgate_campaigns_api import CampaignsApiProvider, DMCampaignStatus, DMSmsStatus
from smsgate_campaigns_api.wire import (
    format_datetime,
    neutral_campaign_status,
    neutral_sms_status,
    parse_datetime,
    to_decimal,
    to_int,
)


def provider(**options: Any) -> CampaignsApiProvider:
    return CampaignsApiProvider(ProviderSettings(plugin="campaigns_api", credentials={"api_key": "k" * 8},
                                                 options=options))


# ---------------------------------------------------------------- statuses

EXPECTED_SMS = {
    0: Status.SENT, 1: Status.DELIVERED, 2: Status.SUBMITTED, 3: Status.EXPIRED, 4: Status.FAILED,
    5: Status.UNDELIVERED, 6: Status.UNKNOWN, 7: Status.REJECTED, 8: Status.FAILED, 9: Status.FAILED,
    10: Status.UNKNOWN, 34: Status.REJECTED, 1000: Status.FAILED,
}
EXPECTED_CAMPAIGN = {
    0: CampaignStatus.SCHEDULED, 1: CampaignStatus.RUNNING, 2: CampaignStatus.RUNNING, 3: CampaignStatus.PAUSED,
    4: CampaignStatus.CANCELLED, 5: CampaignStatus.COMPLETED,
}


def test_every_documented_code_is_mapped() -> None:
    assert {int(c) for c in DMSmsStatus} == set(EXPECTED_SMS)
    assert {int(c) for c in DMCampaignStatus} == set(EXPECTED_CAMPAIGN)
    for code, status in EXPECTED_SMS.items():
        assert neutral_sms_status(code) == (status, str(code))
        assert neutral_sms_status(str(code)) == (status, str(code))
    for code, campaign_status in EXPECTED_CAMPAIGN.items():
        assert neutral_campaign_status(code) == (campaign_status, str(code))


anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                     st.lists(st.integers(), max_size=2))


@given(anything)
def test_sms_status_mapping_is_total(value: Any) -> None:
    status, raw = neutral_sms_status(value)
    assert isinstance(status, Status)
    number = to_int(value)
    if number is not None:
        assert raw == str(number)
        assert status == EXPECTED_SMS.get(number, Status.UNKNOWN)
    else:
        assert status == Status.UNKNOWN


@given(anything)
def test_campaign_status_mapping_is_total(value: Any) -> None:
    status, _ = neutral_campaign_status(value)
    assert isinstance(status, CampaignStatus)
    number = to_int(value)
    assert status == (EXPECTED_CAMPAIGN.get(number, CampaignStatus.UNKNOWN) if number is not None
                      else CampaignStatus.UNKNOWN)


@given(anything)
def test_number_readers_are_total(value: Any) -> None:
    to_int(value)
    to_decimal(value)
    parse_datetime(value)


# ------------------------------------------------------------------ numbers

REGIONS = ["GB", "NG", "US", "DE", "FR", "IN", "ZA", "IE", "JE"]


@st.composite
def valid_numbers(draw: st.DrawFn, regions: tuple[str, ...] = tuple(REGIONS)) -> str:
    region = draw(st.sampled_from(regions))
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    national = str(example.national_number)
    digits = draw(st.text("0123456789", min_size=len(national) - 3, max_size=len(national) - 3))
    candidate = phonenumbers.parse("+" + str(example.country_code) + national[:3] + digits)
    assume(phonenumbers.is_valid_number(candidate))
    return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)


@given(valid_numbers(), st.sampled_from(["auto", "international"]))
def test_numbers_round_trip(e164: str, fmt: str) -> None:
    prov = provider(number_format=fmt)
    sent = prov.vendor_phone(e164)
    assert sent.isdigit()
    assert prov.neutral_phone(sent) == e164
    if fmt == "auto":
        assert sent.startswith("0") == e164.startswith("+44")


@given(valid_numbers(("GB",)))
def test_national_format_round_trips_for_home_region_numbers(e164: str) -> None:
    prov = provider(number_format="national")
    assert prov.neutral_phone(prov.vendor_phone(e164)) == e164


@given(st.text(max_size=16))
def test_non_e164_input_is_passed_through_and_reading_never_raises(raw: str) -> None:
    prov = provider()
    if not raw.startswith("+"):
        assert prov.vendor_phone(raw) == raw
    result = prov.neutral_phone(raw)
    assert result is None or result.startswith("+")


# -------------------------------------------------------------------- dates

@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2999, 12, 31),
                    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)), None])))
def test_datetimes_round_trip_to_the_millisecond(value: datetime) -> None:
    text = format_datetime(value)
    assert text.endswith("Z") and len(text) == 24
    parsed = parse_datetime(text)
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    assert parsed is not None
    assert abs((parsed - aware).total_seconds()) < 0.001


@pytest.mark.parametrize(("text", "expected"), [
    ("2023-06-27T03:04:01.374Z", datetime(2023, 6, 27, 3, 4, 1, 374000, tzinfo=timezone.utc)),
    ("2023-06-27T03:04:01.3740000Z", datetime(2023, 6, 27, 3, 4, 1, 374000, tzinfo=timezone.utc)),
    ("2023-06-27T03:04:01.374", datetime(2023, 6, 27, 3, 4, 1, 374000, tzinfo=timezone.utc)),
    ("2023-06-27T04:04:01+01:00", datetime(2023, 6, 27, 3, 4, 1, tzinfo=timezone.utc)),
    ("2023-06-27", datetime(2023, 6, 27, tzinfo=timezone.utc)),
    ("2023-01-91T00:00:00.000", None),
    ("2023-06-27T03:04:01+99:00", None),
    ("yesterday", None),
])
def test_vendor_datetime_samples(text: str, expected: datetime | None) -> None:
    assert parse_datetime(text) == expected


# --------------------------------------------------------------- merge fields

segments = st.lists(st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)), max_size=6),
    st.sampled_from(["{name}", "{custom1}", "{custom2}", "{{", "}}"]),
), max_size=8)


@given(segments)
def test_merge_fields_round_trip(parts: list[str]) -> None:
    prov = provider()
    text = "".join(parts)
    vendor = prov.vendor_text(text)
    placeholders = sum(p in ("{name}", "{custom1}", "{custom2}") for p in parts)
    tokens = sum(vendor.count(t) for t in ("{Name}", "{Custom1}", "{Custom2}"))
    assume(tokens == placeholders)  # "{{" "Name" "}}" would spell a token: ambiguous by nature
    assert prov.neutral_text(vendor) == text


def test_custom_merge_tokens_and_unknown_placeholders() -> None:
    prov = provider(merge_tokens={"name": "[[NAME]]"})
    assert prov.vendor_text("Hi {name} {custom2}") == "Hi [[NAME]] {Custom2}"
    assert prov.neutral_text("Hi [[NAME]] {Custom2}") == "Hi {name} {custom2}"
    with pytest.raises(TemplateError, match="'city'"):
        prov.vendor_text("from {city}")
    with pytest.raises(TemplateError, match="unmatched"):
        prov.vendor_text("oops {")
