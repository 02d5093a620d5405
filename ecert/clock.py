"""Times are stored in UTC; business days (reconciliation, policy years, card lapses) are
Asia/Shanghai days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


def utcnow() -> dt.datetime:
    """Aware UTC now."""
    return dt.datetime.now(dt.UTC)


def business_date(at: dt.datetime | None = None) -> dt.date:
    """The Asia/Shanghai calendar day of ``at`` (default: now)."""
    return (at or utcnow()).astimezone(BUSINESS_TZ).date()
