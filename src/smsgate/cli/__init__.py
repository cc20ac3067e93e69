"""The ``smsgate`` command line (the ``cli`` extra: ``pip install 'smsgate[cli]'``).

Configuration comes from ``--config``, else ``$SMSGATE_CONFIG``, else
``./smsgate.toml``. Every command that acts for a tenant takes ``--tenant``
(default: the only tenant, if there is one).

One module per command group; every command is registered through
:class:`smsgate.cli._common.CommandGroup`, so an
:class:`~smsgate.errors.SmsgateError` always ends as one ``error: ...`` line on
stderr with exit code 2, and so does a value the command-line parser refuses (an
option out of range, a missing argument, an unknown option: not click's ``Usage:``
box; :func:`smsgate.cli._common.parser_errors_in_one_line`). Exit codes: 0 ok (or "yes"), 1 a negative answer
(``optout check``: not opted out; a declined prompt), 2 an error, 130 Ctrl-C
(the long-running commands say what was kept and how to resume).

The command is built on typer and rich, which the library itself never imports:
``pip install smsgate`` does not pull them in. This package's ``__init__`` imports
neither, so that :func:`main` can say in one line what to install when they are missing.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsgate.cli._app import app

__all__ = ["CLI_MODULES", "MISSING_EXIT", "OUTPUT_ERRORS", "app", "main"]

#: The modules the command needs beyond the library's own dependencies: the ``cli`` extra's.
CLI_MODULES = ("typer", "rich")
#: The exit code of ``smsgate`` without the ``cli`` extra (an error, as for every command).
MISSING_EXIT = 2


def main() -> None:
    """Entry point of the ``smsgate`` console script (and of ``python -m smsgate``).

    Without the ``cli`` extra it prints one line, ``error: the smsgate command needs typer and
    rich, which are not installed: pip install 'smsgate[cli]'``, and exits 2.
    """
    missing = [name for name in CLI_MODULES if not _importable(name)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        print(f"error: the smsgate command needs {' and '.join(missing)}, which {verb} not installed: "
              "pip install 'smsgate[cli]'", file=sys.stderr)
        sys.exit(MISSING_EXIT)
    try:
        from smsgate.cli._app import app

        app()
    except KeyboardInterrupt:  # while importing; typer turns Ctrl-C in a command into exit 130 itself
        sys.exit(130)
    except OSError as exc:
        # writing standard output failed (`smsgate messages > out.txt` on a full disk); a closed
        # pipe (`| head`) is click's to handle, and files the commands write name themselves
        if exc.errno not in OUTPUT_ERRORS or exc.filename is not None:
            raise
        try:  # what is still buffered for the failed output must not fail again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        print(f"error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)  # an error, as for every command


#: The errors of a write to standard output that end a command with one ``error:`` line (exit
#: code 2) instead of a traceback: a full disk, a quota, a file size limit, an I/O error.
OUTPUT_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def __getattr__(name: str) -> Any:
    """``smsgate.cli.app``: the typer application, imported on first use (it needs the ``cli`` extra)."""
    if name == "app":
        from smsgate.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
