"""Run the packaged Alembic migrations programmatically (``ecert db upgrade``, tests, demo)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from advanced_alchemy.types import GUID
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import NUMERIC, Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

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

    def _heads(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        return await connection.run_sync(_heads)


def compare_type(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool | None:
    """Autogenerate's type comparison, minus one false alarm: SQLite reflects the ``BINARY(16)``
    that a UUID column is created as by its affinity, ``NUMERIC(16)``. None: alembic decides."""
    if (
        context.dialect.name == "sqlite"
        and isinstance(metadata_type, GUID)
        and isinstance(inspected_type, NUMERIC)
    ):
        return False
    return None


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """For autogenerate on PostgreSQL: leave alone what ``ecert.db.partitions`` owns there — the
    day partitions (``<table>_pYYYYMMDD``, ``<table>_default``) and the keys, indexes and NOT NULL
    partition key that the partitioned tables need — which the models, shared with SQLite's
    plain tables, do not describe. Migration ``0016`` and tests/ops/test_partitions.py keep it."""
    from ecert.db.partitions import PARTITIONED_TABLES

    if type_ == "table":
        return not (name and _PARTITION.match(name))
    table = getattr(obj, "table", None)
    return getattr(table, "name", None) not in PARTITIONED_TABLES or type_ not in (
        "index",
        "unique_constraint",
        "column",
    )


_PARTITION = re.compile(r"^(qr_uses|used_jtis|numeric_codes)_(p\d{8}|default)$")


def autogenerate_options(connection: Connection) -> dict[str, Any]:
    """The comparison options of ``env.py`` and :func:`model_drift` alike."""
    options: dict[str, Any] = {"compare_type": compare_type}
    if connection.dialect.name == "postgresql":
        options["include_object"] = include_object
    return options


def model_drift(connection: Connection) -> list[Any]:
    """What autogenerate would write for this database: empty when the models and the migrations
    it was upgraded with agree (the options ``env.py`` uses, so it sees what a revision would)."""
    from alembic.autogenerate import compare_metadata

    from ecert.db.models import Base

    context = MigrationContext.configure(connection, opts=autogenerate_options(connection))
    return list(compare_metadata(context, Base.metadata))


def next_revision_id() -> str:
    """The next number in the packaged sequence (``0013`` after ``0012``)."""
    numbers = [int(rev) for rev in script_revisions() if rev.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(url: str, message: str) -> Path:
    """Autogenerate the next numbered migration from the models' difference with the database at
    ``url`` (which must be at head), into the package's ``versions/``. Returns the new file."""
    prepare_sqlite_path(url)
    config = alembic_config(url)
    # Formatted like the rest of the tree, so `ruff format --check` passes on the new file.
    config.set_section_option("post_write_hooks", "hooks", "ruff")
    config.set_section_option("post_write_hooks", "ruff.type", "module")
    config.set_section_option("post_write_hooks", "ruff.module", "ruff")
    config.set_section_option("post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME")
    script = command.revision(config, message=message, autogenerate=True, rev_id=next_revision_id())
    if script is None or isinstance(script, list):  # one head, one script: never a list here
        raise RuntimeError("alembic wrote no single revision")
    return Path(script.path)
