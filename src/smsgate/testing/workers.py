"""Real ``celery worker`` processes for tests and benchmarks (:class:`CeleryWorkers`).

::

    from smsgate.testing.workers import CeleryWorkers

    workers = CeleryWorkers("myapp.tasks", queue="sms-test", workdir=tmp_path,
                            env={"PYTHONPATH": "src"})
    workers.start(3)
    workers.wait_ready()
    ...                                   # dispatch_campaign.delay(...), then watch the store
    workers.kill(0)                       # SIGKILL one mid-run, as the OOM killer would
    workers.stop()                        # SIGTERM (warm shutdown), then SIGKILL after ``grace``

Each worker is ``python -m celery -A <app> worker --pool=solo -Q <queue>`` (one task at a
time; ``pool`` and ``concurrency`` change that), named ``w<i>-<queue>@<host>``, without gossip
and mingle, logging at INFO into ``<workdir>/worker<i>.log`` (what :meth:`~CeleryWorkers.running`
reads). It needs the ``celery`` extra in the interpreter given (the current one by default).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CeleryWorkers", "cpu_seconds", "delete_queue"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its waited-for children (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / _TICK


def delete_queue(broker: str, queue: str) -> None:
    """Delete ``queue`` on ``broker`` (quietly: an unreachable broker or a missing queue is no error)."""
    from kombu import Connection  # type: ignore[attr-defined]

    with contextlib.suppress(Exception), Connection(broker, connect_timeout=3) as conn:  # type: ignore[no-untyped-call]
        conn.default_channel.queue_delete(queue)


class CeleryWorkers:
    """``celery worker`` processes of Celery app ``app`` (a ``-A`` argument) on ``queue``.

    ``pool`` and ``concurrency``: the worker pool (``solo`` by default: one task at a
    time; ``threads`` with ``concurrency`` 2 lets a worker start its next chunk task while
    the last one drains, see docs/scaling.md). ``env`` is added to this process's environment; ``workdir`` holds the logs (and is the
    workers' working directory); ``heartbeat=False`` adds ``--without-heartbeat``;
    ``python`` is the interpreter.
    """

    def __init__(self, app: str, *, queue: str, workdir: Path, env: Mapping[str, str] | None = None,
                 heartbeat: bool = True, pool: str = "solo", concurrency: int = 1,
                 python: str = sys.executable) -> None:
        self.app, self.queue, self.workdir = app, queue, Path(workdir)
        self.env = {**os.environ, **(env or {})}
        self.heartbeat = heartbeat
        self.pool, self.concurrency = pool, concurrency
        self.python = python
        #: the worker processes, in start order
        self.procs: list[subprocess.Popen[bytes]] = []
        #: their log files
        self.logs: list[Path] = []

    def start(self, n: int) -> None:
        """Start ``n`` more workers."""
        for _ in range(n):
            i = len(self.procs)
            path = self.workdir / f"worker{i}.log"
            self.logs.append(path)
            cmd = [self.python, "-m", "celery", "-A", self.app, "worker", f"--pool={self.pool}",
                   f"--concurrency={self.concurrency}", "-Q", self.queue, "-n", f"w{i}-{self.queue}@%h",
                   "--without-gossip", "--without-mingle", "-l", "INFO"]
            if not self.heartbeat:
                cmd.append("--without-heartbeat")
            with path.open("wb") as out:
                self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                                   cwd=self.workdir))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once every worker logged `` ready.``; RuntimeError (with the logs' tails) otherwise."""
        deadline = time.monotonic() + timeout
        for i in range(len(self.procs)):
            while " ready." not in self.log(i):
                if self.procs[i].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"celery worker {i} did not start:\n{self.tail()}")
                time.sleep(0.1)

    def log(self, i: int) -> str:
        """Worker ``i``'s log so far."""
        return self.logs[i].read_text(errors="replace")

    def tail(self, chars: int = 2000) -> str:
        """The end of every worker's log, for a failure message."""
        return "\n".join(f"--- worker {i}\n{self.log(i)[-chars:]}" for i in range(len(self.logs)))

    def running(self, i: int, task: str = "smsgate.send_chunk") -> list[str]:
        """Ids of the ``task`` tasks worker ``i`` received and has not ended (by its log)."""
        text = self.log(i)
        name = re.escape(task)
        received = re.findall(rf"Task {name}\[([0-9a-f-]+)\] received", text)
        ended = set(re.findall(rf"Task {name}\[([0-9a-f-]+)\] (?:succeeded|retry|raised)", text))
        return [t for t in received if t not in ended]

    def cpu(self) -> float:
        """CPU seconds the live workers have used so far (Linux ``/proc``)."""
        total = 0.0
        for p in self.procs:
            with contextlib.suppress(OSError):
                total += cpu_seconds(p.pid)
        return total

    def kill(self, i: int) -> None:
        """SIGKILL worker ``i`` and wait for it (its task is left to the broker's redelivery)."""
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM every live worker (Celery's warm shutdown), SIGKILL those still alive after ``grace``."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self) -> CeleryWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
