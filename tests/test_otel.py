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
