"""The models and the migrations agree, and ``ecert db revision`` writes the next numbered file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from ecert.cli.main import main
from ecert.config import get_settings
from ecert.db import migrate
from tests.fixtures.database import Backend


async def test_models_and_migrations_agree(backend: Backend) -> None:
    """After ``upgrade head`` autogenerate finds nothing to write: no model change lacks its
    migration, and no migration left the schema somewhere the models are not."""
    engine = create_async_engine(backend.settings.effective_database_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            drift = await connection.run_sync(migrate.model_drift)
    finally:
        await engine.dispose()
    assert drift == []


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_db_revision_writes_the_next_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into a copy of the migrations, so the package is untouched; formatted, and with nothing
    to add it has no operation."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, copy)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", copy)
    monkeypatch.setenv("ECERT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ECERT_LOG_JSON", "false")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    expected = migrate.next_revision_id()
    result = runner.invoke(main, ["db", "revision", "-m", "nothing new"])
    assert result.exit_code == 0, result.output
    written = Path(result.output.strip().splitlines()[-1])
    assert written.parent == copy / "versions"
    assert written.name == f"{expected}_nothing_new.py"
    text = written.read_text()
    assert f'down_revision: str | None = "{int(expected) - 1:04d}"' in text
    assert "op." not in text  # nothing to add: no operation in either direction
