"""End to end in headless Chromium: sign in on /app/, watch the code rotate, scan it from an image
on /scanner/, settle, and see the balance change on the person's page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import CHROMIUM_FLAGS, chromium

DOCS = Path(__file__).parents[2] / "docs"

pytestmark = pytest.mark.browser


def test_person_and_clinic_pages(server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, credentials = server
    hospital = credentials["clients"]["hospital"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        person = browser.new_page()
        person.goto(f"{base}/app/")
        person.click("#signin-button")
        expect(person.locator("#qr svg")).to_be_visible(timeout=15_000)
        first = person.get_attribute("#qr", "data-qr")
        assert first is not None
        assert first.startswith("EC1:/")
        expect(person.locator("#balance")).not_to_have_text("–")
        balance_before = person.inner_text("#balance")
        # As an insured person reads it: names before codes, words for statuses, months.
        expect(person.locator("#enrolments")).to_contain_text("职工基本医疗保险 310 · 正常参保")
        expect(person.locator("#transactions")).to_contain_text("月度划入")
        expect(person.locator("#transactions")).to_contain_text("年")
        expect(person.locator("#chart")).to_contain_text("月")
        expect(person.locator("#chart-note")).to_contain_text("划入个人账户")
        expect(person.locator("#benefits")).to_contain_text("%")
        expect(person.locator("#benefits")).to_contain_text("元")
        expect(person.locator("#ecert-status")).to_have_text("正常")
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
        expect(person.locator("#transactions")).to_contain_text("结算支付")
        if os.environ.get("ECERT_DOCS_SCREENSHOTS") == "1":  # docs/agency.md shows it
            person.set_viewport_size({"width": 420, "height": 1600})
            person.screenshot(path=str(DOCS / "agency-person-page.png"), full_page=True)
        browser.close()
