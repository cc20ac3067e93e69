"""Fixtures shared by the test modules of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_provider import create_emulator
from smsgate.testing import LiveServer, Outbox

#: The ``config`` fixture's ``smsgate.toml``: tenant ``acme`` (NG) and the ``memory`` provider,
#: its store a SQLite file beside the configuration.
CONFIG = """\
store = "sqlite:///sms.db"

[tenants.acme]
default_region = "NG"

[tenants.acme.providers.memory]
plugin = "memory"
sender = "ACME"
"""


@pytest.fixture(scope="module")
def emu_url() -> Iterator[str]:
    """The URL of a reference-provider emulator (smsgate.testing.reference) on loopback, one per
    test module; a module may define its own ``emu_url`` instead."""
    with LiveServer(create_emulator()) as server:
        yield server.url


@pytest.fixture
def config(tmp_path: Path, sms_outbox: Outbox) -> Path:
    """An ``smsgate.toml`` (:data:`CONFIG`) with tenant ``acme`` (NG) sending through the
    ``memory`` provider into ``sms_outbox``, its store a SQLite file beside it. A module may
    define its own ``config`` instead."""
    path = tmp_path / "smsgate.toml"
    path.write_text(CONFIG)
    return path
