"""Tests for smsgate.phone: E.164 normalisation."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat

from smsgate import phone
from smsgate.errors import ConfigError, InvalidPhoneNumber, ValidationError
from smsgate.phone import (
    PhoneNormalizer,
    is_e164,
    normalize,
    region_of,
    to_international_digits,
    to_national,
)

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
REGIONS = ["NG", "ZA", "GB", "US", "KE"]


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # Nigeria: national, international with and without '+', 00 prefix, punctuation
        ("08012345678", "NG", "+2348012345678"),
        ("0801 234 5678", "NG", "+2348012345678"),
        ("(0801) 234-5678", "NG", "+2348012345678"),
        ("0801.234.5678", "NG", "+2348012345678"),
        ("+234 801 234 5678", "NG", "+2348012345678"),
        ("+234 801 234 5678", None, "+2348012345678"),
        ("+2348012345678", "GB", "+2348012345678"),
        ("2348012345678", "NG", "+2348012345678"),
        ("2348012345678", None, "+2348012345678"),
        ("00234 801 234 5678", None, "+2348012345678"),
        ("00-234-801-234-5678", "NG", "+2348012345678"),
        ("  08012345678\t", "NG", "+2348012345678"),
        # bare international digits that are not a valid national number of the region
        ("27815854565", "NG", "+27815854565"),
        ("27815854565", None, "+27815854565"),
        ("+27 81 585 4565", None, "+27815854565"),
        ("081 585 4565", "ZA", "+27815854565"),
        # United Kingdom
        ("07400 123456", "GB", "+447400123456"),
        ("+44 7400 123456", None, "+447400123456"),
        ("+44 (0)7400 123456", None, "+447400123456"),
        ("0044 7400 123456", None, "+447400123456"),
        ("447400123456", "GB", "+447400123456"),
        ("020 7946 0958", "GB", "+442079460958"),
        # United States, Kenya
        ("(201) 555-0123", "US", "+12015550123"),
        ("1-201-555-0123", "US", "+12015550123"),
        ("+1 201 555 0123", None, "+12015550123"),
        ("0712 123456", "KE", "+254712123456"),
        # region is case-insensitive
        ("08012345678", "ng", "+2348012345678"),
    ],
)
def test_normalize_examples(raw: str, region: str | None, expected: str) -> None:
    assert normalize(raw, region) == expected
    assert PhoneNormalizer(region).normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "why"),
    [
        ("", "NG", "empty"),
        ("   ", "NG", "empty"),
        ("hello", "NG", "contains 'h'"),
        ("0801-CALL-NOW", "NG", "contains 'C'"),
        ("+234 801 234 5678 ext 9", None, "contains 'e'"),
        ("123", "NG", "too short"),
        ("+2340000", None, "too short"),
        ("+", None, "no digits"),
        ("()-.", None, "no digits"),
        ("+1+2345678", None, "'+' may only appear at the start"),
        ("++2348012345678", None, "'+' may only appear at the start"),
        ("0801234567", "NG", "not a valid number for region NG"),
        ("+2340801234567", None, "region NG"),
        ("08012345678", None, "no region"),
        ("8012345678", None, "no region"),
        ("+999 1234567", None, "unknown country calling code"),
        ("1234567890123456789", "NG", "too long"),
        ("9" * 80, "NG", "too long"),
    ],
)
def test_invalid_numbers_raise_with_input_and_reason(raw: str, region: str | None, why: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize(raw, region)
    err = info.value
    message = str(err)
    assert why in message
    shown = repr(raw)
    assert (shown if len(shown) <= 48 else shown[:45]) in message
    assert err.field == "phone"
    assert err.value == raw
    assert isinstance(err, ValidationError)
    assert isinstance(err, ValueError)


def test_invalid_number_repeated_raises_fresh_errors() -> None:
    errors = []
    for _ in range(2):
        with pytest.raises(InvalidPhoneNumber) as info:
            normalize("0801234567", "NG")
        errors.append(info.value)
    assert errors[0] is not errors[1]
    assert str(errors[0]) == str(errors[1])


def test_non_string_input_is_invalid_phone_number() -> None:
    with pytest.raises(InvalidPhoneNumber, match="expected str"):
        normalize(2348012345678, "NG")  # type: ignore[arg-type]


def test_unknown_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'XX'"):
        normalize("08012345678", "XX")
    with pytest.raises(ConfigError, match="'Nigeria'"):
        PhoneNormalizer("Nigeria")


def test_phone_normalizer() -> None:
    ng = PhoneNormalizer("ng")
    assert ng.region == "NG"
    assert repr(ng) == "PhoneNormalizer(region='NG')"
    assert ng.normalize("0801 234 5678") == "+2348012345678"
    assert ng.try_normalize("0801 234 5678") == "+2348012345678"
    assert ng.try_normalize("not a number") is None
    assert ng.try_normalize("") is None
    assert PhoneNormalizer().try_normalize("08012345678") is None
    assert PhoneNormalizer().normalize("+27815854565") == "+27815854565"


def test_results_are_cached() -> None:
    phone._normalize_cached.cache_clear()
    normalize("+2348012345678")
    normalize("+2348012345678")
    normalize("08012345678", "NG")
    normalize("08012345678", "ng")  # the region is canonicalised before the look-up
    PhoneNormalizer("NG").normalize("08012345678")
    assert PhoneNormalizer("NG").try_normalize("08012345678") == "+2348012345678"
    for _ in range(2):  # failures are cached too, but raise a fresh error each time
        with pytest.raises(InvalidPhoneNumber):
            normalize("0801", "NG")
    info = phone._normalize_cached.cache_info()
    assert info.misses == 3
    assert info.hits == 5
    assert info.maxsize is not None
    assert info.maxsize >= 1 << 16


def test_e164_fast_path_still_validates() -> None:
    assert is_e164("+2340801234567")
    with pytest.raises(InvalidPhoneNumber):
        normalize("+2340801234567")


def test_is_e164() -> None:
    assert is_e164("+2348012345678")
    assert is_e164("+1234567")
    assert not is_e164("+123456")  # too short
    assert not is_e164("+1234567890123456")  # 16 digits
    assert not is_e164("2348012345678")
    assert not is_e164("+0348012345678")
    assert not is_e164("+234 801 234 5678")
    assert not is_e164("+2348012345678\n")
    assert not is_e164("+٢٣٤٨٠١٢٣٤٥٦٧٨")  # Arabic-Indic digits are not E.164
    assert not is_e164("")


@pytest.mark.parametrize(
    ("e164", "national", "region"),
    [
        ("+2348012345678", "08012345678", "NG"),
        ("+27815854565", "0815854565", "ZA"),
        ("+447700900123", "07700900123", "GB"),
        ("+447400123456", "07400123456", "GB"),
        ("+12015550123", "2015550123", "US"),
        ("+254712123456", "0712123456", "KE"),
    ],
)
def test_to_national_region_of_and_international_digits(e164: str, national: str, region: str) -> None:
    assert to_national(e164) == national
    assert region_of(e164) == region
    assert to_international_digits(e164) == e164[1:]
    if e164 == "+447700900123":  # reserved for drama: formats fine but is not valid
        with pytest.raises(InvalidPhoneNumber, match="not a valid number"):
            normalize(e164)
    else:
        assert normalize(to_international_digits(e164)) == e164
        assert normalize(national, region) == e164


def test_region_of_non_geographic_number_is_none() -> None:
    assert region_of("+80012345678") is None


@pytest.mark.parametrize("bad", ["2348012345678", "+234 801", "", "+0123456789"])
def test_e164_helpers_reject_non_e164(bad: str) -> None:
    for func in (to_national, region_of, to_international_digits):
        with pytest.raises(InvalidPhoneNumber, match=re.escape(repr(bad))):
            func(bad)


# --------------------------------------------------------------------------- properties


@st.composite
def valid_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """A valid number of one of REGIONS: an example number or one built from metadata."""
    region = draw(st.sampled_from(REGIONS))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    kind = draw(st.sampled_from(["mobile", "fixed_line", "toll_free"]))
    desc = getattr(metadata, kind)
    if draw(st.booleans()) and desc.example_number:
        nsn = desc.example_number
    else:
        nsn = draw(st.from_regex(desc.national_number_pattern, fullmatch=True))
    assume(nsn.isascii() and nsn.isdigit() and not nsn.startswith("0"))
    number = phonenumbers.PhoneNumber(country_code=metadata.country_code, national_number=int(nsn))
    assume(phonenumbers.is_valid_number(number))
    return number


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


@SETTINGS
@given(number=valid_numbers(), region=st.sampled_from([None, *REGIONS]))
def test_formats_of_a_valid_number_normalize_to_its_e164(
    number: phonenumbers.PhoneNumber, region: str | None
) -> None:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    own = phonenumbers.region_code_for_number(number)
    assert normalize(e164, region) == e164
    intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    assert normalize(intl, region) == e164
    assert normalize("00" + e164[1:], region) == e164
    assert normalize(e164[1:]) == e164  # bare international digits, no region
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    assert normalize(national, own) == e164
    assert normalize(to_national(e164), region_of(e164)) == e164
    assert region_of(e164) == own
    assert to_international_digits(e164) == e164[1:]


@SETTINGS
@given(number=valid_numbers(), region=st.sampled_from([None, *REGIONS]))
def test_normalize_is_idempotent(number: phonenumbers.PhoneNumber, region: str | None) -> None:
    raw = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    once = normalize(raw, region)
    assert normalize(once) == once
    assert normalize(once, region) == once
    assert is_e164(once)


phone_like = st.text(alphabet="0123456789+ -().", max_size=25)


@settings(max_examples=500, deadline=None)
@given(
    raw=st.one_of(st.text(max_size=30), phone_like, st.from_regex(r"\+?[0-9]{5,16}")),
    region=st.sampled_from([None, *REGIONS]),
)
def test_normalize_raises_only_invalid_phone_number(raw: str, region: str | None) -> None:
    try:
        result = normalize(raw, region)
    except InvalidPhoneNumber as exc:
        assert exc.value == raw
        assert exc.field == "phone"
        return
    assert E164.fullmatch(result)
    assert is_e164(result)
    assert phonenumbers.is_valid_number(phonenumbers.parse(result))
    assert normalize(result) == result
    assert PhoneNormalizer(region).try_normalize(raw) == result
