"""Time-sortable unique identifiers for messages and campaigns."""

from __future__ import annotations

import os
import threading
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


#: os.urandom bytes read ahead (one system call per 409 ids instead of one per id)
_pool = bytearray()
_POOL_BYTES = 4090
#: held while bytes are taken from the pool: two threads reading the same ten bytes before either
#: removed them made the same id in the same millisecond
_pool_lock = threading.Lock()


def _random80() -> int:
    """80 random bits from the operating system's generator (each call's own, in any thread)."""
    global _pool
    with _pool_lock:
        if len(_pool) < 10:
            _pool = bytearray(os.urandom(_POOL_BYTES))
        value = int.from_bytes(_pool[-10:], "big")
        del _pool[-10:]
    return value


def _forget_pool() -> None:
    """A forked child must not reuse its parent's bytes (the same ids in two processes), nor
    inherit the pool's lock held by a thread of the parent's that the child does not have."""
    global _pool, _pool_lock
    _pool = bytearray()
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


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
    r = _random80()
    p = _PAIRS
    return (f"{prefix}_{stamp[1]}{p[r >> 70]}{p[(r >> 60) & 1023]}{p[(r >> 50) & 1023]}{p[(r >> 40) & 1023]}"
            f"{p[(r >> 30) & 1023]}{p[(r >> 20) & 1023]}{p[(r >> 10) & 1023]}{p[r & 1023]}")
