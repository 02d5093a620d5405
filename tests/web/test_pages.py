"""End to end in headless Chromium: sign in on /app/, watch the code rotate, scan it from an image
on /scanner/, settle, and see the balance change on the person's page."""

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
from ecert.runtime import build_runtime
from tests.servers import _wait_port, free_port

pytestmark = pytest.mark.browser

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


def _chromium() -> str:
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


def test_person_and_clinic_pages(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, credentials = server
    hospital = credentials["clients"]["hospital"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        person = browser.new_page()
        person.goto(f"{base}/app/")
        person.click("#signin-button")
        expect(person.locator("#qr svg")).to_be_visible(timeout=15_000)
        first = person.get_attribute("#qr", "data-qr")
        assert first is not None
        assert first.startswith("EC1:/")
        expect(person.locator("#balance")).not_to_have_text("–")
        balance_before = person.inner_text("#balance")
        # The code rotates by itself before it expires (12 s codes refresh after 2 s here).
        expect(person.locator("#qr")).not_to_have_attribute("data-qr", first, timeout=15_000)
        person.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        code_image = tmp_path / "code.png"
        person.locator("#qr").screenshot(path=str(code_image))

        clinic = browser.new_page()
        clinic.goto(f"{base}/scanner/")
        clinic.fill("#client-id", hospital["client_id"])
        clinic.fill("#client-secret", hospital["client_secret"])
        clinic.click("#signin-button")
        expect(clinic.locator("#desk")).to_be_visible(timeout=10_000)
        clinic.set_input_files("#image", str(code_image))  # the injected camera image
        expect(clinic.locator("#person-box")).to_be_visible(timeout=15_000)
        assert "*" in clinic.inner_text("#person")  # masked name and ID
        clinic.click("#settle-button")
        expect(clinic.locator("#reverse-button")).to_be_visible(timeout=15_000)
        receipt = clinic.inner_text("#receipt")
        assert "105.00" in receipt  # 25.00 + 80.00
        clinic.screenshot(path=str(tmp_path / "scanner.png"), full_page=True)

        person.evaluate("loadAccount()")
        expect(person.locator("#balance")).not_to_have_text(balance_before, timeout=10_000)
        assert float(person.inner_text("#balance")) < float(balance_before)
        browser.close()
