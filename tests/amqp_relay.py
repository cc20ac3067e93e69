"""A TCP relay in front of the real RabbitMQ that loses one publish or one publisher confirm
(:class:`DropFirstPublish`): the network failing between smsgate and its broker, for the
Celery tests (test_attack_21, test_celery)."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class DropFirstPublish:
    """A TCP relay to RabbitMQ that, on one connection only, closes both ends when the
    client's first ``basic.publish`` frame arrives, forwarding nothing of it: the network
    failing right after the client wrote the message (its write succeeded, the broker never
    got it). With ``on_ack``, it is the broker's first ``basic.ack`` (a publisher confirm)
    that is lost instead: the broker has the message, the client cannot know. Later
    connections, and the other connections open meanwhile (a worker's consumer), are relayed
    untouched.

    ``silent``: the lost frame and all after it on that connection are swallowed and the
    connection is left open (a network that lost the way back: nothing arrives, nothing is
    closed). ``after``: that many frames of the kind watched pass on a connection before the
    next one is lost (``on_ack=True, after=1``: a client's second publish on a connection loses
    its confirm). ``hold``: a silent connection is closed that many seconds after its frame was
    lost (the outage ends with the connection reset: a client that waits for ever on it would
    hold a test past its timeout, in a read pytest-timeout's signal does not end). :meth:`close`
    closes the listener and every relayed connection (a client still waiting on one then sees
    it closed)."""

    #: (class, method) of AMQP 0-9-1's basic.publish and basic.ack
    PUBLISH, ACK = b"\x00\x3c\x00\x28", b"\x00\x3c\x00\x50"

    def __init__(self, upstream: tuple[str, int], *, on_ack: bool = False, silent: bool = False,
                 after: int = 0, hold: float | None = None) -> None:
        self.upstream = upstream
        self.on_ack = on_ack
        self.silent = silent
        self.after = after
        self.hold = hold
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = threading.Event()
        self.connections = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """The broker URL of the relay (RabbitMQ's default user and virtual host)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            drop = not self.dropped.is_set()
            threading.Thread(target=self._pipe, args=(server, client, drop and self.on_ack), daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, server, drop and not self.on_ack), daemon=True).start()

    def _pipe(self, src: Any, dst: Any, watch: bool) -> None:
        buf, lost = b"", False
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if lost:
                    continue  # a network that lost the way back: nothing arrives, nothing is closed
                if watch and not self.dropped.is_set():
                    buf += data
                    if self._count(buf, self.ACK if self.on_ack else self.PUBLISH) > self.after:
                        self.dropped.set()
                        lost = self.silent
                        if self.silent:
                            if self.hold is not None:
                                cut = threading.Timer(self.hold, self._cut, args=(src, dst))
                                cut.daemon = True
                                cut.start()
                            continue
                        break
                dst.sendall(data)
        except OSError:
            pass
        self._cut(src, dst)

    @staticmethod
    def _cut(*sockets: socket.socket) -> None:
        for s in sockets:  # shut down first: that wakes the other direction's recv()
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    @staticmethod
    def _count(buf: bytes, method: bytes) -> int:
        """How many frames of ``method`` ``buf`` (one side's bytes from the start) holds."""
        pos, n = (8 if buf.startswith(b"AMQP") else 0), 0  # the client's protocol header
        while len(buf) >= pos + 7:
            kind, size = buf[pos], int.from_bytes(buf[pos + 3:pos + 7], "big")
            if kind == 1 and len(buf) >= pos + 11 and buf[pos + 7:pos + 11] == method:
                n += 1
            pos += 7 + size + 1
        return n

    def close(self) -> None:
        """Stop relaying: the listener and every connection closed."""
        self.listener.close()
        self._cut(*self._sockets)
