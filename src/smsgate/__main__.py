"""``python -m smsgate``: the ``smsgate`` command line (see :mod:`smsgate.cli`)."""

from smsgate.cli import main

main()
