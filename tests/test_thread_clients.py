"""A sync campaign's send threads each send on an HTTP client of their own (when the gateway made its client).

httpcore's connection pool looks over every pooled connection under one lock at each request,
so threads sharing one ``httpx.Client`` spend CPU growing with their number (bench/analysis.md).
A :class:`~smsgate.Gateway` that made its client gives each send thread of a campaign run a
plain client of its own (:class:`smsgate.transport.ThreadClients`), reuses them run after run,
and closes them with the gateway; a client the application gave is used by every thread, as given.
What the vendor received is read from the emulator's own request record.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx

from smsgate import Gateway
from smsgate.testing import EmulatorControl
from smsgate.transport import ThreadClients
from test_exactly_once import echo, echo_config, echo_received, plugins  # noqa: F401  (a fixture)

N = 120
CONCURRENCY = 6


def connections_to(url: str) -> set[int]:
    """The local ports of this machine's established TCP connections to ``url``'s port (client ends)."""
    port = httpx.URL(url).port
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, remote, state = line.split()[1:4]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def test_send_threads_reuse_their_clients_run_after_run_and_close_them_with_the_gateway(
    tmp_path: Path, echo: tuple[str, EmulatorControl]  # noqa: F811  (the fixture)
) -> None:
    url, ctl = echo
    first = [f"+234806{i:07d}" for i in range(N)]
    second = [f"+234807{i:07d}" for i in range(N)]
    with Gateway(echo_config(url, f"sqlite:///{tmp_path / 'log.db'}"), plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        assert acme.campaigns.create("a", text="x", audience=first, concurrency=CONCURRENCY).run().sent == N
        after_first = connections_to(url)
        assert 1 < len(after_first) <= CONCURRENCY + 1  # the threads' own connections (and the gateway's)
        assert acme.campaigns.create("b", text="x", audience=second, concurrency=CONCURRENCY).run().sent == N
        assert connections_to(url) == after_first  # the same clients, their connections kept alive
    assert connections_to(url) == set()  # closed with the gateway
    counted = echo_received(ctl)
    assert set(counted) == set(first + second) and max(counted.values()) == 1


def test_a_client_the_application_gave_carries_every_request_of_every_thread(
    tmp_path: Path, echo: tuple[str, EmulatorControl]  # noqa: F811  (the fixture)
) -> None:
    url, ctl = echo
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def count(request: httpx.Request) -> None:
        with lock:
            seen[threading.current_thread().name.rsplit("-", 1)[0]] += 1

    numbers = [f"+234808{i:07d}" for i in range(N)]
    with httpx.Client(event_hooks={"request": [count]}) as client:
        with Gateway(echo_config(url, f"sqlite:///{tmp_path / 'log.db'}"), plugins=plugins(),
                     http_client=client) as gw:
            result = gw.tenant("acme").campaigns.create("c", text="x", audience=numbers,
                                                        concurrency=CONCURRENCY).run()
        assert not client.is_closed  # the application's to close
    assert result.sent == N
    # every request of the send threads went through the given client
    assert seen == {"smsgate-send": len(ctl.requests(method="POST"))}
    assert set(echo_received(ctl)) == set(numbers)


def test_thread_clients_are_per_thread_and_closed_once_given_back_after_close() -> None:
    clients = ThreadClients()
    assert clients.current() is None  # not a send thread
    got: list[httpx.Client | None] = []
    release = threading.Event()

    def send_thread() -> None:
        with clients.thread():
            got.append(clients.current())
            release.wait(5)
        got.append(clients.current())

    threads = [threading.Thread(target=send_thread) for _ in range(2)]
    for t in threads:
        t.start()
    while len(got) < 2:
        threading.Event().wait(0.01)
    first, other = got[0], got[1]
    assert first is not None and other is not None and first is not other
    clients.close()  # while both are in use: each closes when its thread gives it back
    assert not first.is_closed
    release.set()
    for t in threads:
        t.join()
    assert got[2:] == [None, None] and first.is_closed and other.is_closed
