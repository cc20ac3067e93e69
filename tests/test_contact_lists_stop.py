"""A contact list's import stopped by its gateway's close or its caller's cancellation (helper
nu17's leftover): ``contact_lists.create()`` is atomic (docs: no list is left behind), so a
close from another thread, ``aclose()`` (a web app's shutdown) or a cancelled ``await`` (a
request's timeout) while it imports a large CSV leaves no list; ``add()`` stops between two
chunks of contacts. Real SQLite stores, the ``memory`` provider.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from smsgate import AsyncGateway, Gateway, GatewayClosed
from smsgate.campaigns import CsvAudience
from stopping import cancel_and_wait, until_refused


def _config(tmp_path: Path) -> dict[str, object]:
    return {"store": f"sqlite:///{tmp_path / 'sms.db'}",
            "tenants": {"acme": {"default_region": "NG", "providers": {"memory": {"plugin": "memory"}}}}}


class Stepping(CsvAudience):
    """A CSV audience that calls ``at_row`` at one row (in the importing thread): the moment a
    close or a cancel lands, mid-import."""

    def __init__(self, path: Path, row: int, at_row: Any) -> None:
        super().__init__(path)
        self._row, self._at_row = row, at_row

    def rows(self) -> Any:
        for n, row in enumerate(super().rows()):
            if n == self._row:
                self._at_row()
            yield row


def _csv(tmp_path: Path, rows: int = 12_000) -> Path:
    """Three chunks of contacts (5,000 a chunk): a stop is seen between two."""
    csv = tmp_path / "contacts.csv"
    csv.write_text("phone,name\n" + "".join(f"0803{i:07d},N{i}\n" for i in range(rows)))
    return csv


def _stored(tmp_path: Path) -> tuple[list[tuple[str, str]], int]:
    with sqlite3.connect(tmp_path / "sms.db") as conn:
        return (conn.execute("SELECT list_id, name FROM contact_lists").fetchall(),
                conn.execute("SELECT count(*) FROM contacts").fetchone()[0])


def test_close_from_another_thread_during_a_sync_create_leaves_no_list(tmp_path: Path) -> None:
    """``close()`` in another thread closed the store under the import: ``StoreError``, and the
    removal of the half-made list failed too (5,000 of 12,000 contacts left in a list)."""
    gw = Gateway(_config(tmp_path))
    closer = threading.Thread(target=gw.close)

    def at_row() -> None:  # after the first chunk was stored
        closer.start()
        until_refused(gw)  # until close() has begun (the gateway refuses new use)

    with pytest.raises(GatewayClosed):
        gw.tenant("acme").contact_lists.create("VIP", Stepping(_csv(tmp_path), 6_000, at_row))
    closer.join()
    assert _stored(tmp_path) == ([], 0)


def test_aclose_during_an_async_create_leaves_no_list(tmp_path: Path) -> None:
    csv = _csv(tmp_path)

    async def main() -> None:
        gw = AsyncGateway(_config(tmp_path))
        loop = asyncio.get_running_loop()
        closing: list[Any] = []

        def at_row() -> None:
            closing.append(asyncio.run_coroutine_threadsafe(gw.aclose(), loop))  # type: ignore[arg-type]
            until_refused(gw)

        with pytest.raises(GatewayClosed):
            await gw.tenant("acme").contact_lists.create("VIP", Stepping(csv, 6_000, at_row))
        await asyncio.wrap_future(closing[0])

    asyncio.run(main())
    assert _stored(tmp_path) == ([], 0)


@pytest.mark.parametrize("row", [6_000, 11_999])
def test_a_cancelled_async_create_leaves_no_list(tmp_path: Path, row: int) -> None:
    """Cancelled mid-import (row 6,000), or on its last row (the import may end before it sees
    the stop: the list it finished, whose id nobody learns, is removed)."""
    csv = _csv(tmp_path)

    async def main() -> None:
        async with AsyncGateway(_config(tmp_path)) as gw:
            loop = asyncio.get_running_loop()
            task: list[asyncio.Task[Any]] = []

            def at_row() -> None:
                loop.call_soon_threadsafe(task[0].cancel)

            task.append(asyncio.ensure_future(gw.tenant("acme").contact_lists.create(
                "VIP", Stepping(csv, row, at_row))))
            with pytest.raises(asyncio.CancelledError):
                await task[0]
            assert await gw.tenant("acme").contact_lists.list() == []

    asyncio.run(main())
    assert _stored(tmp_path) == ([], 0)


def test_a_cancelled_async_add_stops_between_chunks_and_keeps_what_it_stored(tmp_path: Path) -> None:
    """``add()`` is not atomic (documented: the chunks stored before stay); cancelled, it stops at
    its next chunk instead of importing the rest unseen."""
    csv = _csv(tmp_path)

    async def main() -> None:
        async with AsyncGateway(_config(tmp_path)) as gw:
            lists = gw.tenant("acme").contact_lists
            made = await lists.create("VIP")
            assert made.contact_list is not None
            loop = asyncio.get_running_loop()
            task: list[asyncio.Task[Any]] = []

            def at_row() -> None:  # (seen at once: the second chunk is not stored)
                cancel_and_wait(loop, task[0])

            task.append(asyncio.ensure_future(lists.add(made.contact_list.list_id, Stepping(csv, 6_000, at_row))))
            with pytest.raises(asyncio.CancelledError):
                await task[0]
            await asyncio.sleep(0.5)  # (nothing more arrives: the import stopped)
            assert (await lists.get(made.contact_list.list_id)).size == 5_000

    asyncio.run(main())


def test_a_create_completed_normally_is_kept(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncGateway(_config(tmp_path)) as gw:
            report = await gw.tenant("acme").contact_lists.create("VIP", CsvAudience(_csv(tmp_path)))
            assert report.added == 12_000
    asyncio.run(main())
    with Gateway(_config(tmp_path)) as gw:
        report = gw.tenant("acme").contact_lists.create("VIP2", CsvAudience(_csv(tmp_path)))
        assert report.added == 12_000
    assert len(_stored(tmp_path)[0]) == 2
