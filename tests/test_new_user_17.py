"""A new user building a FastAPI app on smsgate from the README and docs/ (helper nu17): OTPs
with idempotency keys from ``AsyncGateway`` for two tenants, campaigns from an uploaded CSV,
delivery reports and STOP/START/HELP through the mounted webhook app, the status poller, against
the sandbox emulators.

Each test is a finding: it failed on main's code before its fix. Real code paths: emulators over
loopback HTTP or the ``memory`` provider, real SQLite stores.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from smsgate import AsyncGateway, ValidationError
from smsgate.campaigns import CsvAudience


def _config(tmp_path: Path) -> dict[str, object]:
    return {"store": f"sqlite:///{tmp_path / 'sms.db'}",
            "tenants": {"acme": {"default_region": "NG", "providers": {"memory": {"plugin": "memory"}}}}}


@pytest.mark.parametrize("audience", [
    io.StringIO("phone,name\n08031234561,Ada\n"),             # an upload's file object (UploadFile.file)
    b"phone,name\n08031234561,Ada\n",                         # an upload's content
    "phone,name\n08031234561,Ada\n",                          # the CSV text itself, as a str
], ids=["file-object", "bytes", "csv-text"])
def test_csv_audience_refuses_what_is_not_a_path_naming_path(tmp_path: Path, audience: object) -> None:
    """A web app's uploaded CSV is a file object or bytes, or its text once decoded; ``CsvAudience``
    reads a file by its path. Given a file object or bytes it raised a bare ``TypeError`` from
    ``pathlib`` (``expected str, bytes or os.PathLike object, not StringIO``); given the CSV text,
    ``create()`` raised ``<the whole CSV, every number in it>: cannot open audience file``. Now
    a ``ValidationError`` naming ``path`` and what to do, with no number from the file in it, and
    nothing stored."""

    async def main() -> None:
        async with AsyncGateway(_config(tmp_path)) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(ValidationError) as caught:
                await acme.campaigns.create("Upload", text="Hi {name}", audience=CsvAudience(audience))  # type: ignore[arg-type]
            assert caught.value.field == "path"
            assert "to a file" in str(caught.value)
            assert "08031234561" not in str(caught.value)
            assert await acme.campaigns.list() == []

    asyncio.run(main())


def test_csv_audience_path_with_a_line_break_that_names_a_file_is_read(tmp_path: Path) -> None:
    """(The rule above refuses text only: a file whose name holds a line break is read.)"""
    csv = tmp_path / "odd\nname.csv"
    csv.write_text("phone,name\n08031234561,Ada\n")

    async def main() -> None:
        async with AsyncGateway(_config(tmp_path)) as gw:
            camp = await gw.tenant("acme").campaigns.create("Odd", text="Hi {name}", audience=CsvAudience(str(csv)))
            assert (await camp.preview()).recipients == 1

    asyncio.run(main())
