"""Attack round 16: today's fixes on main (redact, the httpx log line's masking), through a
vendor over loopback HTTP and the generic_http adapter."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.errors import SmsgateError
from smsgate.testing import LiveServer


def vendor_saying(status: int, answer: dict[str, Any]) -> Any:
    """A vendor answering every send with ``answer`` (HTTP ``status``)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def send(request: Request) -> JSONResponse:
        return JSONResponse(answer, status_code=status)

    return Starlette(routes=[Route("/{path:path}", send, methods=["POST"])])


def send_through(url: str, path: str = "/send") -> list[str]:
    """Send one message through a generic_http instance at ``url``: the error's texts."""
    options = {"request": {"url": path, "json": {"to": "{to}", "text": "{text}"}},
               "response": {"id_path": "id", "error_path": "err"}}
    prov = {"plugin": "generic_http", "base_url": url, "sender": "ACME", "options": options, "max_retries": 0}
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"gh": prov}}}}
    with Gateway(cfg) as gw:
        try:
            result = gw.tenant("acme").send("08031234567", "hi")
            return [str(result.error)]
        except SmsgateError as exc:
            return [str(exc), repr(exc.args)]


def test_a_vendor_error_holding_a_long_run_of_letters_is_redacted_at_once() -> None:
    """``redact`` runs on every vendor error text. Its ``key=value`` pattern let the letters
    around the secret word be any number: a run of n letters took O(n^2) tries (3 s for 4,000
    letters on this machine, half a minute for 16,000, hours for 100,000), the send blocked
    all that time (and ``ProviderError`` redacts its text again). A vendor's error text of
    100,000 letters (a hostile vendor, or an HTML page of one word) is now read at once: this
    test ran into pytest's timeout before."""
    run = "a" * 100_000
    with LiveServer(vendor_saying(400, {"err": f"refused {run} password=hunter2"})) as server:
        shown = send_through(server.url)
    assert "refused aaaa" in shown[0]
    assert all("hunter2" not in text for text in shown)


@pytest.mark.parametrize("echoed, secret", [
    ('{"password": "it\'s mine now"}', "it's mine now"),  # an apostrophe inside double quotes
    ("{'api_key': 'say \"open\" twice'}", 'say "open" twice'),  # a double quote inside single ones
    ('{"token": "half\\" other half"}', 'other half'),  # an escaped quote inside the value (JSON)
    ('{\\"password\\": \\"two words\\"}', "two words"),  # JSON inside a JSON string (escaped quotes)
])
def test_a_quoted_secret_holding_the_other_quote_or_an_escaped_one_is_hidden_whole(echoed: str, secret: str) -> None:
    """A vendor echoing a request's body (or a JSON object inside its JSON error string) in its
    error text: ``redact`` ended a quoted value at either quote and knew no backslash, so a
    secret holding an apostrophe (or an escaped quote, or quoted as ``\\"``) was shown whole or
    in part; the error text and its ``args`` are logged and stored with the message."""
    with LiveServer(vendor_saying(400, {"err": f"invalid request {echoed} (see docs)"})) as server:
        shown = send_through(server.url)
    assert "invalid request" in shown[0] and "(see docs)" in shown[0]
    for text in shown:
        assert secret not in text, text


def test_a_vendor_error_holding_a_long_run_of_backslashes_is_redacted_at_once() -> None:
    """Reading ``\\"`` as a quote must not make a run of backslashes quadratic (a first
    version of the fix above took ten minutes for 200,000 backslashes)."""
    run = "\\" * 200_000
    with LiveServer(vendor_saying(400, {"err": f"refused {run} password=\"x{run}"})) as server:
        shown = send_through(server.url)
    assert "refused \\" in shown[0]


@pytest.mark.parametrize("path", [
    "/accounts/12345678-9abc-4def-8123-0123456789ab/send",  # a UUID whose first group is digits
    "/accounts/9abcdef0-1234-4def-8123-446655440000/send",  # ... or its last
    "/plans/12345678901234abcdef0123456789ab/send",  # a hex id beginning with digits
])
def test_an_id_in_the_path_is_logged_as_it_is(path: str, caplog: pytest.LogCaptureFixture) -> None:
    """httpx's ``HTTP Request:`` line masks a run of 8 to 15 digits in the path (a vendor taking
    the recipient there). A vendor account's UUID or hex id in the path (``/accounts/{id}/...``)
    was cut too: ``1234*678-9abc-...``, an id no one could look up (or grep for) any more. A
    number is now a run that is not part of a word or of a dashed id; the recipient still is."""
    caplog.set_level(logging.INFO, logger="httpx")
    with LiveServer(vendor_saying(200, {"id": "m1"})) as server:
        send_through(server.url, path)
        send_through(server.url, "/send/{to}")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("HTTP Request:")]
    assert any(path in line for line in lines), lines
    assert any("/send/%2B234*******567" in line for line in lines), lines
    assert not any("8031234567" in line for line in lines), lines
