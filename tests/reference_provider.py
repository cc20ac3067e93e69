"""The reference provider, re-exported for the tests that import ``reference_provider``, and
what its vendor received, read from the emulator's own record.

It lives in :mod:`smsgate.testing.reference` (it ships in the wheel, for the docs).
"""

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from smsgate import OutboundMessage, hookimpl
from smsgate.errors import ConfigError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.testing.reference import API_KEY, EchoPlugin, EchoProvider, create_emulator, sign

__all__ = ["API_KEY", "EchoPlugin", "EchoProvider", "OptOutOnSend", "create_emulator", "echo_plugins", "echo_received",
           "echo_sent_to", "live_on", "post_inbound", "sign"]


def echo_received(ctl: EmulatorControl) -> Counter[str]:
    """Every number the echo vendor received (and accepted) a message for, with how many times."""
    out: Counter[str] = Counter()
    for r in ctl.requests(method="POST"):
        body = r.json()
        for m in body["messages"] if r.path.endswith("/bulk") else [body]:
            out[m["to"]] += 1
    return out


def echo_plugins(*more: object) -> PluginManager:
    """A plugin manager with the echo provider and ``more`` (hook implementations), without
    the installed entry points."""
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    for plugin in more:
        pm.register(plugin)
    return pm


def echo_sent_to(ctl: EmulatorControl) -> list[str]:
    """Every number the echo vendor received a message for, in the order received (single and
    bulk requests)."""
    out = []
    for r in ctl.requests(method="POST"):
        body = r.json()
        out += [m["to"] for m in (body["messages"] if r.path.endswith("/bulk") else [body])]
    return out


def post_inbound(hook_url: str, sender: str, text: str, *, event_id: str, to: str = "ACME",
                 timeout: float = 30) -> httpx.Response:
    """Post one inbound message (a reply: ``STOP``, ``START``, ``HELP``...) from ``sender`` to
    ``to`` to the echo provider's webhook at ``hook_url`` (``{webhook app}/TENANT/INSTANCE``),
    signed as its vendor signs it; ``event_id`` is the vendor's id of the event (one id is acted
    on once). The webhook app's response (not checked: the caller asserts it)."""
    body = json.dumps([{"type": "inbound", "id": event_id, "from": sender, "to": to, "text": text}]).encode()
    return httpx.post(hook_url, content=body, headers={"X-Echo-Signature": sign(body)}, timeout=timeout)


class OptOutOnSend:
    """A plugin that commits ``optout()`` once, as the message to ``to`` is about to leave for
    the first time (``smsgate_before_send`` runs after its preparation, before its first
    write-ahead): a STOP that arrives while a send is under way."""

    def __init__(self, to: str, optout: Callable[[], None]) -> None:
        self.to = to
        self.optout = optout
        self.done = False

    @hookimpl
    def smsgate_before_send(self, tenant: str, message: OutboundMessage) -> None:
        if message.to == self.to and not self.done:
            self.done = True
            self.optout()


def live_on(app: Any, ports: Iterable[int]) -> LiveServer:
    """``app`` served (not started) on the first free port of ``ports`` (a test file's own range)."""
    for port in ports:
        try:
            return LiveServer(app, port=port)
        except ConfigError:  # in use (a client's ephemeral port, another test's server)
            continue
    raise AssertionError(f"no free port in {ports}")
