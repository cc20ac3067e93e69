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
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
    Status,
    StatusEvent,
    Template,
    utcnow,
)
from smsgate.plugins import PluginManager, default_plugins
from smsgate.provider import Operation, Paged, Provider
from smsgate.store import MessageUpdate, Store, open_store
from smsgate.transport import AsyncDriver, RetryPolicy, SyncDriver

__all__ = ["AsyncGateway", "AsyncTenant", "Gateway", "MessageSpec", "Tenant"]

log = logging.getLogger("smsgate")

T = TypeVar("T")

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
            names = self.config.route_for(msg.to, phonelib.region_of(msg.to))
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
            body = textlib.render_template(text, vars_) if vars_ else text
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
        segments = textlib.segment_info(msg.text).segments if msg.text else None
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
            segments = textlib.segment_info(msg.text).segments if msg.text else None
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
    def before_send(self, msg: OutboundMessage) -> None:
        self.hook.smsgate_before_send(tenant=self.name, message=msg)

    def success(self, msg: OutboundMessage, instance: str, result: SendResult) -> MessageUpdate:
        result.message_id = msg.message_id
        result.provider = instance
        result.to = msg.to
        if result.segments is None:
            result.segments = textlib.segment_info(msg.text).segments if msg.text else None
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
            error=result.error,
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

    def fail_all(self, msgs: Sequence[OutboundMessage], instance: str, exc: Exception) -> dict[str, SendResult]:
        """Record the same failure for every message of a failed bulk call."""
        results, updates = {}, []
        for m in msgs:
            res, upd = self.failure(m, instance, exc)
            results[m.message_id] = res
            updates.append(upd)
            self.after_send(m, res)
        self.store.update_messages(self.name, updates)
        return results

    def after_send(self, msg: OutboundMessage, result: SendResult) -> None:
        self.hook.smsgate_after_send(tenant=self.name, message=msg, result=result)
        log.info("sent %s to %s via %s: %s", msg.message_id, _mask(msg.to), result.provider, result.status.value)

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

    def _sync_targets(self, provider: str | None) -> builtins.list[str]:
        names = [provider] if provider else list(self._core.config.providers)
        targets = [n for n in names if self._core.gw.provider(self._core.name, n).capabilities.optout_sync]
        if provider and not targets:
            raise Unsupported(provider, "opt-out sync")
        return targets

    def _import(self, instance: str, optouts: Sequence[OptOut]) -> int:
        clean = []
        for o in optouts:
            try:
                phone = self._core.normalize(o.phone)
            except ValidationError:
                log.warning("ignoring invalid opt-out number from %s", instance)
                continue
            clean.append(o.model_copy(update={"phone": phone, "source": f"provider:{instance}"}))
        return self._core.store.add_optouts(self._core.name, clean)


class OptOuts(_OptOutsBase):
    """A tenant's opt-out registry (sync)."""

    def __init__(self, tenant: Tenant) -> None:
        super().__init__(tenant._core)
        self._tenant = tenant

    def sync(self, provider: str | None = None) -> int:
        """Pull opt-outs recorded at the vendor(s) into the registry; returns how many were new."""
        added = 0
        for name in self._sync_targets(provider):
            prov = self._tenant.provider(name)
            added += self._import(name, self._tenant.run(name, prov.list_optouts()))
        return added

    def push(self, phone: str, reason: str | None = None, provider: str | None = None) -> None:
        """Record an opt-out locally and at every provider that accepts opt-outs."""
        self.add(phone, reason)
        e164 = self._core.normalize(phone)
        for name in self._sync_targets(provider):
            prov = self._tenant.provider(name)
            try:
                self._tenant.run(name, prov.add_optout(e164, reason))
            except Unsupported:
                continue


class AsyncOptOuts(_OptOutsBase):
    """A tenant's opt-out registry (async gateway; local calls are synchronous)."""

    def __init__(self, tenant: AsyncTenant) -> None:
        super().__init__(tenant._core)
        self._tenant = tenant

    async def sync(self, provider: str | None = None) -> int:
        """Pull opt-outs recorded at the vendor(s) into the registry."""
        added = 0
        for name in self._sync_targets(provider):
            prov = self._tenant.provider(name)
            added += self._import(name, await self._tenant.run(name, prov.list_optouts()))
        return added


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
        """The message log, newest first (see :meth:`Store.list_messages`)."""
        return self._core.store.list_messages(self.name, **filters)

    def normalize(self, phone: str) -> str:
        """``phone`` in E.164, read with the tenant's default region."""
        return self._core.normalize(phone)

    def _build(self, to: str, text: str | None, **kw: Any) -> OutboundMessage:
        return self._core.build(to, text, **kw)


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

    def send(
        self,
        to: str,
        text: str | None = None,
        *,
        sender: str | None = None,
        template: Template | None = None,
        variables: Mapping[str, str] | None = None,
        reference: str | None = None,
        idempotency_key: str | None = None,
        provider: str | None = None,
        attachments: Sequence[Attachment] | None = None,
        location: Location | None = None,
        provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None,
    ) -> SendResult:
        """Send one message; raises on anything that stops it being accepted.

        Raises :class:`~smsgate.errors.OptedOut`, :class:`~smsgate.errors.ValidationError`,
        :class:`~smsgate.errors.Unsupported`, or the last provider's
        :class:`~smsgate.errors.ProviderError` (the message is logged either way).
        """
        msg = self._build(
            to, text, sender=sender, template=template, variables=variables,
            reference=reference, idempotency_key=idempotency_key, attachments=attachments,
            location=location, provider_options=provider_options, campaign_id=campaign_id,
        )
        prep = self._core.prepare(msg, provider, raise_errors=True)
        if prep.message is None:
            assert prep.result is not None
            return prep.result
        result, exc = self._deliver(prep.message, prep.candidates, template)
        if exc is not None:
            raise exc
        return result

    def _deliver(
        self, msg: OutboundMessage, names: list[str], template: Template | None
    ) -> tuple[SendResult, Exception | None]:
        core = self._core
        core.before_send(msg)
        last: Exception | None = None
        instance: str | None = None
        for instance in names:
            prov = self.provider(instance)
            out = core.for_provider(msg, instance, template)
            try:
                result = self.run(instance, prov.send(out))
            except ProviderError as exc:
                last = exc
                if _can_fail_over(exc):
                    log.warning("send via %s failed (%s); trying next provider", instance, type(exc).__name__)
                    continue
                break
            except Unsupported as exc:
                last = exc
                continue
            update = core.success(msg, instance, result)
            core.store.update_messages(core.name, [update])
            core.after_send(msg, result)
            return result, None
        assert last is not None
        result, update = core.failure(msg, instance, last)
        core.store.update_messages(core.name, [update])
        core.after_send(msg, result)
        return result, last

    def send_many(
        self,
        recipients: Iterable[str | MessageSpec | Mapping[str, Any]],
        text: str | None = None,
        *,
        sender: str | None = None,
        template: Template | None = None,
        provider: str | None = None,
        attachments: Sequence[Attachment] | None = None,
        location: Location | None = None,
        provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None,
    ) -> list[SendResult]:
        """Send to many recipients; one result per recipient, in order, never raising per message.

        Uses a provider's bulk API where it has one (batched to its limit).
        Opted-out and invalid numbers come back as ``rejected`` results.
        """
        msgs, early = self._gw._build_many(self._core, recipients, text, sender, template,
                                           attachments, location, provider_options, campaign_id)
        prepared = self._core.prepare_many([m for m in msgs if m is not None], provider)
        results = self._gw._dispatch(self, prepared, template)
        return _merge(msgs, early, results)

    def status(self, message_id: str, *, refresh: bool = True) -> MessageRecord:
        """The message's record; asks the provider for news if it is not final and can."""
        core = self._core
        record = core.store.get_message(self.name, message_id)
        if refresh and not record.status.is_final and record.provider and record.provider_message_id:
            prov = self.provider(record.provider)
            if prov.capabilities.status_lookup:
                report = self.run(record.provider, prov.status(core.result_of(record)))
                if core.apply_report(record, report, source=f"{record.provider}:lookup"):
                    record = core.store.get_message(self.name, message_id)
        return record


def _merge(msgs: list[OutboundMessage | None], early: dict[int, SendResult],
           results: dict[str, SendResult]) -> list[SendResult]:
    out = []
    for i, m in enumerate(msgs):
        if m is None:
            out.append(early[i])
        else:
            out.append(results[m.message_id])
    return out


class _GatewayMixin:
    _core_: _GatewayCore

    def _build_many(
        self, core: _TenantCore, recipients: Iterable[str | MessageSpec | Mapping[str, Any]],
        text: str | None, sender: str | None, template: Template | None,
        attachments: Sequence[Attachment] | None, location: Location | None,
        provider_options: Mapping[str, Any] | None, campaign_id: str | None,
    ) -> tuple[list[OutboundMessage | None], dict[int, SendResult]]:
        msgs: list[OutboundMessage | None] = []
        early: dict[int, SendResult] = {}
        for i, spec in enumerate(_specs(recipients, text)):
            try:
                msgs.append(core.build(
                    spec.to, spec.text, sender=sender, template=template, variables=spec.variables,
                    reference=spec.reference, idempotency_key=spec.idempotency_key,
                    attachments=attachments, location=location, provider_options=provider_options,
                    campaign_id=campaign_id,
                ))
            except ValidationError as exc:
                msgs.append(None)
                early[i] = SendResult(to=spec.to, status=Status.REJECTED, error=f"recipient {i}: {exc}",
                                      error_code=type(exc).__name__)
        return msgs, early

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
        """Verify, parse and apply a delivery-report webhook for ``tenant``'s provider ``instance``."""
        core = self._core_.core(tenant)
        prov = self._core_.provider(tenant, instance)
        reports = prov.parse_webhook(headers, body)
        for r in reports:
            r.provider = instance
        matched = core.store.apply_reports(tenant, reports)
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
        self._client = http_client or httpx.Client(timeout=30.0)
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

    def _dispatch(self, tenant: Tenant, prepared: list[_Prepared], template: Template | None) -> dict[str, SendResult]:
        results: dict[str, SendResult] = {}
        todo: list[_Prepared] = []
        for p in prepared:
            if p.message is None:
                assert p.result is not None
                results[p.key] = p.result
            else:
                todo.append(p)
        core = tenant._core
        for group_names, group in _group_by_route(todo):
            first = group_names[0]
            prov = tenant.provider(first)
            if prov.capabilities.bulk and len(group) > 1:
                for chunk in _chunks(group, max(1, prov.capabilities.max_batch)):
                    msgs = [p.message for p in chunk if p.message is not None]
                    outs = [core.for_provider(m, first, template) for m in msgs]
                    for m in msgs:
                        core.before_send(m)
                    try:
                        batch = tenant.run(first, prov.send_many(outs))
                    except (ProviderError, Unsupported) as exc:
                        if _retry_elsewhere(exc, group_names):
                            for m in msgs:
                                results[m.message_id], _ = tenant._deliver(m, group_names[1:], template)
                        else:
                            results.update(core.fail_all(msgs, first, exc))
                        continue
                    updates = []
                    for m, res in zip(msgs, batch, strict=True):
                        updates.append(core.success(m, first, res))
                        results[m.message_id] = res
                        core.after_send(m, res)
                    core.store.update_messages(core.name, updates)
            else:
                for p in group:
                    assert p.message is not None
                    res, _ = tenant._deliver(p.message, group_names, template)
                    results[p.message.message_id] = res
        return results

    def close(self) -> None:
        """Close the HTTP client and the store (if the gateway opened them)."""
        if self._own_client:
            self._client.close()
        self._core_.close_store()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _retry_elsewhere(exc: Exception, names: list[str]) -> bool:
    """Whether a failed bulk call may be retried message by message on later providers."""
    ok = isinstance(exc, Unsupported) or (isinstance(exc, ProviderError) and _can_fail_over(exc))
    return ok and len(names) > 1


def _group_by_route(prepared: list[_Prepared]) -> list[tuple[list[str], list[_Prepared]]]:
    groups: dict[tuple[str, ...], list[_Prepared]] = {}
    for p in prepared:
        groups.setdefault(tuple(p.candidates), []).append(p)
    return [(list(k), v) for k, v in groups.items()]


def _chunks(items: list[_Prepared], size: int) -> Iterable[list[_Prepared]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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

    async def send(
        self,
        to: str,
        text: str | None = None,
        *,
        sender: str | None = None,
        template: Template | None = None,
        variables: Mapping[str, str] | None = None,
        reference: str | None = None,
        idempotency_key: str | None = None,
        provider: str | None = None,
        attachments: Sequence[Attachment] | None = None,
        location: Location | None = None,
        provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None,
    ) -> SendResult:
        """Async :meth:`Tenant.send`."""
        msg = self._build(
            to, text, sender=sender, template=template, variables=variables,
            reference=reference, idempotency_key=idempotency_key, attachments=attachments,
            location=location, provider_options=provider_options, campaign_id=campaign_id,
        )
        prep = self._core.prepare(msg, provider, raise_errors=True)
        if prep.message is None:
            assert prep.result is not None
            return prep.result
        result, exc = await self._deliver(prep.message, prep.candidates, template)
        if exc is not None:
            raise exc
        return result

    async def _deliver(
        self, msg: OutboundMessage, names: list[str], template: Template | None
    ) -> tuple[SendResult, Exception | None]:
        core = self._core
        core.before_send(msg)
        last: Exception | None = None
        instance: str | None = None
        for instance in names:
            prov = self.provider(instance)
            out = core.for_provider(msg, instance, template)
            try:
                result = await self.run(instance, prov.send(out))
            except ProviderError as exc:
                last = exc
                if _can_fail_over(exc):
                    continue
                break
            except Unsupported as exc:
                last = exc
                continue
            update = core.success(msg, instance, result)
            core.store.update_messages(core.name, [update])
            core.after_send(msg, result)
            return result, None
        assert last is not None
        result, update = core.failure(msg, instance, last)
        core.store.update_messages(core.name, [update])
        core.after_send(msg, result)
        return result, last

    async def send_many(
        self,
        recipients: Iterable[str | MessageSpec | Mapping[str, Any]],
        text: str | None = None,
        *,
        sender: str | None = None,
        template: Template | None = None,
        provider: str | None = None,
        attachments: Sequence[Attachment] | None = None,
        location: Location | None = None,
        provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None,
        concurrency: int | None = None,
    ) -> list[SendResult]:
        """Async :meth:`Tenant.send_many`, sending up to ``concurrency`` requests at once."""
        msgs, early = self._gw._build_many(self._core, recipients, text, sender, template,
                                           attachments, location, provider_options, campaign_id)
        prepared = self._core.prepare_many([m for m in msgs if m is not None], provider)
        results = await self._gw._dispatch(self, prepared, template, concurrency)
        return _merge(msgs, early, results)

    async def status(self, message_id: str, *, refresh: bool = True) -> MessageRecord:
        """Async :meth:`Tenant.status`."""
        core = self._core
        record = core.store.get_message(self.name, message_id)
        if refresh and not record.status.is_final and record.provider and record.provider_message_id:
            prov = self.provider(record.provider)
            if prov.capabilities.status_lookup:
                report = await self.run(record.provider, prov.status(core.result_of(record)))
                if core.apply_report(record, report, source=f"{record.provider}:lookup"):
                    record = core.store.get_message(self.name, message_id)
        return record


class AsyncGateway(_GatewayMixin):
    """Asynchronous gateway over any :class:`httpx.AsyncClient`.

    For high concurrency pass an ``http_client`` built on the aiohttp transport
    (``smsgate[fast]``); see docs/performance.md.
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        store: Store | str | None = None,
        plugins: PluginManager | None = None,
        http_client: httpx.AsyncClient | None = None,
        concurrency: int = 64,
    ) -> None:
        self._core_ = _GatewayCore(config, store, plugins)
        self._client = http_client or httpx.AsyncClient(timeout=30.0)
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

    async def _dispatch(
        self, tenant: AsyncTenant, prepared: list[_Prepared], template: Template | None,
        concurrency: int | None,
    ) -> dict[str, SendResult]:
        results: dict[str, SendResult] = {}
        sem = asyncio.Semaphore(concurrency or self.concurrency)
        core = tenant._core

        async def one(p: _Prepared, names: list[str]) -> None:
            assert p.message is not None
            async with sem:
                res, _ = await tenant._deliver(p.message, names, template)
            results[p.message.message_id] = res

        async def bulk(chunk: list[_Prepared], names: list[str]) -> None:
            first = names[0]
            prov = tenant.provider(first)
            msgs = [p.message for p in chunk if p.message is not None]
            outs = [core.for_provider(m, first, template) for m in msgs]
            for m in msgs:
                core.before_send(m)
            async with sem:
                try:
                    batch = await tenant.run(first, prov.send_many(outs))
                except (ProviderError, Unsupported) as exc:
                    batch = None
                    error: Exception = exc
            if batch is None:
                if _retry_elsewhere(error, names):
                    for p in chunk:
                        await one(p, names[1:])
                else:
                    results.update(core.fail_all(msgs, first, error))
                return
            updates = []
            for m, res in zip(msgs, batch, strict=True):
                updates.append(core.success(m, first, res))
                results[m.message_id] = res
                core.after_send(m, res)
            core.store.update_messages(core.name, updates)

        todo: list[_Prepared] = []
        for p in prepared:
            if p.message is None:
                assert p.result is not None
                results[p.key] = p.result
            else:
                todo.append(p)
        coros: list[Any] = []
        for names, group in _group_by_route(todo):
            prov = tenant.provider(names[0])
            if prov.capabilities.bulk and len(group) > 1:
                coros.extend(bulk(c, names) for c in _chunks(group, max(1, prov.capabilities.max_batch)))
            else:
                coros.extend(one(p, names) for p in group)
        await asyncio.gather(*coros)
        return results

    async def aclose(self) -> None:
        """Close the HTTP client and the store (if the gateway opened them)."""
        if self._own_client:
            await self._client.aclose()
        self._core_.close_store()

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
