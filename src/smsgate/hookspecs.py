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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from smsgate.models import DeliveryReport, InboundMessage, OutboundMessage, SendResult

PROJECT = "smsgate"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "SandboxAccount", "hookimpl", "hookspec"]


@dataclass(frozen=True)
class SandboxAccount:
    """The account a provider's emulator accepts when started with no arguments.

    ``credentials`` go into the provider's ``credentials``; ``settings`` are any other
    provider settings a tenant needs to talk to the emulator (``options``, ...).
    ``smsgate sandbox``, ``smsgate demo`` and :func:`smsgate.testing.start_emulator`
    configure a tenant from it.

    ``port`` is the loopback port ``smsgate sandbox`` serves the emulator on, the same
    whatever else is installed (its ``--port`` moves every emulator by the same step).
    smsgate's own plugins have 8801 (squad) to 8805; a plugin of yours should pick one
    outside 8801-8899, or leave it ``None`` to be served on a free port after the others.
    """

    credentials: Mapping[str, str]
    settings: Mapping[str, Any] = field(default_factory=dict)
    port: int | None = None


@hookspec
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register provider classes: call ``register(ProviderClass)`` for each."""


@hookspec(firstresult=True)
def smsgate_sandbox_account(plugin: str) -> SandboxAccount | None:
    """The sandbox account of provider plugin ``plugin``'s emulator, or ``None`` if not yours.

    A provider package that ships an emulator (entry point group ``smsgate.emulators``)
    implements this next to :func:`register_providers`::

        @hookimpl
        def smsgate_sandbox_account(plugin):
            if plugin != "echo":
                return None
            return SandboxAccount(credentials={"api_key": SANDBOX_API_KEY})
    """


@hookspec
def smsgate_before_send(tenant: str, message: OutboundMessage) -> None:
    """Called before a message goes to a provider (after normalisation and opt-out check).

    Raise an :class:`~smsgate.errors.SmsgateError` to stop the send.
    """


@hookspec
def smsgate_after_send(tenant: str, message: OutboundMessage, result: SendResult) -> None:
    """Called after a provider answered a send (or the send failed).

    An exception raised here is logged (with its traceback), never raised to the
    sender: the message has gone, and its result is returned and logged as usual.
    """


@hookspec
def smsgate_on_status(tenant: str, message_id: str, report: DeliveryReport) -> None:
    """Called when a message's status changes (webhook, lookup or polling, and when the
    kernel marks it ``unknown``: raw status ``recovered`` after a crash, ``interrupted``
    when a campaign run stopped after its request may have left): once per change, so a
    report the vendor sends again calls no hook. A send's own answer is told to
    :func:`smsgate_after_send` instead.

    In a webhook, every report and inbound message of the callback is stored (and a
    STOP acted on) before any hook runs, and every hook runs even when one raises. An
    exception raised here is logged (tenant, hook, message id, traceback), never raised:
    the webhook answers 200 (a vendor retrying the callback would call no hook again),
    the poller goes on with its tick, ``status(refresh=True)`` returns the record.
    """


@hookspec
def smsgate_on_inbound(tenant: str, message: InboundMessage) -> None:
    """Called once for each new inbound message (a reply), after it is stored and its
    keyword (STOP, START, HELP...) acted on: ``message.action`` says what was done.

    A vendor event delivered twice is passed once. An exception raised here is logged
    (tenant, hook, inbound id, traceback), never raised: the webhook answers 200. See
    docs/inbound.md.
    """


@hookspec
def smsgate_on_call(tenant: str, instance: str, error: BaseException | None, seconds: float,
                    waited: float, message_ids: tuple[str, ...]) -> None:
    """Called after each call to a provider instance (a send, a bulk send, a lookup).

    ``error`` is what it raised (``None``: answered); ``seconds`` its duration, of
    which ``waited`` were spent waiting for rate or concurrency limits;
    ``message_ids`` the ids of the messages its request sent (empty for a lookup), whose
    :func:`smsgate_before_send` ran before it and :func:`smsgate_after_send` runs after it.
    For metrics (see :meth:`smsgate.Tenant.health` for the counters smsgate keeps); a hook
    may take any of these arguments and leave the others out. An exception raised here is
    logged, never raised to the sender.
    """
