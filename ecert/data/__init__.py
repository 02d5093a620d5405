"""Reference data shipped with the package."""

from __future__ import annotations

import csv
import io
import json
from importlib.resources import files
from typing import Any


def illustrative_policies(year: int | None = None) -> list[dict[str, Any]]:
    """Benefit policies for three areas (illustrative numbers), optionally moved to ``year``."""
    text = files("ecert.data").joinpath("policies-illustrative.jsonl").read_text("utf-8")
    policies = [json.loads(line) for line in text.splitlines() if line.strip()]
    if year is not None:
        for policy in policies:
            policy["year"] = year
    return policies


def illustrative_catalogue() -> list[dict[str, str]]:
    """The illustrative catalogue rows (import format; CSV cells as text, blanks dropped)."""
    text = files("ecert.data").joinpath("catalogue-illustrative.csv").read_text("utf-8")
    return [{k: v for k, v in row.items() if v} for row in csv.DictReader(io.StringIO(text))]
