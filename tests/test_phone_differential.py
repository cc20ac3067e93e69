"""Differential test of smsgate._phonefast against phonenumbers, over every region.

smsgate._phonefast is a copy of part of phonenumbers' parse() + is_valid_number() +
region_code_for_number(). Our design rule (docs: DESIGN.md, "What we own, and what we use")
lets such a copy stay only with an exhaustive differential test in CI: this file.

For the example number of every type (``phonenumbers.example_number_for_type``) of every region
in ``phonenumbers.SUPPORTED_REGIONS`` and of every non-geographic calling code, it builds the
number in many written forms -- national format, with spaces/dashes/dots/parentheses,
international format, E.164, ``00`` and the reading region's own international (IDD) prefix,
bare international digits, the national prefix dropped or doubled or kept after the calling
code, a digit added, dropped or changed (at every position), letters, extensions, non-ASCII
digits and spaces, surrounding whitespace, over-long input -- and reads each one with several
default regions: the number's own, none, ``US``, the next region in alphabetical order and
another region sharing the calling code. For every (input, region):

* ``_normalize_fast`` either declines (None) or returns exactly what ``_normalize_slow``
  (phonenumbers; ``normalize()`` with the fast path disabled) returns;
* ``region_of``'s fast path gives phonenumbers' answer for every valid E.164 number produced
  and every E.164-shaped input (or declines with "").

It also counts how often the fast path declines a number phonenumbers accepts, prints the
counts (so a fast path that silently stopped helping shows), and fails when it declines
ordinary input (national digits of the reading region, E.164, international format, ``00``).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from smsgate import _phonefast, phone
from smsgate.errors import InvalidPhoneNumber

# ordinary input: the fast path must answer it whenever phonenumbers accepts it
READINGS = ("own", "none", "other")
ORDINARY = frozenset(
    [f"{form} [{reading}]" for form in ("e164", "international", "00", "00 spaced") for reading in READINGS]
    + [f"{form} [own]" for form in ("national", "national digits", "bare international")]
    + ["bare international [none]"]
)
# input the fast path leaves to phonenumbers on purpose: non-ASCII characters, and numbers
# dialled with the reading region's international prefix
LEFT_TO_PHONENUMBERS = ("nbsp", "fullwidth", "arabic-indic", "idd")
REGIONS = tuple(sorted(phonenumbers.SUPPORTED_REGIONS))
NUMBER_TYPES = tuple(
    value
    for name, value in vars(PhoneNumberType).items()
    if name.isupper() and isinstance(value, int) and value != PhoneNumberType.UNKNOWN
)
# the descs of PhoneMetadata that hold a non-geographic calling code's example numbers
NON_GEO_DESCS = (
    "general_desc",
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
# input that is no number at all, read with every region
JUNK = (
    "",
    " ",
    "\t\n",
    "+",
    "++",
    "0",
    "00",
    "000",
    "+0",
    "+00",
    "-",
    "()",
    "+()",
    ".",
    "1",
    "12",
    "+1",
    "+12",
    "abc",
    "+abc",
    "tel:",
    "0" * 20,
    "9" * 20,
    "+" + "9" * 20,
    "1" * 65,
    "\u00a0",
    "\u200b",
)


@dataclass(frozen=True)
class Example:
    """One example number: its region ("001" for a non-geographic calling code), calling
    code, national significant number and the type it is the example of."""

    region: str
    cc: int
    nsn: str
    kind: str


def _number(cc: int, nsn: str) -> phonenumbers.PhoneNumber:
    """A PhoneNumber whose national significant number is exactly ``nsn`` (leading zeros too)."""
    number = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
    zeros = len(nsn) - len(nsn.lstrip("0"))
    if zeros and len(nsn) > 1:
        number.italian_leading_zero = True
        number.number_of_leading_zeros = min(zeros, len(nsn) - 1)
    assert phonenumbers.national_significant_number(number) == nsn
    return number


def _type_name(kind: int) -> str:
    return next(name for name, value in vars(PhoneNumberType).items() if name.isupper() and value == kind)


@cache
def examples() -> tuple[Example, ...]:
    """Every distinct example number phonenumbers has, geographic and non-geographic."""
    found: dict[tuple[str, int, str], Example] = {}
    for region in REGIONS:
        for kind in NUMBER_TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                nsn = phonenumbers.national_significant_number(number)
                found.setdefault(
                    (region, number.country_code, nsn),
                    Example(region, number.country_code, nsn, _type_name(kind)),
                )
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(cc)
        assert metadata is not None
        for name in NON_GEO_DESCS:
            desc = getattr(metadata, name)
            if desc is not None and desc.example_number:
                found.setdefault(
                    ("001", cc, desc.example_number), Example("001", cc, desc.example_number, name)
                )
    return tuple(found.values())


@cache
def _idd(region: str) -> str | None:
    """A prefix that dials out of ``region`` (its international prefix), or None."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    if metadata.preferred_international_prefix:
        return str(metadata.preferred_international_prefix)
    pattern = metadata.international_prefix
    if not pattern:
        return None
    if pattern.isdigit():
        return str(pattern)
    compiled = re.compile(pattern)
    for size in (1, 2, 3, 4, 5):
        for n in range(10**size):
            candidate = f"{n:0{size}d}"
            if compiled.fullmatch(candidate):
                return candidate
    return None


def _readings(example: Example) -> tuple[str | None, ...]:
    """The default regions an input is read with: its own, none, US, the next region in
    alphabetical order and another region with the same calling code."""
    if example.region == "001":
        return (None, "US", "NG", "GB")
    own = example.region
    neighbour = REGIONS[(REGIONS.index(own) + 1) % len(REGIONS)]
    siblings = [
        r for r in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(example.cc, ()) if r not in (own, "001")
    ]
    readings: list[str | None] = [own, None, "US", neighbour, *siblings[:1]]
    return tuple(dict.fromkeys(readings))


def _grouped(digits: str, separator: str) -> str:
    """``digits`` in groups of 3, 3 and the rest, joined by ``separator``."""
    groups = [digits[:3], digits[3:6], digits[6:]]
    return separator.join(group for group in groups if group)


def _mutations(nsn: str) -> Iterator[tuple[str, str]]:
    """(name, nsn changed by one digit): added, dropped, inserted and replaced at every position."""
    yield "digit added", nsn + "5"
    yield "digit added", nsn + "0"
    yield "last digit dropped", nsn[:-1]
    yield "first digit dropped", nsn[1:]
    middle = len(nsn) // 2
    yield "digit inserted", nsn[:middle] + "7" + nsn[middle:]
    for position, digit in enumerate(nsn):
        yield "digit replaced", nsn[:position] + str((int(digit) + 1) % 10) + nsn[position + 1 :]


def cases(example: Example) -> Iterator[tuple[str, str, str | None]]:
    """(form, raw input, default region) for one example number; the form says whether the
    region is the number's own ("[own]"), none ("[none]") or another one ("[other]")."""
    for form, raw, region in _cases(example):
        reading = "own" if region == example.region else "none" if region is None else "other"
        yield f"{form} [{reading}]", raw, region


def _cases(example: Example) -> Iterator[tuple[str, str, str | None]]:
    """:func:`cases` without the reading in the form's name."""
    cc, nsn = str(example.cc), example.nsn
    number = _number(example.cc, nsn)
    e164 = f"+{cc}{nsn}"
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    readings = _readings(example)
    own = example.region if example.region != "001" else None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(example.cc, example.region)
    prefix = (metadata.national_prefix or "") if metadata is not None else ""

    forms: list[tuple[str, str]] = [
        ("e164", e164),
        ("international", international),
        ("international dashes", international.replace(" ", "-")),
        ("international (0)", f"+{cc} (0){nsn}" if prefix == "0" else f"+{cc} ({prefix}){nsn}"),
        ("international prefix kept", f"+{cc}{prefix}{nsn}"),
        ("00", f"00{cc}{nsn}"),
        ("00 spaced", f"00 {cc} {_grouped(nsn, ' ')}"),
        ("bare international", f"{cc}{nsn}"),
        ("bare international spaced", f"{cc} {_grouped(nsn, ' ')}"),
        ("bare international prefix kept", f"{cc}{prefix}{nsn}"),
        ("nsn", nsn),
        ("nsn spaced", _grouped(nsn, " ")),
    ]
    if own is not None:
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        digits = "".join(ch for ch in national if ch.isdigit())
        forms += [
            ("national", national),
            ("national digits", digits),
            ("national dashes", national.replace(" ", "-")),
            ("national dots", national.replace(" ", ".")),
            ("national grouped", _grouped(digits, " ")),
            ("national grouped dashes", _grouped(digits, "-")),
            ("national grouped dots", _grouped(digits, ".")),
            ("national parentheses", f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"),
            ("national separators", f" ({digits[:2]})  {digits[2:5]}..{digits[5:]}-\t"),
            ("national prefix doubled", prefix + digits if prefix else "0" + digits),
            ("national prefix added", f"{prefix}{nsn}" if prefix else "0" + nsn),
        ]
    # malformed: always rejected, or (surrounding whitespace, non-ASCII separators) accepted
    bases = ("e164", "international", "national", "national digits")
    for form, raw in [(form, raw) for form, raw in forms if form in bases]:
        forms += [
            (f"{form} + letters", raw[:-3] + "ABC"),
            (f"{form} + letter", raw + "a"),
            (f"{form} + ext.", raw + " ext. 123"),
            (f"{form} + x", raw + " x123"),
            (f"{form} + #", raw + "#123"),
            (f"{form} + ;ext=", raw + ";ext=123"),
            (f"{form} + tel:", "tel:" + raw),
            (f"{form} + fullwidth", raw.translate(FULLWIDTH)),
            (f"{form} + arabic-indic", raw.translate(ARABIC_INDIC)),
            (f"{form} + nbsp", raw.replace(" ", "\u00a0") if " " in raw else raw + "\u00a0"),
            (f"{form} + whitespace", f" \t{raw}\n "),
            (f"{form} + plus inside", raw[:3] + "+" + raw[3:]),
            (f"{form} + double plus", "+" + raw),
            (f"{form} + star", raw + "*"),
            (f"{form} + too long", raw + " " * (_phonefast.MAX_RAW_LEN - len(raw) + 1)),
            (f"{form} + at limit", raw + " " * (_phonefast.MAX_RAW_LEN - len(raw))),
        ]
    for form, raw in forms:
        for region in readings:
            yield form, raw, region
    # the reading region's own international prefix ("011 234 ..." read with US)
    for region in readings:
        if region is not None and (idd := _idd(region)):
            yield "idd", f"{idd}{cc}{nsn}", region
            yield "idd spaced", f"{idd} {cc} {_grouped(nsn, ' ')}", region
    # one digit added, dropped or changed, anywhere in the national significant number
    for form, changed in _mutations(nsn):
        if not changed:
            continue
        for region in (own, None):
            yield f"{form}, e164", f"+{cc}{changed}", region
            yield f"{form}, bare international", f"{cc}{changed}", region
        if own is not None:
            yield f"{form}, national", f"{prefix}{changed}", own
            yield f"{form}, nsn", changed, own


def all_cases() -> list[tuple[str, str, str | None]]:
    """Every (form, raw, region) of every example number, and the junk inputs."""
    out: list[tuple[str, str, str | None]] = []
    for example in examples():
        out.extend(cases(example))
    for raw in JUNK:
        for region in (None, *REGIONS):
            out.append(("junk", raw, region))
    return out


def test_fast_path_equals_phonenumbers_in_every_region(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    fast, slow = phone._normalize_fast, phone._normalize_slow
    seen: dict[tuple[str, str | None], str] = {}
    for form, raw, region in all_cases():
        seen.setdefault((raw, region), form)
    assert len(examples()) > 1000
    assert {example.region for example in examples()} >= set(REGIONS)

    divergences: list[str] = []
    declined: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    answered = 0
    valid_e164: set[str] = set()
    phone._normalize_cached.cache_clear()
    for index, ((raw, region), form) in enumerate(seen.items()):
        expected, reason = slow(raw, region)
        got = fast(raw, region)
        if index % 16 == 0:  # and the public function, fast path and fallback together
            try:
                public: str | None = phone.normalize(raw, region)
            except InvalidPhoneNumber as exc:
                public = None
                if exc.reason != phone._invalid(raw, reason).reason:
                    divergences.append(
                        f"normalize({raw!r}, {region}): {exc.reason!r}, phonenumbers {reason!r}"
                    )
            if public != expected:
                divergences.append(f"normalize({raw!r}, {region}): {public!r}, phonenumbers {expected!r}")
        if got is not None:
            answered += 1
            if got != expected:
                divergences.append(
                    f"{form}: {raw!r} read with {region}: fast {got!r}, phonenumbers {expected!r} ({reason})"
                )
        if expected is not None:
            valid_e164.add(expected)
            accepted[form] += 1
            if got is None:
                declined[form] += 1

    region_checked = 0
    # region_of() takes E.164-shaped numbers only ('+' and 7-15 digits); phonenumbers accepts a
    # few valid numbers outside that shape (+49 with a 14-digit number, +98 9601), which
    # region_of() rejects whichever path it takes
    shaped = {raw for raw in {raw for raw, _ in seen} | valid_e164 if phone.is_e164(raw)}
    for e164 in sorted(shaped):
        try:
            expected_region: str | None = phone._region_of_slow(e164)
        except InvalidPhoneNumber:
            if phone._region_of_fast(e164) != "":
                divergences.append(
                    f"region_of {e164!r}: fast {phone._region_of_fast(e164)!r}, phonenumbers raises"
                )
            continue
        region_checked += 1
        got_region = phone._region_of_fast(e164)
        if got_region != "" and got_region != expected_region:
            divergences.append(f"region_of {e164!r}: fast {got_region!r}, phonenumbers {expected_region!r}")
        elif e164 in valid_e164 and got_region == "":
            declined["region_of"] += 1
    elapsed = time.perf_counter() - started
    phone._normalize_cached.cache_clear()

    total_valid = sum(accepted.values())
    total_declined = sum(count for form, count in declined.items() if form != "region_of")
    with capsys.disabled():
        print(
            f"\nphone differential: {len(examples())} example numbers, {len(seen):,} (input, region) "
            f"cases, {len(shaped):,} E.164 numbers for region_of ({region_checked:,} parseable) "
            f"in {elapsed:.1f} s; fast path answered {answered:,}; phonenumbers accepted "
            f"{total_valid:,}, of which the fast path declined {total_declined:,}"
        )
        for form, count in declined.most_common(15):
            of = accepted[form] if form in accepted else len(valid_e164)
            print(f"  declined {count:>6,} of {of:>6,} accepted: {form}")
    assert not divergences, f"{len(divergences)} divergences:\n" + "\n".join(divergences[:40])
    ordinary_declines = {form: count for form, count in declined.items() if form in ORDINARY}
    assert not ordinary_declines, ordinary_declines
    # elsewhere it declines only what it does not model (IL's 018..., read as an international
    # prefix, or TD's 16...): a handful of cases, not a fast path gone quietly useless
    unexpected = sum(
        count
        for form, count in declined.items()
        if form != "region_of" and not any(word in form for word in LEFT_TO_PHONENUMBERS)
    )
    assert unexpected <= total_valid // 1000, declined
    assert declined["region_of"] == 0
