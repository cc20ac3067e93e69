"""OpenTelemetry for smsgate: a span per send and per provider request, and metrics.

Extra ``smsgate[otel]`` (``opentelemetry-api``; an SDK and an exporter are the app's
choice). Register the plugin on a gateway's plugin manager::

    from smsgate.contrib.otel import OpenTelemetry

    gw.plugins.register(OpenTelemetry())     # the global tracer and meter providers

It uses only smsgate's hooks (:mod:`smsgate.hookspecs`), so it sees what every
driver does (sync, async, campaigns, Celery workers):

* span ``smsgate.send`` per message, from just before it goes to a provider until its
  answer (attributes: tenant, message id, provider, status, segments, error code; the
  span's status is an error when the send failed). Never the text or the number.
* span ``smsgate.provider.call`` per request to a provider instance (its duration, the
  seconds it waited for rate limits, the error type): the child of its message's
  ``smsgate.send`` span for a single send, linked to each message's span (up to
  :data:`MAX_LINKS`) for a bulk send; a lookup's in the caller's context.
* metrics: ``smsgate.messages`` (counter, by tenant, provider and status),
  ``smsgate.status_changes`` (counter, by tenant, provider and status, from reports,
  lookups and polling), ``smsgate.provider.duration`` and ``smsgate.provider.limit_wait``
  (histograms, seconds, by tenant and instance), ``smsgate.provider.errors`` (counter, by
  tenant, instance and error type). Prometheus: use OpenTelemetry's Prometheus exporter.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from smsgate.errors import ConfigError
from smsgate.hookspecs import hookimpl
from smsgate.models import DeliveryReport, OutboundMessage, SendResult, Status

__all__ = ["OpenTelemetry"]

#: Sends whose span is open at once, at most (a send whose answer never comes is dropped).
MAX_OPEN = 10_000

#: Links from a bulk request's ``smsgate.provider.call`` span to its messages' spans, at most.
MAX_LINKS = 128

_FAILED = {Status.FAILED, Status.REJECTED, Status.UNKNOWN}


class OpenTelemetry:
    """A smsgate plugin recording spans and metrics through OpenTelemetry.

    ``tracer_provider`` / ``meter_provider``: the providers to use (default: the global
    ones, ``opentelemetry.trace.get_tracer_provider()`` and its metrics twin).
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigError("smsgate.contrib.otel needs OpenTelemetry: pip install 'smsgate[otel]'") from None
        from opentelemetry.trace import Link, SpanKind, StatusCode, set_span_in_context

        self._link, self._in_context = Link, set_span_in_context
        self._kind_client = SpanKind.CLIENT
        self._error = StatusCode.ERROR
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("smsgate")
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("smsgate")
        self._messages = meter.create_counter(
            "smsgate.messages", unit="{message}", description="Messages answered by a provider, by status")
        self._changes = meter.create_counter(
            "smsgate.status_changes", unit="{message}", description="Status changes from reports and lookups")
        self._duration = meter.create_histogram(
            "smsgate.provider.duration", unit="s", description="Duration of requests to a provider instance")
        self._waited = meter.create_histogram(
            "smsgate.provider.limit_wait", unit="s", description="Time requests waited for rate limits")
        self._errors = meter.create_counter(
            "smsgate.provider.errors", unit="{request}", description="Failed requests to a provider instance")
        self._open: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ sends
    @hookimpl
    def smsgate_before_send(self, tenant: str, message: OutboundMessage) -> None:
        """Open the message's ``smsgate.send`` span."""
        span = self._tracer.start_span("smsgate.send", kind=self._kind_client,
                                       attributes={"smsgate.tenant": tenant,
                                                   "smsgate.message_id": message.message_id})
        with self._lock:
            self._open[(tenant, message.message_id)] = span
            while len(self._open) > MAX_OPEN:
                _, dropped = self._open.popitem(last=False)
                dropped.end()

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: OutboundMessage, result: SendResult) -> None:
        """Close the send's span with its outcome; count the message."""
        with self._lock:
            span = self._open.pop((tenant, message.message_id), None)
        status = result.status.value
        attributes = {"smsgate.tenant": tenant, "smsgate.provider": result.provider or "", "smsgate.status": status}
        self._messages.add(1, attributes)
        if span is None:
            return
        span.set_attributes({**attributes, "smsgate.segments": result.segments or 0,
                             "smsgate.error_code": result.error_code or ""})
        if result.status in _FAILED:
            span.set_status(self._error, result.error_code or status)
        span.end()

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: DeliveryReport) -> None:
        """Count a status change."""
        self._changes.add(1, {"smsgate.tenant": tenant, "smsgate.provider": report.provider or "",
                              "smsgate.status": report.status.value})

    # ------------------------------------------------------------------ provider calls
    @hookimpl
    def smsgate_on_call(self, tenant: str, instance: str, error: BaseException | None, seconds: float,
                        waited: float, message_ids: tuple[str, ...]) -> None:
        """Record a ``smsgate.provider.call`` span (after the fact: the hook runs at its end),
        under its message's send span or linked to its messages' spans, and metrics."""
        attributes = {"smsgate.tenant": tenant, "smsgate.instance": instance}
        end = time.time_ns()
        context, links = None, None
        if message_ids:
            with self._lock:
                sends = [span for span in (self._open.get((tenant, i)) for i in message_ids[:MAX_LINKS])
                         if span is not None]
            if len(message_ids) == 1 and sends:
                context = self._in_context(sends[0])
            elif sends:
                links = [self._link(span.get_span_context()) for span in sends]
        span = self._tracer.start_span("smsgate.provider.call", context=context, kind=self._kind_client,
                                       start_time=end - int(seconds * 1e9), links=links,
                                       attributes={**attributes, "smsgate.limit_wait_s": waited})
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(self._error, type(error).__name__)
            self._errors.add(1, {**attributes, "error.type": type(error).__name__})
        span.end(end_time=end)
        self._duration.record(seconds, attributes)
        self._waited.record(waited, attributes)
