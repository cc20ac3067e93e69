"""Campaigns and single sends on Celery workers (``pip install smsgate[celery]``).

::

    # myapp/tasks.py: imported by the web app and by every worker
    from celery import Celery
    from smsgate.contrib.celery import configure

    app = Celery("myapp", broker="amqp://guest:guest@127.0.0.1:5672//")
    configure(app, gateway="myapp.sms:make_gateway")  # a callable returning a smsgate.Gateway

    # in a web request
    from smsgate.contrib.celery import dispatch_campaign, send_later

    dispatch_campaign.delay("acme", camp.campaign_id)
    send_later("acme", "+2348012345678", "Your code is 123456", idempotency_key=f"otp-{login_id}")

    # workers: celery -A myapp.tasks worker --concurrency=1 (as many processes/hosts as needed)

A campaign run becomes Celery tasks (a ``group``): :data:`dispatch_campaign`
starts the run and enqueues one :data:`send_chunk` per ``chunk_size`` pending
recipients, plus one :data:`finish_campaign` that watches the run and completes
it. Each chunk task is a *runner* of the kernel (:mod:`smsgate.core.campaign`):
it takes a lease in the store, claims recipients a batch at a time, and sends
them with the very plans every send uses, so each message is logged just before
its request leaves and only while its claim is still the runner's. That, not
Celery, is what makes a redelivered task harmless: a task re-run after its
worker died claims only recipients still ``pending``; what the dead worker had
claimed stays its own until its lease ends, then the next chunk task to start
(or the finisher) recovers it with the kernel's recovery (never logged: ``pending`` again, sent by a new round;
logged without an answer: looked up by client reference, else ``unknown``,
never sent blindly). The task count is only a way of sharing the work: a task
that finds nothing to claim ends at once.

Celery's part: ``acks_late`` with ``task_reject_on_worker_lost`` (a task whose
worker died is delivered again, not lost), ``worker_prefetch_multiplier=1`` (a
worker holds no tasks it is not running), retries with exponential backoff
(``autoretry_for`` / ``retry_backoff``) when a provider failure certainly did not
reach the vendor (5xx, 429, connection refused, breaker open), and countdowns
for the finisher's polling. :func:`configure` sets these on the app.

Every publish of an smsgate task (``dispatch_campaign.delay`` by the application, a
round of chunk tasks, the finisher, a retry) waits at most :data:`CONFIRM_TIMEOUT` for the
broker's publisher confirm (:class:`ConfirmedTask`), then publishes again on a new
connection: a task may be queued twice, which each task is built to bear (a chunk task
claims from the store; a second finisher watches the same run; a dispatch is safe to
repeat; a queued send has its idempotency key). A publish that fails on every attempt raises
:class:`PublishUnconfirmed` in the caller; in a worker, a lost round of chunk tasks is
queued again by the finisher, and a dispatch or finisher whose publish failed goes back to
the broker (``Reject(requeue=True)``) instead of leaving the campaign unwatched.

How a task gets its :class:`~smsgate.Gateway`: the ``smsgate_gateway`` setting
of the Celery app (given to :func:`configure`): a callable, or the import path of
one (``"pkg.module:function"``), returning a Gateway; unset, ``Gateway()`` reads
the default configuration (``SMSGATE_CONFIG``). One gateway per worker process,
made at its first task and closed when the process ends.

How a chunk task sends (``driver``, see :func:`configure`): by default on an event
loop the worker process keeps in a thread of its own, with an
:class:`~smsgate.AsyncGateway` sharing that gateway (:func:`async_gateway_for`), the
campaign's ``concurrency`` requests in flight; the task's thread holds the runner's
lease and waits. With ``driver="sync"`` (or a gateway given its own ``http_client``)
it sends on the gateway's threads.

The store must be shared by every worker: PostgreSQL (SQLite only for workers on
one host). Rate limits and breakers are shared through the store or Redis (the
``traffic`` setting), so they hold across workers. See docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from amqp.exceptions import AccessRefused, NotAllowed  # type: ignore[import-untyped]
from celery import Celery, Task, group, shared_task
from celery.exceptions import Reject
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from celery.utils.time import get_exponential_backoff_interval
from kombu.exceptions import OperationalError
from kombu.utils.functional import retry_over_time
from kombu.utils.imports import symbol_by_name

from smsgate.campaigns.handles import RunnerBeat, threadsafe_setter
from smsgate.campaigns.model import CampaignSettings, quiet_end
from smsgate.core import campaign as plans
from smsgate.core import received
from smsgate.core.drive import Batch, SyncPlanDriver, store_driver
from smsgate.core.policy import TenantPolicy, mask
from smsgate.core.recover import RECOVER_AFTER
from smsgate.core.steps import Dispatch, Flush, Plan, Query
from smsgate.errors import (
    AnswerNotLogged,
    CircuitOpen,
    ConfigError,
    GatewayClosed,
    LeaseLost,
    NoCapableProvider,
    NoRoute,
    OptedOut,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SmsgateError,
    StoreError,
    TransportError,
    UnknownOutcome,
    ValidationError,
    mask_numbers,
    mask_phone,
)
from smsgate.gateway import AsyncGateway, Gateway
from smsgate.ids import new_id
from smsgate.lifecycle import Status
from smsgate.models import CampaignStatus, SendResult, Template, utcnow
from smsgate.routing import check_kind
from smsgate.store.base import CampaignRow, RecipientRow, RecipientState
from smsgate.traffic.gate import LimitWaitExceeded

__all__ = [
    "CONFIRM_TIMEOUT",
    "DEFAULT_CHUNK",
    "GATEWAY_SETTING",
    "REFUSED_RETRIES",
    "REFUSED_WAITS",
    "SEND_EXPECTED",
    "TRANSIENT",
    "BrokerRefused",
    "ConfirmedTask",
    "PublishUnconfirmed",
    "TransientFailure",
    "async_gateway_for",
    "close_gateways",
    "configure",
    "dispatch_campaign",
    "finish_campaign",
    "gateway_for",
    "send_chunk",
    "send_later",
    "send_message",
    "sync_statuses",
]

log = logging.getLogger("smsgate.celery")

#: The Celery setting naming how a worker makes its Gateway (a callable or ``"module:attr"``).
GATEWAY_SETTING = "smsgate_gateway"
#: Recipients one chunk task claims at most (a task must end well within the broker's
#: unacked-message timeout: RabbitMQ's ``consumer_timeout`` is 30 minutes by default).
DEFAULT_CHUNK = 1000
#: Errors (by class name, as logged) that certainly did not reach the vendor and may pass:
#: the message is sent again later, by a retried task, with backoff.
TRANSIENT = frozenset(c.__name__ for c in (ProviderUnavailable, TransportError, RateLimited, CircuitOpen))
#: Retries of one task after transient provider failures (then the failure stands).
MAX_RETRIES = 5
#: Longest wait between two looks of the finisher (it looks every third of the campaign's lease).
MAX_POLL = 10.0
#: Longest countdown of a task (a waiting task is held unacknowledged by a worker: RabbitMQ's
#: ``consumer_timeout`` and Redis' ``visibility_timeout`` must stay well above it).
LONGEST_WAIT = 300.0
#: How long every publish of an smsgate task waits for the broker's confirm (publisher confirms,
#: see :func:`configure`) before it takes the publish for lost and publishes again (Celery's
#: publish retry, on a new connection; see :class:`ConfirmedTask`): a connection whose way back
#: was lost would otherwise hold the caller (a web request, a worker) for ever.
CONFIRM_TIMEOUT = 10.0
#: Longest backoff between two retries of a task (seconds; exponential from 2 s, with jitter).
BACKOFF_MAX = 300
#: How often a worker publishes an smsgate task again after the broker refused it
#: (:class:`BrokerRefused`: a connection limit reached, say) ...
REFUSED_RETRIES = 4
#: ... waiting (first, step, longest; seconds): 1, 3, 5 then 7 s, 16 s in all. Then the task whose
#: publish it was (a dispatch queuing its finisher, a task queuing its retry) goes back to the broker.
REFUSED_WAITS = (1.0, 2.0, 7.0)
#: The raw status of a message the status poller settled as never received by the vendor
#: (:mod:`smsgate.core.reconcile`): safe to send again.
NOT_RECEIVED = "not_received"
#: The raw status of a message whose request certainly never left (the limits' store or Redis
#: failed, or the send was stopped, before it could): safe to send again.
NOT_SENT = "not_sent"
#: Replayed failures after which a queued send makes a new attempt (under a new key).
RESEND = TRANSIENT | {NOT_RECEIVED, NOT_SENT}
#: How often a queued send looks again at an attempt with no answer yet (its request timed out
#: after it may have left, or its worker died after logging it: each look settles it first,
#: see :func:`_send` and docs/scaling.md) ...
SETTLE_LOOKS = 12
#: ... and every how many seconds (12 x 150 s: 30 minutes, past recovery's 10 minutes).
SETTLE_LOOK = 150.0

GatewayFactory = Callable[[], Gateway]
#: How chunk tasks drive the kernel (the ``smsgate_driver`` setting, see :func:`configure`).
DRIVERS = ("auto", "async", "sync")
T = TypeVar("T")

#: The tasks' names (the same in every app; a worker finds them once this module is imported).
DISPATCH, CHUNK, FINISH, SEND = ("smsgate.dispatch_campaign", "smsgate.send_chunk", "smsgate.finish_campaign",
                                 "smsgate.send_message")
SYNC = "smsgate.sync_statuses"


class TransientFailure(Exception):
    """Raised by a task to be retried with backoff: some messages failed in a way that
    certainly did not reach the vendor (they were put back to be sent again)."""


class PublishUnconfirmed(SmsgateError, OperationalError):
    """An smsgate task could not be published: the broker did not confirm it within
    :data:`CONFIRM_TIMEOUT` (or the connection failed) on each of Celery's publish attempts
    (``task_publish_retry_policy``). The task *may or may not* be queued: a confirm lost on
    its way back leaves it queued. Each of smsgate's tasks is safe to queue twice, so the
    answer is to call again (``dispatch_campaign.delay``: the tasks of two dispatches share
    the pending recipients; ``send_later`` with the same ``idempotency_key``: sent once).
    Also a kombu ``OperationalError`` (what Celery raises there without smsgate)."""


class BrokerRefused(ConfigError):
    """The broker refused smsgate's connection: it would not let the broker URL's user in
    (RabbitMQ's ``ACCESS_REFUSED``: a wrong user name or password) or into its virtual host
    (``NOT_ALLOWED``: no permission, or the virtual host's or the user's connection limit
    reached). Nothing was queued. Raised at once to an application publishing a task: publishing
    again cannot help until the broker URL (Celery's ``broker_url``, ``CELERY_BROKER_URL`` in
    Django) or the broker's users are fixed, unless a connection limit was reached. A worker's
    own publishes (a dispatch queuing its finisher and chunk tasks, a task its retry) are tried
    again a few times first (:data:`REFUSED_RETRIES`), then the task goes back to the broker.
    The text names the broker, its password masked. py-amqp's own error is its ``__cause__``."""


#: py-amqp's errors of a broker that refuses the connection's user (raised by Celery at once,
#: never retried): a wrong password (403 ``ACCESS_REFUSED``), a virtual host the user may not
#: use (530 ``NOT_ALLOWED``).
_REFUSALS: tuple[type[BaseException], ...] = (AccessRefused, NotAllowed)


class ConfirmedTask(Task):  # type: ignore[misc]
    """The base class of smsgate's tasks: each publish of one (``delay``, ``apply_async``, a
    ``group`` of them, a ``retry``) waits at most :data:`CONFIRM_TIMEOUT` for the broker's
    publisher confirm (``confirm_timeout`` unless the caller gives one); a confirm that does
    not come is a connection failure Celery's publish retry meets by publishing again on a new
    connection. A publish that fails on every attempt raises :class:`PublishUnconfirmed`; one the
    broker refuses (its credentials, its virtual host) raises :class:`BrokerRefused`."""

    def apply_async(self, args: Any = None, kwargs: Any = None, *more: Any, **options: Any) -> Any:
        """Celery's ``apply_async``, its wait for the broker's confirm bounded (see the class)."""
        options.setdefault("confirm_timeout", CONFIRM_TIMEOUT)
        try:
            return super().apply_async(args, kwargs, *more, **options)
        except _REFUSALS as exc:
            raise BrokerRefused(
                f"the broker at {_broker(self.app)} refused the connection of task {self.name} "
                f"({_without_password(self.app, str(exc))}): check the user name and password of the broker URL "
                "(Celery's broker_url; CELERY_BROKER_URL in Django), that this user may use its virtual "
                "host (rabbitmqctl list_permissions), and whether a connection limit of the virtual host or "
                "the user is reached (rabbitmqctl list_vhost_limits, list_user_limits); the task was not "
                "queued") from exc
        except (OperationalError, TimeoutError) as exc:
            if isinstance(exc, PublishUnconfirmed):
                raise
            raise PublishUnconfirmed(
                f"task {self.name} was not confirmed by the broker at {_broker(self.app)} on any publish attempt "
                f"(the connection failed, or no confirm came within {options['confirm_timeout']} s; last: "
                f"{type(exc).__name__}: {exc}): it may or may not be queued; publishing it again is safe") from exc


def _broker(app: Celery) -> str:
    """Where ``app`` publishes: its broker URL, the password masked as kombu masks it
    (``amqp://guest:**@rabbit:5672//``), for errors that must say where."""
    try:
        return str(app.connection_for_write().as_uri())
    except Exception:  # an unreadable broker setting: its own error says so elsewhere
        return "(broker URL unreadable)"


def _without_password(app: Celery, text: str) -> str:
    """``text`` with the broker URL's password (if any) replaced by ``**``."""
    try:
        password = app.connection_for_write().password
    except Exception:
        return text
    return text.replace(password, "**") if password else text


def _republished(what: str, publish: Callable[[], T]) -> T:
    """``publish()``, a worker's publish of an smsgate task (``what`` names it in the log), tried
    again after a :class:`BrokerRefused`: :data:`REFUSED_RETRIES` times, waiting
    :data:`REFUSED_WAITS` (kombu's ``retry_over_time``, which Celery's own connection retries
    use). The worker's connection that brought the task in was let in, so a refused publish is
    mostly a refusal of the moment (RabbitMQ's ``NOT_ALLOWED`` once a virtual host's or a user's
    connection limit is reached: one more connection, the publisher's, is refused), which ends
    when another connection closes. The last refusal is raised."""
    start, step, most = REFUSED_WAITS

    def refused(exc: BaseException, waits: Iterator[float], retries: int) -> float:
        wait = next(waits)
        log.warning("%s: the broker refused the publish (%s); trying again in %g s (%d of %d)", what, exc, wait,
                    retries + 1, REFUSED_RETRIES)
        return wait

    published: T = retry_over_time(  # type: ignore[no-untyped-call]
        publish, BrokerRefused, errback=refused, max_retries=REFUSED_RETRIES, interval_start=start,
        interval_step=step, interval_max=most)
    return published


def _retry(task: Task, **options: Any) -> NoReturn:
    """``task.retry(**options)``; when the retry cannot be published (:class:`PublishUnconfirmed`,
    or :class:`BrokerRefused` on every try of :func:`_republished`), the task's own message goes
    back to the broker to be run again (Celery's ``retry`` would reject it for good: a finisher
    lost, a campaign stranded)."""

    def publish() -> NoReturn:
        try:
            raise task.retry(**options)
        except Reject as exc:
            if isinstance(exc.reason, BrokerRefused):
                raise exc.reason from exc  # tried again (Celery raised it as a Reject)
            raise

    try:
        _republished(f"task {task.name}'s retry", publish)
    except BrokerRefused as exc:
        log.error("task %s could not queue its retry: %s; its message goes back to the broker", task.name, exc)
        raise Reject(exc, requeue=True) from exc
    except Reject as exc:
        if isinstance(exc.reason, PublishUnconfirmed):
            log.warning("task %s could not queue its retry (%s); its message goes back to the broker", task.name,
                        exc.reason)
            raise Reject(exc.reason, requeue=True) from exc
        raise


# ------------------------------------------------------------------------------ setup
def _confirm_publish(sender: Celery, **_: Any) -> None:
    """Publisher confirms on (``confirm_publish`` in ``broker_transport_options``), unless the
    app's configuration sets it."""
    sender.conf.broker_transport_options = {"confirm_publish": True, "read_timeout": CONFIRM_TIMEOUT,
                                            **(sender.conf.broker_transport_options or {})}


def configure(app: Celery, *, gateway: GatewayFactory | str | None = None, chunk_size: int = DEFAULT_CHUNK,
              driver: str = "auto") -> None:
    """Make ``app`` run smsgate's tasks with the settings their guarantees rest on.

    Sets ``task_acks_late``, ``task_reject_on_worker_lost``,
    ``worker_prefetch_multiplier=1``, publisher confirms (``confirm_publish`` in
    ``broker_transport_options``, unless the app sets it) and py-amqp's ``read_timeout``
    (:data:`CONFIRM_TIMEOUT`, unless set: after a publish whose confirm never came, closing
    the dead connection waits for the broker's answer, for ever without it); ``gateway`` (a callable returning a
    :class:`~smsgate.Gateway`, or its import path ``"module:attr"``) is how a
    worker process makes its gateway; ``chunk_size`` is how many recipients one
    chunk task claims at most.

    ``driver``: how a chunk task sends. ``"async"``: on an event loop of the worker
    process (a thread of its own) with an :class:`~smsgate.AsyncGateway` sharing the
    worker's gateway (:func:`async_gateway_for`: its configuration, store, plugins,
    limits and breakers; its own aiohttp client), the campaign's ``concurrency``
    requests in flight; several times less CPU per message than ``"sync"``: the
    Gateway's own driver, on up to 256 threads with a client of their own each
    (32 sharing the Gateway's HTTP client when the application gave it one).
    ``"auto"`` (the default): ``"async"`` unless the gateway was given an
    ``http_client`` of its own (a proxy, client certificates), which only ``"sync"`` uses.
    """
    if chunk_size < 1:
        raise ValidationError("chunk_size must be at least 1", field="chunk_size")
    if driver not in DRIVERS:
        raise ValidationError(f"driver must be one of {', '.join(DRIVERS)}, not {driver!r}", field="driver")
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1)
    # publisher confirms (RabbitMQ, the pyamqp transport; others ignore the option): without them a
    # task the connection lost right after it was written is taken for queued (send_later
    # returned, the SMS was lost); with them the loss is an error Celery's publish retry meets by
    # publishing again (a task queued twice sends once: its idempotency key). Set once the app's own
    # configuration is read (reading it here would load it now: a Django project's settings, say,
    # before they are configured)
    if app.configured:
        _confirm_publish(app)
    else:
        app.on_after_configure.connect(_confirm_publish, weak=False)
    app.conf[GATEWAY_SETTING] = gateway
    app.conf["smsgate_chunk_size"] = chunk_size
    app.conf["smsgate_driver"] = driver


_lock = threading.Lock()
_gateways: dict[tuple[int, str], Gateway] = {}


def gateway_for(app: Celery) -> Gateway:
    """This worker process's gateway for ``app`` (made at the first call, then reused)."""
    key = (os.getpid(), str(app.main or ""))
    with _lock:
        gw = _gateways.get(key)
        if gw is None:
            for other in [k for k in _gateways if k[0] != key[0]]:
                del _gateways[other]  # inherited from the parent across a fork: not ours to use or close
            gw = _gateways[key] = _make_gateway(app)
    return gw


def _make_gateway(app: Celery) -> Gateway:
    factory: Any = app.conf.get(GATEWAY_SETTING)
    if factory is None:
        return Gateway()
    where = factory if isinstance(factory, str) else getattr(factory, "__qualname__", repr(factory))
    if isinstance(factory, str):
        try:
            factory = symbol_by_name(factory)  # type: ignore[no-untyped-call]
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"{GATEWAY_SETTING} = {where!r} cannot be imported: {exc}") from None
    if not callable(factory):
        raise ConfigError(f"{GATEWAY_SETTING} = {where!r} is not callable")
    gw = factory()
    if not isinstance(gw, Gateway):
        raise ConfigError(f"{GATEWAY_SETTING} = {where!r} returned {type(gw).__name__}, not a smsgate Gateway")
    return gw


class _Loop:
    """An event loop running in a thread of its own: where a worker process's chunk tasks send."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="smsgate-celery-loop", daemon=True)
        self.thread.start()

    def run(self, make: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
        """Run ``make(stop)`` on the loop and return its result (this thread waits).

        Interrupted while it runs (a time limit, a shutdown), ``stop`` is set, as Ctrl-C
        does in ``camp.run()``: no new batch is taken, the requests in flight finish and
        their answers are logged; then the interruption goes on.
        """
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(make(stop), self.loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                self.loop.call_soon_threadsafe(stop.set)
                concurrent.futures.wait([future])
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


_loops: dict[int, _Loop] = {}
_async_gateways: dict[tuple[int, str], AsyncGateway] = {}


def _worker_loop() -> _Loop:
    pid = os.getpid()
    with _lock:
        loop = _loops.get(pid)
        if loop is None:
            _loops.clear()  # inherited across a fork: its thread does not run in this process
            loop = _loops[pid] = _Loop()
    return loop


def async_gateway_for(app: Celery) -> AsyncGateway:
    """This worker process's AsyncGateway for ``app``: shares :func:`gateway_for`'s gateway
    (:meth:`smsgate.AsyncGateway.sharing`), is used on the process's event loop only (made
    at the first call, closed with the gateway)."""
    gw = gateway_for(app)
    key = (os.getpid(), str(app.main or ""))
    with _lock:
        agw = _async_gateways.get(key)
        if agw is None:
            for other in [k for k in _async_gateways if k[0] != key[0]]:
                del _async_gateways[other]  # inherited across a fork
            agw = _async_gateways[key] = AsyncGateway.sharing(gw)
    return agw


def _use_async(app: Celery, gw: Gateway) -> bool:
    driver = app.conf.get("smsgate_driver") or "auto"
    return driver == "async" or (driver == "auto" and gw._own_client)


def close_gateways() -> None:
    """Close the gateways this process's tasks made (and their event loop); the next task
    makes them again with the app's gateway factory (:func:`configure`).

    For tests that run tasks in the test process (Celery's eager mode,
    ``CELERY_TASK_ALWAYS_EAGER``): a task's gateway is made once per process and kept, so
    without this a test's tasks would use the gateway, and the store (a ``memory://`` one's
    idempotency keys, opt-outs and messages), of the first test that ran a task, or of your
    real settings if that test did not override them. Call it when a test ends (docs/django.md)."""
    _close_gateways()


def _close_gateways(**_: Any) -> None:
    pid = os.getpid()
    with _lock:
        mine = [k for k in _async_gateways if k[0] == pid]
        loop = _loops.pop(pid, None)
        for key in mine:  # first: they write what they hold back into the sync gateway's store
            agw = _async_gateways.pop(key)
            try:
                if loop is not None:
                    asyncio.run_coroutine_threadsafe(agw.aclose(), loop.loop).result(30)
            except Exception:
                log.exception("closing the smsgate async gateway failed")
        if loop is not None:
            loop.close()
        mine = [k for k in _gateways if k[0] == pid]
        for key in mine:
            try:
                _gateways.pop(key).close()
            except Exception:  # the process is ending: say it, go on closing the others
                log.exception("closing the smsgate gateway failed")


def _warm(app: Celery) -> None:
    """Build this worker process's gateway for ``app`` now (and the AsyncGateway with its loop
    when chunk tasks use the async driver), not in its first task: the first task does not pay
    for it, and a gateway that cannot be built is said in the worker's log at start. A
    failure is only logged: the worker goes on, and its tasks raise the same error (retried)."""
    if GATEWAY_SETTING not in app.conf:  # an app smsgate's configure() was not called on
        return
    try:
        gw = gateway_for(app)
        gw.open()  # the store opened now: a gateway opens it at its first use
        use_async = _use_async(app, gw)
        if use_async:
            async_gateway_for(app)
            _worker_loop()
    except Exception as exc:
        log.error("smsgate: the worker could not build its gateway (%s: %s); its tasks will try again",
                  type(exc).__name__, exc)
        return
    log.info("smsgate: worker gateway ready (%s driver, %s)", "async" if use_async else "sync",
             multiprocessing.current_process().name)
    _check_providers(gw)


def _check_providers(gw: Gateway) -> None:
    """Build the provider instances of every tenant now, as ``smsgate config check`` does
    (:func:`smsgate.plugins.check_tenant`: the plugin installed, its credentials and options
    accepted, a sender where the vendor needs one), and log each tenant that cannot send at
    ERROR. A gateway builds its providers at their first message, so a misspelt plugin or a
    missing sender was met only by the first task, long after the worker said it was ready.
    The worker goes on (the other tenants send); the tasks of such a tenant fail with the same
    error.

    The configuration's tenants are checked here; a tenant source's (``smsgate tenant add``:
    a plugin not installed on this worker, stored credentials this worker's
    ``SMSGATE_TENANT_KEY`` cannot decrypt) in a thread of their own
    (:func:`_check_source_tenants`): there may be many, and a prefork child that takes longer
    than Celery's ``worker_proc_alive_timeout`` (4 s) to start is killed."""
    for name in gw.settings.tenants:
        _check_tenant(gw, name)
    if gw.tenants is not None:
        threading.Thread(target=_check_source_tenants, args=(gw,), name="smsgate-tenant-check",
                         daemon=True).start()


def _check_source_tenants(gw: Gateway) -> None:
    """Check each tenant of ``gw``'s tenant source (see :func:`_check_providers`); ends quietly
    when the gateway is closed meanwhile (the worker process ending)."""
    try:
        names = [n for n in gw.tenants.names() if n not in gw.settings.tenants] if gw.tenants is not None else []
    except GatewayClosed:
        return
    except Exception as exc:  # the source cannot list its tenants (its store down): said, never fatal
        log.error("smsgate: the tenants of the tenant source could not be listed to check them (%s: %s)",
                  type(exc).__name__, exc)
        return
    failed = sum(not _check_tenant(gw, name) for name in names)
    log.info("smsgate: checked the %d tenants of the tenant source (%d cannot send)", len(names), failed)


def _check_tenant(gw: Gateway, name: str) -> bool:
    """Check tenant ``name`` (:meth:`Gateway.check`'s check of one tenant); whether it can send
    (when not, said at ERROR)."""
    try:
        gw._core_.check_tenant(name)
    except GatewayClosed:
        return True
    except ConfigError as exc:
        log.error("smsgate: tenant %r cannot send: %s (its tasks fail with this error until it is fixed; "
                  "smsgate config check)", name, exc)
        return False
    except Exception as exc:  # anything else a plugin (or the tenant source) raises: said, never fatal
        log.error("smsgate: tenant %r cannot send: %s: %s", name, type(exc).__name__, exc)
        return False
    return True


def _warm_child(**_: Any) -> None:
    """A prefork child (and the solo pool's process) builds its gateway as it starts."""
    from celery import current_app

    _warm(current_app)


def _warm_ready(sender: Any = None, **_: Any) -> None:
    """A worker whose tasks run in its own process on threads builds its gateway when ready
    (a prefork parent never does: its children would inherit its connections)."""
    from celery.concurrency.thread import TaskPool as ThreadPool

    pool = getattr(sender, "pool", None)
    if isinstance(pool, ThreadPool):
        _warm(sender.app)


worker_process_init.connect(_warm_child, weak=False)
worker_ready.connect(_warm_ready, weak=False)
worker_process_shutdown.connect(_close_gateways, weak=False)
worker_shutdown.connect(_close_gateways, weak=False)


def _chunk_size(app: Celery) -> int:
    return int(app.conf.get("smsgate_chunk_size") or DEFAULT_CHUNK)


def _poll(settings: CampaignSettings) -> float:
    return max(0.5, min(MAX_POLL, settings.lease_seconds / 3))


# ---------------------------------------------------------------------- campaign runs
class _Runner:
    """One kernel runner inside a task: a lease in the store, renewed by a thread while it lives.

    It drives nothing itself: :func:`_sync_runner` adds a sync plan driver (the dispatch and
    finish tasks), a chunk task drives its plans on the worker's event loop (:func:`_send_async`).
    """

    def __init__(self, gw: Gateway, tenant: str, row: CampaignRow) -> None:
        self.gw, self.tenant = gw, tenant
        self.store = gw.store
        self.policy = gw.tenant(tenant)._policy
        self.settings = CampaignSettings.model_validate(row.spec)
        self.run = plans.CampaignRun(self.policy, row.campaign_id, new_id("run"), self.settings)
        # asked before each claim: a stored tenant's rotated credentials are used from the next
        # claim on, and a removed tenant's task stops there (UnknownTenant), claiming nothing more
        self.run.renew = gw._core_.renewer(tenant)
        self._done = threading.Event()
        self._heart: threading.Thread | None = None
        self.beat = RunnerBeat(self.store, tenant, row.campaign_id, self.run.owner, self.settings.lease_seconds)

    def quiet_end(self, now: datetime) -> datetime | None:
        return quiet_end(now, self.settings.quiet_hours, self.policy.config)

    def __enter__(self) -> _Runner:
        lease, cid, owner = self.settings.lease_seconds, self.run.campaign_id, self.run.owner
        self.store.start_runner(self.tenant, cid, owner, plans.lease_end(lease))
        # renews the lease while the task lives, and stops the sending (the driver's stop, see
        # _send_sync and _send_async) once the campaign is paused, cancelled or deleted
        self._heart = threading.Thread(target=self.beat.run, args=(self._done,), name="smsgate-celery-lease",
                                       daemon=True)
        self._heart.start()
        log.info("campaign %s/%s: runner %s started", self.tenant, cid, owner)
        return self

    def took_over(self, n: int) -> None:
        if n:
            log.info("campaign %s/%s: runner %s took over %d claims of runners gone", self.tenant,
                     self.run.campaign_id, self.run.owner, n)

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._heart is not None:
            self._heart.join()
        self.store.stop_runner(self.tenant, self.run.campaign_id, self.run.owner)


@contextmanager
def _sync_runner(gw: Gateway, tenant: str, row: CampaignRow) -> Iterator[tuple[_Runner, SyncPlanDriver]]:
    """A runner with a sync plan driver; its claims never sent go back to pending at its end."""
    with _Runner(gw, tenant, row) as r:
        driver = gw._plan_driver(tenant, stop=threading.Event(), runner=r.beat)
        try:
            yield r, driver
        finally:  # the kernel's release, then the lease ends
            driver.drive(plans.release(r.run))
            driver.writer.flush()


def _start(self: Task, tenant: str, campaign_id: str, chunk_size: int | None = None) -> str:
    """Start (or resume) a campaign run on the workers; returns the campaign's status.

    Waits (countdowns) for a future ``start_at``; a campaign in native mode is handed
    to its provider here, in one task. Safe to call again: tasks already queued and
    the ones enqueued now share the pending recipients through their claims.
    """
    gw = gateway_for(self.app)
    camp = gw.tenant(tenant).campaigns.get(campaign_id)
    row = camp.row
    if row.status is CampaignStatus.PREPARING:
        raise ValidationError("its preparation never finished; delete it and create it again", field="status")
    settings = CampaignSettings.model_validate(row.spec)
    if row.status is CampaignStatus.CANCELLED and _mode(gw, tenant, settings) != "native":
        # nothing more is sent, but what runners that died left is settled, as by a direct run of
        # a cancelled campaign (core.campaign.run): claims never sent skipped, the others looked up
        with _sync_runner(gw, tenant, row) as (r, driver):
            r.took_over(driver.drive(plans.recover(r.run)))
        return str(row.status.value)
    if row.status in (CampaignStatus.CANCELLED, CampaignStatus.PAUSED, CampaignStatus.COMPLETED):
        return str(row.status.value)
    if _mode(gw, tenant, settings) == "native":
        return str(camp.run(wait=False).status.value)  # one request: the kernel writes the handover ahead
    if row.start_at is not None and row.start_at > utcnow():
        if row.status is not CampaignStatus.SCHEDULED:
            held = gw.store.update_campaign(tenant, campaign_id, status=CampaignStatus.SCHEDULED,
                                            if_status=plans.OVERRIDABLE)
            if held.status in plans.STOPS:  # paused or cancelled meanwhile: it holds
                return str(held.status.value)
        left = (row.start_at - utcnow()).total_seconds()
        _retry(self, countdown=min(max(left, 0.0), LONGEST_WAIT), max_retries=None)
    size = chunk_size or _chunk_size(self.app)
    with _sync_runner(gw, tenant, row) as (r, driver):  # what earlier runs left: dead runners' claims, unknowns
        r.took_over(driver.drive(plans.recover(r.run)))
        driver.drive(plans.look_up_unknown(r.run))
    # checked and set at once: a pause or cancel during the recovery and look-ups above holds
    started = gw.store.update_campaign(tenant, campaign_id, status=CampaignStatus.RUNNING, if_status=plans.OVERRIDABLE)
    if started.status in plans.STOPS:
        return str(started.status.value)
    pending = camp.progress().pending
    # eager mode (``task_always_eager``, a test suite's setting): each task runs here, at once, and
    # a finisher run before the round would find every recipient pending and retry, which
    # ``task_eager_propagates`` raises to the caller (``Retry``) with nothing sent: the round first
    eager = bool(self.app.conf.task_always_eager)
    if eager:
        _enqueue_round(self.app, tenant, campaign_id, pending, size)
    # the finisher first: it gives pending recipients no chunk task takes a new round, so a round
    # that could not be queued (in whole or part) is covered; a finisher that could not be queued
    # sends this task back to the broker: dispatched again (safe), not a campaign left unwatched
    # (a refusal of the broker is tried again first: _republished)
    finish = self.app.tasks[FINISH]
    try:
        _republished(f"campaign {tenant}/{campaign_id}'s finisher", functools.partial(
            finish.apply_async, (tenant, campaign_id), {"chunk_size": size}, countdown=_poll(settings)))
    except (PublishUnconfirmed, BrokerRefused) as exc:
        log.log(logging.ERROR if isinstance(exc, BrokerRefused) else logging.WARNING,
                "campaign %s/%s: its finisher could not be queued (%s); the dispatch goes back to the broker",
                tenant, campaign_id, exc)
        raise Reject(exc, requeue=True) from exc
    if not eager:
        _enqueue_round(self.app, tenant, campaign_id, pending, size)
    log.info("campaign %s/%s: %d pending recipients in %d tasks", tenant, campaign_id, pending,
             math.ceil(pending / size))
    return CampaignStatus.RUNNING.value


def _mode(gw: Gateway, tenant: str, settings: CampaignSettings) -> str:
    if settings.mode != "auto":
        return settings.mode
    policy = gw.tenant(tenant)._policy
    prov = settings.provider
    if prov and prov in policy.config.providers and policy.provider(prov).capabilities.native_campaigns:
        return "native"
    return "fanout"


def _enqueue_round(app: Celery, tenant: str, campaign_id: str, pending: int, size: int) -> bool:
    """Queue one chunk task per ``size`` pending recipients; whether they all were.

    A chunk task queued twice (a confirm lost after the broker had it, then published again)
    is harmless: chunk tasks claim their recipients from the store, the second finds none left.
    One that could not be queued (:class:`PublishUnconfirmed`) is the finisher's to cover: it
    queues a new round for recipients still pending with no runner (see :func:`_finish`)."""
    tasks = math.ceil(pending / size)
    if tasks:
        chunk = app.tasks[CHUNK]
        try:
            _republished(f"campaign {tenant}/{campaign_id}'s round of chunk tasks", lambda: group(
                chunk.s(tenant, campaign_id, size) for _ in range(tasks)).apply_async())
        except (PublishUnconfirmed, BrokerRefused) as exc:
            log.warning("campaign %s/%s: a round of %d chunk tasks could not all be queued (%s); the finisher "
                        "queues another for the recipients still pending", tenant, campaign_id, tasks, exc)
            return False
    return True


def _chunk(self: Task, tenant: str, campaign_id: str, size: int) -> dict[str, int]:
    """Claim up to ``size`` pending recipients, send them, record the answers.

    First settles the claims of runners whose lease has ended (the kernel's recovery: a
    dead worker's claims are taken over by the next chunk task that starts after its
    lease, or by the finisher). Returns counts of the recipients this task claimed, by
    the state they ended in.
    Stops early when the campaign is paused or cancelled or enters quiet hours; goes on in a
    campaign a direct run left ``interrupted`` or ``scheduled`` (quiet hours, ``--no-wait``)
    once it is due (:func:`smsgate.core.campaign.resume`). When
    some failed in a way that certainly did not reach the vendor, they are put back
    to ``pending`` and the task is retried with backoff (up to ``MAX_RETRIES``).

    The plans run on the worker process's event loop with an AsyncGateway sharing the
    worker's Gateway (``driver="async"``, see :func:`configure`), else with the Gateway's
    sync driver (its threads and HTTP client).
    """
    gw = gateway_for(self.app)
    row = gw.store.get_campaign(tenant, campaign_id)
    if row.status not in plans.GOES_ON:  # interrupted, scheduled by a direct run: this task resumes it when due
        return {}
    out: dict[str, int] = {}
    retry = self.request.retries < MAX_RETRIES
    with _Runner(gw, tenant, row) as r:
        # A transient failure keeps its recipient claimed (reason "retry") in the very write that
        # logs the failure: never "failed" for good, whenever this worker dies. The release at the
        # end of the runner puts them back to pending (so does the recovery of a dead runner's claims).
        r.run.retry = TRANSIENT if retry else frozenset()
        feed = _Feed(r, size, row)
        try:
            if _use_async(self.app, gw):
                results = _worker_loop().run(lambda stop: _send_async(self.app, r, feed, stop))
            else:
                results = _send_sync(r, feed)
        except LeaseLost:
            if not r.beat.lost:
                raise
            results = {}  # another runner took this one's claims over (it was paused past its lease): theirs now
    for mid in feed.claimed:
        result = results.get(mid)
        state = _state(result)
        if retry and result is not None and result.status is Status.FAILED and result.error_code in TRANSIENT:
            state = "retry"
        out[state] = out.get(state, 0) + 1
    if feed.claimed:  # one line per chunk (each message is logged at DEBUG only)
        log.info("campaign %s/%s: chunk of %d sent by runner %s: %s", tenant, campaign_id, len(feed.claimed),
                 r.run.owner, ", ".join(f"{n} {state}" for state, n in sorted(out.items())))
    if out.get("retry"):
        raise TransientFailure(f"{out['retry']} of {len(feed.claimed)} messages of campaign {campaign_id!r} "
                               "failed before reaching the vendor; they are pending again")
    return out


def _send_sync(r: _Runner, feed: _Feed) -> dict[str, Any]:
    """Recover, claim and send with the Gateway's sync driver (threads), release at the end."""
    driver = r.gw._plan_driver(r.tenant, stop=threading.Event(), runner=r.beat)
    r.beat.halt_with(driver.stop.set)  # paused or cancelled: no new request (as a stopped worker)
    try:
        r.took_over(driver.drive(plans.recover(r.run)))  # dead runners' claims: settled first
        return driver.drive(_dispatch(r, feed))
    finally:  # claims never sent go back to pending at once (the kernel's release)
        driver.drive(plans.release(r.run))
        driver.writer.flush()


async def _send_async(app: Celery, r: _Runner, feed: _Feed, stop: asyncio.Event) -> dict[str, Any]:
    """As :func:`_send_sync`, on the event loop with the worker's AsyncGateway."""
    agw = async_gateway_for(app)
    await agw._store_opened()  # (a worker whose store could not be opened as it started: off the loop)
    driver = agw._plan_driver(r.tenant, stop=stop, runner=r.beat)
    r.beat.halt_with(threadsafe_setter(stop))  # paused or cancelled: no new request (as a stopped worker)
    try:
        r.took_over(await driver.drive(plans.recover(r.run)))
        return await driver.drive(_dispatch(r, feed))
    finally:
        await driver.drive(plans.release(r.run))
        await driver.writer.flush()


def _state(result: SendResult | None) -> str:
    if result is None:
        return "not_sent"  # refused before sending (opted out since, no route), or released
    return result.status.value


class _Feed:
    """The kernel's claim-and-send feed, limited to ``size`` recipients in all."""

    def __init__(self, runner: _Runner, size: int, row: CampaignRow | None = None) -> None:
        self.runner = runner
        self.left = size
        self._row = row  # the campaign as the task just read it: the first claim needs no new read
        #: message id -> recipient id of everything this task claimed
        self.claimed: dict[str, int] = {}

    def __call__(self) -> Plan[list[Batch]] | None:
        if self.left <= 0:
            return None
        return self._next()

    def _next(self) -> Plan[list[Batch]]:
        r = self.runner
        run = r.run
        row, self._row = self._row, None
        if row is None:
            row = yield Query("get_campaign", run.policy.name, run.campaign_id)
        quiet = r.quiet_end(utcnow())
        if quiet is None:  # interrupted, or scheduled by a direct run and due: running again
            row = yield from plans.resume(run, row, quiet)
        if row.status not in plans.RUNNABLE or quiet is not None:
            self.left = 0
            return []
        yield from plans.renew(run)
        limit = min(self.left, r.settings.batch_size)
        rows: list[RecipientRow] = yield Query("claim_recipients", run.policy.name, run.campaign_id, limit,
                                               _message_id, owner=run.owner)
        self.left = self.left - len(rows) if rows else 0
        for rec in rows:
            assert rec.message_id is not None and rec.id is not None
            self.claimed[rec.message_id] = rec.id
        if not rows:
            return []
        batches: list[Batch] = yield from plans.dispatch(run, rows)
        return batches


def _message_id() -> str:
    return new_id("msg")


def _dispatch(r: _Runner, feed: _Feed) -> Plan[dict[str, Any]]:
    sent: dict[str, Any] = yield Dispatch(feed, r.settings.concurrency)
    yield Flush()
    return sent


def _finish(self: Task, tenant: str, campaign_id: str, chunk_size: int | None = None,
            last_pending: int | None = None, lookups: int = 0) -> str:
    """Watch a run until it is done: recover dead runners' claims, start new rounds, complete.

    Polls with countdowns (it holds no worker while it waits). A dead worker's claims
    are taken over once its lease has ended (the kernel's recovery: never logged, back
    to ``pending``; logged without an answer, looked up). Pending recipients with no
    live runner and no progress since the last look get a new round of chunk tasks.
    Ends (``completed``) when nothing is pending or being sent; also ends when the
    campaign is paused or cancelled (:data:`dispatch_campaign` resumes it). Before it
    ends, recipients left ``unknown`` are asked about again where a provider can tell, once
    the vendor had time to act on their requests (like a direct run's end, up to
    ``END_LOOKUPS`` rounds, ``lookups`` counting them): those never received are sent. A
    campaign a direct run left ``scheduled`` is watched on: looked at again when it starts
    or its quiet hours end.
    """
    gw = gateway_for(self.app)
    row = gw.store.get_campaign(tenant, campaign_id)
    if row.status not in plans.GOES_ON:  # interrupted, scheduled by a direct run: the chunks resume it when due
        return str(row.status.value)
    size = chunk_size or _chunk_size(self.app)
    if row.status is CampaignStatus.SCHEDULED and row.start_at is not None and row.start_at > utcnow():
        left = (row.start_at - utcnow()).total_seconds()  # look again when it starts
        _retry(self, countdown=min(max(left, 0.0), LONGEST_WAIT), max_retries=None,
                         kwargs={"chunk_size": size, "last_pending": None, "lookups": lookups})
    with _sync_runner(gw, tenant, row) as (r, driver):
        r.took_over(driver.drive(plans.recover(r.run)))
        if lookups:  # the run had ended with unknowns: ask about them again (after the wait below)
            driver.drive(plans.look_up_unknown(r.run))
        poll = _poll(r.settings)
        quiet = r.quiet_end(utcnow())
        policy = r.run.policy
    counts = gw.store.recipient_counts(tenant, campaign_id)
    pending = sum(n for (state, _), n in counts.items() if state is RecipientState.PENDING)
    sending = sum(n for (state, _), n in counts.items() if state is RecipientState.SENDING)
    unknown = sum(n for (state, _), n in counts.items() if state is RecipientState.UNKNOWN)
    now = utcnow()
    live = any(until > now for until in gw.store.runner_leases(tenant, campaign_id).values())
    if not pending and not sending and not live and unknown and lookups < plans.END_LOOKUPS \
            and plans.can_look_up(policy):
        # an answer lost, or a dead runner's claim too recent to call "never received": once the
        # vendor had time to act on those requests, ask again
        _retry(self, countdown=received.settle_seconds(policy, list(policy.config.providers)), max_retries=None,
                         kwargs={"chunk_size": size, "last_pending": None, "lookups": lookups + 1})
    if not pending and not sending and not live:
        row = store_driver(gw.store, tenant).drive(plans.complete(tenant, campaign_id, plans.GOES_ON))
        if row.status is CampaignStatus.COMPLETED:
            log.info("campaign %s/%s completed", tenant, campaign_id)
        return str(row.status.value)
    if quiet is not None:  # look again at the end of the quiet hours (or in LONGEST_WAIT)
        wait = min(max((quiet - utcnow()).total_seconds(), poll), LONGEST_WAIT)
        _retry(self, countdown=wait, max_retries=None,
                         kwargs={"chunk_size": size, "last_pending": None, "lookups": lookups})
    if pending and not live and pending == last_pending:
        log.info("campaign %s/%s: %d recipients pending with no runner; a new round", tenant, campaign_id,
                 pending)
        if _enqueue_round(self.app, tenant, campaign_id, pending, size):
            pending = -1  # give the new round a look's time before judging it
    _retry(self, countdown=poll, max_retries=None,
                     kwargs={"chunk_size": size, "last_pending": pending, "lookups": lookups})


# ------------------------------------------------------------------------- single sends
def _send(self: Task, tenant: str, to: str, text: str | None = None, *, idempotency_key: str,
          sender: str | None = None, template: Mapping[str, Any] | None = None,
          variables: Mapping[str, str] | None = None, reference: str | None = None, provider: str | None = None,
          provider_options: Mapping[str, Any] | None = None, campaign_id: str | None = None,
          kind: str | None = None, attempt: int | None = None, looks: int = 0, stored: int = 0,
          limited: int = 0) -> dict[str, Any]:
    """One queued send (see :func:`send_later`); returns the :class:`~smsgate.models.SendResult` as JSON,
    its number masked (:func:`_answer`).

    Attempt ``n`` (``0`` first) sends with ``idempotency_key`` (``n == 0``) or
    ``"{idempotency_key}:retry:{n}"``: a redelivered attempt replays its first answer,
    never sends again; a new attempt is only made after the last one certainly
    did not reach the vendor: it failed unprocessed (:data:`TRANSIENT`, retried with
    backoff), or its message was settled "never received" (``failed``, raw status
    ``not_received``).

    One rule for an attempt whose outcome is not known: its own request raised
    :class:`~smsgate.errors.UnknownOutcome` (it may have left), or its replay finds the
    message with no answer (``queued``: its worker died after logging it, or another
    delivery of this task is sending it now; ``unknown``). It is looked at again every
    :data:`SETTLE_LOOK` seconds, up to :data:`SETTLE_LOOKS` times, under the same key
    (never sent meanwhile); each look first settles the message
    (:meth:`smsgate.Tenant.look_up`: recovery once no live process can send it, the
    provider's status or reference lookup), so no status poller is needed. Found: its
    answer is the task's; never received: a new attempt. After the last look the answer
    stands. ``attempt`` and ``looks`` are the task's own retry state (the attempt's
    number, the looks it had).

    A failure of the store (or the Redis keeping the limits) before the request left may have
    left nothing under the attempt's key: it is tried again with backoff under the *same*
    key, whose replay decides (a redelivery of this task and its retry then share one
    message, never send two); ``stored`` counts those tries, up to :data:`MAX_RETRIES`.

    A send its rate limits would hold longer than the tenant's ``max_limit_wait``
    (:class:`~smsgate.traffic.LimitWaitExceeded`: not sent) is tried again under the *same*
    key once they may let it go, plus a random share of a pause that doubles with each such
    refusal (tasks refused together spread out instead of coming back at once): a refusal
    leaves the key free (through a route of one provider), so another delivery of this task
    and its retry share one message, never send two; where the refusal did bind the key (every
    provider of a longer route refused), the retry's replay finds it ``not_sent`` and goes on
    as after any attempt certain not to have left. ``limited`` counts those refusals (not
    retries: the vendor was never asked).
    """
    attempt = self.request.retries if attempt is None else attempt
    key = idempotency_key if not attempt else f"{idempotency_key}:retry:{attempt}"
    t = gateway_for(self.app).tenant(tenant)
    tmpl = Template.model_validate(template) if template is not None else None
    transient: ProviderError | StoreError | None = None
    result: SendResult | None = None
    #: this attempt's outcome, not known yet: a replay's answer, or the error of a fresh send
    unknown: SendResult | UnknownOutcome | None = None
    try:
        result = t.send(to, text, sender=sender, template=tmpl, variables=variables, reference=reference,
                        idempotency_key=key, provider=provider, provider_options=provider_options,
                        campaign_id=campaign_id, kind=kind)
    except UnknownOutcome as exc:  # this attempt's request may have left: looked at as a replay is
        unknown = exc
    except ProviderError as exc:
        if type(exc).__name__ not in TRANSIENT:
            raise
        transient = exc
    except (AnswerNotLogged, LeaseLost):  # it left / its message is recovery's to settle
        raise
    except StoreError as exc:  # the store or Redis failed before the request left: nothing was sent
        transient = exc
    except LimitWaitExceeded as exc:  # its limits are full for longer than max_limit_wait: not sent
        # the worker is not held meanwhile: the same attempt (key) once the limits may let it go
        # (counted in ``limited``, not against MAX_RETRIES: the vendor was never asked)
        # jittered and backed off: tasks refused together do not all come back at once
        countdown = min(max(exc.retry_after, 0.0) + random.uniform(0.0, max(exc.retry_after, 1.0) * 2 ** min(limited, 6)),
                        LONGEST_WAIT)
        log.info("send to tenant %s: attempt %d waits for its rate limits; trying again in %.0f s", tenant,
                 attempt + 1, countdown)
        if self.request.is_eager:  # run in the caller (``apply``, eager mode): no countdown would hold it
            time.sleep(countdown)
        _retry(self, countdown=countdown, max_retries=None,
                         kwargs={**self.request.kwargs, "attempt": attempt, "looks": 0, "stored": 0,
                                 "limited": limited + 1},
                         **_shown(tenant, to, text, idempotency_key))
    else:  # (outside the try: nothing the look-up raises is taken for a failed send)
        if _unsettled(result):  # a replay whose outcome is not known yet: ask the provider first
            result = TenantPolicy.result_of(t.look_up(result.message_id, recover_after=RECOVER_AFTER))
        unknown = result if _unsettled(result) else None
    if unknown is not None:  # its outcome is not known yet: never sent again meanwhile
        if looks >= SETTLE_LOOKS:
            if isinstance(unknown, UnknownOutcome):
                raise unknown
            return _answer(unknown)
        what = unknown.status.value if isinstance(unknown, SendResult) else type(unknown).__name__
        log.info("send of tenant %s: attempt %d has no answer yet (%s); looking again in %.0f s", tenant,
                 attempt + 1, what, SETTLE_LOOK)
        _retry(self, countdown=SETTLE_LOOK, kwargs={**self.request.kwargs, "attempt": attempt,
                                                       "looks": looks + 1},
                         **_shown(tenant, to, text, idempotency_key))
    if transient is not None:
        why, what = str(transient), type(transient).__name__
    else:
        assert result is not None
        # a replayed failure (the worker died before retrying), or a message settled "never
        # received", is retried the same way
        if result.status is not Status.FAILED or result.raw_status not in RESEND:
            return _answer(result)
        why, what = str(result.error), str(result.raw_status)
    # a store failure may have recorded nothing under this key: the same key again, its replay decides
    same = isinstance(transient, StoreError)
    tries = stored if same else attempt  # (a refusal by the limits keeps its attempt and key)
    if tries >= MAX_RETRIES:
        if transient is not None:
            raise transient
        return _answer(result) if result is not None else {}
    if same:
        log.info("send to tenant %s: attempt %d met a store failure before its request left (%s); trying it "
                 "again under the same key", tenant, attempt + 1, what)
    else:
        log.info("send to tenant %s: attempt %d certainly did not reach the vendor (%s); retrying", tenant,
                 attempt + 1, what)
    backoff = get_exponential_backoff_interval(factor=2, retries=tries, maximum=BACKOFF_MAX, full_jitter=True)
    # Celery logs the retry at INFO with this text: the vendor's may echo the recipient's number
    numbers = (to, result.to if result is not None else _normalized(t._policy, to))
    _retry(self, exc=TransientFailure(mask_numbers(f"send to tenant {tenant!r} failed before reaching the "
                                                       f"vendor (attempt {attempt + 1}): {why}", numbers)),
                     countdown=backoff, kwargs={**self.request.kwargs, "attempt": attempt if same else attempt + 1,
                                                "looks": 0, "stored": stored + 1 if same else 0},
                     **_shown(tenant, to, text, idempotency_key))


def _answer(result: SendResult) -> dict[str, Any]:
    """What a :data:`send_message` task returns: the :class:`~smsgate.models.SendResult` as JSON
    with the recipient's number masked (``to``, and wherever the ``error`` text has it).

    Celery's worker logs a task's return value at INFO ("Task ... succeeded in ...: {...}") and
    keeps it in the result backend: a phone number is personal data, so neither gets it whole.
    The caller of ``send_later(...).get()`` knows the number it gave; ``message_id`` finds the
    message (``tenant.status(message_id)``, ``smsgate status``)."""
    dumped: dict[str, Any] = result.model_dump(mode="json")
    dumped["to"] = mask(result.to)
    if dumped.get("error"):
        dumped["error"] = mask_numbers(dumped["error"], [result.to])
    return dumped


def _normalized(policy: TenantPolicy, to: str) -> str:
    """``to`` as E.164 (as given when it is not a valid number)."""
    try:
        return policy.normalize(to)
    except ValidationError:
        return to


def _unsettled(result: SendResult) -> bool:
    """Whether a send's answer is a replay of a message whose outcome is not known yet:
    logged ahead and never answered (``queued``, no provider), or ``unknown``. (A fresh send
    never answers so: an unknown outcome is raised.)"""
    return (result.status is Status.QUEUED and not result.provider) or result.status is Status.UNKNOWN


_RETRYING: dict[str, Any] = dict(
    bind=True, acks_late=True, reject_on_worker_lost=True, autoretry_for=(TransientFailure,),
    retry_backoff=2, retry_backoff_max=BACKOFF_MAX, retry_jitter=True, max_retries=MAX_RETRIES,
)

def _through_store_outages(run: Callable[..., str]) -> Callable[..., str]:
    """``run`` (the dispatch or the finisher of a campaign), tried again every :data:`MAX_POLL`
    seconds while the store fails (:class:`~smsgate.errors.StoreError`: PostgreSQL restarting or
    failing over, the network to it down, an SQLite file locked too long).

    Nothing else watches a campaign on the workers: a dispatch or finisher that failed with the
    store left the campaign ``running`` for good (its chunk tasks failed with the same outage,
    their claims never taken over, no new round queued) until someone dispatched it again. Both
    are safe to repeat. In eager mode (the tasks run in the caller) the error is raised."""

    @functools.wraps(run)
    def task(self: Task, tenant: str, campaign_id: str, *args: Any, **kwargs: Any) -> str:
        try:
            return run(self, tenant, campaign_id, *args, **kwargs)
        except StoreError as exc:
            if self.request.is_eager:
                raise
            log.warning("%s of campaign %s/%s: the store failed (%s); trying again in %.0f s", self.name, tenant,
                        campaign_id, exc, MAX_POLL)
            _retry(self, countdown=MAX_POLL, max_retries=None)

    return task


#: ``dispatch_campaign.delay(tenant, campaign_id[, chunk_size])``: start or resume a run on the workers.
dispatch_campaign: Any = shared_task(base=ConfirmedTask, name=DISPATCH, bind=True, acks_late=True,
                                     reject_on_worker_lost=True)(_through_store_outages(_start))
#: One chunk of a run (enqueued by :data:`dispatch_campaign` and :data:`finish_campaign`).
send_chunk: Any = shared_task(base=ConfirmedTask, name=CHUNK, **_RETRYING)(_chunk)
#: Watches a run and completes it (enqueued by :data:`dispatch_campaign`).
finish_campaign: Any = shared_task(base=ConfirmedTask, name=FINISH, bind=True, acks_late=True,
                                   reject_on_worker_lost=True, max_retries=None)(_through_store_outages(_finish))
#: Errors of a queued send that are the request's, not the worker's (a bad number or text, an
#: opted-out recipient, a number no provider of its route carries or no route matches): the task
#: fails with them at once, never retried (``AsyncResult.get()`` raises them), and the worker
#: logs them as Celery's expected errors (one INFO line, the number masked, no traceback), not
#: at ERROR.
SEND_EXPECTED: tuple[type[Exception], ...] = (ValidationError, OptedOut, NoCapableProvider, NoRoute)

#: One queued send (:func:`send_later` enqueues it with an idempotency key). It retries itself
#: (:func:`_send`: its attempts and looks are bounded there, not by Celery's ``max_retries``).
send_message: Any = shared_task(base=ConfirmedTask, name=SEND, bind=True, acks_late=True, reject_on_worker_lost=True,
                                max_retries=None, throws=SEND_EXPECTED)(_send)


def _sync(self: Task, tenants: list[str] | None = None, **options: Any) -> dict[str, dict[str, Any]]:
    """One tick of the status poller (:meth:`smsgate.Gateway.sync_statuses`) for ``tenants``
    (default every tenant: the configuration's and the gateway's tenant source's);
    ``options`` as there (durations in seconds). Returns each tenant's
    :class:`~smsgate.models.SyncSummary` as JSON: a tenant that could not be polled has its
    ``error`` set (and is logged at ERROR) while the others are polled all the same; the task
    itself fails only for the caller's mistakes (a bad option, an unknown name given)."""
    summaries = gateway_for(self.app).sync_statuses(tenants, **options)
    return {name: summary.model_dump(mode="json") for name, summary in summaries.items()}


#: The status poller, for Celery beat::
#:
#:     app.conf.beat_schedule = {"smsgate-status-sync": {
#:         "task": "smsgate.sync_statuses", "schedule": 60.0, "kwargs": {"older_than": "5m", "limit": 200}}}
#:
#: A tick that overlaps another is harmless (a message looked up twice at worst); it never sends.
sync_statuses: Any = shared_task(base=ConfirmedTask, name=SYNC, bind=True)(_sync)


def send_later(tenant: str, to: str, text: str | None = None, *, idempotency_key: str | None = None,
               sender: str | None = None, template: Template | None = None,
               variables: Mapping[str, str] | None = None, reference: str | None = None,
               provider: str | None = None, provider_options: Mapping[str, Any] | None = None,
               campaign_id: str | None = None, kind: str | None = None, app: Celery | None = None,
               apply_options: Mapping[str, Any] | None = None) -> Any:
    """Queue one send for a worker (of ``app``, else Celery's current app); returns the ``AsyncResult``.

    The idempotency key (yours, e.g. the order id, or one made here *before* the
    task is queued) goes with the task, so a task delivered twice (its worker died,
    the broker redelivered it) sends at most once: the second run gets the first
    message's answer; one whose outcome is unknown (a timeout after the request may have
    left, or a dead worker's message with no answer) is looked up again by the task until
    it is settled (never received: sent once more, under a new key; see :func:`_send`). ``apply_options`` go to Celery's ``apply_async`` (``countdown``,
    ``queue``...). Attachments and locations are not queued: send those with ``tenant.send``.
    ``kind`` (``"otp"``...) picks the routes restricted to that kind, as ``tenant.send``'s does;
    one that is not a kind is a :class:`~smsgate.errors.ValidationError` here, before anything
    is queued.
    """
    check_kind(kind)
    key = idempotency_key or new_id("idem")
    kwargs: dict[str, Any] = dict(
        idempotency_key=key, sender=sender, variables=dict(variables) if variables else None,
        template=template.model_dump(mode="json") if template is not None else None, reference=reference,
        provider=provider, provider_options=dict(provider_options) if provider_options else None,
        campaign_id=campaign_id,
    )
    if kind is not None:  # only when given: a worker of an earlier release still takes the others
        kwargs["kind"] = kind
    _require_configured(app)
    task = app.tasks[SEND] if app is not None else send_message
    options: dict[str, Any] = {**_shown(tenant, to, text, key), **dict(apply_options or {})}  # (confirm: the task's)
    return task.apply_async((tenant, to, text), kwargs, **options)


def _require_configured(app: Celery | None) -> None:
    """:class:`ConfigError` unless ``app`` (``None``: Celery's current app) went through
    :func:`configure`: otherwise the task would go where no smsgate worker listens (with no app
    made in the process, Celery's default one: ``amqp://guest@localhost//``, queue ``celery``)."""
    from celery import current_app  # a proxy of the app send_message is sent through without app=

    target: Any = current_app if app is None else app
    if GATEWAY_SETTING not in target.conf:  # configure()'s mark, as _warm reads it
        raise ConfigError(
            f"Celery app {target.main or '(Celery default app)'!r} is not configured for smsgate: call "
            "smsgate.contrib.celery.configure(app, gateway=...) on your Celery app and import that module "
            "(e.g. myapp.tasks) in this process before send_later, or pass app=; see docs/scaling.md")


def _shown(tenant: str, to: str, text: str | None, key: str | None) -> dict[str, str]:
    """What Celery shows of a queued send's arguments (its events, monitors such as Flower, a
    log formatter writing a record's extra data), as ``argsrepr``/``kwargsrepr`` options of
    the task message: the number masked, no text, no variables. Every message of the task
    gets them: the first (:func:`send_later`) and each retry (Celery fills a message's own
    with ``repr(args)`` otherwise)."""
    shown = (tenant, mask_phone(str(to)), None if text is None else f"<text: {len(text)} characters>")
    return {"argsrepr": repr(shown), "kwargsrepr": repr({"idempotency_key": key})}


def _purge(self: Task, older_than: float | str, tenant: str | None = None, dry_run: bool = False,
           batch_size: int = 1000) -> dict[str, int | bool]:
    """Retention (:meth:`smsgate.Gateway.purge`): delete the data logged more than
    ``older_than`` ago (seconds, or a duration such as ``"90d"``), of ``tenant`` or (default)
    of every tenant in the store;
    returns the :class:`~smsgate.store.base.PurgeResult` counts as JSON. Schedule it with
    Celery beat::

        app.conf.beat_schedule = {"smsgate-purge": {
            "task": "smsgate.purge", "schedule": crontab(hour=3, minute=30),
            "kwargs": {"older_than": "90d"}}}

    Safe beside sending and campaign tasks; two runs at once only duplicate work."""
    gw = gateway_for(self.app)  # one tenant purged by name: a stored tenant's key is not needed
    return gw.purge(older_than=older_than, dry_run=dry_run, batch_size=batch_size, tenant=tenant).as_dict()


#: Retention for Celery beat (``smsgate.purge``; see :func:`_purge`).
purge: Any = shared_task(base=ConfirmedTask, name="smsgate.purge", bind=True)(_purge)
