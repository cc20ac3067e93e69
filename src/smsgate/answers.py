"""How much of a vendor's answer is read, and for how long: the one rule of both transport
drivers (:mod:`smsgate.transport`, re-exported there) and of :class:`smsgate.aio.AiohttpClient`.

A vendor's answer is read up to :data:`MAX_ANSWER_BYTES` (past it a
:class:`~smsgate.errors.MalformedResponse`: the vendor may have acted) and its body must arrive
within :data:`ANSWER_TIME_FACTOR` times the read timeout after its headers (past it the try ends
as a read timeout): an endless or trickled answer never takes the process's memory nor holds a
send for ever. An async try as a whole (pool wait, connect, write, the answer's headers and body)
must end within :func:`try_budget` of its timeouts (:class:`TryDeadlines`), so trickled *headers*
cannot hold it either; httpx's sync client has no public way to end a read from outside, so the
sync driver times headers per read only. The cap holds for the answer as decoded too: a compressed answer (``Content-Encoding`` gzip,
deflate, and brotli or zstd when their packages are installed: whatever httpx decodes) is
decoded as it arrives and the decoded bytes counted as they come: brotli by brotli's own
streaming decoder, which bounds what one call hands back (:class:`StreamDecoder`, fed by httpx's
public :meth:`~httpx.Response.iter_raw`), the others (and brotli with a library that cannot bound
its output) through httpx's public :meth:`~httpx.Response.iter_bytes`,
their raw bytes handed to httpx's decoder a few at a time (:func:`decode_step`,
:func:`read_decoded`): past the cap, :func:`too_large_answer`, having held at most a few MiB
more. So a few KiB on the wire never become gigabytes in memory; the adapter reads the answer as
httpx's own ``read()`` leaves it (:func:`decoded_response`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import httpx

from smsgate.errors import MalformedResponse, request_where

__all__ = [
    "ANSWER_TIME_FACTOR",
    "DECODED_STEP",
    "DECODE_STEPS",
    "KEEPALIVE_SECONDS",
    "MAX_ANSWER_BYTES",
    "Pieces",
    "StreamDecoder",
    "TryDeadlines",
    "aread_decoded",
    "decode_step",
    "decoded_response",
    "pieces",
    "read_decoded",
    "stream_decoder",
    "too_large_answer",
    "too_slow_answer",
    "too_slow_try",
    "try_budget",
]

#: How long the clients smsgate makes keep an idle connection for its next request: less than
#: the 5 s after which common servers close an idle one (uvicorn, Node.js, Apache; nginx keeps
#: it 75 s). With httpx's and aiohttp's own defaults (5 s, 15 s) a request could be written on
#: a connection the vendor was closing at that very moment: it failed as one that may have
#: reached the vendor (``Server disconnected``), its message ``unknown``.
KEEPALIVE_SECONDS = 4.0

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


def try_budget(timeouts: Mapping[str, float | None] | None) -> float | None:
    """Seconds one async try may take in all, from its start to its answer read in full: each of
    its phases' timeouts (``pool``, ``connect``, ``write``, and ``read`` for the answer's headers)
    plus :data:`ANSWER_TIME_FACTOR` times ``read`` for the body; ``None`` (no bound) when any of
    them is ``None`` or ``timeouts`` is. httpx's and aiohttp's read timeouts are per read, so
    without it a vendor trickling its answer's *headers* a byte at a time under the read timeout
    would hold the send for as long as it trickles."""
    if timeouts is None:
        return None
    phases = [timeouts.get(phase) for phase in ("pool", "connect", "write", "read")]
    if None in phases:
        return None
    return sum(float(t) for t in phases if t is not None) + ANSWER_TIME_FACTOR * float(phases[3] or 0.0)


def too_slow_try(request: httpx.Request, budget: float) -> httpx.ReadTimeout:
    """What an async try that passed its whole budget (:func:`try_budget`) raises: the request
    may have reached the vendor (a read timeout: never sent again unless it is idempotent)."""
    return httpx.ReadTimeout(
        f"no whole answer within {budget:g} s (the request's pool, connect, write and read "
        f"timeouts, and {ANSWER_TIME_FACTOR:g} times the read timeout for its body)",
        request=request,
    )


class TryDeadlines:
    """The async tries of one event loop that must end by a time, ended by one timer for all.

    :meth:`watch` registers the calling task's try with its deadline; :meth:`settle`, called by
    the same task, removes it (nothing a try keeps alive while in flight but a dictionary entry).
    One ``call_at`` timer is armed for the earliest deadline watched (tries start with about the
    same budget, so a later try seldom moves it); when it fires, it cancels the task of every try
    past its deadline and arms itself for the next one. So a try costs two dictionary operations,
    not a timer of its own (aiohttp's ``total`` timeout or ``asyncio.timeout`` per request, ~10%
    of a bulk send's CPU). The task is cancelled as :func:`asyncio.timeout` does it; the caller
    catches the :class:`asyncio.CancelledError` at the try and asks :meth:`settle` whether it was
    its deadline (and no one else's cancellation), then raises :func:`too_slow_try`.
    """

    __slots__ = ("_at", "_fired", "_timer", "_timer_at", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        #: the loop whose tries these are
        self.loop = loop
        self._at: dict[asyncio.Task[Any], float] = {}
        self._fired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def watch(self, budget: float) -> bool:
        """Watch the calling task's try, which must end within ``budget`` seconds (``False``: not
        run by a task, so not watched). The same task calls :meth:`settle` when the try ends."""
        task = asyncio.current_task(self.loop)
        if task is None:  # pragma: no cover - asyncio runs every coroutine in a task
            return False
        at = self.loop.time() + budget
        self._at[task] = at
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = self.loop.call_at(at, self._sweep), at
        return True

    def settle(self) -> bool:
        """The calling task's try ended: whether its deadline cancelled it, and nothing else did
        (its cancellation is then taken back, :meth:`asyncio.Task.uncancel`). Idempotent."""
        task = asyncio.current_task(self.loop)
        if task is None:  # pragma: no cover - see watch
            return False
        self._at.pop(task, None)
        if task not in self._fired:
            return False
        self._fired.discard(task)
        if sys.version_info >= (3, 11):
            return task.uncancel() == 0
        return True  # pragma: no cover - Python 3.10 counts no cancellations

    def _sweep(self) -> None:
        """The timer: cancel the tasks past their deadline, arm for the next deadline."""
        self._timer, self._timer_at = None, float("inf")
        now = self.loop.time()
        following = float("inf")
        for task, at in list(self._at.items()):
            if at <= now:
                del self._at[task]
                if not task.done():
                    self._fired.add(task)
                    task.cancel()
            elif at < following:
                following = at
        if following != float("inf"):
            self._timer, self._timer_at = self.loop.call_at(following, self._sweep), following


#: The most raw bytes of a compressed answer httpx is given to decode at a time, by
#: ``Content-Encoding``: what one step can inflate to is bounded by it (gzip/deflate about 1032
#: times: 4 MiB; zstd a 128 KiB block per few bytes: 8 MiB; brotli a meta-block of up to its
#: 16 MiB window per few bytes: 16 MiB measured for 16 bytes), so no step holds more than that past
#: the cap. Small steps cost time (brotli about 0.1-0.3 s per MiB on the wire, zstd about a
#: quarter of that): brotli goes this way only when its library cannot bound its own output
#: (:func:`stream_decoder`: brotlicffi, brotli before 1.2). See :func:`decode_step`.
DECODE_STEPS: Final[Mapping[str, int]] = {"gzip": 4096, "deflate": 4096, "zstd": 64, "br": 16}


#: The decoded bytes a :class:`StreamDecoder` asks its library for at a time (brotli may hand back
#: up to about twice as many): about what it holds past the cap at most.
DECODED_STEP: Final = 1 << 20


def _decoded_by_httpx(encoding: str) -> bool:
    """Whether httpx decodes ``encoding`` here: gzip and deflate always, ``br`` with brotli or
    brotlicffi installed, ``zstd`` with zstandard (httpx's own test; else it passes the bytes on)."""
    if encoding in ("gzip", "deflate"):
        return True
    if encoding == "br":
        return importlib.util.find_spec("brotli") is not None or importlib.util.find_spec("brotlicffi") is not None
    if encoding == "zstd":
        return importlib.util.find_spec("zstandard") is not None
    return False


@functools.lru_cache(maxsize=64)
def _step(encodings: tuple[str, ...]) -> int | None:
    decoded = [e for e in encodings if _decoded_by_httpx(e)]
    if not decoded:
        return None
    if len(decoded) == 1:
        return DECODE_STEPS[decoded[0]]
    if len(decoded) == 2 and set(decoded) <= {"gzip", "deflate"}:
        return 4  # twice deflated: about a million times per byte at most
    return 0  # past bounding: more layers, or brotli/zstd under another


def _encodings(content_encoding: Iterable[str]) -> tuple[str, ...]:
    return tuple(v.strip().lower() for value in content_encoding for v in value.split(",") if v.strip())


def _bounded_brotli() -> Any:
    """The ``brotli`` module when its decoder bounds its output (``output_buffer_limit``, brotli 1.2
    and later), else ``None``."""
    try:
        brotli = importlib.import_module("brotli")
    except ImportError:
        return None
    return brotli if hasattr(brotli.Decompressor, "can_accept_more_data") else None


class StreamDecoder:
    """Decodes an answer's brotli body (``Content-Encoding: br``) with brotli's own streaming
    decoder as its raw bytes arrive, whatever their number: each call hands back about
    :data:`DECODED_STEP` bytes at most (``output_buffer_limit``), counted as they come: past
    ``limit``, ``too_large()`` is raised. A body brotli cannot decode, or that ends before its
    stream does, raises :class:`httpx.DecodingError`, as httpx's decoders do (httpx with brotlicffi
    for the end). zstd is left to httpx's decoder a step at a time (:data:`DECODE_STEPS`):
    zstandard's bounded decoder (``stream_writer``) cannot tell a stream cut short."""

    def __init__(self, limit: int, too_large: Callable[[], Exception]) -> None:
        self.body = bytearray()
        self.limit, self.too_large = limit, too_large
        self._brotli = _bounded_brotli()
        self._decoder = self._brotli.Decompressor()
        self._fed = False

    def _take(self, data: bytes) -> None:
        self.body += data
        if len(self.body) > self.limit:
            raise self.too_large()

    def feed(self, raw: bytes) -> None:
        """Decode ``raw``, the next bytes of the body as they arrived."""
        if not raw:
            return
        self._fed = True
        try:
            out = self._decoder.process(raw, output_buffer_limit=DECODED_STEP)
            while out:  # what the limit held back comes with empty input (it may say it takes more first)
                self._take(out)
                out = self._decoder.process(b"", output_buffer_limit=DECODED_STEP)
        except self._brotli.error as exc:
            raise httpx.DecodingError(str(exc)) from exc

    def result(self) -> bytes:
        """The decoded body, once every raw byte was fed."""
        if self._fed and not self._decoder.is_finished():
            raise httpx.DecodingError("the brotli stream ended before its end")
        return bytes(self.body)

    def read(self, chunks: Iterable[bytes]) -> bytes:
        """The decoded body of ``chunks`` (:meth:`httpx.Response.iter_raw`)."""
        for chunk in chunks:
            self.feed(chunk)
        return self.result()

    async def aread(self, chunks: AsyncIterable[bytes]) -> bytes:
        """:meth:`read` of :meth:`httpx.Response.aiter_raw`."""
        async for chunk in chunks:
            self.feed(chunk)
        return self.result()


def stream_decoder(content_encoding: Iterable[str], limit: int,
                   too_large: Callable[[], Exception]) -> StreamDecoder | None:
    """A :class:`StreamDecoder` for a body with these ``Content-Encoding`` header values, when
    httpx would decode one layer of brotli and the installed brotli bounds its own output (1.2
    and later); else ``None`` (no encoding, gzip, deflate, zstd, layers, brotlicffi: httpx decodes
    it, :func:`decode_step`)."""
    decoded = [e for e in _encodings(content_encoding) if _decoded_by_httpx(e)]
    if decoded == ["br"] and _bounded_brotli() is not None:
        return StreamDecoder(limit, too_large)
    return None


def decode_step(content_encoding: Iterable[str], request: httpx.Request,
                refuse: Callable[[str], Exception] | None = None, provider: str = "") -> int | None:
    """How many raw bytes of an answer with these ``Content-Encoding`` header values may go to
    httpx's decoder at a time (:data:`DECODE_STEPS`); ``None`` when httpx decodes none of them
    (the body as it arrives is the answer, held to the cap as it arrives).

    Two layers of gzip/deflate are decoded 4 bytes at a time; any other stack (three layers, or
    brotli/zstd with another) cannot be bounded step by step and is refused: ``refuse(reason)``
    (else a :class:`MalformedResponse`: the vendor may have acted) is raised."""
    encodings = _encodings(content_encoding)
    step = _step(encodings)
    if step == 0:
        reason = (f"Content-Encoding {', '.join(encodings)!r} is not read (layers of compression past two of "
                  "gzip/deflate cannot be held to the size cap as they are decoded)")
        if refuse is not None:
            raise refuse(reason)
        raise MalformedResponse(f"{request_where(request)}: {reason}: the request reached the provider, which "
                                "may have acted on it", provider=provider)
    return step


def pieces(chunk: bytes, step: int) -> Iterator[bytes]:
    """``chunk`` cut into pieces of at most ``step`` bytes (itself when it is no longer)."""
    if len(chunk) <= step:
        yield chunk
        return
    view = memoryview(chunk)
    for i in range(0, len(chunk), step):
        yield bytes(view[i:i + step])


def read_decoded(chunks: Iterable[bytes], limit: int, too_large: Callable[[], Exception]) -> bytes:
    """The decoded body from ``chunks`` (:meth:`httpx.Response.iter_bytes`), ``too_large()``
    raised as soon as it passes ``limit`` bytes: at most one decoded step is held past it."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large()
    return bytes(body)


async def aread_decoded(chunks: AsyncIterable[bytes], limit: int, too_large: Callable[[], Exception]) -> bytes:
    """:func:`read_decoded` of :meth:`httpx.Response.aiter_bytes`."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large()
    return bytes(body)


def decoded_response(response: httpx.Response, content: bytes) -> httpx.Response:
    """An answer like ``response`` (status, headers, request, extensions, history) holding its
    decoded ``content``, as httpx's own ``read()`` leaves one: ``content`` / ``text`` / ``json()``
    decoded, the headers as they came (``Content-Encoding`` and the wire's ``Content-Length``
    included). It is made without them (else httpx would decode ``content`` again), then given them."""
    plain = [(k, v) for k, v in response.headers.raw if k.lower() not in (b"content-encoding", b"content-length")]
    out = httpx.Response(response.status_code, headers=plain, content=content, request=response.request,
                         extensions=response.extensions, history=response.history)
    out.headers = response.headers  # read already: the content stays as decoded
    out.default_encoding = response.default_encoding
    with contextlib.suppress(RuntimeError):  # set by the client when it closed the answer
        out.elapsed = response.elapsed
    return out


class Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body already in memory as a stream of pieces of at most ``step`` bytes (a compressed
    answer read in full, as :class:`smsgate.aio.AiohttpClient` reads, decoded step by step)."""

    def __init__(self, body: bytes, step: int) -> None:
        self.body, self.step = body, step

    def __iter__(self) -> Iterator[bytes]:
        yield from pieces(self.body, self.step)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in pieces(self.body, self.step):
            yield piece
