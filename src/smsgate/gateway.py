"""Gateway and AsyncGateway: the per-tenant API and the only place with policy.

::

    from smsgate import Gateway

    with Gateway("smsgate.toml") as gw:
        acme = gw.tenant("acme")
        result = acme.send("08012345678", "Your code is 123456")
        print(result.status, acme.status(result.message_id).status)

For every message the gateway: normalises the number to E.164 with the tenant's
region, refuses opted-out numbers (:class:`~smsgate.errors.OptedOut`, recorded
as ``rejected``), honours idempotency keys (a key already used returns the first
message, never sends again), renders templates, picks providers by route and
capability, sends, fails over to the next provider only when the failed attempt
certainly did not reach the vendor, and logs the message with its status history.

:class:`Gateway` drives provider operations with :class:`httpx.Client`,
:class:`AsyncGateway` with :class:`httpx.AsyncClient`; both run the very same
provider code and the same policy (:class:`_TenantCore`).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from smsgate import phone as phonelib
from smsgate import text as textlib
from smsgate.config import Settings, TenantConfig, load_config
from smsgate.errors import (
    ConfigError,
    MalformedResponse,
    NotFound,
    OptedOut,
    ProviderError,
    SmsgateError,
    UnknownOutcome,
    Unsupported,
    ValidationError,
)
from smsgate.ids import new_id
from smsgate.models import (
    Attachment,
    DeliveryReport,
    Location,
    MessageRecord,
    OptOut,
    OutboundMessage,
    SendResult,
    Stats,
    Status,
    StatusEvent,
    Template,
    utcnow,
)
from smsgate.plugins import PluginManager, default_plugins
from smsgate.provider import Operation, Paged, Provider
from smsgate.store import MessageUpdate, Store, open_store
from smsgate.transport import AsyncDriver, RetryPolicy, SyncDriver, async_client, default_client

if TYPE_CHECKING:
    from smsgate.campaigns import CampaignManager
    from smsgate.contacts import ContactLists
    from smsgate.transport import AsyncHTTPClient

__all__ = ["AsyncGateway", "AsyncTenant", "Gateway", "MessageSpec", "Tenant"]

log = logging.getLogger("smsgate")

T = TypeVar("T")

#: ``send_many`` prepares (normalises, checks opt-outs, logs as queued, plans) this many
#: recipients at a time, just ahead of sending them (see ``_TenantBase._prepare_many``).
SEND_CHUNK = 1000

#: A sans-I/O delivery plan: yields (provider instance, operation), returns ``T``.
Plan = Generator[tuple[str, Operation[Any]], Any, T]

ConfigSource = Settings | str | Path | Mapping[str, Any] | None


@dataclass
class MessageSpec:
    """One message for :meth:`Tenant.send_many` (a plain number string also works)."""

    to: str
    text: str | None = None
    variables: Mapping[str, str] | None = None
    reference: str | None = None
    idempotency_key: str | None = None


@dataclass
class PlannedBatch:
    """One unit of dispatch: a plan for ``size`` messages, first tried on ``instance``."""

    instance: str
    size: int
    plan: Plan[dict[str, SendResult]]


@dataclass
class _Prepared:
    """A message that passed the policy checks, or the result that replaces sending."""

    key: str
    message: OutboundMessage | None
    candidates: list[str]
    result: SendResult | None = None
    error: SmsgateError | None = None


def _can_fail_over(exc: ProviderError) -> bool:
    """Whether a failed attempt certainly did not deliver, so another provider may try."""
    return not isinstance(exc, (UnknownOutcome, MalformedResponse))


class _UpdateBuffer:
    """The post-send status writes of one ``send_many``, written to the store in batches.

    One write transaction per sent message was the largest single cost of a bulk
    send; this buffer writes every ``size`` updates, when the oldest buffered update
    is ``max_age`` seconds old (checked as updates arrive and, under asyncio, by a
    timer), and at the end of the ``send_many`` (also when it fails).

    What a crash (``kill -9``) in between leaves: a few messages still ``queued``
    in the log although their request left. The log never claims more than
    happened, and ``queued`` after a crash already means "may have been sent" (the
    campaign engine resolves such messages by client reference and never re-sends
    them blindly). A delivery report that arrives before its message's update is
    written finds no provider message id to match; the age bound keeps that window
    short, and :meth:`Gateway.ingest` writes the buffers of its own process and
    matches again before it gives a report up.
    """

    size = 256
    max_age = 0.1

    def __init__(self, core: _TenantCore, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.core = core
        self.updates: list[MessageUpdate] = []
        self.since = 0.0
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._timer: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()  # ingest() may flush from another thread

    def __enter__(self) -> _UpdateBuffer:
        self.core.buffers.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.flush()
        finally:
            self.core.buffers.discard(self)

    def add(self, update: MessageUpdate) -> None:
        """Buffer one update; writes the batch when it is full or old enough."""
        with self._lock:
            updates = self.updates
            if not updates:
                self.since = time.monotonic()
                if self._loop is not None:
                    self._timer = self._loop.call_later(self.max_age, self.flush)
            updates.append(update)
            if len(updates) < self.size and time.monotonic() - self.since < self.max_age:
                return
        self.flush()

    def flush(self) -> None:
        """Write every buffered update now (one store transaction)."""
        with self._lock:
            if self._timer is not None and threading.get_ident() == self._loop_thread:
                self._timer.cancel()  # from another thread it is left to fire (and find little to do)
                self._timer = None
            if self.updates:
                self.core.store.update_messages(self.core.name, self.updates)
                self.updates = []


class _GatewayCore:
    """State shared by Gateway and AsyncGateway: config, store, plugins, providers."""

    def __init__(
        self,
        config: ConfigSource,
        store: Store | str | None,
        plugins: PluginManager | None,
    ) -> None:
        self.settings = config if isinstance(config, Settings) else load_config(config)
        self.plugins = plugins or default_plugins()
        if store is None:
            store = self.settings.store
        self.store = open_store(store) if isinstance(store, str) else store
        self._own_store = not isinstance(store, Store)
        self._providers: dict[tuple[str, str], Provider] = {}
        self._cores: dict[str, _TenantCore] = {}

    def provider(self, tenant: str, instance: str) -> Provider:
        key = (tenant, instance)
        prov = self._providers.get(key)
        if prov is None:
            cfg = self.settings.tenant(tenant)
            try:
                settings = cfg.providers[instance]
            except KeyError:
                raise ConfigError(
                    f"tenant {tenant!r} has no provider {instance!r} "
                    f"(configured: {', '.join(cfg.providers) or 'none'})"
                ) from None
            cls = self.plugins.get_provider_class(settings.plugin)
            prov = cls(settings, instance_name=instance)
            self._providers[key] = prov
        return prov

    def policy(self, tenant: str, instance: str) -> RetryPolicy:
        settings = self.settings.tenant(tenant).providers[instance]
        prov = self.provider(tenant, instance)
        return RetryPolicy(
            max_retries=settings.max_retries,
            provider=instance,
            not_processed=getattr(prov, "not_processed_statuses", frozenset({503})),
        )

    def core(self, tenant: str) -> _TenantCore:
        core = self._cores.get(tenant)
        if core is None:
            core = _TenantCore(self, tenant, self.settings.tenant(tenant))
            self._cores[tenant] = core
        return core

    def check(self) -> list[str]:
        """Instantiate every configured provider; returns one line per provider."""
        lines = []
        for tname, tcfg in self.settings.tenants.items():
            for iname in tcfg.providers:
                prov = self.provider(tname, iname)
                lines.append(f"{tname}/{iname}: {prov.name} at {prov.base_url}")
        return lines

    def close_store(self) -> None:
        if self._own_store:
            self.store.close()


class _TenantCore:
    """The policy for one tenant, free of I/O style (used by sync and async)."""

    def __init__(self, gw: _GatewayCore, name: str, config: TenantConfig) -> None:
        self.gw = gw
        self.name = name
        self.config = config
        self.store = gw.store
        self.normalizer = phonelib.PhoneNormalizer(config.default_region)
        self.hook = gw.plugins.hook
        #: only rules with ``countries`` need the number's region (a full phonenumbers parse)
        self.need_region = any(rule.countries for rule in config.routes)
        #: update buffers of the ``send_many`` calls in progress (see :class:`_UpdateBuffer`)
        self.buffers: set[_UpdateBuffer] = set()
        self._segments: dict[str, int | None] = {}

    # ------------------------------------------------------------ preparing
    def normalize(self, raw: str) -> str:
        return self.normalizer.normalize(raw)

    def candidates(self, msg: OutboundMessage, provider: str | None) -> list[str]:
        if provider is not None:
            if provider not in self.config.providers:
                raise ConfigError(
                    f"tenant {self.name!r} has no provider {provider!r} "
                    f"(configured: {', '.join(self.config.providers) or 'none'})"
                )
            names = [provider]
        else:
            region = phonelib.region_of(msg.to) if self.need_region else None
            names = self.config.route_for(msg.to, region)
            if not names:
                raise ConfigError(f"tenant {self.name!r} has no route for {msg.to}")
        if msg.has_media:
            capable = []
            for n in names:
                caps = self.gw.provider(self.name, n).capabilities
                if (not msg.attachments or caps.media) and (msg.location is None or caps.location):
                    capable.append(n)
            if not capable:
                feature = "media attachments" if msg.attachments else "locations"
                raise Unsupported(
                    ", ".join(names), feature, "route the message to a provider that takes media"
                )
            names = capable
        return names

    def build(
        self,
        to: str,
        text: str | None,
        *,
        sender: str | None,
        template: Template | None,
        variables: Mapping[str, str] | None,
        reference: str | None,
        idempotency_key: str | None,
        attachments: Sequence[Attachment] | None,
        location: Location | None,
        provider_options: Mapping[str, Any] | None,
        campaign_id: str | None,
    ) -> OutboundMessage:
        vars_ = {k: str(v) for k, v in (variables or {}).items()}
        if template is not None:
            body = template.render(vars_)
        elif text is not None:
            # A placeholder without a value is an error, never sent as "{name}" (nor as a blank).
            body = textlib.render_template(text, vars_) if vars_ or textlib.has_placeholders(text) else text
        else:
            raise ValidationError("either text or template is required", field="text")
        if self.config.smart_encoding:
            body = textlib.smart_encode(body)
        return OutboundMessage(
            to=self.normalize(to),
            text=body,
            sender=sender or None,
            message_id=new_id("msg"),
            reference=reference,
            idempotency_key=idempotency_key,
            variables=vars_,
            attachments=list(attachments or []),
            location=location,
            campaign_id=campaign_id,
            provider_options=dict(provider_options or {}),
        )

    def for_provider(self, msg: OutboundMessage, instance: str, template: Template | None) -> OutboundMessage:
        """The message as a given provider instance should receive it."""
        settings = self.config.providers[instance]
        prov = self.gw.provider(self.name, instance)
        update: dict[str, Any] = {"sender": msg.sender or settings.sender or self.config.sender}
        if template is not None and prov.capabilities.templates:
            tid = template.provider_ids.get(instance) or template.provider_ids.get(prov.name)
            update["template_id"] = tid
        return msg.model_copy(update=update)

    def prepare(self, msg: OutboundMessage, provider: str | None, *, raise_errors: bool) -> _Prepared:
        """Opt-out and idempotency checks, routing, and the queued log entry."""
        now = utcnow()
        if msg.idempotency_key:
            existing = self.store.claim_idempotency_key(self.name, msg.idempotency_key, msg.message_id)
            if existing is not None:
                return _Prepared(msg.message_id, None, [], result=self._replay(existing, msg.to))
        segments = self.segments(msg.text)
        if self.store.is_opted_out(self.name, msg.to):
            err = OptedOut(msg.to, self.name)
            self._insert(msg, Status.REJECTED, now, segments, error="opted out", raw="opted_out")
            result = SendResult(
                message_id=msg.message_id, to=msg.to, status=Status.REJECTED,
                error=str(err), error_code="opted_out", segments=segments,
            )
            if raise_errors:
                raise err
            return _Prepared(msg.message_id, None, [], result=result, error=err)
        try:
            names = self.candidates(msg, provider)
        except (ConfigError, Unsupported) as exc:
            self._insert(msg, Status.REJECTED, now, segments, error=str(exc), raw="no_route")
            if raise_errors:
                raise
            return _Prepared(msg.message_id, None, [], result=SendResult(
                message_id=msg.message_id, to=msg.to, status=Status.REJECTED,
                error=str(exc), error_code="unsupported" if isinstance(exc, Unsupported) else "no_route",
            ), error=exc)
        self._insert(msg, Status.QUEUED, now, segments)
        return _Prepared(msg.message_id, msg, names)

    def prepare_many(
        self, msgs: Sequence[OutboundMessage], provider: str | None
    ) -> list[_Prepared]:
        """Batch version of :meth:`prepare`: one opt-out query and one insert."""
        now = utcnow()
        out: list[_Prepared | None] = [None] * len(msgs)
        live: list[int] = []
        for i, msg in enumerate(msgs):
            if msg.idempotency_key:
                existing = self.store.claim_idempotency_key(self.name, msg.idempotency_key, msg.message_id)
                if existing is not None:
                    out[i] = _Prepared(msg.message_id, None, [], result=self._replay(existing, msg.to))
                    continue
            live.append(i)
        opted = self.store.opted_out(self.name, {msgs[i].to for i in live})
        records: list[MessageRecord] = []
        for i in live:
            msg = msgs[i]
            segments = self.segments(msg.text)
            if msg.to in opted:
                err: SmsgateError = OptedOut(msg.to, self.name)
                records.append(self._record(msg, Status.REJECTED, now, segments, "opted out", "opted_out"))
                out[i] = _Prepared(msg.message_id, None, [], result=SendResult(
                    message_id=msg.message_id, to=msg.to, status=Status.REJECTED,
                    error=str(err), error_code="opted_out", segments=segments,
                ), error=err)
                continue
            try:
                names = self.candidates(msg, provider)
            except (ConfigError, Unsupported) as exc:
                records.append(self._record(msg, Status.REJECTED, now, segments, str(exc), "no_route"))
                out[i] = _Prepared(msg.message_id, None, [], result=SendResult(
                    message_id=msg.message_id, to=msg.to, status=Status.REJECTED, error=str(exc),
                    error_code="unsupported" if isinstance(exc, Unsupported) else "no_route",
                ), error=exc)
                continue
            records.append(self._record(msg, Status.QUEUED, now, segments))
            out[i] = _Prepared(msg.message_id, msg, names)
        self.store.insert_messages(records)
        return [p for p in out if p is not None]

    def _replay(self, message_id: str, to: str) -> SendResult:
        try:
            rec = self.store.get_message(self.name, message_id)
        except NotFound:
            return SendResult(message_id=message_id, to=to, status=Status.UNKNOWN,
                              error="idempotency key already used; its message was not recorded")
        return SendResult(
            message_id=rec.message_id, to=rec.to, status=rec.status, raw_status=rec.raw_status,
            provider=rec.provider or "", provider_message_id=rec.provider_message_id,
            batch_id=rec.batch_id, segments=rec.segments, cost=rec.cost, currency=rec.currency,
            error=rec.error,
        )

    def _record(
        self, msg: OutboundMessage, status: Status, now: Any, segments: int | None,
        error: str | None = None, raw: str | None = None,
    ) -> MessageRecord:
        return MessageRecord(
            tenant=self.name, message_id=msg.message_id, to=msg.to, status=status,
            raw_status=raw, sender=msg.sender, reference=msg.reference,
            campaign_id=msg.campaign_id, segments=segments, error=error,
            created_at=now, updated_at=now,
            history=[StatusEvent(status=status, raw_status=raw, at=now, source="gateway", detail=error)],
        )

    def _insert(self, msg: OutboundMessage, status: Status, now: Any, segments: int | None,
                error: str | None = None, raw: str | None = None) -> None:
        self.store.insert_messages([self._record(msg, status, now, segments, error, raw)])

    # -------------------------------------------------------------- results
    def segments(self, text: str) -> int | None:
        """Segments of ``text`` (memoised: a bulk send repeats one text)."""
        if not text:
            return None
        cache = self._segments
        n = cache.get(text, -1)
        if n == -1:
            if len(cache) >= 1024:
                cache.clear()
            n = cache[text] = textlib.segment_info(text).segments
        return n

    def before_send(self, msg: OutboundMessage) -> None:
        hook = self.hook.smsgate_before_send
        if hook.get_hookimpls():  # calling a hook nobody implements still costs a few us
            hook(tenant=self.name, message=msg)

    def success(self, msg: OutboundMessage, instance: str, result: SendResult,
                sender: str | None = None) -> MessageUpdate:
        """The log update for a sent message (``sender``: the one it went out with)."""
        result.message_id = msg.message_id
        result.provider = instance
        result.to = msg.to
        if result.segments is None:
            result.segments = self.segments(msg.text)
        if result.cost is None:
            price = self.config.providers[instance].price_per_segment
            if price is not None and result.segments:
                from decimal import Decimal

                result.cost = Decimal(str(price)) * result.segments
                result.currency = result.currency or self.config.providers[instance].currency
        return MessageUpdate(
            message_id=msg.message_id, status=result.status, at=utcnow(),
            raw_status=result.raw_status, source=instance, provider=instance,
            provider_message_id=result.provider_message_id, batch_id=result.batch_id,
            segments=result.segments, cost=result.cost, currency=result.currency,
            error=result.error, sender=sender,
        )

    def failure(self, msg: OutboundMessage, instance: str | None, exc: Exception) -> tuple[SendResult, MessageUpdate]:
        status = Status.UNKNOWN if isinstance(exc, (UnknownOutcome, MalformedResponse)) else Status.FAILED
        code = type(exc).__name__
        result = SendResult(
            message_id=msg.message_id, to=msg.to, status=status, provider=instance or "",
            error=str(exc), error_code=code,
        )
        update = MessageUpdate(
            message_id=msg.message_id, status=status, at=utcnow(), raw_status=code,
            source=instance or "gateway", provider=instance, error=str(exc),
            detail=str(exc)[:300],
        )
        return result, update

    def fail_all(
        self, msgs: Sequence[OutboundMessage], instance: str, exc: Exception, sink: _UpdateBuffer | None = None
    ) -> dict[str, SendResult]:
        """Record the same failure for every message of a failed bulk call."""
        results, updates = {}, []
        for m in msgs:
            res, upd = self.failure(m, instance, exc)
            results[m.message_id] = res
            updates.append(upd)
        self.write(updates, sink)
        for m in msgs:
            self.after_send(m, results[m.message_id])
        return results

    def write(self, updates: list[MessageUpdate], sink: _UpdateBuffer | None) -> None:
        """Log post-send updates: now, or through the ``send_many``'s buffer."""
        if sink is None:
            self.store.update_messages(self.name, updates)
        else:
            for update in updates:
                sink.add(update)

    def after_send(self, msg: OutboundMessage, result: SendResult) -> None:
        hook = self.hook.smsgate_after_send
        if hook.get_hookimpls():
            hook(tenant=self.name, message=msg, result=result)
        if log.isEnabledFor(logging.INFO):
            log.info("sent %s to %s via %s: %s", msg.message_id, _mask(msg.to), result.provider,
                     result.status.value)

    def apply_report(self, record: MessageRecord, report: DeliveryReport, source: str) -> bool:
        changed = self.store.update_messages(self.name, [MessageUpdate(
            message_id=record.message_id, status=report.status, at=report.occurred_at,
            raw_status=report.raw_status, source=source, cost=report.cost,
            segments=report.segments, error=report.error_code,
        )])[0]
        if changed:
            self.hook.smsgate_on_status(tenant=self.name, message_id=record.message_id, report=report)
        return changed

    def result_of(self, record: MessageRecord) -> SendResult:
        return SendResult(
            message_id=record.message_id, to=record.to, status=record.status,
            raw_status=record.raw_status, provider=record.provider or "",
            provider_message_id=record.provider_message_id, batch_id=record.batch_id,
            segments=record.segments, cost=record.cost, currency=record.currency,
        )

    # ---------------------------------------------------------------- plans
    # A plan is the sans-I/O form of the delivery policy: it yields
    # ``(provider instance, operation)`` steps and receives each operation's
    # result (or has its exception thrown in). Gateway and AsyncGateway only
    # drive plans, so failover, bulk batching and logging exist once.

    def attempts(
        self, msg: OutboundMessage, names: Sequence[str], template: Template | None,
        sink: _UpdateBuffer | None = None,
    ) -> Plan[tuple[SendResult, Exception | None]]:
        """Try ``names`` in order; fail over only when the attempt certainly did not send."""
        last: Exception | None = None
        instance: str | None = None
        for instance in names:
            prov = self.gw.provider(self.name, instance)
            try:
                outgoing = self.for_provider(msg, instance, template)
                result = yield instance, prov.send(outgoing)
            except ProviderError as exc:
                last = exc
                if not _can_fail_over(exc):
                    break
                log.warning("send via %s failed (%s); trying the next provider", instance, type(exc).__name__)
                continue
            except SmsgateError as exc:  # Unsupported, ValidationError...: refused before sending
                last = exc
                continue
            self.write([self.success(msg, instance, result, outgoing.sender)], sink)
            self.after_send(msg, result)
            return result, None
        assert last is not None
        result, update = self.failure(msg, instance, last)
        self.write([update], sink)
        self.after_send(msg, result)
        return result, last

    def deliver(
        self, msg: OutboundMessage, names: Sequence[str], template: Template | None,
        sink: _UpdateBuffer | None = None,
    ) -> Plan[tuple[SendResult, Exception | None]]:
        """The plan for one prepared message (its log updates go to ``sink`` when given)."""
        self.before_send(msg)
        return (yield from self.attempts(msg, names, template, sink))

    def deliver_one(
        self, msg: OutboundMessage, names: Sequence[str], template: Template | None,
        sink: _UpdateBuffer | None = None,
    ) -> Plan[dict[str, SendResult]]:
        """:meth:`deliver` with its result keyed by message id (for batches)."""
        result, _ = yield from self.deliver(msg, names, template, sink)
        return {msg.message_id: result}

    def deliver_bulk(
        self, msgs: Sequence[OutboundMessage], names: Sequence[str], template: Template | None,
        sink: _UpdateBuffer | None = None,
    ) -> Plan[dict[str, SendResult]]:
        """One bulk call to the first provider; on a certain failure, one by one on the others."""
        first = names[0]
        prov = self.gw.provider(self.name, first)
        for m in msgs:
            self.before_send(m)
        try:
            outgoing = [self.for_provider(m, first, template) for m in msgs]
            batch = yield first, prov.send_many(outgoing)
        except SmsgateError as exc:
            retry = not isinstance(exc, ProviderError) or _can_fail_over(exc)
            if not (retry and len(names) > 1):
                return self.fail_all(msgs, first, exc, sink)
            results: dict[str, SendResult] = {}
            for m in msgs:
                results[m.message_id], _ = yield from self.attempts(m, names[1:], template, sink)
            return results
        if len(batch) != len(msgs):
            exc2 = MalformedResponse(
                f"bulk send returned {len(batch)} results for {len(msgs)} messages", provider=first
            )
            return self.fail_all(msgs, first, exc2, sink)
        results = {}
        updates = []
        for m, out, res in zip(msgs, outgoing, batch, strict=True):
            updates.append(self.success(m, first, res, out.sender))
            results[m.message_id] = res
        self.write(updates, sink)
        for m in msgs:
            self.after_send(m, results[m.message_id])
        return results

    def plans(
        self, prepared: Sequence[_Prepared], template: Template | None, sink: _UpdateBuffer | None = None,
        carry: dict[tuple[str, ...], list[OutboundMessage]] | None = None, last: bool = True,
    ) -> tuple[dict[str, SendResult], list[PlannedBatch]]:
        """Results known without sending, and the plans for the rest (bulk where possible).

        With ``sink`` the plans' post-send log updates are batched through it (the
        caller flushes it when the plans are done); without, each is written at once.

        A ``send_many`` prepared in chunks passes the same ``carry`` dict for every
        chunk and ``last=False`` but for the final one: messages for a bulk provider
        that do not fill a whole batch wait in ``carry`` and go first into the next
        chunk's batches, so the bulk calls are the same as for one large preparation.
        """
        done: dict[str, SendResult] = {}
        groups: dict[tuple[str, ...], list[OutboundMessage]] = {}
        if carry:
            groups.update(carry)  # a group seen before is bulk even if one message is left
            carry.clear()
        seen = set(groups)
        for p in prepared:
            if p.message is None:
                assert p.result is not None
                done[p.key] = p.result
            else:
                groups.setdefault(tuple(p.candidates), []).append(p.message)
        plans: list[PlannedBatch] = []
        for names, msgs in groups.items():
            caps = self.gw.provider(self.name, names[0]).capabilities
            if caps.bulk and (len(msgs) > 1 or names in seen or not last):
                size = max(1, caps.max_batch)
                limit = self.config.providers[names[0]].max_batch
                if limit is not None:
                    size = min(size, limit)
                end = len(msgs)
                if not last:
                    assert carry is not None, "plans(last=False) needs a carry dict"
                    end -= end % size
                    carry[names] = msgs[end:]
                for i in range(0, end, size):
                    chunk = msgs[i : i + size]
                    plans.append(
                        PlannedBatch(names[0], len(chunk), self.deliver_bulk(chunk, names, template, sink))
                    )
            else:
                plans.extend(PlannedBatch(names[0], 1, self.deliver_one(m, names, template, sink)) for m in msgs)
        return done, plans

    def status_plan(self, message_id: str, refresh: bool) -> Plan[MessageRecord]:
        """The record, refreshed from the provider when it is not final and can be looked up."""
        record = self.store.get_message(self.name, message_id)
        # A provider instance no longer configured cannot be asked: the log still answers.
        if (refresh and not record.status.is_final and record.provider in self.config.providers
                and record.provider_message_id):
            prov = self.gw.provider(self.name, record.provider)
            if prov.capabilities.status_lookup:
                report = yield record.provider, prov.status(self.result_of(record))
                if self.apply_report(record, report, source=f"{record.provider}:lookup"):
                    record = self.store.get_message(self.name, message_id)
        return record

    def sync_optouts_plan(self, provider: str | None) -> Plan[int]:
        """Pull opt-outs from the vendor(s) that keep them; returns how many were new."""
        names = [provider] if provider else list(self.config.providers)
        targets = [n for n in names if self.gw.provider(self.name, n).capabilities.optout_sync]
        if provider and not targets:
            raise Unsupported(provider, "opt-out sync")
        added = 0
        for name in targets:
            optouts = yield name, self.gw.provider(self.name, name).list_optouts()
            added += self.import_optouts(name, optouts)
        return added

    def push_optout_plan(self, phone: str, reason: str | None, provider: str | None) -> Plan[None]:
        """Record an opt-out locally and at every provider that accepts opt-outs."""
        e164 = self.normalize(phone)
        self.store.add_optouts(self.name, [OptOut(phone=e164, reason=reason, source="api")])
        names = [provider] if provider else list(self.config.providers)
        for name in names:
            prov = self.gw.provider(self.name, name)
            if not prov.capabilities.optout_sync:
                continue
            try:
                yield name, prov.add_optout(e164, reason)
            except Unsupported:
                continue

    def import_optouts(self, instance: str, optouts: Sequence[OptOut]) -> int:
        """Store opt-outs reported by a provider (normalised; invalid numbers skipped)."""
        clean = []
        for o in optouts:
            try:
                phone = self.normalize(o.phone)
            except ValidationError:
                log.warning("ignoring an invalid opt-out number from %s", instance)
                continue
            clean.append(o.model_copy(update={"phone": phone, "source": f"provider:{instance}"}))
        return self.store.add_optouts(self.name, clean)


def _mask(phone: str) -> str:
    """A phone number with its middle digits hidden, for logs."""
    return phone[:4] + "*" * max(0, len(phone) - 7) + phone[-3:] if len(phone) > 7 else "***"


def _specs(
    recipients: Iterable[str | MessageSpec | Mapping[str, Any]], text: str | None
) -> list[MessageSpec]:
    out = []
    for i, item in enumerate(recipients):
        if isinstance(item, str):
            spec = MessageSpec(to=item, text=text)
        elif isinstance(item, MessageSpec):
            spec = item
        elif isinstance(item, Mapping):
            try:
                spec = MessageSpec(**item)
            except TypeError as exc:
                raise ValidationError(str(exc), location=f"recipient {i}") from None
        else:
            raise ValidationError(f"expected a phone number or MessageSpec, got {type(item).__name__}",
                                  location=f"recipient {i}")
        if spec.text is None:
            spec.text = text
        out.append(spec)
    return out


class _OptOutsBase:
    def __init__(self, core: _TenantCore) -> None:
        self._core = core

    def add(self, phone: str, reason: str | None = None, source: str = "api") -> bool:
        """Opt ``phone`` out of this tenant's messages; True if it was new."""
        e164 = self._core.normalize(phone)
        return self._core.store.add_optouts(
            self._core.name, [OptOut(phone=e164, reason=reason, source=source)]
        ) == 1

    def remove(self, phone: str) -> bool:
        """Opt ``phone`` back in; True if it was opted out."""
        return self._core.store.remove_optout(self._core.name, self._core.normalize(phone))

    def check(self, phone: str) -> bool:
        """True if ``phone`` opted out."""
        return self._core.store.is_opted_out(self._core.name, self._core.normalize(phone))

    def list(self, limit: int | None = None, offset: int = 0) -> builtins.list[OptOut]:
        """Opt-outs, ordered by phone."""
        return self._core.store.list_optouts(self._core.name, limit=limit, offset=offset)

    def count(self) -> int:
        """Number of opted-out phones."""
        return self._core.store.count_optouts(self._core.name)


class OptOuts(_OptOutsBase):
    """A tenant's opt-out registry (sync gateway)."""

    def __init__(self, tenant: Tenant) -> None:
        super().__init__(tenant._core)
        self._tenant = tenant

    def sync(self, provider: str | None = None) -> int:
        """Pull opt-outs recorded at the vendor(s) into the registry; returns how many were new."""
        return self._tenant._drive(self._core.sync_optouts_plan(provider))

    def push(self, phone: str, reason: str | None = None, provider: str | None = None) -> None:
        """Record an opt-out locally and at every provider that accepts opt-outs."""
        self._tenant._drive(self._core.push_optout_plan(phone, reason, provider))


class AsyncOptOuts(_OptOutsBase):
    """A tenant's opt-out registry (async gateway; local calls are synchronous)."""

    def __init__(self, tenant: AsyncTenant) -> None:
        super().__init__(tenant._core)
        self._tenant = tenant

    async def sync(self, provider: str | None = None) -> int:
        """Pull opt-outs recorded at the vendor(s) into the registry."""
        return await self._tenant._drive(self._core.sync_optouts_plan(provider))

    async def push(self, phone: str, reason: str | None = None, provider: str | None = None) -> None:
        """Record an opt-out locally and at every provider that accepts opt-outs."""
        await self._tenant._drive(self._core.push_optout_plan(phone, reason, provider))


class _TenantBase:
    def __init__(self, core: _TenantCore) -> None:
        self._core = core
        self.name = core.name
        self.config = core.config

    def provider(self, instance: str) -> Provider:
        """The provider adapter for one of this tenant's provider instances."""
        return self._core.gw.provider(self.name, instance)

    def get(self, message_id: str) -> MessageRecord:
        """A logged message with its status history (no provider lookup)."""
        return self._core.store.get_message(self.name, message_id)

    def messages(self, **filters: Any) -> list[MessageRecord]:
        """The message log, newest first, without histories (:meth:`get` has one; see
        :meth:`Store.list_messages` for the filters)."""
        return self._core.store.list_messages(self.name, **filters)

    def normalize(self, phone: str) -> str:
        """``phone`` in E.164, read with the tenant's default region."""
        return self._core.normalize(phone)

    @property
    def contact_lists(self) -> ContactLists:
        """Stored contact lists (see :mod:`smsgate.contacts`)."""
        from smsgate.contacts import ContactLists

        return ContactLists(self._core)

    @property
    def campaigns(self) -> CampaignManager:
        """Create, find and list this tenant's campaigns (see :mod:`smsgate.campaigns`)."""
        from smsgate.campaigns import CampaignManager

        return CampaignManager(self)  # type: ignore[arg-type]

    def stats(self, period: str = "hour", *, provider: str | None = None, campaign_id: str | None = None,
              since: datetime | None = None, until: datetime | None = None) -> Stats:
        """Statistics from the local log, bucketed by ``period`` in the tenant's time zone."""
        from smsgate.stats import compute

        times = self._core.store.message_times(self.name, campaign_id=campaign_id, provider=provider,
                                               since=since, until=until)
        return compute(times, tz=self.config.timezone, period=period, provider=provider)

    def _prepare_one(self, to: str, text: str | None, provider: str | None, **kw: Any) -> _Prepared:
        return self._core.prepare(self._core.build(to, text, **kw), provider, raise_errors=True)

    def _prepare_many(
        self, recipients: Iterable[str | MessageSpec | Mapping[str, Any]], text: str | None,
        provider: str | None, template: Template | None, sink: _UpdateBuffer, **kw: Any,
    ) -> tuple[list[str], dict[str, SendResult], Iterator[PlannedBatch], int]:
        """Keys in input order, results known without sending, the plans, and how many messages.

        The recipients are checked up front (a malformed item raises before anything
        is sent), then prepared :data:`SEND_CHUNK` at a time as the returned iterator
        is consumed: the first requests leave after one chunk is prepared, and a large
        call never holds more than a chunk or two of prepared messages and plans
        (memory, and the cyclic GC walking them). ``keys`` and the early results are
        complete once the iterator is exhausted.
        """
        specs = _specs(recipients, text)
        keys: list[str] = []
        early: dict[str, SendResult] = {}
        return keys, early, self._plan_chunks(specs, provider, template, sink, keys, early, kw), len(specs)

    def _plan_chunks(
        self, specs: list[MessageSpec], provider: str | None, template: Template | None, sink: _UpdateBuffer,
        keys: list[str], early: dict[str, SendResult], kw: dict[str, Any],
    ) -> Iterator[PlannedBatch]:
        core = self._core
        carry: dict[tuple[str, ...], list[OutboundMessage]] = {}
        for start in range(0, max(len(specs), 1), SEND_CHUNK):
            msgs: list[OutboundMessage] = []
            for i in range(start, min(start + SEND_CHUNK, len(specs))):
                spec = specs[i]
                try:
                    msg = core.build(spec.to, spec.text, template=template, variables=spec.variables,
                                     reference=spec.reference, idempotency_key=spec.idempotency_key, **kw)
                except ValidationError as exc:
                    key = f"invalid-{i}"
                    early[key] = SendResult(to=spec.to, status=Status.REJECTED, error=f"recipient {i}: {exc}",
                                            error_code=type(exc).__name__)
                    keys.append(key)
                    continue
                keys.append(msg.message_id)
                msgs.append(msg)
            last = start + SEND_CHUNK >= len(specs)
            done, plans = core.plans(core.prepare_many(msgs, provider), template, sink, carry, last)
            early.update(done)
            yield from plans


_SEND_DOC = """Send one message; raises on anything that stops it being accepted.

        The number is normalised with the tenant's region; ``template`` (a neutral
        :class:`~smsgate.models.Template`) or ``text`` is rendered with ``variables``.
        Raises :class:`~smsgate.errors.OptedOut`, :class:`~smsgate.errors.ValidationError`,
        :class:`~smsgate.errors.Unsupported`, :class:`~smsgate.errors.ConfigError` (no route),
        or the last provider's :class:`~smsgate.errors.ProviderError`
        (:class:`~smsgate.errors.UnknownOutcome` when it may have been sent). The
        message is logged in every case.
        """

_SEND_MANY_DOC = """Send to many recipients; one result per recipient, in input order.

        Never raises for one message: opted-out, invalid and unroutable numbers come
        back as ``rejected`` results, provider failures as ``failed`` / ``unknown``.
        Uses a provider's bulk API where it has one, batched to its ``max_batch``.
        Recipients are phone strings, :class:`MessageSpec` objects or dicts with
        ``to``, ``text``, ``variables``, ``reference``, ``idempotency_key``.
        """


class Tenant(_TenantBase):
    """One tenant's view of a :class:`Gateway`."""

    def __init__(self, gateway: Gateway, core: _TenantCore) -> None:
        super().__init__(core)
        self._gw = gateway
        self.optouts = OptOuts(self)

    def run(self, instance: str, operation: Operation[T]) -> T:
        """Drive any operation of one of this tenant's providers (escape hatch)."""
        return self._gw._driver(self.name, instance).run(operation)

    def iterate(self, instance: str, paged: Paged[T]) -> Iterator[T]:
        """Lazily walk every page of a provider listing (one page in memory at a time)."""
        return self._gw._driver(self.name, instance).iterate(paged)

    def _drive(self, plan: Plan[T]) -> T:
        try:
            instance, op = next(plan)
            while True:
                try:
                    value = self.run(instance, op)
                except Exception as exc:
                    instance, op = plan.throw(exc)
                else:
                    instance, op = plan.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def send(
        self, to: str, text: str | None = None, *, sender: str | None = None,
        template: Template | None = None, variables: Mapping[str, str] | None = None,
        reference: str | None = None, idempotency_key: str | None = None,
        provider: str | None = None, attachments: Sequence[Attachment] | None = None,
        location: Location | None = None, provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None,
    ) -> SendResult:
        prep = self._prepare_one(
            to, text, provider, sender=sender, template=template, variables=variables,
            reference=reference, idempotency_key=idempotency_key, attachments=attachments,
            location=location, provider_options=provider_options, campaign_id=campaign_id,
        )
        if prep.message is None:
            assert prep.result is not None
            return prep.result
        result, exc = self._drive(self._core.deliver(prep.message, prep.candidates, template))
        if exc is not None:
            raise exc
        return result

    send.__doc__ = _SEND_DOC

    def send_many(
        self, recipients: Iterable[str | MessageSpec | Mapping[str, Any]], text: str | None = None, *,
        sender: str | None = None, template: Template | None = None, provider: str | None = None,
        attachments: Sequence[Attachment] | None = None, location: Location | None = None,
        provider_options: Mapping[str, Any] | None = None, campaign_id: str | None = None,
    ) -> list[SendResult]:
        with _UpdateBuffer(self._core) as sink:
            keys, results, plans, _ = self._prepare_many(
                recipients, text, provider, template, sink, sender=sender, attachments=attachments,
                location=location, provider_options=provider_options, campaign_id=campaign_id,
            )
            for batch in plans:
                results.update(self._drive(batch.plan))
        return [results[k] for k in keys]

    send_many.__doc__ = _SEND_MANY_DOC

    def status(self, message_id: str, *, refresh: bool = True) -> MessageRecord:
        """The message's record; asks the provider for news if it is not final and can."""
        return self._drive(self._core.status_plan(message_id, refresh))


class AsyncTenant(_TenantBase):
    """One tenant's view of an :class:`AsyncGateway`."""

    def __init__(self, gateway: AsyncGateway, core: _TenantCore) -> None:
        super().__init__(core)
        self._gw = gateway
        self.optouts = AsyncOptOuts(self)

    async def run(self, instance: str, operation: Operation[T]) -> T:
        """Drive any operation of one of this tenant's providers (escape hatch)."""
        return await self._gw._driver(self.name, instance).run(operation)

    def iterate(self, instance: str, paged: Paged[T]) -> AsyncIterator[T]:
        """Lazily walk every page of a provider listing (``async for``)."""
        return self._gw._driver(self.name, instance).iterate(paged)

    async def _drive(self, plan: Plan[T]) -> T:
        try:
            instance, op = next(plan)
            while True:
                try:
                    value = await self.run(instance, op)
                except Exception as exc:
                    instance, op = plan.throw(exc)
                else:
                    instance, op = plan.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def send(
        self, to: str, text: str | None = None, *, sender: str | None = None,
        template: Template | None = None, variables: Mapping[str, str] | None = None,
        reference: str | None = None, idempotency_key: str | None = None,
        provider: str | None = None, attachments: Sequence[Attachment] | None = None,
        location: Location | None = None, provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None,
    ) -> SendResult:
        prep = self._prepare_one(
            to, text, provider, sender=sender, template=template, variables=variables,
            reference=reference, idempotency_key=idempotency_key, attachments=attachments,
            location=location, provider_options=provider_options, campaign_id=campaign_id,
        )
        if prep.message is None:
            assert prep.result is not None
            return prep.result
        result, exc = await self._drive(self._core.deliver(prep.message, prep.candidates, template))
        if exc is not None:
            raise exc
        return result

    send.__doc__ = _SEND_DOC

    async def send_many(
        self, recipients: Iterable[str | MessageSpec | Mapping[str, Any]], text: str | None = None, *,
        sender: str | None = None, template: Template | None = None, provider: str | None = None,
        attachments: Sequence[Attachment] | None = None, location: Location | None = None,
        provider_options: Mapping[str, Any] | None = None, campaign_id: str | None = None,
        concurrency: int | None = None,
    ) -> list[SendResult]:
        with _UpdateBuffer(self._core, asyncio.get_running_loop()) as sink:
            keys, results, pending, count = self._prepare_many(
                recipients, text, provider, template, sink, sender=sender, attachments=attachments,
                location=location, provider_options=provider_options, campaign_id=campaign_id,
            )

            async def worker() -> None:
                # Workers share one iterator (at most `concurrency` plans in flight); the one
                # that reaches the end of a chunk prepares the next (no await in between).
                for batch in pending:
                    results.update(await self._drive(batch.plan))

            n = max(1, min(concurrency or self._gw.concurrency, count))
            await asyncio.gather(*(worker() for _ in range(n)))
        return [results[k] for k in keys]

    send_many.__doc__ = _SEND_MANY_DOC.replace(
        "in input order.", "in input order, with up to ``concurrency`` plans in flight."
    )

    async def status(self, message_id: str, *, refresh: bool = True) -> MessageRecord:
        """Async :meth:`Tenant.status`."""
        return await self._drive(self._core.status_plan(message_id, refresh))


class _GatewayMixin:
    _core_: _GatewayCore

    @property
    def settings(self) -> Settings:
        """The loaded configuration."""
        return self._core_.settings

    @property
    def store(self) -> Store:
        """The store holding every tenant's log."""
        return self._core_.store

    @property
    def plugins(self) -> PluginManager:
        """The plugin manager (register event hooks here)."""
        return self._core_.plugins

    def check(self) -> list[str]:
        """Validate that every configured provider can be instantiated."""
        return self._core_.check()

    def ingest(self, tenant: str, instance: str, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """Verify, parse and apply a delivery-report webhook for ``tenant``'s provider ``instance``.

        Reports are matched by provider message id within ``tenant`` only.
        """
        core = self._core_.core(tenant)
        prov = self._core_.provider(tenant, instance)
        reports = prov.parse_webhook(headers, body)
        for r in reports:
            r.provider = instance
        matched = core.store.apply_reports(tenant, reports)
        missed = [i for i, mid in enumerate(matched) if mid is None and reports[i].provider_message_id]
        if missed and core.buffers:
            # a report can overtake its message's buffered post-send update: write those, match again
            for buffer in list(core.buffers):
                buffer.flush()
            for i, mid in zip(missed, core.store.apply_reports(tenant, [reports[i] for i in missed]),
                              strict=True):
                matched[i] = mid
        for report, mid in zip(reports, matched, strict=True):
            if mid is not None:
                core.hook.smsgate_on_status(tenant=tenant, message_id=mid, report=report)
        return reports


class Gateway(_GatewayMixin):
    """Synchronous gateway. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        store: Store | str | None = None,
        plugins: PluginManager | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._core_ = _GatewayCore(config, store, plugins)
        self._client = http_client or default_client()
        self._own_client = http_client is None
        self._drivers: dict[tuple[str, str], SyncDriver] = {}

    def tenant(self, name: str) -> Tenant:
        """The handle for tenant ``name``."""
        return Tenant(self, self._core_.core(name))

    def _driver(self, tenant: str, instance: str) -> SyncDriver:
        key = (tenant, instance)
        drv = self._drivers.get(key)
        if drv is None:
            drv = SyncDriver(self._client, self._core_.policy(tenant, instance))
            self._drivers[key] = drv
        return drv

    def close(self) -> None:
        """Close the HTTP client and the store (if the gateway opened them)."""
        if self._own_client:
            self._client.close()
        self._core_.close_store()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGateway(_GatewayMixin):
    """Asynchronous gateway.

    ``http_client``: an :class:`httpx.AsyncClient`, an :class:`aiohttp.ClientSession`
    or a :class:`smsgate.aio.AiohttpClient` (not closed by the gateway). By default
    the gateway makes an ``AiohttpClient`` when aiohttp is installed (the ``fast``
    extra: httpx's own async pool slows down as concurrency grows, see
    docs/performance.md), else an ``httpx.AsyncClient``.
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        store: Store | str | None = None,
        plugins: PluginManager | None = None,
        http_client: AsyncHTTPClient | None = None,
        concurrency: int = 64,
    ) -> None:
        self._core_ = _GatewayCore(config, store, plugins)
        self._client = async_client(http_client)
        self._own_client = http_client is None
        self._drivers: dict[tuple[str, str], AsyncDriver] = {}
        self.concurrency = concurrency

    def tenant(self, name: str) -> AsyncTenant:
        """The handle for tenant ``name``."""
        return AsyncTenant(self, self._core_.core(name))

    def _driver(self, tenant: str, instance: str) -> AsyncDriver:
        key = (tenant, instance)
        drv = self._drivers.get(key)
        if drv is None:
            drv = AsyncDriver(self._client, self._core_.policy(tenant, instance))
            self._drivers[key] = drv
        return drv

    async def aclose(self) -> None:
        """Close the HTTP client and the store (if the gateway opened them)."""
        if self._own_client:
            await self._client.aclose()
        self._core_.close_store()

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
