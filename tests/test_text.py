"""Tests for smsgate.text: encoding, segments, cost, smart encoding and templates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate import text as textmod
from smsgate.errors import TemplateError, ValidationError
from smsgate.text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SMART_REPLACEMENTS,
    Encoding,
    SegmentInfo,
    count_segments,
    detect_encoding,
    estimate_cost,
    render_template,
    segment_info,
    smart_encode,
    template_variables,
)

# --------------------------------------------------------------------------- reference tables

# 3GPP TS 23.038 default alphabet, by code point 0x00-0x7F (0x1B is ESC, not a character)
REF_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(REF_BASIC_TABLE) == 128
REF_BASIC = set(REF_BASIC_TABLE) - {"\x1b"}
# default extension table, by code point
REF_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
REF_EXT = set(REF_EXTENSION.values())


def ref_is_gsm7(text: str) -> bool:
    for ch in text:
        if ch not in REF_BASIC and ch not in REF_EXT:
            return False
    return True


def ref_segment_info(text: str) -> tuple[Encoding, int, int, int, int]:
    """Slow per-character segmenter: (encoding, units, segments, per_segment, remaining)."""
    if ref_is_gsm7(text):
        encoding, single, multi = Encoding.GSM7, 160, 153
        widths = [2 if ch in REF_EXT else 1 for ch in text]
    else:
        encoding, single, multi = Encoding.UCS2, 70, 67
        widths = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    units = sum(widths)
    if units <= single:
        return encoding, units, 1, single, single - units
    segments, used = 1, 0
    for width in widths:
        if used + width > multi:  # never split a 2-unit character across parts
            segments += 1
            used = width
        else:
            used += width
    return encoding, units, segments, multi, multi - used


def as_tuple(info: SegmentInfo) -> tuple[Encoding, int, int, int, int]:
    return info.encoding, info.units, info.segments, info.per_segment, info.remaining


# --------------------------------------------------------------------------- character sets


def test_character_tables_match_3gpp() -> None:
    assert set(GSM7_BASIC) == REF_BASIC
    assert set(GSM7_EXTENSION) == REF_EXT
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("", Encoding.GSM7),
        ("Hello, world! 123 @£$¥ ΔΦΓ ÄÖÑÜ§ äöñüà", Encoding.GSM7),
        ("Price: 20€ {x} [y] ~ | ^ \\ \f", Encoding.GSM7),
        ("line\nbreak\r\n", Encoding.GSM7),
        ("Ça va", Encoding.GSM7),
        ("ça va", Encoding.UCS2),  # lowercase c-cedilla is not in GSM 03.38
        ("`backtick`", Encoding.UCS2),
        ("tab\there", Encoding.UCS2),
        ("esc\x1b", Encoding.UCS2),
        ("del\x7f", Encoding.UCS2),
        ("Привет", Encoding.UCS2),
        ("smile 😀", Encoding.UCS2),
        ("“quoted”", Encoding.UCS2),
    ],
)
def test_detect_encoding(text: str, encoding: Encoding) -> None:
    assert detect_encoding(text) is encoding
    assert segment_info(text).encoding is encoding


def test_encoding_is_a_str_enum() -> None:
    assert isinstance(Encoding.GSM7, str)
    assert Encoding.GSM7.value == "gsm7"
    assert Encoding("ucs2") is Encoding.UCS2


# --------------------------------------------------------------------------- segments


@pytest.mark.parametrize(
    ("length", "segments", "remaining"),
    [(0, 1, 160), (1, 1, 159), (160, 1, 0), (161, 2, 145), (306, 2, 0), (307, 3, 152), (459, 3, 0)],
)
def test_gsm7_segment_boundaries(length: int, segments: int, remaining: int) -> None:
    info = segment_info("a" * length)
    assert info == SegmentInfo(Encoding.GSM7, length, segments, 160 if segments == 1 else 153, remaining)
    assert count_segments("a" * length) == segments


@pytest.mark.parametrize(
    ("length", "segments", "remaining"),
    [(1, 1, 69), (70, 1, 0), (71, 2, 63), (134, 2, 0), (135, 3, 66), (201, 3, 0), (202, 4, 66)],
)
def test_ucs2_segment_boundaries(length: int, segments: int, remaining: int) -> None:
    info = segment_info("ж" * length)
    assert info == SegmentInfo(Encoding.UCS2, length, segments, 70 if segments == 1 else 67, remaining)


def test_empty_text_is_one_segment() -> None:
    assert segment_info("") == SegmentInfo(Encoding.GSM7, 0, 1, 160, 160)
    assert count_segments("") == 1


def test_extension_characters_count_two_septets() -> None:
    assert segment_info("€" * 80) == SegmentInfo(Encoding.GSM7, 160, 1, 160, 0)
    # 81 x 2 = 162 septets: part 1 holds 76 (152 septets, the 153rd cannot hold half a '€')
    assert segment_info("€" * 81) == SegmentInfo(Encoding.GSM7, 162, 2, 153, 143)
    assert segment_info("a" * 159 + "{") == SegmentInfo(Encoding.GSM7, 161, 2, 153, 145)
    assert segment_info("[]" * 40) == SegmentInfo(Encoding.GSM7, 160, 1, 160, 0)
    assert segment_info("x^") == SegmentInfo(Encoding.GSM7, 3, 1, 160, 157)


def test_extension_character_is_not_split_across_segments() -> None:
    # 306 septets would fit 2 x 153, but the '€' cannot straddle the boundary after 152 'a's
    text = "a" * 152 + "€" + "a" * 152
    assert segment_info(text) == SegmentInfo(Encoding.GSM7, 306, 3, 153, 152)
    # ... whereas one character earlier it fits exactly
    text = "a" * 151 + "€" + "a" * 153
    assert segment_info(text) == SegmentInfo(Encoding.GSM7, 306, 2, 153, 0)
    # a full part followed by an extension character: plain overflow
    text = "a" * 153 + "€" + "a" * 10
    assert segment_info(text) == SegmentInfo(Encoding.GSM7, 165, 2, 153, 141)


def test_emoji_count_two_units_and_are_not_split() -> None:
    assert segment_info("😀") == SegmentInfo(Encoding.UCS2, 2, 1, 70, 68)
    assert segment_info("😀" * 35) == SegmentInfo(Encoding.UCS2, 70, 1, 70, 0)
    # 33 emoji fill 66 units of part 1; the 34th cannot take the last unit alone
    assert segment_info("😀" * 36) == SegmentInfo(Encoding.UCS2, 72, 2, 67, 61)
    # 134 units would fit 2 x 67, but the pair cannot straddle the boundary after 66 units
    text = "ж" * 66 + "😀" + "ж" * 66
    assert segment_info(text) == SegmentInfo(Encoding.UCS2, 134, 3, 67, 66)
    text = "ж" * 65 + "😀" + "ж" * 67
    assert segment_info(text) == SegmentInfo(Encoding.UCS2, 134, 2, 67, 0)


def test_lone_surrogate_counts_one_unit() -> None:
    text = "\ud83d" * 71
    assert segment_info(text) == SegmentInfo(Encoding.UCS2, 71, 2, 67, 63)


def test_segment_info_is_frozen() -> None:
    info = segment_info("hello")
    with pytest.raises(AttributeError):
        info.segments = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello John, your OTP is 123456.",
        "a" * 152 + "€" + "a" * 152,
        "€" * 300,
        "{" * 77 + "a" * 300 + "}" * 100,
        "😀" * 100,
        "ж" * 66 + "😀" + "ж" * 66 + "😀😀" + "x" * 200,
        "Привет 😀 " * 30,
        "Ünïcödé ñ " * 40,
        "tab\t" * 60,
    ],
)
def test_segment_info_matches_reference_examples(text: str) -> None:
    assert as_tuple(segment_info(text)) == ref_segment_info(text)


gsm_chars = st.sampled_from(sorted(REF_BASIC))
ext_chars = st.sampled_from(sorted(REF_EXT))
other_chars = st.sampled_from(
    ["ж", "ç", "`", "\t", "\x1b", "“", "中", "😀", "🎉", "\U0010fffd", "\U00010000"]
)
gsm_text = st.text(alphabet=st.one_of(gsm_chars, gsm_chars, ext_chars), max_size=480)
mixed_text = st.text(alphabet=st.one_of(gsm_chars, ext_chars, other_chars), max_size=300)
astral_heavy = st.text(alphabet=st.sampled_from(["ж", "a", "😀", "🎉"]), min_size=30, max_size=250)
any_text = st.one_of(st.text(max_size=400), gsm_text, mixed_text, astral_heavy)


@settings(max_examples=800, deadline=None)
@given(text=any_text)
def test_segment_info_agrees_with_reference(text: str) -> None:
    info = segment_info(text)
    assert as_tuple(info) == ref_segment_info(text)
    assert count_segments(text) == info.segments
    assert 0 <= info.remaining < info.per_segment or (info.units == 0 and info.remaining == info.per_segment)


@settings(max_examples=800, deadline=None)
@given(text=any_text)
def test_detect_encoding_agrees_with_reference(text: str) -> None:
    expected = Encoding.GSM7 if ref_is_gsm7(text) else Encoding.UCS2
    assert detect_encoding(text) is expected


@settings(max_examples=500, deadline=None)
@given(text=any_text, suffix=st.one_of(st.text(min_size=1, max_size=20), gsm_text, mixed_text))
def test_segment_count_is_monotonic_when_appending(text: str, suffix: str) -> None:
    assert count_segments(text + suffix) >= count_segments(text)
    assert segment_info(text + suffix).units >= segment_info(text).units or detect_encoding(
        text + suffix
    ) != detect_encoding(text)


# --------------------------------------------------------------------------- cost


def test_estimate_cost() -> None:
    assert estimate_cost("hello", Decimal("0.035")) == Decimal("0.035")
    assert estimate_cost("a" * 161, Decimal("0.035"), recipients=1000) == Decimal("70.000")
    assert estimate_cost("ж" * 71, "2.50", recipients=2) == Decimal("10.00")
    assert estimate_cost("hi", 0.1, recipients=3) == Decimal("0.3")  # no float artefacts
    assert estimate_cost("hi", 4) == Decimal(4)
    assert estimate_cost("", "1") == Decimal(1)
    assert estimate_cost("hi", "0.5", recipients=0) == Decimal(0)
    assert isinstance(estimate_cost("hi", 1.5), Decimal)


@pytest.mark.parametrize("price", ["abc", "-0.01", "NaN", "Infinity", float("nan"), -1.0, None])
def test_estimate_cost_rejects_bad_prices(price: object) -> None:
    with pytest.raises(ValidationError, match="price per segment"):
        estimate_cost("hi", price)  # type: ignore[arg-type]


@pytest.mark.parametrize("recipients", [-1, 1.5, True])
def test_estimate_cost_rejects_bad_recipients(recipients: object) -> None:
    with pytest.raises(ValidationError, match="recipients"):
        estimate_cost("hi", "0.1", recipients=recipients)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- smart encoding


def test_smart_encode_example_becomes_gsm7_and_saves_segments() -> None:
    text = "\u201cHello\u201d \u2014 \u2018world\u2019\u2026"  # curly quotes, em dash, ellipsis
    assert smart_encode(text) == "\"Hello\" - 'world'..."
    assert detect_encoding(smart_encode(text)) is Encoding.GSM7
    long_text = "Don\u2019t miss our \u201cBlack Friday\u201d sale \u2013 50% off everything\u2026 " * 2
    assert detect_encoding(long_text) is Encoding.UCS2
    assert count_segments(long_text) == 2
    encoded = smart_encode(long_text)
    assert detect_encoding(encoded) is Encoding.GSM7
    assert count_segments(encoded) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # curly, low-9 and reversed quotes, primes
        (
            "\u2018a\u2019 \u201ab\u201b \u201cc\u201d \u201ed\u201f 5\u2032 6\u2033",
            "'a' 'b' \"c\" \"d\" 5' 6\"",
        ),
        ("a\u2013b\u2014c\u2015d\u2212e\u2010f\u2011g", "a-b-c-d-e-f-g"),  # en, em, bar, minus, hyphens
        ("wait…", "wait..."),
        ("a\u00a0b\u2000c\u200ad\u202fe\u205ff\u3000g", "a b c d e f g"),
        ("zero\u200bwidth\u200c\u200djoin\ufeff", "zerowidthjoin"),
        ("• item", "- item"),
        ("«quote»", '"quote"'),
        ("\u2039a\u203a", "<a>"),
        ("plain GSM text {stays} €", "plain GSM text {stays} €"),
        ("Ünïcödé stays ünïcödé", "Ünïcödé stays ünïcödé"),
        ("emoji 😀 stays", "emoji 😀 stays"),
    ],
)
def test_smart_encode_examples(raw: str, expected: str) -> None:
    assert smart_encode(raw) == expected


def test_smart_replacements_only_replace_non_gsm_characters_with_gsm_basic() -> None:
    for char, replacement in SMART_REPLACEMENTS.items():
        assert len(char) == 1
        assert char not in REF_BASIC
        assert char not in REF_EXT
        assert all(c in REF_BASIC for c in replacement), (char, replacement)


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(st.text(), st.text(alphabet=st.sampled_from([*sorted(SMART_REPLACEMENTS), "a", "ж", "€"])))
)
def test_smart_encode_properties(text: str) -> None:
    encoded = smart_encode(text)
    assert not set(encoded) & set(SMART_REPLACEMENTS)
    assert smart_encode(encoded) == encoded
    assert encoded == "".join(SMART_REPLACEMENTS.get(ch, ch) for ch in text)
    if detect_encoding(text) is Encoding.GSM7:
        assert encoded == text


@settings(max_examples=300, deadline=None)
@given(text=gsm_text)
def test_smart_encode_leaves_gsm7_text_alone(text: str) -> None:
    assert smart_encode(text) == text


# --------------------------------------------------------------------------- templates


def test_render_template() -> None:
    assert render_template("Hi {name}, your code is {code}.", {"name": "Ada", "code": "1234"}) == (
        "Hi Ada, your code is 1234."
    )
    assert render_template("{a}{a}{b}", {"a": "x", "b": "y", "unused": "z"}) == "xxy"
    assert render_template("no placeholders", {}) == "no placeholders"
    assert render_template("", {}) == ""
    assert render_template("{n} items", {"n": 3}) == "3 items"
    assert render_template("{ünï}", {"ünï": "ok"}) == "ok"


def test_render_template_escaped_braces() -> None:
    assert render_template("{{literal}} {name}", {"name": "x"}) == "{literal} x"
    assert render_template("{{{name}}}", {"name": "x"}) == "{x}"
    assert render_template("}}{{", {}) == "}{"
    assert template_variables("{{not_a_var}} {var}") == {"var"}


def test_values_are_not_reinterpreted() -> None:
    assert render_template("{a}", {"a": "{b} {0} {{"}) == "{b} {0} {{"


def test_missing_variables_are_all_listed() -> None:
    body = "Hi {name}, {x} and {name} owe {amount}"
    with pytest.raises(TemplateError) as info:
        render_template(body, {"amount": "5"})
    err = info.value
    assert err.reason == "missing variable(s) 'name', 'x'"
    assert err.field == "template"
    assert err.value == body
    assert isinstance(err, ValidationError)


@pytest.mark.parametrize("value", [None, ""])
def test_a_variable_without_a_value_is_missing_not_sent_as_none_or_blank(value: object) -> None:
    """``send(..., variables={"name": None})`` sent "Hi None" (and "" a blank), where the
    docs promise a placeholder without a value is never sent (found by a new-user trial);
    a campaign already skipped such a row as ``missing_variable``."""
    with pytest.raises(TemplateError) as info:
        render_template("Hi {name}, code {code}", {"name": value, "code": "1234"})
    assert info.value.reason == "missing variable(s) 'name'"


@pytest.mark.parametrize("value", [["Ada"], ("Ada",), {"first": "Ada"}, {"Ada"}, b"Ada"])
def test_a_container_or_bytes_variable_is_refused_not_sent_as_its_repr(value: object) -> None:
    with pytest.raises(TemplateError, match=f"variable 'name' is a {type(value).__name__}"):
        render_template("Hi {name}", {"name": value})


def test_numbers_and_other_values_still_render() -> None:
    from decimal import Decimal

    assert render_template("{a} {b} {c} {d}", {"a": 0, "b": 1.5, "c": Decimal("2.50"), "d": " "}) == "0 1.5 2.50  "


@pytest.mark.parametrize(
    "body",
    [
        "{a.__class__}",
        "{a.__class__.__mro__}",
        "{a[0]}",
        "{0}",
        "{}",
        "{a!r}",
        "{a:>10}",
        "{ a }",
        "{a-b}",
        "{1abc}",
    ],
)
def test_invalid_placeholders_are_rejected(body: str) -> None:
    with pytest.raises(TemplateError, match="invalid placeholder"):
        render_template(body, {"a": "value"})
    with pytest.raises(TemplateError, match="invalid placeholder"):
        template_variables(body)


@pytest.mark.parametrize("body", ["Hi {name", "Hi name}", "{", "}", "{{a}", "a}}}"])
def test_unmatched_braces_are_rejected(body: str) -> None:
    with pytest.raises(TemplateError, match="unmatched"):
        render_template(body, {"name": "x", "a": "y"})


def test_template_variables() -> None:
    assert template_variables("Hi {first_name} {last_name}, {first_name}!") == {"first_name", "last_name"}
    assert template_variables("nothing") == set()


def test_templates_are_parsed_once() -> None:
    textmod._compile.cache_clear()
    for i in range(100):
        render_template("Hello {name} #{i}", {"name": "x", "i": str(i)})
    info = textmod._compile.cache_info()
    assert info.misses == 1
    assert info.hits == 99


identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
literals = st.text(max_size=20)


def escape(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}")


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.tuples(literals, identifiers), max_size=6), tail=literals, value=st.text(max_size=10)
)
def test_render_matches_reference(parts: list[tuple[str, str]], tail: str, value: str) -> None:
    body = "".join(escape(lit) + "{" + name + "}" for lit, name in parts) + escape(tail)
    variables = {name: f"<{name}:{value}>" for _, name in parts}
    expected = "".join(lit + variables[name] for lit, name in parts) + tail
    assert render_template(body, variables) == expected
    assert template_variables(body) == {name for _, name in parts}
    if parts:
        with pytest.raises(TemplateError, match="missing variable"):
            render_template(body, {})


@settings(max_examples=300, deadline=None)
@given(body=st.text(max_size=40))
def test_render_raises_only_template_error(body: str) -> None:
    try:
        names = template_variables(body)
    except TemplateError:
        with pytest.raises(TemplateError):
            render_template(body, {})
        return
    rendered = render_template(body, dict.fromkeys(names, "v"))
    assert isinstance(rendered, str)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", False),
        ("Smile :-} or {", False),  # stray braces, no placeholder: sent as written
        ("literal {{name}}", False),
        ("Hi {name}", True),
        ("{{{name}}}", True),  # a literal brace around a placeholder
        ("Hi {name} :-}", True),  # malformed, but a placeholder is there: rendering reports the brace
        ("{ a }", False),
    ],
)
def test_has_placeholders(text: str, expected: bool) -> None:
    assert textmod.has_placeholders(text) is expected


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("ab_{} 1")), max_size=16))
def test_has_placeholders_agrees_with_the_template_parser(text: str) -> None:
    try:
        names = template_variables(text)
    except TemplateError:
        return  # malformed: covered above
    assert textmod.has_placeholders(text) is bool(names)
