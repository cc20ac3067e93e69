"""The store contract: one test-suite every :class:`~smsgate.store.base.Store` passes.

A test module adopts it by subclassing :class:`StoreContract` and providing two
fixtures:

* ``store``: a migrated, empty store;
* ``new_store``: a callable returning another *unmigrated*, empty store of the
  same kind (each call a new database), closed by the fixture.

A new implementation (PostgreSQL, ...) is covered by adding one parameter to
those fixtures.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgate.errors import NotFound, ValidationError
from smsgate.models import (
    EVERY_SENDER,
    MAX_INBOUND_TEXT,
    CampaignStatus,
    Contact,
    DeliveryReport,
    InboundMessage,
    MessageRecord,
    OptOut,
    Status,
    StatusEvent,
)
from smsgate.store._rules import accepts_status
from smsgate.store.base import (
    CampaignRow,
    Claim,
    ContactListRow,
    Duplicate,
    LogWrite,
    MessageUpdate,
    NewMessage,
    Recheck,
    RecipientRow,
    RecipientState,
    RecipientUpdate,
    Store,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
WAT = timezone(timedelta(hours=1))  # West Africa Time, to check conversion to UTC


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def make_record(
    message_id: str,
    *,
    tenant: str = "a",
    to: str = "+2348012345678",
    status: Status = Status.QUEUED,
    created: float = 0,
    **fields: Any,
) -> MessageRecord:
    """A message record with sensible defaults."""
    return MessageRecord(
        tenant=tenant,
        message_id=message_id,
        to=to,
        status=status,
        created_at=at(created),
        updated_at=at(created),
        **fields,
    )


def update(
    message_id: str, status: Status, seconds: float, raw: str | None = None, **fields: Any
) -> MessageUpdate:
    """A :class:`MessageUpdate` at ``T0 + seconds``."""
    return MessageUpdate(
        message_id=message_id,
        status=status,
        at=at(seconds),
        raw_status=raw,
        **fields,
    )


def report(
    pmid: str | None,
    status: Status,
    seconds: float,
    raw: str | None = None,
    provider: str = "echo",
    **fields: Any,
) -> DeliveryReport:
    """A delivery report for provider message id ``pmid``."""
    return DeliveryReport(
        provider=provider,
        provider_message_id=pmid,
        status=status,
        raw_status=raw,
        occurred_at=at(seconds),
        **fields,
    )


def make_campaign(campaign_id: str, *, tenant: str = "a", created: float = 0, **fields: Any) -> CampaignRow:
    """A draft campaign row created at ``T0 + created``."""
    return CampaignRow(
        tenant=tenant,
        campaign_id=campaign_id,
        name=f"campaign {campaign_id}",
        status=CampaignStatus.DRAFT,
        created_at=at(created),
        updated_at=at(created),
        **fields,
    )


def make_list(list_id: str, *, tenant: str = "a", created: float = 0, **fields: Any) -> ContactListRow:
    """A contact list row created at ``T0 + created``."""
    return ContactListRow(tenant=tenant, list_id=list_id, name=f"list {list_id}", created_at=at(created), **fields)


def phone(i: int) -> str:
    """A distinct E.164 number per ``i``."""
    return f"+23480{i:08d}"


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


statuses = st.sampled_from(list(Status))
_example_ids = itertools.count()
raws = st.one_of(st.none(), st.sampled_from(["A", "B", "DELIVRD"]))


class StoreContract:
    """Behaviour every store must have. Needs the ``store`` and ``new_store`` fixtures."""

    # ------------------------------------------------------------ tenant data
    def test_erase_tenant_deletes_every_kind_of_its_data_and_nothing_of_another(self, store: Store) -> None:
        """``tenant_data`` names what a tenant name holds; ``erase_tenant`` leaves it nothing
        (a new tenant given the name starts empty) and every other tenant all of its own."""
        from smsgate.store.base import TENANT_DATA
        from smsgate.traffic.limits import Charge, KeyState, Limit, Usage, admit

        rule = Limit(rate=100, per=60).rule()
        horizons = {"provider:one": rule.period}

        def fill(tenant: str) -> None:
            store.write_log(tenant, LogWrite(inserts=[
                make_record("m1", tenant=tenant, status=Status.SUBMITTED, provider="echo", provider_message_id="p1",
                            history=[StatusEvent(status=Status.QUEUED, at=at(0), source="gateway")])],
                keys={"m1": "key-1"}))
            store.apply_reports(tenant, [report("p1", Status.DELIVERED, 5), report("nobody", Status.SENT, 5)],
                                keep_orphans=True)
            store.record_parts(tenant, [report("p1", Status.DELIVERED, 6, part=1, parts=2)])
            store.create_campaign(make_campaign("c1", tenant=tenant))
            store.add_recipients(tenant, "c1", [RecipientRow(seq=0, phone=phone(0), state=RecipientState.PENDING)])
            store.claim_recipients(tenant, "c1", 1, lambda: "m9", owner="r1")
            store.create_contact_list(make_list("l1", tenant=tenant))
            store.add_contacts(tenant, "l1", [Contact(phone=phone(1), name="Ada")])
            store.add_optouts(tenant, [OptOut(phone=phone(2))])
            store.remove_optout(tenant, phone(4), EVERY_SENDER, not_after=at(1))  # a start word: an opt-in
            store.record_inbound(tenant, [InboundMessage(provider="colony", vendor_id="v1", from_number=phone(3),
                                                         to="ACME", text="hi", received_at=at(1))])
            store.traffic(tenant, horizons, lambda s, n: admit(
                s, [Charge("provider:one", (rule,), Usage(1, 1), 5)], n, "r", 3600.0))

        assert store.tenant_data("a") == []
        fill("a")
        fill("b")
        assert store.tenant_data("a") == list(TENANT_DATA)
        assert store.erase_tenant("a") > 10
        assert store.tenant_data("a") == [] and store.tenant_data("b") == list(TENANT_DATA)
        assert store.erase_tenant("a") == 0
        assert store.list_messages("a", limit=10) == [] and store.orphan_reports("a") == []
        assert store.list_campaigns("a") == [] and store.list_contact_lists("a") == []
        assert store.optout_scopes("a", [phone(2)]) == {} and store.list_inbound("a") == []
        assert store.claim_idempotency_key("a", "key-1", "new") is None  # the key is free again

        def entries(states: dict[str, KeyState], now: float) -> int:
            return len(states["provider:one"].entries)

        assert store.traffic("a", horizons, entries) == 0
        assert store.traffic("b", horizons, entries) == 1
        # the other tenant keeps all of its own, and its message its history
        (kept,) = store.list_messages("b", limit=10)
        assert kept.status is Status.DELIVERED
        got = store.get_message("b", "m1")
        assert got is not None and [e.status for e in got.history] == [Status.QUEUED, Status.DELIVERED]
        assert len(store.orphan_reports("b")) == 1 and store.record_parts("b", []) == []
        assert [r.state for r in store.recipients("b", "c1")] == [RecipientState.SENDING]
        assert store.list_contacts("b", "l1")[0][1].name == "Ada"
        assert store.optout_scopes("b", [phone(2)]) == {phone(2): {"*"}}
        assert len(store.list_inbound("b")) == 1
        assert store.claim_idempotency_key("b", "key-1", "new") == "m1"

    # ------------------------------------------------------------ lifecycle
    def test_migrate_is_idempotent_and_versioned(self, new_store: Callable[[], Store]) -> None:
        s = new_store()
        assert s.schema_version() == 0
        s.migrate()
        assert s.schema_version() == Store.SCHEMA_VERSION
        s.insert_messages([make_record("m1")])
        s.migrate()
        assert s.schema_version() == Store.SCHEMA_VERSION
        assert s.get_message("a", "m1").message_id == "m1"

    def test_context_manager_closes(self, new_store: Callable[[], Store]) -> None:
        s = new_store()
        with s as entered:
            assert entered is s
            s.migrate()

    # ------------------------------------------------------------- messages
    def test_insert_get_round_trip(self, store: Store) -> None:
        rec = MessageRecord(
            tenant="a",
            message_id="m1",
            to="+2348012345678",
            status=Status.DELIVERED,
            raw_status="DELIVRD",
            provider="echo",
            provider_message_id="p1",
            batch_id="b1",
            sender="ACME",
            reference="ref-1",
            campaign_id="c1",
            segments=2,
            cost=Decimal("0.03500"),
            currency="NGN",
            error=None,
            created_at=datetime(2026, 1, 1, 13, 0, 0, 1, tzinfo=WAT),
            updated_at=at(3),
            submitted_at=at(1),
            delivered_at=at(2.5),
            history=[
                StatusEvent(status=Status.QUEUED, at=at(0), source="api"),
                StatusEvent(status=Status.SUBMITTED, raw_status="ACCEPTED", at=at(1), source="send"),
                StatusEvent(
                    status=Status.DELIVERED, raw_status="DELIVRD", at=at(2.5), source="report", detail="ok"
                ),
            ],
        )
        store.insert_messages([rec])
        got = store.get_message("a", "m1")
        assert got == rec
        assert isinstance(got.cost, Decimal) and str(got.cost) == "0.03500"
        assert got.created_at == at(0.000001)
        for value in (got.created_at, got.updated_at, got.submitted_at, got.delivered_at):
            assert is_utc(value)
        assert all(is_utc(event.at) for event in got.history)
        # Returned objects are copies: changing them does not change the store.
        got.history.clear()
        got.status = Status.FAILED
        assert store.get_message("a", "m1") == rec

    def test_insert_many_with_and_without_history(self, store: Store) -> None:
        recs = [
            make_record(
                f"m{i}", created=i, history=[StatusEvent(status=Status.QUEUED, at=at(i))] if i % 2 else []
            )
            for i in range(1200)
        ]
        store.insert_messages(recs)
        assert store.get_message("a", "m7").history == [StatusEvent(status=Status.QUEUED, at=at(7))]
        assert store.get_message("a", "m8").history == []
        assert store.count_by_status("a")[Status.QUEUED] == 1200
        store.insert_messages([])

    def test_duplicate_insert_raises_and_rolls_back(self, store: Store) -> None:
        store.insert_messages([make_record("m1")])
        with pytest.raises(ValueError):
            store.insert_messages([make_record("m2"), make_record("m1")])
        with pytest.raises(ValueError):
            store.insert_messages([make_record("m3"), make_record("m3")])
        with pytest.raises(NotFound):
            store.get_message("a", "m2")
        with pytest.raises(NotFound):
            store.get_message("a", "m3")
        assert len(store.list_messages("a")) == 1

    def test_get_unknown_message_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            store.get_message("a", "nope")

    def test_find_by_provider_id(self, store: Store) -> None:
        store.insert_messages(
            [
                make_record(
                    "m1",
                    provider="echo",
                    provider_message_id="p1",
                    history=[StatusEvent(status=Status.QUEUED, at=at(0))],
                ),
                make_record("m2", provider="other", provider_message_id="p1"),
            ]
        )
        found = store.find_by_provider_id("a", "echo", "p1")
        assert found is not None and found.message_id == "m1" and found.history == []
        other = store.find_by_provider_id("a", "other", "p1")
        assert other is not None and other.message_id == "m2"
        assert store.find_by_provider_id("a", "echo", "p2") is None
        assert store.find_by_provider_id("a", "nobody", "p1") is None

    def test_provider_id_learnt_by_update_is_findable(self, store: Store) -> None:
        store.insert_messages([make_record("m1")])
        assert store.update_messages(
            "a", [update("m1", Status.SUBMITTED, 1, provider="echo", provider_message_id="p9")]
        ) == [True]
        found = store.find_by_provider_id("a", "echo", "p9")
        assert found is not None and found.message_id == "m1"
        assert store.apply_reports("a", [report("p9", Status.DELIVERED, 2)]) == ["m1"]

    # ---------------------------------------------------------- status rule
    def test_status_moves_forward_only(self, store: Store) -> None:
        store.insert_messages([make_record("m1")])
        assert store.update_messages(
            "a", [update("m1", Status.SUBMITTED, 1, "ACCEPTED", provider="echo", provider_message_id="p1")]
        ) == [True]
        assert store.update_messages("a", [update("m1", Status.DELIVERED, 3, "DELIVRD")]) == [True]
        # A late "sent" report does not move a delivered message back, but its cost is kept.
        assert store.update_messages("a", [update("m1", Status.SENT, 2, "SENT", cost=Decimal("1.50"))]) == [
            False
        ]
        got = store.get_message("a", "m1")
        assert got.status is Status.DELIVERED and got.raw_status == "DELIVRD"
        assert got.cost == Decimal("1.50")
        assert [e.status for e in got.history] == [Status.SUBMITTED, Status.DELIVERED]
        assert got.submitted_at == at(1) and got.delivered_at == at(3)
        assert got.updated_at == at(3)
        # A final status is never replaced, not even by another final one.
        assert store.update_messages("a", [update("m1", Status.FAILED, 4, "ERR")]) == [False]
        assert store.get_message("a", "m1").status is Status.DELIVERED

    def test_backward_move_refused(self, store: Store) -> None:
        store.insert_messages([make_record("m1", status=Status.SENT)])
        assert store.update_messages(
            "a", [update("m1", Status.SUBMITTED, 1), update("m1", Status.QUEUED, 2)]
        ) == [False, False]
        assert store.get_message("a", "m1").history == []

    def test_unknown_is_replaced_by_anything(self, store: Store) -> None:
        store.insert_messages(
            [make_record("m1", status=Status.UNKNOWN), make_record("m2", status=Status.UNKNOWN)]
        )
        assert store.update_messages(
            "a", [update("m1", Status.SENT, 1, "SENT"), update("m2", Status.QUEUED, 1)]
        ) == [True, True]
        assert store.get_message("a", "m1").status is Status.SENT
        assert store.get_message("a", "m2").status is Status.QUEUED
        # ...but unknown does not replace a known status.
        assert store.update_messages("a", [update("m1", Status.UNKNOWN, 2)]) == [False]
        assert store.get_message("a", "m1").status is Status.SENT

    def test_repeat_report_adds_no_history(self, store: Store) -> None:
        store.insert_messages([make_record("m1")])
        assert store.update_messages("a", [update("m1", Status.SENT, 1, "SENT")]) == [True]
        assert store.update_messages("a", [update("m1", Status.SENT, 2, "SENT")]) == [False]
        assert store.update_messages("a", [update("m1", Status.SENT, 2, None)]) == [False]
        assert len(store.get_message("a", "m1").history) == 1
        # Same status, new raw status: recorded.
        assert store.update_messages("a", [update("m1", Status.SENT, 3, "BUFFERED")]) == [True]
        got = store.get_message("a", "m1")
        assert got.raw_status == "BUFFERED" and len(got.history) == 2

    def test_update_writes_fields_and_history_details(self, store: Store) -> None:
        store.insert_messages([make_record("m1")])
        u = MessageUpdate(
            message_id="m1",
            status=Status.FAILED,
            at=datetime(2026, 1, 1, 13, 0, 5, tzinfo=WAT),
            raw_status="ERR42",
            source="send",
            detail="bad number",
            provider="echo",
            provider_message_id="p1",
            batch_id="b1",
            segments=3,
            cost=Decimal("0.10"),
            currency="NGN",
            error="invalid destination",
        )
        assert store.update_messages("a", [u, update("unknown-id", Status.SENT, 1)]) == [True, False]
        got = store.get_message("a", "m1")
        assert (got.provider, got.provider_message_id, got.batch_id, got.segments) == ("echo", "p1", "b1", 3)
        assert str(got.cost) == "0.10" and got.currency == "NGN" and got.error == "invalid destination"
        assert got.submitted_at == at(5) and got.delivered_at is None and got.updated_at == at(5)
        assert is_utc(got.updated_at)
        assert got.history == [
            StatusEvent(
                status=Status.FAILED, raw_status="ERR42", at=at(5), source="send", detail="bad number"
            )
        ]
        assert store.update_messages("a", []) == []

    def test_update_without_status_change_still_writes_fields(self, store: Store) -> None:
        store.insert_messages([make_record("m1", status=Status.SUBMITTED, provider="echo")])
        assert store.update_messages(
            "a", [update("m1", Status.SUBMITTED, 1, provider_message_id="p1", segments=2)]
        ) == [False]
        got = store.get_message("a", "m1")
        assert got.provider_message_id == "p1" and got.segments == 2 and got.history == []
        assert got.updated_at == at(1)

    def test_update_records_the_sender_used(self, store: Store) -> None:
        store.insert_messages([make_record("m1")])
        assert store.get_message("a", "m1").sender is None
        store.update_messages("a", [update("m1", Status.SUBMITTED, 1, provider="echo", sender="ACME")])
        assert store.get_message("a", "m1").sender == "ACME"
        store.update_messages("a", [update("m1", Status.SENT, 2)])  # no sender: unchanged
        store.apply_reports("a", [])
        assert store.get_message("a", "m1").sender == "ACME"
        store.update_messages("a", [update("m1", Status.SENT, 3, sender="OTHER")])  # a field, not a status
        got = store.get_message("a", "m1")
        assert got.sender == "OTHER" and got.status is Status.SENT and got.updated_at == at(3)

    def test_updates_in_one_batch_apply_in_order(self, store: Store) -> None:
        store.insert_messages([make_record("m1")])
        result = store.update_messages(
            "a",
            [
                update("m1", Status.SUBMITTED, 1),
                update("m1", Status.SENT, 2),
                update("m1", Status.SUBMITTED, 3),
                update("m1", Status.DELIVERED, 4),
            ],
        )
        assert result == [True, True, False, True]
        assert [e.status for e in store.get_message("a", "m1").history] == [
            Status.SUBMITTED,
            Status.SENT,
            Status.DELIVERED,
        ]

    # ------------------------------------------------------------- listing
    def test_in_flight_lists_old_messages_oldest_first_with_history_and_pages(self, store: Store) -> None:
        store.insert_messages([
            make_record(f"m{i:02d}", status=[Status.SUBMITTED, Status.SENT, Status.DELIVERED, Status.UNKNOWN][i % 4],
                        provider="echo" if i % 5 else "other", created=i // 2,
                        history=[StatusEvent(status=Status.QUEUED, at=at(i // 2), source="gateway")])
            for i in range(24)
        ])
        store.insert_messages([make_record("x1", tenant="b", status=Status.SUBMITTED, provider="echo")])
        store.update_messages("a", [update("m00", Status.SENT, 30)])
        flying = [Status.SUBMITTED, Status.SENT]
        expected = [f"m{i:02d}" for i in range(20) if i % 4 in (0, 1)]  # created before T0 + 10
        got = store.in_flight("a", flying, created_before=at(10))
        assert [m.message_id for m in got] == expected
        assert [(e.status, e.source) for e in got[0].history] == [(Status.QUEUED, "gateway"),
                                                                  (Status.SENT, "")]
        assert [m.message_id for m in store.in_flight("a", flying, created_before=at(10), created_after=at(5))] \
            == [m for m in expected if int(m[1:]) // 2 >= 5]
        assert [m.message_id for m in store.in_flight("a", flying, created_before=at(10), providers=["other"])] \
            == [m for m in expected if int(m[1:]) % 5 == 0]
        assert store.in_flight("a", flying, created_before=at(10), providers=[]) == []
        # instances that left the tenant: every message with a provider not among those named
        assert [m.message_id for m in store.in_flight("a", flying, created_before=at(10),
                                                      exclude_providers=["echo"])] \
            == [m for m in expected if int(m[1:]) % 5 == 0]
        store.insert_messages([make_record("np", status=Status.SUBMITTED, provider=None, created=50)])
        assert "np" not in [m.message_id for m in store.in_flight("a", flying, created_before=at(100),
                                                                  exclude_providers=[])]
        pages: list[str] = []
        after: str | None = None
        while page := store.in_flight("a", flying, created_before=at(10), limit=3, after=after):
            pages.extend(m.message_id for m in page)
            after = page[-1].message_id
        assert pages == expected
        assert [m.message_id for m in store.in_flight("a", [Status.UNKNOWN], created_before=at(100))] \
            == [f"m{i:02d}" for i in range(24) if i % 4 == 3]
        with pytest.raises(NotFound):
            store.in_flight("a", flying, created_before=at(10), after="nope")

    def test_note_checks_appends_an_event_repeating_the_status_and_changes_nothing(self, store: Store) -> None:
        store.insert_messages([make_record("m1", status=Status.SUBMITTED, raw_status="ACCEPTED", provider="echo")])
        before = store.get_message("a", "m1")
        assert store.note_checks("a", ["m1", "m1", "nope"], at=at(60), source="echo:lookup", detail="no change") == 1
        assert store.note_checks("b", ["m1"], at=at(60), source="echo:lookup") == 0  # another tenant's
        after = store.get_message("a", "m1")
        assert after.history[-1] == StatusEvent(status=Status.SUBMITTED, raw_status="ACCEPTED", at=at(60),
                                                source="echo:lookup", detail="no change")
        assert len(after.history) == len(before.history) + 1
        assert (after.status, after.raw_status, after.updated_at) == (before.status, before.raw_status,
                                                                      before.updated_at)

    def test_list_messages_filters_and_keyset_paging(self, store: Store) -> None:
        recs = [
            make_record(
                f"m{i:02d}",
                to="+2348000000001" if i % 3 == 0 else "+2348000000002",
                status=Status.DELIVERED if i % 2 else Status.QUEUED,
                campaign_id="c1" if i < 10 else None,
                created=i // 2,  # pairs share a created_at: ties broken by insertion order
            )
            for i in range(25)
        ]
        store.insert_messages(recs)
        expected = [f"m{i:02d}" for i in reversed(range(25))]
        assert [m.message_id for m in store.list_messages("a")] == expected
        pages: list[str] = []
        before: str | None = None
        while True:
            page = store.list_messages("a", limit=7, before=before)
            if not page:
                break
            assert len(page) <= 7
            pages.extend(m.message_id for m in page)
            before = page[-1].message_id
        assert pages == expected
        assert all(m.history == [] for m in store.list_messages("a"))
        # since: logged at or after it (m20 and m21 share created 10)
        assert [m.message_id for m in store.list_messages("a", since=at(10))] == [
            f"m{i:02d}" for i in reversed(range(20, 25))]
        assert [m.message_id for m in store.list_messages("a", since=at(10), status=Status.DELIVERED)] == [
            "m23", "m21"]
        delivered = store.list_messages("a", status=Status.DELIVERED)
        assert [m.message_id for m in delivered] == [f"m{i:02d}" for i in reversed(range(25)) if i % 2]
        assert [m.message_id for m in store.list_messages("a", to="+2348000000001")] == [
            f"m{i:02d}" for i in reversed(range(25)) if i % 3 == 0
        ]
        assert [
            m.message_id for m in store.list_messages("a", campaign_id="c1", status=Status.QUEUED, limit=3)
        ] == ["m08", "m06", "m04"]
        assert [m.message_id for m in store.list_messages("a", campaign_id="c1", before="m05")] == [
            "m04",
            "m03",
            "m02",
            "m01",
            "m00",
        ]
        assert store.list_messages("a", limit=0) == []
        assert store.list_messages("a", campaign_id="nope") == []
        with pytest.raises(NotFound):
            store.list_messages("a", before="nope")

    def test_count_by_status(self, store: Store) -> None:
        store.insert_messages(
            [
                make_record("m1", status=Status.DELIVERED, campaign_id="c1", provider="echo"),
                make_record("m2", status=Status.DELIVERED, campaign_id="c1", provider="other"),
                make_record("m3", status=Status.FAILED, campaign_id="c1", provider="echo"),
                make_record("m4", status=Status.QUEUED, campaign_id="c2"),
            ]
        )
        counts = store.count_by_status("a")
        assert set(counts) == set(Status)
        assert counts[Status.DELIVERED] == 2 and counts[Status.FAILED] == 1 and counts[Status.QUEUED] == 1
        assert sum(counts.values()) == 4
        c1 = store.count_by_status("a", campaign_id="c1")
        assert (c1[Status.DELIVERED], c1[Status.FAILED], c1[Status.QUEUED]) == (2, 1, 0)
        echo = store.count_by_status("a", provider="echo")
        assert (echo[Status.DELIVERED], echo[Status.FAILED], sum(echo.values())) == (1, 1, 2)
        both = store.count_by_status("a", campaign_id="c1", provider="other")
        assert both[Status.DELIVERED] == 1 and sum(both.values()) == 1
        assert sum(store.count_by_status("a", campaign_id="c9").values()) == 0

    # -------------------------------------------------------------- reports
    def test_apply_reports_matching_and_unmatched(self, store: Store) -> None:
        store.insert_messages(
            [
                make_record("m1", status=Status.SUBMITTED, provider="echo", provider_message_id="p1"),
                make_record("m2", status=Status.SUBMITTED, provider="echo", provider_message_id="p2"),
                make_record("m3", status=Status.SUBMITTED, provider="other", provider_message_id="p3"),
            ]
        )
        result = store.apply_reports(
            "a",
            [
                report("p1", Status.SENT, 1, "SENT"),
                report("p1", Status.DELIVERED, 2, "DELIVRD", cost=Decimal("0.0200"), segments=1),
                report("p2", Status.FAILED, 2, "UNDELIV", error_code="E12"),
                report("p3", Status.DELIVERED, 2),  # right id, wrong provider
                report("nope", Status.DELIVERED, 2),
                report(None, Status.DELIVERED, 2),
                report("p1", Status.SENT, 3, "SENT"),  # late: no regression, still matched
            ],
        )
        assert result == ["m1", "m1", "m2", None, None, None, "m1"]
        m1 = store.get_message("a", "m1")
        assert m1.status is Status.DELIVERED and m1.raw_status == "DELIVRD"
        assert str(m1.cost) == "0.0200" and m1.segments == 1
        assert m1.delivered_at == at(2)
        assert [(e.status, e.raw_status, e.source) for e in m1.history] == [
            (Status.SENT, "SENT", "report"),
            (Status.DELIVERED, "DELIVRD", "report"),
        ]
        m2 = store.get_message("a", "m2")
        assert m2.status is Status.FAILED and m2.error == "E12"
        assert store.get_message("a", "m3").status is Status.SUBMITTED
        assert store.apply_reports("a", []) == []

    def test_apply_reports_changes_says_which_reports_moved_a_status(self, store: Store) -> None:
        store.insert_messages([
            make_record("m1", status=Status.SUBMITTED, provider="echo", provider_message_id="p1"),
            make_record("m2", status=Status.SUBMITTED, provider="echo", provider_message_id="p2"),
        ])
        batch = [
            report("p1", Status.DELIVERED, 2, "DELIVRD"),
            report("p2", Status.SENT, 1, "SENT"),
            report("nope", Status.DELIVERED, 2),
            report("p1", Status.DELIVERED, 2, "DELIVRD"),  # the same report again in the batch
        ]
        first = store.apply_reports_changes("a", batch)
        assert [(a.message_id, a.changed) for a in first] == [("m1", True), ("m2", True), (None, False),
                                                              ("m1", False)]
        again = store.apply_reports_changes("a", batch[:2])  # the vendor retrying its callback
        assert [(a.message_id, a.changed) for a in again] == [("m1", False), ("m2", False)]
        late = store.apply_reports_changes("a", [report("p1", Status.SENT, 3, "SENT"),  # refused: backwards
                                                 report("p2", Status.FAILED, 3, "UNDELIV")])
        assert [(a.message_id, a.changed) for a in late] == [("m1", False), ("m2", True)]
        assert [e.status for e in store.get_message("a", "m2").history] == [Status.SENT, Status.FAILED]
        assert store.apply_reports_changes("a", []) == []

    def test_apply_reports_many(self, store: Store) -> None:
        n = 1500
        store.insert_messages(
            [
                make_record(f"m{i}", status=Status.SUBMITTED, provider="echo", provider_message_id=f"p{i}")
                for i in range(n)
            ]
        )
        result = store.apply_reports(
            "a", [report(f"p{i}", Status.DELIVERED, 1, "DELIVRD") for i in range(n + 10)]
        )
        assert result == [f"m{i}" for i in range(n)] + [None] * 10
        assert store.count_by_status("a")[Status.DELIVERED] == n

    def test_apply_reports_history_in_report_order(self, store: Store) -> None:
        """Reports for several messages, out of message order and interleaved, leave each
        message's history in the order its reports came (stores may write a batch's
        rows and events in message order)."""
        store.insert_messages([
            make_record(f"h{i}", status=Status.SUBMITTED, provider="echo", provider_message_id=f"ph{i}")
            for i in range(3)
        ])
        steps = [(Status.SENT, "ENROUTE"), (Status.DELIVERED, "DELIVRD")]
        batch = [report(f"ph{i}", status, 5 + k, raw) for k, (status, raw) in enumerate(steps) for i in (2, 0, 1)]
        assert store.apply_reports("a", batch) == ["h2", "h0", "h1"] * 2
        for i in range(3):
            history = store.get_message("a", f"h{i}").history
            assert [(e.status, e.raw_status, e.source) for e in history[-2:]] == [
                (Status.SENT, "ENROUTE", "report"), (Status.DELIVERED, "DELIVRD", "report")]
            assert [e.at for e in history[-2:]] == [at(5), at(6)]

    def test_apply_reports_keep_what_a_report_does_not_carry(self, store: Store) -> None:
        """A report moves the status, raw status and times; the message's sender, currency,
        cost, provider, batch and segments stay as stored (a store may leave out of its
        report path what a report never changes), with another tenant's twin untouched."""
        fields = dict(status=Status.SUBMITTED, provider="echo", provider_message_id="pk1", sender="ACME",
                      cost=Decimal("0.05"), currency="EUR", batch_id="b1", segments=2)
        store.insert_messages([make_record("k1", **fields), make_record("k1", tenant="b", **fields)])
        batch = [report("pk1", Status.DELIVERED, 3, "DELIVRD"), report("pk1", Status.DELIVERED, 3, "DELIVRD")]
        assert [(a.message_id, a.changed) for a in store.apply_reports_changes("a", batch)] == [
            ("k1", True), ("k1", False)]
        got = store.get_message("a", "k1")
        assert (got.status, got.raw_status, got.delivered_at, got.updated_at) == (
            Status.DELIVERED, "DELIVRD", at(3), at(3))
        assert (got.sender, got.currency, got.cost, got.provider, got.batch_id, got.segments) == (
            "ACME", "EUR", Decimal("0.05"), "echo", "b1", 2)
        assert [(e.status, e.source) for e in got.history][-1] == (Status.DELIVERED, "report")
        other = store.get_message("b", "k1")
        assert (other.status, other.sender, other.currency, len(other.history)) == (
            Status.SUBMITTED, "ACME", "EUR", 0)

    def test_duplicate_provider_ids_match_newest(self, store: Store) -> None:
        store.insert_messages([make_record("old", provider="echo", provider_message_id="p1")])
        store.insert_messages([make_record("new", provider="echo", provider_message_id="p1")])
        found = store.find_by_provider_id("a", "echo", "p1")
        assert found is not None and found.message_id == "new"
        assert store.apply_reports("a", [report("p1", Status.SENT, 1)]) == ["new"]
        assert store.get_message("a", "old").status is Status.QUEUED

    def test_apply_reports_large_mixed_batch_as_the_rules(self, store: Store) -> None:
        """5,000 reports in one batch: several for one message (out of order: a final
        status before and after earlier ones, repeats), unmatched ones kept as orphans
        between matches, and reports naming no id, leave what ``_rules.apply_report``
        gives report by report; every orphan is kept once, in batch order."""
        from smsgate.store._rules import apply_report

        n = 2000
        store.insert_messages([
            make_record(f"big{i}", status=Status.SUBMITTED, provider="echo", provider_message_id=f"pb{i}")
            for i in range(n)
        ])
        rng = random.Random(17)
        steps = [(Status.SENT, "ENROUTE"), (Status.DELIVERED, "DELIVRD"), (Status.FAILED, "UNDELIV"),
                 (Status.SUBMITTED, "ACCEPTD"), (Status.SENT, "SENT2"), (Status.UNKNOWN, None)]
        batch = []
        while len(batch) < 5000:
            kind = rng.random()
            if kind < 0.1:
                batch.append(report(f"orph{len(batch)}", Status.DELIVERED, 5, "DELIVRD"))
            elif kind < 0.12:
                batch.append(report(None, Status.DELIVERED, 5))
            else:
                status, raw = rng.choice(steps)
                i = rng.randrange(n) if kind < 0.6 else rng.randrange(50)  # many reports for a few messages
                batch.append(report(f"pb{i}", status, rng.randrange(1, 9), raw,
                                    segments=rng.choice([None, 1, 2]), error_code=rng.choice([None, None, "E1"])))
        expected = {f"big{i}": store.get_message("a", f"big{i}") for i in range(n)}
        events = {mid: len(rec.history) for mid, rec in expected.items()}
        for r in batch:
            pmid = r.provider_message_id
            if pmid is not None and pmid.startswith("pb"):
                changed, _ = apply_report(expected[f"big{pmid[2:]}"], r)
                events[f"big{pmid[2:]}"] += changed
        result = store.apply_reports("a", batch, keep_orphans=True)
        assert result == [
            f"big{r.provider_message_id[2:]}" if r.provider_message_id and r.provider_message_id.startswith("pb")
            else None for r in batch
        ]
        got = store.messages_by_id("a", list(expected))
        for mid, want in expected.items():
            have = got[mid]
            for name in ("status", "raw_status", "segments", "error", "updated_at", "submitted_at", "delivered_at"):
                assert getattr(have, name) == getattr(want, name), (mid, name)
        for mid in ("big0", "big1", "big49", f"big{n - 1}"):
            assert len(store.get_message("a", mid).history) == events[mid], mid
        orphans = [r.provider_message_id for r in batch if r.provider_message_id and r.provider_message_id.startswith("orph")]
        assert [o.provider_message_id for o in store.orphan_reports("a", limit=10_000)] == orphans

    # ------------------------------------------------------------- opt-outs
    def test_optouts(self, store: Store) -> None:
        first = [OptOut(phone="+2348000000003", reason="STOP", source="sms"), OptOut(phone="+2348000000001")]
        assert store.add_optouts("a", first) == 2
        again = [
            OptOut(phone="+2348000000001"),
            OptOut(phone="+2348000000002"),
            OptOut(phone="+2348000000002"),
        ]
        assert store.add_optouts("a", again) == 1
        assert store.add_optouts("a", []) == 0
        assert store.count_optouts("a") == 3
        listed = store.list_optouts("a")
        assert [o.phone for o in listed] == ["+2348000000001", "+2348000000002", "+2348000000003"]
        assert listed[2].reason == "STOP" and listed[2].source == "sms" and is_utc(listed[2].created_at)
        assert [o.phone for o in store.list_optouts("a", limit=1, offset=1)] == ["+2348000000002"]
        assert [o.phone for o in store.list_optouts("a", offset=2)] == ["+2348000000003"]
        assert store.list_optouts("a", limit=0) == []
        assert store.is_opted_out("a", "+2348000000002")
        assert store.remove_optout("a", "+2348000000002") is True
        assert store.remove_optout("a", "+2348000000002") is False
        assert not store.is_opted_out("a", "+2348000000002")
        assert store.count_optouts("a") == 2

    def test_optout_keeps_first_record(self, store: Store) -> None:
        store.add_optouts("a", [OptOut(phone="+2348000000001", reason="first", created_at=at(0))])
        store.add_optouts("a", [OptOut(phone="+2348000000001", reason="second", created_at=at(9))])
        (only,) = store.list_optouts("a")
        assert only.reason == "first" and only.created_at == at(0)

    def test_opted_out_many_phones(self, store: Store) -> None:
        phones = [f"+23480{i:08d}" for i in range(2000)]
        assert store.add_optouts("a", [OptOut(phone=p) for p in phones[::2]]) == 1000
        assert store.opted_out("a", phones) == set(phones[::2])
        assert store.opted_out("a", iter(phones + phones)) == set(phones[::2])
        assert store.opted_out("a", []) == set()
        assert store.count_optouts("a") == 1000

    def test_optout_scopes_of_lists_of_any_length(self, store: Store) -> None:
        """A look-up finds exactly the numbers opted out, whatever the length of its list (a store
        may pad or split it: around every length it might use)."""
        store.add_optouts("a", [OptOut(phone=phone(i)) for i in range(0, 1200, 3)])
        for n in (1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 255, 256, 257, 499, 500, 501, 1001):
            asked = [phone(i) for i in range(n)]
            assert store.optout_scopes("a", asked) == {phone(i): {"*"} for i in range(0, n, 3)}, n

    def test_optout_scopes(self, store: Store) -> None:
        """An opt-out is per (phone, scope): every sender ('*'), or one sender ID."""
        a, b, c = "+2348000000001", "+2348000000002", "+2348000000003"
        added = store.add_optouts("a", [
            OptOut(phone=a, scope="BrandA", source="keyword"),
            OptOut(phone=a, scope="brandb"),
            OptOut(phone=b),                      # every sender
            OptOut(phone=c, scope="+44 7700 900123"),
        ])
        assert added == 4
        assert store.add_optouts("a", [OptOut(phone=a, scope="BRANDA"), OptOut(phone=a, scope="*")]) == 1
        assert store.optout_scopes("a", [a, b, c, "+2348000000009"]) == {
            a: {"*", "branda", "brandb"}, b: {"*"}, c: {"447700900123"}}
        assert store.opted_out("a", [b, c], sender="BrandA") == {b}
        assert store.opted_out("a", [c], sender="447700900123") == {c}
        assert store.opted_out("a", [c], sender="+447700900123") == {c}
        assert store.opted_out("a", [c]) == set()  # no sender: only opt-outs from every sender count
        assert store.is_opted_out("a", c, "OTHER") is False
        listed = store.list_optouts("a")
        assert [(o.phone, o.scope) for o in listed] == [
            (a, "*"), (a, "branda"), (a, "brandb"), (b, "*"), (c, "447700900123")]
        assert listed[1].source == "keyword"
        assert store.count_optouts("a") == 5
        # removing one scope leaves the others
        assert store.remove_optout("a", a) is True              # the opt-out from every sender
        assert store.remove_optout("a", a) is False
        assert store.opted_out("a", [a], sender="brandb") == {a}
        assert store.opted_out("a", [a], sender="brandc") == set()
        assert store.remove_optout("a", a, "BrandA") is True
        assert store.optout_scopes("a", [a]) == {a: {"brandb"}}
        assert store.remove_optout("a", c, None) is True         # every scope of the phone
        assert store.optout_scopes("a", [c]) == {}
        assert store.remove_optout("a", c, None) is False
        assert store.count_optouts("a") == 2
        assert store.optout_scopes("b", [a, b]) == {}

    def test_optout_dates_renew_and_not_after(self, store: Store) -> None:
        """A start word removes no opt-out newer than itself; a stop word said again renews the date."""
        a = "+2348000000001"
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        assert store.add_optouts("a", [OptOut(phone=a, created_at=t0, source="keyword")], renew=True) == 1
        assert store.add_optouts("a", [OptOut(phone=a, created_at=t0 + timedelta(minutes=10))], renew=True) == 0
        assert store.add_optouts("a", [OptOut(phone=a, created_at=t0 + timedelta(minutes=3))], renew=True) == 0
        assert store.add_optouts("a", [OptOut(phone=a, created_at=t0 + timedelta(hours=1))]) == 0  # no renew
        (held,) = store.list_optouts("a")
        assert held.created_at == t0 + timedelta(minutes=10) and held.source == "keyword"
        assert store.remove_optout("a", a, not_after=t0 + timedelta(minutes=5)) is False
        assert store.remove_optout("a", a, None, not_after=t0 + timedelta(minutes=5)) is False
        assert store.optout_scopes("a", [a]) == {a: {"*"}}
        assert store.remove_optout("b", a, not_after=t0 + timedelta(hours=1)) is False  # another tenant's
        assert store.remove_optout("a", a, not_after=t0 + timedelta(minutes=10)) is True
        assert store.optout_scopes("a", [a]) == {}

    # ---------------------------------------------------- idempotency keys
    def test_idempotency_claim(self, store: Store) -> None:
        assert store.claim_idempotency_key("a", "k1", "m1") is None
        assert store.claim_idempotency_key("a", "k1", "m2") == "m1"
        assert store.claim_idempotency_key("a", "k1", "m1") == "m1"
        assert store.claim_idempotency_key("a", "k2", "m2") is None

    def test_bound_keys_says_which_keys_are_bound_and_binds_nothing(self, store: Store) -> None:
        store.claim_idempotency_key("a", "k1", "m1")
        store.claim_idempotency_key("b", "k2", "m9")  # another tenant's
        many = [f"x{i}" for i in range(1200)]  # more than one statement's worth of parameters
        assert store.bound_keys("a", ["k1", "k2", "k1", *many]) == {"k1": "m1"}
        assert store.bound_keys("a", []) == {}
        assert store.claim_idempotency_key("a", "k2", "m2") is None  # asking bound nothing

    def test_idempotency_concurrent_claims_one_winner(self, store: Store) -> None:
        results: list[str | None] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(8, timeout=60)  # a party that never came: an error, not a hang

        def claim(i: int) -> None:
            try:
                barrier.wait()
                results.append(store.claim_idempotency_key("a", "shared", f"m{i}"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        winners = [r for r in results if r is None]
        assert len(winners) == 1 and len(results) == 8
        (bound,) = set(r for r in results if r is not None)
        assert store.claim_idempotency_key("a", "shared", "late") == bound

    # ---------------------------------------------------- tenant isolation
    def test_tenant_isolation(self, store: Store) -> None:
        store.insert_messages(
            [
                make_record(
                    "m1",
                    status=Status.SUBMITTED,
                    provider="echo",
                    provider_message_id="p1",
                    campaign_id="c1",
                    history=[StatusEvent(status=Status.SUBMITTED, at=at(0))],
                )
            ]
        )
        store.add_optouts("a", [OptOut(phone="+2348000000001")])
        assert store.claim_idempotency_key("a", "k1", "m1") is None
        before = store.get_message("a", "m1")

        # Tenant b sees nothing of a's...
        with pytest.raises(NotFound):
            store.get_message("b", "m1")
        assert store.find_by_provider_id("b", "echo", "p1") is None
        assert store.list_messages("b") == []
        assert store.list_messages("b", campaign_id="c1") == []
        with pytest.raises(NotFound):
            store.list_messages("b", before="m1")
        assert sum(store.count_by_status("b").values()) == 0
        assert sum(store.count_by_status("b", campaign_id="c1", provider="echo").values()) == 0
        assert store.opted_out("b", ["+2348000000001"]) == set()
        assert not store.is_opted_out("b", "+2348000000001")
        assert store.list_optouts("b") == []
        assert store.count_optouts("b") == 0

        # ...and cannot change it.
        assert store.update_messages("b", [update("m1", Status.FAILED, 1, cost=Decimal("9"))]) == [False]
        assert store.apply_reports("b", [report("p1", Status.DELIVERED, 1)]) == [None]
        assert store.remove_optout("b", "+2348000000001") is False
        assert store.claim_idempotency_key("b", "k1", "mb") is None  # b's own key space
        assert store.get_message("a", "m1") == before
        assert store.is_opted_out("a", "+2348000000001")
        assert store.claim_idempotency_key("a", "k1", "other") == "m1"
        assert store.claim_idempotency_key("b", "k1", "other") == "mb"

        # b may use the same message id, provider id and phone for its own rows.
        store.insert_messages([make_record("m1", tenant="b", provider="echo", provider_message_id="p1")])
        store.add_optouts("b", [OptOut(phone="+2348000000001")])
        assert store.apply_reports("b", [report("p1", Status.DELIVERED, 2)]) == ["m1"]
        assert store.get_message("b", "m1").status is Status.DELIVERED
        assert store.get_message("a", "m1") == before
        assert store.count_optouts("a") == 1 and store.count_optouts("b") == 1
        assert store.remove_optout("b", "+2348000000001") is True
        assert store.is_opted_out("a", "+2348000000001")

    # ------------------------------------------------------------ campaigns
    def test_campaign_round_trip(self, store: Store) -> None:
        row = make_campaign("c1", spec={"text": "Hi {name}", "nested": {"n": [1, 2.5, None, True]}})
        row.start_at = datetime(2026, 2, 1, 9, 0, tzinfo=WAT)
        row.provider = "echo"
        store.create_campaign(row)
        got = store.get_campaign("a", "c1")
        assert got == row
        assert is_utc(got.created_at) and is_utc(got.updated_at) and is_utc(got.start_at)
        got.spec["text"] = "changed"
        assert store.get_campaign("a", "c1").spec["text"] == "Hi {name}"
        with pytest.raises(ValueError):
            store.create_campaign(make_campaign("c1"))
        with pytest.raises(NotFound):
            store.get_campaign("a", "nope")

    def test_list_campaigns_newest_first(self, store: Store) -> None:
        for i in range(5):
            store.create_campaign(make_campaign(f"c{i}", created=i // 2))
        assert [c.campaign_id for c in store.list_campaigns("a")] == ["c4", "c3", "c2", "c1", "c0"]
        assert [c.campaign_id for c in store.list_campaigns("a", limit=2)] == ["c4", "c3"]
        assert store.list_campaigns("a", limit=0) == []

    def test_campaign_tenants_names_every_tenant_with_a_campaign(self, store: Store) -> None:
        assert store.campaign_tenants() == []
        store.create_campaign(make_campaign("c1"))
        store.create_campaign(make_campaign("c2"))
        store.create_campaign(make_campaign("c1", tenant="z-gone"))
        store.create_campaign(make_campaign("c1", tenant="b"))
        assert store.campaign_tenants() == ["a", "b", "z-gone"]

    def test_campaigns_to_recover_are_those_a_purge_must_resolve(self, store: Store) -> None:
        """Claimed (``sending``) recipients, or a cancelled campaign's ``pending`` ones: the campaigns
        whose claims a purge resolves; finished ones without claims are not read one by one."""
        from smsgate.store.base import RecipientRow, RecipientState

        plan = {"done": CampaignStatus.COMPLETED, "claimed": CampaignStatus.RUNNING,
                "idle": CampaignStatus.RUNNING, "cancelled": CampaignStatus.CANCELLED,
                "cancelled-done": CampaignStatus.CANCELLED, "paused-claimed": CampaignStatus.PAUSED}
        for i, (cid, status) in enumerate(plan.items()):
            store.create_campaign(make_campaign(cid, created=i))
            store.update_campaign("a", cid, status=status)
            store.add_recipients("a", cid, [RecipientRow(k, f"+23480300000{i}{k}", RecipientState.PENDING)
                                            for k in range(3)])
        for cid in ("claimed", "paused-claimed"):
            store.claim_recipients("a", cid, 1, lambda: f"m-{cid}", owner="gone")
        for cid in ("done", "cancelled-done"):
            store.update_recipients("a", cid, [RecipientUpdate(r.id or 0, RecipientState.SKIPPED, reason="x")
                                               for r in store.recipients("a", cid)])
        store.create_campaign(make_campaign("claimed", tenant="b"))
        assert store.campaigns_to_recover("a") == ["paused-claimed", "cancelled", "claimed"]
        assert store.campaigns_to_recover("b") == []
        assert store.campaigns_to_recover("nobody") == []

    def test_update_campaign(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1", spec={"a": 1, "b": 2}))
        before = store.get_campaign("a", "c1")
        row = store.update_campaign("a", "c1", status=CampaignStatus.RUNNING, spec={"c": 3})
        assert row.status is CampaignStatus.RUNNING and row.spec == {"c": 3}
        assert row.updated_at > before.updated_at and is_utc(row.updated_at)
        assert row.created_at == before.created_at
        row = store.update_campaign(
            "a", "c1", start_at=at(60), provider="echo", provider_campaign_id="pc1", error="boom"
        )
        assert (row.status, row.spec, row.start_at) == (CampaignStatus.RUNNING, {"c": 3}, at(60))
        assert (row.provider, row.provider_campaign_id, row.error) == ("echo", "pc1", "boom")
        row = store.update_campaign("a", "c1", provider_campaign_id="", error="")
        assert (row.provider_campaign_id, row.error) == ("", "")
        assert store.get_campaign("a", "c1") == row
        with pytest.raises(NotFound):
            store.update_campaign("a", "nope", status=CampaignStatus.PAUSED)

    def test_update_campaign_only_from_the_given_statuses(self, store: Store) -> None:
        """``if_status``: the update applies only while the campaign's status is one of them
        (one statement or lock: no other writer between the check and the write); otherwise
        nothing changes and the row is returned as stored."""
        store.create_campaign(make_campaign("c1"))
        store.update_campaign("a", "c1", status=CampaignStatus.RUNNING)
        before = store.get_campaign("a", "c1")
        done = frozenset({CampaignStatus.COMPLETED, CampaignStatus.FAILED})
        row = store.update_campaign("a", "c1", status=CampaignStatus.SCHEDULED, error="x", if_status=done)
        assert row == before == store.get_campaign("a", "c1")  # running: untouched
        store.update_campaign("a", "c1", status=CampaignStatus.COMPLETED)
        row = store.update_campaign("a", "c1", status=CampaignStatus.SCHEDULED, if_status=done)
        assert row.status is CampaignStatus.SCHEDULED and store.get_campaign("a", "c1") == row
        with pytest.raises(NotFound):
            store.update_campaign("a", "nope", status=CampaignStatus.SCHEDULED, if_status=done)

    def test_recipients_add_page_and_filter(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        rows = [
            RecipientRow(
                seq=i,
                phone=f"+23480{i:08d}",
                state=RecipientState.SKIPPED if i % 5 == 0 else RecipientState.PENDING,
                fields={"name": f"N{i}", "x": "é"},
                reason="invalid" if i % 5 == 0 else None,
                segments=1,
                provider="echo",
            )
            for i in range(1, 1201)
        ]
        store.add_recipients("a", "c1", rows)
        store.add_recipients("a", "c1", [])
        everyone = store.recipients("a", "c1", limit=5000)
        assert [r.seq for r in everyone] == list(range(1, 1201))
        ids = [r.id for r in everyone]
        assert all(isinstance(i, int) for i in ids) and ids == sorted(set(ids))
        first = everyone[0]
        assert first.fields == {"name": "N1", "x": "é"} and first.phone == "+2348000000001"
        assert (first.segments, first.provider, first.message_id) == (1, "echo", None)
        paged: list[int] = []
        after = 0
        while page := store.recipients("a", "c1", states=[RecipientState.PENDING], after_id=after, limit=250):
            paged.extend(r.seq for r in page)
            after = page[-1].id or 0
        assert paged == [i for i in range(1, 1201) if i % 5]
        skipped = store.recipients("a", "c1", states=[RecipientState.SKIPPED, RecipientState.FAILED])
        assert [r.seq for r in skipped] == list(range(5, 1201, 5)) and skipped[0].reason == "invalid"
        assert store.recipients("a", "c1", states=[]) == []
        assert store.recipients("a", "c1", limit=0) == []
        assert store.recipients("a", "other") == []
        assert store.recipient_counts("a", "c1") == {
            (RecipientState.PENDING, None): 960,
            (RecipientState.SKIPPED, "invalid"): 240,
        }
        assert store.delete_recipients("a", "c1") == 1200
        assert store.recipients("a", "c1") == [] and store.recipient_counts("a", "c1") == {}
        assert store.delete_recipients("a", "c1") == 0

    def test_claim_and_update_recipients(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        store.add_recipients(
            "a",
            "c1",
            [
                RecipientRow(seq=i, phone=f"+2348000000{i:03d}", state=RecipientState.PENDING)
                for i in range(10)
            ],
        )
        names = iter(f"msg{i}" for i in range(100))
        first = store.claim_recipients("a", "c1", 4, lambda: next(names))
        assert [r.seq for r in first] == [0, 1, 2, 3]
        assert all(r.state is RecipientState.SENDING for r in first)
        assert [r.message_id for r in first] == ["msg0", "msg1", "msg2", "msg3"]
        stored = store.recipients("a", "c1", states=[RecipientState.SENDING])
        assert [(r.seq, r.message_id) for r in stored] == [(r.seq, r.message_id) for r in first]
        ids = [r.id or 0 for r in first]
        store.update_recipients(
            "a",
            "c1",
            [
                RecipientUpdate(ids[0], RecipientState.SENT),
                RecipientUpdate(ids[1], RecipientState.FAILED, reason="E1", detail="bad"),
                RecipientUpdate(ids[2], RecipientState.UNKNOWN, reason="unknown_outcome"),
                RecipientUpdate(ids[3], RecipientState.PENDING, message_id=""),
            ],
        )
        store.update_recipients("a", "c1", [])
        store.update_recipients(
            "a", "c1", [RecipientUpdate(ids[1], RecipientState.FAILED)]
        )  # None: unchanged
        by_id = {r.id: r for r in store.recipients("a", "c1")}
        assert (by_id[ids[0]].state, by_id[ids[0]].message_id) == (RecipientState.SENT, "msg0")
        assert (by_id[ids[1]].state, by_id[ids[1]].reason, by_id[ids[1]].detail) == (
            RecipientState.FAILED,
            "E1",
            "bad",
        )
        # back to pending: no message id, no owner
        assert (by_id[ids[3]].state, by_id[ids[3]].message_id, by_id[ids[3]].owner) == (
            RecipientState.PENDING, None, None)
        # The re-queued recipient (lowest pending id) is claimed first again.
        second = store.claim_recipients("a", "c1", 100, lambda: next(names))
        assert [r.seq for r in second] == [3, 4, 5, 6, 7, 8, 9]
        assert store.claim_recipients("a", "c1", 100, lambda: next(names)) == []
        assert store.claim_recipients("a", "c1", 0, lambda: next(names)) == []
        counts = store.recipient_counts("a", "c1")
        assert counts[(RecipientState.SENDING, None)] == 7
        assert counts[(RecipientState.FAILED, "E1")] == 1
        assert counts[(RecipientState.UNKNOWN, "unknown_outcome")] == 1
        assert sum(counts.values()) == 10

    def test_an_update_guarded_by_a_message_applies_only_while_the_recipient_holds_it(self, store: Store) -> None:
        """``RecipientUpdate.if_message``: a verdict about one message never undoes what
        happened to its recipient since (put back, claimed again with another message)."""
        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=f"+2348000000{i:03d}", state=RecipientState.PENDING) for i in range(4)])
        names = iter(f"m{i}" for i in range(100))
        claimed = store.claim_recipients("a", "c1", 4, lambda: next(names), owner="r1")
        ids = [r.id or 0 for r in claimed]
        store.update_recipients("a", "c1", [RecipientUpdate(i, RecipientState.UNKNOWN) for i in ids])
        # recipient 0 was put back and claimed again (message m4) before the stale verdicts arrive
        store.update_recipients("a", "c1", [RecipientUpdate(ids[0], RecipientState.PENDING, if_message="m0")])
        (again,) = store.claim_recipients("a", "c1", 1, lambda: next(names), owner="r2")
        assert (again.id, again.message_id) == (ids[0], "m4")
        store.update_recipients("a", "c1", [  # unguarded updates of one call go first
            RecipientUpdate(ids[0], RecipientState.PENDING, if_message="m0"),  # stale: skipped
            RecipientUpdate(ids[1], RecipientState.SENT, if_message="m1"),  # still holds m1: applied
            RecipientUpdate(ids[2], RecipientState.PENDING, if_message="m9"),  # another message: skipped
            RecipientUpdate(ids[3], RecipientState.FAILED, reason="E"),
        ])
        store.write_log("a", LogWrite(recipients=[("c1", RecipientUpdate(ids[3], RecipientState.PENDING,
                                                                         if_message="m0"))]))  # skipped too
        by_id = {r.id: r for r in store.recipients("a", "c1")}
        assert [(by_id[i].state, by_id[i].message_id) for i in ids] == [
            (RecipientState.SENDING, "m4"), (RecipientState.SENT, "m1"), (RecipientState.UNKNOWN, "m2"),
            (RecipientState.FAILED, "m3")]
        assert by_id[ids[0]].owner == "r2"

    def test_update_recipients_returns_how_many_guarded_updates_applied(self, store: Store) -> None:
        """``update_recipients`` returns how many of its guarded updates (``if_message``) applied, so
        ``retry_failed()`` / ``retry_unknown()`` can say how many they put back, not how many they
        read (another put-back or a run meanwhile changed some). Unguarded updates are not counted."""
        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=f"+2348000000{i:03d}", state=RecipientState.PENDING) for i in range(5)])
        names = iter(f"m{i}" for i in range(100))
        ids = [r.id or 0 for r in store.claim_recipients("a", "c1", 5, lambda: next(names), owner="r1")]
        assert store.update_recipients("a", "c1", []) == 0
        assert store.update_recipients("a", "c1", [
            RecipientUpdate(i, RecipientState.FAILED, reason="E") for i in ids]) == 0  # unguarded: not counted
        assert store.update_recipients("a", "c1", [
            RecipientUpdate(ids[0], RecipientState.PENDING, if_message="m0"),  # applied
            RecipientUpdate(ids[1], RecipientState.PENDING, if_message="m9"),  # another message: skipped
            RecipientUpdate(ids[2], RecipientState.PENDING, if_message="m2"),  # applied
            RecipientUpdate(ids[3], RecipientState.UNKNOWN, if_message="m3", if_sending=True),  # failed: skipped
            RecipientUpdate(ids[4], RecipientState.SENT),  # unguarded
        ]) == 2
        # the same put-back again: nothing holds m0 / m2 any more
        assert store.update_recipients("a", "c1", [
            RecipientUpdate(ids[0], RecipientState.PENDING, if_message="m0"),
            RecipientUpdate(ids[2], RecipientState.PENDING, if_message="m2")]) == 0
        assert store.update_recipients("other", "c1", [
            RecipientUpdate(ids[1], RecipientState.PENDING, if_message="m1")]) == 0  # another tenant's: none
        assert store.update_recipients("a", "c1", [
            RecipientUpdate(ids[1], RecipientState.PENDING, if_message="m1")]) == 1

    def test_an_unknown_answer_never_undoes_another_runner_s_verdict_on_its_recipient(self, store: Store) -> None:
        """``RecipientUpdate.if_sending``: a runner paused past its lease whose request's
        answer ends ``unknown`` long after, once another runner took its claim over and found
        the message at the vendor (``sent``), left the recipient ``unknown`` beside a message
        with the vendor's status: the next resolution read that status (``undelivered``) as
        the send's answer, ``failed``, though the vendor had it (tests/test_verify6.py). The
        ``unknown`` answer applies only while the recipient is still claimed with its message."""
        from smsgate.core.deliver import recipient_update
        from smsgate.models import SendResult

        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=f"+2348000000{i:03d}", state=RecipientState.PENDING) for i in range(3)])
        names = iter(f"m{i}" for i in range(100))
        claimed = store.claim_recipients("a", "c1", 3, lambda: next(names), owner="r1")
        ids = [r.id or 0 for r in claimed]
        # another runner settled recipient 0 (found: sent) and 1 (put back, claimed again: m3)
        store.update_recipients("a", "c1", [RecipientUpdate(ids[0], RecipientState.SENT, if_message="m0"),
                                            RecipientUpdate(ids[1], RecipientState.PENDING, if_message="m1")])
        store.claim_recipients("a", "c1", 1, lambda: next(names), owner="r2")
        late = [("c1", recipient_update(Claim("c1", i, "r1"), SendResult(
            message_id=f"m{n}", to="+2348000000000", status=Status.UNKNOWN, provider="p", error="ReadTimeout")))
            for n, i in enumerate(ids)]
        store.write_log("a", LogWrite(recipients=late))
        by_id = {r.id: r for r in store.recipients("a", "c1")}
        assert [(by_id[i].state, by_id[i].message_id) for i in ids] == [
            (RecipientState.SENT, "m0"), (RecipientState.SENDING, "m3"), (RecipientState.UNKNOWN, "m2")]
        assert by_id[ids[2]].reason == "unknown_outcome"

    def test_an_unknown_verdict_applies_to_an_unknown_recipient_and_never_over_a_settled_one(
            self, store: Store) -> None:
        """``RecipientUpdate.if_sending`` lets an ``unknown`` verdict through while the recipient
        is ``sending`` or ``unknown`` with its message, never once it is settled: a runner stopped
        while its look-up of an ``unknown`` recipient was at the vendor, continued after another
        runner found the message there (``sent``), wrote "cannot tell" over it, and its next
        look-up read the vendor's ``undelivered`` as ``failed`` (tests/test_verify9.py)."""
        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=f"+2348000000{i:03d}", state=RecipientState.PENDING) for i in range(3)])
        names = iter(f"m{i}" for i in range(100))
        ids = [r.id or 0 for r in store.claim_recipients("a", "c1", 3, lambda: next(names), owner="r1")]
        store.update_recipients("a", "c1", [
            RecipientUpdate(i, RecipientState.UNKNOWN, reason="unknown_outcome", if_message=f"m{n}")
            for n, i in enumerate(ids)])
        # another runner found m0 (sent) and m1 never received (pending again); m2 is still unknown
        store.update_recipients("a", "c1", [RecipientUpdate(ids[0], RecipientState.SENT, if_message="m0"),
                                            RecipientUpdate(ids[1], RecipientState.PENDING, if_message="m1")])
        stale = [("c1", RecipientUpdate(i, RecipientState.UNKNOWN, reason="unresolved", if_message=f"m{n}",
                                        if_sending=True)) for n, i in enumerate(ids)]
        store.write_log("a", LogWrite(recipients=stale))
        by_id = {r.id: r for r in store.recipients("a", "c1")}
        assert [by_id[i].state for i in ids] == [RecipientState.SENT, RecipientState.PENDING, RecipientState.UNKNOWN]
        assert by_id[ids[2]].reason == "unresolved"

    def test_a_large_claim_gives_every_row_its_message_id_and_owner(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=f"+23480{i:08d}", state=RecipientState.PENDING,
                         fields={"name": f"N{i}"} if i % 3 else {}) for i in range(150)])
        claimed = store.claim_recipients("a", "c1", 149, lambda c=itertools.count(): f"m{next(c)}", owner="me")
        assert [(r.seq, r.message_id, r.owner, r.state) for r in claimed] == [
            (i, f"m{i}", "me", RecipientState.SENDING) for i in range(149)]
        stored = {r.seq: r for r in store.recipients("a", "c1")}
        assert [(stored[i].state, stored[i].message_id, stored[i].owner) for i in range(150)] == [
            (RecipientState.SENDING, f"m{i}", "me") for i in range(149)] + [(RecipientState.PENDING, None, None)]
        assert [stored[i].fields for i in range(4)] == [{}, {"name": "N1"}, {"name": "N2"}, {}]
        assert [r.fields for r in claimed[:3]] == [{}, {"name": "N1"}, {"name": "N2"}]

    def test_concurrent_claims_never_share_a_recipient(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        store.add_recipients(
            "a",
            "c1",
            [RecipientRow(seq=i, phone=f"+23480{i:08d}", state=RecipientState.PENDING) for i in range(400)],
        )
        claimed: list[int] = []
        lock = threading.Lock()
        counter = itertools.count()
        barrier = threading.Barrier(8, timeout=60)  # a party that never came: an error, not a hang

        def run() -> None:
            barrier.wait()
            while rows := store.claim_recipients("a", "c1", 7, lambda: f"m{next(counter)}"):
                with lock:
                    claimed.extend(r.seq for r in rows)

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claimed) == list(range(400))

    # ------------------------------------------------------- exactly-once dispatch
    def test_add_recipients_deduplicates_by_key_first_row_wins(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        rows = [
            RecipientRow(seq=1, phone=phone(1), state=RecipientState.PENDING, line=2, key=phone(1)),
            RecipientRow(seq=2, phone="bad", state=RecipientState.SKIPPED, reason="invalid", line=3),
            RecipientRow(seq=3, phone=phone(1), state=RecipientState.PENDING, line=4, key=phone(1)),
            RecipientRow(seq=4, phone="bad", state=RecipientState.SKIPPED, reason="invalid", line=5),
            RecipientRow(seq=5, phone=phone(2), state=RecipientState.PENDING, line=6, key=phone(2)),
        ]
        assert store.add_recipients("a", "c1", rows) == [Duplicate(2, 2)]
        # a later batch: keys of earlier batches count, rows without a key never conflict
        later = [
            RecipientRow(seq=6, phone=phone(2), state=RecipientState.PENDING, line=7, key=phone(2)),
            RecipientRow(seq=7, phone=phone(3), state=RecipientState.PENDING, line=8, key=phone(3)),
            RecipientRow(seq=8, phone=phone(3), state=RecipientState.SKIPPED, reason="duplicate", line=9),
        ]
        assert store.add_recipients("a", "c1", later) == [Duplicate(0, 6)]
        stored = store.recipients("a", "c1")
        assert [(r.seq, r.line, r.key) for r in stored] == [
            (1, 2, phone(1)), (2, 3, None), (4, 5, None), (5, 6, phone(2)), (7, 8, phone(3)), (8, 9, None)]
        # another campaign (or tenant) has keys of its own
        store.create_campaign(make_campaign("c2"))
        assert store.add_recipients("a", "c2", rows[:1]) == []
        assert store.add_recipients("b", "c1", rows[:1]) == []
        assert store.add_recipients("a", "c1", []) == []

    def test_add_recipients_large_batches_report_every_duplicate(self, store: Store) -> None:
        """Batches larger than one statement (SQLite: a few thousand rows an INSERT), with repeats
        across the statements and of earlier batches, and a batch whose every row is a repeat:
        each duplicate is reported with the first row's line and stored as ``on_duplicate`` says."""
        store.create_campaign(make_campaign("c1"))

        def row(seq: int, number: int) -> RecipientRow:
            return RecipientRow(seq=seq, phone=phone(number), state=RecipientState.PENDING, fields={"n": str(seq)},
                                line=seq + 1, key=phone(number))

        def skipped(r: RecipientRow, first: int | None) -> RecipientRow:
            return RecipientRow(r.seq, r.phone, RecipientState.SKIPPED, r.fields, "duplicate", f"first {first}",
                                line=r.line)

        n = 7000  # three statements of SQLite's multi-row INSERT
        first = [row(i, i if i % 3 else i // 3) for i in range(n)]  # every third row repeats an earlier number
        dups = store.add_recipients("a", "c1", first, skipped)
        want = [Duplicate(i, i // 3 + 1) for i in range(3, n, 3) if i // 3 % 3]
        assert dups == want
        second = [row(n + k, number) for k, number in enumerate((n + 1, 5, n + 1, n + 2))]
        assert store.add_recipients("a", "c1", second, skipped) == [Duplicate(1, 6), Duplicate(2, n + 1)]
        again = [row(n + 10 + k, number) for k, number in enumerate((5, 7))]
        assert store.add_recipients("a", "c1", again, skipped) == [Duplicate(0, 6), Duplicate(1, 8)]
        stored = {r.seq: r for r in store.recipients("a", "c1", limit=20_000)}
        assert sorted(stored) == [r.seq for r in first + second + again]
        reported = {r.seq for r in first if r.seq in {d.index for d in dups}} | {n + 1, n + 2, n + 10, n + 11}
        for seq, r in stored.items():
            if seq in reported:
                assert (r.state, r.reason, r.key, r.fields) == (RecipientState.SKIPPED, "duplicate", None,
                                                                {"n": str(seq)}), seq
            else:
                assert (r.state, r.key, r.line, r.fields) == (RecipientState.PENDING, r.phone, seq + 1,
                                                              {"n": str(seq)}), seq

    def test_claims_have_owners_and_only_dead_runners_lose_them(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=phone(i), state=RecipientState.PENDING) for i in range(9)])
        ids = iter(f"m{i}" for i in range(100))
        now = datetime.now(timezone.utc)
        store.start_runner("a", "c1", "live", now + timedelta(seconds=30))
        store.start_runner("a", "c1", "dead", now - timedelta(seconds=1))  # its lease ran out
        live = store.claim_recipients("a", "c1", 3, lambda: next(ids), owner="live")
        dead = store.claim_recipients("a", "c1", 3, lambda: next(ids), owner="dead")
        legacy = store.claim_recipients("a", "c1", 1, lambda: next(ids))  # claimed without an owner
        assert [r.owner for r in live + dead + legacy] == ["live"] * 3 + ["dead"] * 3 + [None]
        assert set(store.runner_leases("a", "c1")) == {"live", "dead"}
        # a new runner takes over the dead runner's and the owner-less claims, never the live ones
        store.start_runner("a", "c1", "new", now + timedelta(seconds=30))
        taken = store.recover_claims("a", "c1", "new", now, 100)
        assert sorted(r.seq for r in taken) == [3, 4, 5, 6]
        assert {r.owner for r in taken} == {"new"} and {r.message_id for r in taken} == {"m3", "m4", "m5", "m6"}
        # the runner gone lost its lease row with its claims: were it only paused, it learns it
        assert set(store.runner_leases("a", "c1")) == {"live", "new"}
        assert not store.renew_runner("a", "c1", "dead", now + timedelta(seconds=60))
        assert store.recover_claims("a", "c1", "other", now, 100) == []  # "new" is alive
        assert store.recover_claims("a", "c1", "new", now, 100) == []  # never its own claims
        # the live runner stops (or its lease runs out): then its claims can be taken
        assert store.renew_runner("a", "c1", "live", now + timedelta(seconds=60))
        assert store.recover_claims("a", "c1", "new", now + timedelta(seconds=59), 100) == []
        store.stop_runner("a", "c1", "live")
        assert not store.renew_runner("a", "c1", "live", now + timedelta(seconds=60))
        assert sorted(r.seq for r in store.recover_claims("a", "c1", "new", now, 2)) == [0, 1]
        assert set(store.runner_leases("a", "c1")) == {"new"}
        assert store.recover_claims("b", "c1", "x", now, 100) == []  # tenant-scoped

    def test_recovering_some_claims_touches_only_those(self, store: Store) -> None:
        """A recovery taking part of a dead runner's claims (``limit``) moves exactly those
        rows (the lowest ids) to the new owner; the others, another campaign's and another
        tenant's claims of the same dead runner keep their owner, state and message."""
        now = datetime.now(timezone.utc)
        for tenant in ("a", "b"):
            for cid in ("c1", "c2"):
                store.create_campaign(make_campaign(cid, tenant=tenant))
                store.add_recipients(tenant, cid, [
                    RecipientRow(seq=i, phone=phone(i), state=RecipientState.PENDING) for i in range(6)])
                store.start_runner(tenant, cid, "dead", now - timedelta(seconds=1))
                new_id = iter([f"{tenant}-{cid}-m{i}" for i in range(6)]).__next__
                store.claim_recipients(tenant, cid, 6, new_id, owner="dead")
        store.start_runner("a", "c1", "new", now + timedelta(seconds=30))

        def held(tenant: str, cid: str) -> list[tuple[int, str, str | None, str | None]]:
            return [(r.seq, r.state.value, r.owner, r.message_id) for r in store.recipients(tenant, cid)]

        before = {(t, c): held(t, c) for t in ("a", "b") for c in ("c1", "c2")}
        taken = store.recover_claims("a", "c1", "new", now, 2)
        assert [(r.seq, r.owner, r.message_id) for r in taken] == [(0, "new", "a-c1-m0"), (1, "new", "a-c1-m1")]
        assert held("a", "c1") == [(s, "sending", "new" if s < 2 else "dead", m) for s, _, _, m in before[("a", "c1")]]
        for key in (("a", "c2"), ("b", "c1"), ("b", "c2")):
            assert held(*key) == before[key]
            assert "dead" in store.runner_leases(*key)  # its lease on the others' claims kept
        assert set(store.runner_leases("a", "c1")) == {"new"}
        rest = store.recover_claims("a", "c1", "new", now, 100)
        assert [r.seq for r in rest] == [2, 3, 4, 5]
        assert {r.owner for r in store.recipients("a", "c1")} == {"new"}
        assert held("b", "c1") == before[("b", "c1")]

    def test_write_log_binds_keys_fences_claims_and_orders_writes(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=phone(i), state=RecipientState.PENDING) for i in range(3)])
        ids = iter(["r0", "r1", "r2"])
        claimed = store.claim_recipients("a", "c1", 3, lambda: next(ids), owner="me")
        # recipient 2 was taken over by another runner meanwhile
        store.update_recipients("a", "c1", [RecipientUpdate(claimed[2].id or 0, RecipientState.PENDING)])
        store.write_log("a", LogWrite(inserts=[make_record("k0")], keys={"k0": "key-1"}))
        write = LogWrite(
            inserts=[make_record("k1"), make_record("r0", campaign_id="c1"), make_record("r1", campaign_id="c1"),
                     make_record("r2", campaign_id="c1"), make_record("k2")],
            keys={"k1": "key-1", "k2": "key-2"},
            claims={m: Claim("c1", r.id or 0, "me") for m, r in zip(["r0", "r1", "r2"], claimed, strict=True)},
            # answers for messages inserted by this very write come after the inserts
            updates=[update("r0", Status.SUBMITTED, 1, provider="echo", provider_message_id="p0")],
            recipients=[("c1", RecipientUpdate(claimed[0].id or 0, RecipientState.SENT))],
        )
        result = store.write_log("a", write)
        assert result.replays == {"k1": "k0"} and result.lost == {"r2"}
        with pytest.raises(NotFound):
            store.get_message("a", "k1")
        with pytest.raises(NotFound):
            store.get_message("a", "r2")
        assert store.get_message("a", "k2").status is Status.QUEUED
        got = store.get_message("a", "r0")
        assert (got.status, got.provider_message_id) == (Status.SUBMITTED, "p0")
        assert store.get_message("a", "r1").status is Status.QUEUED
        states = {r.seq: r.state for r in store.recipients("a", "c1")}
        assert states == {0: RecipientState.SENT, 1: RecipientState.SENDING, 2: RecipientState.PENDING}
        assert not LogWrite() and store.write_log("a", LogWrite()).replays == {}
        # the key is bound for good; another tenant has keys of its own
        assert store.claim_idempotency_key("a", "key-2", "zz") == "k2"
        assert store.write_log("b", LogWrite(inserts=[make_record("k1", tenant="b")], keys={"k1": "key-1"})).replays == {}

    def test_write_log_reads_the_optouts_of_its_rechecks_in_its_transaction(self, store: Store) -> None:
        """A write's :class:`Recheck` is given the opt-outs of its numbers as committed when the
        write's transaction reads them (another tenant's never), and what it refuses replaces
        those inserts, with their recipient updates: the others are written as given, a lost
        claim stays lost, a refused message's key is bound to its refusal."""
        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=phone(i), state=RecipientState.PENDING) for i in range(4)])
        ids = iter(["r0", "r1", "r2", "r3"])
        claimed = store.claim_recipients("a", "c1", 4, lambda: next(ids), owner="me")
        store.update_recipients("a", "c1", [RecipientUpdate(claimed[3].id or 0, RecipientState.PENDING)])
        store.add_optouts("a", [OptOut(phone=phone(1)), OptOut(phone=phone(3)), OptOut(phone=phone(9), scope="ACME")])
        store.add_optouts("b", [OptOut(phone=phone(0))])
        seen: list[dict[str, set[str]]] = []

        def refuser(own: Sequence[int]) -> Callable[[Mapping[str, set[str]]], LogWrite]:
            def refuse(scopes: Mapping[str, set[str]]) -> LogWrite:  # those of ``own`` opted out
                seen.append({k: set(v) for k, v in scopes.items()})
                out = LogWrite()
                for i in own:
                    if phone(i) in scopes and i < 4:
                        out.inserts.append(make_record(f"r{i}", status=Status.REJECTED, campaign_id="c1"))
                        out.recipients.append(("c1", RecipientUpdate(claimed[i].id or 0, RecipientState.SKIPPED,
                                                                     reason="opted_out", if_message=f"r{i}")))
                    elif phone(i) in scopes:
                        out.inserts.append(make_record(f"k{i}", status=Status.REJECTED))
                return out
            return refuse

        write = LogWrite(
            inserts=[make_record(f"r{i}", campaign_id="c1") for i in range(4)] + [make_record("k9")],
            keys={"k9": "key-9"},
            claims={f"r{i}": Claim("c1", claimed[i].id or 0, "me") for i in range(4)},
            rechecks=[Recheck({phone(i) for i in range(4)}, refuser(range(4))), Recheck({phone(9)}, refuser([9]))],
        )
        result = store.write_log("a", write)
        acme = OptOut(phone=phone(9), scope="ACME").scope  # (as stored)
        assert seen == [{phone(1): {"*"}, phone(3): {"*"}, phone(9): {acme}}] * 2  # both, of one read
        assert result.refused == {"r1", "r3", "k9"} and result.lost == {"r3"}
        assert {m: store.get_message("a", m).status for m in ("r0", "r1", "r2", "k9")} == {
            "r0": Status.QUEUED, "r1": Status.REJECTED, "r2": Status.QUEUED, "k9": Status.REJECTED}
        with pytest.raises(NotFound):
            store.get_message("a", "r3")
        states = {r.seq: (r.state, r.reason) for r in store.recipients("a", "c1")}
        assert states == {0: (RecipientState.SENDING, None), 1: (RecipientState.SKIPPED, "opted_out"),
                          2: (RecipientState.SENDING, None), 3: (RecipientState.PENDING, None)}
        assert store.claim_idempotency_key("a", "key-9", "zz") == "k9"
        assert write.inserts[1].status is Status.QUEUED  # the write given is left as it was
        # nothing opted out: the write goes in as given, its recheck told of no number
        seen.clear()
        again = store.write_log("a", LogWrite(inserts=[make_record("k5")], rechecks=[Recheck({phone(5)}, refuser([5]))]))
        assert again.refused == set() and store.get_message("a", "k5").status is Status.QUEUED
        assert seen in ([], [{}])

    def test_write_log_applies_the_refusals_of_a_write_of_rechecks_alone_as_updates(self, store: Store) -> None:
        """A write of rechecks alone (messages logged ahead already, failed over to a provider
        whose limits they waited for): what a recheck refuses is an update of its logged
        message, applied in the write's transaction and named in ``refused``; the others, and
        another tenant's opt-outs, change nothing."""
        store.write_log("a", LogWrite(inserts=[make_record("m1", to=phone(1)), make_record("m2", to=phone(2))]))
        store.add_optouts("a", [OptOut(phone=phone(1))])
        store.add_optouts("b", [OptOut(phone=phone(2))])

        def refuse(scopes: Mapping[str, set[str]]) -> LogWrite:
            out = LogWrite()
            for mid, i in (("m1", 1), ("m2", 2)):
                if phone(i) in scopes:
                    out.updates.append(MessageUpdate(mid, Status.REJECTED, at(5), raw_status="opted_out",
                                                     source="gateway", error="opted out"))
            return out

        result = store.write_log("a", LogWrite(rechecks=[Recheck({phone(1), phone(2)}, refuse)]))
        assert result.refused == {"m1"}
        m1, m2 = store.get_message("a", "m1"), store.get_message("a", "m2")
        assert (m1.status, m1.raw_status, m2.status) == (Status.REJECTED, "opted_out", Status.QUEUED)

    def test_write_log_events_follow_their_messages_past_lost_claims_and_replays(self, store: Store) -> None:
        """Messages left out of a write (a lost claim, a replayed key) take no other message's
        history with them: each message written has its own first event."""
        store.create_campaign(make_campaign("c1"))
        store.add_recipients("a", "c1", [
            RecipientRow(seq=i, phone=phone(i), state=RecipientState.PENDING) for i in range(3)])
        ids = iter(["r0", "r1", "r2"])
        claimed = store.claim_recipients("a", "c1", 3, lambda: next(ids), owner="me")
        store.update_recipients("a", "c1", [RecipientUpdate(claimed[1].id or 0, RecipientState.PENDING)])
        store.write_log("a", LogWrite(inserts=[make_record("k0")], keys={"k0": "key-1"}))

        def new(mid: str, status: Status, **fields: Any) -> MessageRecord:
            return make_record(mid, status=status, history=[StatusEvent(status=status, at=at(0), source=mid)],
                               **fields)

        result = store.write_log("a", LogWrite(
            inserts=[new("k1", Status.QUEUED), new("r0", Status.QUEUED, campaign_id="c1"),
                     new("r1", Status.QUEUED, campaign_id="c1"), new("r2", Status.REJECTED, campaign_id="c1"),
                     new("k2", Status.FAILED)],
            keys={"k1": "key-1", "k2": "key-2"},
            claims={m: Claim("c1", r.id or 0, "me") for m, r in zip(["r0", "r1", "r2"], claimed, strict=True)},
        ))
        assert result.replays == {"k1": "k0"} and result.lost == {"r1"}
        got = {m: [(e.status, e.source) for e in store.get_message("a", m).history] for m in ("r0", "r2", "k2")}
        assert got == {"r0": [(Status.QUEUED, "r0")], "r2": [(Status.REJECTED, "r2")],
                       "k2": [(Status.FAILED, "k2")]}

    def test_write_log_gives_new_messages_their_first_event(self, store: Store) -> None:
        """A message entering the log has one history event, its first status (what
        ``NewMessage.history`` says), whatever else the write or earlier writes hold."""
        store.insert_messages([make_record("old", history=[StatusEvent(status=Status.QUEUED, at=at(0), source="x")])])
        first = NewMessage("a", "n1", "+2348012345678", Status.QUEUED, at(1), sender="ACME", campaign_id="c1")
        refused = NewMessage("a", "n2", "+2348012345679", Status.REJECTED, at(2).astimezone(WAT),
                             raw_status="invalid_text", error="cannot encode the text")
        store.write_log("a", LogWrite(inserts=[first, refused], updates=[update("n1", Status.SUBMITTED, 3)]))
        store.write_log("a", LogWrite(inserts=[NewMessage("a", "n3", "+2348012345670", Status.QUEUED, at(4))]))
        assert store.get_message("a", "old").history == [StatusEvent(status=Status.QUEUED, at=at(0), source="x")]
        assert store.get_message("a", "n1").history == [
            StatusEvent(status=Status.QUEUED, at=at(1), source="gateway"),
            StatusEvent(status=Status.SUBMITTED, at=at(3))]
        got = store.get_message("a", "n2")
        assert got.history == [StatusEvent(status=Status.REJECTED, raw_status="invalid_text", at=at(2),
                                           source="gateway", detail="cannot encode the text")]
        assert (got.error, got.raw_status, got.created_at) == ("cannot encode the text", "invalid_text", at(2))
        assert [(e.status, e.at, e.source) for e in store.get_message("a", "n3").history] == [
            (Status.QUEUED, at(4), "gateway")]
        assert [e.at for e in first.history + refused.history] == [at(1), at(2)]

    # ------------------------------------------------------- orphan reports
    def test_unmatched_reports_kept_as_orphans_only_when_asked(self, store: Store) -> None:
        assert store.apply_reports("a", [report("p1", Status.DELIVERED, 2)]) == [None]
        assert store.orphan_reports("a") == []
        got = store.apply_reports("a", [report("p1", Status.DELIVERED, 2, "DELIVRD"), report(None, Status.SENT, 1),
                                        report("p2", Status.SENT, 1, provider="other")], keep_orphans=True)
        assert got == [None, None, None]
        orphans = store.orphan_reports("a")
        assert [(o.provider, o.provider_message_id, o.status, o.raw_status) for o in orphans] == [
            ("echo", "p1", Status.DELIVERED, "DELIVRD"), ("other", "p2", Status.SENT, None)]
        assert orphans[0].occurred_at == at(2)
        assert [o.provider_message_id for o in store.orphan_reports("a", provider="other")] == ["p2"]
        assert store.orphan_reports("a", limit=1)[0].provider_message_id == "p1"
        assert store.orphan_reports("b") == []

    def test_write_log_adopts_orphans_of_inserted_and_answered_messages(self, store: Store) -> None:
        store.apply_reports("a", [report("p1", Status.SENT, 1), report("p1", Status.DELIVERED, 2, "DELIVRD"),
                                  report("p2", Status.UNDELIVERED, 3)], keep_orphans=True)
        store.apply_reports("b", [report("p2", Status.DELIVERED, 3)], keep_orphans=True)
        # a message inserted with its provider id, and one answered by an update of the same write
        result = store.write_log("a", LogWrite(
            inserts=[make_record("m1", status=Status.SUBMITTED, provider="echo", provider_message_id="p1"),
                     make_record("m2")],
            updates=[update("m2", Status.SUBMITTED, 1, provider="echo", provider_message_id="p2")]))
        # the write says which reports it applied (the kernel runs smsgate_on_status for them)
        assert result.changed == {"m2"}  # and which messages its updates changed
        assert sorted((mid, r.provider_message_id, r.status) for mid, r in result.adopted) == [
            ("m1", "p1", Status.DELIVERED), ("m1", "p1", Status.SENT), ("m2", "p2", Status.UNDELIVERED)]
        again = store.write_log("a", LogWrite(updates=[update("m1", Status.DELIVERED, 4, provider="echo",
                                                              provider_message_id="p1")]))
        assert again.adopted == []  # an orphan is applied once
        assert again.changed == set()  # m1 was delivered already (by its orphan report)
        m1 = store.get_message("a", "m1")
        assert (m1.status, m1.raw_status) == (Status.DELIVERED, "DELIVRD")
        assert [e.status for e in m1.history][-2:] == [Status.SENT, Status.DELIVERED]  # in order
        assert store.get_message("a", "m2").status is Status.UNDELIVERED
        assert store.orphan_reports("a") == []
        assert [o.provider_message_id for o in store.orphan_reports("b")] == ["p2"]  # tenant b's stays

    def test_orphan_reports_repeated_apply_once(self, store: Store) -> None:
        same = report("p1", Status.DELIVERED, 2, "DELIVRD")
        store.apply_reports("a", [same, same], keep_orphans=True)
        store.write_log("a", LogWrite(inserts=[make_record("m1", status=Status.SUBMITTED, provider="echo",
                                                           provider_message_id="p1")]))
        assert [e.status for e in store.get_message("a", "m1").history].count(Status.DELIVERED) == 1

    # --------------------------------------------------------- report parts
    def test_record_parts_moves_each_part_forward_once(self, store: Store) -> None:
        def part(n: int, status: Status, pmid: str = "p1") -> DeliveryReport:
            return report(pmid, status, n, part=n, parts=2)

        assert store.record_parts("a", [report("p1", Status.SENT, 1)]) == [{}]
        assert store.record_parts("a", [part(1, Status.DELIVERED)]) == [{1: Status.DELIVERED}]
        assert store.record_parts("a", [part(1, Status.SENT), part(2, Status.SENT)]) == [
            {1: Status.DELIVERED}, {1: Status.DELIVERED, 2: Status.SENT}]
        assert store.record_parts("a", [part(2, Status.DELIVERED)]) == [{1: Status.DELIVERED, 2: Status.DELIVERED}]
        assert store.record_parts("b", [part(2, Status.SENT)]) == [{2: Status.SENT}]
        assert store.record_parts("a", [part(1, Status.SENT, "p9")]) == [{1: Status.SENT}]

    # ------------------------------------------------------- inbound messages
    def test_inbound_stored_once_per_vendor_event(self, store: Store) -> None:
        def inbound(vid: str, text: str = "STOP", provider: str = "colony", sender: str = "+27821234567",
                    seconds: float = 0) -> InboundMessage:
            return InboundMessage(provider=provider, vendor_id=vid, from_number=sender, to="ACME", text=text,
                                  received_at=at(seconds).astimezone(WAT), raw={"id": vid, "nested": [1, "x"]})

        first = store.record_inbound("a", [inbound("v1"), inbound("v2", "hello", seconds=1)])
        assert [new for _, new in first] == [True, True]
        m1, m2 = (m for m, _ in first)
        assert m1.id is not None and m2.id is not None and m1.id != m2.id
        assert (m1.tenant, m1.text, m1.to, m1.received_at, m1.raw) == (
            "a", "STOP", "ACME", at(0), {"id": "v1", "nested": [1, "x"]})
        again = store.record_inbound("a", [inbound("v1", "changed"), inbound("v1", provider="other")])
        assert [(m.id == m1.id, m.text, new) for m, new in again] == [(True, "STOP", False), (False, "STOP", True)]
        store.set_inbound_action("a", m1.id, "optout")
        store.set_inbound_action("b", m2.id, "help")  # another tenant's id: nothing happens
        listed = store.list_inbound("a")
        assert [m.vendor_id for m in listed] == ["v1", "v2", "v1"]  # newest first
        assert [m.action for m in listed] == [None, None, "optout"]
        assert [m.vendor_id for m in store.list_inbound("a", before=listed[0].id, limit=1)] == ["v2"]
        assert store.list_inbound("a", from_number="+27820000000") == []
        assert len(store.list_inbound("a", from_number="+27821234567")) == 3
        assert store.list_inbound("b") == []
        (b1, new), = store.record_inbound("b", [inbound("v1")])
        assert new and b1.tenant == "b"

    def test_an_oversized_inbound_text_is_stored_truncated_with_its_flag(self, store: Store) -> None:
        long = InboundMessage(provider="colony", vendor_id="big", from_number="+27821234567", text="x" * 25_000)
        assert (len(long.text), long.truncated) == (MAX_INBOUND_TEXT, True)
        (stored, _), (short, _) = store.record_inbound("a", [long, InboundMessage(
            provider="colony", vendor_id="small", from_number="+27821234567", text="y" * MAX_INBOUND_TEXT)])
        assert (len(stored.text), stored.truncated) == (MAX_INBOUND_TEXT, True)
        assert (len(short.text), short.truncated) == (MAX_INBOUND_TEXT, False)
        assert [m.truncated for m in store.list_inbound("a")] == [False, True]

    def test_write_log_is_one_transaction(self, store: Store) -> None:
        store.insert_messages([make_record("dup")])
        with pytest.raises(ValueError):
            store.write_log("a", LogWrite(inserts=[make_record("new"), make_record("dup")], keys={"new": "k"}))
        with pytest.raises(NotFound):
            store.get_message("a", "new")
        assert store.claim_idempotency_key("a", "k", "other") is None  # the key was not bound either

    def test_concurrent_writers_bind_a_key_once(self, store: Store) -> None:
        barrier = threading.Barrier(6, timeout=60)  # a party that never came: an error, not a hang
        results: list[Any] = []

        def run(i: int) -> None:
            barrier.wait()
            results.append(store.write_log("a", LogWrite(inserts=[make_record(f"m{i}")], keys={f"m{i}": "same"})))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [r for r in results if not r.replays]
        assert len(winners) == 1
        assert len({next(iter(r.replays.values())) for r in results if r.replays}) == 1

    def test_send_leases_per_tenant_renewed_and_ended(self, store: Store) -> None:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        until, oldest = now + timedelta(seconds=60), now - timedelta(seconds=5)
        store.put_send_lease("a", "p1", until, oldest)
        store.put_send_lease("a", "p2", now, now)
        store.put_send_lease("b", "p1", until, now)
        assert store.send_leases("a") == {"p1": (until, oldest), "p2": (now, now)}
        store.put_send_lease("a", "p1", until + timedelta(seconds=20), now)  # renewed: both move
        assert store.send_leases("a")["p1"] == (until + timedelta(seconds=20), now)
        store.end_send_lease("a", "p1")
        store.end_send_lease("a", "nobody")
        assert store.send_leases("a") == {"p2": (now, now)}
        assert store.send_leases("b") == {"p1": (until, now)} and store.send_leases("c") == {}

    def test_delete_campaign_removes_everything(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        store.create_campaign(make_campaign("c1", tenant="b"))
        store.add_recipients("a", "c1", [RecipientRow(seq=1, phone=phone(1), state=RecipientState.PENDING,
                                                      key=phone(1))])
        store.start_runner("a", "c1", "r", datetime.now(timezone.utc))
        assert store.delete_campaign("a", "c1")
        assert not store.delete_campaign("a", "c1")
        with pytest.raises(NotFound):
            store.get_campaign("a", "c1")
        assert store.recipients("a", "c1") == [] and store.runner_leases("a", "c1") == {}
        store.create_campaign(make_campaign("c1"))  # the id (and its keys) are free again
        assert store.add_recipients("a", "c1", [RecipientRow(seq=1, phone=phone(1), state=RecipientState.PENDING,
                                                             key=phone(1))]) == []
        assert store.get_campaign("b", "c1").tenant == "b"

    def test_campaign_tenant_isolation(self, store: Store) -> None:
        store.create_campaign(make_campaign("c1"))
        store.add_recipients(
            "a", "c1", [RecipientRow(seq=1, phone="+2348000000001", state=RecipientState.PENDING)]
        )
        (mine,) = store.recipients("a", "c1")
        with pytest.raises(NotFound):
            store.get_campaign("b", "c1")
        with pytest.raises(NotFound):
            store.update_campaign("b", "c1", status=CampaignStatus.CANCELLED)
        assert store.list_campaigns("b") == []
        assert store.recipients("b", "c1") == []
        assert store.recipient_counts("b", "c1") == {}
        assert store.claim_recipients("b", "c1", 10, lambda: "x") == []
        store.update_recipients(
            "b", "c1", [RecipientUpdate(mine.id or 0, RecipientState.SKIPPED, reason="hack")]
        )
        assert store.delete_recipients("b", "c1") == 0
        assert store.recipients("a", "c1") == [mine]
        assert store.get_campaign("a", "c1").status is CampaignStatus.DRAFT
        store.create_campaign(make_campaign("c1", tenant="b"))  # b may reuse the id
        assert store.get_campaign("b", "c1").tenant == "b"

    # -------------------------------------------------------- contact lists
    def test_contact_list_round_trip(self, store: Store) -> None:
        created = datetime(2026, 1, 1, 13, 0, tzinfo=WAT)
        store.create_contact_list(
            ContactListRow(tenant="a", list_id="l1", name="VIP", created_at=created, description="VIP customers")
        )
        with pytest.raises(ValidationError, match="'l1' already exists for tenant 'a'") as info:
            store.create_contact_list(make_list("l1"))
        assert info.value.field == "list_id" and isinstance(info.value, ValueError)
        got = store.get_contact_list("a", "l1")
        assert (got.tenant, got.list_id, got.name, got.description, got.size) == ("a", "l1", "VIP", "VIP customers", 0)
        assert got.created_at == created and is_utc(got.created_at)
        assert store.list_contacts("a", "l1") == []

        fields = {"tier": "gold", "greeting": "Ẹ kú àárọ̀ 👋", "quote": 'a"b\\c\t'}
        added = store.add_contacts("a", "l1", [
            Contact(phone=phone(1), name="Ada", fields=fields),
            Contact(phone=phone(2), name="Bayo"),
            Contact(phone=phone(1), name="Ada L", fields={"tier": "platinum"}),  # same phone: the last wins
        ])
        assert added == 2
        contacts = store.list_contacts("a", "l1")
        assert [(c.phone, c.name, c.fields) for _, c in contacts] == [
            (phone(1), "Ada L", {"tier": "platinum"}),
            (phone(2), "Bayo", {}),
        ]
        (id1, _), (id2, _) = contacts
        assert id1 < id2
        # An update keeps the contact's id and place; only new phones count.
        assert store.add_contacts("a", "l1", [Contact(phone=phone(2), name="B", fields=fields),
                                              Contact(phone=phone(3))]) == 1
        assert store.add_contacts("a", "l1", []) == 0
        contacts = store.list_contacts("a", "l1")
        assert [(i, c.phone, c.name, c.fields) for i, c in contacts[:2]] == [
            (id1, phone(1), "Ada L", {"tier": "platinum"}),
            (id2, phone(2), "B", fields),
        ]
        assert [(c.phone, c.name, c.fields) for _, c in contacts[2:]] == [(phone(3), None, {})]
        assert contacts[2][0] > id2
        assert store.get_contact_list("a", "l1").size == 3

        # Keyset paging.
        assert [c.phone for _, c in store.list_contacts("a", "l1", after_id=id1, limit=1)] == [phone(2)]
        assert [c.phone for _, c in store.list_contacts("a", "l1", after_id=id2)] == [phone(3)]
        assert store.list_contacts("a", "l1", limit=0) == []

        # Removal: by phone, each once; unknown phones and lists remove nothing.
        assert store.remove_contacts("a", "l1", [phone(2), phone(2), phone(9)]) == 1
        assert store.remove_contacts("a", "l1", []) == 0
        assert store.remove_contacts("a", "nope", [phone(1)]) == 0
        assert [c.phone for _, c in store.list_contacts("a", "l1")] == [phone(1), phone(3)]
        assert store.get_contact_list("a", "l1").size == 2
        # A removed phone added again is a new contact (at the end).
        assert store.add_contacts("a", "l1", [Contact(phone=phone(2))]) == 1
        assert [c.phone for _, c in store.list_contacts("a", "l1")] == [phone(1), phone(3), phone(2)]

        # Deletion takes the contacts with it; the id may be used again.
        assert store.delete_contact_list("a", "l1") is True
        assert store.delete_contact_list("a", "l1") is False
        with pytest.raises(NotFound):
            store.get_contact_list("a", "l1")
        with pytest.raises(NotFound):
            store.list_contacts("a", "l1")
        with pytest.raises(NotFound):
            store.add_contacts("a", "l1", [Contact(phone=phone(1))])
        store.create_contact_list(make_list("l1"))
        assert store.get_contact_list("a", "l1").size == 0
        assert store.list_contacts("a", "l1") == []

    def test_contact_lists_newest_first_with_sizes(self, store: Store) -> None:
        assert store.list_contact_lists("a") == []
        store.create_contact_list(make_list("old", created=0))
        store.create_contact_list(make_list("new", created=20))
        store.create_contact_list(make_list("mid", created=10))
        store.add_contacts("a", "mid", [Contact(phone=phone(i)) for i in range(3)])
        store.add_contacts("a", "old", [Contact(phone=phone(0))])
        rows = store.list_contact_lists("a")
        assert [(r.list_id, r.size) for r in rows] == [("new", 0), ("mid", 3), ("old", 1)]
        assert all(r.tenant == "a" and is_utc(r.created_at) for r in rows)

    def test_stored_tenants(self, store: Store) -> None:
        assert store.tenants_version() == 0 and store.list_tenant_rows() == [] and store.get_tenant_row("a") is None
        v1 = store.put_tenant_row("b", '{"x": 1}', "token-1", create=True)
        v2 = store.put_tenant_row("a", "{}", "token-2", create=True)
        assert v2 > v1 and store.tenants_version() == v2
        with pytest.raises(ValueError, match="'a' is already stored"):
            store.put_tenant_row("a", "{}", "other", create=True)
        with pytest.raises(NotFound, match="'c' is not stored"):
            store.put_tenant_row("c", "{}", "other", create=False)
        assert store.tenants_version() == v2  # refused writes change nothing
        assert [(r.name, r.version) for r in store.list_tenant_rows()] == [("a", v2), ("b", v1)]
        v3 = store.put_tenant_row("b", '{"x": 2}', "token-3", create=False)
        row = store.get_tenant_row("b")
        assert row is not None and (row.config, row.secrets, row.version) == ('{"x": 2}', "token-3", v3) and v3 > v2
        assert row.updated_at.tzinfo is not None and "token-3" not in repr(row)
        assert store.put_tenant_row("c", "{}", "t", create=None) > v3  # upsert
        assert store.delete_tenant_row("b") and not store.delete_tenant_row("b")
        after = store.tenants_version()
        assert after > v3 and store.get_tenant_row("b") is None
        assert [r.name for r in store.list_tenant_rows()] == ["a", "c"]
        assert not store.delete_tenant_row("zz") and store.tenants_version() == after

    def test_a_tenant_is_written_over_the_version_read_only(self, store: Store) -> None:
        """``expected_version``: the write of a read-modify-write (a credential rotation) goes
        only over the row it read; anything else is ``TenantChanged`` and writes nothing."""
        from smsgate.store.base import TenantChanged

        read = store.put_tenant_row("a", '{"v": 1}', "token-1", create=True)
        meanwhile = store.put_tenant_row("a", '{"v": 2}', "token-2", create=False)  # another writer
        with pytest.raises(TenantChanged, match="'a' changed"):
            store.put_tenant_row("a", '{"v": 3}', "token-3", create=False, expected_version=read)
        row = store.get_tenant_row("a")
        assert row is not None and (row.config, row.secrets, row.version) == ('{"v": 2}', "token-2", meanwhile)
        assert store.tenants_version() == meanwhile  # the refused write changed nothing
        done = store.put_tenant_row("a", '{"v": 3}', "token-3", create=False, expected_version=meanwhile)
        assert done > meanwhile and store.get_tenant_row("a").secrets == "token-3"  # type: ignore[union-attr]
        assert store.delete_tenant_row("a")
        with pytest.raises(TenantChanged):  # removed meanwhile
            store.put_tenant_row("a", "{}", "token-4", create=False, expected_version=done)
        assert store.get_tenant_row("a") is None

    def test_contact_list_tenant_isolation(self, store: Store) -> None:
        store.create_contact_list(make_list("l1"))
        store.add_contacts("a", "l1", [Contact(phone=phone(1), name="Ada")])
        with pytest.raises(NotFound):
            store.get_contact_list("b", "l1")
        with pytest.raises(NotFound):
            store.list_contacts("b", "l1")
        with pytest.raises(NotFound):
            store.add_contacts("b", "l1", [Contact(phone=phone(2))])
        assert store.list_contact_lists("b") == []
        assert store.remove_contacts("b", "l1", [phone(1)]) == 0
        assert store.delete_contact_list("b", "l1") is False
        # b may use the same list id and phones for its own list.
        store.create_contact_list(make_list("l1", tenant="b"))
        assert store.add_contacts("b", "l1", [Contact(phone=phone(1), name="Other")]) == 1
        assert store.delete_contact_list("b", "l1") is True
        assert [(c.phone, c.name) for _, c in store.list_contacts("a", "l1")] == [(phone(1), "Ada")]
        assert store.get_contact_list("a", "l1").size == 1

    def test_contact_lists_many_contacts(self, store: Store) -> None:
        """Batches larger than any store's statement chunk, paged back in full."""
        n = 2500
        store.create_contact_list(make_list("big"))
        assert store.add_contacts("a", "big", [Contact(phone=phone(i), fields={"i": str(i)}) for i in range(n)]) == n
        assert store.add_contacts("a", "big", [Contact(phone=phone(i)) for i in range(n - 100, n + 100)]) == 100
        assert store.remove_contacts("a", "big", (phone(i) for i in range(0, n + 100, 2))) == (n + 100) // 2
        seen: list[tuple[int, Contact]] = []
        after = 0
        while page := store.list_contacts("a", "big", after_id=after, limit=700):
            seen.extend(page)
            after = page[-1][0]
        assert [c.phone for _, c in seen] == [phone(i) for i in range(1, n + 100, 2)]
        assert [i for i, _ in seen] == sorted({i for i, _ in seen})
        assert seen[0][1].fields == {"i": "1"} and seen[-1][1].fields == {}
        assert store.get_contact_list("a", "big").size == (n + 100) // 2

    # ----------------------------------------------------------- statistics
    def test_message_times(self, store: Store) -> None:
        n = 5100  # more than one page of the SQL stores
        store.insert_messages(
            [
                make_record(
                    f"m{i}",
                    status=Status.DELIVERED if i % 2 else Status.FAILED,
                    created=i // 1000,  # many share a created_at, across page boundaries
                    campaign_id="c1" if i % 3 == 0 else None,
                    provider="echo" if i % 4 == 0 else "other",
                    segments=2,
                    cost=Decimal("0.0100"),
                    currency="NGN" if i % 4 == 0 else None,
                )
                for i in range(n)
            ]
        )
        store.update_messages("a", [update("m1", Status.DELIVERED, 10)])
        everything = list(store.message_times("a"))
        assert len(everything) == n
        assert [t.created_at for t in everything] == sorted(t.created_at for t in everything)
        first = everything[0]
        assert (first.status, first.provider, first.segments, first.cost, first.currency) == (
            Status.FAILED,
            "echo",
            2,
            Decimal("0.0100"),
            "NGN",
        )
        assert {t.currency for t in everything if t.provider == "other"} == {None}
        assert is_utc(first.created_at)
        assert sum(1 for _ in store.message_times("a", campaign_id="c1")) == len(range(0, n, 3))
        assert sum(1 for _ in store.message_times("a", provider="echo")) == len(range(0, n, 4))
        assert sum(1 for _ in store.message_times("a", campaign_id="c1", provider="echo")) == len(
            range(0, n, 12)
        )
        window = list(store.message_times("a", since=at(1), until=at(3)))
        assert len(window) == 2000 and all(at(1) <= t.created_at < at(3) for t in window)
        assert list(store.message_times("a", since=datetime(2026, 1, 1, 13, 0, 6, tzinfo=WAT))) == []
        assert list(store.message_times("b")) == []

    # ------------------------------------------------------------ property
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        start=statuses,
        steps=st.lists(st.tuples(statuses, raws, st.booleans()), max_size=12),
    )
    def test_random_updates_follow_the_rule(
        self,
        store: Store,
        start: Status,
        steps: list[tuple[Status, str | None, bool]],
    ) -> None:
        # A fresh message per example (the store fixture is shared by examples).
        message_id = f"h{next(_example_ids)}"
        pmid = f"p-{message_id}"
        store.insert_messages(
            [make_record(message_id, status=start, provider="echo", provider_message_id=pmid)]
        )
        status, raw, events = start, None, 0
        for i, (new, new_raw, as_report) in enumerate(steps):
            expected = accepts_status(status, raw, new, new_raw)
            if as_report:
                assert store.apply_reports("a", [report(pmid, new, i + 1, new_raw)]) == [message_id]
            else:
                assert store.update_messages("a", [update(message_id, new, i + 1, new_raw)]) == [expected]
            if expected:
                status, raw, events = new, new_raw, events + 1
        got = store.get_message("a", message_id)
        assert got.status is status
        assert got.raw_status == raw
        assert len(got.history) == events

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        start=statuses,
        start_raw=raws,
        start_fields=st.fixed_dictionaries(
            {
                "cost": st.sampled_from([None, Decimal("0.5"), Decimal("0.50")]),
                "segments": st.sampled_from([None, 1, 2]),
                "batch_id": st.sampled_from([None, "b1"]),
                "error": st.sampled_from([None, "E1"]),
                "submitted_at": st.sampled_from([None, at(0)]),
                "delivered_at": st.sampled_from([None, at(0)]),
            }
        ),
        reports_=st.lists(
            st.tuples(
                statuses,
                raws,
                st.integers(min_value=-3, max_value=3),  # seconds from the message's last update
                st.sampled_from([None, Decimal("0.5"), Decimal("0.50"), Decimal("10"), Decimal("0.0200")]),
                st.sampled_from([None, 1, 3]),
                st.sampled_from([None, "b1", "b2"]),
                st.sampled_from([None, "E1", "E2"]),
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def test_reports_apply_exactly_as_the_rules(
        self,
        store: Store,
        start: Status,
        start_raw: str | None,
        start_fields: dict[str, Any],
        reports_: list[tuple[Status, str | None, int, Decimal | None, int | None, str | None, str | None]],
    ) -> None:
        """One batch of reports (several for the message) leaves exactly the fields and
        history that ``_rules.apply_report`` gives, report by report, whatever the store
        (the SQL stores may apply the rules inside the database)."""
        from smsgate.store._rules import apply_report

        message_id = f"r{next(_example_ids)}"
        pmid = f"p-{message_id}"
        record = make_record(
            message_id, status=start, raw_status=start_raw, provider="echo", provider_message_id=pmid,
            created=0, **start_fields,
        )
        record.updated_at = at(10)
        store.insert_messages([record])
        batch = [
            report(pmid, status, 10 + seconds, raw, cost=cost, segments=segments, batch_id=batch_id, error_code=error)
            for status, raw, seconds, cost, segments, batch_id, error in reports_
        ]
        # Another message in the same batch, and an unmatched report.
        other = f"o{next(_example_ids)}"
        store.insert_messages([make_record(other, status=Status.SUBMITTED, provider="echo", provider_message_id=f"p-{other}")])
        batch.insert(len(batch) // 2, report(f"p-{other}", Status.DELIVERED, 20, "DELIVRD"))
        batch.append(report(f"missing-{message_id}", Status.DELIVERED, 20))

        expected = store.get_message("a", message_id)
        events = len(expected.history)
        for r in batch:
            if r.provider_message_id == pmid:
                changed, _ = apply_report(expected, r)
                events += changed
        assert store.apply_reports("a", batch) == [
            message_id if r.provider_message_id == pmid else other if r.provider_message_id == f"p-{other}" else None
            for r in batch
        ]
        got = store.get_message("a", message_id)
        for name in ("status", "raw_status", "batch_id", "segments", "error", "updated_at", "submitted_at",
                     "delivered_at"):
            assert getattr(got, name) == getattr(expected, name), name
        assert str(got.cost) == str(expected.cost)
        assert len(got.history) == events
        assert store.get_message("a", other).status is Status.DELIVERED
