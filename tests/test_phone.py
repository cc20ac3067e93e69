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


@pytest.mark.parametrize("raw", ["+9991234567", "9991234567", "+0803123456", "++2348031234567", "+1"])
def test_an_unparsable_number_leaves_no_reference_cycle(raw: str) -> None:
    """phonenumbers.parse keeps the traceback of an exception it handled in a local of its own
    frame: a cycle through every caller's frame (a campaign preparation's chunk of rows) that
    only the cyclic collector frees. Normalising cuts it, so nothing is left for the collector."""
    import gc

    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(InvalidPhoneNumber):
            normalize(raw, "NG")
        assert phone._normalize_slow(raw, "NG")[0] is None
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


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


# --------------------------------------------------------------------------- fast path
#
# phone._normalize_fast() (smsgate._phonefast) re-implements phonenumbers' parse +
# is_valid_number for ordinary input; it may decline (None) but must never answer differently
# from the slow path. These are random (hypothesis) and targeted checks; the exhaustive one,
# every example number of every region in many forms, is tests/test_phone_differential.py.

FAST_REGIONS = "NG ZA GB US CA KE GH IN DE FR IT BR AR MX AU JP CN".split()
NUMBER_TYPES = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.VOIP,
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    phonenumbers.PhoneNumberType.PAGER,
    phonenumbers.PhoneNumberType.UAN,
    phonenumbers.PhoneNumberType.VOICEMAIL,
)


def _examples(region: str) -> list[phonenumbers.PhoneNumber]:
    """The example number of every type phonenumbers has one for in ``region``."""
    found = (phonenumbers.example_number_for_type(region, kind) for kind in NUMBER_TYPES)
    return [number for number in found if number is not None]


FAST_EXAMPLES = {region: _examples(region) for region in FAST_REGIONS}


def _number(cc: int, nsn: str) -> phonenumbers.PhoneNumber:
    """A PhoneNumber whose national significant number is exactly ``nsn`` (leading zeros too)."""
    number = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
    zeros = len(nsn) - len(nsn.lstrip("0"))
    if zeros and len(nsn) > 1:
        number.italian_leading_zero = True
        number.number_of_leading_zeros = min(zeros, len(nsn) - 1)
    assert phonenumbers.national_significant_number(number) == nsn
    return number


@st.composite
def national_significant_numbers(draw: st.DrawFn) -> tuple[str, int, str]:
    """(region, calling code, nsn): an example number with random trailing digits, often
    corrupted (a digit dropped, added or replaced) -- valid and invalid alike."""
    region = draw(st.sampled_from(FAST_REGIONS))
    example = draw(st.sampled_from(FAST_EXAMPLES[region]))
    nsn = phonenumbers.national_significant_number(example)
    keep = draw(st.integers(min_value=min(2, len(nsn)), max_value=len(nsn)))
    tail = draw(st.text(alphabet="0123456789", min_size=len(nsn) - keep, max_size=len(nsn) - keep))
    digits = list(nsn[:keep] + tail)
    corruption = draw(st.sampled_from(["none", "none", "drop", "add", "replace", "prefix"]))
    position = draw(st.integers(min_value=0, max_value=len(digits) - 1))
    digit = draw(st.sampled_from("0123456789"))
    if corruption == "drop" and len(digits) > 2:
        del digits[position]
    elif corruption == "add":
        digits.insert(position, digit)
    elif corruption == "replace":
        digits[position] = digit
    elif corruption == "prefix":
        digits.insert(0, digit)
    return region, example.country_code, "".join(digits)


@st.composite
def typed_numbers(draw: st.DrawFn) -> tuple[str, str | None]:
    """(raw input, region): a number of FAST_REGIONS written as people type it."""
    region, cc, nsn = draw(national_significant_numbers())
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    formatted = phonenumbers.format_number(_number(cc, nsn), PhoneNumberFormat.NATIONAL)
    raw = draw(
        st.sampled_from(
            [
                f"+{cc}{nsn}",
                f"00{cc}{nsn}",
                f"{cc}{nsn}",
                f"{metadata.national_prefix or ''}{nsn}",
                nsn,
                formatted,
                re.sub(r"\D", "", formatted),
                phonenumbers.format_number(_number(cc, nsn), PhoneNumberFormat.INTERNATIONAL),
            ]
        )
    )
    if draw(st.booleans()):  # random separators
        separators = draw(st.lists(st.sampled_from([" ", "-", ".", "(", ")", "  ", "\t"]), max_size=4))
        for separator in separators:
            position = draw(st.integers(min_value=0, max_value=len(raw)))
            raw = raw[:position] + separator + raw[position:]
    reading = draw(st.sampled_from([region, region, None, *FAST_REGIONS]))
    return raw, reading


@settings(max_examples=600, deadline=None)
@given(case=typed_numbers())
def test_fast_path_agrees_with_slow_path(case: tuple[str, str | None]) -> None:
    raw, region = case
    fast = phone._normalize_fast(raw, region)
    slow, _ = phone._normalize_slow(raw, region)
    if fast is not None:  # the fast path may decline, never disagree or accept an invalid number
        assert fast == slow, (raw, region)


@settings(max_examples=500, deadline=None)
@given(case=national_significant_numbers())
def test_fast_validator_is_is_valid_number(case: tuple[str, int, str]) -> None:
    _, cc, nsn = case
    code = phone._calling_code(str(cc))
    assert code is not None
    assert code.is_valid(nsn) == phonenumbers.is_valid_number(_number(cc, nsn)), (cc, nsn)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("08031234567", "NG", "+2348031234567"),
        ("0803 123 4567", "NG", "+2348031234567"),
        ("0803-123-4567", "NG", "+2348031234567"),
        ("(0803) 123.4567", "NG", "+2348031234567"),
        ("2348031234567", "NG", "+2348031234567"),
        ("+2348031234567", "NG", "+2348031234567"),
        ("+234 803 123 4567", None, "+2348031234567"),
        ("002348031234567", "NG", "+2348031234567"),
        ("27815854565", "NG", "+27815854565"),
        ("+27 81 585 4565", "NG", "+27815854565"),
        ("081 585 4565", "ZA", "+27815854565"),
        ("+44 7400 123456", "NG", "+447400123456"),
        ("447400123456", "NG", "+447400123456"),
        ("07400 123456", "GB", "+447400123456"),
        ("+44 (0)7400 123456", None, "+447400123456"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("0712 123456", "KE", "+254712123456"),
    ],
)
def test_ordinary_input_takes_the_fast_path(
    raw: str, region: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_slow_path(raw: str, region: str | None) -> tuple[str | None, str]:
        raise AssertionError(f"slow path used for {raw!r}")

    monkeypatch.setattr(phone, "_normalize_slow", no_slow_path)
    phone._normalize_cached.cache_clear()
    try:
        assert normalize(raw, region) == expected
    finally:
        phone._normalize_cached.cache_clear()


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("011 44 7400 123456", "US", "+447400123456"),  # the region's international prefix
        ("+٢٣٤٨٠١٢٣٤٥٦٧٨", None, None),  # non-ASCII digits
        ("0803\u00a0123\u00a04567", "NG", "+2348031234567"),  # non-ASCII space
        ("0801234567", "NG", None),  # invalid: always the slow path, for its reason
    ],
)
def test_fast_path_declines_what_it_does_not_model(
    raw: str, region: str | None, expected: str | None
) -> None:
    assert phone._normalize_fast(raw, region) is None
    assert phone._normalize_slow(raw, region)[0] == expected
    assert PhoneNormalizer(region).try_normalize(raw) == expected


def test_region_of_fast_path_agrees_with_phonenumbers() -> None:
    for e164 in [
        "+2348031234567",
        "+447400123456",
        "+441481123456",
        "+447624123456",
        "+15555550123",
        "+12684601234",
        "+78001234567",
        "+77012345678",
        "+80012345678",
        "+447700900123",
        "+390669812345",
        "+590590271234",
        "+5999123456",
    ]:
        assert phone._region_of_fast(e164) in ("", phone._region_of_slow(e164)), e164
        assert region_of(e164) == phone._region_of_slow(e164), e164


def test_a_number_longer_than_e164_allows_is_invalid_on_both_paths() -> None:
    """phonenumbers takes ``+4920100000000000`` (16 digits) for a valid German number; E.164 allows
    15, and every other part of smsgate (``is_e164``, stores' keys) refuses it: normalised, it was
    accepted by the send path and refused later. Found by the hypothesis test above."""
    from smsgate import _phonefast

    for raw, region in (("4920100000000000", None), ("+4920100000000000", None), ("+49 2010 0000 0000 00", "DE")):
        with pytest.raises(InvalidPhoneNumber, match="more than the 15"):
            normalize(raw, region)
        assert _phonefast.normalize_fast(raw, region) is None  # the fast path leaves it to the slow one
    assert normalize("+492010000000000") == "+492010000000000"  # 15 digits
