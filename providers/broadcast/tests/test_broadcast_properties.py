"""Property tests (hypothesis) for the broadcast adapter's pure parts."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from smsgate import phone as phonelib
from smsgate.models import Status
from smsgate_broadcast import BROADCAST_STATUS, entry_number, neutral_status, parse_broadcast

digits = st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True)
# Nigerian mobile numbers in E.164: +234 + 70x/80x/81x/90x/91x + 7 digits
ng_e164 = st.builds(lambda p, rest: f"+234{p}{rest}",
                    st.sampled_from(["703", "706", "803", "805", "810", "813", "903", "905", "915"]),
                    st.from_regex(r"[0-9]{7}", fullmatch=True))


@given(digits)
def test_entry_number_reads_every_documented_or_tolerated_form(d: str) -> None:
    forms: list[Any] = [d, f"+{d}", f" {d} ", f"{d}@s.whatsapp.net", f"{d}:8@s.whatsapp.net", f"{d}@c.us",
                        int(d), {"number": d}, {"phone": f"+{d}"}, {"chatId": f"{d}@c.us"}]
    for form in forms:
        assert entry_number(form) == d, form


@given(st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats(),
                 st.dictionaries(st.text(), st.text()), st.lists(st.text())))
def test_entry_number_is_total(value: Any) -> None:
    out = entry_number(value)
    assert out is None or (out.isdigit() and 7 <= len(out) <= 15 and out[0] != "0")


@given(ng_e164)
def test_numbers_round_trip_between_e164_and_vendor_digits(e164: str) -> None:
    vendor = phonelib.to_international_digits(e164)
    assert "+" not in vendor and vendor.startswith("234")
    assert f"+{entry_number(vendor)}" == e164
    assert phonelib.region_of(e164) == "NG"


@given(st.one_of(st.text(), st.none(), st.integers(), st.sampled_from(sorted(BROADCAST_STATUS))),
       st.sampled_from([None, "sent", "pending", "failed", "other"]))
def test_status_mapping_is_total(raw: Any, list_name: str | None) -> None:
    status = neutral_status(raw, list_name)
    assert isinstance(status, Status)
    if list_name == "failed":
        assert status == Status.FAILED
    elif list_name == "sent":
        assert status == Status.SENT
    elif list_name == "pending":
        assert status == Status.SUBMITTED
    elif isinstance(raw, str) and raw.strip().lower() in BROADCAST_STATUS:
        assert status == BROADCAST_STATUS[raw.strip().lower()]


def test_documented_status_is_submitted() -> None:
    assert neutral_status("sending") == Status.SUBMITTED


@given(st.lists(digits, max_size=8), st.lists(digits, max_size=8), st.lists(digits, max_size=8),
       st.sampled_from(["sending", "completed", "mystery"]))
def test_outcome_prefers_failed_then_sent_then_pending(sent: list[str], pending: list[str],
                                                       failed: list[str], status: str) -> None:
    record = parse_broadcast({"_id": "b", "status": status, "sent": sent, "pending": pending, "failed": failed,
                              "to": ",".join(sent + pending + failed)})
    for n in set(sent + pending + failed):
        got, raw = record.outcome(n)
        if n in failed:
            assert (got, raw) == (Status.FAILED, "failed")
        elif n in sent:
            assert (got, raw) == (Status.SENT, "sent")
        else:
            assert (got, raw) == (Status.SUBMITTED, "pending")
    reports = record.reports("p")
    assert {r.to for r in reports} == {f"+{n}" for n in sent + pending + failed}
