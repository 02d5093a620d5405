"""Read CSV (header row) or JSON Lines one row at a time, with line numbers: constant memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Row = tuple[int, dict[str, Any] | str]  # (line number, row or the reason it is unreadable)


def detect(name: str) -> str:
    """``csv`` or ``jsonl`` from a file name."""
    return "csv" if name.lower().endswith(".csv") else "jsonl"


def rows(
    lines: Iterable[str], fmt: str, on_line: Callable[[str], None] | None = None
) -> Iterator[Row]:
    """Yield ``(line, row)``; blank cells become missing keys, so defaults apply."""

    def counted() -> Iterator[str]:
        for line in lines:
            if on_line is not None:
                on_line(line)
            yield line

    if fmt == "csv":
        reader = csv.DictReader(counted())
        for record in reader:
            # Extra cells without a header end up under None; they are ignored like extra columns.
            yield reader.line_num, {k: v for k, v in record.items() if k and v not in ("", None)}
        return
    for number, line in enumerate(counted(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            yield number, "the line is not valid JSON"
            continue
        yield number, value if isinstance(value, dict) else "each line must be a JSON object"
