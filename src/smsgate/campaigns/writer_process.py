"""A campaign preparation's writing in a process of its own (large CSV audiences on SQLite).

Preparing a campaign is Python work on both of its threads: the preparing thread reads and
classifies rows, the writer thread builds each chunk's statements, matches opt-outs and reads
back duplicates (:class:`~smsgate.campaigns.storing.ChunkStore`). Under the GIL the two take
turns instead of overlapping (bench/analysis.md), so a preparation never used more than one core.
For a CSV file of at least :data:`MIN_BYTES` into a SQLite file, the writing runs instead in a
child process (:func:`main`, on the interpreter the application
runs on, with its own connection to the same database file: the preparing thread then only
hands each chunk over (a ``marshal`` frame on a pipe, about 1 us a row).

What it keeps as it was:

- **the order and the result.** The child writes the same chunks in the same order through the
  same :class:`~smsgate.campaigns.storing.ChunkStore`; it takes over at a chunk boundary once it
  has started (the writer thread writes the chunks before that itself), and hands back what
  duplicates and opt-outs took from the counts, the first errors and the samples;
- **nothing left behind.** A failed or interrupted ``create()`` kills the child (the chunks it
  wrote since its last commit are one transaction: SQLite rolls it back) and waits for it before
  the campaign is deleted; a child that fails stops the preparation with its error. A child whose parent died
  finds its pipe closed, or itself with another parent, and exits without writing more;
- **it is never needed.** When the child cannot be started or does not answer (a frozen
  application, a ``sys.executable`` not named ``python...`` or ``pypy...`` as in uWSGI,
  ``SMSGATE_PREPARE_PROCESS=0`` in the environment), the writer thread writes every chunk itself, as for smaller audiences,
  PostgreSQL (whose server already writes in a process of its own) and in-memory stores;
- **the parent's database.** The child opens the file its parent's store opened, only: never a
  new database (SQLite's ``mode=rw``), nor another file found at that path since (moved,
  removed, replaced: the file's identity, and the campaign in it); else it does not start.

What it changes: the child commits a group of chunks at a time, not each chunk (one write
transaction over up to :data:`GROUP_CHUNKS` chunks, committed once it is :data:`GROUP_SECONDS`
old: after the chunk being written then, or at once while the next chunk is late; and always
before it says it is done). Each page of the key index that a group's rows touch is written to
the WAL once a group instead of once a chunk: on numbers in no order (a real audience's) that
was most of the child's writing. Another connection's write (a running campaign's write-ahead)
waits for the group's commit: about :data:`GROUP_SECONDS` plus one chunk at most.

The child ignores ``SIGINT`` (Ctrl-C at a terminal reaches the whole process group: the parent
decides) and answers on a pipe of its own (anything printed goes to standard error; what the
interpreter prints on standard output as it starts, nowhere).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import marshal
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from smsgate.campaigns.audiences import Audience, CsvAudience, csv_location, shown_name
from smsgate.campaigns.storing import ChunkStore, Tally
from smsgate.errors import StoreError
from smsgate.keywords import ScopeRule
from smsgate.store.base import RecipientRow, RecipientState, Store

if TYPE_CHECKING:
    from smsgate.store.sqlite import SQLiteStore

__all__ = ["ENVIRONMENT", "GROUP_CHUNKS", "GROUP_SECONDS", "MIN_BYTES", "ChildWriter", "main", "usable"]

log = logging.getLogger(__name__)

#: The smallest CSV file (bytes) whose preparation writes in a child process (about 60,000 rows
#: of a phone number and a name; below it the child's start-up is not worth it). ``None``: never.
MIN_BYTES: int | None = 2 << 20
#: Environment variable that turns the child process off (``0``, ``no``, ``false``, ``off``).
ENVIRONMENT = "SMSGATE_PREPARE_PROCESS"
#: The child's SQLite page cache (KiB): three quarters of the store's usual one. A group of chunks
#: (:data:`GROUP_CHUNKS`) on numbers in no order dirties thousands of the key index's pages, which
#: a smaller cache spills to the WAL before the commit (writing each one more than once); 64 MB
#: took the preparation's peak memory past ~230 MB at a million rows (bench/analysis.md).
CACHE_KIB = 49_152
#: Seconds the child holds one write transaction open over several chunks, at most: it commits
#: after the chunk during which the transaction reached this age, and while it waits for the next
#: chunk once it reaches it. Another connection's write (a running campaign's write-ahead, another
#: preparation) waits for the write lock about this long plus one chunk's writing at most, well
#: within a store's busy timeout (bench/analysis.md, 2026-12-06 20:15).
GROUP_SECONDS = 0.25
#: Chunks written in one transaction at most: fewer commits, and each index page a group's rows
#: touch written to the WAL once a group instead of once a chunk.
GROUP_CHUNKS = 8
#: Seconds to wait for a child to exit once told to (then it is killed).
EXIT_WAIT = 10.0
#: Seconds between the child's checks that its parent is alive.
PARENT_CHECK = 0.2
#: Whether the child answers on a pipe of its own, passed to it as a descriptor (POSIX), or on
#: its standard output (elsewhere: Windows passes no descriptors). Tests set it ``False`` to run
#: the other platforms' way on POSIX too.
ANSWERS_ON_PIPE = os.name == "posix"

_HEADER = struct.Struct(">I")
#: What a child answering on its standard output (see :data:`ANSWERS_ON_PIPE`) writes before its
#: first frame: what its interpreter printed there as it started (a ``sitecustomize``, a ``.pth``
#: file) comes before it, and is not read as a frame.
_MARK = b"\x00smsgate-writer-answers\x00"
#: Bytes the parent reads for the mark at most (then the child counts as broken).
_MARK_WITHIN = 1 << 20
#: ``json.dumps`` as the SQLite store encodes a recipient's fields (anything but strings)
_FIELDS_JSON = json.JSONEncoder().encode
#: The child's program (not ``-m`` this module: the package imports it first, and runpy warns).
#: ``-c`` puts the current folder (``""``) first on ``sys.path``: taken off before anything is
#: imported, so that no file there shadows a module; then SIGINT is ignored before anything else
#: (a terminal's Ctrl-C reaches the child too: while it imported smsgate, its first half second,
#: it printed a KeyboardInterrupt traceback and died). It starts with SIGINT blocked
#: (:func:`_sigint_blocked`: before its interpreter set up its handling a Ctrl-C killed it, and
#: while it imported ``signal`` one raised KeyboardInterrupt), so it unblocks SIGINT once ignored:
#: one that came meanwhile is dropped. The ``sys.path`` it imports from comes
#: first on its standard input, a line of JSON (:func:`_child_path`: the application's, whatever
#: ``-c``, ``PYTHONPATH`` or ``PYTHONSAFEPATH`` would make of it; not an argument, which the
#: system caps at 128 KiB); its arguments: a placeholder, the parent's process id, and the
#: descriptor of the pipe it answers on
_CHILD = ("import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; "
          "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
          "hasattr(signal, 'pthread_sigmask') and signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT]); "
          "import json; sys.path[:] = json.loads(sys.stdin.buffer.readline()); "
          "from smsgate.campaigns.writer_process import main; sys.exit(main())")
_PENDING, _SKIPPED = RecipientState.PENDING, RecipientState.SKIPPED


def usable(store: Store, audience: Audience) -> bool:
    """Whether preparing ``audience`` into ``store`` writes in a child process (see the module
    docstring): a :class:`CsvAudience` file of at least :data:`MIN_BYTES` whose rows and
    locations are the class's own, into a :class:`~smsgate.store.sqlite.SQLiteStore` file, on
    an interpreter that can run the child."""
    from smsgate.store.sqlite import SQLiteStore

    if MIN_BYTES is None or os.environ.get(ENVIRONMENT, "").strip().lower() in ("0", "no", "false", "off"):
        return False
    if type(store) is not SQLiteStore or store.location() is None or store.path.startswith("file:"):
        return False
    if not isinstance(audience, CsvAudience) or type(audience).locate is not CsvAudience.locate:
        return False
    if getattr(sys, "frozen", False) or not _is_python(sys.executable):
        return False
    try:
        return audience.path.stat().st_size >= MIN_BYTES
    except OSError:
        return False  # the audience reports it when it opens the file


def _is_python(executable: str) -> bool:
    """Whether ``executable`` is named as a Python interpreter is (``python3.11``, ``pypy3``,
    ``python.exe``): an application embedding Python (uWSGI, a frozen or bundled program) has
    its own program there, which must not be started with ``-c``."""
    name = executable.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name.startswith(("python", "pypy"))


def _interpreter_flags() -> list[str]:
    """The parent interpreter's ``-I``, ``-E`` and ``-s`` for the child: an application run
    isolated, or without the environment's or the user's site folders (whose ``.pth`` files run
    code as the interpreter starts), starts its child the same way."""
    flags = sys.flags
    if flags.isolated:
        return ["-I"]
    return [f for f, on in (("-E", flags.ignore_environment), ("-s", flags.no_user_site)) if on]


def _child_path() -> list[str]:
    """The child's ``sys.path``: the application's (the folders it put there itself too: its
    dependencies may be there) without the current folder (``""``: a folder there named like a
    module would shadow it in the child only, the application having imported it already), and
    this smsgate's folder first unless it is on it."""
    path = [p for p in sys.path if isinstance(p, str) and p]
    root = str(Path(__file__).resolve().parents[2])
    return path if root in path else [root, *path]


# ----------------------------------------------------------------------------------------- frames
def _send(out: IO[bytes], frame: tuple[Any, ...]) -> None:
    _write(out, _pack(frame))


def _pack(frame: tuple[Any, ...]) -> bytes:
    """A frame as sent (``ValueError`` for a value ``marshal`` refuses, e.g. a ``str`` subclass)."""
    data = marshal.dumps(frame)
    return _HEADER.pack(len(data)) + data


def _write(out: IO[bytes], data: bytes) -> None:
    out.write(data)
    out.flush()


def _plain(value: Any) -> Any:
    """A ``str`` subclass's text as a ``str`` (an enum member's value: what the store keeps of it)."""
    return str.__str__(value) if isinstance(value, str) and type(value) is not str else value


def _plain_chunk(frame: tuple[Any, ...]) -> tuple[Any, ...]:
    """A chunk frame of an audience's own values (``str`` subclasses, e.g. enum members, which
    ``marshal`` refuses) as the store keeps them: texts as ``str``, each row's fields as JSON
    gives them back (a value JSON refuses raises the ``TypeError`` the writer thread's store would)."""
    kind, rows, tallies, texts, given, where, checked = frame
    plain_rows = [(*map(_plain, row[:3]), json.loads(_FIELDS_JSON(row[3])), *map(_plain, row[4:])) for row in rows]
    return (kind, plain_rows, [t if t is None else tuple(map(_plain, t)) for t in tallies],
            None if texts is None else list(map(_plain, texts)), None if given is None else list(map(_plain, given)),
            list(map(_plain, where)), checked)


def _receive(inp: IO[bytes]) -> tuple[Any, ...] | None:
    """The next frame, ``None`` at the end of the stream (the other side is gone)."""
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    size = _HEADER.unpack(head)[0]
    data = inp.read(size)
    if len(data) < size:
        return None
    frame = marshal.loads(data)
    if not isinstance(frame, tuple) or not frame:
        raise ValueError("not a writer frame")
    return frame


def _skip_to_mark(inp: IO[bytes]) -> bool:
    """Read ``inp`` up to and including :data:`_MARK`; ``False`` if it ends (or runs past
    :data:`_MARK_WITHIN` bytes) first. What came before it is logged (DEBUG), not kept."""
    seen = bytearray()
    while not seen.endswith(_MARK):
        if len(seen) > _MARK_WITHIN:
            log.debug("campaign writer process: no answers within %d bytes of its output", _MARK_WITHIN)
            return False
        byte = inp.read(1)
        if not byte:
            return False
        seen += byte
    if len(seen) > len(_MARK):
        log.debug("campaign writer process printed as it started: %r", bytes(seen[:-len(_MARK)])[:200])
    return True


def _rows_out(rows: list[RecipientRow]) -> list[tuple[Any, ...]]:
    # what a prepared row holds (message_id and id are unset before a campaign runs)
    return [(r.seq, r.phone, r.state is _PENDING, r.fields, r.reason, r.detail, r.segments, r.provider, r.line, r.key)
            for r in rows]


def _rows_in(rows: list[tuple[Any, ...]]) -> list[RecipientRow]:
    return [RecipientRow(seq, phone, _PENDING if pending else _SKIPPED, fields, reason, detail, None, segments,
                         provider, None, line, key)
            for seq, phone, pending, fields, reason, detail, segments, provider, line, key in rows]


# ------------------------------------------------------------------------------------ parent side
@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in the calling thread while a child starts: a child inherits its starter's
    signal mask across ``exec``, so a Ctrl-C waits for it until its program ignores SIGINT (see
    :data:`_CHILD`). The thread's own mask only: the application's other threads, its main
    thread's Ctrl-C among them, are untouched; one that reaches this thread meanwhile comes
    once the child is started."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class ChildWriter:
    """The parent's side of one child writer: starts it, hands chunks over, collects its result.

    Used from one thread (the preparation's writer thread); a reader thread of its own takes
    the child's frames.
    """

    def __init__(self, store: Store, tenant: str, campaign_id: str, audience: CsvAudience,
                 scopes: dict[str | None, str | None], rule: ScopeRule) -> None:
        path = (store.location() or "").removeprefix("sqlite:")
        identity = getattr(store, "file_id", None)  # the file its connection opened
        if identity is None:
            raise StoreError("the store's database file is unknown", store=repr(path))
        command = [sys.executable, *_interpreter_flags(), "-c", _CHILD, "-", str(os.getpid())]
        # (PYTHONINSPECT would make the child an interactive interpreter once done)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONINSPECT"}
        # (an application that closed its standard error, a daemon: the child's goes nowhere)
        errors = None if _is_open(2) else subprocess.DEVNULL
        if ANSWERS_ON_PIPE:
            # The answers come on a pipe of their own: what the interpreter prints on standard
            # output as it starts (a sitecustomize, a .pth file) is not a frame (it goes nowhere)
            answers, theirs = _pipe()
            try:
                with _sigint_blocked():
                    self._proc = subprocess.Popen([*command, str(theirs)], stdin=subprocess.PIPE,
                                                  stdout=subprocess.DEVNULL, stderr=errors, pass_fds=(theirs,),
                                                  env=env)
            except BaseException:
                os.close(answers)
                raise
            finally:
                os.close(theirs)
            self._out: IO[bytes] = os.fdopen(answers, "rb")
        else:  # no descriptors to pass (Windows): its standard output, after a mark (see _MARK)
            with _sigint_blocked():
                self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                              env=env)
            assert self._proc.stdout is not None
            self._out = self._proc.stdout
        self._marked = not ANSWERS_ON_PIPE
        assert self._proc.stdin is not None
        self._in = self._proc.stdin
        self.ready = threading.Event()
        #: the child answers no more (it exited, failed, or never started)
        self.gone = threading.Event()
        self.full = False
        self._result: tuple[Any, ...] | None = None
        self._error: BaseException | None = None
        self._reader = threading.Thread(target=self._read, name="smsgate-campaign-writer-child", daemon=True)
        self._reader.start()
        try:  # (an id of a str subclass, an enum member's, is sent as its text: marshal refuses the member)
            _write(self._in, json.dumps(_child_path()).encode() + b"\n")  # (JSON holds no raw line end)
            _send(self._in, ("init", path, identity, float(getattr(store, "timeout", 5.0)),
                             _plain(tenant), _plain(campaign_id), shown_name(audience.path.name),
                             {_plain(k): _plain(v) for k, v in scopes.items()},
                             _plain(rule.region), [_plain(s) for s in rule.senders]))
        except OSError:
            pass  # the reader sees it gone
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        try:
            if self._marked and not _skip_to_mark(self._out):
                return
            while (frame := _receive(self._out)) is not None:
                kind = frame[0]
                if kind == "ready":
                    self.ready.set()
                elif kind == "full":
                    self.full = True
                elif kind == "done":
                    self._result = frame
                elif kind == "error":
                    self._error = _error_of(frame[1], frame[2])
        except (OSError, ValueError, EOFError, TypeError) as exc:  # a broken child: its exit says the rest
            log.debug("campaign writer process: unreadable answer: %s", exc)
        finally:
            self._out.close()
            self.gone.set()

    def begin(self, max_errors: int, max_samples: int) -> None:
        """Take over the writing from the next chunk on, keeping ``max_errors`` errors and
        ``max_samples`` samples more."""
        self._put(_pack(("begin", max_errors, max_samples)))
        if max_errors <= 0 and max_samples <= 0:  # full from the start (the child says so when it becomes full)
            self.full = True

    def write(self, rows: list[RecipientRow], tallies: list[Tally | None], texts: list[str | None],
              given: list[str], where: list[str | None], checked: list[int]) -> None:
        """Hand a chunk over (as :meth:`ChunkStore.write` takes it)."""
        if self.full:  # the child keeps no more errors or samples: the texts and numbers as given are not read
            frame: tuple[Any, ...] = ("chunk", _rows_out(rows), tallies, None, None, where, checked)
        else:
            frame = ("chunk", _rows_out(rows), tallies, texts, given, where, checked)
        try:
            data = _pack(frame)
        except ValueError:  # an audience's rows of its own, with str subclasses in them
            data = _pack(_plain_chunk(frame))
        self._put(data)

    def finish(self) -> tuple[dict[Tally, int], dict[str, int], list[dict[str, Any]], list[dict[str, str]]]:
        """Wait until every chunk is written; what the child's :class:`ChunkStore` kept."""
        self._put(_pack(("close",)))
        self._reader.join()
        self._wait()
        if self._result is None:
            raise self._failure()
        _, undo_counts, undo_skipped, errors, samples = self._result
        return undo_counts, undo_skipped, errors, samples

    def kill(self) -> None:
        """Kill the child now, from any thread (:meth:`stop` reaps it): what it wrote since its
        last commit is rolled back, and it writes nothing more."""
        try:
            self._proc.kill()
        except OSError:  # pragma: no cover - already reaped
            pass

    def stop(self) -> None:
        """End the child without waiting for what it was handed (it is killed: the chunk it is
        writing, and those since its last commit, are rolled back)."""
        self.kill()
        self._wait()
        self._reader.join()

    def _put(self, data: bytes) -> None:
        if self.gone.is_set() and self._result is None:
            raise self._failure()
        try:
            _write(self._in, data)
        except OSError:  # a broken pipe: the child is gone (its error frame says why)
            self._reader.join()
            raise self._failure() from None

    def _failure(self) -> BaseException:
        if self._error is not None:
            return self._error
        self._reader.join()
        if self._error is not None:
            return self._error
        code = self._wait()
        return StoreError(f"the campaign writer process ended without finishing (exit status {code})")

    def _wait(self) -> int | None:
        try:
            self._in.close()
        except OSError:
            pass
        try:
            return self._proc.wait(EXIT_WAIT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _pipe() -> tuple[int, int]:
    """``os.pipe()``, both ends numbered above standard error (POSIX): in an application that
    closed its standard streams (a daemon) the pipe takes their numbers, and in the child the
    standard stream of that number replaced the answers' end (they went nowhere)."""
    import fcntl

    ends = list(os.pipe())
    try:
        for i, fd in enumerate(ends):
            if fd <= 2:
                ends[i] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
                os.close(fd)
    except BaseException:
        for fd in ends:
            os.close(fd)
        raise
    return ends[0], ends[1]


def _identity(path: str) -> tuple[int, int]:
    """The file at ``path`` (its device and file number: another file at that path differs)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _open_store(path: str, identity: tuple[int, int], timeout: float, tenant: str, campaign_id: str) -> SQLiteStore:
    """The child's connection to its parent's database file: the file at ``path`` if it is
    still the one the parent opened (``identity``), never a new one (the file removed or
    renamed meanwhile), and holding the campaign being prepared (a :class:`StoreError`
    otherwise: the parent's thread writes instead)."""
    from smsgate.store.sqlite import SQLiteStore

    def check() -> None:
        try:
            same = _identity(path) == tuple(identity)
        except OSError:
            same = False
        if not same:
            raise StoreError("the database file is no longer the one the application opened (moved or replaced)",
                             store=repr(path))

    check()  # (before SQLite opens another file, and its WAL, at that path)
    store = SQLiteStore(path, timeout=timeout, cache_kib=CACHE_KIB, create=False)
    try:
        check()
        store.get_campaign(tenant, campaign_id)  # what the parent created: the same database
    except BaseException:
        store.close()
        raise
    return store


def _error_of(pickled: bytes, text: str) -> BaseException:
    """The child's exception as it raised it, else a :class:`StoreError` with its text."""
    try:
        exc = pickle.loads(pickled) if pickled else None
    except Exception:
        exc = None
    return exc if isinstance(exc, BaseException) else StoreError(f"campaign writer process: {text}")


# ------------------------------------------------------------------------------------- child side
def _arrives(inp: IO[bytes], timeout: float) -> bool:
    """Whether ``inp`` has something to read within ``timeout`` seconds (a stream without a
    descriptor, a file: always). Its buffer is not looked at: a frame already buffered while the
    pipe is empty (a small last chunk) makes this wait ``timeout`` and answer ``False``."""
    try:
        fd = inp.fileno()
    except (OSError, ValueError):  # (io.UnsupportedOperation is both)
        return True
    try:
        return bool(select.select([fd], [], [], max(0.0, timeout))[0])
    except OSError:  # pragma: no cover - a pipe select() does not take (Windows): no wait
        return True


def _orphaned(parent: int) -> None:
    """Exit the child at once (what it wrote since its last commit is rolled back) when ``parent``, the
    process that started it, has died: the child has another parent then, or (``parent`` died
    before this looked, or an executable that is a wrapper started the child) ``parent`` is gone."""
    first = os.getppid()
    while os.getppid() == first:
        if first != parent and os.name == "posix":  # (elsewhere os.kill() ends the process)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                break
            except OSError:  # pragma: no cover - alive, another user's (a wrapper's)
                pass
        time.sleep(PARENT_CHECK)
    os._exit(3)


def main() -> int:
    """The child: read frames on standard input, write chunks, answer on the pipe its parent
    gave it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A fork of the parent's (multiprocessing, a pre-forking server) holds the write end of the
    # input's pipe too: its end alone does not say the parent died
    parent = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else os.getppid()
    threading.Thread(target=_orphaned, args=(parent,), name="smsgate-writer-parent", daemon=True).start()
    piped = len(sys.argv) > 3
    out = os.fdopen(int(sys.argv[3]) if piped else os.dup(1), "wb")  # the pipe it answers on
    os.dup2(2, 1)  # anything printed goes to standard error
    if not piped:  # on its standard output: after what the interpreter printed there as it started
        _write(out, _MARK)
    # The garbage collector, run between chunks only: a chunk's rows (a tuple, a fields dict and a
    # RecipientRow with its own dict each) live until the chunk is written, and every collection
    # the allocations set off walked them again, and each full one the whole of smsgate as well
    # (at a million rows 3,300 young, 300 middle and 27 full collections, ~3 of the child's 16.5 s
    # of CPU, bench/analysis.md 2026-12-06 17:10). What the child imported is frozen (never walked
    # again); between chunks little else is alive, so a full collection there is cheap and still
    # frees any cycle. (The child's own process: the application's collector is not touched.)
    gc.freeze()
    gc.disable()
    with out:  # (closed before the interpreter's end: no ResourceWarning in development mode)
        return _serve(sys.stdin.buffer, out, between=gc.collect)


def _serve(inp: IO[bytes], out: IO[bytes], between: Callable[[], object] | None = None) -> int:
    """The child's work: the frames of ``inp`` written, answers on ``out``; ``between()`` is
    called after each chunk (:func:`main`: the garbage collector). Chunks are committed a group
    at a time (:data:`GROUP_CHUNKS`, :data:`GROUP_SECONDS`), the last group before ``done``;
    what is not committed when it stops otherwise (an error, the parent gone) is rolled back."""
    frame = _receive(inp)
    if frame is None or frame[0] != "init":
        return 2
    _, path, identity, timeout, tenant, campaign_id, name, scopes, region, senders = frame
    store: SQLiteStore | None = None
    try:
        store = _open_store(path, identity, timeout, tenant, campaign_id)
        _send(out, ("ready",))
        chunks: ChunkStore | None = None
        # Chunks are written in groups, one transaction each (see GROUP_SECONDS, GROUP_CHUNKS);
        # what is not committed when this ends (a failure, the parent gone) is rolled back
        with store._write_group() as group:
            grouped = 0
            while True:
                if group.open and not _arrives(inp, GROUP_SECONDS - group.age()):
                    group.commit()  # the next chunk is late: the write lock is not held meanwhile
                    grouped = 0
                if (frame := _receive(inp)) is None:
                    return 0  # the parent is gone: nothing more is written (the open group rolled back)
                kind = frame[0]
                if kind == "begin":
                    chunks = ChunkStore(store, tenant, campaign_id, functools.partial(csv_location, name), scopes,
                                        ScopeRule(region, senders),
                                        max_errors=frame[1], max_samples=frame[2])
                elif kind == "chunk" and chunks is not None:
                    full = chunks.full
                    _, rows, tallies, texts, given, where, checked = frame
                    chunks.write(_rows_in(rows), tallies, texts if texts is not None else [None] * len(rows),
                                 given if given is not None else [""] * len(rows), where, checked)
                    grouped += 1
                    if grouped >= GROUP_CHUNKS or group.age() >= GROUP_SECONDS:
                        group.commit()
                        grouped = 0
                    if chunks.full and not full:
                        _send(out, ("full",))
                    del rows, tallies, texts, given, where, checked, frame
                    if between is not None:
                        between()
                elif kind == "close" and chunks is not None:
                    group.commit()  # durable before the parent hears it is done
                    _send(out, ("done", chunks.undo_counts, chunks.undo_skipped, chunks.errors, chunks.samples))
                    return 0
                else:
                    raise ValueError(f"unexpected writer frame {kind!r}")
    except BaseException as exc:
        try:
            pickled = pickle.dumps(exc)
        except Exception:
            pickled = b""
        try:
            _send(out, ("error", pickled, f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
        return 1
    finally:
        if store is not None:
            store.close()

