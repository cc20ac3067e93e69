"""The helpers written once on ``Provider``/``Paged``: authenticate as a plain method, page
walking, malformed-answer errors and envelope checks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from smsgate.errors import MalformedResponse
from smsgate.provider import Operation, Page, Paged, Provider, ProviderSettings, parse_model
from smsgate.transport import run_with_responses


class Plain(Provider):
    name = "plain"
    default_base_url = "http://vendor.test"

    def authenticate(self, request: httpx.Request) -> None:
        request.headers["X-Key"] = self.settings.secret("key") or ""


class Tokened(Provider):
    name = "tokened"
    default_base_url = "http://vendor.test"

    def authenticate(self, request: httpx.Request) -> Operation[None]:
        response = yield self.request("POST", "/token")
        request.headers["Authorization"] = f"Bearer {response.json()['t']}"


def _settings(**kw: Any) -> ProviderSettings:
    return ProviderSettings(plugin="x", credentials={"key": "k-secret-123"}, **kw)


def test_authenticate_as_a_plain_method_sets_headers_without_requests() -> None:
    prov = Plain(_settings())
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    run_with_responses(prov.call_ok(prov.request("GET", "/x")), [answer])
    assert [r.headers["x-key"] for r in seen] == ["k-secret-123"]


def test_authenticate_default_adds_nothing_and_a_generator_still_works() -> None:
    base = Provider.__new__(Provider)
    assert base.authenticate(httpx.Request("GET", "http://x")) is None
    prov = Tokened(_settings())
    request = prov.request("GET", "/x")
    run_with_responses(prov.authorized(request), [httpx.Response(200, json={"t": "abc"})])
    assert request.headers["authorization"] == "Bearer abc"


def _listing(prov: Provider, pages: int) -> Paged[int]:
    def parse(request: httpx.Request, response: httpx.Response) -> Page[int]:
        n = int(request.url.params["page"])
        following = prov.request("GET", "/items", params={"page": n + 1}) if n < pages else None
        return Page(response.json(), following)

    return Paged(prov, prov.request("GET", "/items", params={"page": 1}), parse)


def _pages(requested: list[int]) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params["page"])
        requested.append(n)
        return httpx.Response(200, json=[n * 10, n * 10 + 1])

    return [answer] * 10


def test_collect_walks_every_page() -> None:
    prov, requested = Plain(_settings()), []
    assert run_with_responses(_listing(prov, 3).collect(), _pages(requested)) == [10, 11, 20, 21, 30, 31]
    assert requested == [1, 2, 3]


def test_find_stops_at_the_first_match_and_returns_none_when_absent() -> None:
    prov, requested = Plain(_settings()), []
    assert run_with_responses(_listing(prov, 3).find(lambda i: i == 20), _pages(requested)) == 20
    assert requested == [1, 2]
    requested.clear()
    assert run_with_responses(_listing(prov, 3).find(lambda i: i == 99), _pages(requested)) is None
    assert requested == [1, 2, 3]


def test_walk_returns_what_visit_returns() -> None:
    prov, requested = Plain(_settings()), []
    visited: list[list[int]] = []

    def visit(page: Page[int]) -> str | None:
        visited.append(page.items)
        return "stop" if len(visited) == 2 else None

    assert run_with_responses(_listing(prov, 5).walk(visit), _pages(requested)) == "stop"
    assert visited == [[10, 11], [20, 21]] and requested == [1, 2]


def test_malformed_names_the_route_not_the_query_and_redacts_the_body() -> None:
    prov = Plain(_settings())
    request = prov.request("GET", "/items", params={"api_key": "k-secret-123"})
    response = httpx.Response(200, text='{"echo": "k-secret-123"', request=request)
    err = prov.malformed("not JSON", response)
    assert str(err) == "[plain] GET /items: not JSON (HTTP 200)"
    assert "k-secret-123" not in f"{err} {err!r} {err.body}"
    assert err.status_code == 200
    assert "GET" not in str(prov.malformed("no id"))


@pytest.mark.parametrize(("value", "message"), [
    ([], "page: expected a JSON object, got list"),
    ("x", "page: expected a JSON object, got str"),
])
def test_expect_object(value: Any, message: str) -> None:
    prov = Plain(_settings())
    response = httpx.Response(200, request=prov.request("GET", "/p"))
    with pytest.raises(MalformedResponse, match=message):
        prov.expect_object(value, response, "page")
    assert prov.expect_object({"a": 1}, response, "page") == {"a": 1}


def test_expect_rows() -> None:
    prov = Plain(_settings())
    response = httpx.Response(200, request=prov.request("GET", "/p"))
    assert prov.expect_rows(None, response, "data") == []
    assert prov.expect_rows([{"a": 1}], response, "data") == [{"a": 1}]
    with pytest.raises(MalformedResponse, match=r"data\[1\]: expected an object, got int"):
        prov.expect_rows([{}, 3], response, "data")
    with pytest.raises(MalformedResponse, match="data: expected a list, got dict"):
        prov.expect_rows({}, response, "data")
    with pytest.raises(MalformedResponse, match="answer: expected a JSON object"):
        prov.json_object(httpx.Response(200, json=[1], request=response.request))


class Item(BaseModel):
    id: str
    n: int


def test_parse_model_names_the_field_never_the_value() -> None:
    assert parse_model(Item, {"id": "a", "n": 1}, "item") == Item(id="a", n=1)
    with pytest.raises(MalformedResponse, match="item: expected a Item object, got list"):
        parse_model(Item, [], "item")
    with pytest.raises(MalformedResponse, match="item: unexpected Item: field 'n'") as info:
        parse_model(Item, {"id": "a", "n": "secret-value-xyz"}, "item")
    assert "secret-value-xyz" not in str(info.value)


@given(st.integers(-(10**18) + 1, 10**18 - 1))
def test_read_int_reads_integers_however_a_vendor_writes_them(n: int) -> None:
    from smsgate.provider import read_int

    assert read_int(n) == read_int(str(n)) == read_int(f" {n} ") == read_int(f"{n}.0") == n
    if abs(n) < 2**53:
        assert read_int(float(n)) == n


@given(st.one_of(st.none(), st.booleans(), st.text(max_size=24), st.floats(allow_nan=True, allow_infinity=True),
                 st.lists(st.integers(), max_size=2)))
def test_read_int_is_total_and_never_guesses(value: object) -> None:
    from smsgate.provider import read_int

    got = read_int(value)
    if isinstance(value, bool) or value is None or isinstance(value, list):
        assert got is None
    elif isinstance(value, float):
        assert got == (int(value) if value.is_integer() else None)
    elif got is not None:
        assert isinstance(value, str) and float(value.strip()) == got


# ------------------------------------------------------------------ query_token
TOKEN_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(token=TOKEN_TEXT, other=st.text(max_size=10), how=st.sampled_from(["quote", "quote_plus", "urlencode"]))
def test_query_token_reads_a_token_however_it_was_encoded(token: str, other: str, how: str) -> None:
    import urllib.parse

    from smsgate.provider import query_token

    encoded = {"quote": urllib.parse.quote(token, safe=""), "quote_plus": urllib.parse.quote_plus(token),
               "urlencode": urllib.parse.urlencode({"token": token}).partition("=")[2]}[how]
    query = f"a={urllib.parse.quote(other)}&token={encoded}&token=second"
    assert token in query_token(query, "token")  # the first occurrence, in one of its readings
    assert query_token(query, "absent") == () and query_token("token", "token") == ()


@given(token=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", min_size=1,
                     max_size=40))
def test_query_token_reads_a_base64_token_pasted_as_it_is(token: str) -> None:
    from smsgate.provider import query_token

    assert token in query_token(f"token={token}", "token")


@pytest.mark.parametrize(("content_type", "body", "said"), [
    ("application/json", b'{"id": "abc", "status":', "a body that is not valid JSON though labelled application/json "
                                                     "(Expecting value at character 23)"),
    ("application/json; charset=utf-8", b"<html>oops</html>", "labelled application/json; charset=utf-8 "
                                                             "(Expecting value at character 0)"),
    ("text/html", b"<html>oops</html>", "got text/html"),
])
def test_a_body_that_is_not_json_says_what_it_got(content_type: str, body: bytes, said: str) -> None:
    """A vendor answering garbage labelled ``application/json`` was told as "expected JSON ...,
    got application/json" (helper plug's leftover): now it says the body is not valid JSON and
    where the decoder stopped; the body itself stays out of the message."""
    prov = Plain(_settings())
    response = httpx.Response(200, content=body, headers={"content-type": content_type},
                              request=httpx.Request("POST", "http://vendor.test/send"))
    with pytest.raises(MalformedResponse) as caught:
        prov.json(response)
    assert said in str(caught.value)
    assert "oops" not in str(caught.value).replace(caught.value.body or "", "")
