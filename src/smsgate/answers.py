"""How much of a vendor's answer is read, and for how long: the one rule of both transport
drivers (:mod:`smsgate.transport`, re-exported there) and of :class:`smsgate.aio.AiohttpClient`.

A vendor's answer is read up to :data:`MAX_ANSWER_BYTES` (past it a
:class:`~smsgate.errors.MalformedResponse`: the vendor may have acted) and its body must arrive
within :data:`ANSWER_TIME_FACTOR` times the read timeout after its headers (past it the try ends
as a read timeout): an endless or trickled answer never takes the process's memory nor holds a
send for ever. The cap holds for the answer as decoded too: a compressed answer
(``Content-Encoding: gzip`` / ``deflate``, which httpx decodes) is measured as it is decoded
(:class:`DecodedSize`), so a few KiB on the wire never become gigabytes in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from smsgate.errors import MalformedResponse, request_where

__all__ = ["ANSWER_TIME_FACTOR", "MAX_ANSWER_BYTES", "DecodedSize", "decoded_size", "too_large_answer",
           "too_slow_answer"]

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
        f"{request_where(request)}: the answer is larger than {MAX_ANSWER_BYTES} bytes (cut off "
        "there): the request reached the provider, which may have acted on it", provider=provider)


def too_slow_answer(request: httpx.Request) -> httpx.ReadTimeout:
    """What a try whose answer's body passed its deadline (:data:`ANSWER_TIME_FACTOR`) raises."""
    return httpx.ReadTimeout(f"the answer's body did not arrive within {ANSWER_TIME_FACTOR:g} times the read "
                             "timeout", request=request)


class DecodedSize:
    """How large an answer with a ``Content-Encoding`` of gzip or deflate (each in turn, as httpx
    decodes them) is once decoded, measured chunk by chunk as it arrives (:meth:`feed`): past
    :data:`MAX_ANSWER_BYTES` :func:`too_large_answer` is raised. No stage keeps more than the cap
    in memory at once (each decompresses at most what is left of it), and what it decodes is
    dropped: httpx decodes the answer again once it is read (twice the work, for compressed
    answers only, which API answers seldom are). Data zlib cannot decode is left to httpx,
    which raises its own ``DecodingError``."""

    __slots__ = ("first", "limit", "provider", "request", "sizes", "stages", "too_large")

    def __init__(self, encodings: list[str], request: httpx.Request, provider: str = "", *,
                 limit: int | None = None, too_large: Callable[[], Exception] | None = None) -> None:
        # httpx decodes the encoding listed last first
        self.stages: list[Any] | None = [_decompressor(e) for e in reversed(encodings)]
        self.sizes = [0] * len(self.stages)
        self.first = [e == "deflate" for e in reversed(encodings)]  # deflate: zlib, else raw (as httpx)
        self.request, self.provider = request, provider
        #: the cap (a download's ``max_bytes``; else :data:`MAX_ANSWER_BYTES` as it is now) and
        #: what passing it raises (else :func:`too_large_answer`)
        self.limit, self.too_large = limit, too_large

    def feed(self, chunk: bytes) -> None:
        """Decode ``chunk`` (dropping the result); :func:`too_large_answer` past the cap."""
        stages = self.stages
        if stages is None or not chunk:
            return
        data = chunk
        cap = MAX_ANSWER_BYTES if self.limit is None else self.limit
        for i, stage in enumerate(stages):
            room = cap - self.sizes[i]
            try:
                data = stage.decompress(data, room + 1)
            except zlib.error:
                if not self.first[i]:
                    self.stages = None  # httpx raises its DecodingError on the same bytes
                    return
                stages[i] = stage = zlib.decompressobj(-zlib.MAX_WBITS)
                try:
                    data = stage.decompress(data, room + 1)
                except zlib.error:
                    self.stages = None
                    return
            self.first[i] = False
            if len(data) > room:  # (else zlib took all of the input: it stops early only when full)
                raise too_large_answer(self.request, self.provider) if self.too_large is None else self.too_large()
            self.sizes[i] += len(data)
            if not data:
                return


def _decompressor(encoding: str) -> Any:
    return zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)


def decoded_size(content_encoding: Iterable[str], request: httpx.Request, provider: str = "", *,
                 limit: int | None = None, too_large: Callable[[], Exception] | None = None) -> DecodedSize | None:
    """A :class:`DecodedSize` for an answer whose ``Content-Encoding`` header values are
    ``content_encoding`` (httpx's reading: comma-separated, case-insensitive); ``None`` when it
    names no gzip or deflate (the body as it arrives is the answer)."""
    encodings = [v.strip().lower() for value in content_encoding for v in value.split(",")]
    encodings = [e for e in encodings if e in ("gzip", "deflate")]
    return DecodedSize(encodings, request, provider, limit=limit, too_large=too_large) if encodings else None
