"""Working days in mainland China: public holidays and make-up workdays.

``chinesecalendar`` knows 2004 to its last release year and raises for later years; the packaged
``workdays.json`` plus ``ECERT_WORKDAY_FILE`` (which adds to it; a year in both: the file's
entry wins) add years as the State Council publishes them. The file is re-read when it changes
(checked at most every ``RELOAD_CHECK_S``), no restart needed.

A year known to none of them still counts Monday–Friday (a deadline must be computed), but not
silently: a log line per year, the ``ecert_workday_calendar_unknown_year`` gauge, and a
``/readyz`` warning, from November on for the coming year.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import chinese_calendar
import structlog
from prometheus_client import Gauge

from ecert.clock import BUSINESS_TZ
from ecert.config import ConfigurationError

#: How often a worker looks at the file's modification time (a stat, nothing more).
RELOAD_CHECK_S = 30.0

_log = structlog.get_logger("ecert.cards")
_UNKNOWN_YEAR = Gauge(
    "ecert_workday_calendar_unknown_year",
    "1 for a year the working-day calendar must use but knows no holidays for",
    ["year"],
)
_warned: set[int] = set()

Years = dict[str, dict[str, list[str]]]


@cache
def _library_knows(year: int) -> bool:
    try:
        chinese_calendar.is_workday(dt.date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def _warn_unknown(year: int) -> None:
    _UNKNOWN_YEAR.labels(year=str(year)).set(1)
    if year not in _warned:
        _warned.add(year)
        _log.warning(
            "working-day calendar has no holidays for this year: counting Monday to Friday; "
            "add the year to ECERT_WORKDAY_FILE",
            year=year,
        )


class WorkdayCalendar:
    def __init__(self, years: Years) -> None:
        self._overrides: dict[dt.date, bool] = {}
        self._configured: set[int] = set()
        for year, spec in years.items():
            self._configured.add(int(year))
            for day in spec.get("holidays", []):
                self._overrides[dt.date.fromisoformat(day)] = False
            for day in spec.get("workdays", []):
                self._overrides[dt.date.fromisoformat(day)] = True

    def knows(self, year: int) -> bool:
        """True when the holidays of ``year`` are known (configured or in the library)."""
        return year in self._configured or _library_knows(year)

    def is_workday(self, day: dt.date) -> bool:
        if day in self._overrides:
            return self._overrides[day]
        if day.year in self._configured:
            return day.weekday() < 5
        if _library_knows(day.year):
            return bool(chinese_calendar.is_workday(day))
        _warn_unknown(day.year)
        return day.weekday() < 5

    def deadline(self, start: dt.datetime, workdays: int) -> dt.datetime:
        """End (midnight, Beijing time) of the ``workdays``-th working day after ``start``'s day."""
        day = start.astimezone(BUSINESS_TZ).date()
        counted = 0
        while counted < workdays:
            day += dt.timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), BUSINESS_TZ)
        return midnight.astimezone(dt.UTC)

    def warnings(self, today: dt.date) -> list[str]:
        """What an operator must add: this year if unknown, and from November the next one."""
        missing = [today.year] if not self.knows(today.year) else []
        if today.month >= 11 and not self.knows(today.year + 1):
            missing.append(today.year + 1)
        for year in missing:
            _warn_unknown(year)
        return [
            f"working-day calendar: no holidays known for {year}; add them to ECERT_WORKDAY_FILE"
            for year in missing
        ]


def _years(text: str, origin: str) -> Years:
    try:
        data: Any = json.loads(text)
        years: Years = data.get("years", {})
        WorkdayCalendar(years)  # validates the dates
    except (ValueError, AttributeError, TypeError) as exc:
        raise ConfigurationError(f"{origin} is not a valid working-day file: {exc}.") from None
    return years


def packaged_years() -> Years:
    text = files("ecert.cards").joinpath("workdays.json").read_text("utf-8")
    return _years(text, "the packaged workdays.json")


class _Source:
    """The packaged years plus one extra file, re-read when the file's mtime changes."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._checked = float("-inf")
        self._mtime: float | None = None
        self._calendar = self._load()

    def _stat(self) -> float:
        try:
            return os.stat(self._path).st_mtime
        except OSError:
            raise ConfigurationError(
                f"ECERT_WORKDAY_FILE {self._path} does not exist or cannot be read."
            ) from None

    def _load(self) -> WorkdayCalendar:
        years = dict(packaged_years())
        if self._path:
            self._mtime = self._stat()
            text = Path(self._path).read_text("utf-8")
            years.update(_years(text, f"ECERT_WORKDAY_FILE {self._path}"))
        self._checked = time.monotonic()
        return WorkdayCalendar(years)

    def current(self) -> WorkdayCalendar:
        now = time.monotonic()
        if self._path and now - self._checked >= RELOAD_CHECK_S:
            self._checked = now
            try:
                if self._stat() != self._mtime:
                    self._calendar = self._load()
                    _log.info("working-day file reloaded", path=self._path)
            except ConfigurationError as exc:  # a half-written edit: keep the last good calendar
                _log.error("working-day file not reloaded", path=self._path, error=str(exc))
        return self._calendar


_sources: dict[str, _Source] = {}


def calendar(path: str = "") -> WorkdayCalendar:
    """The calendar from the packaged file plus ``path`` (``ECERT_WORKDAY_FILE``) when given."""
    source = _sources.get(path)
    if source is None:
        source = _sources[path] = _Source(path)
    return source.current()
