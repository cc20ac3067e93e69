"""The policy kernel, driven with canned answers: no server, no store, no HTTP client.

Each test feeds a plan the answers a driver would give (store results, provider
results or errors) and checks the steps it asked for, in order.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.config import TenantConfig
from smsgate.core import campaign as camp_plans
from smsgate.core import deliver
from smsgate.core.policy import TenantPolicy
from smsgate.core.steps import Admit, Call, Flush, Log, Plan, Query, Step
from smsgate.errors import CircuitOpen, TransportError, UnknownOutcome
from smsgate.hookspecs import hookimpl
from smsgate.lifecycle import Status
from smsgate.models import CampaignStatus, DeliveryReport, MessageRecord, OutboundMessage, SendResult, utcnow
from smsgate.plugins import PluginManager
from smsgate.provider import Capabilities, Operation, Provider, ProviderSettings
from smsgate.store.base import Claim, LogResult, RecipientRow, RecipientState

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


class Fake(Provider):
    """A bulk provider (3 per request) that cannot build a request for a text containing BAD."""

    name = "fake"
    capabilities = Capabilities(bulk=True, max_batch=3)

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        results = yield from self.send_many([msg])
        return results[0]

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        for m in msgs:
            if "BAD" in m.text:
                raise TypeError("cannot encode")
        yield self.request("POST", "/send", json=[m.to for m in msgs])
        raise AssertionError("answered by the test")  # pragma: no cover


class Single(Fake):
    name = "single"
    capabilities = Capabilities(bulk=False, max_batch=1)


def policy(**tenant: Any) -> TenantPolicy:
    prov = {"plugin": "fake", "base_url": "http://fake"}
    cfg = TenantConfig.model_validate({"default_region": "NG", "sender": "ACME",
                                       "providers": {"a": prov, "b": prov, "s": {**prov, "plugin": "single"}},
                                       **tenant})
    providers: dict[str, Provider] = {}

    def provider(name: str) -> Provider:
        if name not in providers:
            settings = cfg.providers[name]
            cls = Single if settings.plugin == "single" else Fake
            providers[name] = cls(ProviderSettings.model_validate(settings.model_dump()), instance_name=name)
        return providers[name]

    return TenantPolicy("acme", cfg, provider, PluginManager(load_entry_points=False).hook)


def run(plan: Plan[Any], answer: Callable[[Step], Any]) -> tuple[Any, list[Step]]:
    """Drive ``plan`` with ``answer(step)`` (which may raise); returns its result and every step."""
    steps: list[Step] = []
    try:
        step = next(plan)
        while True:
            steps.append(step)
            try:
                value = answer(step)
            except Exception as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(value)
    except StopIteration as stop:
        return stop.value, steps


def accepted(step: Call) -> list[SendResult]:
    """Start the operation (it may fail before its request), then accept every message."""
    request: httpx.Request = next(step.operation)
    step.operation.close()
    return [SendResult(to=to, status=Status.SUBMITTED, provider_message_id=f"p-{to}")
            for to in json.loads(request.content)]


def size(call: Call) -> int:
    """Messages a call carries, as a limit counts them (the policies here have a tenant limit)."""
    return call.charges[0].usage.messages


def msgs(*texts: str) -> list[OutboundMessage]:
    return [OutboundMessage(to=f"+23480300000{i}", text=t, message_id=f"m{i}") for i, t in enumerate(texts)]


def test_write_ahead_comes_before_the_request_and_answers_ride_along_later() -> None:
    p = policy(limits=[{"rate": 1000}])
    batch = msgs("a", "b")
    ticket = object()

    def answer(step: Step) -> Any:
        if isinstance(step, Admit):
            return ticket
        return LogResult() if isinstance(step, Log) else accepted(step)  # type: ignore[arg-type]

    results, steps = run(deliver.deliver(p, batch, ["a"], None, bulk=True), answer)
    # its place in the limits first: a process killed while it waits has logged nothing
    assert [type(s).__name__ for s in steps] == ["Admit", "Log", "Call", "Log"]
    admit, ahead, call, answers = steps
    assert isinstance(admit, Admit) and (admit.instance, admit.charges[0].usage.messages) == ("a", 2)
    assert isinstance(ahead, Log) and ahead.wait and [r.status for r in ahead.write.inserts] == [Status.QUEUED] * 2
    assert isinstance(call, Call) and (call.instance, size(call)) == ("a", 2) and call.admitted is ticket
    assert isinstance(answers, Log) and not answers.wait and len(answers.write.updates) == 2
    assert [results[m.message_id].status for m in batch] == [Status.SUBMITTED] * 2


def test_a_message_the_adapter_cannot_build_is_rejected_alone() -> None:
    p = policy(limits=[{"rate": 1000}])
    batch = msgs("ok", "BAD text", "fine")

    def answer(step: Step) -> Any:
        if isinstance(step, Admit):
            return object()
        if isinstance(step, Log):
            return LogResult()
        assert isinstance(step, Call)
        got = accepted(step)
        return got if size(step) > 1 else got[0]  # alone, each goes through send(): one result

    results, steps = run(deliver.deliver(p, batch, ["a"], None, bulk=True), answer)
    calls = [s for s in steps if isinstance(s, Call)]
    assert [size(c) for c in calls] == [3, 1, 1, 1]  # the batch, then each message alone
    assert [results[m.message_id].status for m in batch] == [Status.SUBMITTED, Status.REJECTED, Status.SUBMITTED]
    assert "could not build the request" in (results["m1"].error or "")


def test_failover_only_when_the_request_certainly_did_not_arrive() -> None:
    p = policy()

    def answer(step: Step) -> Any:
        if isinstance(step, Log):
            return LogResult()
        assert isinstance(step, Call)
        if step.instance == "a":
            step.operation.close()
            raise TransportError("refused", provider="a")
        return accepted(step)

    results, steps = run(deliver.deliver(p, msgs("x", "y"), ["a", "b"], None, bulk=True), answer)
    assert [s.instance for s in steps if isinstance(s, Call)] == ["a", "b"]
    assert {r.provider for r in results.values()} == {"b"}

    def unknown(step: Step) -> Any:
        if isinstance(step, Log):
            return LogResult()
        assert isinstance(step, Call)
        step.operation.close()
        raise UnknownOutcome("timeout after sending", provider="a")

    results, steps = run(deliver.deliver(p, msgs("x"), ["a", "b"], None), unknown)
    assert [s.instance for s in steps if isinstance(s, Call)] == ["a"]  # never sent twice
    assert results["m0"].status is Status.UNKNOWN


def test_messages_the_vendor_did_not_process_are_sent_again() -> None:
    p = policy()
    rounds: list[int] = []

    def answer(step: Step) -> Any:
        if isinstance(step, Log):
            return LogResult()
        assert isinstance(step, Call)
        got = accepted(step)
        rounds.append(len(got))
        if len(rounds) == 1:  # one item invalid, the others refused with it
            got[0] = SendResult(to=got[0].to, status=Status.REJECTED, error="invalid")
            for r in got[1:]:
                r.status, r.resend = Status.FAILED, True
        return got

    results, _ = run(deliver.deliver(p, msgs("x", "y", "z"), ["a"], None, bulk=True), answer)
    assert rounds == [3, 2]
    assert [results[f"m{i}"].status for i in range(3)] == [Status.REJECTED, Status.SUBMITTED, Status.SUBMITTED]


def test_replayed_key_and_lost_claim_are_not_sent() -> None:
    p = policy(limits=[{"rate": 1000}])
    batch = msgs("x", "y", "z")
    batch[0].idempotency_key = "k"
    claims = {"m1": Claim("c", 7, "me"), "m2": Claim("c", 8, "me")}
    record = MessageRecord(tenant="acme", message_id="first", to=batch[0].to, status=Status.DELIVERED,
                           created_at=T0, updated_at=T0)

    def answer(step: Step) -> Any:
        if isinstance(step, Log) and step.wait:
            assert step.write.keys == {"m0": "k"} and set(step.write.claims) == {"m1", "m2"}
            return LogResult(replays={"m0": "first"}, lost={"m1"})
        if isinstance(step, Query) and step.method == "bound_keys":
            assert step.args == ("acme", ["k"])
            return {}  # not bound yet: bound meanwhile, the write-ahead finds it
        if isinstance(step, Query):
            assert step.method == "get_message" and step.args == ("acme", "first")
            return record
        if isinstance(step, Log):
            return None
        if isinstance(step, Admit):
            return "ticket"
        return accepted(step)  # type: ignore[arg-type]

    results, steps = run(deliver.deliver(p, batch, ["a"], None, claims, bulk=True), answer)
    (call,) = [s for s in steps if isinstance(s, Call)]
    assert size(call) == 1 and call.admitted == "ticket"  # only m2 left, on the batch's admission
    assert results["m0"].message_id == "first" and results["m0"].status is Status.DELIVERED
    assert results["m1"].error_code == "claim_lost"
    answers = [s for s in steps if isinstance(s, Log) and not s.wait][-1]
    assert [(c, u.id, u.state) for c, u in answers.write.recipients] == [("c", 8, RecipientState.SENT)]


def test_a_key_bound_already_is_answered_before_its_request_asks_for_a_place() -> None:
    p = policy(limits=[{"rate": 1000}])
    batch = msgs("x", "y")
    batch[0].idempotency_key = "k"
    record = MessageRecord(tenant="acme", message_id="first", to=batch[0].to, status=Status.DELIVERED,
                           created_at=T0, updated_at=T0)

    def answer(step: Step) -> Any:
        if isinstance(step, Query):
            return {"k": "first"} if step.method == "bound_keys" else record
        if isinstance(step, Admit):
            return "ticket"
        return LogResult() if isinstance(step, Log) else accepted(step)  # type: ignore[arg-type]

    results, steps = run(deliver.deliver(p, batch, ["a"], None, bulk=True), answer)
    (admit,) = [s for s in steps if isinstance(s, Admit)]
    assert admit.charges[0].usage.messages == 1  # only m1 asks for a place
    ahead = next(s for s in steps if isinstance(s, Log))
    assert [r.message_id for r in ahead.write.inserts] == ["m1"]
    assert results["m0"].message_id == "first" and results["m1"].status is Status.SUBMITTED


def test_batches_follow_max_batch_and_single_senders() -> None:
    p = policy()
    prepared = [deliver.Prepared(m, ["a", "b"]) for m in msgs(*"abcdefg")]
    prepared += [deliver.Prepared(m, ["s"]) for m in msgs("h", "i")]
    done, out = deliver.batches(p, prepared, None)
    assert done == {} and [(b.instance, b.size) for b in out] == [("s", 1), ("s", 1), ("a", 3), ("a", 3), ("a", 1)]
    for b in out:
        b.plan.close()


def _row(rid: int, mid: str | None) -> RecipientRow:
    return RecipientRow(rid, f"+2348030000{rid:02d}", RecipientState.SENDING, {}, id=rid, message_id=mid,
                        owner="dead")


def test_recovery_sends_again_only_what_never_left() -> None:
    p = policy()
    settings = type("S", (), {"text": "x", "template": None, "sender": None, "provider": None, "kind": None,
                              "concurrency": 1, "lease_seconds": 1.0})()
    run_ = camp_plans.CampaignRun(p, "c", "me", settings)
    rows = [_row(1, "never-logged"), _row(2, "answered"), _row(3, "ambiguous")]
    records = {
        "answered": MessageRecord(tenant="acme", message_id="answered", to=rows[1].phone, status=Status.SUBMITTED,
                                  created_at=T0, updated_at=T0),
        "ambiguous": MessageRecord(tenant="acme", message_id="ambiguous", to=rows[2].phone, status=Status.QUEUED,
                                   created_at=T0, updated_at=T0),
    }
    written = []

    def answer(step: Step) -> Any:
        if isinstance(step, Query):
            assert step.method == "messages_by_id"
            return {k: v for k, v in records.items() if k in step.args[1]}
        assert isinstance(step, Log)
        written.append(step.write)
        return LogResult()

    run(camp_plans.resolve(run_, rows, lookup=True), answer)
    (write,) = written
    assert [(u.id, u.state) for _, u in write.recipients] == [
        (1, RecipientState.PENDING), (2, RecipientState.SENT), (3, RecipientState.UNKNOWN)]
    assert [(u.message_id, u.status) for u in write.updates] == [("ambiguous", Status.UNKNOWN)]


def test_a_paused_campaign_claims_nothing() -> None:
    p = policy()
    settings = type("S", (), {"batch_size": 10, "concurrency": 4})()
    run_ = camp_plans.CampaignRun(p, "c", "me", settings)
    row = type("R", (), {"status": CampaignStatus.PAUSED})()
    out, steps = run(camp_plans._chunk(run_, lambda now: None), lambda s: row)
    assert out == [] and run_.drained and run_.status is CampaignStatus.PAUSED
    assert [s.method for s in steps if isinstance(s, Query)] == ["get_campaign"]
    assert not any(isinstance(s, Flush) for s in steps)


@pytest.mark.parametrize("text", ["\ud83d", "ok \udc00 ok"])
def test_text_that_cannot_be_encoded_is_refused_when_built(text: str) -> None:
    from smsgate.errors import ValidationError

    with pytest.raises(ValidationError, match="cannot be encoded"):
        policy().build("08031234567", text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["+2348000000001", "+2348000000002", "+2348000000003", "+2348000000004",
                                 "+2348000000005"]), max_size=40), st.integers(min_value=1, max_value=7))
def test_distinct_split_uses_the_fewest_valid_batches(numbers: list[str], size: int) -> None:
    batches = deliver.split_distinct(numbers, size)
    assert sorted(i for b in batches for i in b) == list(range(len(numbers)))  # every message once
    for b in batches:
        assert 1 <= len(b) <= size and len({numbers[i] for i in b}) == len(b)  # no number twice
    if numbers:
        assert len(batches) == max(math.ceil(len(numbers) / size), max(Counter(numbers).values()))


@given(st.integers(min_value=1, max_value=2500), st.integers(min_value=1, max_value=1000))
def test_distinct_numbers_split_in_order(n: int, size: int) -> None:
    batches = deliver.split_distinct([f"+234800{i:07d}" for i in range(n)], size)
    assert len(batches) == math.ceil(n / size) and [i for b in batches for i in b] == list(range(n))


def test_one_broadcast_per_content_and_each_number_once() -> None:
    """A provider that needs distinct numbers and one content per request (as WAABOT's broadcasts)."""

    class Broadcaster(Fake):
        distinct_recipients = True

        def batch_key(self, msg: OutboundMessage) -> object:
            return msg.text

    p = policy()
    p.provider = lambda name: Broadcaster(ProviderSettings(plugin="fake", base_url="http://f"), name)  # type: ignore[method-assign]
    texts = ["A", "A", "B", "A", "A", "B"]
    numbers = ["+2348000000001", "+2348000000001", "+2348000000001", "+2348000000002", "+2348000000003",
               "+2348000000002"]
    prepared = [deliver.Prepared(OutboundMessage(to=n, text=t, message_id=f"m{i}"), ["a"])
                for i, (n, t) in enumerate(zip(numbers, texts, strict=True))]
    _, out = deliver.batches(p, prepared, None)
    groups = []
    for b in out:
        results, _steps = run(b.plan, lambda s: LogResult() if isinstance(s, Log) else accepted(s))  # type: ignore[arg-type]
        groups.append(sorted(results))
    assert groups == [["m0", "m3"], ["m1", "m4"], ["m2", "m5"]]  # the fewest requests: 2 for A, 1 for B


# ------------------------------------------------------------------ the async feed driver
def _feed_driver() -> Any:
    import asyncio

    from smsgate.core.drive import AsyncLogWriter, AsyncPlanDriver
    from smsgate.store.memory import MemoryStore

    store = MemoryStore()

    async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def no_call(step: Call, stop: Any) -> Any:  # pragma: no cover - the plans make no calls
        raise AssertionError(step)

    return AsyncPlanDriver(store, AsyncLogWriter(store, "acme", in_thread), no_call)


def _chunks(events: list[tuple[str, str]], sizes: list[int], fail_at: int | None = None) -> Any:
    from smsgate.core.drive import Batch
    from smsgate.core.steps import Sleep

    def batch(tag: str) -> Plan[dict[str, Any]]:
        events.append(("send", tag))
        yield Sleep(0)
        return {tag: tag}

    def chunk(k: int) -> Plan[list[Batch]]:
        events.append(("chunk", str(k)))
        yield Sleep(0.005)  # a store query
        if k == fail_at:
            raise RuntimeError(f"chunk {k} failed")
        return [Batch("a", 1, batch(f"{k}:{i}")) for i in range(sizes[k])]

    it = iter(range(len(sizes)))
    return lambda: (chunk(k) if (k := next(it, None)) is not None else None)


def test_the_async_feed_prepares_the_next_chunk_while_the_last_batches_are_sent() -> None:
    import asyncio

    events: list[tuple[str, str]] = []
    sizes = [20, 0, 20, 20, 3]
    results = asyncio.run(_feed_driver().drive_feed(_chunks(events, sizes), concurrency=2))
    tags = [f"{k}:{i}" for k, n in enumerate(sizes) for i in range(n)]
    assert results == {t: t for t in tags}
    assert [tag for kind, tag in events if kind == "send"] == tags  # taken in order, chunk after chunk
    # a chunk is asked for once fewer than half the last chunk's batches are left, so before they
    # are all taken: no worker waits for it (chunk 2 comes right after the empty chunk 1)
    for k, before in ((1, 0), (3, 2), (4, 3)):
        asked = events.index(("chunk", str(k)))
        assert ("send", f"{before}:{sizes[before] - 1}") in events[asked:]


def test_hundreds_of_workers_waiting_for_a_chunk_do_not_hold_up_the_next_ones_preparation() -> None:
    """All the workers wait for the first chunk; once it is there, the next one is still asked
    for before its batches run out. (They queued on a lock before, taking it one turn of the
    event loop each, and the next chunk's preparation queued behind them: it was asked for only
    once every batch of the chunk had been taken, so every worker waited for every chunk.)"""
    import asyncio

    events: list[tuple[str, str]] = []
    sizes = [200, 200, 200, 200]
    results = asyncio.run(_feed_driver().drive_feed(_chunks(events, sizes), concurrency=64))
    tags = [f"{k}:{i}" for k, n in enumerate(sizes) for i in range(n)]
    assert results == {t: t for t in tags}
    assert [tag for kind, tag in events if kind == "send"] == tags
    for k in (1, 2, 3):
        asked = events.index(("chunk", str(k)))
        assert ("send", f"{k - 1}:{sizes[k - 1] - 1}") in events[asked:]
    assert [tag for kind, tag in events if kind == "chunk"] == ["0", "1", "2", "3"]  # each prepared once


def test_the_threaded_sync_feed_prepares_the_next_chunk_while_batches_are_in_flight() -> None:
    """A worker of the sync feed prepares the next chunk once fewer than half a chunk of batches
    is left, while the others send (they waited for the queue to run empty before: every
    worker idle while one claimed and prepared)."""
    import threading

    from smsgate.core.drive import Batch, LogWriter, SyncPlanDriver
    from smsgate.store.memory import MemoryStore

    store = MemoryStore()
    driver = SyncPlanDriver(store, LogWriter(store, "acme"), lambda step, stop: None)
    asked = threading.Event()
    seen: list[bool] = []

    def batch(tag: str, hold: bool) -> Plan[dict[str, Any]]:
        if hold:  # in flight until the next chunk is being prepared
            seen.append(asked.wait(5))
        return {tag: tag}
        yield  # pragma: no cover

    def chunk(k: int) -> Plan[list[Batch]]:
        if k == 1:
            asked.set()
        return [Batch("a", 1, batch(f"{k}:{i}", k == 0)) for i in range(4 if k == 0 else 2)]
        yield  # pragma: no cover

    it = iter(range(2))
    results = driver.drive_feed(lambda: (chunk(k) if (k := next(it, None)) is not None else None), concurrency=3)
    assert sorted(results) == ["0:0", "0:1", "0:2", "0:3", "1:0", "1:1"]
    assert seen == [True] * 4


def test_the_sync_writer_writes_a_campaigns_write_ahead_without_the_answers_held_back() -> None:
    """As the async writer: a write with claims (a request waits for it) takes the held-back
    answers along only once they are due; any other write takes them."""
    from smsgate.core.drive import LogWriter
    from smsgate.store.base import LogWrite, MessageUpdate

    class Recording:
        def __init__(self) -> None:
            self.writes: list[LogWrite] = []

        def write_log(self, tenant: str, write: LogWrite) -> LogResult:
            self.writes.append(write)
            return LogResult()

    store = Recording()
    writer = LogWriter(store, "acme")  # type: ignore[arg-type]
    answer = MessageUpdate(message_id="m0", status=Status.SUBMITTED, at=utcnow())
    writer.defer(LogWrite(updates=[answer]))
    ahead = LogWrite(claims={"m1": Claim("c1", 1, "runner")})
    writer.write(ahead)
    assert [(w.claims, w.updates) for w in store.writes] == [({"m1": Claim("c1", 1, "runner")}, [])]
    writer.max_age = 0.0  # the answer is due now: it goes with the next write-ahead
    writer.write(LogWrite(claims={"m2": Claim("c1", 2, "runner")}))
    assert store.writes[-1].updates == [answer] and set(store.writes[-1].claims) == {"m2"}
    writer.max_age = 60.0
    writer.defer(LogWrite(updates=[answer]))
    writer.write(LogWrite())  # not a campaign's write-ahead: takes them
    assert store.writes[-1].updates == [answer]


def test_a_chunk_failing_ahead_stops_the_feed_and_is_raised() -> None:
    import asyncio

    events: list[tuple[str, str]] = []
    with pytest.raises(RuntimeError, match="chunk 2 failed"):
        asyncio.run(_feed_driver().drive_feed(_chunks(events, [20, 20, 20, 20], fail_at=2), concurrency=2))
    sent = [tag for kind, tag in events if kind == "send"]
    assert all(not tag.startswith(("2:", "3:")) for tag in sent) and ("chunk", "3") not in events


# ----------------------------------------------------------------------------- a send_many stopped
def _send_many_feed(n: int) -> deliver.SendMany:
    from smsgate.core.policy import MessageSpec

    specs = [MessageSpec(to=f"080312300{i:02d}", text="hi") for i in range(n)]
    return deliver.SendMany(policy(), specs, None, None, {}, ahead=True)


def _answer_prepared(step: Step) -> Any:
    """The store's answers to a chunk's preparation: nobody opted out, every write-ahead written."""
    if isinstance(step, Query):
        assert step.method == "optout_scopes"
        return {}
    assert isinstance(step, (Log, Flush))
    return LogResult() if isinstance(step, Log) else None


def test_send_many_interrupted_marks_what_it_logged_ahead_but_never_sent_and_raises() -> None:
    """Interrupted in its Dispatch (the driver's ``Interrupted``: Ctrl-C, cancelled) after the first
    batch started: the messages logged ahead whose batch never started are logged ``failed`` /
    ``not_sent`` saying why, in a write it waits for; the first batch's are not touched."""
    from smsgate.core.steps import Dispatch, Interrupted

    feed = _send_many_feed(7)  # provider "a": 3 a request, so 3 batches

    def answer(step: Step) -> Any:
        if isinstance(step, Dispatch):
            batches, _ = run(step.feed(), _answer_prepared)  # type: ignore[arg-type]
            assert [b.size for b in batches] == [3, 3, 1]
            next(batches[0].plan)  # the first batch starts (its request may leave)
            raise Interrupted(KeyboardInterrupt(), "interrupted")
        return _answer_prepared(step)

    steps: list[Step] = []
    with pytest.raises(Interrupted):
        run(deliver.send_many(feed, 1, RuntimeError), lambda s: steps.append(s) or answer(s))
    (_, abandon) = steps
    assert isinstance(abandon, Log) and abandon.wait
    updates = abandon.write.updates
    assert len(updates) == 4 and {(u.status, u.raw_status) for u in updates} == {(Status.FAILED, "not_sent")}
    assert all("send_many was interrupted before its request left" in (u.error or "") for u in updates)


def test_send_many_whose_driver_stopped_it_marks_the_rest_not_sent_and_raises_closed() -> None:
    """The driver's stop set (the gateway closing): Dispatch answers without an error but the feed
    is not finished; what never left is ``not_sent`` and ``closed()`` is raised."""
    from smsgate.core.steps import Dispatch
    from smsgate.errors import GatewayClosed

    def answer(step: Step) -> Any:
        if isinstance(step, Dispatch):
            chunk = step.feed()
            if chunk is not None:
                run(chunk, _answer_prepared)
            return {}  # stopped before any batch was taken
        return _answer_prepared(step)

    steps: list[Step] = []
    with pytest.raises(GatewayClosed):
        run(deliver.send_many(_send_many_feed(5), 1, GatewayClosed), lambda s: steps.append(s) or answer(s))
    assert [type(s).__name__ for s in steps] == ["Dispatch", "Log", "Flush"]
    assert isinstance(steps[1], Log) and len(steps[1].write.updates) == 5
    assert {u.raw_status for u in steps[1].write.updates} == {"not_sent"}
    finished, _ = run(deliver.send_many(_send_many_feed(0), 1, GatewayClosed), answer)
    assert finished == []


def _interrupting_plan(events: list[Any]) -> Plan[str]:
    """A plan whose Dispatch is interrupted: what it may still do (log), what it may not (call)."""
    from smsgate.core.steps import Dispatch, Interrupted
    from smsgate.store.base import LogWrite
    from smsgate.traffic.gate import StoppedWaiting

    try:
        yield Dispatch(lambda: None)
    except Interrupted as exc:
        events.append(exc.how)
        events.append(type((yield Log(LogWrite()))).__name__)
        try:
            yield Call("a", iter(()))  # type: ignore[arg-type]
        except StoppedWaiting:
            events.append("not sent")
        return "done"
    raise AssertionError("not interrupted")  # pragma: no cover


def test_the_sync_driver_lets_a_plan_interrupted_in_dispatch_log_then_raises_the_interruption() -> None:
    from smsgate.core.drive import LogWriter, SyncPlanDriver
    from smsgate.store.memory import MemoryStore

    store = MemoryStore()

    def call(step: Call, stop: Any) -> Any:  # pragma: no cover - never sent
        raise AssertionError(step)

    driver = SyncPlanDriver(store, LogWriter(store, "acme"), call)

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    driver.drive_feed = ctrl_c  # type: ignore[method-assign]
    events: list[Any] = []
    with pytest.raises(KeyboardInterrupt):
        driver.drive(_interrupting_plan(events))
    assert events == ["interrupted", "LogResult", "not sent"]


def test_the_async_driver_lets_a_plan_cancelled_in_dispatch_log_then_raises_the_cancellation() -> None:
    import asyncio

    driver = _feed_driver()
    events: list[Any] = []

    async def go() -> None:
        async def never_ends(*args: Any, **kwargs: Any) -> Any:
            await asyncio.Event().wait()

        driver.drive_feed = never_ends  # type: ignore[method-assign]
        task = asyncio.ensure_future(driver.drive(_interrupting_plan(events)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert events == ["cancelled", "LogResult", "not sent"]


def test_the_async_driver_gives_a_plan_cancelled_during_its_write_ahead_that_writes_answer() -> None:
    """Cancelled while a waited log write (a write-ahead) is being written: the write goes on,
    the plan gets its answer (not the cancellation), sends nothing after, and the cancellation
    is raised once the plan ends. A second cancellation meanwhile is raised at once."""
    import asyncio
    import threading

    from smsgate.core.drive import AsyncLogWriter, AsyncPlanDriver
    from smsgate.store.base import LogWrite
    from smsgate.store.memory import MemoryStore
    from smsgate.traffic.gate import StoppedWaiting

    release = threading.Event()
    written: list[LogWrite] = []

    class Slow(MemoryStore):
        def write_log(self, tenant: str, write: LogWrite) -> LogResult:
            release.wait(10)
            written.append(write)
            return super().write_log(tenant, write)

    store = Slow()

    async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def no_call(step: Call, stop: Any) -> Any:  # pragma: no cover - never sent
        raise AssertionError(step)

    events: list[Any] = []

    def plan() -> Plan[str]:
        events.append(type((yield Log(LogWrite()))).__name__)
        try:
            yield Call("a", iter(()))  # type: ignore[arg-type]
        except StoppedWaiting:
            events.append("not sent")
        return "done"

    async def go(twice: bool) -> None:
        driver = AsyncPlanDriver(store, AsyncLogWriter(store, "acme", in_thread), no_call)
        task = asyncio.ensure_future(driver.drive(plan()))
        await asyncio.sleep(0.05)  # the write is in its thread, held there
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()  # waiting for the write's answer
        if twice:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
            return
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go(False))
    assert events == ["LogResult", "not sent"]
    assert len(written) == 1
    release.clear()
    events.clear()
    asyncio.run(go(True))
    assert events == []  # the second cancellation: raised at once, the plan told nothing more


# ------------------------------------------------------------ write-aheads gathered
def _gather_writer(gather: float, size: int = 64) -> tuple[Any, list[Any]]:
    """An AsyncLogWriter on a memory store whose ``write_gather`` is ``gather``; the writes
    each transaction held (``write_log`` calls, in order)."""
    import asyncio

    from smsgate.core.drive import AsyncLogWriter
    from smsgate.store.base import LogWrite
    from smsgate.store.memory import MemoryStore

    transactions: list[LogWrite] = []

    class Counting(MemoryStore):
        write_gather = gather

        def write_log(self, tenant: str, write: LogWrite) -> LogResult:
            transactions.append(write)
            return super().write_log(tenant, write)

    async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    writer = AsyncLogWriter(Counting(), "acme", in_thread)
    writer.gather_size = size
    return writer, transactions


def _ahead_write(i: int, *, claimed: bool = True) -> Any:
    from smsgate.store.base import LogWrite, NewMessage

    mid = f"msg_{i}"
    msg = NewMessage("acme", mid, f"+23480312345{i:02d}", Status.QUEUED, datetime.now(timezone.utc),
                     campaign_id="cmp_1")
    return LogWrite(inserts=[msg], claims={mid: Claim("cmp_1", i, "runner")} if claimed else {})


def test_a_campaigns_write_aheads_are_gathered_into_one_transaction_where_the_store_asks() -> None:
    import asyncio

    async def main() -> tuple[list[bool], list[Any]]:
        writer, transactions = _gather_writer(gather=30.0, size=3)
        futures = []
        for i in range(2):  # requests' write-aheads, each a few loop turns after the last
            futures.append(writer.submit(_ahead_write(i)))
            await asyncio.sleep(0.005)
        answered_early = [f.done() for f in futures]  # none answered (nor written) before the third arrived
        futures.append(writer.submit(_ahead_write(2)))
        await asyncio.wait_for(asyncio.gather(*futures), 10)
        return answered_early, transactions

    answered_early, transactions = asyncio.run(main())
    assert answered_early == [False, False]
    assert [sorted(w.claims) for w in transactions] == [["msg_0", "msg_1", "msg_2"]]


def test_a_gathered_write_ahead_waits_at_most_the_stores_write_gather() -> None:
    import asyncio

    async def main() -> list[Any]:
        writer, transactions = _gather_writer(gather=0.02)  # nobody else comes: it goes alone
        await asyncio.wait_for(writer.submit(_ahead_write(1)), 10)
        return transactions

    assert len(asyncio.run(main())) == 1


@pytest.mark.parametrize(("gather", "claimed"), [(0.0, True), (30.0, False)])
def test_write_aheads_are_not_held_without_write_gather_or_claims(gather: float, claimed: bool) -> None:
    import asyncio

    async def main() -> list[Any]:
        writer, transactions = _gather_writer(gather=gather)
        first = writer.submit(_ahead_write(1, claimed=claimed))
        await asyncio.wait_for(first, 10)  # not held for a second request (a send_many's, or SQLite's)
        await asyncio.wait_for(writer.submit(_ahead_write(2, claimed=claimed)), 10)
        return transactions

    assert len(asyncio.run(main())) == 2


class Looker(Fake):
    """Finds messages by client reference."""

    name = "looker"
    capabilities = Capabilities(bulk=False, max_batch=1, client_reference=True)

    def find_by_reference(self, message_id: str, to: str) -> Operation[DeliveryReport | None]:
        yield self.request("GET", "/messages", params={"ref": message_id})
        raise AssertionError("answered by the test")  # pragma: no cover


def _unknown(age: float, status: Status = Status.UNKNOWN) -> MessageRecord:
    at = utcnow() - timedelta(seconds=age)
    return MessageRecord(tenant="acme", message_id="m1", to="+2348030000001", status=status, provider="l",
                         created_at=at, updated_at=at)


def _looker_run() -> camp_plans.CampaignRun:
    cfg = TenantConfig.model_validate({"default_region": "NG", "providers": {
        "l": {"plugin": "looker", "base_url": "http://l", "timeout": 5}}})
    prov = Looker(ProviderSettings.model_validate(cfg.providers["l"].model_dump()), instance_name="l")
    p = TenantPolicy("acme", cfg, lambda name: prov, PluginManager(load_entry_points=False).hook)
    settings = type("S", (), {"text": "x", "template": None, "sender": None, "provider": None, "kind": None})()
    return camp_plans.CampaignRun(p, "c", "me", settings)


def test_campaign_recovery_takes_the_found_message_s_cost_and_segments() -> None:
    """One rule with the status poller (:func:`smsgate.core.received.found_update`)."""
    run_ = _looker_run()
    report = DeliveryReport(provider="l", provider_message_id="v1", status=Status.SENT, cost=Decimal("0.02"),
                            segments=2)
    steps: list[Step] = []

    def answer(step: Step) -> Any:
        steps.append(step)
        if isinstance(step, Call):
            assert step.fallback  # an open breaker skips the lookup
            return report
        return LogResult()

    found, _ = run(camp_plans._look_up(run_, _unknown(600), _row(1, "m1")), answer)
    # the update is logged by the caller, with the recipient's state (one write: test_verify6)
    assert isinstance(found, camp_plans._Found) and not [s for s in steps if isinstance(s, Log)]
    update = found.update
    assert (update.status, update.provider_message_id, update.cost, update.segments) == (
        Status.SENT, "v1", Decimal("0.02"), 2)


@pytest.mark.parametrize(("age", "answer_", "verdict"), [
    (600, None, False), (5, None, None), (600, CircuitOpen("open", provider="l"), None), (600, TransportError("down", provider="l"), None)])
def test_campaign_recovery_verdicts(age: float, answer_: Any, verdict: bool | None) -> None:
    """Never received only once the provider had time (2 x timeout) after the message was
    marked ``unknown``; an open breaker or a failed lookup tells nothing."""
    run_ = _looker_run()

    def answer(step: Step) -> Any:
        if isinstance(answer_, Exception):
            raise answer_
        return answer_

    found, _ = run(camp_plans._look_up(run_, _unknown(age), _row(1, "m1")), answer)
    assert found is verdict


@pytest.mark.parametrize(("answer_", "verdict"), [
    (None, None), (DeliveryReport(provider="l", provider_message_id="v1", status=Status.SENT), True)])
def test_a_taken_over_queued_message_is_never_called_not_received_at_the_takeover(
        answer_: Any, verdict: bool | None) -> None:
    """A dead runner's ``queued`` message, logged ten minutes ago: a try of its request may have
    left until its claims lapsed, just before this takeover (a retry after a 429's Retry-After,
    a failover waiting for a limit), so "not found" proves nothing yet; "found" does."""
    run_ = _looker_run()
    found, _ = run(camp_plans._look_up(run_, _unknown(600, Status.QUEUED), _row(1, "m1")),
                   lambda step: answer_ if isinstance(step, Call) else LogResult())
    assert (isinstance(found, camp_plans._Found) if verdict else found is verdict)


class _StatusRecorder:
    """An application's ``smsgate_on_status`` hook, recording its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Status, str | None]] = []

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: DeliveryReport) -> None:
        self.calls.append((tenant, message_id, report.status, report.raw_status))


@pytest.mark.parametrize(("answer_", "status", "raw"), [
    (DeliveryReport(provider="l", provider_message_id="v1", status=Status.SENT), Status.SENT, None),
    (None, Status.FAILED, "not_received")])
def test_campaign_recovery_tells_the_status_hook_what_it_changed(answer_: Any, status: Status, raw: str | None
                                                                 ) -> None:
    """A message campaign recovery finds at the vendor, or settles never received, calls
    ``smsgate_on_status`` as the poller does; only when the write changed it (not twice)."""
    run_ = _looker_run()
    recorder = _StatusRecorder()
    pm = PluginManager(load_entry_points=False)
    pm.register(recorder)
    run_.policy.hook = pm.hook
    rec = _unknown(600)

    def answer(changed: set[str]) -> Callable[[Step], Any]:
        def give(step: Step) -> Any:
            if isinstance(step, Query):
                assert step.method == "messages_by_id"
                return {"m1": rec}
            if isinstance(step, Call):
                return answer_
            assert isinstance(step, Log)
            return LogResult(changed=changed)
        return give

    run(camp_plans.resolve(run_, [_row(1, "m1")], lookup=True), answer({"m1"}))
    assert recorder.calls == [("acme", "m1", status, raw)]
    run(camp_plans.resolve(run_, [_row(1, "m1")], lookup=True), answer(set()))
    assert len(recorder.calls) == 1  # the write changed nothing: no call


def test_the_send_path_makes_no_closure_cells_per_request() -> None:
    # a closure (or, before Python 3.12, a comprehension) over a function's variables makes them
    # cells on every call: objects each request in flight keeps alive for the garbage collector
    from smsgate.gateway import AsyncGateway

    assert deliver._attempt.__code__.co_cellvars == ()
    assert deliver._deliver.__code__.co_cellvars == ()
    assert AsyncGateway._call.__code__.co_cellvars == ()


def _slow_batches(events: list[tuple[str, str]], n: int, seconds: float) -> Any:
    """A feed of one chunk of ``n`` batches, each ``seconds`` long (its start and end recorded)."""
    from smsgate.core.drive import Batch

    def batch(tag: str) -> Plan[dict[str, Any]]:
        events.append(("start", tag))
        time.sleep(seconds)
        events.append(("end", tag))
        return {tag: tag}
        yield  # pragma: no cover

    chunks = iter([[Batch("a", 1, batch(str(i))) for i in range(n)]])

    def chunk(batches: list[Any]) -> Plan[list[Any]]:
        return batches
        yield  # pragma: no cover

    return lambda: (chunk(c) if (c := next(chunks, None)) is not None else None)


def test_ctrl_c_while_the_sync_feed_starts_its_workers_lets_none_send() -> None:
    """Ctrl-C while the send threads are being started (each makes its HTTP client first): no
    batch runs, then or after. (The interruption escaped at once while the threads started
    already sent: a campaign run released its claims under them, and a claim whose write-ahead
    committed after that release read it was put back to ``pending`` and sent twice.)"""
    from smsgate.core.drive import LogWriter, SyncPlanDriver
    from smsgate.store.memory import MemoryStore

    made = [0]

    def thread() -> Any:
        made[0] += 1
        if made[0] == 3:  # Ctrl-C while the third worker's client is made
            raise KeyboardInterrupt
        return contextlib.nullcontext()

    store = MemoryStore()
    driver = SyncPlanDriver(store, LogWriter(store, "acme"), lambda step, stop: None, thread=thread)
    events: list[tuple[str, str]] = []
    with pytest.raises(KeyboardInterrupt):
        driver.drive_feed(_slow_batches(events, 8, 0.05), concurrency=4)
    time.sleep(0.3)  # a batch taken by a worker started before the Ctrl-C would show by now
    assert events == []


_SECOND_CTRL_C = """
import os, signal, threading, time
from smsgate.core.drive import Batch, LogWriter, SyncPlanDriver
from smsgate.store.memory import MemoryStore
events = []
def batch(tag):
    events.append(("start", tag))
    if tag == "0":  # Ctrl-C twice while the batches are in flight
        for _ in range(2):
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
    events.append(("end", tag))
    return {tag: tag}
    yield
def chunk():
    return [Batch("a", 1, batch(str(i))) for i in range(4)]
    yield
chunks = iter([chunk()])
store = MemoryStore()
driver = SyncPlanDriver(store, LogWriter(store, "acme"), lambda step, stop: None)
try:
    driver.drive_feed(lambda: next(chunks, None), concurrency=2)
except KeyboardInterrupt:
    print(sorted(events))
"""


def test_a_second_ctrl_c_does_not_cut_short_the_wait_for_the_batches_in_flight() -> None:
    """Ctrl-C twice in the sync feed: the second one does not make it leave before the batches
    in flight end (it did: a campaign run then released claims whose requests were still going)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SECOND_CTRL_C], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(sorted([("start", "0"), ("start", "1"), ("end", "0"), ("end", "1")]))
