"""The retention contract: :meth:`Store.purge` behaves the same on every store.

Adopted like :mod:`store_contract` (a test class subclassing :class:`PurgeContract`
with the ``store`` and ``new_store`` fixtures).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from smsgate.errors import NotFound
from smsgate.models import CampaignStatus, InboundMessage, MessageRecord, Status, utcnow
from smsgate.store.base import (
    LogWrite,
    NewMessage,
    PurgeResult,
    RecipientRow,
    RecipientState,
    RecipientUpdate,
    Store,
)
from smsgate.traffic.limits import Charge, KeyState, Limit, Usage, admit, release
from store_contract import at, make_campaign, make_record, phone, report, update

#: Before every message of these tests (logged at ``T0`` plus seconds) ...
CUTOFF = at(1000)


def soon() -> datetime:
    """A cutoff after everything written so far (rows stamped by the store with "now")."""
    return utcnow() + timedelta(seconds=1)


def message_ids(store: Store, tenant: str = "a") -> set[str]:
    return {m.message_id for m in store.list_messages(tenant, limit=10_000)}


def purge_both(store: Store, tenant: str | None, before: datetime, **options: int) -> PurgeResult:
    """A dry run, then the purge; checks they agree and that the dry run deleted nothing."""
    before_ids = {t: message_ids(store, t) for t in ("a", "b")}
    dry = store.purge(tenant, before=before, dry_run=True, **options)
    assert dry.dry_run
    assert {t: message_ids(store, t) for t in ("a", "b")} == before_ids
    done = store.purge(tenant, before=before, **options)
    assert not done.dry_run
    assert dry.as_dict() | {"dry_run": False} == done.as_dict()
    return done


def delivered(store: Store, message_id: str, pmid: str, *, tenant: str = "a", created: float = 0,
              **fields: object) -> None:
    """A message logged at ``T0 + created`` (without history) and delivered (one history event)."""
    store.insert_messages([make_record(message_id, tenant=tenant, created=created, **fields)])  # type: ignore[arg-type]
    store.update_messages(tenant, [update(message_id, Status.DELIVERED, created + 5, provider="echo",
                                          provider_message_id=pmid)])


class PurgeContract:
    """Retention behaviour every store must have."""

    def test_purge_deletes_old_final_messages_with_history_and_parts_only(self, store: Store) -> None:
        delivered(store, "old", "p1")
        store.record_parts("a", [report("p1", Status.DELIVERED, 3, part=1, parts=2),
                                 report("p1", Status.DELIVERED, 4, part=2, parts=2)])
        store.insert_messages([make_record("old-failed", status=Status.FAILED, created=1)])
        # not final: awaiting a report, in flight, outcome unknown: never deleted, however old
        store.insert_messages([make_record("sent", status=Status.SENT, created=2),
                               make_record("queued", status=Status.QUEUED, created=3),
                               make_record("unknown", status=Status.UNKNOWN, created=4)])
        delivered(store, "new", "p2", created=2000)  # after the cutoff
        store.record_parts("a", [report("p2", Status.DELIVERED, 2003, part=1, parts=2)])
        delivered(store, "other-tenant", "p1", tenant="b")
        store.record_parts("b", [report("p1", Status.DELIVERED, 3, part=1, parts=2)])

        result = purge_both(store, "a", CUTOFF)
        assert (result.messages, result.events, result.report_parts, result.kept_messages) == (2, 1, 2, 3)
        assert result.deleted == 5 and (result.campaigns, result.inbound) == (0, 0)
        assert message_ids(store) == {"sent", "queued", "unknown", "new"}
        for gone in ("old", "old-failed"):
            with pytest.raises(NotFound):
                store.get_message("a", gone)
        assert store.find_by_provider_id("a", "echo", "p1") is None
        # parts of the purged message are gone (a late part starts afresh); others stay
        assert store.record_parts("a", [report("p1", Status.SENT, 9, part=2, parts=2)]) == [{2: Status.SENT}]
        assert store.record_parts("a", [report("p2", Status.SENT, 9, part=2, parts=2)]) == [
            {1: Status.DELIVERED, 2: Status.SENT}]
        assert [e.status for e in store.get_message("a", "new").history] == [Status.DELIVERED]
        # another tenant is untouched
        assert store.get_message("b", "other-tenant").status is Status.DELIVERED
        assert store.record_parts("b", [report("p1", Status.SENT, 9, part=2, parts=2)]) == [
            {1: Status.DELIVERED, 2: Status.SENT}]
        # nothing more to do
        assert store.purge("a", before=CUTOFF).deleted == 0

    def test_purge_of_every_tenant(self, store: Store) -> None:
        for tenant in ("a", "b", "c"):
            delivered(store, f"{tenant}-old", f"{tenant}-p", tenant=tenant)
            delivered(store, f"{tenant}-new", f"{tenant}-q", tenant=tenant, created=2000)
        result = purge_both(store, None, CUTOFF)
        assert (result.messages, result.events) == (3, 3)
        for tenant in ("a", "b", "c"):
            assert message_ids(store, tenant) == {f"{tenant}-new"}

    def test_campaign_goes_whole_once_finished_and_settled(self, store: Store) -> None:
        def campaign(cid: str, statuses: list[Status], state: CampaignStatus,
                     recipient: RecipientState = RecipientState.SENT) -> None:
            store.create_campaign(make_campaign(cid))
            store.add_recipients("a", cid, [
                RecipientRow(seq=i, phone=phone(i), state=RecipientState.PENDING, key=phone(i))
                for i in range(len(statuses))])
            ids = iter(f"{cid}-{i}" for i in range(len(statuses)))
            claimed = store.claim_recipients("a", cid, len(statuses), lambda: next(ids), owner="runner")
            store.write_log("a", LogWrite(
                inserts=[NewMessage("a", r.message_id or "", phone(i), s, at(i), campaign_id=cid)
                         for i, (r, s) in enumerate(zip(claimed, statuses, strict=True))],
                recipients=[(cid, RecipientUpdate(r.id or 0, recipient)) for r in claimed]))
            store.update_campaign("a", cid, status=state)

        campaign("done", [Status.DELIVERED, Status.FAILED, Status.EXPIRED], CampaignStatus.COMPLETED)
        campaign("cancelled", [Status.DELIVERED], CampaignStatus.CANCELLED)
        # a message still awaiting its report keeps the whole campaign (its final messages too)
        campaign("stuck", [Status.DELIVERED, Status.SENT], CampaignStatus.COMPLETED)
        # not finished: kept, however old its messages
        campaign("running", [Status.DELIVERED, Status.DELIVERED], CampaignStatus.RUNNING)
        # cancelled, but a runner still holds a claim: kept
        campaign("held", [Status.DELIVERED], CampaignStatus.CANCELLED, RecipientState.SENDING)
        # a message naming a campaign that is not stored goes by its own age
        store.insert_messages([make_record("loose", campaign_id="deleted-long-ago", status=Status.DELIVERED)])

        # finished after the cutoff: every campaign is kept whole, even its old messages
        early = purge_both(store, "a", CUTOFF)
        assert (early.messages, early.campaigns, early.kept_campaigns, early.kept_messages) == (1, 0, 0, 9)
        assert len(message_ids(store)) == 9

        late = purge_both(store, "a", soon())
        assert (late.campaigns, late.recipients, late.messages, late.kept_campaigns) == (2, 4, 4, 2)
        assert late.events == 4 and late.kept_messages == 5
        for cid in ("done", "cancelled"):
            with pytest.raises(NotFound):
                store.get_campaign("a", cid)
            assert store.recipients("a", cid) == [] and not any(store.count_by_status("a", campaign_id=cid).values())
        for cid, n in (("stuck", 2), ("running", 2), ("held", 1)):
            assert store.get_campaign("a", cid).campaign_id == cid
            assert len(store.recipients("a", cid)) == n
            assert sum(store.count_by_status("a", campaign_id=cid).values()) == n
        # once its last message is final, the stuck campaign goes too
        store.update_messages("a", [update("stuck-1", Status.DELIVERED, 50)])
        again = purge_both(store, "a", soon())
        assert (again.campaigns, again.recipients, again.messages, again.kept_campaigns) == (1, 2, 2, 1)
        assert again.events == 3  # one each when logged, and the late report

    def test_purge_orphans_inbound_keys_and_traffic(self, store: Store) -> None:
        store.apply_reports("a", [report("lost", Status.DELIVERED, 1)], keep_orphans=True)
        store.apply_reports("b", [report("lost", Status.DELIVERED, 1)], keep_orphans=True)

        def inbound(vid: str, when: datetime) -> InboundMessage:
            return InboundMessage(provider="colony", vendor_id=vid, from_number="+27821234567", to="ACME",
                                  text="hi", received_at=when)

        # (a reply dated in the future is dated now: InboundMessage.received_at, attack round 15)
        store.record_inbound("a", [inbound("v1", at(0)), inbound("v2", utcnow())])
        store.record_inbound("b", [inbound("v1", at(0))])
        assert store.claim_idempotency_key("a", "key-1", "m1") is None
        store.write_log("a", LogWrite(inserts=[make_record("m2", status=Status.DELIVERED)], keys={"m2": "key-2"}))

        rule = Limit(rate=100, per=60).rule()
        charges = [Charge("provider:one", (rule,), Usage(1, 1), 5)]
        horizons = {"provider:one": rule.period}
        for rid in ("answered", "in-flight"):
            store.traffic("a", horizons, lambda s, n, rid=rid: admit(s, charges, n, rid, 3600.0))
        store.traffic("a", horizons, lambda s, n: release(s, ["provider:one"], "answered", n - 10))

        # a cutoff before all of it: nothing but the old message and inbound
        early = purge_both(store, "a", CUTOFF)
        assert (early.messages, early.inbound, early.orphan_reports, early.idempotency_keys,
                early.traffic_entries) == (1, 1, 0, 0, 0)
        assert [m.vendor_id for m in store.list_inbound("a")] == ["v2"]

        result = purge_both(store, "a", soon())
        assert (result.orphan_reports, result.inbound, result.idempotency_keys, result.traffic_entries) == (
            1, 1, 2, 1)
        assert store.list_inbound("a") == []
        assert store.orphan_reports("a") == [] and len(store.orphan_reports("b")) == 1
        assert len(store.list_inbound("b")) == 1
        # the keys are free again: a send repeating one is a new send
        assert store.claim_idempotency_key("a", "key-1", "m3") is None

        def look(states: dict[str, KeyState], now: float) -> list[str]:
            return [e.id for e in states["provider:one"].entries]

        assert store.traffic("a", horizons, look) == ["in-flight"]

    def test_parts_of_reports_without_their_message_go_with_the_orphans(self, store: Store) -> None:
        """Parts are recorded before a report is matched: a part of a message never logged, or
        one arriving after its message was purged, is kept with an orphan report; it goes when
        the last orphan report of its message id goes (before the cutoff), in the same batch."""
        def part_report(tenant: str, pmid: str, part: int) -> dict[int, Status]:
            r = report(pmid, Status.DELIVERED, 5, part=part, parts=2)
            (known,) = store.record_parts(tenant, [r])
            store.apply_reports(tenant, [r], keep_orphans=True)
            return known

        delivered(store, "old", "late")
        store.record_parts("a", [report("late", Status.DELIVERED, 3, part=1, parts=2)])
        assert purge_both(store, "a", CUTOFF).report_parts == 1
        part_report("a", "late", 2)  # its message is gone: an orphan (and a part)
        part_report("a", "ghost", 1)  # a message never logged
        part_report("a", "ghost", 2)
        part_report("a", "both", 1)
        part_report("b", "ghost", 1)  # another tenant's
        # a message awaiting its last part (kept), and an orphan of another provider's same id
        store.insert_messages([make_record("live", status=Status.SENT, provider="echo", provider_message_id="live")])
        store.record_parts("a", [report("live", Status.DELIVERED, 3, part=1, parts=2)])
        store.apply_reports("a", [report("live", Status.DELIVERED, 3, provider="other")], keep_orphans=True)
        cutoff = soon()
        while utcnow() < cutoff:  # the next orphan is received after the cutoff
            pass
        part_report("a", "both", 2)  # an orphan of "both" newer than the cutoff keeps its parts

        result = purge_both(store, "a", cutoff, batch_size=1)
        assert (result.orphan_reports, result.report_parts, result.messages, result.kept_messages) == (5, 3, 0, 1)
        # the parts that went start afresh; the others are still known
        assert part_report("a", "late", 1) == {1: Status.DELIVERED}
        assert part_report("a", "ghost", 2) == {2: Status.DELIVERED}
        assert part_report("a", "both", 2) == {1: Status.DELIVERED, 2: Status.DELIVERED}
        assert part_report("b", "ghost", 2) == {1: Status.DELIVERED, 2: Status.DELIVERED}
        assert store.record_parts("a", [report("live", Status.DELIVERED, 6, part=2, parts=2)]) == [
            {1: Status.DELIVERED, 2: Status.DELIVERED}]
        assert [r.provider_message_id for r in store.orphan_reports("a")] == ["both", "late", "ghost", "both"]

    def test_failed_campaigns_go_like_finished_ones_interrupted_and_leased_ones_stay(self, store: Store) -> None:
        """Finished = ``completed``, ``cancelled`` or ``failed``: no run sends for it by itself
        any more. ``interrupted`` resumes when run again: kept (cancel it to let it go). A
        live runner lease keeps any campaign."""
        for cid, state in (("done", CampaignStatus.COMPLETED), ("failed", CampaignStatus.FAILED),
                           ("interrupted", CampaignStatus.INTERRUPTED), ("leased", CampaignStatus.COMPLETED),
                           ("paused", CampaignStatus.PAUSED)):
            store.create_campaign(make_campaign(cid))
            store.add_recipients("a", cid, [RecipientRow(seq=0, phone=phone(0), state=RecipientState.PENDING,
                                                         key=phone(0))])
            (claimed,) = store.claim_recipients("a", cid, 1, lambda cid=cid: f"{cid}-0", owner="runner")
            store.write_log("a", LogWrite(
                inserts=[NewMessage("a", f"{cid}-0", phone(0), Status.DELIVERED, at(0), campaign_id=cid)],
                recipients=[(cid, RecipientUpdate(claimed.id or 0, RecipientState.SENT))]))
            store.update_campaign("a", cid, status=state)
        store.start_runner("a", "leased", "runner-2", utcnow() + timedelta(hours=1))

        result = purge_both(store, "a", soon())
        assert (result.campaigns, result.recipients, result.messages, result.kept_campaigns) == (2, 2, 2, 1)
        for cid in ("done", "failed"):
            with pytest.raises(NotFound):
                store.get_campaign("a", cid)
        for cid in ("interrupted", "leased", "paused"):
            assert store.get_campaign("a", cid).campaign_id == cid
            assert len(store.recipients("a", cid)) == 1 and f"{cid}-0" in message_ids(store)
        store.stop_runner("a", "leased", "runner-2")
        assert purge_both(store, "a", soon()).campaigns == 1

    def test_batches_of_any_size_purge_the_same(self, new_store: Callable[[], Store]) -> None:
        rng = random.Random(7)
        plan: list[MessageRecord] = []
        for i in range(120):
            status = rng.choice(list(Status))
            plan.append(make_record(f"m{i:03d}", status=status, created=rng.choice([0, 0, 5, 999, 1000, 3000]),
                                    provider="echo", provider_message_id=f"p{i}",
                                    campaign_id=rng.choice([None, None, "gone"])))
        outcomes = []
        for size in (1, 7, 1000):
            store = new_store()
            store.migrate()
            store.insert_messages(plan)
            result = purge_both(store, "a", CUTOFF, batch_size=size)
            outcomes.append((result.as_dict(), message_ids(store)))
        expected = {r.message_id for r in plan if not (r.status.is_final and r.created_at < CUTOFF)}
        assert outcomes[0][1] == expected
        assert outcomes[0] == outcomes[1] == outcomes[2]

    def test_bad_batch_size_is_refused(self, store: Store) -> None:
        with pytest.raises(ValueError, match="batch_size"):
            store.purge("a", before=CUTOFF, batch_size=0)

    def test_cutoff_in_another_zone_is_the_same_instant(self, store: Store) -> None:
        delivered(store, "m", "p")
        zone = timezone(timedelta(hours=5))  # later on the clock face: wrong if compared as text
        assert store.purge("a", before=at(0).astimezone(zone)).messages == 0  # logged at the cutoff: kept
        assert store.purge("a", before=at(1).astimezone(zone)).messages == 1
