"""The webhook app facing the internet: size, nesting, absurd values, authentication (over HTTP)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from smsgate import Gateway
from smsgate.core.reports import MAX_JSON_DEPTH, check_json_depth
from smsgate.errors import ValidationError
from smsgate.plugins import PluginManager
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[Gateway, str]]:
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}
        with Gateway(cfg, plugins=pm) as gw, LiveServer(webhook_app(gw, max_body=4096)) as server:
            yield gw, server.url


def test_body_over_the_limit_is_413(hooks: tuple[Gateway, str]) -> None:
    _, url = hooks
    body = json.dumps([{"id": "x" * 5000, "status": "delivered"}]).encode()
    r = httpx.post(f"{url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
    assert r.status_code == 413


def test_body_over_the_limit_without_content_length_is_413_while_read(hooks: tuple[Gateway, str]) -> None:
    """A chunked body is refused once past the limit; the server never needs all of it."""
    _, url = hooks

    def chunks() -> Iterator[bytes]:
        for _ in range(10_000):  # 10 MB offered; refused after the first 4 KiB
            yield b"[" * 1000

    r = httpx.post(f"{url}/acme/one", content=chunks(), headers={"X-Echo-Signature": "00"})
    assert r.status_code == 413


def test_declared_length_over_the_limit_is_refused_before_the_body(hooks: tuple[Gateway, str]) -> None:
    _, url = hooks
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /acme/one HTTP/1.1\r\nHost: x\r\nContent-Length: 67108864\r\n"
                     b"Content-Type: application/json\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 5_000, b"[" * (MAX_JSON_DEPTH + 1)])
def test_deeply_nested_json_is_400(hooks: tuple[Gateway, str], body: bytes) -> None:
    gw, _ = hooks
    hook = webhook_app(gw)  # the default 1 MiB limit, so the nesting is what refuses it
    with LiveServer(hook) as server:
        r = httpx.post(f"{server.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
    assert r.status_code == 400 and "nested" in r.json()["error"]


def test_nesting_within_the_limit_and_brackets_in_strings_pass() -> None:
    check_json_depth(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    check_json_depth(json.dumps({"text": "[" * 1000 + '\\"{{'}).encode(), limit=1)
    check_json_depth(b"a=" + b"[" * 1000)  # not JSON: the provider decides
    with pytest.raises(ValidationError, match="nested deeper than 2"):
        check_json_depth(b' [[["x"]]]', limit=2)


def test_every_failed_authentication_is_401(hooks: tuple[Gateway, str]) -> None:
    _, url = hooks
    body = json.dumps([{"id": "p1", "status": "delivered"}]).encode()
    for headers in ({}, {"X-Echo-Signature": "bad"}, {"X-Echo-Signature": sign(body, "other-key")}):
        r = httpx.post(f"{url}/acme/one", content=body, headers=headers)
        assert r.status_code == 401 and r.json() == {"error": "authentication failed"}
