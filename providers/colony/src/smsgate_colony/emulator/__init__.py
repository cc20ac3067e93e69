"""An in-memory emulator of Colony's REST API (Django REST framework style).

Speaks the same paths (``DEFAULT_PATHS``, or ``create_app(paths=...)``), field names,
OAuth2 password grant, DRF paging ``{count, next, previous, results}`` (or plain arrays
with ``paginate=False``), DRF error bodies (``{"detail": ...}``, ``{"field": ["msg"]}``)
and multipart CSV uploads (field ``file``) as the adapter expects. Everything the vendor
does not publish follows the [INF] notes of ``docs/providers/colony.md``.

Behaviour:

* every message costs one credit per started 160-character chunk;
* a message "settles" ``delivery_delay`` seconds after dispatch: numbers ending in 9
  end up unsent, others sent; statistics count ``total`` at once and sent/unsent once
  settled; deployments move scheduled (2) -> sending (3) -> sent (4), or failed (7);
* opted-out numbers are suppressed (counted in ``sms_optout_count``) for single and
  bulk sends and for deployments with ``optout`` or ``marketing`` set;
* opt-outs are seeded with ``create_app(optouts=[...])``, ``POST /_colony/optouts`` or
  a STOP reply ``POST /_colony/inbound {"originator", "text": "STOP"}``;
* saved queries (the numbers behind saved-query contact lists) are seeded with
  ``create_app(saved_queries={7: [...]})`` or ``POST /_colony/saved_queries``;
* collate campaigns (what ``campaign_pk`` names) are seeded with
  ``create_app(collate_campaigns=[...])`` (then ``campaign_pk`` is checked against them)
  or ``POST /_colony/campaigns``; every ``POST /_colony/inbound`` is also listed as a
  received message (``GET /collate/campaigns/message/``);
* deployments not yet sending may be changed (``PUT``/``PATCH``) or deleted;
* ``POST /_colony/reset`` forgets all state (a fresh account);
  ``POST /_colony/revoke_tokens`` invalidates every access token (to exercise the
  401 -> new token -> retry path); ``GET /_colony/filebox`` lists generated reports;
  ``GET /_colony/messages`` lists every message handed over.

Two parts: :mod:`~smsgate_colony.emulator.state` (:class:`ColonyEmulator`, the account's
state and every operation as a plain method, unit-testable without HTTP) and
:mod:`~smsgate_colony.emulator.app` (:func:`create_app`, the Starlette routes calling it;
``app.vendor`` is the state).

Fault injection (latency, 5xx, 429, hangs, malformed bodies) comes from
:func:`smsgate.emulation.emulator_app`, with DRF-shaped error bodies; a ``status`` fault
with a 2xx code answers ``{"error": "injected fault"}`` (an error inside a success answer:
with ``process`` the vendor has acted, e.g. ``status=201,process,path=/contact/message/``).
"""

from __future__ import annotations

from smsgate_colony.emulator.app import create_app
from smsgate_colony.emulator.state import (
    SANDBOX_CREDENTIALS,
    SANDBOX_SETTINGS,
    ColonyEmulator,
    Rejected,
    parse_multipart,
)

__all__ = ["SANDBOX_CREDENTIALS", "SANDBOX_SETTINGS", "ColonyEmulator", "Rejected", "create_app", "parse_multipart"]
