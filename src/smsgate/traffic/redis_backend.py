"""Limits and breakers kept in Redis: shared by every process and host that uses it.

``traffic = "redis://host:6379/0"`` in the settings (extra ``smsgate[redis]``).
The rules are the same pure functions every backend runs (:mod:`smsgate.traffic.limits`,
:mod:`smsgate.traffic.breaker`): this backend only loads a tenant's keys, runs the
function and writes back what it changed, atomically by Redis' optimistic
transactions (``WATCH``/``MULTI``/``EXEC``: if another process changed a key in
between, the function runs again on the new state). The clock is Redis' own
(``TIME``), so hosts whose clocks disagree still share one timeline.

Each key's state is one Redis string, ``smsgate:traffic:<tenant>:<key>`` (``:`` and ``%``
in the tenant's name written ``%3A`` and ``%25``, so no two tenants share a key), holding
JSON (``marks`` and the requests that still count); it expires once nothing in it
can matter any more.

A Redis that loses its data (``FLUSHDB``, a restart without persistence) would forget what
was sent, and every limit would start empty again. So one more key,
``smsgate:traffic:%generation`` (never a tenant's: ``%`` is escaped in tenant names), says
which generation of the data this is, and when data was last lost. A process that finds it
gone or replaced by one it never saw, once it had seen one, records the loss there; from
then every limit counts as full until nothing sent before the loss can matter
(:func:`smsgate.traffic.limits.admit`). A Redis that was never used (no process had seen a
generation) starts empty, as before.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from smsgate.errors import ConfigError, StoreError
from smsgate.ids import new_id
from smsgate.traffic.limits import CLOCK_SLACK, Entry, KeyState, steady

__all__ = ["RedisTraffic", "redis_url_problem"]

T = TypeVar("T")

log = logging.getLogger("smsgate.traffic")

#: A key's state outlives its last change by at least this long (seconds).
KEEP = 2 * 86400.0


def redis_url_problem(url: str) -> str | None:
    """What is wrong with the query of a ``traffic`` Redis URL, or ``None``: ``prefix`` given once
    and not empty, and every other parameter one redis-py reads, with a value it reads. (redis-py
    passes a parameter it does not know to its connection, which fails every command with a
    ``TypeError``; the first send would find out.) Names the parameter, never the URL."""
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    prefixes = [v for k, v in query if k == "prefix"]
    if len(prefixes) > 1 or (prefixes and not prefixes[0]):
        return "'prefix' must be given once, and not empty (the keys go under 'NAME:')"
    try:
        import redis.connection
    except ImportError:  # the backend says what to install when it is built
        return None
    known = set(redis.connection.URL_QUERY_ARGUMENT_PARSERS)
    for cls in (redis.connection.ConnectionPool, redis.connection.SSLConnection, *redis.connection.Connection.__mro__):
        init = cls.__dict__.get("__init__")
        if init is not None:
            known.update(inspect.signature(init).parameters)
    for name, value in query:
        if name == "prefix":
            continue
        parser: Any = redis.connection.URL_QUERY_ARGUMENT_PARSERS.get(name)
        if name not in known or name in ("self", "args", "kwargs"):
            return f"unknown parameter {name!r} (smsgate reads 'prefix'; the others go to redis-py)"
        if parser is not None:
            try:
                parser(value)
            except (TypeError, ValueError):
                return f"parameter {name!r}: redis-py cannot read its value"
    return None


class RedisTraffic:
    """A :class:`~smsgate.traffic.gate.TrafficBackend` in Redis.

    ``url``: ``redis://[:password@]host[:port][/db]`` or ``rediss://...`` (TLS); a
    ``prefix=NAME`` query parameter puts the keys under ``NAME:`` instead of
    ``smsgate:traffic:`` (for several apps sharing one Redis).
    """

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigError("traffic = 'redis://...' needs the redis client: pip install 'smsgate[redis]'") from None
        self._redis = redis
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        self._prefix = next((v for k, v in query if k == "prefix"), "smsgate:traffic")
        url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"])))
        self._client: Any = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._where = f"{parts.hostname}:{parts.port or 6379}{parts.path}"  # never the password
        self._generation_key = f"{self._prefix}:%generation"
        #: the generation of the data this process last saw (``None``: none yet)
        self._generation: str | None = None

    def __repr__(self) -> str:
        return f"RedisTraffic({self._where!r})"

    def _name(self, tenant: str, key: str) -> str:
        # ":" in the tenant escaped (and "%", the escape), so the tenant ends at the first
        # ":" after the prefix: tenant "acme:provider:main"'s key "sender:S" is never tenant
        # "acme"'s "provider:main:sender:S". Names without either keep their keys.
        return f"{self._prefix}:{tenant.replace('%', '%25').replace(':', '%3A')}:{key}"

    def traffic(self, tenant: str, horizons: Mapping[str, float],
                fn: Callable[[dict[str, KeyState], float], T]) -> T:
        """See :meth:`smsgate.traffic.gate.TrafficBackend.traffic`; a Redis that fails is a
        :class:`~smsgate.errors.StoreError` naming it (``host:port/db``)."""
        keys = sorted(horizons)
        names = [self._name(tenant, key) for key in keys]
        try:
            with self._client.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(self._generation_key, *names)
                        seconds, micros = pipe.time()
                        now = seconds + micros / 1e6
                        raw = pipe.mget([self._generation_key, *names])
                        generation, lost, record, found = self._check_generation(raw[0], now)
                        states = {key: _load(key, blob, now, horizons[key])
                                  for key, blob in zip(keys, raw[1:], strict=True)}
                        if lost:
                            for state in states.values():
                                state.forgotten_at = lost
                        result = fn(states, now)
                        pipe.multi()
                        if record is not None:
                            pipe.set(self._generation_key, record)
                        for key, name in zip(keys, names, strict=True):
                            state = states[key]
                            if state.marks_changed or state.added or state.answered or state.moved:
                                blob, ttl = _dump(state, now, horizons[key])
                                pipe.set(name, blob, px=int(ttl * 1000))
                        pipe.execute()
                        self._generation = generation
                        if found:  # (once: said as it is recorded, not by each try that lost a race)
                            log.warning("the Redis keeping limits and breakers (%s) lost its data: every limit "
                                        "counts as full until nothing sent before can matter", self._where)
                        return result
                    except self._redis.WatchError:
                        continue  # another process changed a key: run again on its state
        except self._redis.RedisError as exc:  # down, restarting, refusing (also as the pipeline is reset)
            raise StoreError(f"the Redis keeping limits and breakers failed: {exc}", self._where) from exc

    def _check_generation(self, blob: bytes | None, now: float) -> tuple[str, float, str | None, bool]:
        """(the data's generation, when data was last lost or 0.0, what to write back or
        ``None``, whether this found the loss). Gone, or a generation this process never saw
        once it had seen one: the data was lost, now (unless a loss is recorded already).

        A loss dated later than ``now`` (Redis' clock stepped back since) counts as lost
        ``now``, as :func:`~smsgate.traffic.limits.steady` dates a request that seems to come:
        the limits count as full for a request lease and a window from now, never until the
        clock catches up (and never less than that after the loss, in real time)."""
        if blob is None:
            generation, lost = new_id("gen"), 0.0
            forgotten = self._generation is not None
        else:
            data = json.loads(blob)
            generation, lost = str(data["generation"]), float(data["lost"])
            forgotten = self._generation is not None and generation != self._generation and not lost
        stepped = lost > now + CLOCK_SLACK
        if forgotten or stepped:
            lost = now
        if blob is None or forgotten or stepped:
            return generation, lost, json.dumps({"generation": generation, "lost": lost}), forgotten
        return generation, lost, None, False

    def close(self) -> None:
        """Close the connections."""
        self._client.close()


def _load(key: str, blob: bytes | None, now: float, horizon: float) -> KeyState:
    if blob is None:
        return KeyState(key)
    data = json.loads(blob)
    state = KeyState(key, {k: float(v) for k, v in data["marks"].items()},
                     [Entry(e[0], e[1], e[2], e[3], e[4], e[5]) for e in data["entries"]])
    state.prune(now, horizon)
    steady(state, now)  # Redis' clock stepped back: the state brought back to it
    return state


def _dump(state: KeyState, now: float, horizon: float) -> tuple[str, float]:
    entries = [[e.id, e.messages, e.segments, e.start, e.end, e.expires] for e in state.entries]
    latest = max([now, *state.marks.values(), *(e.end if e.end is not None else e.expires for e in state.entries)])
    ttl = max(KEEP, latest - now + horizon + 3600.0)
    return json.dumps({"marks": state.marks, "entries": entries}, separators=(",", ":")), ttl
