"""The README's links work wherever the README is read with its files: a clone on any git host,
and the source distribution (issue 18). The project has no public URL, so they are relative
paths; ``[project.urls]`` will name the repository and documentation site once they have one.
"""

from __future__ import annotations

import re
import tarfile
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """A heading's anchor as the docs site makes it (Python-Markdown's toc extension)."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    found, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#").strip().replace("`", "")))
    return found


def readme_links() -> list[str]:
    return LINK.findall((ROOT / "README.md").read_text())


def test_every_readme_link_is_relative_and_resolves() -> None:
    links = readme_links()
    assert len(links) > 20
    for link in links:
        assert "://" not in link and not link.startswith("/"), f"{link}: not a relative path"
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README links to {path}, which does not exist"
        if anchor:
            assert anchor in anchors(target), f"README links to {link}: {path} has no heading {anchor!r}"


def test_the_sdist_holds_every_file_the_readme_links_to(tmp_path: Path) -> None:
    sdist = pytest.importorskip("hatchling.builders.sdist")
    archive = next(iter(sdist.SdistBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    with tarfile.open(archive) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert "README.md" in names
    missing = sorted({link.partition("#")[0] for link in readme_links()} - names)
    assert missing == []



@pytest.mark.parametrize("pyproject", sorted(p.relative_to(ROOT).as_posix() for p in
                                             [ROOT / "pyproject.toml", *ROOT.glob("providers/*/pyproject.toml")]))
def test_no_extra_is_named_like_a_version(pyproject: str) -> None:
    """pip 23.0 (Python 3.10's) and 24.2 (Python 3.13.0's) read a marker ``extra == "v1"`` as a
    version comparison and then fail on every other extra of the package (``InvalidVersion:
    'emulator'``): the README's install command stopped on those Pythons while smsgate-squad had
    an extra named ``v1``. An extra's name must not parse as a version."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from packaging.version import InvalidVersion, Version

    extras = tomllib.loads((ROOT / pyproject).read_text())["project"].get("optional-dependencies", {})
    like_versions = []
    for name in extras:
        try:
            Version(name)
        except InvalidVersion:
            continue
        like_versions.append(name)
    assert not like_versions, f"{pyproject}: extras named like versions: {like_versions}"
