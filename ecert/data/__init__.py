"""Reference data shipped with the package."""

from __future__ import annotations

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
