"""Fixtures shared by the test modules of this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reference_provider import create_emulator
from smsgate.testing import LiveServer


@pytest.fixture(scope="module")
def emu_url() -> Iterator[str]:
    """The URL of a reference-provider emulator (smsgate.testing.reference) on loopback, one per
    test module; a module may define its own ``emu_url`` instead."""
    with LiveServer(create_emulator()) as server:
        yield server.url
