"""Property tests (hypothesis) for the Colony parsers, mappings and number conversions."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

import httpx
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgate import phone as phonelib
from smsgate.errors import ConfigError, MalformedResponse
from smsgate.models import CampaignStatus, OutboundMessage, Status
from smsgate.provider import ProviderSettings
from smsgate.transport import run_with_responses
from smsgate_colony import (
    DEFAULT_PATHS,
    ColonyOptOut,
    ColonyProvider,
    contacts_csv,
    credits_for,
    deployment_csv,
    deployment_state,
    drf_error_text,
)
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, parse_multipart

_VENDOR_MSISDN = re.compile(r"[1-9][0-9]{7,14}")
#: Keeps the package's test run short; the properties are cheap to state, not to sample.
quick = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def provider(**options: Any) -> ColonyProvider:
    p = ColonyProvider(ProviderSettings(plugin="colony", credentials=dict(SANDBOX_CREDENTIALS), options=options))
    p._token = "t"  # skip the token fetch
    return p


# South African mobile numbers, valid for phonenumbers
za_mobile = st.builds(
    lambda prefix, rest: f"+27{prefix}{rest}",
    st.sampled_from(["60", "61", "71", "72", "73", "74", "76", "78", "79", "81", "82", "83", "84"]),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
).filter(lambda n: phonenumbers.is_valid_number(phonenumbers.parse(n)))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)


@quick
@given(st.text(max_size=2000))
def test_credits_are_started_160_character_chunks(text: str) -> None:
    credits = credits_for(text)
    assert credits >= 1
    assert credits == max(1, math.ceil(len(text) / 160))
    assert (credits - 1) * 160 < max(1, len(text)) <= credits * 160


@quick
@given(st.text(min_size=1, max_size=500), st.text(min_size=1, max_size=500))
def test_credits_are_subadditive(a: str, b: str) -> None:
    assert credits_for(a + b) <= credits_for(a) + credits_for(b)


@quick
@given(st.none() | st.integers(), st.none() | st.text(max_size=30),
       st.dictionaries(st.integers(), st.sampled_from(list(CampaignStatus)), max_size=5))
def test_deployment_state_is_total(status: int | None, error: str | None, table: dict[int, CampaignStatus]) -> None:
    state = deployment_state(status, error, table)
    assert isinstance(state, CampaignStatus)
    if error and error.strip() and table.get(status) is not CampaignStatus.COMPLETED:  # type: ignore[arg-type]
        assert state is CampaignStatus.FAILED
    elif status is None or status not in table:
        assert state is CampaignStatus.UNKNOWN
    else:
        assert state is table[status]


@quick
@given(json_values)
def test_drf_error_text_never_raises(body: Any) -> None:
    text = drf_error_text(body)
    assert isinstance(text, str) and len(text) <= 300


@quick
@given(za_mobile)
def test_numbers_round_trip_through_the_vendor_format(e164: str) -> None:
    digits = phonelib.to_international_digits(e164)
    assert _VENDOR_MSISDN.fullmatch(digits) and digits.startswith("27")
    record = ColonyOptOut(id=1, originator=digits)
    assert provider().to_optout(record).phone == e164
    # also with a '+' or in national form, as a vendor might send it back
    assert provider().to_optout(ColonyOptOut(id=1, originator="+" + digits)).phone == e164
    national = phonelib.to_national(e164)
    assert provider().to_optout(ColonyOptOut(id=1, originator=national)).phone == e164


@quick
@given(st.lists(st.tuples(za_mobile, st.text(min_size=1, max_size=80).filter(lambda t: t.strip() and "\x00" not in t)),
                min_size=1, max_size=10))
def test_deployment_csv_round_trips(rows: list[tuple[str, str]]) -> None:
    data = deployment_csv(rows).decode("utf-8")
    parsed = list(csv.DictReader(io.StringIO(data, newline="")))
    assert [(r["destination"], r["message"]) for r in parsed] == [
        (phonelib.to_international_digits(n), m) for n, m in rows
    ]


@quick
@given(st.lists(za_mobile, min_size=1, max_size=10))
def test_contacts_csv_round_trips(numbers: list[str]) -> None:
    parsed = list(csv.DictReader(io.StringIO(contacts_csv(numbers).decode())))
    assert [r["msisdn"] for r in parsed] == [n[1:] for n in numbers]


@quick
@given(st.lists(za_mobile, max_size=12), st.integers(min_value=1, max_value=5), st.booleans())
def test_pages_are_walked_completely(numbers: list[str], size: int, plain: bool) -> None:
    records = [{"id": i + 1, "originator": n[1:], "date_overwritten": None} for i, n in enumerate(numbers)]
    if plain:
        responses = [httpx.Response(200, json=records)]
    else:
        chunks = [records[i : i + size] for i in range(0, len(records), size)] or [[]]
        responses = []
        for i, chunk in enumerate(chunks):
            nxt = f"https://api.colonyhq.com/contact/optouts/?page={i + 2}" if i + 1 < len(chunks) else None
            responses.append(httpx.Response(200, json={"count": len(records), "next": nxt, "previous": None,
                                                       "results": chunk}))
    out = run_with_responses(provider().list_optouts(), responses)
    assert [o.phone for o in out] == numbers


@quick
@given(json_values)
def test_listing_parser_never_crashes_untyped(body: Any) -> None:
    try:
        run_with_responses(provider().list_optouts(), [httpx.Response(200, json=body)] * 2)
    except MalformedResponse:
        pass
    except AssertionError as exc:  # a 'next' link asking for another page: fine
        assert "unexpected request" in str(exc)


@quick
@given(st.sampled_from(sorted(DEFAULT_PATHS)), st.sampled_from(["/x/", "/x/{id}/", "/x/{period}/{id}/", "/x/{period}/"]))
def test_path_overrides_must_keep_placeholders(key: str, template: str) -> None:
    want = set(re.findall(r"\{(\w+)\}", DEFAULT_PATHS[key]))
    got = set(re.findall(r"\{(\w+)\}", template))
    if want == got:
        assert provider(paths={key: template}).paths[key] == template
    else:
        with pytest.raises(ConfigError):
            provider(paths={key: template})


@quick
@given(st.dictionaries(st.text(alphabet=st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8),
                       st.text(max_size=30).filter(lambda s: "\r" not in s), max_size=4),
       st.binary(max_size=200))
def test_emulator_multipart_parser_reads_what_httpx_writes(fields: dict[str, str], content: bytes) -> None:
    fields.pop("file", None)
    request = httpx.Request("POST", "http://x/", data=fields, files={"file": ("f.csv", content, "text/csv")})
    got_fields, files = parse_multipart(request.headers["content-type"], request.read())
    assert got_fields == fields
    assert files["file"] == ("f.csv", content)


#: Bodies a send might be answered with: any JSON value, or bytes that are not JSON at all.
answer_bodies = st.one_of(
    json_values.map(lambda v: ("json", v)),
    st.sampled_from([b"", b" ", b"<html>OK</html>", b"OK", b"null", b"{", b"\xff\xfe"]).map(lambda b: ("raw", b)),
    st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(lambda v: ("json", v)),
)


def _answer(status: int, body: tuple[str, Any]) -> httpx.Response:
    kind, value = body
    if kind == "json":
        return httpx.Response(status, json=value)
    return httpx.Response(status, content=value)


def _expected(status: int, body: tuple[str, Any]) -> type[Exception] | Status:
    """The documented success answer is 200 or 201 with a JSON object (seed 002: model ``{}``; the
    status is not given: a DRF plain view or create view [INF])."""
    kind, value = body
    if kind == "raw":
        try:
            value = json.loads(value)
        except ValueError:
            return MalformedResponse
    if isinstance(value, dict) and 200 <= status < 300 and (value.get("error") or value.get("errors")):
        return MalformedResponse  # an error reported inside a 2xx body: maybe sent (not RequestRejected)
    if status in (200, 201) and isinstance(value, dict):
        return Status.SUBMITTED
    return MalformedResponse


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=200, max_value=399), answer_bodies, st.integers(min_value=1, max_value=4))
def test_only_the_documented_answer_means_submitted(status: int, body: tuple[str, Any], n: int) -> None:
    """Single and bulk sends: any answer 200-399 other than 200/201 + a JSON object is not ``submitted``."""
    msgs = [OutboundMessage(to=f"+2781585456{i}", text="hi", message_id=f"m{i}") for i in range(n)]
    want = _expected(status, body)
    for op in (provider().send(msgs[0]), provider().send_many(msgs)):
        if isinstance(want, Status):
            out = run_with_responses(op, [_answer(status, body)])
            results = out if isinstance(out, list) else [out]
            assert [r.status for r in results] == [want] * len(results)
        else:
            with pytest.raises(want):
                run_with_responses(op, [_answer(status, body)])


@quick
@given(st.text(max_size=60))
def test_any_next_link_is_followed_or_malformed(next_url: str) -> None:
    """Whatever string ``next`` holds, paging follows it or raises MalformedResponse naming the field."""
    page = {"count": 1, "next": next_url, "previous": None, "results": []}
    try:
        run_with_responses(provider().list_optouts(), [httpx.Response(200, json=page), httpx.Response(200, json=[])])
    except MalformedResponse as exc:
        assert "'next'" in str(exc)
