"""The retry policy, the sync/async drivers, the pager and provider helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.errors import (
    AuthFailed,
    LeaseLost,
    MalformedResponse,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    ResourceNotFound,
    StoreError,
    TransportError,
    UnknownOutcome,
    redact,
)
from smsgate.provider import (
    Operation,
    Page,
    Paged,
    Provider,
    ProviderSettings,
    is_idempotent,
    mark_idempotent,
    parse_retry_after,
)
from smsgate.traffic.gate import StoppedWaiting
from smsgate.transport import AsyncDriver, RetryPolicy, SyncDriver, run_with_responses


class Dummy(Provider):
    name = "dummy"
    default_base_url = "http://vendor.test"
    uses_tokens = True

    def __init__(self) -> None:
        super().__init__(ProviderSettings(plugin="dummy", credentials={"key": "s3cr3t-value"}))
        self.tokens = 0
        self.token: str | None = None

    def authenticate(self, request: httpx.Request) -> Operation[None]:
        if self.token is None:
            response = yield self.request("POST", "/token")
            self.token = response.json()["token"]
            self.tokens += 1
        request.headers["Authorization"] = f"Bearer {self.token}"

    def invalidate_auth(self) -> None:
        self.token = None

    def ping(self) -> Operation[str]:
        response = yield from self.call_ok(self.request("POST", "/ping", json={"x": 1}))
        return str(self.json(response)["pong"])

    def listing(self, size: int, total: int) -> Paged[int]:
        def parse(request: httpx.Request, response: httpx.Response) -> Page[int]:
            data = response.json()
            nxt = None
            if data["next"] is not None:
                nxt = self.request("GET", "/items", params={"page": data["next"]})
            return Page(data["items"], nxt, total)

        return Paged(self, self.request("GET", "/items", params={"page": 0}), parse)


def items_handler(total: int, size: int, log: list[str]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        log.append(str(request.url))
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "tok"})
        page = int(request.url.params["page"])
        items = list(range(page * size, min(total, (page + 1) * size)))
        nxt = page + 1 if (page + 1) * size < total else None
        return httpx.Response(200, json={"items": items, "next": nxt})

    return handle


def req(method: str = "POST") -> httpx.Request:
    return httpx.Request(method, "http://vendor.test/x?api_key=zzz")


# ------------------------------------------------------------------ policy
def test_429_waits_for_retry_after_then_gives_up() -> None:
    p = RetryPolicy(max_retries=2)
    r = httpx.Response(429, headers={"Retry-After": "7"})
    assert p.decide(req(), 0, r, None) == 7
    assert p.decide(req(), 2, r, None) is None  # exhausted: the 429 goes to the adapter
    assert RetryPolicy(max_retry_after=3).decide(req(), 0, r, None) == 3


def test_5xx_retried_only_when_safe() -> None:
    p = RetryPolicy(max_retries=2)
    assert p.decide(req("GET"), 0, httpx.Response(500), None) is not None
    assert p.decide(req("GET"), 2, httpx.Response(500), None) is None
    with pytest.raises(UnknownOutcome):
        p.decide(req("POST"), 0, httpx.Response(500), None)
    with pytest.raises(UnknownOutcome):  # a 503 is no proof that nothing happened
        p.decide(req("POST"), 0, httpx.Response(503), None)
    declared = RetryPolicy(max_retries=2, not_processed=frozenset({503}))  # the vendor documents it
    assert declared.decide(req("POST"), 0, httpx.Response(503), None) is not None
    with pytest.raises(UnknownOutcome):
        declared.decide(req("POST"), 0, httpx.Response(502), None)
    assert p.decide(mark_idempotent(req("POST")), 0, httpx.Response(502), None) is not None


def test_transport_errors() -> None:
    p = RetryPolicy(max_retries=1)
    connect = httpx.ConnectError("refused")
    assert p.decide(req(), 0, None, connect) is not None
    with pytest.raises(TransportError):
        p.decide(req(), 1, None, connect)
    timeout = httpx.ReadTimeout("slow")
    with pytest.raises(UnknownOutcome, match="not repeated"):
        p.decide(req("POST"), 0, None, timeout)
    assert p.decide(req("GET"), 0, None, timeout) is not None
    with pytest.raises(TransportError):
        p.decide(req("GET"), 1, None, timeout)


def test_errors_do_not_leak_query_strings() -> None:
    with pytest.raises(UnknownOutcome) as info:
        RetryPolicy().decide(req("POST"), 0, httpx.Response(500), None)
    assert "zzz" not in str(info.value)


@given(st.integers(min_value=0, max_value=30))
def test_backoff_is_bounded(attempt: int) -> None:
    p = RetryPolicy(base_delay=0.1, max_delay=5)
    assert 0 <= p.backoff(attempt) <= min(5, 0.1 * 2**attempt)


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past


@given(st.text())
def test_parse_retry_after_never_raises(value: str) -> None:
    out = parse_retry_after(value)
    assert out is None or out >= 0


def test_idempotency_defaults() -> None:
    assert is_idempotent(req("GET")) and is_idempotent(req("DELETE"))
    assert not is_idempotent(req("POST"))
    assert is_idempotent(mark_idempotent(req("POST")))


# ------------------------------------------------------------------ drivers
def test_sync_driver_retries_and_returns() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "t"})
        if len(calls) < 3:
            return httpx.Response(429, headers={"Retry-After": "0.25"})
        return httpx.Response(200, json={"pong": "ok"})

    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        drv = SyncDriver(client, RetryPolicy(), sleep=sleeps.append)
        assert drv.run(Dummy().ping()) == "ok"
    assert sleeps == [0.25]


class _StopsOnRetry:
    """A limits gate that lets the first try through and stops the retry (a campaign paused
    while the first try timed out, the Redis keeping the limits gone)."""

    def __init__(self, error: Exception) -> None:
        self.error, self.tries = error, 0

    def acquire(self) -> str:
        self.tries += 1
        if self.tries > 1:
            raise self.error
        return "ticket"

    def release(self, ticket: str) -> None:
        pass


class _AsyncStopsOnRetry(_StopsOnRetry):
    async def acquire(self) -> str:  # type: ignore[override]
        return super().acquire()

    async def release(self, ticket: str) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize("first", ["timeout", "503", "refused", "429"])
@pytest.mark.parametrize("stop", [StoppedWaiting("stopped while waiting"), StoreError("redis down"),
                                  LeaseLost("claims taken over")])
@pytest.mark.parametrize("by", ["gate", "fence"])
def test_a_retry_stopped_by_its_limits_is_unknown_once_a_try_may_have_left(first: str, stop: Exception,
                                                                           by: str) -> None:
    """The retry of an idempotent request whose first try may have reached the vendor (a read
    timeout, a 5xx) is stopped at its limits gate, or by the call's fence (a send lease or a
    campaign runner's claims, checked before each retry): ``UnknownOutcome`` (the message may
    have been sent), never the stop itself, which the kernel reads as "not sent" and sends
    again. After a try that certainly did not leave (refused connection, 429) the stop stands;
    ``LeaseLost`` always does (its messages are another process's to settle)."""
    sent: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        if first == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if first == "refused":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503 if first == "503" else 429)

    fences: list[int] = []

    def fence() -> None:  # the first try passes it (a fresh lease); the retry's finds the stop
        fences.append(1)
        if len(fences) % 2 == 0:
            raise stop

    async def afence() -> None:
        fence()

    request = mark_idempotent(httpx.Request("POST", "https://api.example/send", json={"to": "x"}))
    expected = UnknownOutcome if first in ("timeout", "503") and not isinstance(stop, LeaseLost) else type(stop)
    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        drv = SyncDriver(client, RetryPolicy(), sleep=lambda _d: None)
        with pytest.raises(expected):
            if by == "gate":
                drv.send(request, _StopsOnRetry(stop))  # type: ignore[arg-type]
            else:
                drv.send(request, None, fence)

    async def go() -> None:
        async def no_sleep(_d: float) -> None:
            pass

        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            drv = AsyncDriver(client, RetryPolicy(), sleep=no_sleep)
            with pytest.raises(expected):
                if by == "gate":
                    await drv.send(request, _AsyncStopsOnRetry(stop))  # type: ignore[arg-type]
                else:
                    await drv.send(request, None, afence)

    asyncio.run(go())
    assert len(sent) == 2  # one try each, its retry stopped


def test_async_driver_same_operation() -> None:
    sleeps: list[float] = []
    n = {"ping": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "t"})
        n["ping"] += 1
        if n["ping"] == 1:
            return httpx.Response(503)
        return httpx.Response(200, json={"pong": "async"})

    async def fake_sleep(d: float) -> None:
        sleeps.append(d)

    async def go() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            # a 503 declared "not processed": safe to repeat even for this POST
            policy = RetryPolicy(not_processed=frozenset({503}))
            return await AsyncDriver(client, policy, sleep=fake_sleep).run(Dummy().ping())

    assert asyncio.run(go()) == "async"
    assert len(sleeps) == 1


def test_token_refreshed_once_on_401() -> None:
    prov = Dummy()
    prov.token = "stale"
    out = run_with_responses(
        prov.ping(),
        [
            httpx.Response(401),
            httpx.Response(200, json={"token": "fresh"}),
            httpx.Response(200, json={"pong": "yes"}),
        ],
    )
    assert out == "yes" and prov.token == "fresh"
    # a second 401 is an auth failure, not a loop
    prov.token = "stale"
    with pytest.raises(AuthFailed):
        run_with_responses(
            prov.ping(),
            [
                httpx.Response(401),
                httpx.Response(200, json={"token": "x"}),
                httpx.Response(401, json={"message": "still no"}),
            ],
        )


def test_run_with_responses_rejects_extra_requests() -> None:
    with pytest.raises(AssertionError, match="unexpected request"):
        run_with_responses(Dummy().ping(), [httpx.Response(200, json={"token": "t"})])


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthFailed),
        (403, AuthFailed),
        (404, ResourceNotFound),
        (429, RateLimited),
        (400, RequestRejected),
        (422, RequestRejected),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
    ],
)
def test_status_mapping(status: int, error: type[Exception]) -> None:
    prov = Dummy()
    prov.token = "t"
    answer = httpx.Response(
        status, json={"message": "bad key s3cr3t-value password=hunter2"}, headers={"Retry-After": "2"}
    )
    # a 401 makes a token provider re-authenticate once before giving up
    feed = (
        [httpx.Response(401), httpx.Response(200, json={"token": "t2"}), answer]
        if status == 401
        else [answer]
    )
    with pytest.raises(error) as info:
        run_with_responses(prov.ping(), feed)
    text = f"{info.value} {info.value.body}"  # type: ignore[attr-defined]
    assert "s3cr3t-value" not in text and "hunter2" not in text
    assert f"HTTP {status}" in str(info.value)
    if status == 429:
        assert info.value.retry_after == 2  # type: ignore[attr-defined]


def test_malformed_json() -> None:
    prov = Dummy()
    prov.token = "t"
    with pytest.raises(MalformedResponse, match="expected JSON"):
        run_with_responses(prov.ping(), [httpx.Response(200, text="<html>")])


def test_redact_patterns() -> None:
    text = (
        'password=abc123&token=xyz "access_token": "qqq" Authorization: Bearer eyJhbGciOi sandbox_sk_94f2aa'
    )
    out = redact(text, ["plainsecret"])
    for leaked in ("abc123", "xyz", "qqq", "eyJhbGciOi", "94f2aa"):
        assert leaked not in out


def test_redact_quoted_values_with_spaces() -> None:
    """A quoted secret value holding spaces (a passphrase a vendor issued) was cut at its first
    space: ``"password": "***" w d"``, the rest of it left in the text."""
    out = redact('{"password": "correct horse battery", "user": "ada"} client_secret=\'two words\' token=abc')
    assert out == '{"password": "***", "user": "ada"} client_secret=\'***\' token=***'


# ------------------------------------------------------------------ pager
def test_pager_is_lazy_sync() -> None:
    log: list[str] = []
    with httpx.Client(transport=httpx.MockTransport(items_handler(95, 10, log))) as client:
        drv = SyncDriver(client)
        it = drv.iterate(Dummy().listing(10, 95))
        first = [next(it) for _ in range(15)]
        assert first == list(range(15))
        assert len([u for u in log if "/items" in u]) == 2
        assert first + list(it) == list(range(95))
        assert len([u for u in log if "/items" in u]) == 10


def test_pager_async() -> None:
    log: list[str] = []

    async def go() -> list[Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(items_handler(23, 5, log))) as client:
            return [x async for x in AsyncDriver(client).iterate(Dummy().listing(5, 23))]

    assert asyncio.run(go()) == list(range(23))


def test_request_reuses_parsed_urls_without_sharing_mutable_state() -> None:
    p = Dummy()
    a = p.request("POST", "/ping", json={"x": 1})
    b = p.request("POST", "/ping", json={"x": 2}, headers={"X-Extra": "1"})
    assert str(a.url) == str(b.url) == "http://vendor.test/ping"
    assert list(p._urls) == ["http://vendor.test/ping"]  # parsed once
    assert a.extensions["timeout"] == httpx.Timeout(p.settings.timeout).as_dict()
    a.extensions["timeout"]["read"] = 1.0  # one request's timeout is its own
    assert b.extensions["timeout"]["read"] == p.settings.timeout
    assert "x-extra" not in a.headers and b.headers["x-extra"] == "1"
    # the bodies httpx builds (compact from httpx 0.28 on; 0.27, the floor, puts spaces in them)
    assert a.content == httpx.Request("POST", "http://vendor.test/ping", json={"x": 1}).content
    assert b.content == httpx.Request("POST", "http://vendor.test/ping", json={"x": 2}).content
    # query parameters (None dropped) and absolute URLs are built as before, and not cached
    q = p.request("GET", "/find", params={"ref": "m1", "skip": None})
    assert str(q.url) == "http://vendor.test/find?ref=m1"
    assert str(p.request("GET", "https://files.test/up?sig=1").url) == "https://files.test/up?sig=1"
    assert "http://vendor.test/find" not in p._urls
    for i in range(400):  # paths with ids in them: the cache stays bounded
        assert str(p.request("GET", f"/messages/{i}").url) == f"http://vendor.test/messages/{i}"
    assert len(p._urls) <= 256


def test_a_custom_policy_still_decides_every_answer() -> None:
    """The drivers answer plain 2xx-4xx themselves only for the stock RetryPolicy."""

    class RetryConflicts(RetryPolicy):
        def decide(self, request: httpx.Request, attempt: int, response: httpx.Response | None,
                   error: Exception | None) -> float | None:
            if response is not None and response.status_code == 409 and attempt < self.max_retries:
                return 0.0
            return super().decide(request, attempt, response, error)

    answers = iter([httpx.Response(409), httpx.Response(200, json={"pong": "after 409"})])

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "t"})
        return next(answers)

    async def no_sleep(_: float) -> None:
        return None

    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        assert SyncDriver(client, RetryConflicts(), sleep=lambda _: None).run(Dummy().ping()) == "after 409"
    answers = iter([httpx.Response(409), httpx.Response(200, json={"pong": "after 409"})])

    async def go() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            return await AsyncDriver(client, RetryConflicts(), sleep=no_sleep).run(Dummy().ping())

    assert asyncio.run(go()) == "after 409"
    answers = iter([httpx.Response(409), httpx.Response(200, json={"pong": "never asked"})])
    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(RequestRejected):  # the stock policy hands a 409 to the adapter at once
            SyncDriver(client, RetryPolicy(), sleep=lambda _: None).run(Dummy().ping())


@pytest.mark.parametrize("headers", [None, {"X-Sig": "abc"}, {"Content-Type": "application/vnd.api+json"}])
def test_json_requests_are_byte_for_byte_what_httpx_builds(headers: dict[str, str] | None) -> None:
    p = Dummy()
    body = {"to": "+2348031234567", "text": "Grüße, café ✓", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    ours = p.request("POST", "/messages", json=body, headers=headers)
    theirs = httpx.Request("POST", "http://vendor.test/messages", json=body, headers=headers)
    assert ours.content == theirs.content
    assert ours.headers.raw == theirs.headers.raw
    assert ours.method == theirs.method and ours.url == theirs.url
    nan = {"x": float("nan")}
    with pytest.raises(ValueError):  # what httpx (>= 0.28, the floor) raises for a body JSON cannot carry
        httpx.Request("POST", "http://vendor.test/messages", json=nan)
    with pytest.raises(ValueError):
        p.request("POST", "/messages", json=nan, headers=headers)



@pytest.mark.parametrize("headers", [None, {"X-Sig": "abc"}])
def test_requests_carry_the_providers_parsed_url_not_a_copy_per_request(headers: dict[str, str] | None) -> None:
    # httpx.Request copies the URL it is given; thousands in flight each kept their own copy (one
    # more object for the collector) and defeated smsgate.aio's cache of the URL by identity
    p = Dummy()
    first = p.request("POST", "/messages", json={"to": "+2348031234567"}, headers=headers)
    second = p.request("POST", "/messages", json={"to": "+2348031234568"}, headers=headers)
    assert first.url is second.url
    assert first.url == httpx.URL("http://vendor.test/messages")
    plain = p.request("GET", "/ping")
    assert plain.url is p.request("GET", "/ping").url
    with_query = p.request("GET", "/ping", params={"a": "1"})  # a URL of its own, as before
    assert with_query.url == httpx.URL("http://vendor.test/ping?a=1")


# ------------------------------------------------------------ httpx's request log line
class QueryKey(Provider):
    """A vendor that takes its credentials in the query string."""

    name = "querykey"

    def __init__(self, base_url: str) -> None:
        super().__init__(ProviderSettings(plugin="querykey", base_url=base_url, credentials={"api_key": "s3cr3t"}))

    def ping(self) -> Operation[str]:
        response = yield self.request("GET", "/ping", params={"api_key": "s3cr3t", "to": "+2348031234567"})
        return response.text


@pytest.fixture(scope="module")
def ping_url() -> Any:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.send_header("Set-Cookie", "sid=42; Path=/")
            self.end_headers()
            self.wfile.write(b"pong")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_httpx_log_line_keeps_no_query_string(ping_url: str, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from smsgate.transport import HttpxLogRedactor

    caplog.set_level(logging.INFO, logger="httpx")
    with httpx.Client() as client:
        for _ in range(3):  # one filter however many drivers are made
            assert SyncDriver(client).run(QueryKey(ping_url).ping()) == "pong"

    async def go() -> str:
        async with httpx.AsyncClient() as aclient:
            return await AsyncDriver(aclient).run(QueryKey(ping_url).ping())

    assert asyncio.run(go()) == "pong"
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines == [f'HTTP Request: GET {ping_url}/ping "HTTP/1.1 200 OK"'] * 4
    assert "s3cr3t" not in caplog.text and "api_key" not in caplog.text and "+234" not in caplog.text
    assert sum(isinstance(f, HttpxLogRedactor) for f in logging.getLogger("httpx").filters) == 1


def test_httpx_log_redactor_leaves_other_records_alone() -> None:
    import logging

    from smsgate.transport import HttpxLogRedactor

    def record(msg: str, *args: Any) -> logging.LogRecord:
        return logging.LogRecord("httpx", logging.INFO, __file__, 1, msg, args, None)

    redact_ = HttpxLogRedactor()
    line = 'HTTP Request: %s %s "%s %d %s"'
    for url in ("https://ada:pw@vendor.test/send?key=k#frag", httpx.URL("https://vendor.test/send?key=k")):
        r = record(line, "POST", url, "HTTP/1.1", 200, "OK")
        assert redact_.filter(r)
        assert r.getMessage() == 'HTTP Request: POST https://vendor.test/send "HTTP/1.1 200 OK"'
    for r in (record("something else %s %s", "a", "https://vendor.test/?key=k"), record("HTTP Request: plain"),
              record(line, "POST", "https://vendor.test/send", "HTTP/1.1", 200, "OK")):
        before = r.getMessage()
        assert redact_.filter(r) and r.getMessage() == before


@pytest.mark.parametrize("path, shown", [
    ("/send/+2348031234567/x", "/send/+234*******567/x"),
    ("/send/%2B2348031234567", "/send/%2B234*******567"),
    ("/numbers/447911123456/lookup", "/numbers/4479*****456/lookup"),
    ("/v1/messages/12345/status", "/v1/messages/12345/status"),  # short ids are not numbers
])
def test_httpx_log_redactor_masks_phone_numbers_in_the_path(path: str, shown: str) -> None:
    """A vendor whose API puts the recipient in the path (``/send/{to}``, a status lookup by
    number): httpx logged the whole number at INFO with every request."""
    import logging

    from smsgate.transport import HttpxLogRedactor

    r = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
                          ("POST", httpx.URL(f"https://vendor.test{path}?k=1"), "HTTP/1.1", 200, "OK"), None)
    assert HttpxLogRedactor().filter(r)
    assert r.getMessage() == f'HTTP Request: POST https://vendor.test{shown} "HTTP/1.1 200 OK"'


def test_default_clients_are_plain_httpx_clients_that_keep_no_cookies(ping_url: str) -> None:
    from smsgate.transport import DEFAULT_LIMITS, default_client

    assert DEFAULT_LIMITS.max_keepalive_connections == 64
    with default_client() as client:
        assert type(client) is httpx.Client and client.timeout == httpx.Timeout(30.0)
        response = client.get(ping_url + "/ping")
        assert response.text == "pong" and response.headers["set-cookie"].startswith("sid=42")
        assert not client.cookies  # the requests smsgate sends never carry them: not kept
        response = client.send(httpx.Request("GET", ping_url + "/ping"))
        assert "cookie" not in response.request.headers


def test_async_driver_awaits_the_client_itself_no_coroutine_per_request_between() -> None:
    # every request in flight keeps its chain of coroutines alive for the garbage collector to go
    # through: run sends each request itself (send is run of a one-request operation)
    started, release = asyncio.Event(), asyncio.Event()

    class Blocking:
        async def send(self, request: httpx.Request) -> httpx.Response:
            started.set()
            await release.wait()
            return httpx.Response(200, json={"ok": True}, request=request)

    def operation() -> Any:
        response = yield httpx.Request("POST", "https://api.example.invalid/send")
        return response.status_code

    async def go() -> None:
        task = asyncio.ensure_future(AsyncDriver(Blocking()).run(operation()))  # type: ignore[arg-type]
        await started.wait()
        chain: list[str] = []
        coro: Any = task.get_coro()
        while coro is not None and hasattr(coro, "cr_code"):
            chain.append(coro.__qualname__)
            coro = coro.cr_await
        release.set()
        assert await task == 200
        assert chain[:2] == ["AsyncDriver.run", "test_async_driver_awaits_the_client_itself_no_coroutine_per_request_"
                                                "between.<locals>.Blocking.send"]
        # send() still sends one request with the policy applied
        release.set()
        answer = await AsyncDriver(Blocking()).send(httpx.Request("GET", "https://api.example.invalid/x"))  # type: ignore[arg-type]
        assert answer.status_code == 200

    asyncio.run(go())
