"""The reference provider, re-exported for the tests that import ``reference_provider``, and
what its vendor received, read from the emulator's own record.

It lives in :mod:`smsgate.testing.reference` (it ships in the wheel, for the docs).
"""

from collections import Counter

from smsgate.testing import EmulatorControl
from smsgate.testing.reference import API_KEY, EchoPlugin, EchoProvider, create_emulator, sign

__all__ = ["API_KEY", "EchoPlugin", "EchoProvider", "create_emulator", "echo_received", "sign"]


def echo_received(ctl: EmulatorControl) -> Counter[str]:
    """Every number the echo vendor received (and accepted) a message for, with how many times."""
    out: Counter[str] = Counter()
    for r in ctl.requests(method="POST"):
        body = r.json()
        for m in body["messages"] if r.path.endswith("/bulk") else [body]:
            out[m["to"]] += 1
    return out
