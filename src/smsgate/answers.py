"""How much of a vendor's answer is read, and for how long: the one rule of both transport
drivers (:mod:`smsgate.transport`, re-exported there) and of :class:`smsgate.aio.AiohttpClient`.

A vendor's answer is read up to :data:`MAX_ANSWER_BYTES` (past it a
:class:`~smsgate.errors.MalformedResponse`: the vendor may have acted) and its body must arrive
within :data:`ANSWER_TIME_FACTOR` times the read timeout after its headers (past it the try ends
as a read timeout): an endless or trickled answer never takes the process's memory nor holds a
send for ever.
"""

from __future__ import annotations

import httpx

from smsgate.errors import MalformedResponse

__all__ = ["ANSWER_TIME_FACTOR", "MAX_ANSWER_BYTES", "too_large_answer", "too_slow_answer"]

#: The largest answer read from a vendor, in bytes as they arrive (an API answer is small; an
#: unpaged listing of a big account may take megabytes). Past it the answer is cut off and the
#: call fails with :class:`~smsgate.errors.MalformedResponse`: the vendor took the request, so a
#: send is ``unknown``, never sent again. A body of no end would otherwise take the process's memory.
MAX_ANSWER_BYTES = 32 << 20

#: An answer's body must have arrived within this many times the request's read timeout after its
#: headers (httpx times each read, not the whole body: a vendor trickling a byte a second would
#: hold a send for ever, past the leases and settle times, twice the timeout, that count on it).
#: Past it the try ends as a read timeout would (:class:`httpx.ReadTimeout`).
ANSWER_TIME_FACTOR = 2.0


def too_large_answer(request: httpx.Request, provider: str = "") -> MalformedResponse:
    """What a call whose answer passed :data:`MAX_ANSWER_BYTES` raises."""
    return MalformedResponse(
        f"{request.method} {request.url.path}: the answer is larger than {MAX_ANSWER_BYTES} bytes (cut off "
        "there): the request reached the provider, which may have acted on it", provider=provider)


def too_slow_answer(request: httpx.Request) -> httpx.ReadTimeout:
    """What a try whose answer's body passed its deadline (:data:`ANSWER_TIME_FACTOR`) raises."""
    return httpx.ReadTimeout(f"the answer's body did not arrive within {ANSWER_TIME_FACTOR:g} times the read "
                             "timeout", request=request)
