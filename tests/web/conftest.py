"""The page tests' server: a real uvicorn on loopback with the demo seeded, and Chromium."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvicorn

from ecert.app import create_app
from ecert.config import Settings, settings_from_env
from ecert.db.migrate import upgrade
from ecert.demo import seed_demo
from ecert.server.runtime import build_runtime
from tests.servers import _wait_port, free_port

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is needed for the page tests in CI (apt-get install chromium)")
        pytest.skip("chromium not installed; CI=true makes this a failure")
    return path


async def _seed(settings: Settings) -> dict[str, Any]:
    runtime = build_runtime(settings)
    try:
        return await seed_demo(runtime, people=5)
    finally:
        await runtime.engine.dispose()
        await runtime.store.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    settings = settings_from_env(
        {},
        data_dir=str(tmp_path / "data"),
        pii_keys=f"w1:{key}",
        hash_key=key + "x",
        demo_signin=True,
        log_json=False,
        log_level="WARNING",
    )
    # Below the 60 s floor on purpose (pages must refresh the code): bypasses the env check.
    settings = msgspec.structs.replace(settings, qr_ttl_s=12)
    upgrade(settings.effective_database_url)
    credentials = asyncio.run(_seed(settings))
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    _wait_port(port)
    try:
        yield f"http://127.0.0.1:{port}", credentials
    finally:
        instance.should_exit = True
        thread.join(10)
