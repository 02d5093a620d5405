"""Run the packaged Alembic migrations programmatically (``ecert db upgrade``, tests, demo)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ecert.db.engine import prepare_sqlite_path

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the migrations inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Upgrade the database at ``url`` (blocking; use outside a running event loop)."""
    prepare_sqlite_path(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade to ``revision`` (blocking). Contract steps drop data: see docs/upgrading.md."""
    command.downgrade(alembic_config(url), revision)


async def upgrade_engine(engine: AsyncEngine, revision: str = "heads") -> None:
    """Upgrade through an existing async engine (inside a running event loop)."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


def run_upgrade(url: str) -> None:
    """Entry point for synchronous callers such as the CLI."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        upgrade(url)
        return
    raise RuntimeError("run_upgrade called inside an event loop; use upgrade_engine")


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def script_heads() -> set[str]:
    """The head revisions of the packaged migrations (reads the migration files: blocking)."""
    return set(_scripts().get_heads())


def script_revisions() -> set[str]:
    """Every packaged revision (reads the migration files: blocking)."""
    return {script.revision for script in _scripts().walk_revisions()}


def schema_state(found: set[str], heads: set[str], known: set[str]) -> str:
    """``current``; ``ahead`` when the database carries a revision this code does not know (a
    newer release migrated first: expand-only migrations keep older code working, so a rolling
    deployment must not take the old nodes out); otherwise ``behind``."""
    if found == heads:
        return "current"
    if found - known:
        return "ahead"
    return "behind"


async def database_heads(engine: AsyncEngine) -> set[str]:
    """The revisions the database is at (empty when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    def _heads(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        return await connection.run_sync(_heads)
