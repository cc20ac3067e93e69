"""Downloads made on a caller's behalf (smsgate.downloads): scheme, host policy (SSRF), redirects,
content type and size cap, applied by the sync and async drivers over real loopback HTTP."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from smsgate import downloads
from smsgate.aio import AiohttpClient
from smsgate.downloads import DownloadPolicy, download_request
from smsgate.errors import DownloadRefused, DownloadTooLarge, ValidationError
from smsgate.testing import LiveServer
from smsgate.transport import AsyncDriver, SyncDriver

CHUNK = 64 * 1024
ENDLESS = 256 * 1024 * 1024  # what the endless route would send if the client read it all


class Files:
    """A third-party web server: what it was asked for, and how much of the endless body it produced."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.produced = 0

    def app(self) -> Starlette:
        async def image(request: Request) -> Response:
            self.paths.append(request.url.path)
            return Response(b"\xff\xd8\xff" * 100, media_type="image/jpeg")

        async def endless(request: Request) -> StreamingResponse:
            self.paths.append(request.url.path)

            async def body() -> AsyncIterator[bytes]:
                while self.produced < ENDLESS:
                    self.produced += CHUNK
                    yield b"\0" * CHUNK
                    await asyncio.sleep(0)  # lets Starlette stop the stream when the client hangs up

            return StreamingResponse(body(), media_type="video/mp4")  # no Content-Length: chunked

        async def declared(request: Request) -> Response:
            self.paths.append(request.url.path)
            return Response(b"x" * 5000, media_type="image/png")

        async def page(request: Request) -> Response:
            self.paths.append(request.url.path)
            return Response(b"<html>admin</html>", media_type="text/html")

        async def moved(request: Request) -> Response:
            self.paths.append(request.url.path)
            return RedirectResponse("/img/a.jpg", status_code=302)

        return Starlette(routes=[Route("/img/a.jpg", image), Route("/endless.mp4", endless),
                                 Route("/declared.png", declared), Route("/page", page), Route("/moved", moved)])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Files]]:
    files = Files()
    live = LiveServer(files.app()).start()
    yield live.url, files
    live.stop()


@pytest.fixture
def files(server: tuple[str, Files]) -> Files:
    server[1].paths.clear()
    server[1].produced = 0
    return server[1]


Fetch = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(params=["sync", "async-httpx", "async-aiohttp"])
def fetch(request: pytest.FixtureRequest) -> Iterator[Fetch]:
    """Send one request through a driver's ``send`` (as an operation's yield would)."""
    if request.param == "sync":
        with httpx.Client(timeout=10) as client:
            yield SyncDriver(client).send
        return
    loop = asyncio.new_event_loop()

    async def make() -> Any:
        return httpx.AsyncClient(timeout=10) if request.param == "async-httpx" else AiohttpClient()

    client = loop.run_until_complete(make())
    driver = AsyncDriver(client)
    yield lambda req: loop.run_until_complete(driver.send(req))
    loop.run_until_complete(client.aclose())
    loop.close()


ALLOWED = DownloadPolicy(allow_private=True)


def test_a_private_host_is_refused_by_default_and_never_contacted(server: tuple[str, Files], files: Files,
                                                                  fetch: Fetch) -> None:
    url = server[0]
    port = httpx.URL(url).port
    for target in (f"{url}/img/a.jpg", f"http://localhost:{port}/img/a.jpg"):  # an address, and a name
        with pytest.raises(DownloadRefused, match=r"has the address [^ ]*127\.0\.0\.1.*not public") as refused:
            fetch(download_request(target, DownloadPolicy()))
        assert isinstance(refused.value, ValidationError) and refused.value.url == target
    assert files.paths == []
    # opted in explicitly (emulators, tests): downloaded
    response = fetch(download_request(f"{url}/img/a.jpg", ALLOWED))
    assert response.status_code == 200 and response.content == b"\xff\xd8\xff" * 100
    assert response.headers["content-type"] == "image/jpeg" and files.paths == ["/img/a.jpg"]


def test_the_download_stops_past_the_cap(server: tuple[str, Files], files: Files, fetch: Fetch) -> None:
    url = f"{server[0]}/endless.mp4"
    cap = 256 * 1024
    with pytest.raises(DownloadTooLarge) as big:
        fetch(download_request(url, DownloadPolicy(max_bytes=cap, allow_private=True)))
    assert big.value.limit == cap and big.value.url == url
    assert str(big.value) == f"download of {url} refused: it is larger than the cap of {cap} bytes (stopped there)"
    # the client hung up: the server produced a small part of what it would have sent
    assert files.produced < ENDLESS // 2
    # a declared Content-Length over the cap is refused before the body is read
    with pytest.raises(DownloadTooLarge, match="cap of 4096 bytes"):
        fetch(download_request(f"{server[0]}/declared.png", DownloadPolicy(max_bytes=4096, allow_private=True)))


def test_redirects_and_pages_are_refused(server: tuple[str, Files], files: Files, fetch: Fetch) -> None:
    with pytest.raises(DownloadRefused, match=r"HTTP 302 \(a redirect, not followed\)") as moved:
        fetch(download_request(f"{server[0]}/moved", ALLOWED))
    assert moved.value.status_code == 302 and files.paths == ["/moved"]
    with pytest.raises(DownloadRefused, match=r"content type 'text/html' is not a media type allowed"):
        fetch(download_request(f"{server[0]}/page", ALLOWED))
    with pytest.raises(DownloadRefused, match=r"HTTP 404 \(not a success\)"):
        fetch(download_request(f"{server[0]}/missing.jpg", ALLOWED))
    page_ok = DownloadPolicy(allow_private=True, media_types=("text/*",))
    assert fetch(download_request(f"{server[0]}/page", page_ok)).content == b"<html>admin</html>"


def test_an_unresolvable_host_is_refused(fetch: Fetch) -> None:
    with pytest.raises(DownloadRefused, match=r"'no-such-host\.invalid' cannot be resolved"):
        fetch(download_request("https://no-such-host.invalid/a.jpg", DownloadPolicy()))


def test_only_http_urls_and_no_credentials_shown() -> None:
    for bad in ("ftp://files.example.com/a.jpg", "file:///etc/passwd", "gopher://x/", "https:///a.jpg"):
        with pytest.raises(DownloadRefused, match="only http and https URLs with a host"):
            download_request(bad, DownloadPolicy())
    assert downloads.shown_url("https://bob:pw-77@cdn.example.com:8443/a%20b.jpg?X-Amz-Signature=s3cr3t#f") \
        == "https://cdn.example.com:8443/a%20b.jpg"
    assert downloads.shown_url("http://[::1]:81/x") == "http://[::1]:81/x"
    with pytest.raises(ValueError, match="max_bytes"):
        DownloadPolicy(max_bytes=0)


NOT_PUBLIC = ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
              "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::5", "::ffff:127.0.0.1",
              "::ffff:169.254.169.254", "2002:7f00:1::", "ff02::1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_every_non_public_address_is_refused(address: str) -> None:
    url = httpx.URL("https://media.example.com/a.jpg")
    for addresses in ([address], ["93.184.215.14", address], [address, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]):
        with pytest.raises(DownloadRefused, match="not public"):  # any one of the host's addresses
            downloads.check_address(url, addresses, DownloadPolicy())
        allowed = downloads.check_address(url, addresses, ALLOWED)
        assert ipaddress.ip_address(allowed) == ipaddress.ip_address(addresses[0])


@given(st.one_of(st.ip_addresses(v=4, network="10.0.0.0/8"), st.ip_addresses(v=4, network="127.0.0.0/8"),
                 st.ip_addresses(v=4, network="169.254.0.0/16"), st.ip_addresses(v=4, network="192.168.0.0/16"),
                 st.ip_addresses(v=6, network="fe80::/10"), st.ip_addresses(v=6, network="fc00::/7")))
def test_private_ranges_are_refused_whatever_the_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                                                         ) -> None:
    with pytest.raises(DownloadRefused):
        downloads.check_address(httpx.URL("http://x.example/"), [str(address)], DownloadPolicy())
    if isinstance(address, ipaddress.IPv4Address):  # also hidden in an IPv4-mapped IPv6 address
        with pytest.raises(DownloadRefused):
            downloads.check_address(httpx.URL("http://x.example/"), [f"::ffff:{address}"], DownloadPolicy())


def test_public_addresses_pass_and_the_request_is_pinned_to_the_checked_one() -> None:
    url = httpx.URL("https://media.example.com:8443/a.jpg?sig=1")
    assert downloads.check_address(url, ["93.184.215.14", "8.8.8.8"], DownloadPolicy()) == "93.184.215.14"
    request = download_request(str(url), DownloadPolicy(), timeout=5)
    pinned = downloads.pinned(request, "93.184.215.14")
    assert str(pinned.url) == "https://93.184.215.14:8443/a.jpg?sig=1"
    assert pinned.headers["host"] == "media.example.com:8443"  # the name, for the server
    assert pinned.extensions["sni_hostname"] == "media.example.com"  # and for TLS (SNI, certificate check)
    assert pinned.extensions[downloads.DOWNLOAD] == DownloadPolicy()
    assert pinned.extensions["timeout"] == httpx.Timeout(5).as_dict()
    v6 = downloads.pinned(download_request("http://media.example.com/a.jpg", DownloadPolicy()), "2606:2800::1")
    assert str(v6.url) == "http://[2606:2800::1]/a.jpg" and v6.headers["host"] == "media.example.com"
    assert "sni_hostname" not in v6.extensions
