"""An emulator of the WAABOT broadcast API (``/api/v1``), for tests and ``smsgate sandbox``.

What it claims about the vendor, and where each claim comes from
(``[DOC]`` vendor docs / seed 004, ``[SDK]`` the vendor's ``wasms-sdk``,
``[INF]`` inference, see docs/providers/broadcast.md):

* ``POST /api/v1/sessions`` ``{email, password}`` -> ``{accessToken, refreshToken}``
  (a bare object, no envelope) [DOC]; wrong password -> 401 [INF body];
* every other route wants ``Authorization: Bearer <accessToken>`` [DOC] (401
  otherwise [INF]; switch off with ``require_bearer=False``) and the bot pair
  ``session_id`` + ``access_token`` in the JSON body, the multipart form or the
  query string [DOC/SDK] (403 when wrong [INF]);
* ``POST /api/v1/broadcast`` / ``GET`` / ``GET|PUT|DELETE /api/v1/broadcast/{id}``
  with the documented fields and envelope ``{"status": true, "message", "data"}``
  [DOC]; PUT [SDK] and DELETE answer 204 [DOC for delete, INF for PUT];
* a broadcast starts ``"sending"`` with empty ``sent``/``pending``/``failed`` lists
  [DOC]; afterwards each number sits in ``pending`` and, ``delivery_delay`` seconds
  after creation, moves to ``sent`` (or ``failed`` if it ends in 9); once every
  number is done the status becomes ``"completed"`` [INF: only "sending" is documented];
* ``POST /api/v1/attachment`` takes multipart field ``file`` [INF] and answers with
  a base64 ``data:`` URI [DOC]; ``GET`` lists / gets records, ``DELETE`` -> 204 [DOC];
* ``/contact`` and ``/contact_groups`` (GET POST, ``/{id}`` GET PUT DELETE) per bot, with
  the documented fields [DOC]; as documented, ``POST /contact`` and ``PUT`` / ``DELETE
  /contact/{id}`` answer 204, ``PUT /contact_groups/{id}`` 200 with the group and ``DELETE
  /contact_groups/{id}`` 200 with ``{n, ok, deletedCount}`` [DOC]; a ``send_type: "group"`` broadcast
  goes to the named groups' contacts [INF];
* ``GET /message-log?page=&limit=`` answers a bare array of one entry per broadcast number
  (fields [INF]); ``GET /message-log/{id}``; ``DELETE /sessions`` ends the session (204) [DOC];
* errors are ``{"status": false, "message": "..."}`` with a 4xx status [INF from the SDK].

Two parts: :mod:`~smsgate_broadcast.emulator.state` (:class:`WaabotState`, the account's
state and every operation as a plain method, unit-testable without HTTP) and
:mod:`~smsgate_broadcast.emulator.app` (:func:`create_app`, the Starlette routes calling
it). ``app.vendor`` is the state (typed: :func:`vendor_state`); nothing lives in module
globals. Fault injection, request recording and ``/_emulator/*`` come from
:func:`smsgate.emulation.emulator_app`, with WAABOT-shaped error bodies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smsgate_broadcast.emulator.state import SANDBOX_CREDENTIALS, SANDBOX_SETTINGS, VendorError, WaabotState

if TYPE_CHECKING:
    from smsgate_broadcast.emulator.app import PREFIX, WaabotRoutes, create_app, vendor_state

__all__ = [
    "PREFIX",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SETTINGS",
    "VendorError",
    "WaabotRoutes",
    "WaabotState",
    "create_app",
    "vendor_state",
]

_APP_NAMES = frozenset({"PREFIX", "WaabotRoutes", "create_app", "vendor_state"})


def __getattr__(name: str) -> Any:
    """The routes' names, imported on first use: the state (and the sandbox account) needs no Starlette."""
    if name in _APP_NAMES:
        from smsgate_broadcast.emulator import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
