"""Working days for the loss-report lapse: chinesecalendar's holidays and make-up days, Beijing
days, per-area N, and a configuration file for years the package does not know yet."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from ecert.cards import workdays
from ecert.cards.services import lapse_workdays
from ecert.cards.workdays import WorkdayCalendar, calendar
from ecert.clock import BUSINESS_TZ, business_date
from ecert.config import ConfigurationError, Settings
from tests.fixtures.app import AppFactory, open_client


def beijing(year: int, month: int, day: int, hour: int = 0) -> dt.datetime:
    """A Beijing wall-clock time as aware UTC."""
    return dt.datetime(year, month, day, hour, tzinfo=BUSINESS_TZ).astimezone(dt.UTC)


def test_2025_national_day_holiday_and_make_up_saturday() -> None:
    cal = calendar()
    # Reported Tue 30 Sep 2025: 1–8 Oct are the National Day holiday; Thu 9 and Fri 10 Oct are
    # the two working days, so the report lapses at the end of 10 Oct (Beijing time).
    assert cal.deadline(beijing(2025, 9, 30, 12), 2) == beijing(2025, 10, 11, 0)
    # Sat 11 Oct 2025 is a make-up workday: reported Fri 10 Oct, lapses at the end of Sat 11.
    assert cal.deadline(beijing(2025, 10, 10, 12), 1) == beijing(2025, 10, 12, 0)


def test_2026_spring_festival_make_up_day_then_holiday() -> None:
    cal = calendar()
    assert cal.is_workday(dt.date(2026, 2, 14))  # a Saturday, worked before the festival
    assert not cal.is_workday(dt.date(2026, 2, 16))  # a Monday of the holiday (15–23 Feb)
    # Reported Fri 13 Feb: Sat 14 is working day 1, 15–23 are off, Tue 24 is working day 2.
    assert cal.deadline(beijing(2026, 2, 13, 10), 2) == beijing(2026, 2, 25, 0)
    # 01:00 on Sat 14 in Beijing is still Fri 13 in UTC: the Beijing day counts, so 24 and 25.
    late = beijing(2026, 2, 14, 1)
    assert late.date() == dt.date(2026, 2, 13)
    assert cal.deadline(late, 2) == beijing(2026, 2, 26, 0)
    # Sat 28 Feb is the make-up day after the festival: reported Fri 27, lapses end of Sat 28.
    assert cal.deadline(beijing(2026, 2, 27, 9), 1) == beijing(2026, 3, 1, 0)


def test_configuration_adds_years_the_package_does_not_know() -> None:
    cal = WorkdayCalendar({"2031": {"holidays": ["2031-01-01"], "workdays": ["2031-01-04"]}})
    assert cal.is_workday(dt.date(2031, 1, 1)) is False  # a Wednesday, but a holiday
    assert cal.is_workday(dt.date(2031, 1, 4)) is True  # a Saturday, but a make-up day
    assert cal.is_workday(dt.date(2031, 1, 5)) is False
    assert cal.is_workday(dt.date(2031, 1, 6)) is True  # an ordinary Monday of a listed year


def test_override_file_and_unknown_years(tmp_path: Path) -> None:
    path = tmp_path / "workdays.json"
    path.write_text(json.dumps({"years": {"2030": {"holidays": ["2030-10-01", "2030-10-02"]}}}))
    cal = calendar(str(path))
    # Mon 30 Sep 2030, N = 1: Tue 1 and Wed 2 Oct are configured holidays, Thu 3 Oct counts.
    assert cal.deadline(beijing(2030, 9, 30, 9), 1) == beijing(2030, 10, 4, 0)
    # A year in neither the package nor the file: Monday to Friday, no error.
    assert calendar().deadline(beijing(2040, 1, 6, 9), 1) == beijing(2040, 1, 10, 0)


@pytest.mark.parametrize(
    ("by_area", "area", "expected"),
    [("", "370102", 2), ("370102:2, 110105:3", "110105", 3), ("110105:3", "310115", 2)],
)
def test_lapse_days_per_area(by_area: str, area: str, expected: int) -> None:
    assert lapse_workdays(Settings(card_lapse_by_area=by_area), area) == expected


def test_ops_unknown_year_is_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    cal = calendar()
    year = 2099  # beyond chinesecalendar and the packaged file
    assert not cal.knows(year)
    assert cal.is_workday(dt.date(year, 10, 1))  # Thursday: counted, for want of data…
    metrics = generate_latest().decode()
    assert f'ecert_workday_calendar_unknown_year{{year="{year}"}} 1.0' in metrics  # …but visible


def test_ops_warns_from_november_when_next_year_is_unknown(tmp_path: Path) -> None:
    cal = calendar()
    assert not cal.knows(2027)  # chinesecalendar 1.11 stops at 2026, the packaged file is empty
    assert cal.warnings(dt.date(2026, 10, 31)) == []
    assert any("2027" in w for w in cal.warnings(dt.date(2026, 11, 1)))
    path = tmp_path / "workdays.json"
    path.write_text(json.dumps({"years": {"2027": {"holidays": ["2027-10-01"]}}}))
    extended = calendar(str(path))
    assert extended.warnings(dt.date(2026, 11, 1)) == []
    assert not extended.is_workday(dt.date(2027, 10, 1))


def test_ops_workday_file_adds_to_the_packaged_years(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = {"2029": {"holidays": ["2029-10-01"]}}
    monkeypatch.setattr(workdays, "packaged_years", lambda: packaged)
    path = tmp_path / "extra.json"
    path.write_text(json.dumps({"years": {"2030": {"holidays": ["2030-10-01"]}}}))
    cal = calendar(str(path))
    assert not cal.is_workday(dt.date(2029, 10, 1))  # packaged year kept (was: replaced)
    assert not cal.is_workday(dt.date(2030, 10, 1))  # the file's year added


def test_ops_workday_file_reloads_without_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workdays, "RELOAD_CHECK_S", 0.0)
    path = tmp_path / "reload.json"
    path.write_text(json.dumps({"years": {}}))
    assert calendar(str(path)).is_workday(dt.date(2031, 10, 1))  # a Wednesday, unknown year
    path.write_text(json.dumps({"years": {"2031": {"holidays": ["2031-10-01"]}}}))
    os.utime(path, (time.time() + 5, time.time() + 5))  # a visible mtime change
    assert not calendar(str(path)).is_workday(dt.date(2031, 10, 1))
    path.write_text("{not json")  # a half-written edit keeps the last good calendar
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert not calendar(str(path)).is_workday(dt.date(2031, 10, 1))


def test_ops_missing_workday_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ECERT_WORKDAY_FILE"):
        calendar(str(tmp_path / "nowhere.json"))


async def test_ops_readyz_carries_the_calendar_warning(
    make_app: AppFactory, tmp_path: Path
) -> None:
    today = business_date()
    path = tmp_path / "covered.json"
    covered: dict[str, dict[str, list[str]]] = {
        str(y): {"holidays": []} for y in (today.year, today.year + 1)
    }
    path.write_text(json.dumps({"years": covered}))
    async with open_client(make_app(workday_file=str(path))) as client:
        ready = (await client.get("/readyz")).json()
    assert ready["warnings"] == []
    expected = calendar().warnings(today)  # what the packaged data alone lacks today
    async with open_client(make_app()) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["warnings"] == expected
