"""The pure parts: templates (JSON and form bodies), the path syntax, the status map, timestamps."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.lifecycle import Status
from smsgate.models import OutboundMessage
from smsgate.provider import ProviderSettings
from smsgate_generic_http import GenericHttpProvider
from smsgate_generic_http.wire import (
    MESSAGE_FIELDS,
    MISSING,
    OMIT,
    Path,
    Template,
    compile_structure,
    lookup_status,
    parse_timestamp,
    render_structure,
)

any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)  # no lone surrogates
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)

BODY = {"messages": [{"to": "{to}", "body": "{text}", "from": "{sender}", "ref": "{reference}"}],
        "note": "to {to_digits}: {text}", "flag": True, "n": 3}


def _values(text: str, sender: str | None = "ACME", reference: str | None = "r-1") -> dict[str, str | None]:
    return {"to": "+2348031234567", "to_digits": "2348031234567", "text": text, "sender": sender,
            "reference": reference, "message_id": "m-1"}


@settings(max_examples=300)
@given(text=any_text, sender=st.one_of(st.none(), any_text))
def test_json_templating_never_breaks_json_or_adds_fields(text: str, sender: str | None) -> None:
    compiled = compile_structure(BODY, MESSAGE_FIELDS)
    rendered = render_structure(compiled, _values(text, sender))
    decoded = json.loads(json.dumps(rendered))
    expected_msg = {"to": "+2348031234567", "body": text, "ref": "r-1"}
    if sender is not None:
        expected_msg["from"] = sender
    assert decoded == {"messages": [expected_msg], "note": f"to 2348031234567: {text}", "flag": True, "n": 3}


@settings(max_examples=200)
@given(text=any_text)
def test_provider_json_body_carries_any_text_exactly(text: str) -> None:
    """Through the provider's own request building (and httpx's JSON encoding)."""
    prov = GenericHttpProvider(ProviderSettings(
        plugin="generic_http", base_url="http://vendor.invalid", credentials={"k": "secret-k-123"},
        options={"headers": {"X-Key": "{secret.k}"}, "request": {"url": "/send", "json": BODY}}))
    req = prov.send_request(OutboundMessage(to="+2348031234567", text=text, sender="ACME", message_id="m-1"))
    body = json.loads(req.content)
    assert body["messages"][0]["body"] == text and set(body["messages"][0]) == {"to", "body", "from"}
    assert set(body) == {"messages", "note", "flag", "n"}


@settings(max_examples=200)
@given(text=any_text, sender=any_text)
def test_form_templating_round_trips_any_text(text: str, sender: str) -> None:
    prov = GenericHttpProvider(ProviderSettings(
        plugin="generic_http", base_url="http://vendor.invalid",
        options={"request": {"url": "/send", "form": {"To": "{to}", "Body": "{text}", "From": "{sender}"}}}))
    req = prov.send_request(OutboundMessage(to="+2348031234567", text=text, sender=sender or None))
    fields = urllib.parse.parse_qsl(req.content.decode(), keep_blank_values=True)
    assert dict(fields) == {"To": "+2348031234567", "Body": text, **({"From": sender} if sender else {})}
    assert len(fields) == (3 if sender else 2)


@given(text=any_text)
def test_url_placeholders_are_quoted_into_one_segment(text: str) -> None:
    prov = GenericHttpProvider(ProviderSettings(
        plugin="generic_http", base_url="http://vendor.invalid/api",
        options={"request": {"method": "GET", "url": "/send/{to_digits}/{reference}", "query": {"q": "{text}"}}}))
    req = prov.send_request(OutboundMessage(to="+2348031234567", text=text, reference=text))
    assert req.url.raw_path.decode().split("?")[0].startswith("/api/send/2348031234567/")
    assert req.url.raw_path.decode().split("?")[0].count("/") == 4
    assert urllib.parse.unquote(req.url.raw_path.decode().split("?")[0].rsplit("/", 1)[1]) == text
    assert dict(urllib.parse.parse_qsl(req.url.query.decode(), keep_blank_values=True)) == {"q": text}


@given(literal=any_text)
def test_escaped_braces_are_literal(literal: str) -> None:
    escaped = literal.replace("{", "{{").replace("}", "}}")
    t = Template.parse(escaped, frozenset())
    assert t.fields == frozenset() and t.render({}) == literal


@given(source=any_text)
def test_template_parse_accepts_or_raises_value_error(source: str) -> None:
    try:
        t = Template.parse(source, MESSAGE_FIELDS)
    except ValueError:
        return
    assert t.fields <= MESSAGE_FIELDS | {f for f in t.fields if f.startswith("secret.")}


@given(a=any_text, b=any_text)
def test_match_inverts_render(a: str, b: str) -> None:
    t = Template.parse("Bearer {secret.key}", frozenset())
    assert t.match(str(t.render({}, lambda name: a))) == {"secret.key": a}
    two = Template.parse("{to}:{text}", MESSAGE_FIELDS)
    found = two.match(str(two.render({"to": a.replace(":", ""), "text": b})))
    assert found is not None and found["to"] == a.replace(":", "")


@pytest.mark.parametrize("bad", ["{", "}", "{}", "{0}", "{to!r}", "{to:>10}", "{nope}", "{to.x}", "{to[0]}",
                                 "{secret.}", "{secret.a b}", "{__class__}"])
def test_bad_placeholders_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        Template.parse(bad, MESSAGE_FIELDS)


def test_secrets_refused_where_not_allowed() -> None:
    with pytest.raises(ValueError, match="no credentials in a URL path"):
        Template.parse("/send/{secret.k}", MESSAGE_FIELDS, secrets=False)


def test_lone_placeholder_without_value_is_left_out() -> None:
    t = Template.parse("{sender}", MESSAGE_FIELDS)
    assert t.render({"sender": None}) is OMIT
    assert Template.parse("from {sender}", MESSAGE_FIELDS).render({"sender": None}) == "from "


# ---------------------------------------------------------------- paths
keys = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8)


def _escape(key: str) -> str:
    return key.replace("\\", "\\\\").replace(".", "\\.")


@given(steps=st.lists(keys, min_size=1, max_size=5))
def test_path_escapes_round_trip(steps: list[str]) -> None:
    assert Path.parse(".".join(_escape(s) for s in steps)).steps == tuple(steps)


@given(data=json_values, path=st.lists(keys | st.integers(-3, 5).map(str), min_size=1, max_size=5))
def test_path_get_never_raises(data: Any, path: list[str]) -> None:
    Path.parse(".".join(_escape(s) for s in path)).get(data)


@given(steps=st.lists(st.text(alphabet="abcxyz_", min_size=1, max_size=5) | st.integers(0, 3).map(str),
                      min_size=1, max_size=5), value=json_values)
def test_path_set_then_get(steps: list[str], value: Any) -> None:
    path = Path.parse(".".join(steps))
    assert path.get(path.set({}, value)) == value


def test_path_examples() -> None:
    body = {"data": {"messages": [{"id": "a"}, {"id": 7}], "x.y": 1}, "ok": False}
    assert Path.parse("data.messages.0.id").get(body) == "a"
    assert Path.parse("data.messages.-1.id").get(body) == 7
    assert Path.parse("data.x\\.y").get(body) == 1
    assert Path.parse("data.messages.2.id").get(body) is MISSING
    assert Path.parse("ok").get(body) is False
    assert Path.parse("$").get("bare-id") == "bare-id"
    assert Path.parse("data.messages.id").get(body) is MISSING
    assert Path.parse("0").get({"0": "key, not index"}) == "key, not index"
    for bad in ["", "a..b", ".a", "a.", "a\\", "a\\b"]:
        with pytest.raises(ValueError):
            Path.parse(bad)


# ---------------------------------------------------------------- status map, timestamps
def test_status_map_lookup() -> None:
    mapping = {"DELIVRD": Status.DELIVERED, "1": Status.SENT, "true": Status.SUBMITTED}
    assert lookup_status("DELIVRD", mapping) == Status.DELIVERED
    assert lookup_status(" delivrd ", mapping) == Status.DELIVERED
    assert lookup_status(1, mapping) == Status.SENT
    assert lookup_status(True, mapping) == Status.SUBMITTED
    assert lookup_status("other", mapping) is None
    assert lookup_status({"x": 1}, mapping) is None and lookup_status(None, mapping) is None


@given(value=json_values)
def test_parse_timestamp_never_raises(value: Any) -> None:
    parse_timestamp(value)


def test_parse_timestamp_forms() -> None:
    a = parse_timestamp("2026-12-03T10:00:00Z")
    assert a is not None and a.isoformat() == "2026-12-03T10:00:00+00:00"
    assert parse_timestamp(1796292000) == parse_timestamp("1796292000000")
    assert parse_timestamp("soon") is None


def test_status_result_of_a_send_answer() -> None:
    from smsgate.transport import run_with_responses

    prov = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url="http://v.invalid", options={
        "request": {"url": "/s", "json": {"to": "{to}"}},
        "response": {"id_path": "id", "status_path": "st"},
        "status_map": {"0": "submitted", "9": "rejected"}}))
    msg = OutboundMessage(to="+2348031234567", text="x", message_id="m")
    ok = run_with_responses(prov.send(msg), [httpx.Response(200, json={"id": 12, "st": 0})])
    assert (ok.status, ok.provider_message_id, ok.raw_status) == (Status.SUBMITTED, "12", "0")
    refused = run_with_responses(prov.send(msg), [httpx.Response(200, json={"id": "a", "st": 9})])
    assert refused.status == Status.REJECTED and refused.error
    odd = run_with_responses(prov.send(msg), [httpx.Response(200, json={"id": "a", "st": "new-word"})])
    assert odd.status == Status.SUBMITTED and odd.raw_status == "new-word"


def test_error_path_in_a_success_answer() -> None:
    from smsgate.errors import RequestRejected
    from smsgate.transport import run_with_responses

    prov = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url="http://v.invalid", options={
        "request": {"url": "/s", "json": {"to": "{to}"}},
        "response": {"id_path": "id", "error_path": "error"}}))
    msg = OutboundMessage(to="+2348031234567", text="x", message_id="m")
    for no_error in (None, False, 0, "", [], {}):
        ok = run_with_responses(prov.send(msg), [httpx.Response(200, json={"id": "a", "error": no_error})])
        assert ok.status == Status.SUBMITTED
    with pytest.raises(RequestRejected, match="code"):
        run_with_responses(prov.send(msg), [httpx.Response(200, json={"id": "a", "error": {"code": 5}})])
    with pytest.raises(RequestRejected, match="no credit"):
        run_with_responses(prov.send(msg), [httpx.Response(200, json={"error": "no credit"})])


def test_the_message_text_cannot_go_in_the_url() -> None:
    """httpx logs a request's URL at INFO (smsgate drops its query string only): ``{text}`` in
    the path would put every message's text in the logs."""
    from smsgate.errors import ConfigError

    with pytest.raises(ConfigError, match="the message text cannot go in the URL"):
        GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url="http://vendor.invalid",
                                             options={"request": {"url": "/send/{text}"}}))
