"""Retention (:meth:`Store.purge`) on every store kind of ``tests/test_store.py``."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("purge_contract")

from purge_contract import PurgeContract  # noqa: E402
from test_store import new_store, store  # noqa: E402

__all__ = ["new_store", "store"]  # the fixtures, for pytest


class TestPurgeContract(PurgeContract):
    """Every store kind against the retention contract."""
