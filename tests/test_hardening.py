"""Hardening: what a hostile or broken vendor's answer can make smsgate do on the way.

* A Squad bucket's ``signed_url`` (the pre-signed upload URL the vendor's answer names) is
  requested without credentials, but to any host: a vendor answer (or a tampered one) naming
  ``127.0.0.1``, ``169.254.169.254`` or a private network made the process send there (SSRF).
  Such a URL goes through the download policy (:mod:`smsgate.downloads`) unless it is on the
  vendor's configured origin; a refusal is a :class:`~smsgate.errors.DownloadRefused`.

Every claim that a request did not reach a host reads that host's own record (a loopback
server of the test's own), never smsgate's log.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smsgate.aio import AiohttpClient
from smsgate.errors import DownloadRefused
from smsgate.models import ContactList
from smsgate.provider import Operation, ProviderSettings
from smsgate.testing.server import LiveServer
from smsgate.transport import AsyncDriver, SyncDriver
from smsgate_squad import SquadProvider
from smsgate_squad.emulator import SANDBOX_CREDENTIALS, create_app


class Recorder:
    """A loopback server of the test's own: it records every request it receives, then answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        async def any_route(request: Request) -> Response:
            await request.body()
            with self._lock:
                self.requests.append((request.method, request.url.path, dict(request.headers)))
            return Response(b"", status_code=200)

        return Starlette(routes=[Route("/{path:path}", any_route, methods=["GET", "PUT", "POST"])])


@pytest.fixture(scope="module")
def squad_url() -> Iterator[str]:
    with LiveServer(create_app()) as server:
        yield server.url


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    rec = Recorder()
    with LiveServer(rec.app()) as server:
        yield rec, server.url


def _squad(url: str) -> SquadProvider:
    return SquadProvider(ProviderSettings(plugin="squad", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                          sender="SMSGATE"))


def _run(how: str, operation: Operation[Any]) -> Any:
    if how == "sync":
        with httpx.Client() as client:
            return SyncDriver(client).run(operation)

    async def main() -> Any:
        if how == "aiohttp":
            async with AiohttpClient() as aio:
                return await AsyncDriver(aio).run(operation)
        async with httpx.AsyncClient() as client:
            return await AsyncDriver(client).run(operation)

    return asyncio.run(main())


DRIVERS = ["sync", "async", "aiohttp"]


@pytest.mark.parametrize("how", DRIVERS)
def test_signed_url_to_a_loopback_host_is_refused(squad_url: str, recorder: tuple[Recorder, str],
                                                  how: str) -> None:
    rec, other = recorder
    prov = _squad(squad_url)
    signed = f"{other}/_s3/bucket/list.csv?X-Amz-Signature=abc&X-Amz-SignedHeaders=host"
    with pytest.raises(DownloadRefused) as refused:
        _run(how, prov.upload_bucket_csv(signed, "phone_number\n08031234567\n"))
    assert "not public" in str(refused.value) and "X-Amz-Signature" not in str(refused.value)
    assert rec.requests == []  # the loopback host was never asked


@pytest.mark.parametrize("how", DRIVERS)
def test_contact_list_whose_bucket_names_a_loopback_host_is_refused(recorder: tuple[Recorder, str],
                                                                    how: str) -> None:
    """The whole path: the vendor's bucket answer names another (loopback) host for the CSV."""
    rec, other = recorder

    async def hostile_bucket(request: Request) -> Response:  # the vendor's answer, signed_url elsewhere
        return Response(
            b'{"status": 200, "success": true, "message": "ok", "data": {"uuid": "b-1", "name": "x", '
            b'"description": "x", "status": "pending", "signed_url": "' + other.encode() + b'/latest/meta-data"}}',
            media_type="application/json")

    app = Starlette(routes=[Route("/sms/bucket", hostile_bucket, methods=["POST"])])
    with LiveServer(app) as vendor:
        with pytest.raises(DownloadRefused):
            _run(how, _squad(vendor.url).create_contact_list(ContactList(name="x"), ["08031234567"]))
    assert rec.requests == []


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/?X-Amz-Signature=abc",
    "http://10.0.0.7/_s3/x.csv", "http://[::ffff:127.0.0.1]:9/x.csv", "http://localhost:9/x.csv",
])
def test_signed_url_to_internal_addresses_is_refused(squad_url: str, url: str) -> None:
    with pytest.raises(DownloadRefused):
        _run("sync", _squad(squad_url).upload_bucket_csv(url, "phone_number\n08031234567\n"))


def test_signed_url_on_the_vendors_own_origin_still_uploads(squad_url: str) -> None:
    """The emulator's signed URL points back at itself (the configured origin): it is not refused."""
    prov = _squad(squad_url)
    bucket = _run("sync", prov.create_bucket("own-origin", "d"))
    _run("sync", prov.upload_bucket_csv(bucket.raw["signed_url"], "phone_number\n08031234567\n"))
    assert _run("sync", prov.get_bucket(str(bucket.id))).status == "completed"


def test_a_pinned_upload_keeps_its_body() -> None:
    """A request sent to its checked address (downloads.pinned) is the same request: an upload's
    body goes with it (it was dropped: only downloads, without a body, were pinned before)."""
    from smsgate import downloads
    request = httpx.Request("PUT", "https://bucket.example/x.csv?X-Amz-Signature=abc", content=b"phone_number\n1\n")
    sent = downloads.pinned(request, "93.184.215.14")
    assert (sent.url.host, sent.headers["Host"], sent.extensions["sni_hostname"]) == (
        "93.184.215.14", "bucket.example", "bucket.example")
    assert sent.read() == b"phone_number\n1\n" and sent.headers["Content-Length"] == "15"
