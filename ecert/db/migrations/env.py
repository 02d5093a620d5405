"""Alembic environment: runs migrations over the async engine named in the Alembic config."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from ecert.db.migrate import autogenerate_options
from ecert.db.models import Base

target_metadata = Base.metadata
#: Advisory lock id held by every migration run on PostgreSQL ("ecert" in ASCII).
MIGRATION_LOCK = 0x6563657274


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        **autogenerate_options(connection),
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two deployments upgrading at once: the second waits here, then reads the version
            # the first committed and has nothing left to do (no "relation already exists").
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_run_async(context.config.get_main_option("sqlalchemy.url") or ""))


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `ecert db upgrade`")
run()
