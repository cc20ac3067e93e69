"""Vendor fidelity, second round: the adapters against the vendors' documents, over loopback HTTP.

Each test names its source: FACTS.md (``/work/shared/providers/FACTS.md``, the project's research
notes: [DOC] vendor docs, [SEED] seed documents only, [INF] an inference the adapter must
tolerate), a seed document (``/work/shared/seeds/``) or the vendor's public docs. The emulators
run on loopback ports (``serve_app``); where a test needs an answer the emulator does not give
(a status the vendor may choose), a thin ASGI wrapper rewrites the real emulator's answer, so
the vendor side still acts as it would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import pytest

from smsgate.config import Settings, TenantConfig
from smsgate.errors import AuthFailed, MalformedResponse
from smsgate.gateway import Gateway
from smsgate.models import OutboundMessage, Status
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate.transport import SyncDriver

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _answer_status(app: Any, path: str, status: int) -> ASGIApp:
    """``app`` with the status of its 2xx answers to ``path`` (a prefix) replaced by ``status``:
    the vendor acts as the emulator does, only the status line differs."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(path):
            await app(scope, receive, send)
            return

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                message = {**message, "status": status}
            await send(message)

        await app(scope, receive, rewrite)

    return wrapped


# ================================================================== Colony
# Seed 002 (FACTS.md §2.1): the single and the bulk send document the (empty) model ``{}`` and no
# status; FACTS.md §2 reads Colony as Django REST framework [INF, strong]. A DRF ``CreateAPIView``
# answers 201, a plain ``APIView`` (what an empty model ``{}`` suggests) 200: both are the
# documented answer, and neither carries a message id. FACTS.md's rule for [INF]: "emulator may
# choose, adapter must tolerate".
COLONY_NUMBERS = ("+27815854565", "+27825550123", "+27835550124")


def _colony_gateway(url: str, **options: Any) -> Gateway:
    from smsgate_colony import ColonyProvider
    from smsgate_colony.emulator import SANDBOX_CREDENTIALS

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(ColonyProvider)
    settings = Settings(store="memory://", tenants={"acme": TenantConfig(default_region="ZA", providers={
        "colony": ProviderSettings(plugin="colony", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                   options=options, max_retries=0)})})
    return Gateway(settings, plugins=pm)


def test_colony_send_answered_200_with_the_documented_empty_model_is_submitted(
        serve_app: Callable[[Any], str]) -> None:
    """``200 {}`` is the seed's model under DRF's other status: submitted, single and bulk, one
    request each (not ``unknown``, which would leave every send of such an account unresolved)."""
    from smsgate_colony.emulator import create_app

    app = create_app(delivery_delay=60.0)
    url = serve_app(_answer_status(app, "/contact/message/", 200))
    with _colony_gateway(url) as gw:
        tenant = gw.tenant("acme")
        one = tenant.send(COLONY_NUMBERS[0], "hello")
        many = tenant.send_many(list(COLONY_NUMBERS[1:]), "hello all")
        assert (one.status, one.raw_status) == (Status.SUBMITTED, "HTTP 200")
        assert [(r.status, r.raw_status) for r in many] == [(Status.SUBMITTED, "HTTP 200")] * 2
        assert {m.status for m in tenant.messages()} == {Status.SUBMITTED}
    assert len(app.vendor.sends) == 3  # the vendor did take each message, once


@pytest.mark.parametrize("status", [202, 204])
def test_colony_send_answered_with_an_undocumented_status_is_unknown(
        serve_app: Callable[[Any], str], status: int) -> None:
    """A status neither reading of the seed gives (202, or 204 without the model ``{}``) does not
    confirm the send: ``MalformedResponse`` naming the statuses expected, logged ``unknown``."""
    from smsgate_colony.emulator import create_app

    app = create_app(delivery_delay=60.0)
    url = serve_app(_answer_status(app, "/contact/message/", status))
    with _colony_gateway(url) as gw:
        with pytest.raises(MalformedResponse, match=r"expected HTTP 200 or 201 with a JSON object"):
            gw.tenant("acme").send(COLONY_NUMBERS[0], "hello")
        assert {m.status for m in gw.tenant("acme").messages()} == {Status.UNKNOWN}


# FACTS.md §2: the token answer of the password grant is ``{"access_token", "scope": "read",
# "expires_in": 86399, "refresh_token"}`` [DOC]; which scope an endpoint needs is not documented.
# django-oauth2-provider (the library behind that answer, [INF]) grants ``read`` unless ``write``
# is asked for, and DRF refuses a write with a read-only token: 403 "You do not have permission
# to perform this action." The emulator's ``write_scope=True`` enforces that reading.
def test_colony_token_without_write_scope_is_a_typed_error_naming_the_scope(
        serve_app: Callable[[Any], str]) -> None:
    from smsgate_colony import ColonyProvider
    from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app

    url = serve_app(create_app(delivery_delay=60.0, write_scope=True))
    provider = ColonyProvider(ProviderSettings(plugin="colony", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                               max_retries=0))
    msg = OutboundMessage(to=COLONY_NUMBERS[0], text="hello")
    with httpx.Client() as client, pytest.raises(AuthFailed) as info:
        SyncDriver(client).run(provider.send(msg))
    text = str(info.value)
    assert "POST /contact/message/send/" in text and "HTTP 403" in text
    assert "scope 'read'" in text and "'write'" in text and "options.scope" in text, text
    for secret in SANDBOX_CREDENTIALS.values():
        assert secret not in text
    # a read is allowed with the same token
    with httpx.Client() as client:
        assert SyncDriver(client).run(provider.list_optouts()) is not None

    # asking for the scope (options.scope, sent with the password grant) lets the send through
    provider = ColonyProvider(ProviderSettings(plugin="colony", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                               options={"scope": "read write"}, max_retries=0))
    with httpx.Client() as client:
        result = SyncDriver(client).run(provider.send(msg))
    assert result.status == Status.SUBMITTED
