"""``StrEnum``: a ``str`` enum whose ``str()`` and f-string form is its value.

``str(Status.SENT) == f"{Status.SENT}" == "sent"`` (a plain ``(str, Enum)`` gives
``"Status.SENT"``). :class:`enum.StrEnum` on Python 3.11+, the same behaviour on 3.10.
"""

from __future__ import annotations

import enum
import sys

__all__ = ["StrEnum"]

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, enum.Enum):
        """A ``str`` enum shown as its value."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str(self.value).__format__(spec)
