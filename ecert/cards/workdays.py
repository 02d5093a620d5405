"""Working days in mainland China: public holidays and make-up workdays.

``chinesecalendar`` knows 2004 to its last release year and raises for later years; a
configuration file (packaged ``workdays.json``, or ``ECERT_WORKDAY_FILE``) adds years as they are
published. A year known to neither falls back to Monday–Friday.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import chinese_calendar

from ecert.clock import BUSINESS_TZ


class WorkdayCalendar:
    def __init__(self, years: dict[str, dict[str, list[str]]]) -> None:
        self._overrides: dict[dt.date, bool] = {}
        self._configured: set[int] = set()
        for year, spec in years.items():
            self._configured.add(int(year))
            for day in spec.get("holidays", []):
                self._overrides[dt.date.fromisoformat(day)] = False
            for day in spec.get("workdays", []):
                self._overrides[dt.date.fromisoformat(day)] = True

    def is_workday(self, day: dt.date) -> bool:
        if day in self._overrides:
            return self._overrides[day]
        if day.year in self._configured:
            return day.weekday() < 5
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
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


@lru_cache(maxsize=4)
def calendar(path: str = "") -> WorkdayCalendar:
    """The calendar from the packaged file, or from ``path`` when given."""
    text = (
        Path(path).read_text("utf-8")
        if path
        else files("ecert.cards").joinpath("workdays.json").read_text("utf-8")
    )
    return WorkdayCalendar(json.loads(text).get("years", {}))
