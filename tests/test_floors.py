"""The lower bounds pyproject.toml declares are true: each dependency's floor is at least the
release that added what smsgate's code (or the behaviour its docs promise) relies on.

:data:`RELIED_ON` is the one place that says which release that is, and why. The floors were
checked by installing each direct dependency at its floor in a second venv and running the
tests on it (CHANGELOG.md, 0.1.0: "dependency floors"); when code starts to use something newer,
add it here and raise the floor with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

#: distribution -> (the first release with what smsgate relies on, what that is)
RELIED_ON: dict[str, tuple[str, str]] = {
    "httpx": ("0.28", "a JSON body refuses NaN and infinities (0.27 sends `NaN`, which is not JSON, to the "
                      "vendor); httpx.Client/AsyncClient, MockTransport"),
    "anyio": ("4", "CancelScope(shield=True) in a task anyio did not start stops an enclosing anyio scope's "
                   "cancellations and lets a native Task.cancel() through (smsgate._shield.shielded; checked "
                   "on 4.0.0)"),
    "pydantic": ("2.7", "the floor the tests ran on (pydantic-settings 2.4 needs 2.7 too)"),
    "pydantic-settings": ("2.13", "a SMSGATE_* list or table that is not JSON is reported as 'not valid JSON' "
                                  "(docs/configuration.md; 2.4-2.12 pass it on as a string: a confusing error "
                                  "about its value); SettingsError importable from pydantic_settings (2.4)"),
    "pluggy": ("1.5", "the floor the tests ran on"),
    "phonenumbers": ("8.13.44", "Nigeria's numbering plan (NG metadata updated in 8.13.44): before it 5-7 digit "
                                "'12...' numbers were valid NG numbers; 8.13.0-8.13.1 called +234801... invalid"),
    "typer": ("0.29", "the CLI's one-line usage errors as docs/getting-started.md shows them "
                      "(0.16-0.28 word them otherwise; 0.12.4-0.15.3 crash with click>=8.2)"),
    "rich": ("13.8", "what typer 0.29 asks; the CLI tests (tests/test_cli.py, tests/test_cli_dx.py) pass on 13.8.0"),
    "starlette": ("0.37", "the floor the tests ran on"),
    "uvicorn": ("0.30", "the floor the tests ran on"),
    "aiohttp": ("3.10.6", "the floor the tests ran on"),
    "psycopg": ("3.3.1", "a server-side cursor iterates past its first page (3.3.0 stopped after itersize rows: "
                         "message_times, the statistics, saw 5,000 messages of 12,000); an error in a COPY block "
                         "(TypeError: a field JSON cannot carry) is raised as itself (3.1.10-3.2.x: "
                         "BadCopyFileFormat; before: QueryCanceled); a bare dict in a jsonb COPY column is dumped "
                         "(not in 3.1.0)"),
    "redis": ("5", "the floor the tests ran on"),
    "celery": ("5.3", "the floor the tests ran on"),
    "cryptography": ("41", "cryptography.fernet.MultiFernet, hazmat AES-CBC and PKCS7 padding"),
    "opentelemetry-api": ("1.20", "the floor the tests ran on"),
}

#: extras that are tools for developing smsgate, not dependencies of what it ships
TOOL_EXTRAS = {"dev", "docs"}


def _declared(pyproject: Path) -> list[tuple[str, Requirement]]:
    """(where, requirement) for each dependency ``pyproject`` declares, tool extras aside."""
    project = tomllib.loads(pyproject.read_text())["project"]
    found = [("dependencies", Requirement(text)) for text in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        if extra not in TOOL_EXTRAS:
            found += [(f"optional-dependencies.{extra}", Requirement(text)) for text in reqs]
    return found


def _floor(req: Requirement) -> Version | None:
    floors = [Version(spec.version) for spec in req.specifier if spec.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


PYPROJECTS = [ROOT / "pyproject.toml", *sorted(ROOT.glob("providers/*/pyproject.toml"))]
OWN = {"smsgate"}  # the providers depend on the core, whose version is the checkout's


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_declared_floor_is_at_least_the_release_relied_on(pyproject: Path) -> None:
    wrong = []
    for where, req in _declared(pyproject):
        if req.name in OWN or req.name == "tomli":
            continue
        floor = _floor(req)
        if floor is None:
            wrong.append(f"{where}: {req} has no lower bound")
        elif req.name not in RELIED_ON:
            wrong.append(f"{where}: {req} is not in RELIED_ON (say which release it needs and why)")
        elif floor < Version(RELIED_ON[req.name][0]):
            needed, why = RELIED_ON[req.name]
            wrong.append(f"{where}: {req} but smsgate needs {req.name}>={needed}: {why}")
    assert not wrong, "\n".join(wrong)


def test_everything_relied_on_is_declared() -> None:
    """RELIED_ON does not go stale: each entry is a dependency some pyproject declares."""
    declared = {req.name for p in PYPROJECTS for _, req in _declared(p)}
    assert set(RELIED_ON) <= declared, set(RELIED_ON) - declared


def test_the_floor_check_catches_a_floor_below_what_is_relied_on(tmp_path: Path) -> None:
    """The check itself: the old pydantic-settings floor (2.3) is reported."""
    old = tmp_path / "pyproject.toml"
    old.write_text('[project]\nname = "x"\ndependencies = ["pydantic-settings>=2.3"]\n')
    with pytest.raises(AssertionError, match=r"pydantic-settings>=2\.13: a SMSGATE_"):
        test_each_declared_floor_is_at_least_the_release_relied_on(old)


def test_the_api_relied_on_is_there() -> None:
    """What RELIED_ON names exists in the versions installed (on a venv at the floors, a floor
    set below the release that added it fails here first, with its name)."""
    from pydantic_settings import SettingsError  # noqa: F401  (pydantic-settings>=2.4)


def _pins() -> dict[str, Version]:
    """``.ci/floors.txt``: the floor job's constraints (.ci/floors), by distribution."""
    pins: dict[str, Version] = {}
    for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_the_floor_ci_job_installs_each_dependency_at_its_declared_floor() -> None:
    """Each dependency any pyproject.toml declares (the core's and its extras', the plugins') is
    pinned in .ci/floors.txt within its floor's release series (the highest floor declared for it):
    the floor job tests what the floors promise, not something newer."""
    floors: dict[str, Version] = {}
    for pyproject in PYPROJECTS:
        for _, req in _declared(pyproject):
            name, floor = canonicalize_name(req.name), _floor(req)
            if name in OWN or floor is None or (req.marker is not None and not req.marker.evaluate()):
                continue
            floors[name] = max(floor, floors.get(name, floor))
    pins = _pins()
    assert sorted(floors) == sorted(n for n in pins if n in floors), "a declared dependency is not pinned"
    for name, floor in floors.items():
        pin = pins[name]
        assert pin >= floor and pin.release[:len(floor.release)] == floor.release, (name, str(pin), str(floor))
