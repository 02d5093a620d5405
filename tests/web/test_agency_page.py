"""The agency console in headless Chromium at 1366×768: a clerk signs in, finds a person by ID
number, takes a hotline loss report, sees the card restored once the clock passes the deadline,
reads the audit trail naming them, and is refused key rotation (page and API)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from ecert.cards import services as cards
from ecert.clock import utcnow
from ecert.demo import demo_person
from ecert.identity import make_id_number
from tests.web.conftest import CHROMIUM_FLAGS, chromium

DOCS = Path(__file__).parents[2] / "docs"

pytestmark = pytest.mark.browser


def _shots(tmp_path: Path) -> Path:
    """Screenshots go to docs/ when ECERT_DOCS_SCREENSHOTS=1 (to refresh docs/agency.md)."""
    return DOCS if os.environ.get("ECERT_DOCS_SCREENSHOTS") == "1" else tmp_path


def _console(browser: Any, base: str, member: dict[str, str]) -> Any:
    """A 1366×768 counter screen signed in as ``member``."""
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{base}/agency/")
    page.fill("#login", member["login"])
    page.fill("#password", member["password"])
    page.click("#signin-button")
    return page


def test_clerk_hotline_report_lapse_and_audit(
    server: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, credentials = server
    clerk = credentials["staff"]["clerk"]
    person = demo_person(0)
    shots = _shots(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = _console(browser, base, clerk)
        expect(page.locator("#console")).to_be_visible(timeout=10_000)
        expect(page.locator("#who")).to_contain_text("柜员")

        page.fill("#id-number", person["id_number"])
        page.click("#search-button")
        expect(page.locator("#person")).to_be_visible(timeout=10_000)
        # Masked once found: the full number is neither in the field nor anywhere on the page.
        assert page.input_value("#id-number") == ""
        assert person["id_number"] not in page.content()
        expect(page.locator("#person-summary")).to_contain_text("*")
        expect(page.locator("#enrolments")).to_contain_text("职工基本医疗保险 310")
        expect(page.locator("#card-status")).to_contain_text("正常")

        page.click("#report-button")
        expect(page.locator("#card-status")).to_contain_text("临时挂失", timeout=10_000)
        expect(page.locator("#card-restores")).to_contain_text("自动解挂")
        page.screenshot(path=str(shots / "agency-report.png"))

        # Past the deadline (N working days): the server, in this process, reads a later clock.
        later = utcnow() + dt.timedelta(days=10)
        monkeypatch.setattr(cards, "utcnow", lambda: later)
        page.evaluate("loadCard()")
        expect(page.locator("#card-status")).to_contain_text("正常", timeout=10_000)
        expect(page.locator("#card-history")).to_contain_text("到期自动解挂")

        page.evaluate("loadAudit()")
        expect(page.locator("#audit-verdict")).to_contain_text("校验通过", timeout=10_000)
        expect(page.locator("#audit-rows")).to_contain_text("演示柜员")
        expect(page.locator("#audit-rows")).to_contain_text("card.report")
        page.screenshot(path=str(shots / "agency-audit.png"))

        # A clerk cannot rotate keys: refused on the page and by the API.
        page.click("#keys-button")
        expect(page.locator("#keys-error")).to_contain_text("403", timeout=10_000)
        status = page.evaluate(
            """() => fetch("/v1/agency/keys/rotate", {method: "POST",
                headers: {"X-ECert-CSRF": "1", "Content-Type": "application/json"},
                body: JSON.stringify({purpose: "qr"})}).then((r) => r.status)"""
        )
        assert status == 403
        page.locator("#keys-error").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "agency-keys-refused.png"))

        # The day's reconciliation of the demo hospital (nothing settled yet today).
        page.fill("#recon-code", "H37010200001")
        page.click("#recon-button")
        expect(page.locator("#recon")).to_contain_text("0 笔", timeout=10_000)
        browser.close()


def test_operator_imports_with_progress_and_rejects(
    server: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, credentials = server
    operator = credentials["staff"]["operator"]
    good = make_id_number("370102", dt.date(1990, 3, 4), 321)
    upload = tmp_path / "persons.csv"
    upload.write_text(
        f"id_number,name,area,category\n{good},周十,370102,employee\n12345,坏行,370102,employee\n",
        encoding="utf-8",
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = _console(browser, base, operator)
        expect(page.locator("#who")).to_contain_text("系统管理员", timeout=10_000)
        page.select_option("#import-kind", "persons")
        page.set_input_files("#import-file", str(upload))
        page.click("#import-button")
        expect(page.locator("#import-result")).to_contain_text(
            "成功 1 行，拒绝 1 行", timeout=10_000
        )
        expect(page.locator("#import-rejects")).to_contain_text("第 3 行")
        assert page.get_attribute("#import-progress", "value") == "100"
        # The operator is not at the counter: the person search is refused.
        page.fill("#id-number", good)
        page.click("#search-button")
        expect(page.locator("#search-error")).to_contain_text("403")
        page.screenshot(path=str(_shots(tmp_path) / "agency-import.png"))
        browser.close()
