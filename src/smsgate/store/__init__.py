"""Stores: where tenants' messages, status history, opt-outs and keys live."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from smsgate.errors import ConfigError, StoreError, StoreUnavailable
from smsgate.store.base import MessageUpdate, Store

__all__ = ["MessageUpdate", "Store", "StoreOpener", "open_store", "sqlite_url_problem", "store_opener"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


#: ``name=value`` pairs joined by ``&``, no ``/`` in them: what follows a ``?`` in a URL's query string
_QUERY = re.compile(r"[A-Za-z_][\w.-]*=[^/&]*(?:&[A-Za-z_][\w.-]*=[^/&]*)*")


def _looks_like_a_query(path: str) -> bool:
    """Whether the ``sqlite:///`` path ``path`` ends in a URL query string (``smsgate.db?timeout=30``,
    as other libraries' URLs take parameters), which SQLite would make part of the file's name.
    A path that is an SQLite URI (``file:...?mode=ro``: SQLite reads its own), whose part after the
    first ``?`` is not ``name=value`` pairs (a folder or file named with a ``?`` in it), or that names
    a file which exists, is a path."""
    if "?" not in path or path.startswith("file:"):
        return False
    return _QUERY.fullmatch(path.split("?", 1)[1]) is not None and not os.path.exists(path)


def sqlite_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` if it is an SQLite URL with two slashes and a path,
    ``sqlite://rel.db`` (the form is ``sqlite:///`` then the path: ``sqlite:///rel.db`` relative,
    ``sqlite:////abs/path.db`` absolute; what follows ``//`` is a host in a URL, so the path was
    a guess); ``None`` for any other URL (``sqlite://`` alone names no file: its own error)."""
    if not url.startswith("sqlite://"):
        return None
    rest = url[len("sqlite://"):]
    if not rest or rest.startswith("/"):
        return None
    return (f"store URL {url!r} has two slashes after 'sqlite:', which would make {rest!r} a host, "
            f"not a file: write 'sqlite:///{rest}' (a relative path: three slashes) or "
            "'sqlite:////abs/path.db' (an absolute path: four)")


def open_store(url: str = "sqlite:///smsgate.db") -> Store:
    """Open (and migrate) a store by URL.

    * ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
      ``sqlite:///:memory:`` (``sqlite:///`` alone names no file: a :class:`ConfigError`; so is
      ``sqlite://path.db``, two slashes, whose path would be a host: see :func:`sqlite_url_problem`)
    * ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``): any
      libpq connection URI (``?sslmode=require``, ...), plus ``?schema=name`` to
      keep the tables in that PostgreSQL schema (created if missing); needs the
      extra ``pip install 'smsgate[postgres]'``
    * ``memory://``

    Raises :class:`~smsgate.errors.ConfigError` for an unsupported URL or a missing
    extra; :class:`~smsgate.errors.StoreUnavailable` (a ``ConfigError`` and a
    ``StoreError``: it may be temporary) for a PostgreSQL server that cannot be reached
    or fails while its schema is checked.
    """
    return store_opener(url)()


def store_opener(url: str) -> StoreOpener:
    """Check the store URL ``url`` now, without opening anything (no file made, no server
    reached): the :class:`ConfigError` :func:`open_store` raises for a URL it refuses (its form,
    a missing extra, an SQLite folder that does not exist) is raised here. Returns the function
    that opens (and migrates) it, raising what :func:`open_store` raises for a store that cannot
    be opened (:class:`~smsgate.errors.StoreUnavailable`...): a gateway opens its store so, at
    its first use (importing an app module that makes one does no I/O)."""
    if url.startswith("sqlite://"):
        from smsgate.store.sqlite import SQLiteStore
        from smsgate.store.sqlite import location_of as sqlite_location

        problem = sqlite_url_problem(url)
        if problem is not None:
            raise ConfigError(problem)
        path = url[len("sqlite://") :]
        if path.startswith("/"):
            path = path[1:]
        if not path:
            raise ConfigError(f"store URL {url!r} names no database file; use sqlite:///relative/path.db, "
                              "sqlite:////absolute/path.db or sqlite:///:memory:")
        if _looks_like_a_query(path):
            name, query = path.split("?", 1)
            raise ConfigError(f"store URL {url!r}: an SQLite store takes no query string ('?{query}'): the "
                              f"database file would be named {path!r}; give the path alone (sqlite:///{name})")
        _check_sqlite_folder(url, path)
        if path.startswith("file:"):
            path = _absolute_uri(path)  # an SQLite URI's relative file too
        elif path != ":memory:" and not os.path.isabs(path):
            path = os.path.abspath(path)  # the current folder's now, whenever it is opened

        def sqlite() -> Store:
            _check_sqlite_folder(url, path)  # (again: it may have gone since)
            return _migrated(SQLiteStore(path))

        where = sqlite_location(path)
        return StoreOpener(sqlite, "SQLiteStore", where)
    if url.startswith("memory://"):
        from smsgate.store.memory import MemoryStore

        return StoreOpener(lambda: _migrated(MemoryStore()), "MemoryStore", None)
    if url.startswith(_POSTGRES_SCHEMES):
        return _postgres_opener(url)
    if "://" not in url:  # never echoed whole: it may hold a password
        spelt = {"memory": "memory://", "sqlite": "sqlite:///path.db", "postgresql": "postgresql://user@host/db",
                 "postgres": "postgresql://user@host/db"}.get(url.strip().lower())
        raise ConfigError("store URL has no scheme (NAME://...)"
                          + (f": did you mean {spelt!r}?" if spelt else "")
                          + "; use sqlite:///path.db, postgresql://user@host/db or memory://")
    raise ConfigError(
        f"unsupported store URL {url.split('://')[0]!r}://...; "
        "use sqlite:///path.db, postgresql://user@host/db or memory://"
    )


class StoreOpener:
    """What :func:`store_opener` returns: called, it opens (and migrates) the store; before,
    :meth:`location` says where its data lives (as :meth:`Store.location` of the store it opens
    does) and ``kind`` names the store's class."""

    def __init__(self, opener: Callable[[], Store], kind: str, where: str | None) -> None:
        self._opener = opener
        self.kind = kind
        self._where = where

    def __call__(self) -> Store:
        return self._opener()

    def location(self) -> str | None:
        """Where the store's data lives (``None``: only the store object it opens holds it)."""
        return self._where


def _migrated(store: Store) -> Store:
    store.migrate()
    return store


def _absolute_uri(uri: str) -> str:
    """The SQLite URI ``uri`` (``file:rel.db?mode=rwc``) with a relative file made absolute
    under the current folder now (``file:/srv/app/rel.db?mode=rwc``): SQLite reads a relative
    one against the folder current when the store is opened, which a gateway does at its first
    use, after an application may have changed it. An absolute file (``file:/...``,
    ``file:///...``, ``file://localhost/...``) and a database in memory (``file::memory:``,
    ``mode=memory``) are kept as they are."""
    rest = uri[len("file:"):]
    name = rest.split("?", 1)[0].split("#", 1)[0]
    if not name or name.startswith(("/", ":memory:")) or "mode=memory" in rest:
        return uri
    return f"file:{quote(os.getcwd())}/{rest}"


def _check_sqlite_folder(url: str, path: str) -> None:
    """A :class:`ConfigError` for a database file whose folder does not exist (SQLite
    would say only ``unable to open database file``)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    from pathlib import Path

    folder = Path(path).parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"store {url!r}: the folder {str(folder)!r} {what}; create it "
                          f"(mkdir -p {folder}) or point 'store' elsewhere")


def _postgres_opener(url: str) -> StoreOpener:
    try:
        import psycopg

        from smsgate.store.postgres import PostgresStore
    except ImportError as exc:
        raise ConfigError(
            f"a {url.split('://')[0]}:// store needs psycopg 3, which is not installed: "
            "pip install 'smsgate[postgres]'"
        ) from exc
    dsn, schema = _split_schema(url)
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"invalid PostgreSQL store URL: {exc}") from None

    from smsgate.store.postgres import location_of

    where = location_of(dsn, schema)

    def postgres() -> Store:
        store = PostgresStore(dsn, schema=schema)
        try:
            store.migrate()
        except StoreError as exc:
            store.close()
            raise StoreUnavailable(exc.reason, exc.store) from exc
        except BaseException:
            store.close()
            raise
        return store

    return StoreOpener(postgres, "PostgresStore", where)


def _split_schema(url: str) -> tuple[str, str | None]:
    """``url`` without its ``schema=`` query parameter (not a libpq one), and that schema."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in params if key == "schema"]
    if not schemas:
        return url, None
    if len(schemas) > 1 or not schemas[0]:
        raise ConfigError("a PostgreSQL store URL takes one non-empty ?schema=name")
    rest = urlencode([(k, v) for k, v in params if k != "schema"], quote_via=quote)
    return urlunsplit(parts._replace(query=rest)), schemas[0]
