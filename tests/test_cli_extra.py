"""typer and rich are the ``cli`` extra's (issue 18): the library never imports them, and the
``smsgate`` command without them says in one line what to install.

The library is imported in a new process whose import system refuses typer and rich (a meta
path finder ahead of every other), as in an environment where ``pip install smsgate`` put
only the core; the wheel's own metadata says which requirements belong to which extra.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("typer", "rich")

#: A ``sitecustomize`` module that makes typer and rich import as if they were not installed.
BLOCKER = textwrap.dedent(f"""
    import importlib.abc
    import sys

    BLOCKED = {BLOCKED!r}


    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None


    sys.meta_path.insert(0, Blocker())
""")

MESSAGE = "error: the smsgate command needs typer and rich, which are not installed: pip install 'smsgate[cli]'"


@pytest.fixture
def blocked_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python runs :data:`BLOCKER` first (``sitecustomize`` on PYTHONPATH)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


#: Imports every module of the library and of the installed provider plugins (not the command's
#: own modules under smsgate.cli, nor smsgate.__main__, which runs the command); prints what failed.
IMPORT_ALL = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    from importlib.metadata import entry_points

    assert not [m for m in sys.modules if m.partition(".")[0] in ("typer", "rich")]
    import smsgate

    names = {"smsgate", "smsgate.cli"}
    for info in pkgutil.walk_packages(smsgate.__path__, "smsgate."):
        if not info.name.startswith("smsgate.cli.") and info.name != "smsgate.__main__":
            names.add(info.name)
    plugins = set()
    for group in ("smsgate.providers", "smsgate.emulators", "pytest11"):
        for ep in entry_points(group=group):
            top = ep.value.split(":")[0].partition(".")[0]
            if top.startswith("smsgate"):
                plugins.add(top)
    for top in sorted(plugins - {"smsgate"}):
        package = importlib.import_module(top)
        names.add(top)
        names.update(i.name for i in pkgutil.walk_packages(getattr(package, "__path__", []), top + "."))
    failed = {}
    for name in sorted(names):
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    try:
        import smsgate.cli._app
    except ModuleNotFoundError as exc:
        command = exc.name
    else:
        command = None
    leaked = sorted(m for m in sys.modules if m.partition(".")[0] in ("typer", "rich"))
    print(json.dumps({"imported": sorted(names), "failed": failed, "command": command, "leaked": leaked}))
""")


def test_no_library_module_imports_typer_or_rich(blocked_env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, env=blocked_env,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["leaked"] == []
    imported = set(result["imported"])
    # what is checked: the library (its store, campaigns, webhooks, testing kit and pytest plugin),
    # the command's package itself (main() must run to say what is missing) and the provider plugins
    assert {"smsgate", "smsgate.cli", "smsgate.gateway", "smsgate.campaigns.handles", "smsgate.webhooks",
            "smsgate.testing.pytest_plugin", "smsgate.server", "smsgate_squad.emulator"} <= imported
    assert len(imported) > 60
    assert result["command"] in BLOCKED  # the finder works: the command's own modules need typer


def _smsgate_script() -> str:
    script = shutil.which("smsgate", path=str(Path(sys.executable).parent))
    assert script is not None, "the smsgate console script is not installed next to this Python"
    return script


@pytest.mark.parametrize("args", [[], ["--version"], ["send", "08031234567", "hi"], ["demo"]])
def test_the_command_without_the_cli_extra_names_it_in_one_line(
    args: list[str], blocked_env: dict[str, str], tmp_path: Path
) -> None:
    for command in ([_smsgate_script(), *args], [sys.executable, "-m", "smsgate", *args]):
        out = subprocess.run(command, capture_output=True, text=True, env=blocked_env, cwd=tmp_path, timeout=120)
        assert (out.returncode, out.stdout, out.stderr) == (2, "", MESSAGE + "\n"), command


def test_the_command_names_only_what_is_missing(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.replace(repr(BLOCKED), repr(("rich",))))
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([_smsgate_script(), "--version"], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert (out.returncode, out.stderr) == (2, "error: the smsgate command needs rich, which is not installed: "
                                               "pip install 'smsgate[cli]'\n")


def test_with_the_cli_extra_the_command_runs(tmp_path: Path) -> None:
    out = subprocess.run([_smsgate_script(), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and "campaign" in out.stdout, out.stderr


def test_the_wheel_requires_typer_and_rich_only_with_the_cli_extra(tmp_path: Path) -> None:
    hatchling = pytest.importorskip("hatchling.builders.wheel")
    wheel = next(iter(hatchling.WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(zf.read(info).decode())
        scripts = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
        names = zf.namelist()
    requires = metadata.get_all("Requires-Dist") or []
    core = [r for r in requires if "extra ==" not in r]
    cli = sorted(r.split(";")[0].strip() for r in requires if "extra == 'cli'" in r or 'extra == "cli"' in r)
    assert not [r for r in core if r.startswith(BLOCKED)], core
    assert cli == ["rich>=13.8", "typer>=0.29"]
    assert "cli" in (metadata.get_all("Provides-Extra") or [])
    assert "smsgate = smsgate.cli:main" in scripts
    # the demo (it prints with rich) is the command's, not the library's
    assert "smsgate/cli/_demo.py" in names and "smsgate/demo.py" not in names
