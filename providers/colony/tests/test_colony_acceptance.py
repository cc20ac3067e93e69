"""Acceptance: an opt-out recorded at Colony stops the next send through ANY provider of the tenant.

The tenant has three providers: ``colony`` (emulator A, where the recipient replies STOP),
``colony_b`` (a second Colony account, emulator B) and ``other`` (a non-Colony provider
built in this file with its own tiny vendor app). After ``tenant.optouts.sync()`` the
number is refused with ``OptedOut`` whichever provider the send is routed to, and no
vendor receives the message.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from colony_harness import NUMBER, NUMBER2, colony_settings, harness, plugins, served, settings_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smsgate.errors import OptedOut
from smsgate.models import OutboundMessage, SendResult, Status
from smsgate.provider import Operation, Provider, ProviderSettings
from smsgate_colony.emulator import create_app


class LoopProvider(Provider):
    """A minimal non-Colony provider: ``POST /sms {"to", "text"}`` -> ``{"id"}``."""

    name = "loop_vendor"

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        response = yield from self.call_ok(self.request("POST", "/sms", json={"to": msg.to, "text": msg.text}))
        return SendResult(to=msg.to, status=Status.SUBMITTED, provider_message_id=str(self.json(response)["id"]))


def loop_vendor_app() -> tuple[Any, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def sms(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"id": len(received)}, status_code=201)

    return Starlette(routes=[Route("/sms", sms, methods=["POST"])]), received


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_optout_at_colony_blocks_every_provider(mode: str) -> None:
    app_a, app_b = create_app(delivery_delay=0), create_app(delivery_delay=0)
    other_app, other_received = loop_vendor_app()
    with served(app_a) as url_a, served(app_b) as url_b, served(other_app) as url_o:
        settings = settings_for({
            "colony": colony_settings(url_a),
            "colony_b": colony_settings(url_b),
            "other": ProviderSettings(plugin="loop_vendor", base_url=url_o),
        })
        with harness(mode, settings, plugins(LoopProvider)) as h:
            # before: every provider carries the number
            for instance in ("colony", "colony_b", "other"):
                assert h.send(NUMBER, f"before via {instance}", provider=instance).ok
            # the recipient replies STOP to the Colony account
            app_a.vendor.add_optout("27815854565", "STOP reply")
            assert h.sync_optouts() == 1
            sent_before = (len(app_a.vendor.sends), len(app_b.vendor.sends), len(other_received))
            for instance in ("colony", "colony_b", "other", None):
                with pytest.raises(OptedOut):
                    h.send(NUMBER, "after STOP", provider=instance)
            results = h.send_many([NUMBER, NUMBER2], "bulk after STOP", provider="other")
            assert [r.status for r in results] == [Status.REJECTED, Status.SUBMITTED]
            assert results[0].error_code == "opted_out"
            # nothing for the opted-out number reached any vendor
            assert (len(app_a.vendor.sends), len(app_b.vendor.sends)) == sent_before[:2]
            assert [m["to"] for m in other_received[sent_before[2]:]] == [NUMBER2]
            # lifting the opt-out at Colony (overwrite) is visible on the next pull
            h.run(h.provider("colony").remove_optout(NUMBER))
            assert h.run(h.provider("colony").list_optouts()) == []
