"""The reference provider, re-exported for the tests that import ``reference_provider``.

It lives in :mod:`smsgate.testing.reference` (it ships in the wheel, for the docs).
"""

from smsgate.testing.reference import API_KEY, EchoPlugin, EchoProvider, create_emulator, sign

__all__ = ["API_KEY", "EchoPlugin", "EchoProvider", "create_emulator", "sign"]
