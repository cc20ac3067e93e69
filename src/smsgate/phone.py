"""E.164 phone-number normalisation on top of Google's ``phonenumbers``.

Every phone number inside smsgate is an E.164 string (``+2348012345678``). This module
turns what people type -- ``0801 234 5678``, ``(080) 1234-5678``, ``00234 801 234 5678``,
``2348012345678`` -- into that form, or raises :class:`~smsgate.errors.InvalidPhoneNumber`
saying which input was rejected and why.

Rules of :func:`normalize`:

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
``phonenumbers`` parse + validate is slow, so results (successes and failures alike) are
kept in an LRU cache of 131,072 entries keyed by ``(raw, region)``. Input that already looks
like E.164 skips the clean-up and is only parsed and validated. Measured on the
2-core development machine with ``timeit`` (Python 3.11, phonenumbers 9.0.43; 20,000
distinct Nigerian numbers, best of 3)::

    phonenumbers.parse + is_valid_number alone          ~16,000 numbers/s
    normalize(), cache miss, E.164 input                ~15,000 numbers/s
    normalize(), cache miss, national input ("NG")      ~13,000 numbers/s
    normalize(), cache hit                      2,000,000-2,400,000 numbers/s

so a million-row campaign with repeated numbers costs dictionary look-ups, not parses.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

from smsgate.errors import ConfigError, InvalidPhoneNumber

__all__ = [
    "PhoneNormalizer",
    "is_e164",
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
_MAX_RAW_LEN: Final = 64
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


def _check_region(region: str | None) -> str | None:
    if region is None:
        return None
    code = _REGION_CODES.get(region) if isinstance(region, str) else None
    if code is None:
        code = region.upper() if isinstance(region, str) else ""
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f"unknown phone region {region!r}; expected an ISO 3166 alpha-2 code such as 'NG'"
            )
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
        return None, _PARSE_REASONS.get(exc.error_type, "not a number")
    if phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, PhoneNumberFormat.E164), ""
    return None, _describe_invalid(number, region)


def _normalize_slow(raw: str, region: str | None) -> tuple[str | None, str]:
    """Normalise ``raw`` with phonenumbers; returns ``(e164, "")`` or ``(None, reason)``.

    The reference behaviour: :func:`_normalize_fast` must agree with it whenever it answers.
    """
    if _E164_RE.fullmatch(raw):  # already E.164-shaped: only parse and validate
        return _parse_valid(raw, None)
    if not raw or raw.isspace():
        return None, "it is empty"
    if len(raw) > _MAX_RAW_LEN:
        return None, f"too long ({len(raw)} characters)"
    bad = _BAD_CHAR_RE.search(raw)
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
            "a national number (leading 0) but no region was given to interpret it",
        )
    intl, reason = _parse_valid("+" + cleaned, None)
    if intl is not None:
        return intl, ""
    return None, (
        f"not a valid international number ({reason}), and no region was given "
        "to read it as a national number"
    )


# --------------------------------------------------------------------------- fast path
#
# phonenumbers.parse() + is_valid_number() cost ~65 us a number here. The code below redoes
# the part of that work which ordinary input needs (digits and separators; E.164, 00, bare
# international or national), with regular expressions compiled once per region from
# phonenumbers' own metadata, following phonenumbers' code step by step:
#
# * parse(): _extract_country_code, _maybe_extract_country_code (the region's international
#   prefix; the region's own calling code written without '+'),
#   _maybe_strip_national_prefix_carrier_code (plain prefixes, regex prefixes and transform
#   rules) and the _test_number_length() check that decides whether a stripped national
#   prefix stays stripped;
# * is_valid_number(): region_code_for_number() (the regions of a shared calling code are
#   tried in metadata order, and one with leading_digits claims a number on a prefix match
#   alone) and _number_type_helper() (the general desc, then any type desc, each desc's own
#   possible lengths being checked only when it lists some).
#
# It can only accept: whenever it is not certain -- non-ASCII or unusual characters, a number
# dialled with the region's international prefix, metadata it does not model -- it returns
# None and _normalize_slow() decides, so every rejection and its wording comes from there.

_MIN_NSN: Final = 2  # phonenumbers' _MIN_LENGTH_FOR_NSN
_MAX_NSN: Final = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
_NON_GEO_REGION: Final = "001"
_CC_REGIONS: Final[dict[int, tuple[str, ...]]] = phonenumbers.COUNTRY_CODE_TO_REGION_CODE


def _calling_code_heads() -> dict[str, tuple[str, int]]:
    """Every 3-digit string -> (the shortest calling code it starts with, its length), as
    phonenumbers' _extract_country_code() finds it; calling codes never start with 0."""
    codes = {str(cc) for cc in _CC_REGIONS}
    heads: dict[str, tuple[str, int]] = {}
    for n in range(1000):
        head = f"{n:03d}"
        for size in (1, 2, 3):
            if head[:size] in codes:
                heads[head] = (head[:size], size)
                break
    return heads


_CC_HEADS: Final = _calling_code_heads()
# the type descs _number_type_helper() tries; a number is valid when it matches any of them
# (mobile only counts when its pattern differs from fixed_line's). Listed most common first:
# the order of alternatives in a fullmatch() does not change what matches, only how fast.
_TYPE_DESCS: Final = (
    "fixed_line",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
# ASCII characters that _SEPARATORS_RE removes; anything else leaves a non-digit behind and
# sends the input to the slow path
_SEPARATOR_TABLE: Final = str.maketrans("", "", " \t\n\r\f\v().-")
_TOO_LONG: Final = int(phonenumbers.ValidationResult.TOO_LONG)
# _test_number_length() results after which parse() keeps the national prefix
_KEEP_PREFIX: Final = frozenset(
    int(result)
    for result in (
        phonenumbers.ValidationResult.TOO_SHORT,
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        phonenumbers.ValidationResult.INVALID_LENGTH,
    )
)


def _plain_digits(pattern: str | None) -> str | None:
    """``pattern`` when it is a literal digit string (a regex that only matches itself)."""
    return pattern if pattern and pattern.isascii() and pattern.isdigit() else None


class _Plan:
    """The metadata of one region (or non-geographic calling code), compiled."""

    __slots__ = (
        "cc_str",
        "general",
        "idd",
        "idd_plain",
        "leading",
        "lengths",
        "local_lengths",
        "npp",
        "npp_plain",
        "simple_prefix",
        "single",
        "strip_lengths",
        "too_long_lengths",
        "transform",
        "valid_by_length",
    )

    def __init__(self, metadata: phonenumbers.PhoneMetadata) -> None:
        general_desc = metadata.general_desc
        general_pattern = general_desc.national_number_pattern if general_desc is not None else None
        self.cc_str: str = str(metadata.country_code)
        self.general: re.Pattern[str] | None = re.compile(general_pattern) if general_pattern else None
        self.lengths: tuple[int, ...] = tuple(general_desc.possible_length) if general_desc else ()
        self.local_lengths: frozenset[int] = frozenset(
            (general_desc.possible_length_local_only or ()) if general_desc else ()
        )
        idd = metadata.international_prefix
        self.idd: re.Pattern[str] | None = re.compile(idd) if idd else None
        self.idd_plain: str | None = _plain_digits(idd)
        leading = metadata.leading_digits
        self.leading: re.Pattern[str] | None = re.compile(leading) if leading is not None else None
        npp = metadata.national_prefix_for_parsing
        self.npp: re.Pattern[str] | None = re.compile(npp) if npp else None
        self.npp_plain: str | None = _plain_digits(npp)  # tested with startswith()
        self.transform: str | None = metadata.national_prefix_transform_rule or None
        # a plain national prefix ("0") without a transform rule: the common case
        self.simple_prefix: str | None = self.npp_plain if self.transform is None else None
        # lengths a number may have after its national prefix is stripped for parse() to
        # keep it stripped (and be within the NSN limits)
        self.strip_lengths: frozenset[int] = frozenset(
            n for n in range(_MIN_NSN, _MAX_NSN + 1) if self.length_result(n) not in (None, *_KEEP_PREFIX)
        )
        self.too_long_lengths: frozenset[int] = frozenset(
            n for n in range(_MAX_RAW_LEN + 1) if self.length_result(n) == _TOO_LONG
        )
        # is_valid_number for this region: one regex per possible length, the general
        # pattern as a look-ahead and the type patterns allowing that length as alternatives
        self.valid_by_length: dict[int, re.Pattern[str]] = {}
        if general_pattern:
            descs = [getattr(metadata, name) for name in _TYPE_DESCS]
            if not metadata.same_mobile_and_fixed_line_pattern:
                descs.insert(0, metadata.mobile)
            for length in self.lengths or range(_MIN_NSN, _MAX_NSN + 1):
                alternatives: list[str] = []
                for desc in descs:
                    pattern = desc.national_number_pattern if desc is not None else None
                    if not pattern or (desc.possible_length and length not in desc.possible_length):
                        continue
                    if pattern not in alternatives:
                        alternatives.append(pattern)
                if alternatives:
                    either = "|".join(f"(?:{pattern})" for pattern in alternatives)
                    self.valid_by_length[length] = re.compile(f"(?=(?:{general_pattern})\\Z)(?:{either})")
        # the validator, when this region has its calling code to itself (NG, ZA; not GB)
        own_code = _CC_REGIONS.get(metadata.country_code or 0, ())
        self.single: dict[int, re.Pattern[str]] | None = (
            self.valid_by_length if len(own_code) == 1 and own_code[0] == metadata.id else None
        )

    def is_valid(self, nsn: str) -> bool:
        """phonenumbers' ``_number_type_helper(nsn, metadata) != UNKNOWN``."""
        pattern = self.valid_by_length.get(len(nsn))
        return pattern is not None and pattern.fullmatch(nsn) is not None

    def length_result(self, length: int) -> int | None:
        """phonenumbers' _test_number_length() for a number of ``length`` digits, as an int;
        None where it would fail (no possible lengths)."""
        lengths = self.lengths
        if not lengths:
            return None
        result = phonenumbers.ValidationResult
        if length in self.local_lengths:
            return int(result.IS_POSSIBLE_LOCAL_ONLY)
        if lengths[0] == length:
            return int(result.IS_POSSIBLE)
        if lengths[0] > length:
            return int(result.TOO_SHORT)
        if lengths[-1] < length:
            return int(result.TOO_LONG)
        return int(result.IS_POSSIBLE if length in lengths[1:] else result.INVALID_LENGTH)

    def idd_matches(self, digits: str) -> bool:
        """Whether ``digits`` start with this region's international prefix."""
        if self.idd_plain is not None:
            return digits.startswith(self.idd_plain)
        return self.idd is not None and self.idd.match(digits) is not None

    def strip_national_prefix(self, number: str) -> str | None:
        """The number part of phonenumbers' _maybe_strip_national_prefix_carrier_code();
        None where phonenumbers would fail (a transform rule but no groups)."""
        if not number:
            return number
        plain = self.npp_plain
        if plain is not None:
            if not number.startswith(plain):
                return number
            if self.transform is not None:
                return None
            stripped = number[len(plain) :]
        else:
            npp = self.npp
            if npp is None:
                return number
            match = npp.match(number)
            if match is None:
                return number
            groups = match.groups()
            if self.transform is None:
                stripped = number[match.end() :]
            elif not groups:
                return None
            elif groups[-1] is None:
                stripped = number[match.end() :]
            else:
                stripped = npp.sub(self.transform, number, count=1)
        general = self.general
        # a number that is viable (matches the general pattern) keeps its prefix when the
        # stripped number would not be
        if general is not None and general.fullmatch(number) and not general.fullmatch(stripped):
            return number
        return stripped

    def finish_parse(self, number: str) -> str | None:
        """The end of phonenumbers.parse() once the calling code is known: strip the national
        prefix if what remains is long enough. Returns the national significant number, ""
        where parse() would raise, None when unsure."""
        if len(number) < _MIN_NSN:
            return ""
        stripped = self.strip_national_prefix(number)
        if stripped is None:
            return None
        if stripped != number:
            result = self.length_result(len(stripped))
            if result is None:
                return None
            if result not in _KEEP_PREFIX:
                number = stripped
        return number if _MIN_NSN <= len(number) <= _MAX_NSN else ""


class _CallingCode:
    """A country calling code: the plan parse() uses, and the plans of its regions in the
    order region_code_for_number() tries them."""

    __slots__ = ("main", "members", "single")

    def __init__(self, main: _Plan, members: tuple[_Plan, ...]) -> None:
        self.main = main
        self.members = members
        # the validator when one region has the whole calling code
        self.single: dict[int, re.Pattern[str]] | None = (
            members[0].valid_by_length if len(members) == 1 else None
        )

    def region_index(self, nsn: str) -> int | None:
        """Index of the region region_code_for_number() gives ``nsn``; None for none."""
        members = self.members
        if len(members) == 1:
            return 0
        for index, plan in enumerate(members):
            if plan.leading is not None:
                if plan.leading.match(nsn):
                    return index
            elif plan.is_valid(nsn):
                return index
        return None

    def is_valid(self, nsn: str) -> bool:
        """phonenumbers.is_valid_number() for this calling code and ``nsn``."""
        single = self.single
        if single is not None:
            pattern = single.get(len(nsn))
            return pattern is not None and pattern.fullmatch(nsn) is not None
        for plan in self.members:  # region_code_for_number(), then is_valid_number_for_region()
            if plan.leading is not None:
                if plan.leading.match(nsn):
                    return plan.is_valid(nsn)
            elif plan.is_valid(nsn):
                return True
        return False


_REGION_PLANS: dict[str, _Plan | None] = {}
_CALLING_CODES: dict[str, _CallingCode | None] = {}


def _region_plan(region: str) -> _Plan | None:
    if region not in _REGION_PLANS:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
        _REGION_PLANS[region] = _Plan(metadata) if metadata is not None else None
    return _REGION_PLANS[region]


def _calling_code(cc_str: str) -> _CallingCode | None:
    if cc_str not in _CALLING_CODES:
        cc = int(cc_str)
        plans: list[_Plan | None] = []
        for region in _CC_REGIONS.get(cc, ()):
            if region == _NON_GEO_REGION:
                metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(cc, None)
                plans.append(_Plan(metadata) if metadata is not None else None)
            else:
                plans.append(_region_plan(region))
        members = tuple(plan for plan in plans if plan is not None)
        # a region without metadata is skipped by phonenumbers in a way not modelled here
        complete = bool(plans) and len(members) == len(plans)
        _CALLING_CODES[cc_str] = _CallingCode(members[0], members) if complete else None
    return _CALLING_CODES[cc_str]


def _parse_international(digits: str) -> tuple[str, _CallingCode, str] | None:
    """phonenumbers.parse("+" + digits, None) as (calling code, its data, national
    significant number); None when parse() would raise or when unsure."""
    if len(digits) <= _MIN_NSN:
        return None
    head = _CC_HEADS.get(digits[:3])
    if head is None:
        return None
    cc_str, size = head
    code = _CALLING_CODES.get(cc_str) or _calling_code(cc_str)
    if code is None:
        return None
    nsn = digits[size:]
    main = code.main
    plain = main.npp_plain
    npp = main.npp
    if npp is None or (nsn.startswith(plain) if plain is not None else npp.match(nsn) is not None):
        parsed = main.finish_parse(nsn)
        if not parsed:
            return None
        nsn = parsed
    elif not _MIN_NSN <= len(nsn) <= _MAX_NSN:
        return None
    return cc_str, code, nsn


def _international(digits: str) -> str | None:
    """The E.164 form of ``"+" + digits`` if phonenumbers accepts it, else None."""
    parsed = _parse_international(digits)
    if parsed is None:
        return None
    cc_str, code, nsn = parsed
    single = code.single  # the region has its calling code to itself: one compiled pattern
    if single is not None:
        pattern = single.get(len(nsn))
        valid = pattern is not None and pattern.fullmatch(nsn) is not None
    else:
        valid = code.is_valid(nsn)
    return f"+{cc_str}{nsn}" if valid else None


def _national(digits: str, plan: _Plan) -> str | None:
    """phonenumbers.parse(digits, region) + is_valid_number(), ``plan`` being the region's.

    Returns the E.164 string, "" when phonenumbers rejects the number, None when unsure.
    """
    if plan.idd_matches(digits):
        return None  # dialled with the region's international prefix
    cc_str = plan.cc_str
    code = _CALLING_CODES.get(cc_str) or _calling_code(cc_str)
    if code is None:
        return None
    number = digits
    parse_plan = plan
    if digits.startswith(cc_str):
        # maybe the region's own calling code without '+' (2348012345678 in NG)
        potential = plan.strip_national_prefix(digits[len(cc_str) :])
        if potential is None:
            return None
        general = plan.general
        strip_cc = (
            general is not None
            and general.fullmatch(digits) is None
            and general.fullmatch(potential) is not None
        )
        if not strip_cc:
            result = plan.length_result(len(digits))
            if result is None:
                return None
            strip_cc = result == _TOO_LONG
        if strip_cc:
            number = potential
            parse_plan = code.main  # parse() switches to the calling code's main region
    nsn = parse_plan.finish_parse(number)
    if nsn is None:
        return None
    if not nsn:
        return ""
    return f"+{cc_str}{nsn}" if code.is_valid(nsn) else ""


def _normalize_fast(raw: str, region: str | None) -> str | None:
    """What :func:`_normalize_slow` returns for ``raw`` when that is a number, else None.

    ``region`` is a canonical region code (see :func:`_check_region`) or None. None means
    "ask the slow path", never "invalid".
    """
    if len(raw) > _MAX_RAW_LEN:
        return None
    if raw.isdigit() and raw.isascii():
        cleaned = raw
    elif raw[:1] == "+" and raw[1:].isdigit() and raw.isascii():  # E.164
        return _international(raw[1:])
    else:
        # replace() is much cheaper than translate() for the usual spaces and dashes
        cleaned = raw.replace(" ", "").replace("-", "")
        if not (cleaned.isdigit() and cleaned.isascii()):
            digits = cleaned[1:]
            if cleaned[:1] == "+" and digits.isdigit() and digits.isascii():
                return _international(digits)
            cleaned = cleaned.translate(_SEPARATOR_TABLE)
            if cleaned[:1] == "+":
                digits = cleaned[1:]
                return _international(digits) if digits.isdigit() and digits.isascii() else None
            if not (cleaned.isdigit() and cleaned.isascii()):
                return None
    if cleaned[0] == "0":
        if len(cleaned) > 1 and cleaned[1] == "0":
            return _international(cleaned[2:])
        if region is None:
            return None
    elif region is None:
        return _international(cleaned)
    plan = _REGION_PLANS.get(region) or _region_plan(region)
    if plan is None:
        return None
    single = plan.single
    prefix = plan.simple_prefix
    idd_plain = plan.idd_plain
    if (
        single is not None
        and prefix is not None
        and not (
            cleaned.startswith(idd_plain)
            if idd_plain is not None
            else plan.idd is not None and plan.idd.match(cleaned) is not None
        )
    ):
        # The common cases, for a region with a plain national prefix ("0") and a calling
        # code of its own, shortened from _national() below, which handles the rest.
        cc_str = plan.cc_str
        if cleaned.startswith(cc_str):
            # the region's calling code without '+' (2348012345678 in NG): parse() takes it
            # as such when the rest is viable (a valid rest is) and the whole is not, or when
            # the whole is too long
            nsn = cleaned[len(cc_str) :]
            if not nsn.startswith(prefix) and _MIN_NSN <= len(nsn) <= _MAX_NSN:
                pattern = single.get(len(nsn))
                general = plan.general
                if (
                    pattern is not None
                    and general is not None
                    and pattern.fullmatch(nsn)
                    and (len(cleaned) in plan.too_long_lengths or not general.fullmatch(cleaned))
                ):
                    return f"+{cc_str}{nsn}"
        elif cleaned.startswith(prefix):
            # national prefix + a valid number: parse() strips the prefix (what remains is
            # viable, being valid) and keeps it stripped when the length allows
            nsn = cleaned[len(prefix) :]
            if len(nsn) in plan.strip_lengths:
                pattern = single.get(len(nsn))
                if pattern is not None and pattern.fullmatch(nsn):
                    return f"+{cc_str}{nsn}"
        else:
            # no prefix to strip: parse() reads the digits as they are
            if _MIN_NSN <= len(cleaned) <= _MAX_NSN:
                pattern = single.get(len(cleaned))
                if pattern is not None and pattern.fullmatch(cleaned):
                    return f"+{cc_str}{cleaned}"
            # not a national number of the region: maybe international digits
            return None if cleaned[0] == "0" else _international(cleaned)
    national = _national(cleaned, plan)
    if national:
        return national
    if national is None or cleaned[0] == "0":
        return None  # unsure; or invalid, and a leading 0 means no international reading
    return _international(cleaned)


def _region_of_fast(e164: str) -> str | None:
    """What region_of() returns for an E.164-shaped ``e164``; "" when unsure or invalid."""
    parsed = _parse_international(e164[1:])
    if parsed is None:
        return ""
    cc_str, code, nsn = parsed
    regions = _CC_REGIONS[int(cc_str)]
    index = code.region_index(nsn)
    # an unmatched number of a shared calling code gets its main region
    region = regions[index if index is not None else 0]
    return None if region == _NON_GEO_REGION else region


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
    """region_of() by phonenumbers; the reference for :func:`_region_of_fast`."""
    number = _parse_e164(e164)
    # an invalid number in a shared country code (+44: GB, GG, IM, JE) has no region of its
    # own; fall back to the main region of the country code
    region = phonenumbers.region_code_for_number(number)
    if not region and number.country_code is not None:
        region = phonenumbers.region_code_for_country_code(number.country_code)
    if not region or region == phonenumbers.UNKNOWN_REGION or not region.isalpha():
        return None  # unknown, or "001" for non-geographic numbers
    return str(region)
