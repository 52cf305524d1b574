"""The ``portal`` command: init is idempotent, usage errors exit 2 and name what is wrong."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from portal.cli import main
from portal.db import make_engine
from portal.migrate import current_revision, head_revision


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder`` but the database files: mode and content hash."""
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("portal.db"):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            result[str(path.relative_to(folder))] = (path.stat().st_mode, digest)
    return result


def _tables(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        return {
            t: sorted(c["name"] for c in inspector.get_columns(t))
            for t in inspector.get_table_names()
        }
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_init_twice_changes_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {"PORTAL_HOME": str(tmp_path / "home")}
    if backend == "postgresql":
        # An empty database: init must create the whole schema itself.
        env["PORTAL_DATABASE_URL"] = request.getfixturevalue("empty_pg_database_url")
    runner = CliRunner()
    first = runner.invoke(main, ["init"], env=env)
    assert first.exit_code == 0, first.output
    assert "migrated from empty" in first.output
    url = env.get("PORTAL_DATABASE_URL") or f"sqlite:///{tmp_path / 'home' / 'portal.db'}"
    schema, files = _tables(url), _snapshot(tmp_path / "home")

    second = runner.invoke(main, ["init"], env=env)
    assert second.exit_code == 0, second.output
    assert "up to date" in second.output and "created" not in second.output
    assert _tables(url) == schema
    assert _snapshot(tmp_path / "home") == files
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
    assert (tmp_path / "home" / "keys").stat().st_mode & 0o777 == 0o700


def test_the_sqlite_database_is_for_the_portals_user_only(tmp_path: Path) -> None:
    """It holds password hashes, wrapped keys and the audit log: 0600, its WAL too, and a file
    an earlier version left readable by others is made private by the next ``portal init``."""
    env = {"PORTAL_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    assert runner.invoke(main, ["init"], env=env).exit_code == 0
    database = tmp_path / "home" / "portal.db"
    for path in (database, database.with_name("portal.db-wal")):
        if path.exists():
            assert path.stat().st_mode & 0o777 == 0o600, path
    database.chmod(0o644)
    assert runner.invoke(main, ["init"], env=env).exit_code == 0
    assert database.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORTAL_MAX_UPLOAD_BYTES", "two gigabytes"), ("PORTAL_CLAMD", "clamd:3310")],
)
def test_a_bad_variable_exits_2_naming_it(variable: str, value: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init"], env={"PORTAL_HOME": str(tmp_path), variable: value})
    assert result.exit_code == 2
    assert variable in result.output and value in result.output
    assert not (tmp_path / "portal.db").exists()  # nothing was done


def test_help_and_version_work_whatever_the_environment() -> None:
    runner = CliRunner()
    env = {"PORTAL_CLAMD": "nonsense"}
    assert runner.invoke(main, ["--help"], env=env).exit_code == 0
    version = runner.invoke(main, ["--version"], env=env)
    assert version.exit_code == 0 and "portal, version" in version.output


def test_an_unknown_command_is_a_usage_error() -> None:
    assert CliRunner().invoke(main, ["frobnicate"]).exit_code == 2


def test_the_installed_command_runs() -> None:
    portal = Path(sys.executable).parent / "portal"
    completed = subprocess.run([str(portal), "--help"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0 and "init" in completed.stdout
