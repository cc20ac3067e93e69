"""Application hooks that report on what has happened: run guarded, never raised.

One rule for every hook that tells the application of something already done (a
send the vendor answered, a call made, a status change or an inbound message
stored): an exception from it is logged at ERROR on the ``smsgate`` logger with
its traceback, the tenant, the hook's name and the message it was about (an id,
never a body), and is not raised. What the hook reports on is committed
already; raising would only lose its result (a send's, so a caller retrying
without an idempotency key sends twice), stop a poller's tick at every change,
or make a webhook answer 500 for a callback whose retry calls no hook again
(``smsgate_on_status`` runs once per change). Every hook runs even when an
earlier one raised.

The callers: :func:`smsgate.core.inbound.notify` (webhooks, polled inbound
messages), the status poller and ``status(refresh=True)``, the status changes the
kernel makes by itself (:func:`smsgate.core.received.tell`: look-ups, recovery's
``unknown``), the orphan reports a log write applies (:func:`smsgate.core.drive.on_adopted`),
``smsgate_after_send`` (:meth:`smsgate.core.policy.TenantPolicy.after_send`) and
``smsgate_on_call``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from smsgate.models import DeliveryReport, InboundMessage

__all__ = ["guarded", "notify"]

log = logging.getLogger("smsgate")


def guarded(tenant: str, name: str, about: str, ident: object, call: Callable[..., object], /,
            **kwargs: Any) -> bool:
    """Call ``call(**kwargs)`` (hook ``name`` of ``tenant``, about ``about`` ``ident``:
    "message", its id); an exception is logged with its traceback, not raised. True when
    it returned. (Nothing is formatted unless it raised: it runs for every message.)"""
    try:
        call(**kwargs)
    except Exception:
        log.exception("tenant %s: %s failed for %s %s (logged, not raised: what it reports on is stored)",
                      tenant, name, about, ident)
        return False
    return True


def notify(hook: Any, tenant: str, reports: Iterable[tuple[str, DeliveryReport]] = (),
           inbound: Iterable[InboundMessage] = ()) -> int:
    """Run ``smsgate_on_status`` for ``reports`` ((message id, report) pairs) and
    ``smsgate_on_inbound`` for ``inbound`` through ``hook`` (the plugin manager's
    relay), each :func:`guarded`. Returns how many raised."""
    failed = 0
    for message_id, report in reports:
        if not guarded(tenant, "smsgate_on_status", "message", message_id, hook.smsgate_on_status,
                       tenant=tenant, message_id=message_id, report=report):
            failed += 1
    for msg in inbound:
        if not guarded(tenant, "smsgate_on_inbound", "inbound", msg.id, hook.smsgate_on_inbound,
                       tenant=tenant, message=msg):
            failed += 1
    return failed
