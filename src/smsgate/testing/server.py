"""Loopback servers for tests: :class:`LiveServer` and :func:`serve`, from :mod:`smsgate.server`.

They live in :mod:`smsgate.server` because ``smsgate sandbox`` and ``smsgate demo``
use them at run time; this module keeps ``from smsgate.testing.server import
LiveServer`` working for tests and provider packages.
"""

from __future__ import annotations

from smsgate.server import LiveServer, serve

__all__ = ["LiveServer", "serve"]
