"""``ecert serve``: the HTTP API under uvicorn, after a preflight of schema and keys."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import click

from ecert.cli.common import run_with_runtime
from ecert.cli.pii import check_pii_keys
from ecert.config import get_settings
from ecert.server.runtime import Runtime


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Apply migrations first (default: only on the embedded SQLite database).",
)
@click.option(
    "--timeout-keep-alive",
    type=click.IntRange(1, 3600),
    help="Idle keep-alive seconds; above the balancer's idle timeout "
    "(default: ECERT_SERVE_KEEP_ALIVE_S, 75).",
)
@click.option(
    "--timeout-graceful-shutdown",
    type=click.IntRange(1, 600),
    help="Seconds in-flight requests may take after the drain grace "
    "(default: ECERT_SERVE_GRACEFUL_SHUTDOWN_S, 20).",
)
@click.option(
    "--forwarded-allow-ips",
    help="CIDR networks of the proxies whose X-Forwarded-For is believed "
    "(sets ECERT_TRUSTED_PROXIES for the workers).",
)
def serve(
    host: str,
    port: int,
    workers: int,
    migrate: bool | None,
    timeout_keep_alive: int | None,
    timeout_graceful_shutdown: int | None,
    forwarded_allow_ips: str | None,
) -> None:
    """Run the HTTP API under uvicorn."""
    import uvicorn

    from ecert.db.migrate import upgrade

    if forwarded_allow_ips is not None:
        from ecert.server.ratelimit import parse_networks

        try:
            parse_networks(forwarded_allow_ips)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--forwarded-allow-ips") from exc
        # ecert resolves X-Forwarded-For itself (rate limits, logs); uvicorn's proxy headers stay
        # off so the peer address is not rewritten twice. Workers read it from the environment.
        os.environ["ECERT_TRUSTED_PROXIES"] = forwarded_allow_ips
        get_settings.cache_clear()
    settings = get_settings()
    if workers > 1 and not settings.redis_url:
        raise click.UsageError(
            "the in-process store is single-process only: set ECERT_REDIS_URL to run workers > 1"
        )
    if migrate or (migrate is None and settings.is_sqlite):
        upgrade(settings.effective_database_url)
    # Load the keys once here: a wrong key or an unreachable database is then one sentence
    # from this process, not a traceback from every worker's start-up.
    from sqlalchemy.exc import DBAPIError

    try:
        run_with_runtime(_preflight)
    except (OSError, DBAPIError) as exc:  # the URL is not echoed: it may carry a password
        raise click.ClickException(
            f"the database does not answer ({type(exc).__name__}); check ECERT_DATABASE_URL "
            "and run `ecert db upgrade` on a new database"
        ) from exc
    with _metrics_dir(workers):
        uvicorn.run(
            "ecert.app:served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            timeout_keep_alive=timeout_keep_alive or settings.serve_keep_alive_s,
            timeout_graceful_shutdown=timeout_graceful_shutdown
            or settings.serve_graceful_shutdown_s,
        )


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """Several workers share their metrics through files in a fresh directory, removed after.

    A worker process reads ``PROMETHEUS_MULTIPROC_DIR`` when it imports prometheus_client, so
    the variable is set before uvicorn starts them; a single worker (this process, which has
    imported it already) keeps its metrics in memory.
    """
    if workers <= 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ecert-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


async def _preflight(runtime: Runtime) -> None:
    from ecert.cards.workdays import calendar
    from ecert.security.keys import ensure_active_keys

    calendar(runtime.settings.workday_file)  # a missing or malformed ECERT_WORKDAY_FILE
    await check_pii_keys(runtime)
    async with runtime.sessions.begin() as session:
        await ensure_active_keys(session, runtime.cipher)
    await runtime.refresh_keys()
