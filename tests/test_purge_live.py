"""Retention beside live traffic on PostgreSQL: a purge loop runs while two campaign
runner processes send, a sender sends and delivery reports are ingested.

What was sent is read from the emulator's own record of the requests it received;
that no message in flight was deleted is shown by every delivery report matching its
message (a report for a deleted message would match nothing).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from smsgate import Gateway
from smsgate.models import CampaignStatus, DeliveryReport, MessageRecord, Status, utcnow
from smsgate.store import open_store
from smsgate.store.base import PurgeResult, RecipientState, Store
from smsgate.testing import EmulatorControl
from store_contract import make_record
from test_exactly_once import echo, echo_config, echo_received, pg_store, plugins, worker

__all__ = ["echo", "pg_store"]  # fixtures, for pytest

pytestmark = pytest.mark.postgres


def _deliver(store: Store, records: list[MessageRecord]) -> list[str | None]:
    """Ingest a ``delivered`` report for each record (as the webhook would)."""
    reports = [DeliveryReport(provider=r.provider or "", provider_message_id=r.provider_message_id,
                              status=Status.DELIVERED, raw_status="DELIVRD") for r in records]
    return store.apply_reports("acme", reports)


def test_purge_beside_campaign_runners_senders_and_reports(
    tmp_path: Path, echo: tuple[str, EmulatorControl], pg_store: str
) -> None:
    url, ctl = echo
    cfg = echo_config(url, pg_store)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    n = 1200
    numbers = [f"+234807{i:07d}" for i in range(n)]
    with Gateway(cfg, plugins=plugins()) as gw:
        cid = gw.tenant("acme").campaigns.create("live", text="x", audience=numbers, batch_size=20,
                                                 concurrency=4, lease_seconds=3).campaign_id
    store = open_store(pg_store)
    # old rows for the purge to work through meanwhile: final ones (to delete) and
    # some still awaiting a report (never to delete)
    store.insert_messages([make_record(f"old-{i}", tenant="acme", status=Status.DELIVERED, created=i)
                           for i in range(3000)])
    store.insert_messages([make_record(f"waiting-{i}", tenant="acme", status=Status.SENT, created=i)
                           for i in range(50)])

    ctl.fault(kind="latency", delay=0.01, path="/messages", count=None)  # the run lasts a few seconds
    procs = [worker(cfg_path, cid), worker(cfg_path, cid)]
    done = threading.Event()
    purged: list[PurgeResult] = []
    errors: list[BaseException] = []
    unmatched: list[str] = []
    sent: list[str] = []

    def purge_loop() -> None:
        try:
            while not done.is_set():  # everything final up to now goes, in small batches
                purged.append(store.purge("acme", before=utcnow(), batch_size=50))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sender() -> None:
        try:
            with Gateway(cfg, plugins=plugins()) as gw:
                tenant = gw.tenant("acme")
                i = 0
                while not done.is_set():
                    result = tenant.send(f"+234809{i:07d}", "hello")
                    sent.append(result.message_id)
                    record = store.get_message("acme", result.message_id)
                    assert record.status is Status.SUBMITTED  # not final: the purge must keep it ...
                    time.sleep(0.02)
                    # ... until its report comes (matched: it was not deleted meanwhile)
                    if _deliver(store, [record]) != [record.message_id]:
                        unmatched.append(record.message_id)
                    i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=purge_loop), threading.Thread(target=sender)]
    for t in threads:
        t.start()
    try:
        for p in procs:
            _, err = p.communicate(timeout=240)
            assert p.returncode == 0, err.decode()[-2000:]
    finally:
        done.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    assert unmatched == [] and len(sent) > 10
    assert len(purged) > 3 and sum(r.messages for r in purged) >= 3000

    # the runners sent every recipient exactly once, by the vendor's own record
    received = echo_received(ctl)
    assert {k for k in received if k.startswith("+234807")} == set(numbers)
    assert max(received.values()) == 1
    # the campaign (running, then completed with messages awaiting reports) was never touched
    row = store.get_campaign("acme", cid)
    assert row.status is CampaignStatus.COMPLETED
    recipients = store.recipients("acme", cid, limit=n + 1)
    assert len(recipients) == n and {r.state for r in recipients} == {RecipientState.SENT}
    mine = store.messages_by_id("acme", [r.message_id or "" for r in recipients])
    assert len(mine) == n and {m.status for m in mine.values()} == {Status.SUBMITTED}
    assert all(store.get_message("acme", f"waiting-{i}").status is Status.SENT for i in range(50))
    assert store.messages_by_id("acme", [f"old-{i}" for i in range(3000)]) == {}

    # once every report is in, the finished campaign goes whole
    assert _deliver(store, list(mine.values())) == [m.message_id for m in mine.values()]
    final = store.count_by_status("acme")[Status.DELIVERED]
    # (and the sender's last one or two: delivered after the purge's last snapshot, or after the loop stopped)
    senders_left = {m.message_id for m in store.messages_by_id("acme", sent).values()
                    if m.status is Status.DELIVERED}
    assert len(senders_left) <= 2 and final == n + len(senders_left)
    last = store.purge("acme", before=utcnow())
    assert (last.campaigns, last.recipients, last.messages, last.kept_campaigns) == (1, n, final, 0)
    assert store.list_campaigns("acme") == []
    left = {m.message_id for m in store.list_messages("acme", limit=10_000)}
    waiting = {f"waiting-{i}" for i in range(50)}
    assert waiting <= left and left - waiting <= set(sent)  # (and the sender's last)
    store.close()
