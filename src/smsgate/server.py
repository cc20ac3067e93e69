"""Serve an ASGI app (an emulator, a webhook receiver) on a loopback port in a thread.

Used at run time by ``smsgate sandbox`` and ``smsgate demo`` and by tests (also
importable as :mod:`smsgate.testing.server`). Needs the ``server`` extra
(uvicorn; the emulators and the webhook app also need starlette):
:func:`require_server` says so in one line instead of an ``ImportError``.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from smsgate.errors import ConfigError

__all__ = ["SERVER_MODULES", "LiveServer", "require_server", "serve"]

#: The modules the ``server`` extra installs.
SERVER_MODULES = ("uvicorn", "starlette")


def require_server(what: str = "serving HTTP") -> None:
    """Raise :class:`~smsgate.errors.ConfigError` unless the ``server`` extra is installed.

    ``what`` names the feature in the message, e.g. ``"smsgate sandbox"``:
    ``smsgate sandbox needs uvicorn, which is not installed: pip install 'smsgate[server]'``.
    """
    missing = []
    for name in SERVER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"{what} needs {' and '.join(missing)}, which {verb} not installed: "
                          "pip install 'smsgate[server]'")


class LiveServer:
    """A uvicorn server on ``127.0.0.1:<ephemeral port>`` running in a daemon thread.

    Raises :class:`~smsgate.errors.ConfigError` when uvicorn is not installed or the
    port cannot be bound (one in use is said so).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            import uvicorn
        except ImportError as exc:
            raise ConfigError("a loopback server needs uvicorn, which is not installed: "
                              "pip install 'smsgate[server]'") from exc

        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit it: without it every loopback request waits ~40 ms for a delayed ACK
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._sock.bind((host, port))
            # listening now, not once uvicorn starts: until then another socket (SO_REUSEADDR, another
            # process's LiveServer) could bind the same port too, and one of the two fail to start
            self._sock.listen(2048)
        except OSError as exc:
            self._sock.close()
            busy = exc.errno == errno.EADDRINUSE
            raise ConfigError(
                f"cannot listen on {host}:{port}: "
                + ("the port is in use (another program, or another sandbox, listens there); choose another "
                   "port" if busy else (exc.strerror or str(exc)))
            ) from None
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"smsgate-live-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> LiveServer:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"emulator server on port {self.port} failed to start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on loopback for the duration of the block; yields its base URL."""
    with LiveServer(app) as server:
        yield server.url
