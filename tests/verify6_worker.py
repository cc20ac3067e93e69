"""One process of the verify6 harness (tests/test_verify6.py): a campaign runner or a sender.

Run as ``python tests/verify6_worker.py MODE CONFIG.json ARG``; it prints ``ready`` once its
gateway is open (the harness kills it at random moments after that), then one JSON line with
what it did. Modes:

* ``run CONFIG CAMPAIGN_ID`` / ``arun ...``: ``camp.run()`` of the campaign on a ``Gateway``
  / ``await camp.run()`` on an ``AsyncGateway`` (a Ctrl-C exits 130);
* ``send CONFIG JOBS.json`` / ``asend CONFIG JOBS.json``: ``tenant.send(to, text,
  idempotency_key=key)`` for every ``[key, to]`` of the file, on 4 threads (sync
  ``Gateway``) or as 4 concurrent tasks (``AsyncGateway``); errors are counted, not raised;
* ``many CONFIG JOBS.json`` / ``amany ...``: the same jobs by ``send_many`` of
  ``MessageSpec(to, idempotency_key=key)``, 10 to a call.

With ``V6_KILL_ON_FOUND=1`` in its environment, a runner SIGKILLs itself the first time its
``smsgate_on_status`` hook hears of a message found at the vendor (a forced kill point: right
after a look-up's verdict was logged, before the recipient's state is).

It uses only smsgate's public API.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from smsgate import AsyncGateway, Gateway, MessageSpec, Status, hookimpl
from smsgate.models import DeliveryReport


class KillOnFound:
    """SIGKILLs this process when a message is found at the vendor."""

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: DeliveryReport) -> None:
        if report.status is not Status.UNKNOWN:
            os.kill(os.getpid(), signal.SIGKILL)


def _config(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        config: dict[str, Any] = json.load(fh)
    return config


def _run(config: dict[str, Any], campaign_id: str) -> dict[str, Any]:
    with Gateway(config) as gw:
        if os.environ.get("V6_KILL_ON_FOUND"):
            gw.plugins.register(KillOnFound())
        camp = gw.tenant("acme").campaigns.get(campaign_id)
        print("ready", flush=True)
        done = camp.run()
        return {"status": str(done.status), "sent": done.sent, "pending": done.pending,
                "sending": done.sending, "unknown": done.unknown, "failed": done.failed}


async def _arun(config: dict[str, Any], campaign_id: str) -> dict[str, Any]:
    async with AsyncGateway(config) as gw:
        if os.environ.get("V6_KILL_ON_FOUND"):
            gw.plugins.register(KillOnFound())
        camp = await gw.tenant("acme").campaigns.get(campaign_id)
        print("ready", flush=True)
        done = await camp.run()
        return {"status": str(done.status), "sent": done.sent, "pending": done.pending,
                "sending": done.sending, "unknown": done.unknown, "failed": done.failed}


def _chunks(jobs: list[list[str]]) -> list[list[MessageSpec]]:
    specs = [MessageSpec(to, idempotency_key=key) for key, to in jobs]
    return [specs[i:i + 10] for i in range(0, len(specs), 10)]


def _many(config: dict[str, Any], jobs: list[list[str]]) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    with Gateway(config) as gw:
        tenant = gw.tenant("acme")
        print("ready", flush=True)

        def one(specs: list[MessageSpec]) -> list[str]:
            try:
                return [str(r.status) for r in tenant.send_many(specs, "verify6 code")]
            except Exception as exc:  # every outcome is counted by type
                return [type(exc).__name__]

        with ThreadPoolExecutor(4) as pool:
            for statuses in pool.map(one, _chunks(jobs)):
                outcomes.update(statuses)
    return dict(outcomes)


async def _amany(config: dict[str, Any], jobs: list[list[str]]) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    async with AsyncGateway(config) as gw:
        tenant = gw.tenant("acme")
        print("ready", flush=True)

        async def one(specs: list[MessageSpec]) -> None:
            try:
                outcomes.update(str(r.status) for r in await tenant.send_many(specs, "verify6 code"))
            except Exception as exc:  # every outcome is counted by type
                outcomes[type(exc).__name__] += 1

        await asyncio.gather(*(one(specs) for specs in _chunks(jobs)))
    return dict(outcomes)


def _send(config: dict[str, Any], jobs: list[list[str]]) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    with Gateway(config) as gw:
        tenant = gw.tenant("acme")
        print("ready", flush=True)

        def one(job: list[str]) -> str:
            key, to = job
            try:
                return str(tenant.send(to, "verify6 code", idempotency_key=key).status)
            except Exception as exc:  # every outcome is counted by type
                return type(exc).__name__

        with ThreadPoolExecutor(4) as pool:
            outcomes.update(pool.map(one, jobs))
    return dict(outcomes)


async def _asend(config: dict[str, Any], jobs: list[list[str]]) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    async with AsyncGateway(config) as gw:
        tenant = gw.tenant("acme")
        print("ready", flush=True)
        gate = asyncio.Semaphore(4)

        async def one(job: list[str]) -> None:
            key, to = job
            async with gate:
                try:
                    outcomes[str((await tenant.send(to, "verify6 code", idempotency_key=key)).status)] += 1
                except Exception as exc:  # every outcome is counted by type
                    outcomes[type(exc).__name__] += 1

        await asyncio.gather(*(one(job) for job in jobs))
    return dict(outcomes)


def main(argv: list[str]) -> None:
    mode, config_path, arg = argv[1], argv[2], argv[3]
    if os.environ.get("V6_LOG"):  # a debugging aid: each process's smsgate log in a file of its own
        import logging

        logging.basicConfig(filename=os.path.join(os.environ["V6_LOG"], f"{mode}-{os.getpid()}.log"),
                            level=logging.DEBUG, format="%(asctime)s %(threadName)s %(name)s %(message)s")
        logging.getLogger("httpcore").setLevel(logging.INFO)
    config = _config(config_path)
    if mode in ("run", "arun"):
        try:
            result = _run(config, arg) if mode == "run" else asyncio.run(_arun(config, arg))
        except KeyboardInterrupt:
            print(json.dumps({"interrupted": True}), flush=True)
            sys.exit(130)
    else:
        with open(arg, encoding="utf-8") as fh:
            jobs = json.load(fh)
        if mode == "send":
            result = _send(config, jobs)
        elif mode == "many":
            result = _many(config, jobs)
        else:
            result = asyncio.run({"asend": _asend, "amany": _amany}[mode](config, jobs))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
