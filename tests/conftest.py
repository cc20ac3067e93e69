"""Fixtures shared by the test modules of this folder."""

from __future__ import annotations

import compileall
import faulthandler
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_provider import create_emulator
from smsgate.testing import LiveServer, Outbox

# The CLI's console takes its width from $COLUMNS when it is created (at import): a value from the
# shell that started pytest, or the 80 that pytest-xdist's workers have, would wrap every CLI
# test's output. Tests that need a width pass COLUMNS to the command they run.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

#: The ``config`` fixture's ``smsgate.toml``: tenant ``acme`` (NG) and the ``memory`` provider,
#: its store a SQLite file beside the configuration.
CONFIG = """\
store = "sqlite:///sms.db"

[tenants.acme]
default_region = "NG"

[tenants.acme.providers.memory]
plugin = "memory"
sender = "ACME"
"""


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile smsgate's and the provider plugins' modules once, before any test starts.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on CI machines), Python never caches what it compiles,
    so every interpreter the tests start (the CLI, several campaign runners, workers) would compile
    the package again (~0.35 s of CPU each). ``compileall`` writes the caches whatever that
    variable says; a read-only checkout is left as it is."""
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: the controller did it
        return
    import smsgate

    root = Path(__file__).resolve().parents[1]
    for folder in (Path(smsgate.__file__).resolve().parent, root / "providers"):
        try:
            compileall.compile_dir(folder, quiet=2, workers=1)
        except OSError as exc:  # pragma: no cover - a read-only checkout
            print(f"conftest: {folder} not compiled ({exc})", file=sys.stderr)


#: A test phase (setup, call, teardown) still running this many seconds after it started hangs
#: where pytest-timeout's 120 s (a signal to the main thread, once a test) could not end it: a
#: ``finally`` or a fixture's teardown waiting on what the interrupted test left (a thread, a child
#: process, a socket). The worker then prints every thread's stack and exits; pytest-xdist reports
#: the test as failed ("worker crashed") and starts another worker, so the run ends and says where
#: it hung instead of running into CI's own time limit with nothing printed.
#: ``SMSGATE_TEST_HANG_LIMIT`` changes it.
HANG_LIMIT = float(os.environ.get("SMSGATE_TEST_HANG_LIMIT", "400"))


class HangWatchdog:
    """Arms :data:`HANG_LIMIT` for each phase of each test (``faulthandler.dump_traceback_later``
    with ``exit=True``). A phase at a time, because pytest cancels faulthandler's timer when a
    phase fails (``pytest_exception_interact``): the teardown after a timed-out call is armed
    anew. Registered as a plugin of its own, so it watches the provider plugins' tests too."""

    def __init__(self) -> None:
        self.stderr = os.dup(2)  # the real standard error: captured output is lost with the worker

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self) -> Iterator[None]:
        return (yield from self._armed())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self) -> Iterator[None]:
        return (yield from self._armed())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self) -> Iterator[None]:
        return (yield from self._armed())

    def _armed(self) -> Iterator[None]:
        faulthandler.dump_traceback_later(HANG_LIMIT, exit=True, file=self.stderr)
        try:
            return (yield)
        finally:
            faulthandler.cancel_dump_traceback_later()


def pytest_configure(config: pytest.Config) -> None:
    """Register the :class:`HangWatchdog`."""
    config.pluginmanager.register(HangWatchdog(), "smsgate-hang-watchdog")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long-running tests (marked ``slow``) first, in their order: on several workers
    (pytest-xdist), one that started last would end the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="module")
def emu_url() -> Iterator[str]:
    """The URL of a reference-provider emulator (smsgate.testing.reference) on loopback, one per
    test module; a module may define its own ``emu_url`` instead."""
    with LiveServer(create_emulator()) as server:
        yield server.url


@pytest.fixture
def config(tmp_path: Path, sms_outbox: Outbox) -> Path:
    """An ``smsgate.toml`` (:data:`CONFIG`) with tenant ``acme`` (NG) sending through the
    ``memory`` provider into ``sms_outbox``, its store a SQLite file beside it. A module may
    define its own ``config`` instead."""
    path = tmp_path / "smsgate.toml"
    path.write_text(CONFIG)
    return path
