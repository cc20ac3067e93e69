"""Fixtures and helpers for tests that use the machine's real services (imported by the tests
that need them): loopback ports, Redis."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bounded import drop_schema
from reference_provider import API_KEY, EchoPlugin
from smsgate.plugins import PluginManager

REDIS_URL = os.environ.get("SMSGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL whose keys (under a prefix of their own) are removed afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable: {exc}")
    prefix = f"test-traffic-{uuid.uuid4().hex[:10]}"
    try:
        yield f"{REDIS_URL}?prefix={prefix}"
    finally:
        names = list(client.scan_iter(f"{prefix}:*"))
        if names:
            client.delete(*names)
        client.close()


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out by itself (Linux's ``ip_local_port_range``; 32768
    where it cannot be read): to a bind to port 0 and to every outgoing connection."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


#: The lowest port :func:`free_ports` picks (below it: well-known and registered services).
PORTS_FROM = 20000


def free_ports(span: int = 1) -> int:
    """The first of ``span`` consecutive loopback ports free now (one port by default).

    The one helper for tests that start a server on a port of their choosing (``smsgate serve
    --port``, ``smsgate sandbox --port`` which serves its emulators on consecutive ports); never
    a fixed port. The block is picked at random below the kernel's ephemeral range: a block
    inside it (as a bind to port 0 gave it) was taken, between this check and the server's own
    bind, by the port-0 servers and outgoing connections of the tests running at once (a CI
    run's red, tests/test_sandbox_ports.py). Only where that range leaves no room below it is
    the block taken from the range, as before.
    """
    import random

    high = _ephemeral_floor() - span
    for _ in range(200):
        if high > PORTS_FROM:
            first = random.randrange(PORTS_FROM, high)
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                first = int(s.getsockname()[1])
        if first + span > 65535:
            continue
        try:
            for port in range(first, first + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError(f"no {span} consecutive free ports")


PG_DSN = os.environ.get("SMSGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL store URL on a schema of its own, dropped afterwards (skipped without a
    server, failed under CI)."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed")
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    schema = f"svc_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{PG_DSN}?schema={schema}"
    finally:
        drop_schema(PG_DSN, schema)


# ------------------------------------------------------------------ the reference (echo) provider
def echo_plugins() -> PluginManager:
    """A plugin manager holding only the reference provider (no entry points)."""
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def echo_config(url: str, store: str = "memory://", **tenant: Any) -> dict[str, Any]:
    """A configuration with one tenant ``acme`` (region NG) sending through the reference
    provider's emulator at ``url`` as ``ACME``; ``tenant`` adds to the tenant's settings."""
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}, **tenant}}}


#: ``python -c ECHO_CLI ARGS...`` runs ``smsgate ARGS...`` with the reference provider's echo plugin
#: as the only plugin (tests/ on PYTHONPATH): the CLI in a process of its own.
ECHO_CLI = """
import sys
import smsgate.plugins as plugins
from reference_provider import EchoPlugin
pm = plugins.PluginManager(load_entry_points=False)
pm.register(EchoPlugin())
plugins._default = pm
from smsgate.cli import main
sys.argv = ["smsgate", *sys.argv[1:]]
main()
"""
