"""Attack round 18: today's changes (plugin scope, OpenTelemetry links, decimal and formula
phone input, opt-out scope keys, limits, broadcast read-back, squad payment events)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate import _phonefast
from smsgate.errors import ValidationError
from smsgate.phone import _normalize_slow, normalize


# ----------------------------------------------------------------------- a decimal point in a written number
@pytest.mark.parametrize(("raw", "region", "meant"), [
    ("030 1234.00", "DE", "+4930123400"),          # was +49301234: another subscriber
    ("+49 30 1234.00", None, "+4930123400"),       # was +49301234
    ("+43 664 1234.000", None, "+436641234000"),   # was +436641234
    ("0664-1234.000", "AT", "+436641234000"),
])
def test_a_number_grouped_by_hand_is_not_read_as_a_decimal(raw: str, region: str | None, meant: str) -> None:
    """A float never has a space or a dash in it (pandas writes ``4366412345678.0``): a number
    grouped by hand whose last group, after a dot, is zeros is that number, not its digits
    before the dot, which in a country whose numbers vary in length is somebody else's."""
    try:
        got = normalize(raw, region)
    except ValidationError:
        return  # refused is fine: never somebody else
    assert got == meant


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["DE", "AT"]), st.text("0123456789", min_size=4, max_size=9),
       st.lists(st.integers(1, 8), min_size=1, max_size=3), st.sampled_from([" ", "-"]),
       st.integers(1, 4))
def test_hand_grouped_numbers_ending_in_dot_zeros_are_read_as_written(region: str, body: str, cuts: list[int],
                                                                      sep: str, zeros: int) -> None:
    """Property: with a separator before the point, the text is a grouped number; read (if at
    all) as its digits run together, fast path and slow alike."""
    digits = "0" + body
    parts, rest = [], digits
    for cut in cuts:
        if len(rest) > cut:
            parts.append(rest[:cut])
            rest = rest[cut:]
    parts.append(rest)
    if len(parts) < 2:
        return
    raw = sep.join(parts) + "." + "0" * zeros
    whole = digits + "0" * zeros
    expected = _normalize_slow(whole, region)[0]
    assert _normalize_slow(raw, region)[0] in (expected, None), raw
    fast = _phonefast.normalize_fast(raw, region)
    assert fast in (None, _normalize_slow(raw, region)[0]), raw


def test_floats_are_still_read_as_their_integer() -> None:
    assert normalize("4366412345678.0") == "+4366412345678"
    assert normalize(" +436641234567.00 ") == "+436641234567"
    assert normalize("8031234567.0", "NG") == "+2348031234567"
