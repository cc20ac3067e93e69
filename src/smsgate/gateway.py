"""Gateway and AsyncGateway: the per-tenant API, thin drivers of the policy kernel.

::

    from smsgate import Gateway

    with Gateway("smsgate.toml") as gw:
        acme = gw.tenant("acme")
        result = acme.send("08012345678", "Your code is 123456")
        print(result.status, acme.status(result.message_id).status)

For every message the kernel (:mod:`smsgate.core`) normalises the number to
E.164 with the tenant's region, refuses opted-out numbers
(:class:`~smsgate.errors.OptedOut`, logged as ``rejected``), honours idempotency
keys (a key already used returns the first message, never sends again), renders
templates, picks providers by route and capability, logs the message just
before its request leaves, sends, fails over to the next provider only when the
failed attempt certainly did not reach the vendor, and logs the answer.

:class:`Gateway` drives the kernel's plans with an :class:`httpx.Client` and calls
the store directly; :class:`AsyncGateway` awaits provider calls on the event loop
and runs every store call (and tenant source call) in a worker thread. Both run the
very same plans.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import httpx
from pydantic import BaseModel

from smsgate._shield import shielded
from smsgate.config import Settings, TenantConfig, load_config
from smsgate.core import campaign as campaign_plans
from smsgate.core import deliver, hooks, reconcile, reports
from smsgate.core import inbound as inbound_plans
from smsgate.core import recover as recover_plans
from smsgate.core.deliver import Fresh
from smsgate.core.drive import (
    MAX_OWN_CLIENT_THREADS,
    MAX_THREADS,
    AsyncLogWriter,
    AsyncPlanDriver,
    LogWriter,
    SyncPlanDriver,
    store_driver,
)
from smsgate.core.policy import MessageSpec, TenantPolicy, check_id, wrong_type
from smsgate.core.recover import RECOVER_AFTER, RECOVER_LIMIT, SendLease
from smsgate.core.reports import Headers
from smsgate.core.steps import Admit, Call, Plan, Query
from smsgate.errors import (
    CircuitOpen,
    ConfigError,
    GatewayClosed,
    GatewayForked,
    SmsgateError,
    StoreError,
    UnknownTenant,
    ValidationError,
    WouldBlock,
    WrongEventLoop,
)
from smsgate.filters import (
    MAX_COUNT,
    MAX_DURATION,
    check_number_filter,
    check_page,
    inbound_filters,
    message_filters,
    parse_duration,
    point_in_time,
)
from smsgate.ids import new_id
from smsgate.models import (
    Attachment,
    DeliveryReport,
    InboundMessage,
    Location,
    MessageRecord,
    OutboundMessage,
    SendResult,
    Stats,
    SyncSummary,
    Template,
    WebhookOutcome,
    utcnow,
)
from smsgate.optouts import AsyncOptOuts, OptOuts
from smsgate.plugins import PluginManager, build_provider, check_tenant, default_plugins
from smsgate.provider import Operation, Paged, Provider
from smsgate.routing import RouteExplanation, check_kind
from smsgate.store import Store, StoreOpener, store_opener
from smsgate.store._purge import check_purge
from smsgate.store.base import PurgeResult
from smsgate.traffic.breaker import Breaker, BreakerBoard, BreakerState, is_down
from smsgate.traffic.gate import AsyncGate, Closeable, StoppedWaiting, SyncGate, TrafficBackend, open_traffic
from smsgate.traffic.health import CallCounter, LimitState, ProviderHealth, limit_states
from smsgate.transport import (
    AsyncDriver,
    RetryPolicy,
    SyncDriver,
    ThreadClients,
    async_client,
    default_client,
    is_async_client,
)

if TYPE_CHECKING:
    from smsgate.campaigns import AsyncCampaignManager, CampaignManager
    from smsgate.contacts import AsyncContactLists, ContactLists
    from smsgate.tenants import TenantSource
    from smsgate.transport import AsyncHTTPClient

__all__ = ["AsyncGateway", "AsyncTenant", "Gateway", "MessageSpec", "Tenant"]

T = TypeVar("T")
#: A send_many's stop event: threading's (Gateway) or asyncio's (AsyncGateway).
E = TypeVar("E", threading.Event, asyncio.Event)

log = logging.getLogger(__name__)

ConfigSource = Settings | str | Path | Mapping[str, Any] | None

Recipients = Iterable[str | MessageSpec | Mapping[str, Any]]

#: A moment: a datetime, or a timedelta / duration (``"1h"``, ``"90d"``) meaning that long ago.
When = datetime | timedelta | str | None
#: A duration argument (``older_than``, ``recover_after``...): seconds, a timedelta or a
#: duration such as ``"90d"`` (:func:`smsgate.filters.parse_duration`).
Duration = float | timedelta | str


class _Sourced:
    """A tenant of the tenant source as this gateway last loaded it."""

    __slots__ = ("config", "etag", "removed", "seen", "ticket")

    def __init__(self, config: TenantConfig, etag: object, seen: object, ticket: int) -> None:
        #: ``seen``: the source's version when it was loaded; ``ticket``: when its load started
        self.config, self.etag, self.seen, self.ticket = config, etag, seen, ticket
        #: gone from the source: refused at the next check, kept for requests under way
        self.removed = False


def _warn_of_a_tenant_store_apart(tenants: TenantSource, store: Store | StoreOpener) -> None:
    """Log a warning when ``tenants`` keeps its tenants in a store (``StoredTenants(URL)``)
    other than the gateway's: the rule that a removed tenant's data is never inherited by a
    new tenant of its name (``StoredTenants.add`` refusing a name with data, ``erase``) looks
    in the tenants' store, while the messages, campaigns and opt-outs are in the gateway's."""
    theirs = getattr(tenants, "store", None)
    if not isinstance(theirs, Store) or theirs is store:
        return
    here, there = store.location(), theirs.location()
    if here is not None and here == there:
        return
    kind = store.kind if isinstance(store, StoreOpener) else type(store).__name__
    log.warning(
        "the tenant source %s keeps its tenants in another store (%s) than the gateway's (%s): a "
        "removed tenant's messages, campaigns and opt-outs stay in the gateway's store, where adding "
        "a tenant of the same name does not look, so it would inherit them; give both one store "
        "(Gateway(config, store=store, tenants=StoredTenants(store)), see docs/tenants.md)",
        type(tenants).__name__, there or f"a {type(theirs).__name__} of its own",
        here or f"a {kind} of its own")


class _GatewayCore:
    """What Gateway and AsyncGateway share: config, store, plugins, providers, policies, limits."""

    def __init__(self, config: ConfigSource, store: Store | str | None, plugins: PluginManager | None,
                 tenants: TenantSource | None = None, tenant_refresh: Duration = 1.0) -> None:
        if store is not None and not isinstance(store, (str, Store)):  # 5 was an AttributeError at close()
            raise wrong_type("store", store, "a store URL or a smsgate.store.Store")
        from smsgate.tenants import TenantSource

        # Gateway(3) opened file descriptor 3 as the configuration file (and closed it); a list
        # was a TypeError; plugins=5 and tenants="x" were AttributeErrors at the first send
        if config is not None and not isinstance(config, (Settings, str, os.PathLike, Mapping)):
            raise wrong_type("config", config, "the path of a configuration file (str or pathlib.Path), a "
                                               "mapping of settings or smsgate.config.Settings")
        if plugins is not None and not isinstance(plugins, PluginManager):
            raise wrong_type("plugins", plugins, "a smsgate.plugins.PluginManager")
        if tenants is not None and not isinstance(tenants, TenantSource):
            raise wrong_type("tenants", tenants, "a tenant source (smsgate.tenants.TenantSource: version(), "
                                                 "get(), names()), e.g. smsgate.tenants.StoredTenants")
        # "x" was a TypeError at the first check of a tenant source; "30s" reads as other durations do
        refresh = _seconds(tenant_refresh, "tenant_refresh", "Gateway")
        self.settings = config if isinstance(config, Settings) else load_config(config)
        #: where tenants the configuration lacks come from (see smsgate.tenants)
        self.tenants = tenants
        self.tenant_refresh = refresh
        self._sourced: dict[str, _Sourced] = {}
        self._source_version: object = None
        #: when the check whose version is kept started (monotonic), and its ticket
        self._checked = float("-inf")
        self._version_ticket = 0
        #: a check must have started after this ticket (refresh_tenants of an AsyncGateway)
        self._refresh_from = 0
        self._tickets = itertools.count(1)
        #: the source calls under way, shared by whoever needs the same answer meanwhile
        self._flights: dict[object, Future[Any]] = {}
        self._shadowed: set[str] = set()
        #: held only while the cache above is read or updated: never across a call of the source,
        #: so an event loop taking it never waits for a slow source (see docs/tenants.md)
        self._tenants_lock = threading.Lock()
        #: called with a tenant's name when its cached objects must go (it changed or was removed)
        self.forget_hooks: list[Callable[[str], None]] = []
        self.plugins = plugins or default_plugins().derive()  # hooks registered on it are this gateway's
        if store is None:
            store = self.settings.store
        # a store URL is checked now and opened at the first use of the store (:attr:`store`):
        # making a gateway (importing an app module that makes one) does no I/O
        self._opener: Callable[[], Store] | None = None
        self._store: Store | None = None
        if isinstance(store, str):
            self._opener = opener = store_opener(store)
            if tenants is not None:
                _warn_of_a_tenant_store_apart(tenants, opener)
        else:
            self._store = store
            if tenants is not None:
                _warn_of_a_tenant_store_apart(tenants, store)
        self._own_store = not isinstance(store, Store)
        self._store_lock = threading.RLock()
        #: attempts to open the store that ended, and the error of the last that failed (see :attr:`store`)
        self._open_tries = 0
        self._open_failed: BaseException | None = None
        #: (tenant, instance) -> (the configuration it was built from, the provider)
        self._providers: dict[tuple[str, str], tuple[TenantConfig, Provider]] = {}
        self._policies: dict[str, TenantPolicy] = {}
        # where rate and concurrency limits are kept (see smsgate.traffic): the store's are the
        # store, made with it (:attr:`traffic`)
        self._traffic: TrafficBackend | None = (
            None if self.settings.traffic == "store" else open_traffic(self.settings.traffic, None))
        self._breakers: BreakerBoard | None = None
        #: this process's counters of provider calls
        self.calls = CallCounter()
        #: this process's send leases, by tenant (see smsgate.core.recover: renewed by one thread per
        #: process, which a forked child starts anew with leases of its own)
        self.owner = new_id("snd")
        self._leases: dict[str, SendLease] = {}
        self._leases_lock = threading.Lock()

    @property
    def store(self) -> Store:
        """The store, opened (and migrated) at the first use when the gateway was given its URL."""
        store = self._store
        if store is None:
            tried = self._open_tries  # the attempts to open it that ended before this call
            with self._store_lock:
                store = self._store
                if store is None:
                    failed = self._open_failed
                    if failed is not None and self._open_tries != tried:
                        # one ended (failed) while this call waited for it: its error, not one
                        # more attempt each (16 threads' first sends while a PostgreSQL server
                        # did not answer waited up to 16 connect timeouts, one after another)
                        raise failed
                    assert self._opener is not None
                    try:
                        store = self._store = self._opener()
                        self._open_failed = None
                    except Exception as exc:
                        self._open_failed = exc
                        raise
                    except BaseException:  # that caller's interruption (Ctrl-C): the others try
                        self._open_failed = None
                        raise
                    finally:
                        self._open_tries += 1
        return store

    @property
    def traffic(self) -> TrafficBackend:
        """Where rate and concurrency limits are kept (see smsgate.traffic): the store, Redis or this process."""
        traffic = self._traffic
        if traffic is None:
            traffic = self._traffic = self.store
        return traffic

    @property
    def breakers(self) -> BreakerBoard:
        """The circuit breakers of every provider instance, kept with the limits."""
        board = self._breakers
        if board is None:
            traffic = self.traffic  # (first: it may open the store)
            with self._store_lock:
                board = self._breakers
                if board is None:
                    board = self._breakers = BreakerBoard(traffic)
        return board

    def send_lease(self, tenant: str) -> SendLease:
        """This process's send lease on ``tenant`` (its log writers register with it)."""
        lease = self._leases.get(tenant)
        if lease is not None:
            return lease
        with self._leases_lock:
            lease = self._leases.get(tenant)
            if lease is None:
                lease = self._leases[tenant] = SendLease(self.store, tenant, self.owner)
            return lease

    def tenant_config(self, tenant: str, *, check: bool | None = None) -> TenantConfig:
        """``tenant``'s configuration: the configuration file's, else the tenant source's.

        ``check``: ask the source whether anything changed first (``True``: now; ``None``:
        if ``tenant_refresh`` seconds passed since the last time; ``False``: never, as calls
        within one request do). A tenant that changed loses its cached providers and policy.

        May call the source, on this thread: the sync drivers and worker threads only (the
        async drivers use :meth:`cached_config` on the loop and :meth:`resolve` off it).
        """
        cfg = self.settings.tenants.get(tenant)
        if cfg is not None:
            if check and self.tenants is not None:
                self._check_shadowed(tenant)
            return cfg
        if self.tenants is None:
            return self.settings.tenant(tenant)  # ConfigError naming the configured tenants
        if check:
            self._ask_version()
        elif check is None and self._due():
            self._shared("version", self._ask_version)
        return self._sourced_config(tenant, within_request=check is False)

    def resolve(self, tenant: str) -> TenantConfig:
        """``tenant``'s configuration after asking the source whether anything changed, for the
        async drivers (run in a worker thread): concurrent callers share one ``version()`` and
        one ``get()`` of the source."""
        cfg = self.settings.tenants.get(tenant)
        if cfg is not None:
            if self.tenants is not None:
                self._check_shadowed(tenant)
            return cfg
        if self.tenants is None:
            return self.settings.tenant(tenant)
        self._shared("version", self._ask_version)
        return self._sourced_config(tenant, within_request=False)

    def cached_config(self, tenant: str, *, first: bool = False) -> TenantConfig | None:
        """``tenant``'s configuration if it is known without asking the source (no I/O, no
        lock: for the event loop); ``None`` when the source must be asked (:meth:`resolve`):
        a tenant not loaded yet, a check due (``tenant_refresh``), or ``first`` (a new handle's
        first call). :class:`UnknownTenant` if it is known to be gone."""
        cfg = self.settings.tenants.get(tenant)
        if cfg is not None:
            return None if first and self.tenants is not None and tenant not in self._shadowed else cfg
        if self.tenants is None:
            return self.settings.tenant(tenant)
        if first or self._due():
            return None
        entry = self._sourced.get(tenant)
        if entry is None or entry.seen != self._source_version:
            return None
        if entry.removed:
            raise self._removed(tenant)
        return entry.config

    def loaded_config(self, tenant: str) -> TenantConfig | None:
        """``tenant``'s configuration as last loaded, unchecked (no I/O); ``None`` if never loaded."""
        cfg = self.settings.tenants.get(tenant)
        if cfg is not None:
            return cfg
        if self.tenants is None:
            return self.settings.tenant(tenant)
        entry = self._sourced.get(tenant)
        return None if entry is None else entry.config

    def _due(self) -> bool:
        """Whether the source's version must be asked again before a tenant is served."""
        return (time.monotonic() - self._checked >= self.tenant_refresh
                or self._version_ticket < self._refresh_from)

    def _shared(self, key: object, fn: Callable[[], T]) -> T:
        """``fn()``, or the answer of the same call already under way in another thread
        (single flight: a burst of requests makes one call of the source)."""
        with self._tenants_lock:
            flight = self._flights.get(key)
            mine = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
        if not mine:
            result: T = flight.result()
            return result
        try:
            value = fn()
        except BaseException as exc:
            with self._tenants_lock:
                del self._flights[key]
            flight.set_exception(exc)
            raise
        with self._tenants_lock:
            del self._flights[key]
        flight.set_result(value)
        return value

    def _ask_version(self) -> None:
        """Ask the source for its version (outside the lock); an answer to a check that started
        earlier never replaces a later one."""
        assert self.tenants is not None
        with self._tenants_lock:
            ticket = next(self._tickets)
        started = time.monotonic()
        version = self.tenants.version()
        with self._tenants_lock:
            if ticket > self._version_ticket:
                self._version_ticket, self._source_version = ticket, version
                self._checked = max(self._checked, started)

    def _sourced_config(self, tenant: str, *, within_request: bool) -> TenantConfig:
        entry = self._sourced.get(tenant)
        if entry is not None and (within_request or entry.seen == self._source_version):
            if entry.removed and not within_request:
                raise self._removed(tenant)
            # within a request (check=False) a tenant removed meanwhile keeps its last configuration
            return entry.config
        # shared only by callers that know the same version: a caller that saw a newer one
        # (a rotation meanwhile) never takes the answer of a load that started before it
        return self._shared(("get", tenant, self._source_version), partial(self._load, tenant))

    def _load(self, tenant: str) -> TenantConfig:
        """Load ``tenant`` from the source (outside the lock) and keep it, unless a load that
        started later was kept meanwhile (compare-and-set on the load's ticket)."""
        assert self.tenants is not None
        with self._tenants_lock:
            ticket, seen = next(self._tickets), self._source_version
        found = self.tenants.get(tenant)
        changed = removed = False
        with self._tenants_lock:
            entry = self._sourced.get(tenant)
            if entry is not None and entry.ticket > ticket:  # a later load won: its answer stands
                if entry.removed:
                    raise self._removed(tenant)
                return entry.config
            if found is None:
                if entry is not None:
                    entry.seen, entry.ticket = seen, ticket
                    removed = not entry.removed
                    entry.removed = True
            else:
                config, etag = found
                if entry is None or entry.etag != etag or entry.removed:
                    changed = entry is not None
                    entry = self._sourced[tenant] = _Sourced(config, etag, seen, ticket)
                else:
                    entry.seen, entry.ticket = seen, ticket
        if removed:
            log.info("tenant %s was removed from the tenant source", tenant)
            self._forget(tenant)
        elif changed:
            log.info("tenant %s changed in the tenant source: its providers are rebuilt", tenant)
            self._forget(tenant)
        if found is None:
            raise self._removed(tenant)
        assert entry is not None
        return entry.config

    def _check_shadowed(self, tenant: str) -> None:
        """Warn once if the source also has configuration tenant ``tenant`` (asks the source)."""
        assert self.tenants is not None
        with self._tenants_lock:
            if tenant in self._shadowed:
                return
            self._shadowed.add(tenant)
        if tenant in self.tenants.names():
            log.warning("tenant %s is in the configuration and in the tenant source: the "
                        "configuration's is used", tenant)

    def _removed(self, tenant: str) -> UnknownTenant:
        configured = ", ".join(sorted(self.settings.tenants)) or "none"
        return UnknownTenant(tenant, f"not in the configuration (configured tenants: {configured}) "
                                     "nor in the tenant source (removed, or never added)")

    def _forget(self, tenant: str) -> None:
        """Drop what was built from ``tenant``'s old configuration (providers, policy, transports)."""
        self._policies.pop(tenant, None)
        for key in [k for k in list(self._providers) if k[0] == tenant]:
            self._providers.pop(key, None)
        for hook in self.forget_hooks:
            hook(tenant)

    def refresh_tenants(self) -> None:
        """Ask the tenant source now whether anything changed (the next call of each tenant reloads it)."""
        if self.tenants is not None:
            self._ask_version()

    def expire_tenants(self) -> None:
        """Make the next call of any tenant ask the source whether anything changed (no I/O)."""
        with self._tenants_lock:
            self._refresh_from = next(self._tickets)

    def tenant_names(self) -> list[str]:
        """Every tenant this gateway serves: the configuration's, then the tenant source's that
        no configuration tenant shadows (asks the source: a worker thread on an event loop)."""
        names = list(self.settings.tenants)
        if self.tenants is not None:
            names += [n for n in self.tenants.names() if n not in self.settings.tenants]
        return names

    def has_provider(self, tenant: str, instance: str) -> bool:
        """Whether ``tenant`` exists (in the configuration or the source) and has provider ``instance``."""
        try:
            return instance in self.tenant_config(tenant).providers
        except UnknownTenant:
            return False

    def _config(self, tenant: str) -> TenantConfig:
        """``tenant``'s configuration as last loaded (no check of the source: within a request)."""
        return self.tenant_config(tenant, check=False)

    def provider(self, tenant: str, instance: str) -> Provider:
        key = (tenant, instance)
        cfg = self.settings.tenants.get(tenant)
        if cfg is None:
            cfg = self._config(tenant)
        built = self._providers.get(key)
        # a provider built from a configuration replaced meanwhile (another thread) is built again
        if built is not None and built[0] is cfg:
            return built[1]
        try:
            settings = cfg.providers[instance]
        except KeyError:
            raise ConfigError(
                f"tenant {tenant!r} has no provider {instance!r} "
                f"(configured: {', '.join(cfg.providers) or 'none'})"
            ) from None
        try:
            self.settings.require_credentials(tenant, instance)
            prov = build_provider(self.plugins, tenant, instance, settings)
        except ConfigError as exc:
            self.settings.locate(exc)  # named with the configuration file, as the file's other problems
            raise
        prov.tenant = tenant
        self._providers[key] = (cfg, prov)
        return prov

    def policy(self, tenant: str, *, check: bool | None = None) -> TenantPolicy:
        return self.policy_for(tenant, self.tenant_config(tenant, check=check))  # may drop a changed tenant's

    def renewer(self, tenant: str) -> Callable[[], TenantPolicy] | None:
        """How a long campaign run takes ``tenant``'s current policy before each claim
        (:attr:`smsgate.core.campaign.CampaignRun.renew`): with a tenant source, by asking it
        (not only when ``tenant_refresh`` is due: a tenant rotated or removed in another
        process is seen from the next claim on); ``None`` without one (the tenants are fixed)."""
        return None if self.tenants is None else partial(self.policy, tenant, check=True)

    def policy_for(self, tenant: str, cfg: TenantConfig) -> TenantPolicy:
        """``tenant``'s policy for configuration ``cfg`` (no I/O): kept while the configuration is."""
        policy = self._policies.get(tenant)
        if policy is None or policy.config is not cfg:
            policy = TenantPolicy(tenant, cfg, partial(self.provider, tenant), self.plugins.hook)
            self._policies[tenant] = policy
        return policy

    def retry_policy(self, tenant: str, instance: str) -> RetryPolicy:
        settings = self._config(tenant).providers[instance]
        prov = self.provider(tenant, instance)
        return RetryPolicy(max_retries=settings.max_retries, provider=instance,
                           not_processed=prov.not_processed_statuses | settings.not_processed_statuses)

    def finish(self, tenant: str, instance: str, error: BaseException | None, seconds: float,
               gate: SyncGate | AsyncGate | None, message_ids: tuple[str, ...] = ()) -> bool | None:
        """Count a call (and tell the ``smsgate_on_call`` hook); what it says about the vendor
        (see :func:`outcome`)."""
        ok = True if error is None else outcome(error)
        if ok is None:  # it never reached the vendor's door: nothing to count
            return None
        waited = gate.waited if gate is not None else 0.0
        self.calls.call(tenant, instance, error, seconds, waited)
        hook = self.plugins.hook.smsgate_on_call
        if hook.get_hookimpls():
            # the call has happened: its answer must still reach the log
            hooks.guarded(tenant, "smsgate_on_call", "a call to", instance, hook,
                          tenant=tenant, instance=instance, error=error, seconds=seconds, waited=waited,
                          message_ids=message_ids)
        return ok

    def health(self, tenant: str) -> dict[str, ProviderHealth]:
        """Every provider instance of ``tenant``: breaker, limits and this process's counters."""
        policy = self.policy(tenant)
        cfg = policy.config
        out = {}
        for name, settings in cfg.providers.items():
            plan = policy.limits(name)
            health = ProviderHealth(name, settings.plugin, self.breakers.state(tenant, name, settings.breaker),
                                    limit_states(self.traffic, tenant, plan, self.lease(tenant, name),
                                                 policy.sender_of(None, name))
                                    if plan is not None else [])
            out[name] = self.calls.fill(tenant, health)
        return out

    def explain(self, tenant: str, to: str, kind: str | None, text: str | None, key: str | None,
                provider: str | None, attachments: Sequence[Attachment] | None,
                location: Location | None, variables: Mapping[str, str] | None = None) -> RouteExplanation:
        """How a message to ``to`` would be routed now (reads breakers and limits from the store).

        ``text`` is rendered as a send renders it (:meth:`TenantPolicy.render`: placeholders
        filled from ``variables``, ``{{``/``}}`` unescaped, smart encoding): its segments and
        encoding are those of the text that would be sent."""
        policy = self.policy(tenant)
        cfg = policy.config
        policy.check_shared(text, None, {"attachments": attachments, "location": location})
        if key is not None and not isinstance(key, str):
            raise wrong_type("key", key, "a string (an idempotency key or message id)")
        body = policy.render(text, None, variables or {}) if text else ""
        msg = OutboundMessage(to=policy.normalize(to), text=body, kind=check_kind(kind),
                              attachments=list(attachments or []), location=location)

        def state(instance: str) -> tuple[BreakerState, list[LimitState]]:
            plan = policy.limits(instance)
            return (self.breakers.state(tenant, instance, cfg.providers[instance].breaker),
                    limit_states(self.traffic, tenant, plan, self.lease(tenant, instance),
                                 policy.sender_of(None, instance)) if plan is not None else [])

        return policy.explain(msg, provider, key, state)

    def breaker(self, tenant: str, instance: str) -> Breaker:
        """The configuration of ``instance``'s circuit breaker."""
        return self._config(tenant).providers[instance].breaker

    def lease(self, tenant: str, instance: str) -> float:
        """How long a request in flight counts against limits if its process never says (it died)."""
        return 2 * self._config(tenant).providers[instance].timeout + 60

    def check(self) -> list[str]:
        """Check every tenant (:func:`~smsgate.plugins.check_tenant`: the configuration's,
        then the tenant source's); returns one line per provider instance.

        Raises :class:`ConfigError` at the first problem, naming the tenant and the key
        (``tenants.acme.providers.main.options: ...``); for a tenant of the tenant source
        the message says so (``stored tenant 'acme': ...``).
        """
        lines = []
        for tname in self.tenant_names():
            provs = self.check_tenant(tname)
            lines += [f"{tname}/{prov.instance_name}: {prov.name} at {prov.base_url}" for prov in provs]
        return lines

    def check_tenant(self, tname: str) -> list[Provider]:
        """Check one tenant (the configuration's or the tenant source's) as :meth:`check` checks
        each: its providers built, their instances returned. Raises :class:`ConfigError` naming
        the key at fault; for a tenant of the tenant source the message says so."""
        try:
            tcfg = self.tenant_config(tname, check=True)
            return check_tenant(self.plugins, tname, tcfg, partial(self.provider, tname))
        except ConfigError as exc:
            if tname not in self.settings.tenants:  # not in the file: say where it is
                exc._reword(f"stored tenant {tname!r} (not in the configuration file; see 'smsgate tenant "
                            f"list'): {exc}")
            else:  # the file's: named with it (no providers, no sender), as its other problems
                self.settings.locate(exc)
            raise

    def purge(self, tenant: str | None, older_than: Duration, dry_run: bool,
              batch_size: int) -> PurgeResult:
        """Retention for ``tenant`` (``None``: every tenant in the store). First (unless
        ``dry_run``) the claims of campaign runners that are gone are resolved
        (:func:`smsgate.core.campaign.recover_expired`): nothing else may ever do it for a
        cancelled campaign or one whose tenant was removed, and a claim keeps a campaign."""
        args = _purge_args(tenant, older_than, dry_run, batch_size)
        if not dry_run:
            self.recover_expired_claims(tenant)
        return self.store.purge(tenant, **args)

    def recover_expired_claims(self, tenant: str | None) -> int:
        """Resolve the claims of gone runners in every campaign of ``tenant`` (``None``: of every
        tenant with campaigns in the store, configured or not); how many."""
        names = [tenant] if tenant is not None else self.store.campaign_tenants()
        total = 0
        for name in names:
            driver = store_driver(self.store, name, self.plugins.hook)
            for cid in self.store.campaigns_to_recover(name):  # not the finished ones without claims
                n = driver.drive(campaign_plans.recover_expired(name, cid, new_id("purge"), self.plugins.hook))
                if n:
                    log.warning("tenant %s: campaign %s: %d claims of runners that are gone were resolved", name,
                                cid, n)
                total += n
            driver.writer.flush()
        return total

    def close_store(self) -> None:
        for lease in list(self._leases.values()):  # sends nothing more: what it left queued can be recovered
            try:
                lease.end()
            except Exception as exc:
                log.warning("tenant %s: could not end the send lease (%s)", lease.tenant, exc)
        with self._store_lock:
            traffic, store = self._traffic, self._store  # (never opened: nothing to close)
            self._opener = _closed_store  # never opened after this
        if traffic is not None and traffic is not store and isinstance(traffic, Closeable):  # Redis: its own
            traffic.close()
        if self._own_store and store is not None:
            store.close()


def _open_store(core: _GatewayCore) -> None:
    """Open ``core``'s store now (see :attr:`_GatewayCore.store`)."""
    core.store  # noqa: B018  (the property opens it)


def _closed_store() -> Store:
    """The opener of a store its gateway closed before its first use."""
    raise GatewayClosed("gateway")


def _fenced(send: SendLease, ids: tuple[str, ...], runner: campaign_plans.RunnerFence) -> None:
    """A campaign runner's try's fence (see :meth:`Gateway._call`): its send lease and its claims."""
    send.fence(ids)
    runner.fence()


def circuit_open(instance: str) -> CircuitOpen:
    """The error of a call skipped because ``instance``'s breaker is open."""
    return CircuitOpen("skipped: its circuit breaker is open (it failed repeatedly)", provider=instance)


def outcome(exc: BaseException) -> bool | None:
    """What a call that raised ``exc`` says about its vendor: down (``False``), up
    (``True``, it answered), or nothing (it never started: a limit wait stopped, an
    adapter that could not build its request, a breaker, the store keeping limits)."""
    if is_down(exc):
        return False
    if isinstance(exc, (StoppedWaiting, CircuitOpen, StoreError)) or not isinstance(exc, SmsgateError):
        return None
    return True


def _specs(recipients: Recipients, text: str | None) -> list[MessageSpec | str]:
    """``send_many``'s recipients for :class:`~smsgate.core.deliver.SendMany` (given ``text``):
    a number stays a string, a mapping becomes a :class:`MessageSpec`, a spec without a text gets ``text``."""
    if isinstance(recipients, (str, bytes, bytearray, Mapping, MessageSpec, BaseModel)):
        # one recipient where a collection is expected: a string would be read a character a row
        raise ValidationError(f"a list (or other iterable) of recipients, not one {type(recipients).__name__}: "
                              "wrap it in a list", field="recipients")
    if not isinstance(recipients, Iterable):
        raise ValidationError(f"a list (or other iterable) of recipients, not {type(recipients).__name__}",
                              field="recipients")
    out: list[MessageSpec | str] = []
    for i, item in enumerate(recipients):
        if isinstance(item, str):
            out.append(item)
            continue
        if isinstance(item, MessageSpec):
            spec = item
        elif isinstance(item, Mapping):
            spec = _spec_of(item, i)
        else:
            raise ValidationError(f"expected a phone number or MessageSpec, got {type(item).__name__}",
                                  location=f"recipient {i}")
        if spec.text is None:
            spec.text = text
        out.append(spec)
    return out


#: The keys of a ``send_many`` recipient given as a mapping (:class:`MessageSpec`'s fields).
_SPEC_KEYS = tuple(f.name for f in dataclasses.fields(MessageSpec))


def _spec_of(item: Mapping[Any, Any], i: int) -> MessageSpec:
    """A mapping recipient as a :class:`MessageSpec`; an unknown or missing key is a
    :class:`ValidationError` naming the recipient and the keys there are."""
    unknown = [key for key in item if key not in _SPEC_KEYS]
    if unknown:
        hint = ""
        for key in map(str, unknown):
            close = (["to"] if key.lower() in ("phone", "number", "msisdn", "recipient") and "to" not in item
                     else difflib.get_close_matches(key, _SPEC_KEYS, 1))
            if close:
                hint = f" (did you mean {close[0]!r}?)"
                break
        raise ValidationError(f"unknown key(s) {', '.join(map(repr, unknown))}{hint}; a recipient's keys are "
                              f"{', '.join(_SPEC_KEYS)}", location=f"recipient {i}")
    if "to" not in item:
        raise ValidationError("no 'to' (the recipient's number)", location=f"recipient {i}")
    return MessageSpec(**item)


#: What a blank ``message_id`` (``status("")``) is told to give instead (its ValidationError).
MESSAGE_ID = "the message's id (msg_..., as send() returned it)"


def _seconds(value: Duration, name: str, location: str = "sync_statuses") -> float:
    """A duration argument in seconds, 0 to :data:`MAX_DURATION`: a number of seconds, a
    ``timedelta`` or a duration string such as ``"90d"`` (:func:`~smsgate.filters.parse_duration`,
    the rule of ``messages(since=...)`` and ``stats``: Celery beat passes its kwargs as JSON)."""
    if isinstance(value, timedelta):
        seconds: object = value.total_seconds()
    elif isinstance(value, str):
        seconds = parse_duration(value, name, location)
    else:
        seconds = value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_DURATION:
        raise ValidationError(f"{name} must be a duration from 0 to 1,000 years (seconds, a timedelta or a "
                              f"duration such as '90d'), not {value!r}", field=name, location=location)
    return float(seconds)


def _count(value: object, name: str, location: str) -> int:
    """A count argument (``limit``, ``concurrency``...): a whole number >= 1 (not a bool, not a string)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_COUNT:
        raise ValidationError(f"{name} must be a whole number from 1 to {MAX_COUNT}, not {value!r}", field=name,
                              location=location)
    return value


def _purge_args(tenant: str | None, older_than: Duration, dry_run: bool, batch_size: int) -> dict[str, Any]:
    """The keyword arguments of :meth:`Store.purge` for a purge of ``tenant``'s data ``older_than`` ago."""
    before = utcnow() - timedelta(seconds=_seconds(older_than, "older_than", "purge"))
    check_purge(tenant, before, dry_run, batch_size)  # the store's rule, before claims are recovered
    return {"before": before, "dry_run": dry_run, "batch_size": batch_size}


#: Defaults of ``sync_statuses``: looked up 5 minutes after being logged, then after 1, 2, 4...
#: minutes (at most an hour apart), for messages logged within the last 7 days; 100 lookups a tick.
SYNC_OLDER_THAN, SYNC_LIMIT, SYNC_BACKOFF, SYNC_MAX_BACKOFF, SYNC_MAX_AGE = 300.0, 100, 60.0, 3600.0, 7 * 86400.0


def _sync_args(older_than: Duration = SYNC_OLDER_THAN, limit: int = SYNC_LIMIT,
               backoff: Duration = SYNC_BACKOFF, max_backoff: Duration = SYNC_MAX_BACKOFF,
               max_age: Duration = SYNC_MAX_AGE,
               recover_after: Duration | None = RECOVER_AFTER) -> dict[str, Any]:
    """The options of ``sync_statuses`` checked (a :class:`ValidationError` for a bad one), as
    the keyword arguments of :func:`smsgate.core.reconcile.sync` (``instances`` aside)."""
    _count(limit, "limit", "sync_statuses")
    return {"older_than": _seconds(older_than, "older_than"), "limit": limit, "backoff": _seconds(backoff, "backoff"),
            "max_backoff": _seconds(max_backoff, "max_backoff"), "max_age": _seconds(max_age, "max_age"),
            "recover_after": None if recover_after is None else _seconds(recover_after, "recover_after")}


def _check_sync_options(options: Mapping[str, Any]) -> None:
    """The options of a poller tick over several tenants, checked once before any tenant is
    polled: an unknown option (``TypeError``) or a bad value (:class:`ValidationError`) is the
    caller's, the same for every tenant, so it is raised, never reported once per tenant."""
    unknown = sorted(set(options) - _SYNC_OPTIONS)
    if unknown:
        raise TypeError(f"sync_statuses() got unexpected option(s): {', '.join(unknown)}")
    _sync_args(**{k: v for k, v in options.items() if k != "instances"})
    if options.get("instances") is not None:
        _names("instances", options["instances"])


#: The options of ``Tenant.sync_statuses`` (those ``Gateway.sync_statuses`` passes on).
_SYNC_OPTIONS = frozenset({"older_than", "limit", "backoff", "max_backoff", "max_age", "instances", "recover_after"})


#: How a poller tick over several tenants logs a tenant it could not poll (at ERROR).
SYNC_FAILED_LOG = "status sync: tenant %r could not be polled (the others were): %s"


def _sync_failed(tenant: str, exc: Exception) -> SyncSummary:
    """The summary of a tenant a poller tick over several tenants could not poll, the failure
    logged at ERROR with the tenant's name. An smsgate error is told by its type and message
    (they never carry a secret); any other exception (a bug, a tenant source's own error) is
    told by its type in the summary, and logged with its traceback for whoever fixes it."""
    if isinstance(exc, SmsgateError):
        what = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        log.error(SYNC_FAILED_LOG, tenant, what)
    else:
        what = f"{type(exc).__name__} (an unexpected error: see the log)"
        log.error(SYNC_FAILED_LOG, tenant, what, exc_info=exc)
    return SyncSummary(error=what)


class _TenantBase:
    """What the sync and async tenant handles share (no I/O)."""

    _gw: _GatewayMixin[Any]

    def __init__(self, gateway: _GatewayMixin[Any], name: str) -> None:
        self._gw = gateway
        self._core_of = gateway._core_
        self.name = name

    @property
    def _core(self) -> _GatewayCore:
        # every use of the handle comes through here (or the gateway's drivers): refused once closed
        if self._gw._closed:
            raise self._gw._closed_error()
        return self._core_of

    @property
    def _policy(self) -> TenantPolicy:
        # asked per call: a tenant of a tenant source that changed (new credentials) gets a
        # new policy and providers, one that was removed is refused (UnknownTenant)
        return self._core.policy(self.name)

    @property
    def config(self) -> TenantConfig:
        """The tenant's configuration (a source's tenant: as last loaded)."""
        return self._policy.config

    def provider(self, instance: str) -> Provider:
        """The provider adapter for one of this tenant's provider instances."""
        policy = self._policy
        policy.check_provider(instance, "instance")
        return policy.provider(instance)

    def normalize(self, phone: str) -> str:
        """``phone`` in E.164, read with the tenant's default region."""
        return self._policy.normalize(phone)

    def _sync_plan(self, older_than: Duration, limit: int, backoff: Duration,
                   max_backoff: Duration, max_age: Duration,
                   instances: Sequence[str] | None, recover_after: Duration | None) -> Plan[SyncSummary]:
        args = _sync_args(older_than, limit, backoff, max_backoff, max_age, recover_after)
        if instances is not None:
            instances = _names("instances", instances)
            for name in instances:
                self._policy.provider(name)  # ConfigError for an unknown instance
        return reconcile.sync(self._policy, instances=instances, **args)

    def _look_up_plan(self, message_id: str, recover_after: Duration) -> Plan[MessageRecord]:
        return reconcile.look_up(self._policy, check_id("message_id", message_id, blank=MESSAGE_ID),
                                 recover_after=_seconds(recover_after, "recover_after", "look_up"))

    def _recover_plan(self, older_than: Duration, limit: int) -> Plan[list[str]]:
        _count(limit, "limit", "recover_queued")
        return recover_plans.recover(self._policy, older_than=_seconds(older_than, "older_than", "recover_queued"),
                                     limit=limit)

    def _filters(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        """The filters of :meth:`Tenant.messages`, checked (see :mod:`smsgate.filters`)."""
        return message_filters(filters, self._policy.normalize)

    def _stats_args(self, provider: object, campaign_id: object, since: When,
                    until: When) -> tuple[datetime | None, datetime | None]:
        """The arguments of :meth:`Tenant.stats` checked: the narrowing ids (``None``: no
        narrowing) and the window, read as points in time."""
        for field, value in (("provider", provider), ("campaign_id", campaign_id)):
            if value is not None:
                check_id(field, value, "stats")
        start, end = point_in_time(since, "since", "stats"), point_in_time(until, "until", "stats")
        if start is not None and end is not None and end < start:
            # swapped bounds ("1h" .. "2h": from one hour ago until two hours ago) select nothing:
            # all zeros would read as "nothing was sent"
            raise ValidationError(f"{end.isoformat(timespec='seconds')} ({until}) is before since, "
                                  f"{start.isoformat(timespec='seconds')} ({since}): give the earlier moment as "
                                  "since (a duration such as '2h' is that long ago)", field="until", location="stats")
        return start, end

    def _ever_sent_through(self, provider: str, *, narrowed: bool) -> bool:
        """Whether any message of the log went through ``provider`` (only asked again when the
        statistics were narrowed by a window or a campaign: the first page of one stream)."""
        if not narrowed:
            return False
        times = self._core.store.message_times(self.name, provider=provider)
        try:
            return next(iter(times), None) is not None
        finally:
            close = getattr(times, "close", None)
            if close is not None:
                close()

    def _stats(self, period: str, provider: str | None, campaign_id: str | None, since: datetime | None,
               until: datetime | None) -> Stats:
        from smsgate.stats import compute

        times = self._core.store.message_times(self.name, campaign_id=campaign_id, provider=provider,
                                               since=since, until=until)
        stats = compute(times, tz=self.config.stats_zone, period=period, provider=provider)
        if provider is not None and not stats.total and provider not in self.config.providers \
                and not self._ever_sent_through(provider, narrowed=(campaign_id, since, until) != (None, None, None)):
            # a typo would answer all zeros; a provider since removed from the configuration has its figures
            raise ValidationError(f"tenant {self.name!r} has no provider {provider!r} (its providers: "
                                  f"{', '.join(self.config.providers) or 'none'}), and no message in the log "
                                  "went through one of that name", field="provider")
        return stats


class Tenant(_TenantBase):
    """One tenant's view of a :class:`Gateway`."""

    _gw: Gateway

    def __init__(self, gateway: Gateway, name: str) -> None:
        super().__init__(gateway, name)
        #: The tenant's opt-out registry (see :mod:`smsgate.optouts`).
        self.optouts = OptOuts(self)

    @property
    def _driver(self) -> SyncPlanDriver:
        # the gateway's driver of this tenant, made (its store opened) at the handle's first
        # call, not by gw.tenant(): a store that cannot be opened is that call's error
        return self._gw._plan_driver(self.name)

    def _drive(self, plan: Plan[T]) -> T:
        if self._gw._closed:
            raise self._gw._closed_error()
        return self._driver.drive(plan)

    def run(self, instance: str, operation: Operation[T]) -> T:
        """Drive any operation of one of this tenant's providers (escape hatch)."""
        self._policy.check_provider(instance, "instance")  # a KeyError from the transport's settings
        return self._gw._transport(self.name, instance).run(operation)

    def iterate(self, instance: str, paged: Paged[T]) -> Iterator[T]:
        """Lazily walk every page of a provider listing (one page in memory at a time)."""
        self._policy.check_provider(instance, "instance")
        return self._gw._transport(self.name, instance).iterate(paged)

    def send(
        self, to: str, text: str | None = None, *, sender: str | None = None,
        template: Template | None = None, variables: Mapping[str, str] | None = None,
        reference: str | None = None, idempotency_key: str | None = None,
        provider: str | None = None, attachments: Sequence[Attachment] | None = None,
        location: Location | None = None, provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None, kind: str | None = None,
    ) -> SendResult:
        """Send one message; raises on anything that stops it being accepted.

        The number is normalised with the tenant's region; ``template`` (a neutral
        :class:`~smsgate.models.Template`) or ``text`` is rendered with ``variables``.
        Raises :class:`~smsgate.errors.OptedOut`, :class:`~smsgate.errors.ValidationError`,
        :class:`~smsgate.errors.Unsupported`, :class:`~smsgate.errors.NoRoute` (a ``ConfigError``: no route),
        or the last provider's :class:`~smsgate.errors.ProviderError`
        (:class:`~smsgate.errors.UnknownOutcome` when it may have been sent). The
        message is logged in every case. ``kind`` (``"otp"``, ``"marketing"``...) picks
        the routes restricted to that kind (see docs/routing.md).
        """
        policy = self._policy
        msg = policy.build(to, text, sender=sender, template=template, variables=variables, reference=reference,
                           idempotency_key=idempotency_key, attachments=attachments, location=location,
                           provider_options=provider_options, campaign_id=campaign_id, kind=kind)
        gw = self._gw
        with gw._sending() as stop:  # a close() stops it while it waits for its limits: not sent
            return gw._plan_driver(self.name, stop).drive(deliver.send_one(policy, msg, provider, template))


    def send_many(
        self, recipients: Recipients, text: str | None = None, *, sender: str | None = None,
        template: Template | None = None, provider: str | None = None,
        attachments: Sequence[Attachment] | None = None, location: Location | None = None,
        provider_options: Mapping[str, Any] | None = None, campaign_id: str | None = None,
        kind: str | None = None,
    ) -> list[SendResult]:
        """Send to many recipients; one result per recipient, in input order.

        Never raises for one message: opted-out, invalid and unroutable numbers come
        back as ``rejected`` results, provider failures as ``failed`` / ``unknown``.
        Uses a provider's bulk API where it has one, batched to its ``max_batch``.
        Recipients are phone strings, :class:`MessageSpec` objects or dicts with
        ``to``, ``text``, ``variables``, ``reference``, ``idempotency_key``, ``kind``
        (``kind`` applies to every recipient without one of its own). A number listed
        twice is sent twice (campaigns de-duplicate; ``send_many`` does not).
        """
        # one request at a time: a chunk is logged ahead in one write (not one per request)
        feed = deliver.SendMany(self._policy, _specs(recipients, text), provider, template, dict(
            sender=sender, attachments=attachments, location=location, provider_options=provider_options,
            campaign_id=campaign_id, kind=check_kind(kind)), ahead=True, text=text)
        gw = self._gw
        with gw._sending() as stop:  # one request at a time, in this thread
            return gw._plan_driver(self.name, stop).drive(deliver.send_many(feed, 1, gw._closed_error))

    def explain_route(
        self, to: str, kind: str | None = None, text: str | None = None, *, key: str | None = None,
        provider: str | None = None, attachments: Sequence[Attachment] | None = None,
        location: Location | None = None, variables: Mapping[str, str] | None = None,
    ) -> RouteExplanation:
        """How a message to ``to`` would be routed now, and why (sends nothing).

        Lists the candidates in the order the kernel would try them, each with why it
        is tried, skipped (open circuit breaker) or excluded (a capability the message
        needs), its weight, breaker and limits (a full limit makes a request wait).
        ``key`` (an idempotency key or message id) applies a route's weights as for that
        message; ``text`` adds segments and encoding, counted on the text a send would
        send (``variables`` fill its placeholders, ``{{``/``}}`` are one brace: the send
        path's own rendering, so its errors too); ``attachments`` / ``location`` the
        capabilities they need.
        """
        return self._core.explain(self.name, to, kind, text, key, provider, attachments, location, variables)

    def status(self, message_id: str, *, refresh: bool = True) -> MessageRecord:
        """The message's record; asks the provider for news if it is not final and can."""
        check_id("message_id", message_id, blank=MESSAGE_ID)
        return self._drive(reports.status(self._policy, message_id, refresh))

    def look_up(self, message_id: str, *, recover_after: Duration = RECOVER_AFTER) -> MessageRecord:
        """Settle one message now if its provider can say, by the status poller's rules
        (:func:`smsgate.core.reconcile.look_up`); its record as it is then.

        ``queued`` by a process that died (logged at least ``recover_after`` ago, no live
        process can still send it): ``unknown`` first. ``unknown``: found at the provider by
        status or client-reference lookup, it takes the provider's status; never received by
        any provider that could have it, once they had time to act (twice their ``timeout``
        after it was logged), ``failed`` with raw status ``not_received`` (safe to send
        again); otherwise it stays as it is. In flight: a status lookup. Sends nothing.
        """
        return self._drive(self._look_up_plan(message_id, recover_after))

    def sync_statuses(self, *, older_than: Duration = SYNC_OLDER_THAN, limit: int = SYNC_LIMIT,
                      backoff: Duration = SYNC_BACKOFF, max_backoff: Duration = SYNC_MAX_BACKOFF,
                      max_age: Duration = SYNC_MAX_AGE, instances: Sequence[str] | None = None,
                      recover_after: Duration | None = RECOVER_AFTER) -> SyncSummary:
        """One tick of the status poller (see :mod:`smsgate.core.reconcile` and docs/webhooks.md).

        First, messages a crashed process left ``queued`` at least ``recover_after`` ago
        (``None``: not now) are marked ``unknown`` as :meth:`recover_queued` does. Messages still ``submitted`` / ``sent`` ``older_than`` after they were logged
        (seconds or a ``timedelta``) are looked up at providers with status lookups;
        ``unknown`` ones are resolved by client-reference lookups (found: the provider's
        status; never received by any provider that could have it: ``failed``, raw
        status ``not_received``, never sent again). At most ``limit`` lookups; a message
        looked up ``n`` times waits ``backoff * 2**(n-1)`` seconds (at most
        ``max_backoff``) before the next; messages logged more than ``max_age`` ago
        are left alone; ``instances`` restricts it to some provider instances. Call it
        from a scheduler (cron: ``smsgate status sync``; Celery beat:
        ``smsgate.contrib.celery.sync_statuses``).
        """
        return self._drive(self._sync_plan(older_than, limit, backoff, max_backoff, max_age, instances,
                                           recover_after))

    def recover_queued(self, *, older_than: Duration = RECOVER_AFTER,
                       limit: int = RECOVER_LIMIT) -> list[str]:
        """Mark ``unknown`` the messages a crashed process left ``queued``; their ids.

        A message is logged ``queued`` just before its request leaves; a process killed
        before its answer was logged leaves it so. Only messages no live process can still
        send are touched: logged at least ``older_than`` ago (seconds or a ``timedelta``)
        and before every live process's send lease says it logged the messages it still
        waits for (see :mod:`smsgate.core.recover`). Their request may have left, so they
        become ``unknown`` (raw status ``recovered``), never ``failed``: :meth:`sync_statuses`
        then resolves them where a provider keeps client references (never received:
        ``failed``, raw status ``not_received``, safe to send again). At most ``limit``;
        oldest first. Each tick of :meth:`sync_statuses` runs it first (``recover_after``).
        """
        return self._drive(self._recover_plan(older_than, limit))

    def get(self, message_id: str) -> MessageRecord:
        """A logged message with its status history (no provider lookup)."""
        return self._core.store.get_message(self.name, check_id("message_id", message_id, blank=MESSAGE_ID))

    def messages(self, **filters: Any) -> list[MessageRecord]:
        """The message log, newest first, without histories (:meth:`get` has one).

        Filters: ``status`` (a :class:`~smsgate.models.Status` or its value, ``"sent"``),
        ``to`` (read with the tenant's region), ``campaign_id``, ``since`` (a datetime, a
        timedelta or a duration such as ``"1h"`` / ``"90d"``: logged within that last while),
        ``limit`` (default 100) and ``before`` (a message id, for paging). A bad or unknown
        filter is a :class:`~smsgate.errors.ValidationError` naming it (see :mod:`smsgate.filters`).
        """
        return self._core.store.list_messages(self.name, **self._filters(filters))

    def inbound(self, *, from_number: str | None = None, limit: int = 100, before: int | None = None,
                since: datetime | timedelta | str | None = None, action: str | None = None) -> list[InboundMessage]:
        """Stored inbound messages (replies), newest first; ``from_number`` is read
        with the tenant's region (a short code or an alphanumeric sender as given); ``before`` an ``id`` for paging (see docs/inbound.md).
        ``since`` (a datetime, a timedelta or a duration such as ``"1h"`` / ``"7d"``): received
        within that last while; ``action``: only replies whose keyword did that (``optout``,
        ``optin``, ``help``, ``none``). A ``limit`` or ``before`` that is not a whole number >= 0,
        or a bad ``since`` or ``action``, is a ValidationError naming it."""
        check_page(limit, before)
        check_number_filter(from_number, "from_number", "inbound")
        after, did = inbound_filters(since, action)
        sender = inbound_plans.sender_key(self._policy, from_number) if from_number else None
        return self._core.store.list_inbound(self.name, from_number=sender, limit=limit, before=before, since=after,
                                             action=did)

    def orphan_reports(self, *, provider: str | None = None, limit: int = 100) -> list[DeliveryReport]:
        """Delivery reports that matched no logged message yet, oldest first (applied
        when their message's provider id is logged; see docs/webhooks.md)."""
        check_page(limit)
        if provider is not None:
            check_id("provider", provider)
        return self._core.store.orphan_reports(self.name, provider=provider, limit=limit)

    def ingest_inbound(self, instance: str, messages: Sequence[InboundMessage]) -> list[InboundMessage]:
        """Store and act on inbound messages obtained some other way than the webhook
        app (a poller reading a vendor's list of replies), exactly as the webhook does:
        stored once per vendor event, keywords acted on once. Returns them as stored."""
        self.provider(instance)  # ConfigError for an unknown instance
        stored, _ = self._drive(inbound_plans.handle(self._policy, instance, messages))
        return stored

    def poll_inbound(self, instance: str) -> list[InboundMessage]:
        """Read the replies provider ``instance`` lists (:meth:`~smsgate.provider.Provider.list_inbound`)
        and store and act on them as :meth:`ingest_inbound` does: a reply listed again is not
        stored or acted on twice. For vendors with no inbound webhook (Colony); call it from a
        scheduler or ``smsgate inbound poll``. :class:`~smsgate.errors.Unsupported` for others."""
        messages = self.run(instance, self.provider(instance).list_inbound())
        return self.ingest_inbound(instance, messages)

    def stats(self, period: str = "hour", *, provider: str | None = None, campaign_id: str | None = None,
              since: When = None, until: When = None) -> Stats:
        """Statistics from the local log, bucketed by ``period`` in the tenant's time zone.

        ``since`` / ``until``: a datetime, or a timedelta or duration such as ``"1h"`` /
        ``"90d"`` meaning that long ago (see :mod:`smsgate.filters`).
        """
        return self._stats(period, provider, campaign_id, *self._stats_args(provider, campaign_id, since, until))

    def health(self) -> dict[str, ProviderHealth]:
        """Each provider instance's health: its circuit breaker and how full its limits are
        (shared by every process using the store), and this process's counters of calls,
        failures by kind, latency percentiles and limit waits. See docs/routing.md."""
        return self._core.health(self.name)

    @property
    def contact_lists(self) -> ContactLists:
        """Stored contact lists (see :mod:`smsgate.contacts`)."""
        from smsgate.contacts import ContactLists

        return ContactLists(lambda: self._core.store, self._policy, self._gw._sending, self._gw._closed_error)

    @property
    def campaigns(self) -> CampaignManager:
        """Create, find and list this tenant's campaigns (see :mod:`smsgate.campaigns`)."""
        from smsgate.campaigns import CampaignManager

        return CampaignManager(self)

    def purge(self, *, older_than: Duration, dry_run: bool = False, batch_size: int = 1000) -> PurgeResult:
        """Delete this tenant's data logged more than ``older_than`` ago (seconds or a
        ``timedelta``, e.g. ``timedelta(days=90)``): final messages with their history,
        inbound messages, orphan reports, idempotency keys, finished campaigns (whole).
        Never a message still awaiting a report or in flight. See :meth:`Store.purge
        <smsgate.store.base.Store.purge>` for the rules; ``dry_run`` only counts.
        """
        return self._core.purge(self.name, older_than, dry_run, batch_size)


class AsyncTenant(_TenantBase):
    """One tenant's view of an :class:`AsyncGateway`: :class:`Tenant` with coroutines.

    Store calls, and calls of the gateway's tenant source, run in the gateway's worker
    threads, never on the event loop: each awaited call first makes sure the tenant's
    configuration is current (asking the source in a worker thread when ``tenant_refresh``
    says so, and on the handle's first call), and raises
    :class:`~smsgate.errors.UnknownTenant` if the source lacks the tenant. The plain
    attributes (:attr:`config`, :meth:`provider`, :meth:`normalize`) never ask the source:
    they use the configuration as last loaded (a source's tenant must have been loaded by
    an awaited call first, e.g. ``await handle.load()``).
    """

    _gw: AsyncGateway

    def __init__(self, gateway: AsyncGateway, name: str) -> None:
        super().__init__(gateway, name)
        #: no call of this handle has checked the tenant against the source yet
        self._first = True
        #: The tenant's opt-out registry (see :mod:`smsgate.optouts`).
        self.optouts = AsyncOptOuts(self)

    @property
    def _policy(self) -> TenantPolicy:
        # no I/O (this runs on the event loop): the configuration as last loaded; the awaited
        # calls make it current first (_ready)
        core = self._core
        cfg = core.loaded_config(self.name)
        if cfg is None:
            raise UnknownTenant(self.name, "a tenant of the tenant source that this gateway has not loaded "
                                           "yet: await one of the handle's calls (e.g. 'await handle.load()') first")
        return core.policy_for(self.name, cfg)

    async def _ready(self) -> TenantPolicy:
        """The tenant's policy, its configuration checked against the tenant source when due
        (in a worker thread); :class:`~smsgate.errors.UnknownTenant` if it is gone. The store
        is open after it (opened in a worker thread at its first use)."""
        gw = self._gw
        gw._check_open()
        await gw._store_opened()
        policy = await gw._policy_of(self.name, self._first)
        self._first = False
        return policy

    async def load(self) -> AsyncTenant:
        """Ask the tenant source for this tenant now (in a worker thread), as
        :meth:`Gateway.tenant` does: :class:`~smsgate.errors.UnknownTenant` if it has none.
        Returns the handle: ``acme = await gw.tenant("acme").load()``."""
        gw = self._gw
        gw._check_open()
        gw._core_.policy_for(self.name, await gw._resolve(self.name, first=True))
        self._first = False
        return self

    @property
    def _driver(self) -> AsyncPlanDriver:
        return self._gw._plan_driver(self.name)

    async def _drive(self, plan: Plan[T]) -> T:
        await self._gw._store_opened()
        return await self._driver.drive(plan)

    async def _in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._gw._check_open()
        return await self._gw._run_sync(fn, *args, **kwargs)

    async def run(self, instance: str, operation: Operation[T]) -> T:
        """Drive any operation of one of this tenant's providers (escape hatch)."""
        (await self._ready()).check_provider(instance, "instance")
        return await self._gw._transport(self.name, instance).run(operation)

    def iterate(self, instance: str, paged: Paged[T]) -> AsyncIterator[T]:
        """Lazily walk every page of a provider listing (``async for``)."""
        if self._core.loaded_config(self.name) is not None:
            self._policy.check_provider(instance, "instance")
            return self._gw._transport(self.name, instance).iterate(paged)
        return self._iterate_loaded(instance, paged)  # a source's tenant not loaded yet: on the first step

    async def _iterate_loaded(self, instance: str, paged: Paged[T]) -> AsyncIterator[T]:
        (await self._ready()).check_provider(instance, "instance")
        async for item in self._gw._transport(self.name, instance).iterate(paged):
            yield item

    async def send(
        self, to: str, text: str | None = None, *, sender: str | None = None,
        template: Template | None = None, variables: Mapping[str, str] | None = None,
        reference: str | None = None, idempotency_key: str | None = None,
        provider: str | None = None, attachments: Sequence[Attachment] | None = None,
        location: Location | None = None, provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None, kind: str | None = None,
    ) -> SendResult:
        """Send one message; raises on anything that stops it being accepted.

        The number is normalised with the tenant's region; ``template`` (a neutral
        :class:`~smsgate.models.Template`) or ``text`` is rendered with ``variables``.
        Raises :class:`~smsgate.errors.OptedOut`, :class:`~smsgate.errors.ValidationError`,
        :class:`~smsgate.errors.Unsupported`, :class:`~smsgate.errors.NoRoute` (a ``ConfigError``: no route),
        or the last provider's :class:`~smsgate.errors.ProviderError`
        (:class:`~smsgate.errors.UnknownOutcome` when it may have been sent). The
        message is logged in every case. ``kind`` (``"otp"``, ``"marketing"``...) picks
        the routes restricted to that kind (see docs/routing.md).
        """
        policy = await self._ready()
        msg = policy.build(to, text, sender=sender, template=template, variables=variables, reference=reference,
                           idempotency_key=idempotency_key, attachments=attachments, location=location,
                           provider_options=provider_options, campaign_id=campaign_id, kind=kind)
        gw = self._gw
        with gw._sending() as stop:  # an aclose() stops it while it waits for its limits: not sent
            return await gw._plan_driver(self.name, stop).drive(deliver.send_one(policy, msg, provider, template))


    async def send_many(
        self, recipients: Recipients, text: str | None = None, *, sender: str | None = None,
        template: Template | None = None, provider: str | None = None,
        attachments: Sequence[Attachment] | None = None, location: Location | None = None,
        provider_options: Mapping[str, Any] | None = None, campaign_id: str | None = None,
        concurrency: int | None = None, kind: str | None = None,
    ) -> list[SendResult]:
        """Send to many recipients; one result per recipient, in input order, with up to
        ``concurrency`` requests in flight (default: the gateway's).

        Never raises for one message: opted-out, invalid and unroutable numbers come
        back as ``rejected`` results, provider failures as ``failed`` / ``unknown``.
        Uses a provider's bulk API where it has one, batched to its ``max_batch``.
        Recipients are phone strings, :class:`MessageSpec` objects or dicts with
        ``to``, ``text``, ``variables``, ``reference``, ``idempotency_key``, ``kind``
        (``kind`` applies to every recipient without one of its own).
        """
        if concurrency is not None:
            _count(concurrency, "concurrency", "send_many")
        specs = _specs(recipients, text)
        feed = deliver.SendMany(await self._ready(), specs, provider, template, dict(
            sender=sender, attachments=attachments, location=location, provider_options=provider_options,
            campaign_id=campaign_id, kind=check_kind(kind)), ahead=True, text=text)
        n = max(1, min(concurrency or self._gw.concurrency, len(specs)))  # 0 recipients: 1 worker, no work
        gw = self._gw
        with gw._sending() as stop:
            return await gw._plan_driver(self.name, stop).drive(deliver.send_many(feed, n, gw._closed_error))

    async def explain_route(
        self, to: str, kind: str | None = None, text: str | None = None, *, key: str | None = None,
        provider: str | None = None, attachments: Sequence[Attachment] | None = None,
        location: Location | None = None, variables: Mapping[str, str] | None = None,
    ) -> RouteExplanation:
        """See :meth:`Tenant.explain_route` (breakers and limits are read in a worker thread)."""
        await self._ready()
        found: RouteExplanation = await self._in_thread(self._core.explain, self.name, to, kind, text, key,
                                                        provider, attachments, location, variables)
        return found

    async def status(self, message_id: str, *, refresh: bool = True) -> MessageRecord:
        """The message's record; asks the provider for news if it is not final and can."""
        check_id("message_id", message_id, blank=MESSAGE_ID)
        return await self._drive(reports.status(await self._ready(), message_id, refresh))

    async def look_up(self, message_id: str, *, recover_after: Duration = RECOVER_AFTER) -> MessageRecord:
        """See :meth:`Tenant.look_up` (store calls run in worker threads)."""
        await self._ready()
        self._gw._check_loop()  # it may ask the provider (see AsyncGateway._check_loop)
        return await self._drive(self._look_up_plan(message_id, recover_after))

    async def sync_statuses(self, *, older_than: Duration = SYNC_OLDER_THAN, limit: int = SYNC_LIMIT,
                            backoff: Duration = SYNC_BACKOFF,
                            max_backoff: Duration = SYNC_MAX_BACKOFF,
                            max_age: Duration = SYNC_MAX_AGE, instances: Sequence[str] | None = None,
                            recover_after: Duration | None = RECOVER_AFTER) -> SyncSummary:
        """See :meth:`Tenant.sync_statuses` (store calls run in worker threads)."""
        await self._ready()
        self._gw._check_loop()  # before any message's look-up (see AsyncGateway._check_loop)
        return await self._drive(self._sync_plan(older_than, limit, backoff, max_backoff, max_age, instances,
                                                 recover_after))

    async def recover_queued(self, *, older_than: Duration = RECOVER_AFTER,
                             limit: int = RECOVER_LIMIT) -> list[str]:
        """See :meth:`Tenant.recover_queued` (store calls run in worker threads)."""
        await self._ready()
        self._gw._check_loop()  # it asks the providers (see AsyncGateway._check_loop)
        return await self._drive(self._recover_plan(older_than, limit))

    async def get(self, message_id: str) -> MessageRecord:
        """A logged message with its status history (no provider lookup)."""
        check_id("message_id", message_id, blank=MESSAGE_ID)
        await self._ready()
        record: MessageRecord = await self._drive(_query(Query("get_message", self.name, message_id)))
        return record

    async def messages(self, **filters: Any) -> list[MessageRecord]:
        """The message log, newest first, without histories (see :meth:`Tenant.messages` for the filters)."""
        await self._ready()
        found: list[MessageRecord] = await self._drive(_query(Query("list_messages", self.name,
                                                                    **self._filters(filters))))
        return found

    async def inbound(self, *, from_number: str | None = None, limit: int = 100, before: int | None = None,
                      since: datetime | timedelta | str | None = None,
                      action: str | None = None) -> list[InboundMessage]:
        """Stored inbound messages, newest first (see :meth:`Tenant.inbound` for the filters)."""
        check_page(limit, before)
        check_number_filter(from_number, "from_number", "inbound")
        after, did = inbound_filters(since, action)
        policy = await self._ready()
        sender = inbound_plans.sender_key(policy, from_number) if from_number else None
        found: list[InboundMessage] = await self._drive(_query(Query(
            "list_inbound", self.name, from_number=sender, limit=limit, before=before, since=after, action=did)))
        return found

    async def orphan_reports(self, *, provider: str | None = None, limit: int = 100) -> list[DeliveryReport]:
        """Delivery reports that matched no logged message yet (see :meth:`Tenant.orphan_reports`)."""
        check_page(limit)
        if provider is not None:
            check_id("provider", provider)
        await self._ready()
        found: list[DeliveryReport] = await self._drive(_query(Query(
            "orphan_reports", self.name, provider=provider, limit=limit)))
        return found

    async def ingest_inbound(self, instance: str, messages: Sequence[InboundMessage]) -> list[InboundMessage]:
        """Store and act on polled inbound messages (see :meth:`Tenant.ingest_inbound`)."""
        policy = await self._ready()
        policy.check_provider(instance, "instance")
        policy.provider(instance)
        stored: tuple[list[InboundMessage], int] = await self._drive(
            inbound_plans.handle(policy, instance, messages))
        return stored[0]

    async def poll_inbound(self, instance: str) -> list[InboundMessage]:
        """Read and store the replies provider ``instance`` lists (see :meth:`Tenant.poll_inbound`)."""
        policy = await self._ready()
        policy.check_provider(instance, "instance")
        messages = await self.run(instance, policy.provider(instance).list_inbound())
        return await self.ingest_inbound(instance, messages)

    async def stats(self, period: str = "hour", *, provider: str | None = None, campaign_id: str | None = None,
                    since: When = None, until: When = None) -> Stats:
        """Statistics from the local log, bucketed by ``period`` in the tenant's time zone (see
        :meth:`Tenant.stats`)."""
        await self._ready()
        stats: Stats = await self._in_thread(self._stats, period, provider, campaign_id,
                                             *self._stats_args(provider, campaign_id, since, until))
        return stats

    async def health(self) -> dict[str, ProviderHealth]:
        """See :meth:`Tenant.health`."""
        await self._ready()
        health: dict[str, ProviderHealth] = await self._in_thread(self._core.health, self.name)
        return health

    @property
    def contact_lists(self) -> AsyncContactLists:
        """Stored contact lists (see :mod:`smsgate.contacts`)."""
        from smsgate.contacts import AsyncContactLists

        return AsyncContactLists(lambda: self._core.store, self._ready, self._in_thread, self._gw._sending,
                                 self._gw._closed_error)

    @property
    def campaigns(self) -> AsyncCampaignManager:
        """Create, find and list this tenant's campaigns (see :mod:`smsgate.campaigns`)."""
        from smsgate.campaigns import AsyncCampaignManager

        return AsyncCampaignManager(self)

    async def purge(self, *, older_than: Duration, dry_run: bool = False,
                    batch_size: int = 1000) -> PurgeResult:
        """See :meth:`Tenant.purge` (run in a worker thread, never on the event loop)."""
        await self._ready()
        result: PurgeResult = await self._in_thread(self._core.purge, self.name, older_than, dry_run, batch_size)
        return result


def _names(field: str, names: object) -> list[str]:
    """``sync_statuses(tenants=...)`` / ``(instances=...)``: a collection of names (each a string,
    :func:`~smsgate.core.policy.check_id`), else a :class:`ValidationError` naming ``field`` (one
    name as a string was read a letter a name)."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise ValidationError(f"expected a list of names, got {type(names).__name__}"
                              + (f": wrap it in a list ([{names!r}])" if isinstance(names, str) else ""),
                              field=field)
    return [check_id(field, name) for name in names]


def _query(step: Query) -> Plan[Any]:
    value = yield step
    return value


#: Every gateway of this process that is open, marked forked in a child (:func:`_after_fork`).
_GATEWAYS: weakref.WeakSet[_GatewayMixin[Any]] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child: every gateway the parent had open is refused (:class:`GatewayForked`),
    without touching what it holds (the parent's connections, its held-back writes)."""
    for gw in list(_GATEWAYS):
        gw._forked = True
        gw._closed = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class _GatewayMixin(Generic[E]):
    _core_: _GatewayCore
    #: set by close() / aclose(): every later use is a GatewayClosed
    _closed = False
    #: set in a forked child (see _after_fork): every use is a GatewayForked
    _forked = False
    #: the process that made the gateway
    _pid = 0
    #: the stop events of the send_many calls under way (close() / aclose() set them)
    _stops: set[E]
    #: makes one such event
    _new_stop: Callable[[], E]

    def _register(self) -> None:
        """Known to :func:`_after_fork` (called as the gateway is made)."""
        self._pid = os.getpid()
        _GATEWAYS.add(self)

    def _enter(self) -> None:
        raise NotImplementedError

    def _leave(self) -> None:
        raise NotImplementedError

    @contextmanager
    def _sending(self) -> Iterator[E]:
        """A ``send_many`` under way (refused once closed): its stop event, set when the gateway closes."""
        self._enter()
        stop = self._new_stop()
        self._stops.add(stop)
        try:
            yield stop
        finally:
            self._stops.discard(stop)
            self._leave()

    def _closed_error(self) -> GatewayClosed:
        if self._forked:
            return GatewayForked(type(self).__name__, self._pid)
        return GatewayClosed(type(self).__name__)

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    @property
    def settings(self) -> Settings:
        """The loaded configuration."""
        return self._core_.settings

    @property
    def store(self) -> Store:
        """The store holding every tenant's log (given as a URL: opened, and migrated, at its first use).

        Not opened yet, a gateway closed (or made before this process was forked from the one
        that made it) opens none: :class:`~smsgate.errors.GatewayClosed`
        (:class:`~smsgate.errors.GatewayForked`)."""
        core = self._core_
        if core._store is None and self._closed:
            raise self._closed_error()
        return core.store

    @property
    def plugins(self) -> PluginManager:
        """The plugin manager (register event hooks here)."""
        return self._core_.plugins

    @property
    def tenants(self) -> TenantSource | None:
        """Where tenants the configuration lacks come from (``tenants=`` of the constructor)."""
        return self._core_.tenants

    def check(self) -> list[str]:
        """Validate that every configured provider (and every tenant source's) can be instantiated.

        With a tenant source this asks it in the calling thread: on an
        :class:`AsyncGateway`, ``await gw.check_async()`` asks it off the event loop.
        The gateway's store is not opened (a gateway opens it at its first use): at start-up,
        :meth:`Gateway.open` (``await`` :meth:`AsyncGateway.open`) opens it, raising what
        keeps it shut.
        """
        self._check_open()
        return self._core_.check()

    def has_provider(self, tenant: str, instance: str) -> bool:
        """Whether ``tenant`` exists (configured, or in the tenant source now) with provider ``instance``.

        With a tenant source this may ask it in the calling thread: on an
        :class:`AsyncGateway`, ``await gw.has_provider_async(...)`` asks it off the event loop.
        """
        self._check_open()
        return self._core_.has_provider(tenant, instance)

    def refresh_tenants(self) -> None:
        """Ask the tenant source whether tenants changed now rather than within ``tenant_refresh`` seconds."""
        self._check_open()
        self._core_.refresh_tenants()


class Gateway(_GatewayMixin[threading.Event]):
    """Synchronous gateway. Use as a context manager or call :meth:`close`.

    ``tenants``: a :class:`~smsgate.tenants.TenantSource` for tenants the configuration
    lacks (added, changed and removed at run time; asked whether anything changed on
    every :meth:`tenant` call and at most every ``tenant_refresh`` seconds otherwise).
    Configuration tenants win over a source's tenant of the same name.
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        store: Store | str | None = None,
        plugins: PluginManager | None = None,
        http_client: httpx.Client | None = None,
        tenants: TenantSource | None = None,
        tenant_refresh: Duration = 1.0,
    ) -> None:
        if http_client is not None and not callable(getattr(http_client, "send", None)):
            # 5 was taken, and failed at the first request (AsyncGateway: _check_async_client)
            raise wrong_type("http_client", http_client, "an httpx.Client")
        self._core_ = _GatewayCore(config, store, plugins, tenants, tenant_refresh)
        self._register()
        self._client = http_client or default_client()
        self._own_client = http_client is None
        # a campaign's send threads get clients of their own, unless the application gave one
        self._threads = ThreadClients() if self._own_client else None
        self._transports: dict[tuple[str, str], SyncDriver] = {}
        self._drivers: dict[str, SyncPlanDriver] = {}
        self._core_.forget_hooks.append(self._forget)
        #: sends under way, by thread (close() lets them finish), and the stops of send_many calls
        self._busy = threading.Condition()
        self._active: dict[int, int] = {}
        self._warned_loop = False  # (see _warn_on_loop)
        self._stops = set()
        self._new_stop = threading.Event

    def _enter(self) -> None:
        """A send starts in this thread (refused once closed; on a running event loop, a warning
        once: :meth:`_warn_on_loop`)."""
        with self._busy:
            self._check_open()
            me = threading.get_ident()
            self._active[me] = self._active.get(me, 0) + 1
        if not self._warned_loop:
            self._warn_on_loop()

    def _warn_on_loop(self) -> None:
        """Warn once when a send runs on a thread whose event loop is running (an ``async def``
        route or task calling the sync gateway): it works, but every task of that loop waits
        while the vendor answers."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._warned_loop = True
        log.warning("smsgate: the sync Gateway sends on a running event loop (an async def route or task): every "
                    "task of the loop waits while the vendor answers; use AsyncGateway and await its calls, or "
                    "call the sync gateway in a thread (asyncio.to_thread); said once per gateway")

    def _leave(self) -> None:
        with self._busy:
            me = threading.get_ident()
            if self._active[me] == 1:
                del self._active[me]
            else:
                self._active[me] -= 1
            self._busy.notify_all()

    def open(self) -> Gateway:
        """Open the store now, rather than at its first use, and return the gateway:
        ``gw = Gateway(settings).open()``, or ``gateway().open().check()`` at an app's start-up.

        A gateway given its store as a URL opens (and migrates) it at its first use, so making
        one does no I/O, and an unreachable PostgreSQL server or an SQLite folder that is gone
        shows at the first message. This meets it now:
        :class:`~smsgate.errors.StoreUnavailable` (a server that cannot be reached, or fails
        while the schema is checked) or a :class:`~smsgate.errors.ConfigError` (an SQLite folder
        that does not exist), naming where the store is (never its password). Calling it again
        does nothing once the store is open; a failed attempt is made again at the next call.
        :meth:`check` checks the configuration (the providers) and opens nothing: call both.

        A gateway closed is a :class:`~smsgate.errors.GatewayClosed`.
        """
        self._check_open()
        _open_store(self._core_)
        return self

    def tenant(self, name: str) -> Tenant:
        """The handle for tenant ``name`` (:class:`~smsgate.errors.UnknownTenant` if there is none).

        With a tenant source, asks it whether tenants changed first (see :mod:`smsgate.tenants`).
        The gateway's store is not opened here: the handle's first call that uses it does (its
        error then, :class:`~smsgate.errors.StoreUnavailable`...); :meth:`open` opens it at once.
        """
        self._check_open()
        self._core_.tenant_config(check_id("tenant", name), check=True)
        return Tenant(self, name)

    def ingest(self, tenant: str, instance: str, headers: Headers, body: bytes) -> list[DeliveryReport]:
        """Verify, parse and apply a webhook for ``tenant``'s provider ``instance``; its reports.

        Reports are matched by provider message id within ``tenant`` only. See
        :meth:`receive` for what was matched and for inbound messages.
        """
        return self.receive(tenant, instance, headers, body).reports

    def sync_statuses(self, tenants: Iterable[str] | None = None, **options: Any) -> dict[str, SyncSummary]:
        """One tick of the status poller for each of ``tenants`` (default: every tenant, the
        configuration's and the tenant source's), by name: the function a scheduler calls
        (cron, Celery beat). ``options`` are those of :meth:`Tenant.sync_statuses`.

        One tenant failing never stops the tick for the others: a tenant that cannot be
        polled (its stored secrets cannot be decrypted, the tenant source fails to look it
        up, its store or a bug raises) is logged at ERROR with its name and has a summary
        whose :attr:`~smsgate.models.SyncSummary.error` says why; every other tenant is
        polled. What is the caller's own mistake is raised before any tenant is polled: an
        unknown option or a bad value (``TypeError`` / :class:`~smsgate.errors.ValidationError`)
        and, with explicit ``tenants``, a name this gateway does not serve
        (:class:`~smsgate.errors.UnknownTenant`). Without names, a tenant the source listed
        and then no longer has (removed meanwhile) is left out; a source that cannot list
        its tenants raises (there is nothing to poll)."""
        self._check_open()
        _check_sync_options(options)
        handles: dict[str, Tenant | Exception] = {}
        for name in self._core_.tenant_names() if tenants is None else _names("tenants", tenants):
            try:
                handles[name] = self.tenant(name)
            except UnknownTenant:
                if tenants is not None:
                    raise  # named by the caller: a mistake, raised before anything is polled
                # else: removed since the source listed it
            except Exception as exc:  # reported; the other tenants are still polled
                handles[name] = exc
        out: dict[str, SyncSummary] = {}
        for name, handle in handles.items():
            if isinstance(handle, Exception):
                out[name] = _sync_failed(name, handle)
                continue
            try:
                out[name] = handle.sync_statuses(**options)
            except Exception as exc:  # reported; the other tenants are still polled
                out[name] = _sync_failed(name, exc)
        return out

    def receive(self, tenant: str, instance: str, headers: Headers, body: bytes) -> WebhookOutcome:
        """Verify, parse and apply a webhook (delivery reports and/or inbound messages)
        for ``tenant``'s provider ``instance``: what matched, what was kept, what came in.

        ``headers``: any mapping, or ``(name, value)`` pairs (``str`` or ``bytes``, as
        Starlette's ``request.headers.raw`` or an ASGI scope has them); names are matched
        case-insensitively. Anything else is a :class:`~smsgate.errors.ValidationError`."""
        self._check_open()
        check_id("tenant", tenant)  # per webhook request, not per report: one isinstance
        return self._plan_driver(tenant).drive(
            reports.ingest(self._core_.policy(tenant), instance, headers, body))

    def _forget(self, tenant: str) -> None:
        # may run in another thread (a worker that loaded the tenant): a snapshot of the keys
        for key in [k for k in list(self._transports) if k[0] == tenant]:
            self._transports.pop(key, None)

    def _transport(self, tenant: str, instance: str) -> SyncDriver:
        self._check_open()
        key = (tenant, instance)
        drv = self._transports.get(key)
        if drv is None:
            drv = SyncDriver(self._client, self._core_.retry_policy(tenant, instance), threads=self._threads)
            self._transports[key] = drv
        return drv

    def _call(self, tenant: str, step: Call | Admit, stop: threading.Event,
              runner: campaign_plans.RunnerFence | None = None) -> Any:
        if type(step) is Admit:
            return self._admit(tenant, step, stop)
        assert isinstance(step, Call)
        core, instance = self._core_, step.instance
        step.unsent = True  # until a request may have left (see Call.unsent)
        fence = None
        if step.messages:  # messages logged ahead: they leave only under a live send lease
            send = core.send_lease(tenant)
            send.fence(step.messages)
            if runner is not None:  # and a campaign runner's, while its claims are its own
                runner.fence()
                fence = partial(_fenced, send, step.messages, runner)
            else:
                fence = partial(send.fence, step.messages)  # again after a rate-limit wait
        cfg, board, lease = core.breaker(tenant, instance), core.breakers, core.lease(tenant, instance)
        gate: SyncGate | None = step.admitted
        if step.fallback and not board.allow(tenant, instance, cfg, lease):
            if gate is not None:
                gate.drop()
            core.calls.skip(tenant, instance)
            raise circuit_open(instance)
        if gate is not None:  # its place in the limits taken before its messages were logged ahead
            gate.fence = fence
            start = gate.started  # its duration counts its wait, as its `waited` does
        else:
            if step.charges:
                gate = SyncGate(core.traffic, tenant, step.charges, lease, stop, fence, step.max_wait)
            start = time.monotonic()
        error = None
        try:  # a campaign runner's tries pass its fence (again once a try holds its connection: a gate's
            # fence, checked once the limits admit the try, does not cover a wait for the client's pool)
            tries = fence if runner is not None else None
            # and its messages' opt-outs read again before a try that leaves after a wait (Call.check)
            check = partial(self._recheck, tenant, step.check) if step.check is not None else None
            return self._transport(tenant, instance).run(step.operation, gate, tries, check)
        except BaseException as exc:  # a cancelled call is not counted
            error = exc
            # without a gate its first request leaves at once; with one, once it admitted one
            step.unsent = gate is not None and not gate.admitted
            raise
        finally:
            if gate is not None:
                gate.drop()  # an admission its operation never used (it made no request)
            ok = core.finish(tenant, instance, error, time.monotonic() - start, gate, step.messages)
            if ok is not None:
                board.record(tenant, instance, cfg, ok)

    def _recheck(self, tenant: str, check: Fresh) -> None:
        """A try's opt-out check (:attr:`Call.check <smsgate.core.steps.Call.check>`): the store
        read when the kernel says it is due (a clock read otherwise)."""
        if check.due():
            started = time.monotonic()
            check.answer(self._core_.store.optout_scopes(tenant, check.phones), started)

    def _admit(self, tenant: str, step: Admit, stop: threading.Event) -> SyncGate:
        """An :class:`~smsgate.core.steps.Admit` step: the limits waited for (not while the
        breaker is open; its half-open probe is claimed by the call)."""
        core, instance = self._core_, step.instance
        # the breaker read, not claimed: a half-open probe is claimed by the call
        if step.fallback and not core.breakers.may_allow(tenant, instance, core.breaker(tenant, instance)):
            core.calls.skip(tenant, instance)
            raise circuit_open(instance)
        gate = SyncGate(core.traffic, tenant, step.charges, core.lease(tenant, instance), stop, None, step.max_wait)
        gate.hold()
        return gate

    def _plan_driver(self, tenant: str, stop: threading.Event | None = None,
                     runner: campaign_plans.RunnerFence | None = None) -> SyncPlanDriver:
        """The tenant's plan driver; with ``stop``, a driver of its own sharing the log writer
        (with ``runner``, a campaign runner's: each try of its messages passes its fence)."""
        self._check_open()
        driver = self._drivers.get(tenant)
        if driver is None:
            writer = LogWriter(self._core_.store, tenant, self._core_.plugins.hook, self._core_.send_lease(tenant))
            driver = SyncPlanDriver(self._core_.store, writer, partial(self._call, tenant), **self._thread_options())
            self._drivers[tenant] = driver
        if stop is not None:
            call = partial(self._call, tenant) if runner is None else partial(self._call, tenant, runner=runner)
            return SyncPlanDriver(driver.store, driver.writer, call, stop, **self._thread_options())
        return driver

    def _thread_options(self) -> dict[str, Any]:
        """A plan driver's send threads: each on a client of its own when the gateway made its
        client (more of them then: see :data:`~smsgate.core.drive.MAX_OWN_CLIENT_THREADS`)."""
        if self._threads is None:
            return {"max_threads": MAX_THREADS}
        return {"thread": self._threads.thread, "max_threads": MAX_OWN_CLIENT_THREADS}

    def close(self) -> None:
        """Write what is held back, close the HTTP client and the store (if the gateway opened them).

        Closing again does nothing; any other use afterwards (of the gateway or its tenant
        handles) is a :class:`~smsgate.errors.GatewayClosed`.
        """
        with self._busy:
            if self._closed:
                return
            self._closed = True
            # sends under way in other threads finish first: send_many calls take no new
            # request, the requests in flight get their answers logged (closing under them
            # lost their answers); a send in this thread (close() from a hook) is not waited for
            for stop in self._stops:
                stop.set()
            me = threading.get_ident()
            self._busy.wait_for(lambda: not (self._active.keys() - {me}))
        try:
            for driver in self._drivers.values():
                driver.writer.flush()
        finally:
            if self._own_client:
                self._client.close()
            if self._threads is not None:
                self._threads.close()
            self._core_.close_store()

    def purge(self, *, older_than: Duration, dry_run: bool = False, batch_size: int = 1000,
              tenant: str | None = None) -> PurgeResult:
        """:meth:`Tenant.purge` for every tenant with data in the store (configured or not
        any more): the function a scheduler calls (cron: ``smsgate store purge``; Celery
        beat: ``smsgate.contrib.celery.purge``). See docs/scaling.md, "Retention".

        ``tenant``: only the data under that name. Unlike ``gw.tenant(name).purge(...)`` it
        loads no configuration, so a stored tenant's credentials are not decrypted (no key needed)."""
        self._check_open()
        return self._core_.purge(tenant, older_than, dry_run, batch_size)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> NoReturn:
        """``async with Gateway(...)``: a ``TypeError`` saying to use ``with`` here, or
        :class:`AsyncGateway` in async code (Python's own said only that the protocol is missing)."""
        raise TypeError("Gateway is the sync gateway: use `with Gateway(...) as gw:`; in async code "
                        "(`async with`), use `AsyncGateway(...)`, whose calls are awaited")

    async def __aexit__(self, *exc: object) -> None:  # (never reached: __aenter__ raises)
        self.close()


def _check_async_client(http_client: object) -> None:
    """A ``ValidationError`` naming ``http_client`` for one :func:`~smsgate.transport.async_client`
    would refuse (``http_client=5``, a sync ``httpx.Client``), before the gateway opens anything
    (its ``TypeError`` came after the store was opened)."""
    if not is_async_client(http_client):
        raise wrong_type("http_client", http_client,
                         "an httpx.AsyncClient, an aiohttp.ClientSession or a smsgate.aio.AiohttpClient")


class AsyncGateway(_GatewayMixin[asyncio.Event]):
    """Asynchronous gateway.

    ``http_client``: an :class:`httpx.AsyncClient`, an :class:`aiohttp.ClientSession`
    or a :class:`smsgate.aio.AiohttpClient` (not closed by the gateway). By default
    the gateway makes an ``AiohttpClient`` when aiohttp is installed (the ``fast``
    extra: httpx's own async pool slows down as concurrency grows, see
    docs/performance.md), else an ``httpx.AsyncClient``.

    Provider calls are awaited on the event loop; every store call, and every call of
    the tenant source (``tenants``), runs in the gateway's worker threads
    (``store_threads``), so a slow database never stalls the loop (see :meth:`tenant`
    for what that changes for a source's tenants). Use it from one event loop;
    ``async with`` or :meth:`aclose` when done.

    ``concurrency``: the requests a ``send_many`` keeps in flight unless it says otherwise.
    It and ``store_threads`` are whole numbers >= 1 (else a
    :class:`~smsgate.errors.ValidationError` naming them, before anything is opened).
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        store: Store | str | None = None,
        plugins: PluginManager | None = None,
        http_client: AsyncHTTPClient | None = None,
        concurrency: int = 64,
        store_threads: int = 4,
        tenants: TenantSource | None = None,
        tenant_refresh: Duration = 1.0,
    ) -> None:
        _count(concurrency, "concurrency", "AsyncGateway")  # before anything is opened
        _count(store_threads, "store_threads", "AsyncGateway")
        _check_async_client(http_client)
        self._setup(_GatewayCore(config, store, plugins, tenants, tenant_refresh), True, http_client, concurrency,
                    store_threads)

    @classmethod
    def sharing(cls, gateway: Gateway, *, http_client: AsyncHTTPClient | None = None, concurrency: int = 64,
                store_threads: int = 4) -> AsyncGateway:
        """An AsyncGateway beside ``gateway`` in the same process, sharing its configuration,
        store, plugins, tenant source, limits, breakers and call counts.

        It has an HTTP client (``http_client``, else a new one as in the constructor) and
        store threads of its own; :meth:`aclose` writes what it holds back and closes only
        those: the store stays ``gateway``'s to close (close this one first).

        ``gateway`` closed is a :class:`~smsgate.errors.GatewayClosed`; made before this process
        was forked from the one that made it, a :class:`~smsgate.errors.GatewayForked` (its
        limits, breakers and their locks are that process's: make a gateway here).
        """
        gateway._check_open()
        _count(concurrency, "concurrency", "AsyncGateway.sharing")
        _count(store_threads, "store_threads", "AsyncGateway.sharing")
        _check_async_client(http_client)
        agw = cls.__new__(cls)
        agw._setup(gateway._core_, False, http_client, concurrency, store_threads)
        return agw

    def _setup(self, core: _GatewayCore, own_core: bool, http_client: AsyncHTTPClient | None, concurrency: int,
               store_threads: int) -> None:
        self._core_ = core
        self._register()
        self._own_core = own_core
        self._client = async_client(http_client)
        self._own_client = http_client is None
        #: an ``aiohttp.ClientSession`` given (as it is, which async_client wraps, or in an
        #: ``AiohttpClient(session)``): it belongs to the loop it was made in from the start
        session_given = http_client is not None and getattr(self._client, "owns_session", True) is False
        #: a client given that holds its connections for the loop that used it (an
        #: ``httpx.AsyncClient``, or an ``aiohttp.ClientSession``)
        self._given_bound = http_client is not None and (
            isinstance(http_client, httpx.AsyncClient) or session_given)
        self._transports: dict[tuple[str, str], AsyncDriver] = {}
        self._drivers: dict[str, tuple[asyncio.AbstractEventLoop, AsyncPlanDriver]] = {}
        self._core_.forget_hooks.append(self._forget)
        self._executor = ThreadPoolExecutor(max_workers=store_threads, thread_name_prefix="smsgate-store")
        #: tenants being resolved against the tenant source in a worker thread (see _resolve)
        self._resolving: dict[str, asyncio.Future[TenantConfig]] = {}
        self.concurrency = concurrency
        #: sends under way (aclose() lets them finish) and the stop events of send_many calls
        self._active = 0
        self._drained: asyncio.Event | None = None
        self._stops = set()
        self._new_stop = asyncio.Event
        #: campaign runs under way (their tasks) -> whether aclose() stopped them (see _running)
        self._runs: dict[asyncio.Task[Any], bool] = {}
        self._closing = False  # aclose() stops the campaign runs
        #: the event loop the last send or campaign run came from (see _check_loop); a session
        #: given is its own loop's before any (a session-scoped test fixture's, still open while
        #: each test runs in a loop of its own: aiohttp's "attached to a different loop" after
        #: the message was logged, left queued)
        made_in = getattr(self._client, "bound_loop", None) if session_given else None
        self._http_loop: asyncio.AbstractEventLoop | None = made_in

    async def _running(self, run: Callable[[], Awaitable[T]]) -> T:
        """Await a campaign run (``run()``) in a task of its own, which aclose() stops as Ctrl-C
        does (the requests in flight finish and are logged, the claims released: the campaign
        ``interrupted``) before it closes the client and the store under it; the run then raises
        GatewayClosed. A cancellation of the caller stops it the same way, once, and is raised
        when it has stopped (an enclosing anyio scope cancelling again meanwhile does not cut
        that short: see :func:`smsgate._shield.shielded`)."""
        if self._closing:
            raise self._closed_error()
        self._check_open()
        self._check_loop()
        task = asyncio.ensure_future(run())
        self._runs[task] = False
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if self._runs.get(task):
                raise self._closed_error() from None
            task.cancel()
            with shielded():
                await asyncio.wait([task])
            if not task.cancelled():
                task.exception()  # retrieved: the cancellation is what the caller sees
            raise
        finally:
            self._runs.pop(task, None)

    def _enter(self) -> None:
        """A send starts (refused once closed, and from a second event loop: :meth:`_check_loop`)."""
        self._check_open()
        self._check_loop()
        self._active += 1

    def _check_loop(self) -> None:
        """:class:`~smsgate.errors.WrongEventLoop`, before a send or a campaign run logs anything
        (and before any other provider request: a status look-up, a sync, ``run()``), when another
        event loop, still open, has used this gateway's HTTP client: the HTTP client's
        connections are that loop's (an ``AiohttpClient`` refused the request once the message
        was logged, leaving it ``queued``; an ``httpx.AsyncClient`` wrote it, then failed to read
        the answer). A loop that is closed hands the gateway over to the next (``asyncio.run()``
        twice, one test client after another)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (iterate() called outside a coroutine: checked at its first request)
            return
        owner = self._http_loop
        if owner is not None and owner is not loop:
            if not owner.is_closed():
                raise WrongEventLoop(type(self).__name__)
            self._hand_over()
        self._http_loop = loop

    def _hand_over(self) -> None:
        """The loop that sent through this gateway is closed, and another starts: an
        ``httpx.AsyncClient`` holds kept-alive connections of the closed loop, on which a request
        is written but its answer never read (it reached the vendor, and a bare ``RuntimeError:
        Event loop is closed`` left it ``queued``). The gateway's own is made again (the old one's
        sockets are the closed loop's: the collector closes them). An ``httpx.AsyncClient`` or an
        ``aiohttp.ClientSession`` you gave is refused (:class:`~smsgate.errors.WrongEventLoop`,
        ``closed``): it cannot be made again. An ``AiohttpClient`` (the gateway's or yours) opens
        a new session itself."""
        if not self._own_client:
            if self._given_bound:
                raise WrongEventLoop(type(self).__name__, closed=True)
        elif isinstance(self._client, httpx.AsyncClient):
            self._client = async_client(None)
            self._transports.clear()

    def _leave(self) -> None:
        self._active -= 1
        if not self._active and self._drained is not None:
            self._drained.set()

    def tenant(self, name: str) -> AsyncTenant:
        """The handle for tenant ``name``, at once and without I/O.

        A tenant of the configuration is checked now (:class:`~smsgate.errors.UnknownTenant`
        naming the configured ones). A tenant of the tenant source is looked up by the
        handle's first awaited call, in a worker thread (never on the event loop): that call
        raises :class:`~smsgate.errors.UnknownTenant` if the source lacks it (``await
        gw.tenant(name).load()`` asks at once). Concurrent first calls share one lookup.
        """
        self._check_open()
        check_id("tenant", name)
        if self._core_.tenants is None:
            self._core_.tenant_config(name)  # the configuration's tenants only: no I/O
        return AsyncTenant(self, name)

    async def open(self) -> AsyncGateway:
        """Open the store now, in one of the gateway's store threads (never on the event loop),
        rather than at its first use, and return the gateway: ``agw = await AsyncGateway(settings).open()``,
        or ``await agw.open()`` in an app's start-up (a lifespan handler) before
        ``await agw.check_async()``.

        As :meth:`Gateway.open`: :class:`~smsgate.errors.StoreUnavailable` or a
        :class:`~smsgate.errors.ConfigError` naming where the store is (never its password);
        calling it again does nothing once the store is open; a gateway closed is a
        :class:`~smsgate.errors.GatewayClosed`.
        """
        self._check_open()
        await self._store_opened()
        return self

    def refresh_tenants(self) -> None:
        """Make the next call of every tenant ask the tenant source whether tenants changed
        (in a worker thread), rather than within ``tenant_refresh`` seconds. No I/O here:
        safe on the event loop."""
        self._check_open()
        self._core_.expire_tenants()

    async def _resolve(self, tenant: str, first: bool = False) -> TenantConfig:
        """``tenant``'s configuration, checked against the tenant source when due, in a worker
        thread: tasks of this loop resolving the same tenant meanwhile share one resolution."""
        core = self._core_
        cfg = core.cached_config(tenant, first=first)
        if cfg is not None:
            return cfg
        loop = asyncio.get_running_loop()
        flight = self._resolving.get(tenant)
        if flight is None or flight.get_loop() is not loop:
            flight = loop.run_in_executor(self._executor, core.resolve, tenant)
            self._resolving[tenant] = flight
            flight.add_done_callback(partial(self._resolved, tenant))
        # shielded: one caller cancelled does not cancel the others' lookup
        found: TenantConfig = await asyncio.shield(flight)
        return found

    def _resolved(self, tenant: str, flight: asyncio.Future[TenantConfig]) -> None:
        if self._resolving.get(tenant) is flight:
            del self._resolving[tenant]
        if not flight.cancelled():
            flight.exception()  # retrieved: every caller may have been cancelled meanwhile

    async def _policy_of(self, tenant: str, first: bool = False) -> TenantPolicy:
        return self._core_.policy_for(tenant, await self._resolve(tenant, first))

    async def ingest(self, tenant: str, instance: str, headers: Headers,
                     body: bytes) -> list[DeliveryReport]:
        """Verify, parse and apply a webhook for ``tenant``'s provider ``instance``; its reports."""
        return (await self.receive(tenant, instance, headers, body)).reports

    async def sync_statuses(self, tenants: Iterable[str] | None = None, **options: Any) -> dict[str, SyncSummary]:
        """See :meth:`Gateway.sync_statuses` (the tenant source is asked for its tenants in a
        worker thread)."""
        self._check_open()
        self._check_loop()  # raised, not reported per tenant (see _check_loop)
        _check_sync_options(options)
        names = await self._run_sync(self._core_.tenant_names) if tenants is None else _names("tenants", tenants)
        handles: dict[str, AsyncTenant | Exception] = {}
        for name in names:
            try:
                handles[name] = await self.tenant(name).load()
            except UnknownTenant:
                if tenants is not None:
                    raise  # named by the caller: a mistake, raised before anything is polled
                # else: removed since the source listed it
            except Exception as exc:  # reported; the other tenants are still polled
                handles[name] = exc
        out: dict[str, SyncSummary] = {}
        for name, handle in handles.items():
            if isinstance(handle, Exception):
                out[name] = _sync_failed(name, handle)
                continue
            try:
                out[name] = await handle.sync_statuses(**options)
            except Exception as exc:  # reported; the other tenants are still polled
                out[name] = _sync_failed(name, exc)
        return out

    async def receive(self, tenant: str, instance: str, headers: Headers,
                      body: bytes) -> WebhookOutcome:
        """Verify, parse and apply a webhook (see :meth:`Gateway.receive`; the tenant source
        is asked in a worker thread)."""
        self._check_open()
        check_id("tenant", tenant)
        await self._store_opened()
        policy = await self._policy_of(tenant)
        return await self._plan_driver(tenant).drive(reports.ingest(policy, instance, headers, body))

    def _refuse_on_loop(self, call: str, instead: str) -> None:
        """:class:`WouldBlock` if ``call`` would ask the tenant source on a running event loop."""
        if self._core_.tenants is None:
            return  # the configuration's tenants only: no I/O
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a thread of its own: it may block
        raise WouldBlock(f"AsyncGateway.{call}", instead)

    def has_provider(self, tenant: str, instance: str) -> bool:
        """Whether ``tenant`` exists (configured, or in the tenant source now) with provider ``instance``.

        With a tenant source this asks it in the calling thread, so on a running event loop
        it raises :class:`~smsgate.errors.WouldBlock`: ``await gw.has_provider_async(...)``
        there (or call it from a thread of its own). Without one it does no I/O.
        """
        self._check_open()
        self._refuse_on_loop("has_provider()", "'await gw.has_provider_async(tenant, instance)'")
        return self._core_.has_provider(tenant, instance)

    def check(self) -> list[str]:
        """Validate that every configured provider (and every tenant source's) can be instantiated.

        With a tenant source this asks it in the calling thread, so on a running event loop
        it raises :class:`~smsgate.errors.WouldBlock`: ``await gw.check_async()`` there (or
        call it from a thread of its own). Without one it does no I/O. The store is not
        opened: ``await gw.open()`` opens it (see :meth:`open`).
        """
        self._check_open()
        self._refuse_on_loop("check()", "'await gw.check_async()'")
        return self._core_.check()

    async def has_provider_async(self, tenant: str, instance: str) -> bool:
        """:meth:`has_provider`, asking the tenant source in a worker thread (never on the loop)."""
        self._check_open()
        try:
            return instance in (await self._resolve(tenant)).providers
        except UnknownTenant:
            return False

    async def check_async(self) -> list[str]:
        """:meth:`check` in one of the gateway's store threads (``store_threads``): the tenant
        source is asked there for its names and tenants, never on the event loop.

        Returns one line per provider instance, or raises :class:`~smsgate.errors.ConfigError`
        at the first problem, as :meth:`check` does.
        """
        self._check_open()
        lines: list[str] = await self._run_sync(self._core_.check)
        return lines

    async def purge(self, *, older_than: Duration, dry_run: bool = False,
                    batch_size: int = 1000, tenant: str | None = None) -> PurgeResult:
        """See :meth:`Gateway.purge` (run in a worker thread, never on the event loop)."""
        self._check_open()
        result: PurgeResult = await self._run_sync(self._core_.purge, tenant, older_than, dry_run, batch_size)
        return result

    async def _run_sync(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args, **kwargs))

    async def _store_opened(self) -> None:
        """The store, given as a URL, is opened at its first use (migrated, a PostgreSQL server
        reached: up to its connect timeout): in a worker thread, never on the event loop, before
        the first call that uses it on the loop (a plan driver, a campaign handle's store)."""
        if self._core_._store is None:
            self._check_open()
            await self._run_sync(_open_store, self._core_)

    def _forget(self, tenant: str) -> None:
        # may run in another thread (a worker that loaded the tenant): a snapshot of the keys
        for key in [k for k in list(self._transports) if k[0] == tenant]:
            self._transports.pop(key, None)

    def _transport(self, tenant: str, instance: str) -> AsyncDriver:
        self._check_open()
        # every provider request (a status look-up, a sync, run()), not only sends: the client's
        # kept-alive connections are the last loop's (see _check_loop)
        self._check_loop()
        key = (tenant, instance)
        drv = self._transports.get(key)
        if drv is None:
            drv = AsyncDriver(self._client, self._core_.retry_policy(tenant, instance))
            self._transports[key] = drv
        return drv

    async def _call(self, tenant: str, step: Call | Admit, stop: asyncio.Event,
                    runner: campaign_plans.RunnerFence | None = None) -> Any:
        if type(step) is Admit:
            return await self._admit(tenant, step, stop)
        assert isinstance(step, Call)
        core, instance = self._core_, step.instance
        step.unsent = True  # until a request may have left (see Call.unsent)
        fence = None
        if step.messages:  # messages logged ahead: they leave only under a live send lease
            send = core.send_lease(tenant)
            if not send.fresh():  # renewing (or finding them forfeit) is store I/O: off the loop
                await self._run_sync(send.fence, step.messages)
            if runner is not None and not runner.fresh():  # and a campaign runner's, its claims its own
                await self._run_sync(runner.fence)
            if step.charges or runner is not None:
                # again after a rate-limit wait (the gate's fence), a runner's before each try (the
                # transport's); a partial, not a closure: a closure's variables are cells made on
                # every call (a send without limits makes neither: it runs for every request)
                fence = partial(self._fence, send, step.messages, runner)
        cfg, board = core.breaker(tenant, instance), core.breakers
        gate: AsyncGate | None = step.admitted
        if step.fallback:
            try:
                await self._allow(tenant, instance, cfg)
            except BaseException:
                if gate is not None:
                    await gate.drop()
                raise
        if gate is not None:  # its place in the limits taken before its messages were logged ahead
            gate.fence = fence
            start = gate.started  # its duration counts its wait, as its `waited` does
        else:
            if step.charges:
                gate = AsyncGate(core.traffic, tenant, step.charges, core.lease(tenant, instance), self._run_sync,
                                 stop, fence, step.max_wait)
            start = time.monotonic()
        error = None
        try:  # a campaign runner's tries pass its fence (again once a try holds its connection: a gate's
            # fence, checked once the limits admit the try, does not cover a wait for the client's pool)
            tries = fence if runner is not None else None
            # and its messages' opt-outs read again before a try that leaves after a wait (Call.check)
            check = partial(self._recheck, tenant, step.check) if step.check is not None else None
            return await self._transport(tenant, instance).run(step.operation, gate, tries, check)
        except BaseException as exc:  # a cancelled call is not counted
            error = exc
            # without a gate its first request leaves at once; with one, once it admitted one
            step.unsent = gate is not None and not gate.admitted
            raise
        finally:
            if gate is not None and gate.held is not None:
                await gate.drop()  # an admission its operation never used (it made no request)
            ok = core.finish(tenant, instance, error, time.monotonic() - start, gate, step.messages)
            if ok is not None and not board.quick_record(tenant, instance, cfg, ok):
                await self._run_sync(board.record, tenant, instance, cfg, ok)

    async def _allow(self, tenant: str, instance: str, cfg: Breaker) -> None:
        """Raise :class:`~smsgate.errors.CircuitOpen` while ``instance``'s breaker is open."""
        core, board = self._core_, self._core_.breakers
        allowed = board.quick_allow(tenant, instance, cfg)
        if allowed is None:
            allowed = await self._run_sync(board.allow, tenant, instance, cfg, core.lease(tenant, instance))
        if not allowed:
            core.calls.skip(tenant, instance)
            raise circuit_open(instance)

    def _recheck(self, tenant: str, check: Fresh) -> Awaitable[None] | None:
        """A try's opt-out check (:attr:`Call.check <smsgate.core.steps.Call.check>`): ``None``
        when a clock read says it is fresh, else the store read (off the loop) to await."""
        return self._recheck_io(tenant, check) if check.due() else None

    async def _recheck_io(self, tenant: str, check: Fresh) -> None:
        started = time.monotonic()
        check.answer(await self._run_sync(self._core_.store.optout_scopes, tenant, check.phones), started)

    async def _admit(self, tenant: str, step: Admit, stop: asyncio.Event) -> AsyncGate:
        """An :class:`~smsgate.core.steps.Admit` step: the limits waited for (not while the
        breaker is open; its half-open probe is claimed by the call)."""
        core, instance = self._core_, step.instance
        if step.fallback:
            cfg, board = core.breaker(tenant, instance), core.breakers
            allowed = board.quick_allow(tenant, instance, cfg)
            if allowed is None:  # read, not claimed: a half-open probe is claimed by the call
                allowed = await self._run_sync(board.may_allow, tenant, instance, cfg)
            if not allowed:
                core.calls.skip(tenant, instance)
                raise circuit_open(instance)
        gate = AsyncGate(core.traffic, tenant, step.charges, core.lease(tenant, instance), self._run_sync, stop,
                         None, step.max_wait)
        await gate.hold()
        return gate

    def _fence(self, send: SendLease, ids: tuple[str, ...],
               runner: campaign_plans.RunnerFence | None) -> Awaitable[None] | None:
        """A try's fence (see :meth:`_call`): the send lease (and the runner's claims) checked
        before each try and after a rate-limit wait. ``None`` when clock reads say both hold (no
        coroutine made a try: this runs for every request), else the store work to await."""
        if send.fresh() and (runner is None or runner.fresh()):
            return None
        return self._fence_io(send, ids, runner)

    async def _fence_io(self, send: SendLease, ids: tuple[str, ...], runner: campaign_plans.RunnerFence | None) -> None:
        if not send.fresh():
            await self._run_sync(send.fence, ids)
        if runner is not None and not runner.fresh():
            await self._run_sync(runner.fence)

    def _plan_driver(self, tenant: str, stop: asyncio.Event | None = None,
                     runner: campaign_plans.RunnerFence | None = None) -> AsyncPlanDriver:
        """The tenant's plan driver on this loop; with ``stop``, a driver of its own sharing the log
        writer (with ``runner``, a campaign runner's: each try of its messages passes its fence)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        entry = self._drivers.get(tenant)
        if entry is None or entry[0] is not loop:
            store = self._core_.store
            writer = AsyncLogWriter(store, tenant, self._run_sync, self._core_.plugins.hook,
                                    self._core_.send_lease(tenant))
            entry = (loop, AsyncPlanDriver(store, writer, partial(self._call, tenant), self._executor))
            self._drivers[tenant] = entry
        driver = entry[1]
        if stop is not None:
            call = partial(self._call, tenant) if runner is None else partial(self._call, tenant, runner=runner)
            return AsyncPlanDriver(driver.store, driver.writer, call, self._executor, stop)
        return driver

    async def aclose(self) -> None:
        """Write what is held back, close the HTTP client and the store (if the gateway opened them).

        Campaign runs under way (``await camp.run()`` on its tenants) are stopped first as
        Ctrl-C stops them (their requests in flight finish and are logged, their claims are
        released, the campaign is ``interrupted``: run it again to resume), and raise
        :class:`~smsgate.errors.GatewayClosed`; the sends under way finish. Closing again
        does nothing; any other use afterwards (of the gateway or its tenant handles) is a
        :class:`~smsgate.errors.GatewayClosed`.
        """
        if self._closed or self._closing:
            return
        # campaign runs first stop as Ctrl-C stops them (see _running), the gateway still open
        # for their requests in flight and their release (closed under them, their last
        # requests failed as GatewayClosed); a run started meanwhile is refused
        self._closing = True
        try:
            runs = list(self._runs)
            for task in runs:
                self._runs[task] = True
                task.cancel()
            if runs:
                with shielded():
                    await asyncio.wait(runs)
        except BaseException:  # (a caller that means it: the gateway stays open, to be closed again)
            self._closing = False
            raise
        self._closed = True
        try:
            # sends under way finish first: send_many calls take no new request, the requests
            # in flight get their answers logged (closing under them lost their answers)
            for stop in self._stops:
                stop.set()
            if self._active:
                self._drained = asyncio.Event()
                await self._drained.wait()
            loop = asyncio.get_running_loop()
            for owner, driver in self._drivers.values():
                if owner is loop:
                    await driver.writer.flush()
        finally:
            used_by = self._http_loop
            if self._own_client and not (isinstance(self._client, httpx.AsyncClient) and used_by is not None
                                         and used_by.is_closed() and used_by is not asyncio.get_running_loop()):
                # (an httpx client last used by a loop now closed: its connections are that loop's,
                # and closing them here raised "Event loop is closed"; the collector closes them)
                await self._client.aclose()
            if self._own_core:
                await self._run_sync(self._core_.close_store)
            elif self._forget in self._core_.forget_hooks:  # shared (see sharing): the other gateway closes it
                self._core_.forget_hooks.remove(self._forget)
            self._executor.shutdown(wait=False)

    def __enter__(self) -> NoReturn:
        """``with AsyncGateway(...)``: a ``TypeError`` saying to use ``async with``, or
        :class:`Gateway` in sync code (Python's own said only that the protocol is missing)."""
        raise TypeError("AsyncGateway is the async gateway: use `async with AsyncGateway(...) as gw:` "
                        "inside a coroutine; in sync code, use `with Gateway(...) as gw:`")

    def __exit__(self, *exc: object) -> None:  # (never reached: __enter__ raises)
        """Not used (see ``__enter__``)."""

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
