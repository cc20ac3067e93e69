"""E.164 phone-number normalisation on top of Google's ``phonenumbers``.

Every phone number inside smsgate is an E.164 string (``+2348012345678``). This module
turns what people type -- ``0801 234 5678``, ``(080) 1234-5678``, ``00234 801 234 5678``,
``2348012345678`` -- into that form, or raises :class:`~smsgate.errors.InvalidPhoneNumber`
saying which input was rejected and why.

Rules of :func:`normalize`:

* A number written as a spreadsheet's text formula, ``="08012345678"`` (how a CSV exported
  for Excel keeps its leading 0), is read as the text between the quotes.
* A number written as a decimal, ``4366412345678.0`` (a column of floats, as pandas writes
  one with an empty cell), is read as its integer, not as a separator and an extra 0; one with
  a space or dash inside (``030 1234.00``) or a leading 0 (``0301234.00``: no float has one) is
  a number written by hand, read as its digits.
* Spaces, dashes, dots and parentheses are ignored; anything else that is not a digit
  (letters, ``#``, ``*``, a ``+`` that is not the first character) is rejected.
* ``+`` or a leading ``00`` mean the number is international.
* Bare digits are first read as a national number of ``region`` (``08012345678`` with
  region ``NG``); when that is not a valid number, or no region is given, they are read as
  international digits without the ``+`` (``27815854565`` -> ``+27815854565``).
* The result must pass :func:`phonenumbers.is_valid_number`, not merely
  ``is_possible_number``.
* ``region`` is an ISO 3166 alpha-2 code, case-insensitive; an unknown region is a
  configuration mistake and raises :class:`~smsgate.errors.ConfigError`.

Performance
-----------
``phonenumbers`` parse + validate is slow, so ordinary input (ASCII digits and separators)
first takes a fast path, :mod:`smsgate._phonefast`: regular expressions compiled per region
from phonenumbers' metadata that give phonenumbers' answer or decline (then phonenumbers
decides; every rejection does). ``tests/test_phone_differential.py`` proves it equal to
phonenumbers over every region. Results (successes and failures alike) are also kept in an
LRU cache of 131,072 entries keyed by ``(raw, region)``. Measured on the 2-core development
machine (Python 3.11, phonenumbers 9.0.43; 20,000 distinct Nigerian numbers, best of 3)::

    phonenumbers.parse + is_valid_number alone          ~35,000 numbers/s
    phonenumbers path alone (_normalize_slow), E.164    ~32,000 numbers/s
    phonenumbers path alone, national input ("NG")      ~22,000 numbers/s
    normalize(), cache miss, E.164 input               ~580,000 numbers/s
    normalize(), cache miss, national input ("NG")     ~350,000 numbers/s
    normalize(), cache hit                           ~2,600,000 numbers/s

On a mix of 100,000 Nigerian, South African and US numbers in national and international
forms, 3% of them invalid (``bench/phone_fast.py``), ``normalize()`` is ~7x faster with the
fast path than without; the 3% invalid numbers, which always go to phonenumbers (for its
reason), take ~40% of that time. A million-row campaign with repeated numbers costs dictionary look-ups.
"""

from __future__ import annotations

import re
import traceback
from functools import lru_cache
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

from smsgate import _phonefast
from smsgate.errors import ConfigError, InvalidPhoneNumber, shown_value

__all__ = [
    "PhoneNormalizer",
    "is_e164",
    "known_region",
    "normalize",
    "region_of",
    "to_international_digits",
    "to_national",
]

_E164_RE: Final = re.compile(r"\+[1-9][0-9]{6,14}")
# separators people type inside numbers; removed before parsing
_SEPARATORS_RE: Final = re.compile(r"[\s().\-]+")
_CLEANED_RE: Final = re.compile(r"\+?[0-9]+")
_BAD_CHAR_RE: Final = re.compile(r"[^0-9+\s().\-]")
#: A number a CSV export for Excel wrote as a text formula, to keep its leading 0: ``="0803..."``.
_FORMULA_RE: Final = re.compile(r'="([^"=]*)"')
#: A number a spreadsheet saved as it showed it: ``2.34803E+12``.
_SCIENTIFIC_RE: Final = re.compile(r"\d+(?:[.,]\d+)?[eE]\+?\d+")
_MAX_RAW_LEN: Final = _phonefast.MAX_RAW_LEN
_CACHE_SIZE: Final = 1 << 17

_PARSE_REASONS: Final = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country calling code",
    NumberParseException.NOT_A_NUMBER: "not a number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS: Final = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country calling code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong number of digits",
}


def is_e164(value: str) -> bool:
    """Return whether ``value`` has E.164 shape (``+`` and 7-15 digits); no validation."""
    return _E164_RE.fullmatch(value) is not None


def _show(raw: object) -> str:
    """repr() of a rejected input, shortened so a huge value cannot flood a message/log."""
    text = repr(raw)
    return text if len(text) <= 48 else text[:45] + "..."


# "NG" and "ng" -> "NG": a dict hit instead of upper() + set lookup on every call
_REGION_CODES: Final[dict[str, str]] = {
    **{code.lower(): code for code in phonenumbers.SUPPORTED_REGIONS},
    **{code: code for code in phonenumbers.SUPPORTED_REGIONS},
}


#: Codes people write for a region whose ISO 3166 code is another.
_REGION_MISTAKES: Final[dict[str, str]] = {"UK": "GB", "EN": "GB", "UAE": "AE", "KSA": "SA"}


def known_region(region: str) -> str:
    """``region`` as its ISO 3166 alpha-2 code (``"ng"`` -> ``"NG"``), or a :class:`ValueError` saying
    it is none, with the code meant when it is a usual mistake (``"UK"``: the United Kingdom is ``GB``).
    Configuration checks (``default_region``, a route's ``countries``) use it."""
    code = _REGION_CODES.get(region.upper()) if isinstance(region, str) else None
    if code is not None:
        return code
    meant = _REGION_MISTAKES.get(region.upper()) if isinstance(region, str) else None
    hint = f" (did you mean {meant!r}?)" if meant else ""
    shown = shown_value(region)
    raise ValueError(f"{shown} is not an ISO 3166 alpha-2 region code such as 'NG' or 'ZA'{hint}")


def _check_region(region: str | None) -> str | None:
    if region is None:
        return None
    code = _REGION_CODES.get(region) if isinstance(region, str) else None
    if code is None:
        try:
            code = known_region(region)  # the one rule ("Ng"; "UK" names the code meant)
        except ValueError as exc:
            raise ConfigError(f"unknown phone region: {exc}") from None
    return code


def _invalid(raw: object, reason: str) -> InvalidPhoneNumber:
    return InvalidPhoneNumber(f"{_show(raw)} is not a valid phone number: {reason}", field="phone", value=raw)


def _describe_invalid(number: PhoneNumber, region_hint: str | None) -> str:
    """Say why a parsed number is not valid."""
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        return _POSSIBLE_REASONS[possible]
    region = phonenumbers.region_code_for_number(number) or region_hint
    if region and region != phonenumbers.UNKNOWN_REGION:
        return f"not a valid number for region {region}"
    return f"not a valid number for country code +{number.country_code}"




def _parse_valid(text: str, region: str | None) -> tuple[str | None, str]:
    """Parse ``text`` (digits, optionally with ``+``); return (e164, '') or (None, reason)."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        # phonenumbers.parse keeps the traceback of an exception it handled in a local of its
        # frame (sys.exc_info()): a reference cycle through every caller's frame and locals (a
        # campaign preparation's whole chunk of rows) that only the cyclic garbage collector
        # frees. Clearing the frames' locals cuts it.
        traceback.clear_frames(exc.__traceback__)
        return None, _PARSE_REASONS.get(exc.error_type, "not a number")
    if phonenumbers.is_valid_number(number):
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        if len(e164) > _phonefast.MAX_E164_LEN:  # phonenumbers' metadata takes some (DE) longer than E.164 allows
            return None, f"it has {len(e164) - 1} digits, more than the 15 an international (E.164) number may have"
        return e164, ""
    return None, _describe_invalid(number, region)


def _normalize_slow(raw: str, region: str | None) -> tuple[str | None, str]:
    """Normalise ``raw`` with phonenumbers; returns ``(e164, "")`` or ``(None, reason)``.

    The reference behaviour: :func:`smsgate._phonefast.normalize_fast` must agree with it
    whenever it answers (``tests/test_phone_differential.py``).
    """
    if _E164_RE.fullmatch(raw):  # already E.164-shaped: only parse and validate
        return _parse_valid(raw, None)
    if not raw or raw.isspace():
        return None, "it is empty"
    if len(raw) > _MAX_RAW_LEN:
        return None, f"too long ({len(raw)} characters)"
    bad = _BAD_CHAR_RE.search(raw)
    formula = _FORMULA_RE.fullmatch(raw.strip()) if bad else None
    if formula:  # only inputs the fast path declined pay for it
        return _normalize_slow(formula.group(1), region)
    integer = _phonefast.decimal_integer(raw.strip()) if "." in raw else None
    if integer is not None:  # 4366412345678.0: a float's digits, not a separator and a 0
        return _normalize_slow(integer, region)
    if bad and _SCIENTIFIC_RE.fullmatch(raw.strip()):
        return None, ("it is in scientific notation, as a spreadsheet shows a long number, and its last digits "
                      "are lost: format the column as text and export the file again")
    if bad:
        return None, f"it contains {bad.group()!r}"
    cleaned = _SEPARATORS_RE.sub("", raw)
    if not _CLEANED_RE.fullmatch(cleaned):
        if not cleaned.strip("+"):
            return None, "it has no digits"
        return None, "'+' may only appear at the start"
    if cleaned.startswith("+"):
        return _parse_valid(cleaned, None)
    if cleaned.startswith("00"):
        return _parse_valid("+" + cleaned[2:], None)
    if region is not None:
        e164, reason = _parse_valid(cleaned, region)
        if e164 is not None:
            return e164, ""
        if cleaned.startswith("0"):
            return None, reason
        # not a national number of `region`: maybe international digits without '+'
        intl, intl_reason = _parse_valid("+" + cleaned, None)
        if intl is not None:
            return intl, ""
        return None, (
            f"neither a national number of {region} ({reason}) nor an international number ({intl_reason})"
        )
    if cleaned.startswith("0"):
        return (
            None,
            "a national number (leading 0) but no region was given to interpret it: write it in "
            "international form (+ and the country code), or set the tenant's default_region "
            "(e.g. default_region = \"NG\" in smsgate.toml)",
        )
    intl, reason = _parse_valid("+" + cleaned, None)
    if intl is not None:
        return intl, ""
    return None, (
        f"not a valid international number ({reason}), and no region was given "
        "to read it as a national number (the tenant's default_region)"
    )


# --------------------------------------------------------------------------- fast path
#
# The fast path (a copy of part of phonenumbers' parse + is_valid_number, ~8x faster) lives
# in smsgate._phonefast, proven equal to the functions above by
# tests/test_phone_differential.py. These names are what other modules use (campaigns.py
# calls _normalize_fast/_normalize_slow/_invalid directly); tests may monkeypatch them.
_normalize_fast = _phonefast.normalize_fast
_region_of_fast = _phonefast.region_of_fast
_calling_code = _phonefast.calling_code


@lru_cache(maxsize=_CACHE_SIZE)
def _normalize_cached(raw: str, region: str | None) -> tuple[str | None, str]:
    """Normalise ``raw``; returns ``(e164, "")`` or ``(None, reason)`` so failures cache too."""
    e164 = _normalize_fast(raw, region)
    if e164 is not None:
        return e164, ""
    return _normalize_slow(raw, region)


def normalize(raw: str, region: str | None = None) -> str:
    """Return ``raw`` as a validated E.164 string such as ``+2348012345678``.

    ``region`` (ISO code, e.g. ``"NG"``) is used to read national numbers
    (``08012345678``). Raises :class:`~smsgate.errors.InvalidPhoneNumber` naming the input
    and the reason when it is not a valid number, and
    :class:`~smsgate.errors.ConfigError` for an unknown ``region``.
    """
    if not isinstance(raw, str):
        raise _invalid(raw, f"expected str, got {type(raw).__name__}")
    code = None if region is None else _REGION_CODES.get(region) or _check_region(region)
    e164, reason = _normalize_cached(raw, code)
    if e164 is None:
        raise _invalid(raw, reason)
    return e164


class PhoneNormalizer:
    """Normalises numbers with a fixed default region (e.g. a tenant's country)."""

    __slots__ = ("region",)

    def __init__(self, region: str | None = None) -> None:
        """Create a normaliser for ``region``; raises ConfigError for an unknown region."""
        self.region: str | None = _check_region(region)

    def __repr__(self) -> str:
        """Return ``PhoneNormalizer(region='NG')``."""
        return f"PhoneNormalizer(region={self.region!r})"

    def normalize(self, raw: str) -> str:
        """Return ``raw`` in E.164 form; raise InvalidPhoneNumber when it is not valid."""
        if not isinstance(raw, str):
            raise _invalid(raw, f"expected str, got {type(raw).__name__}")
        e164, reason = _normalize_cached(raw, self.region)
        if e164 is None:
            raise _invalid(raw, reason)
        return e164

    def try_normalize(self, raw: str) -> str | None:
        """Return ``raw`` in E.164 form, or ``None`` when it is not a valid number."""
        if not isinstance(raw, str):
            return None
        return _normalize_cached(raw, self.region)[0]


def _parse_e164(e164: str) -> PhoneNumber:
    if not isinstance(e164, str) or not _E164_RE.fullmatch(e164):
        raise InvalidPhoneNumber(
            f"{_show(e164)} is not an E.164 number (expected '+' and 7-15 digits)",
            field="phone",
            value=e164,
        )
    try:
        return phonenumbers.parse(e164, None)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not a number")
        raise InvalidPhoneNumber(
            f"{_show(e164)} is not a valid phone number: {reason}",
            field="phone",
            value=e164,
        ) from None


def to_international_digits(e164: str) -> str:
    """Return the E.164 number without its ``+``: ``+2348012345678`` -> ``2348012345678``."""
    if not isinstance(e164, str) or not _E164_RE.fullmatch(e164):
        raise InvalidPhoneNumber(
            f"{_show(e164)} is not an E.164 number (expected '+' and 7-15 digits)",
            field="phone",
            value=e164,
        )
    return e164[1:]


def to_national(e164: str) -> str:
    """Return the number as dialled inside its country, digits only.

    ``+2348012345678`` -> ``08012345678``, ``+447700900123`` -> ``07700900123``
    (national format with the trunk prefix, punctuation removed).
    """
    number = _parse_e164(e164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    return "".join(ch for ch in national if "0" <= ch <= "9")


def region_of(e164: str) -> str | None:
    """Return the ISO region code of an E.164 number (``"NG"``), or ``None``.

    A number that is not valid gets the main region of its country code (``+44...`` ->
    ``"GB"``). ``None`` means the country code is unknown or non-geographic (``+800``).
    """
    if isinstance(e164, str) and _E164_RE.fullmatch(e164):
        region = _region_of_fast(e164)
        if region != "":
            return region
    return _region_of_slow(e164)


def _region_of_slow(e164: str) -> str | None:
    """region_of() by phonenumbers; the reference for
    :func:`smsgate._phonefast.region_of_fast`."""
    number = _parse_e164(e164)
    # an invalid number in a shared country code (+44: GB, GG, IM, JE) has no region of its
    # own; fall back to the main region of the country code
    region = phonenumbers.region_code_for_number(number)
    if not region and number.country_code is not None:
        region = phonenumbers.region_code_for_country_code(number.country_code)
    if not region or region == phonenumbers.UNKNOWN_REGION or not region.isalpha():
        return None  # unknown, or "001" for non-geographic numbers
    return str(region)
