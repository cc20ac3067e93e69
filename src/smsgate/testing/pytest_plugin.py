"""pytest plugin (entry point ``pytest11``): loopback-server fixtures for emulators."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smsgate.testing.server import LiveServer


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    """Start ASGI apps on loopback ports; returns a function ``serve_app(app) -> base_url``."""
    servers: list[LiveServer] = []

    def start(app: Any) -> str:
        server = LiveServer(app).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()
