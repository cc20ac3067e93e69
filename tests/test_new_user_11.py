"""Found by a new user integrating smsgate in an app from the README and docs/ (helper
newuser11): each test fails without its fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsgate.cli import app

runner = CliRunner()


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, no smsgate.toml, no $SMSGATE_CONFIG: a brand-new user's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_CONFIG", raising=False)
    return tmp_path


# ----------------------------------------------------------------------- smsgate serve without a tenant
def test_serve_without_a_configuration_says_so_and_creates_no_store(no_config: Path) -> None:
    """``smsgate serve`` in a directory without smsgate.toml served ``(tenants: none)`` (every
    vendor callback answered 404) and created ./smsgate.db; every other command that needs a
    tenant says where it looked and how to start one."""
    out = runner.invoke(app, ["serve", "--port", "0"])
    assert out.exit_code == 2, out.output
    assert "no configuration: there is no smsgate.toml in" in out.output
    assert "serving webhooks" not in out.output
    assert not any(no_config.iterdir()), sorted(p.name for p in no_config.iterdir())


def test_serve_with_a_configuration_of_no_tenant_says_so(no_config: Path) -> None:
    config = no_config / "smsgate.toml"
    config.write_text(f'store = "sqlite:///{no_config / "s.db"}"\n', encoding="utf-8")
    out = runner.invoke(app, ["serve", "--port", "0", "-c", str(config)])
    assert out.exit_code == 2, out.output
    assert "configures no tenant and its store holds none" in out.output
    assert not (no_config / "s.db").exists()
