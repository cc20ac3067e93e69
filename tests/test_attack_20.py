"""Attacks on the preparation's writer process (smsgate.campaigns.writer_process): what a user's
audience, ids and interruptions can do to it. Real SQLite files, real child processes.
"""

from __future__ import annotations

import enum
import threading
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.campaigns import CsvAudience, writer_process
from smsgate.campaigns import preparation as prep_mod
from smsgate.campaigns.audiences import AudienceRow
from smsgate.store.base import RecipientRow
from test_prepare import config, plugins
from test_writer_process import Spy, exited, spy  # noqa: F401  (a fixture)


class Tier(enum.StrEnum):
    GOLD = "gold"


class Tiered(CsvAudience):
    """Rows of its own: every row gets a ``tier`` field, an enum member (a ``str`` subclass),
    and its number as a ``str`` subclass too."""

    def rows(self) -> Any:
        for r in super().rows():
            yield AudienceRow(r.seq, Number(r.phone), {**r.fields, "tier": Tier.GOLD}, r.error, r.location, r.line)


class Number(str):
    """A number as a (hypothetical) phone-number type of the application's gives it."""


def _create(tmp_path: Path, name: str, audience: CsvAudience, campaign_id: Any = "x",
            text: str = "Hi {name}, {tier} member") -> tuple[Any, list[RecipientRow]]:
    with Gateway(config(f"sqlite:///{tmp_path / name}.db"), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("x", text=text, audience=audience, campaign_id=campaign_id)
        return camp.preview(), gw.store.recipients("acme", camp.campaign_id, limit=1_000_000)


def _rows(rows: list[RecipientRow]) -> list[tuple[Any, ...]]:
    return sorted((r.seq, r.phone, r.state, r.fields, r.reason, r.detail, r.segments, r.provider) for r in rows)


def test_rows_of_an_audience_s_own_with_str_subclasses_are_written_by_the_child_as_by_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy  # noqa: F811  (the fixture)
) -> None:
    """An enum member in a row's fields (a str subclass marshal refuses) and a number of a str
    subclass: the thread stored them; the child failed the creation with "unmarshallable object"."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(200))
                        + "not a number,Zed\n" + "08030000007,again\n")
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    monkeypatch.setattr(writer_process, "MIN_BYTES", None)
    threaded = _create(tmp_path, "thread", Tiered(csv_path))
    assert spy.children == []
    monkeypatch.setattr(writer_process, "MIN_BYTES", 0)
    spy.thread_chunks = 0
    child = _create(tmp_path, "child", Tiered(csv_path))
    assert len(spy.children) == 1 and spy.finished == 1 and spy.thread_chunks == 0 and exited(spy.children[0])
    assert _rows(child[1]) == _rows(threaded[1])
    assert child[0].model_dump() == threaded[0].model_dump()
    assert child[1][0].fields == {"name": "n0", "tier": "gold"}
    assert child[0].skipped == {"invalid": 1, "duplicate": 1}


class CampaignId(enum.StrEnum):
    SPRING = "spring-2027"


def test_a_campaign_id_of_a_str_subclass_neither_hangs_the_creation_nor_changes_its_result(
    tmp_path: Path, spy: Spy  # noqa: F811  (the fixture)
) -> None:
    """campaign_id=an enum member: the child's start raised ValueError in the writer thread,
    which died; create() then waited forever for it to take the next chunk."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(12_000)))
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(
        _create(tmp_path, "id", CsvAudience(csv_path), CampaignId.SPRING, "Hi {name}")), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "create() hangs"
    (preview, rows), = result
    assert preview.recipients == 12_000 and len(rows) == 12_000
    assert len(spy.children) == 1 and spy.finished == 1 and exited(spy.children[0])
