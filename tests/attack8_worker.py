"""A process sending through a shared limit, some of its requests cancelled or refused.

Usage: python attack8_worker.py CONFIG_JSON COUNT PREFIX MODE SEED

MODE ``retry``: 6 threads send each message until it goes, waiting out each refusal's
``retry_after``; ``bulk``: 4 threads
send_many three at a time (a two-part text); ``sync``: 6 threads send COUNT single messages (to PREFIX + 4 digits);
``async``: COUNT concurrent sends, each cancelled after a random time (or not).
Prints one JSON line per message: [number, outcome] (``ok``, ``refused``, ``cancelled``,
or the exception's class name), then ``done``.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reference_provider import EchoPlugin  # tests/ is on PYTHONPATH (set by the test)
from smsgate import AsyncGateway, Gateway, LimitWaitExceeded
from smsgate.plugins import PluginManager


def pm() -> PluginManager:
    plugins = PluginManager(load_entry_points=False)
    plugins.register(EchoPlugin())
    return plugins


_out = threading.Lock()


def emit(number: str, outcome: str) -> None:
    with _out:
        sys.stdout.write(json.dumps([number, outcome]) + "\n")
        sys.stdout.flush()


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    count, prefix, mode, rnd = int(sys.argv[2]), sys.argv[3], sys.argv[4], random.Random(int(sys.argv[5]))
    numbers = [f"{prefix}{i:04d}" for i in range(count)]
    if mode == "retry":  # each send tried again after the retry_after it was refused with
        with Gateway(config, plugins=pm()) as gw:
            t = gw.tenant("acme")

            def persist(number: str) -> None:
                for tries in range(1, 60):
                    try:
                        r = t.send(number, "x")
                    except LimitWaitExceeded as exc:
                        time.sleep(exc.retry_after)
                        continue
                    except Exception as exc:  # reported to the test
                        emit(number, type(exc).__name__)
                        return
                    emit(number, f"ok:{tries}" if r.ok else f"failed:{r.error_code}")
                    return
                emit(number, "gave-up")

            with ThreadPoolExecutor(6) as pool:
                list(pool.map(persist, numbers))
    elif mode == "bulk":  # send_many of three numbers at a time, a two-part text
        with Gateway(config, plugins=pm()) as gw:
            t = gw.tenant("acme")

            def batch(start: int) -> None:
                group = numbers[start:start + 3]
                try:
                    results = t.send_many(group, "y" * 200)
                except Exception as exc:  # reported to the test
                    for number in group:
                        emit(number, type(exc).__name__)
                    return
                for number, r in zip(group, results, strict=True):
                    emit(number, "ok" if r.ok else f"failed:{r.error_code}")

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(batch, range(0, count, 3)))
    elif mode == "sync":
        with Gateway(config, plugins=pm()) as gw:
            t = gw.tenant("acme")

            def one(number: str) -> None:
                try:
                    r = t.send(number, "x")
                    emit(number, "ok" if r.ok else f"failed:{r.error_code}")
                except LimitWaitExceeded as exc:
                    emit(number, f"refused:{exc.retry_after:.3f}")
                except Exception as exc:  # reported to the test
                    emit(number, type(exc).__name__)

            with ThreadPoolExecutor(6) as pool:
                list(pool.map(one, numbers))
    else:
        async def run() -> None:
            async with AsyncGateway(config, plugins=pm()) as gw:
                t = gw.tenant("acme")

                async def one(number: str, cancel_after: float | None) -> None:
                    try:
                        r = await asyncio.wait_for(t.send(number, "x"), cancel_after)
                        emit(number, "ok" if r.ok else f"failed:{r.error_code}")
                    except asyncio.TimeoutError:
                        emit(number, "cancelled")
                    except LimitWaitExceeded as exc:
                        emit(number, f"refused:{exc.retry_after:.3f}")
                    except Exception as exc:  # reported to the test
                        emit(number, type(exc).__name__)

                await asyncio.gather(*(one(n, rnd.choice([None, rnd.uniform(0.0, 2.0)])) for n in numbers))

        asyncio.run(run())
    print("done", flush=True)


if __name__ == "__main__":
    main()
