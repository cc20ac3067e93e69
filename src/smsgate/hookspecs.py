"""pluggy hook specifications.

Provider plugins implement :func:`register_providers`; applications may implement
the event hooks to observe traffic::

    from smsgate import hookimpl

    class Audit:
        @hookimpl
        def smsgate_after_send(self, tenant, message, result):
            print(tenant, result.status)

    gateway.plugins.register(Audit())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from smsgate.models import DeliveryReport, InboundMessage, OutboundMessage, SendResult

PROJECT = "smsgate"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]


@hookspec
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register provider classes: call ``register(ProviderClass)`` for each."""


@hookspec
def smsgate_before_send(tenant: str, message: OutboundMessage) -> None:
    """Called before a message goes to a provider (after normalisation and opt-out check).

    Raise an :class:`~smsgate.errors.SmsgateError` to stop the send.
    """


@hookspec
def smsgate_after_send(tenant: str, message: OutboundMessage, result: SendResult) -> None:
    """Called after a provider answered a send (or the send failed)."""


@hookspec
def smsgate_on_status(tenant: str, message_id: str, report: DeliveryReport) -> None:
    """Called when a message's status changes (webhook, lookup or polling)."""


@hookspec
def smsgate_on_inbound(tenant: str, message: InboundMessage) -> None:
    """Called once for each new inbound message (a reply), after it is stored and its
    keyword (STOP, START, HELP...) acted on: ``message.action`` says what was done.

    A vendor event delivered twice is passed once. See docs/inbound.md.
    """


@hookspec
def smsgate_on_call(tenant: str, instance: str, error: BaseException | None, seconds: float,
                    waited: float) -> None:
    """Called after each call to a provider instance (a send, a bulk send, a lookup).

    ``error`` is what it raised (``None``: answered); ``seconds`` its duration, of
    which ``waited`` were spent waiting for rate or concurrency limits. For
    metrics (see :meth:`smsgate.Tenant.health` for the counters smsgate keeps).
    """
