"""What a new user trips over, found by following the docs from a fresh clone (each test
drives the real code path: the Squad emulator over loopback HTTP, a real SQLite store)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from smsgate.errors import InvalidPhoneNumber


def test_a_national_number_without_default_region_says_how_to_fix_it(sms_emulator: Callable[..., Any]) -> None:
    squad = sms_emulator("squad")
    with squad.gateway() as gw:  # a tenant without default_region
        with pytest.raises(InvalidPhoneNumber) as exc:
            gw.tenant("test").send("08031234567", "hello")
    message = str(exc.value)
    assert "08031234567" in message and "default_region" in message and "international form" in message
    assert squad.requests(method="POST") == []  # nothing reached the vendor
