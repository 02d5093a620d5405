"""Read CSV (header row) or JSON Lines one row at a time, with line numbers: constant memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Row = tuple[int, dict[str, Any] | str]  # (line number, row or the reason it is unreadable)
#: PostgreSQL text cannot hold NUL: one such value failed its whole batch of upserts.
NUL_REASON = "the line contains a NUL character"


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
        yield from _csv_rows(counted())
        return
    for number, line in enumerate(counted(), start=1):
        if not line.strip():
            continue
        if "\\u0000" in line:  # a raw NUL is already invalid JSON; its escape decodes to one
            yield number, NUL_REASON
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            yield number, "the line is not valid JSON"
            continue
        except ValueError:
            # Python refuses integers over 4,300 digits (int_max_str_digits).
            yield number, "the line has a number with too many digits"
            continue
        except RecursionError:
            yield number, "the line is nested too deeply"
            continue
        yield number, value if isinstance(value, dict) else "each line must be a JSON object"


def _csv_rows(lines: Iterator[str]) -> Iterator[Row]:
    """CSV records; a line the csv module cannot read (a cell over its 128 KiB field limit) is a
    reject, and reading goes on with the next line. The module's messages quote no cell."""
    reader = csv.DictReader(lines)
    try:
        reader.fieldnames  # noqa: B018 - reads the header row
    except csv.Error as exc:
        yield reader.reader.line_num, f"the header row is not valid CSV: {exc}"
        return
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # DictReader copies the line number only on success; the csv reader has it.
            yield reader.reader.line_num, f"the line is not valid CSV: {exc}"
            continue
        # Extra cells without a header end up under None; they are ignored like extra columns.
        row = {k: v for k, v in record.items() if k and v not in ("", None)}
        if any("\x00" in v for v in row.values() if isinstance(v, str)):
            yield reader.line_num, NUL_REASON
            continue
        yield reader.line_num, row
