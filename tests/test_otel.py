"""The OpenTelemetry plugin: spans and metrics from real sends through the echo emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Gateway
from smsgate.contrib.otel import OpenTelemetry
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer


@pytest.fixture
def echo() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count  # a histogram: how many recorded
                    out.setdefault(metric.name, []).append((dict(point.attributes), value))
    return out


def test_spans_per_send_and_per_request_and_metrics_without_text_or_numbers(
        echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    pm.register(OpenTelemetry(tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[reader])))
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": {
        "plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
        "max_retries": 0}}}}}
    with Gateway(cfg, plugins=pm) as gw:
        t = gw.tenant("acme")
        ok = t.send("08031234567", "secret text 1234")
        ctl.fault(kind="status", status=400, count=1)  # the vendor refuses the next one
        refused = t.send_many(["08031234568"], "secret text 1234")[0]
        t.status(ok.message_id)  # a lookup: delivered
    spans = exporter.get_finished_spans()
    sends = [s for s in spans if s.name == "smsgate.send"]
    calls = [s for s in spans if s.name == "smsgate.provider.call"]
    assert len(sends) == 2 and len(calls) == 3  # two sends; two sending requests and a lookup
    by_id = {s.attributes["smsgate.message_id"]: s for s in sends}
    assert by_id[ok.message_id].attributes["smsgate.status"] == "submitted"
    assert by_id[ok.message_id].status.status_code is not StatusCode.ERROR
    assert by_id[refused.message_id].status.status_code is StatusCode.ERROR
    assert sum(1 for c in calls if c.attributes.get("error.type")) == 1
    assert all(c.end_time >= c.start_time and c.attributes["smsgate.instance"] == "one" for c in calls)
    for span in spans:  # never the text, never a number
        shown = repr(dict(span.attributes))
        assert "secret text" not in shown and "803123456" not in shown
    points = metric_points(reader)
    messages = {(a["smsgate.status"], a["smsgate.provider"]): v for a, v in points["smsgate.messages"]}
    assert messages[("submitted", "one")] == 1 and sum(messages.values()) == 2
    assert [v for a, v in points["smsgate.status_changes"] if a["smsgate.status"] == "delivered"] == [1]
    assert sum(v for _, v in points["smsgate.provider.duration"]) == 3
    assert sum(v for _, v in points["smsgate.provider.errors"]) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_provider_call_span_is_the_child_of_its_send_or_linked_to_its_bulk_sends(
        echo: tuple[str, EmulatorControl], mode: str) -> None:
    """A trace shows each request under the message it sent: a single send's
    ``smsgate.provider.call`` is the child of its ``smsgate.send`` (both under the caller's
    span), a bulk request's links to each of its messages' sends (it had no parent of its own
    among them before: every call span stood beside the sends, unrelated)."""
    import asyncio

    from smsgate import AsyncGateway

    url, _ = echo
    exporter = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    pm.register(OpenTelemetry(tracer_provider=tracing, meter_provider=MeterProvider()))
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": {
        "plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}}}}}
    app = tracing.get_tracer("app")
    if mode == "sync":
        with Gateway(cfg, plugins=pm) as gw, app.start_as_current_span("request"):
            one = gw.tenant("acme").send("08031234567", "hi")
            many = gw.tenant("acme").send_many(["08031234568", "08031234569", "08031234560"], "hi")
    else:
        async def main() -> Any:
            async with AsyncGateway(cfg, plugins=pm) as gw:
                with app.start_as_current_span("request"):
                    return (await gw.tenant("acme").send("08031234567", "hi"),
                            await gw.tenant("acme").send_many(["08031234568", "08031234569", "08031234560"], "hi"))
        one, many = asyncio.run(main())
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.name == "request")
    sends = {s.attributes["smsgate.message_id"]: s for s in spans if s.name == "smsgate.send"}
    calls = [s for s in spans if s.name == "smsgate.provider.call"]
    # the echo vendor takes 2 messages a bulk request: the 3 go as a bulk of 2 and a single send
    assert len(sends) == 4 and len(calls) == 3
    assert all(s.parent.span_id == request.context.span_id for s in sends.values())
    singles = [c for c in calls if not c.links]
    assert len(singles) == 2 and all(c.context.trace_id == request.context.trace_id for c in singles)
    assert sends[one.message_id].context.span_id in {c.parent.span_id for c in singles}
    bulk = next(c for c in calls if c.links)
    assert bulk.parent.span_id == request.context.span_id and len(bulk.links) == 2
    linked = {link.context.span_id for link in bulk.links}
    alone = next(c for c in singles if c.parent.span_id != sends[one.message_id].context.span_id)
    assert linked | {alone.parent.span_id} == {sends[r.message_id].context.span_id for r in many}
