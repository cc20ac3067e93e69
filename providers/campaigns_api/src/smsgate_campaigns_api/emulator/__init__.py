"""An emulator of the Dynamic Messaging "Campaigns REST API".

Speaks the documented API (see ``docs/providers/campaigns_api.md``):

* ``GET/POST /api/Campaigns``, ``GET /api/Campaigns/{id}``,
  ``GET /api/Campaigns/{id}/Contacts``, ``POST /api/campaigns/{true|false}``,
  update as ``PUT`` or ``POST /api/Campaigns/{id}`` (with a body), delete as
  ``DELETE`` or ``POST /api/Campaigns/{id}`` (without a body);
* ``GET/POST /api/SMSMessages``, ``GET /api/SMSMessages/{id}`` (int ``id`` or GUID ``newId``);
* paths are case-insensitive (ASP.NET routing); listings take Sieve
  ``filters``/``sorts``/``page``/``pageSize`` and answer
  ``{pageIndex, totalPages, totalRecords, items}``;
* the API key is accepted as ``Authorization: Bearer``, ``api-key`` header or
  ``api-key`` query parameter; a missing/wrong key gets 401 with an empty body
  and ``WWW-Authenticate: Bearer`` (ASP.NET JwtBearer default) [INF];
* errors are RFC 7807 ProblemDetails (``type, title, status, traceId, errors``)
  [INF: the vendor's error bodies are undocumented]; an invalid contact number in a
  validated campaign gives ``errors["Contacts[i].PhoneNumber"]``.

State is per app. Single messages move ``2 Accepted -> 0 Sent -> 1 Delivered``
(``5 Undeliverable`` for numbers ending in 9) over ``delivery_delay`` seconds;
campaigns are ``0 Pending`` until ``startDateTime``, then ``1 Sending``,
``2 Submitted`` and ``5 Completed`` over ``campaign_delay`` seconds, creating one
SMS (merge tokens filled in) per contact when they start. With ``webhook_url`` set,
each message's ``Sent`` and final status are POSTed as ``webHookType`` 1 callbacks
(skipped while a ``drop_callbacks`` fault is active). ``seed_campaigns=N``
pre-creates N campaigns for paging tests.

Two parts: :mod:`~smsgate_campaigns_api.emulator.state` (:class:`DMState`, the account's
state and every operation as a plain method, unit-testable without HTTP; the sandbox
credentials) and :mod:`~smsgate_campaigns_api.emulator.app` (:func:`create_app`, the
Starlette routes calling it; ``app.vendor`` is the state). The app is imported on first
use of :func:`create_app`, so the state and the sandbox credentials need no Starlette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smsgate_campaigns_api.emulator.state import (
    SANDBOX_API_KEY,
    SANDBOX_CREDENTIALS,
    SANDBOX_SETTINGS,
    SANDBOX_WEBHOOK_TOKEN,
    CampaignRec,
    DMState,
    Problem,
    SmsRec,
    apply_sieve,
)

if TYPE_CHECKING:
    from smsgate_campaigns_api.emulator.app import create_app, problem

__all__ = [
    "SANDBOX_API_KEY",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SETTINGS",
    "SANDBOX_WEBHOOK_TOKEN",
    "CampaignRec",
    "DMState",
    "Problem",
    "SmsRec",
    "apply_sieve",
    "create_app",
    "problem",
]


def __getattr__(name: str) -> Any:
    """``create_app`` and ``problem``, imported from :mod:`.app` (Starlette) on first use."""
    if name in ("create_app", "problem"):
        from smsgate_campaigns_api.emulator import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
