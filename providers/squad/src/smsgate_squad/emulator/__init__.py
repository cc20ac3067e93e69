"""An in-memory emulator of Squad's SMS APIs (v2 ``/sms/...`` and legacy v1), for tests and demos.

Everything it answers is taken from Squad's documents (seeds 000/001, FACTS.md section 1);
where they are silent it follows the [INF] notes there, listed in docs/providers/squad.md.
Two parts:

* :mod:`~smsgate_squad.emulator.state`: :class:`SquadEmulator`, the vendor's state and every
  operation as a plain method (unit-testable without HTTP);
* :mod:`~smsgate_squad.emulator.app`: :func:`create_app`, the Starlette routes calling it,
  wrapped with request recording and fault injection; ``app.vendor`` is the state.

``create_app()`` with no arguments accepts :data:`SANDBOX_CREDENTIALS` (v2) and
:data:`SANDBOX_V1_CREDENTIALS` with :data:`SANDBOX_V1_OPTIONS` (v1), any sender ID, and
Nigerian numbers. v2 buckets come back with a ``signed_url`` pointing back here
(``{base}/_s3/...?X-Amz-...``): PUT the CSV there within ``signed_url_ttl`` seconds; v2
campaigns run when due, then ``success``.
"""

from __future__ import annotations

from smsgate_squad.emulator.app import create_app
from smsgate_squad.emulator.state import (
    SANDBOX_CREDENTIALS,
    SANDBOX_SECRET_KEY,
    SANDBOX_SETTINGS,
    SANDBOX_V1_CREDENTIALS,
    SANDBOX_V1_IV,
    SANDBOX_V1_KEY,
    SANDBOX_V1_OPTIONS,
    SANDBOX_V1_SECRET,
    SANDBOX_V1_SETTINGS,
    Message,
    Rejected,
    SquadEmulator,
)

__all__ = [
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SECRET_KEY",
    "SANDBOX_SETTINGS",
    "SANDBOX_V1_CREDENTIALS",
    "SANDBOX_V1_IV",
    "SANDBOX_V1_KEY",
    "SANDBOX_V1_OPTIONS",
    "SANDBOX_V1_SECRET",
    "SANDBOX_V1_SETTINGS",
    "Message",
    "Rejected",
    "SquadEmulator",
    "create_app",
]
