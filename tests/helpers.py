"""What many tests share: the HTTP client type, operator commands, metric samples."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx

from ecert.config import Settings

Client = httpx.AsyncClient


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``ECERT_*`` variables an operator's command needs to reach the test's deployment (a
    PostgreSQL URL means production mode, which wants the issuer spelt out)."""
    return {
        "ECERT_DATABASE_URL": settings.effective_database_url,
        "ECERT_REDIS_URL": settings.redis_url,
        "ECERT_DATA_DIR": settings.data_dir,
        "ECERT_PII_KEYS": settings.pii_keys,
        "ECERT_HASH_KEY": settings.hash_key,
        "ECERT_PII_ACTIVE_KEY": settings.pii_active_key,
        "ECERT_HASH_ACTIVE_KEY": settings.hash_active_key,
        "ECERT_AUDIT_KEY": settings.audit_key,
        "ECERT_ISSUER_URL": settings.issuer_url,
        "ECERT_ISSUER_AREA": settings.issuer_area,
    }


async def run_cli(settings: Settings, *args: str, stdin: str = "", ok: bool = True) -> str:
    """Run ``ecert ARGS`` as an operator would: another process, its own runtime and store.

    ``stdin`` is what the operator types or pipes (ID numbers, passwords); with ``ok=False`` the
    command must fail, and its error output is returned."""
    env = {**os.environ, **settings_env(settings)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecert.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin.encode())
    assert (process.returncode == 0) is ok, (out + err).decode()
    return (out if ok else err).decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` of an exposition whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
