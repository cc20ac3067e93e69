"""Time-sortable unique identifiers for messages and campaigns."""

from __future__ import annotations

import os
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# every 10-bit value as its two base32 digits
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]

# the time part of the last id: (milliseconds, its 10 characters); ids come many per millisecond
_stamp: tuple[int, str] = (-1, "")


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def new_id(prefix: str = "msg") -> str:
    """A ULID-style id: ``prefix_`` + 10 chars of milliseconds + 16 random chars.

    Ids sort by creation time (to the millisecond), so logs list naturally.
    """
    global _stamp
    ms = time.time_ns() // 1_000_000
    stamp = _stamp
    if stamp[0] != ms:
        stamp = _stamp = (ms, _b32(ms, 10))
    # 80 random bits are exactly 16 base32 digits: eight pairs, most significant first
    r = int.from_bytes(os.urandom(10), "big")
    p = _PAIRS
    return (f"{prefix}_{stamp[1]}{p[r >> 70]}{p[(r >> 60) & 1023]}{p[(r >> 50) & 1023]}{p[(r >> 40) & 1023]}"
            f"{p[(r >> 30) & 1023]}{p[(r >> 20) & 1023]}{p[(r >> 10) & 1023]}{p[r & 1023]}")
