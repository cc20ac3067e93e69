"""``smsgate new-provider``: the generated plugin passes the conformance kit on its first run."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsgate.cli import app
from smsgate.cli.new_provider import class_prefix

runner = CliRunner()

EXPECTED = {
    "pyproject.toml",
    "README.md",
    "src/smsgate_acme_sms/__init__.py",
    "src/smsgate_acme_sms/options.py",
    "src/smsgate_acme_sms/wire.py",
    "src/smsgate_acme_sms/py.typed",
    "src/smsgate_acme_sms/api.py",
    "src/smsgate_acme_sms/provider.py",
    "src/smsgate_acme_sms/emulator/__init__.py",
    "src/smsgate_acme_sms/emulator/state.py",
    "src/smsgate_acme_sms/emulator/app.py",
    "tests/test_conformance.py",
    "tests/test_provider.py",
}


def test_generated_plugin_passes_the_conformance_kit(tmp_path: Path) -> None:
    result = runner.invoke(app, ["new-provider", "acme_sms", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    target = tmp_path / "acme_sms"
    written = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert written == EXPECTED
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "the staging directory was left"
    text = (target / "src/smsgate_acme_sms/provider.py").read_text()
    assert "class AcmeSmsProvider(Provider)" in text and "{{" not in text
    pyproject = (target / "pyproject.toml").read_text()
    assert 'acme_sms = "smsgate_acme_sms"' in pyproject
    assert 'acme_sms = "smsgate_acme_sms.emulator:create_app"' in pyproject

    # lint-clean by its own ruff settings (the generated pyproject's)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=target,
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # the plugin's own tests, as its author first runs them: its src on the path, its pytest config
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=target, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, summary
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 20, summary  # the kit's checks ran (not all skipped or deselected)


@pytest.mark.parametrize("name", ["Acme", "acme-sms", "1acme", "_acme", "acme_", "a__b", "class", "acmé", "",
                                  "x" * 41, "../acme", "acme sms"])
def test_bad_names_are_refused_clearly(tmp_path: Path, name: str) -> None:
    result = runner.invoke(app, ["new-provider", name, "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "error:" in result.output and "provider name" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "mine.txt").write_text("keep me")
    result = runner.invoke(app, ["new-provider", "acme", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "exists already" in result.output
    assert [p.name for p in (tmp_path / "acme").iterdir()] == ["mine.txt"]
    assert (tmp_path / "acme" / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acme"]


def test_a_missing_parent_directory_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["new-provider", "acme", "--dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_class_prefix() -> None:
    assert class_prefix("acme") == "Acme"
    assert class_prefix("acme_sms_2") == "AcmeSms2"


def test_templates_ship_in_the_wheel(tmp_path: Path) -> None:
    hatchling = pytest.importorskip("hatchling.builders.wheel")
    root = Path(__file__).resolve().parents[1]
    builder = hatchling.WheelBuilder(str(root))
    wheel = next(iter(builder.build(directory=str(tmp_path), versions=["standard"])))
    names = zipfile.ZipFile(wheel).namelist()
    templates = sorted(n for n in names if n.startswith("smsgate/templates/provider/"))
    assert "smsgate/templates/provider/src/smsgate_NAME/provider.py.tmpl" in templates
    assert len(templates) == len(EXPECTED)
    assert "smsgate/testing/reference.py" in names
