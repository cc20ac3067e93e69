"""A fast path for :func:`smsgate.phone.normalize` and :func:`smsgate.phone.region_of`: a
copy of part of phonenumbers' algorithm, compiled per region from phonenumbers' metadata.

Why it exists
-------------
``phonenumbers.parse()`` + ``is_valid_number()`` cost ~18-35 us a number on the 2-core
development machine (Python 3.11, phonenumbers 9.0.43); this module answers the same question
for ordinary input in ~2-3 us. Measured with ``bench/phone_fast.py`` (100,000 distinct
Nigerian, South African and US numbers in national and international forms, 3% invalid; best
of 3, every call a cache miss): 2.8 us a number with the fast path (falling back to
phonenumbers where it declines) against 23 us with phonenumbers alone, ~8x; ``normalize()``
itself 3.4 against 23.7 us, ~7x. That matters for campaign preparation (a million distinct
numbers), where the LRU cache in :mod:`smsgate.phone` does not help.

What it copies
--------------
phonenumbers' code, step by step, for input made of ASCII digits and the separators
``normalize()`` ignores (E.164, ``00``, bare international digits, national digits):

* ``parse()``: ``_extract_country_code``, ``_maybe_extract_country_code`` (the region's
  international prefix; the region's own calling code written without ``+``),
  ``_maybe_strip_national_prefix_carrier_code`` (plain prefixes, regex prefixes and transform
  rules) and the ``_test_number_length()`` check that decides whether a stripped national
  prefix stays stripped;
* ``is_valid_number()``: ``region_code_for_number()`` (the regions of a shared calling code
  are tried in metadata order, and one with ``leading_digits`` claims a number on a prefix
  match alone) and ``_number_type_helper()`` (the general desc, then any type desc, each
  desc's own possible lengths being checked only when it lists some);
* ``region_code_for_number()`` for :func:`region_of_fast`.

Only phonenumbers' public metadata (``PhoneMetadata``, ``COUNTRY_CODE_TO_REGION_CODE``,
``ValidationResult``) is read; no private module or attribute of phonenumbers is imported.

It can only accept: whenever it is not certain -- non-ASCII or unusual characters, a number
dialled with the region's international prefix, metadata it does not model, any number it
finds invalid -- it returns None and ``smsgate.phone._normalize_slow()`` (phonenumbers itself)
decides, so every rejection and its wording comes from phonenumbers.

How it is kept equal to phonenumbers
------------------------------------
``tests/test_phone_differential.py`` (run in CI with the rest of the suite) compares
:func:`normalize_fast` with the phonenumbers reference path and :func:`region_of_fast` with
``region_code_for_number()`` for the example number of every type of every region and
non-geographic calling code phonenumbers supports (1,134 numbers with phonenumbers 9.0.43),
written in national, international, E.164, ``00``/IDD, separator-laden and malformed forms,
with the national prefix dropped or doubled and a digit added, dropped or changed, each read
with the number's own region, no region, the next region alphabetically, a region sharing its
calling code and ``US``: ~430,000 cases in ~15 s. It also fails when the fast path declines
ordinary input, so the fast path cannot quietly stop helping. When a phonenumbers upgrade
makes it fail, fix this module (or make it decline), never the test; if it cannot be made
equal, delete the module (``smsgate.phone`` works without it, only slower).
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers

__all__ = [
    "MAX_E164_LEN",
    "MAX_RAW_LEN",
    "CallingCode",
    "Plan",
    "calling_code",
    "decimal_integer",
    "normalize_fast",
    "region_of_fast",
    "region_plan",
]

#: The longest E.164 number's length: '+' and 15 digits (ITU-T E.164); both paths refuse longer.
MAX_E164_LEN: Final = 16
MAX_RAW_LEN: Final = 64  # longer input is rejected by smsgate.phone before any parsing
_MIN_NSN: Final = 2  # phonenumbers' _MIN_LENGTH_FOR_NSN
_MAX_NSN: Final = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
_NON_GEO_REGION: Final = "001"
_CC_REGIONS: Final[dict[int, tuple[str, ...]]] = phonenumbers.COUNTRY_CODE_TO_REGION_CODE


def calling_code_heads() -> dict[str, tuple[str, int]]:
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


_CC_HEADS: Final = calling_code_heads()
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
# ASCII characters that smsgate.phone's _SEPARATORS_RE removes; anything else leaves a non-digit behind and
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


class Plan:
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
            n for n in range(MAX_RAW_LEN + 1) if self.length_result(n) == _TOO_LONG
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


class CallingCode:
    """A country calling code: the plan parse() uses, and the plans of its regions in the
    order region_code_for_number() tries them."""

    __slots__ = ("main", "members", "single")

    def __init__(self, main: Plan, members: tuple[Plan, ...]) -> None:
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


_REGION_PLANS: dict[str, Plan | None] = {}
_CALLING_CODES: dict[str, CallingCode | None] = {}


def region_plan(region: str) -> Plan | None:
    if region not in _REGION_PLANS:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
        _REGION_PLANS[region] = Plan(metadata) if metadata is not None else None
    return _REGION_PLANS[region]


def calling_code(cc_str: str) -> CallingCode | None:
    if cc_str not in _CALLING_CODES:
        cc = int(cc_str)
        plans: list[Plan | None] = []
        for region in _CC_REGIONS.get(cc, ()):
            if region == _NON_GEO_REGION:
                metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(cc, None)
                plans.append(Plan(metadata) if metadata is not None else None)
            else:
                plans.append(region_plan(region))
        members = tuple(plan for plan in plans if plan is not None)
        # a region without metadata is skipped by phonenumbers in a way not modelled here
        complete = bool(plans) and len(members) == len(plans)
        _CALLING_CODES[cc_str] = CallingCode(members[0], members) if complete else None
    return _CALLING_CODES[cc_str]


def parse_international(digits: str) -> tuple[str, CallingCode, str] | None:
    """phonenumbers.parse("+" + digits, None) as (calling code, its data, national
    significant number); None when parse() would raise or when unsure."""
    if len(digits) <= _MIN_NSN:
        return None
    head = _CC_HEADS.get(digits[:3])
    if head is None:
        return None
    cc_str, size = head
    code = _CALLING_CODES.get(cc_str) or calling_code(cc_str)
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


def from_international(digits: str) -> str | None:
    """The E.164 form of ``"+" + digits`` if phonenumbers accepts it, else None."""
    parsed = parse_international(digits)
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


def from_national(digits: str, plan: Plan) -> str | None:
    """phonenumbers.parse(digits, region) + is_valid_number(), ``plan`` being the region's.

    Returns the E.164 string, "" when phonenumbers rejects the number, None when unsure.
    """
    if plan.idd_matches(digits):
        return None  # dialled with the region's international prefix
    cc_str = plan.cc_str
    code = _CALLING_CODES.get(cc_str) or calling_code(cc_str)
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


def decimal_integer(text: str) -> str | None:
    """The integer a number written as a decimal stands for (``4366412345678.0``, as pandas
    writes a column of floats, or a spreadsheet a number with a decimal place): its digits
    before the point, with its ``+``; None for anything else. ``text`` is the input without
    its surrounding whitespace. Read with the point as a separator, the number would get an
    extra 0, which in a country whose numbers vary in length is somebody else's number. A
    float has no separator inside: ``030 1234.00`` is a number grouped by hand (the point
    one more separator), and its digits before the point would be somebody else's too. Nor
    does a float start with a 0: ``0301234.00`` is written by hand too, read as written."""
    head, dot, tail = text.rpartition(".")
    digits = head.removeprefix("+")
    if dot and tail and not tail.strip("0") and digits.isdigit() and head.isascii() and digits[0] != "0":
        return head
    return None


def normalize_fast(raw: str, region: str | None) -> str | None:
    """What ``smsgate.phone._normalize_slow()`` returns for ``raw`` when that is a number,
    else None.

    ``region`` is a canonical region code (see ``smsgate.phone._check_region()``) or None.
    None means "ask the slow path", never "invalid"; so is a number longer than E.164's 15
    digits (phonenumbers' metadata takes some), which the slow path refuses.
    """
    e164 = _normalize_fast(raw, region)
    return None if e164 is not None and len(e164) > MAX_E164_LEN else e164


def _normalize_fast(raw: str, region: str | None) -> str | None:
    if len(raw) > MAX_RAW_LEN:
        return None
    if raw.isdigit() and raw.isascii():
        cleaned = raw
    elif raw[:1] == "+" and raw[1:].isdigit() and raw.isascii():  # E.164
        return from_international(raw[1:])
    else:
        # replace() is much cheaper than translate() for the usual spaces and dashes
        cleaned = raw.replace(" ", "").replace("-", "")
        if not (cleaned.isdigit() and cleaned.isascii()):
            digits = cleaned[1:]
            if cleaned[:1] == "+" and digits.isdigit() and digits.isascii():
                return from_international(digits)
            if "." in cleaned and decimal_integer(raw.strip()) is not None:
                return None  # the slow path reads it as its integer
            cleaned = cleaned.translate(_SEPARATOR_TABLE)
            if cleaned[:1] == "+":
                digits = cleaned[1:]
                return from_international(digits) if digits.isdigit() and digits.isascii() else None
            if not (cleaned.isdigit() and cleaned.isascii()):
                return None
    if cleaned[0] == "0":
        if len(cleaned) > 1 and cleaned[1] == "0":
            return from_international(cleaned[2:])
        if region is None:
            return None
    elif region is None:
        return from_international(cleaned)
    plan = _REGION_PLANS.get(region) or region_plan(region)
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
        # code of its own, shortened from from_national(), which handles the rest.
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
            return None if cleaned[0] == "0" else from_international(cleaned)
    national = from_national(cleaned, plan)
    if national:
        return national
    if national is None or cleaned[0] == "0":
        return None  # unsure; or invalid, and a leading 0 means no international reading
    return from_international(cleaned)


def region_of_fast(e164: str) -> str | None:
    """What region_of() returns for an E.164-shaped ``e164``; "" when unsure or invalid."""
    parsed = parse_international(e164[1:])
    if parsed is None:
        return ""
    cc_str, code, nsn = parsed
    regions = _CC_REGIONS[int(cc_str)]
    index = code.region_index(nsn)
    # an unmatched number of a shared calling code gets its main region
    region = regions[index if index is not None else 0]
    return None if region == _NON_GEO_REGION else region
