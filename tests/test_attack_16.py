"""Attack round 16: today's fixes on main (redact, the httpx log line's masking), through a
vendor over loopback HTTP and the generic_http adapter."""

from __future__ import annotations

from typing import Any

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

    return Starlette(routes=[Route("/send", send, methods=["POST"]), Route("/send/{rest:path}", send, methods=["POST"])])


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

