"""The neutral message lifecycle and its one transition rule.

Every vendor status maps to one :class:`Status`::

    queued -> submitted -> sent -> delivered | undelivered | failed | rejected | expired
                                                                        plus unknown

``queued``
    logged just before its request leaves (after a crash: "may have left").
``submitted``
    the vendor accepted it; ``sent``: the vendor handed it to the network.
``delivered`` ... ``expired``
    final: nothing changes them any more.
``unknown``
    the outcome is not known (a timeout after the request was sent); any later
    news replaces it.

:func:`accepts` decides whether a message in one status moves to another. Every
store applies it (the PostgreSQL store inside the database, through
:func:`accepts_sql`, generated from the same definitions), so a late or repeated
delivery report can never move a message backwards.
"""

from __future__ import annotations

from smsgate._enum import StrEnum

__all__ = ["FINAL", "Status", "accepts", "accepts_sql", "rank_sql"]


class Status(StrEnum):
    """The neutral message lifecycle (see the module docstring)."""

    QUEUED = "queued"
    SUBMITTED = "submitted"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """True once the status can no longer change."""
        return self in FINAL

    @property
    def rank(self) -> int:
        """Position in the lifecycle; a status never moves to a lower rank."""
        return _RANK[self]


#: The statuses nothing replaces.
FINAL = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.REJECTED, Status.EXPIRED})

_RANK = {
    Status.UNKNOWN: 1,
    Status.QUEUED: 1,
    Status.SUBMITTED: 2,
    Status.SENT: 3,
    Status.DELIVERED: 4,
    Status.UNDELIVERED: 4,
    Status.FAILED: 4,
    Status.REJECTED: 4,
    Status.EXPIRED: 4,
}


def accepts(current: Status, current_raw: str | None, new: Status, new_raw: str | None) -> bool:
    """Whether a message in ``current`` (vendor status ``current_raw``) moves to ``new`` (``new_raw``).

    * a repeat of the current status (same raw status, or no raw status given)
      changes nothing;
    * ``unknown`` may be replaced by anything;
    * a final status is never replaced;
    * otherwise the status may only stay at the same rank or move forward
      (a same-status report with a different raw status is accepted).
    """
    if new is current and (new_raw is None or new_raw == current_raw):
        return False
    if current is Status.UNKNOWN:
        return True
    if current.is_final:
        return False
    return new.rank >= current.rank


def rank_sql(status: str) -> str:
    """SQL for ``Status(status).rank``, given the SQL expression of a status value."""
    whens = " ".join(f"WHEN '{s.value}' THEN {s.rank}" for s in Status)
    return f"(CASE {status} {whens} END)"


def accepts_sql(current: str, current_raw: str, new: str, new_raw: str) -> str:
    """:func:`accepts` as a SQL boolean expression over four SQL expressions (status
    values as text), for stores that apply the rule inside the database.

    Built from :class:`Status` (ranks, final statuses), so the two cannot drift
    apart; the store test-suite checks them against each other.
    """
    finals = ", ".join(f"'{s.value}'" for s in Status if s.is_final)
    return (
        f"(CASE WHEN {new} = {current} AND ({new_raw} IS NULL OR {new_raw} = {current_raw}) THEN false"
        f" WHEN {current} = '{Status.UNKNOWN.value}' THEN true"
        f" WHEN {current} IN ({finals}) THEN false"
        f" ELSE {rank_sql(new)} >= {rank_sql(current)} END)"
    )
