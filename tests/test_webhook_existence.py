"""An unauthenticated caller cannot tell which tenants and instances exist from the webhook app's
answers, whatever the instance: one that cannot authenticate anybody (its vendor documents no
webhooks: 501 before; no token or secret configured: 503 before) and one whose pre-check refuses
the body (JSON nested too deep: 400 before) answer exactly as an unknown tenant, a 401. A caller
who authenticated still gets the precise answer (a generic HTTP reply item: 501). The reason is
in the ERROR/WARNING log line, for the operator."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from smsgate import Gateway
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app

UNAUTHENTICATED = (401, '{"error":"authentication failed"}')

_REQUEST = {
    "request": {"method": "POST", "url": "/send", "json": {"to": "{to}", "text": "{text}"}},
    "response": {"id_path": "id"},
}


def _generic(hook: dict[str, Any] | None, token: str = "") -> dict[str, Any]:
    options: dict[str, Any] = dict(_REQUEST)
    if hook is not None:
        options["webhook"] = hook
    return {
        "plugin": "generic_http",
        "base_url": "https://api.textly.example",
        "credentials": {"api_key": "k", "hook_token": token},
        "options": options,
    }


_HOOK = {"id_path": "id", "status_path": "status", "token": "{secret.hook_token}", "token_query": "token"}

#: instance -> its settings: none of them can authenticate a callback, but ``signed`` and ``tokened``
PROVIDERS: dict[str, dict[str, Any]] = {
    "plain": _generic(None),  # no [options.webhook]: its vendor's callbacks are not mapped (501 before)
    "emptytoken": _generic(_HOOK, token=""),  # a token set to nothing: not configured (503 before)
    "dm": {
        "plugin": "campaigns_api",
        "base_url": "https://api.example",
        "sender": "ACME",
        "credentials": {"api_key": "k"},
    },  # no webhook_token: not configured (503 before)
    "squadless": {"plugin": "squad", "sender": "ACME", "credentials": {"secret_key": "sk_test_0123456789"}},
    "tokened": _generic(_HOOK, token="hook-55"),
}


@pytest.fixture
def hooks() -> Iterator[str]:
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": PROVIDERS}}}
    with Gateway(cfg) as gw, LiveServer(webhook_app(gw)) as server:
        yield server.url


def answer(url: str, body: bytes = b"[]", query: str = "") -> tuple[int, str, dict[str, str]]:
    r = httpx.post(f"{url}{query}", content=body, headers={"content-type": "application/json"}, timeout=10)
    return r.status_code, r.text, {k: v for k, v in r.headers.items() if k != "date"}


@pytest.mark.parametrize("instance", ["plain", "emptytoken", "dm"])
def test_an_instance_that_authenticates_nobody_answers_as_an_unknown_one(
    hooks: str, instance: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smsgate.webhooks")
    known = answer(f"{hooks}/acme/{instance}", query="?token=")
    assert known == answer(f"{hooks}/nobody/{instance}", query="?token="), known
    assert known == answer(f"{hooks}/acme/nothing", query="?token="), known
    assert known[:2] == UNAUTHENTICATED, known
    # the operator still learns why: the log names the instance and what it lacks
    line = next(r for r in caplog.records if f"'acme'/'{instance}'" in r.getMessage())
    assert line.levelno >= logging.WARNING, line.getMessage()
    assert "webhook" in line.getMessage(), line.getMessage()


def test_a_body_nested_too_deep_is_answered_alike_for_a_known_and_an_unknown_instance(hooks: str) -> None:
    """The depth check runs before the provider's signature check: an unknown name meets it too."""
    deep = b"[" * 100 + b"]" * 100
    known = answer(f"{hooks}/acme/squadless", deep)
    assert known == answer(f"{hooks}/nobody/squadless", deep), known
    assert known[0] == 400, known
    # the answer names the instance of the URL, the caller's own word: nothing learnt from it
    nothing = answer(f"{hooks}/acme/nothing", deep)
    assert nothing[1] == known[1].replace("squadless", "nothing") and nothing[0] == 400, nothing


def test_an_authenticated_caller_still_gets_the_precise_answer(hooks: str) -> None:
    """A reply item (no status) is refused 501 to a caller holding the token; without it, 401."""
    item = b'{"id": "SM1", "from": "+2348031234567", "text": "STOP"}'
    precise = answer(f"{hooks}/acme/tokened", item, query="?token=hook-55")
    assert precise[0] == 501 and "inbound" in precise[1], precise
    assert answer(f"{hooks}/acme/tokened", item, query="?token=wrong")[:2] == UNAUTHENTICATED
    assert answer(f"{hooks}/acme/tokened", item, query="?token=wrong") == answer(
        f"{hooks}/nobody/tokened", item
    )
