"""What a plan asks its driver to do: the steps of the policy kernel.

A *plan* is a generator. It yields steps and receives each step's answer (or
has the step's exception thrown into it), and finally returns its result. It
never performs I/O itself, so one plan runs under every driver (sync, async,
a campaign runner, a unit test feeding canned answers)::

    def opted_out_plan(tenant, phones):
        opted = yield Query("opted_out", tenant, phones)
        return opted

``Call(instance, operation)``
    run a provider operation (itself a sans-I/O generator of HTTP requests) on
    one of the tenant's provider instances, with its retry policy and the limits
    it is charged to; answered with the operation's result.
``Admit(instance, charges)``
    wait until a request of the instance charged to ``charges`` may leave and take
    its place in the limits; answered with an admission that a ``Call`` carries
    (:attr:`Call.admitted`: its first request leaves on it). The driver gives back
    an admission no ``Call`` took by the time the plan ends. A batch is admitted
    *before* its write-ahead, so that a process killed while its requests wait for
    their limits has logged none of their messages (nothing of them "may have left").
``Query(method, *args)``
    call a store method; answered with its result.
``Log(write, wait=True)``
    write to the dispatch log (:class:`~smsgate.store.base.LogWrite`). With
    ``wait`` the plan goes on only once it is written (the write-ahead before a
    request leaves), answered with a :class:`~smsgate.store.base.LogResult`;
    without, the driver may hold it back and merge it into the next write
    (answered ``None`` at once). Drivers merge concurrent logs into one
    transaction (group commit).
``Flush()``
    write every held-back log now.
``Sleep(seconds)``
    wait (a campaign's scheduled start, quiet hours, another runner's claims).
``Dispatch(feed, concurrency)``
    deliver every batch a feed gives, ``concurrency`` at a time (see
    :mod:`smsgate.core.drive`); answered with their results merged (``keep=False``: not kept).
``Renew(get)``
    the tenant's policy as the gateway has it now: ``get()``, which may ask the
    tenant source (blocking I/O: an async driver runs it in a worker thread).
    A long campaign run renews its policy before each claim, so a tenant's rotated
    credentials are used, and a removed tenant stops, from its next chunk.

A plan whose ``Dispatch`` step is interrupted (Ctrl-C under a sync driver, the task
cancelled under an async one) gets :class:`Interrupted` thrown in once the batches in
flight have finished, so that it can log what it must; its driver then sends nothing
more for it (a ``Call`` is answered :class:`~smsgate.traffic.gate.StoppedWaiting`, a
``Sleep`` is skipped) and raises the interruption itself when the plan ends.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from smsgate.errors import MalformedResponse, SmsgateError
from smsgate.provider import Operation
from smsgate.store.base import LogWrite
from smsgate.traffic.limits import Charge

if TYPE_CHECKING:
    from smsgate.core.drive import Batch

__all__ = ["Admit", "Call", "Dispatch", "Flush", "Interrupted", "Log", "NotBuilt", "Plan", "Query", "Renew", "Sleep",
           "Step", "tracked"]

T = TypeVar("T")


#: A plan: yields steps, receives their answers, returns ``T``.
Plan = Generator["Step", Any, T]


@dataclass(slots=True)
class Call:
    """Run ``operation`` on provider instance ``instance``; each attempt of its requests
    (but for token fetches) first passes the limits it is charged to."""

    instance: str
    operation: Operation[Any]
    #: the limits each request of the call is charged to (see :mod:`smsgate.traffic`)
    charges: tuple[Charge, ...] = ()
    #: another provider can take over: skip this one at once while its circuit breaker is open
    fallback: bool = False
    #: the messages (ids) logged ahead that its requests send: they leave only under a live
    #: send lease (:meth:`smsgate.core.recover.SendLease.fence`)
    messages: tuple[str, ...] = ()
    #: the longest its requests may wait for their limits (``None``: as long as they say);
    #: past it :class:`~smsgate.traffic.gate.LimitWaitExceeded`, nothing sent
    max_wait: float | None = None
    #: the answer of an :class:`Admit` step for this call's first request (which then leaves
    #: on it without waiting again); the call gives it back if it makes no request
    admitted: Any = None
    #: the opt-out check of its messages (a :class:`~smsgate.core.deliver.Fresh`), kept fresh by
    #: the driver before each try: when ``check.due()``, it reads the store's
    #: ``optout_scopes(tenant, check.phones)`` and gives them to ``check.answer(scopes, started)``
    #: (which raises :class:`~smsgate.core.deliver.OptedOutSince`: the try does not leave)
    check: Any = None
    #: set by the driver's call when it was interrupted or cancelled: whether that happened
    #: before any request carrying its messages left (waiting for its limits, its breaker, its
    #: send lease), so that the plan is told "not sent", not "may have been sent"
    unsent: bool = False


@dataclass(slots=True)
class Admit:
    """Wait until a request of provider instance ``instance`` charged to ``charges`` may
    leave, and take its place in the limits (and its circuit breaker's, with ``fallback``);
    answered with an admission for :attr:`Call.admitted`. Raises what a ``Call`` with the
    same fields raises before its request leaves (:class:`~smsgate.traffic.gate.LimitWaitExceeded`,
    :class:`~smsgate.traffic.gate.StoppedWaiting`, a circuit breaker's
    :class:`~smsgate.errors.CircuitOpen`...), having taken nothing. An admission no
    ``Call`` took is given back by the driver when the plan ends."""

    instance: str
    charges: tuple[Charge, ...]
    fallback: bool = False
    max_wait: float | None = None


@dataclass(slots=True, init=False)
class Query:
    """Call ``store.<method>(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.method = method
        self.args = args
        self.kwargs = kwargs


@dataclass(slots=True)
class Log:
    """Write ``write`` to the dispatch log; ``wait``: only go on once it is written."""

    write: LogWrite
    wait: bool = True


@dataclass(slots=True)
class Flush:
    """Write every held-back log now."""


@dataclass(slots=True)
class Sleep:
    """Wait ``seconds``."""

    seconds: float


@dataclass(slots=True)
class Dispatch:
    """Deliver every batch ``feed`` gives, ``concurrency`` at a time."""

    feed: Callable[[], Plan[list[Batch]] | None]
    concurrency: int = 1
    #: a sync driver may run the batches in the calling thread, one at a time, when
    #: ``concurrency`` is 1 (no thread hop; Ctrl-C may then land inside a batch, whose
    #: messages stay as its plan last logged them); else they run in worker threads
    inline: bool = False
    #: answered with the batches' results merged (message id -> result); ``False``: with an
    #: empty dict, each batch's results dropped as it ends (a campaign run, whose outcomes are
    #: in the store: kept, a run of a million recipients held a million results to the end)
    keep: bool = True


@dataclass(slots=True)
class Renew:
    """Answered with ``get()``: the tenant's current policy (see the module doc); whatever
    ``get`` raises (:class:`~smsgate.errors.UnknownTenant` for a removed tenant) is thrown
    into the plan."""

    get: Callable[[], Any]


class Interrupted(Exception):
    """Thrown into a plan by its driver when its :class:`Dispatch` step was interrupted
    (after the batches in flight finished): ``cause`` is the interruption (``KeyboardInterrupt``,
    ``asyncio.CancelledError``), ``how`` says it in a word or two (``"interrupted"``,
    ``"cancelled"``). The driver raises ``cause`` once the plan has ended."""

    def __init__(self, cause: BaseException, how: str) -> None:
        super().__init__(how)
        self.cause = cause
        self.how = how


Step = Call | Admit | Query | Log | Flush | Sleep | Dispatch | Renew


class NotBuilt(Exception):
    """A provider adapter failed before its first request left (nothing was sent)."""

    def __init__(self, cause: Exception) -> None:
        self.cause = cause
        super().__init__(f"{type(cause).__name__}: {cause}")


def tracked(operation: Operation[T], provider: str = "", what: str = "") -> Operation[T]:
    """``operation``, with its non-smsgate failures sorted by whether a request left.

    Before its first request: :class:`NotBuilt` (nothing was sent). After: a
    :class:`MalformedResponse` naming instance ``provider`` (the vendor may have acted:
    ``unknown``) and, given, the adapter's operation ``what`` (``"status()"``). smsgate errors
    pass through as raised. The one wrapper of an adapter's operation: sends here, look-ups
    through :func:`smsgate.core.received.checked`.
    """
    adapter = f"the adapter's {what}" if what else "the adapter"
    try:
        request = next(operation)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except SmsgateError:
        raise
    except Exception as exc:
        raise NotBuilt(exc) from exc
    while True:
        try:
            response = yield request
        except GeneratorExit:
            operation.close()
            raise
        except BaseException as exc:
            try:
                request = operation.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except (SmsgateError, type(exc)):
                raise
            except Exception as exc2:
                raise MalformedResponse(f"{adapter} failed after its request left: {exc2!r}",
                                        provider=provider) from exc2
            continue
        try:
            request = operation.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except SmsgateError:
            raise
        except Exception as exc:
            raise MalformedResponse(f"{adapter} could not read the answer: {exc!r}", provider=provider) from exc
