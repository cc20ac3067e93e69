"""The reference provider, re-exported for the tests that import ``reference_provider``, and
what its vendor received, read from the emulator's own record.

It lives in :mod:`smsgate.testing.reference` (it ships in the wheel, for the docs).
"""

from collections import Counter

from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl
from smsgate.testing.reference import API_KEY, EchoPlugin, EchoProvider, create_emulator, sign

__all__ = ["API_KEY", "EchoPlugin", "EchoProvider", "create_emulator", "echo_plugins", "echo_received", "echo_sent_to", "sign"]


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
