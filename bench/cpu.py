"""CPU a request, by process: what a figure costs each of ecert's workers, PostgreSQL, Redis and
wrk, read from ``/proc`` around its wrk run.

Requests a second move with whatever else the shared machine runs (the bare references by a
third within minutes); the CPU each process spent per request moves much less, so a change is
judged by this table when the req/s of two runs disagree. Linux only (``/proc``); elsewhere the
table is empty. Hand-written: psutil would read the same files, for one more dependency.
"""

from __future__ import annotations

import os
import resource
from collections import defaultdict
from pathlib import Path

from rich.table import Table

#: The processes a figure's CPU is split into (wrk is measured as this process's children).
GROUPS = ("ecert", "reference", "postgres", "redis", "wrk")
_TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, command name, CPU seconds so far)."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        found[int(entry.name)] = (int(fields[1]), name, ticks * _TICK_S)
    return found


def _under(processes: dict[int, tuple[int, str, float]], root: int) -> set[int]:
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, (parent, _, _) in processes.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def snapshot(ecert: int, reference: int) -> dict[str, float]:
    """CPU seconds so far of each group; ``ecert`` and ``reference``: their servers' pids."""
    processes = _processes()
    trees = {"ecert": _under(processes, ecert), "reference": _under(processes, reference)}
    spent: dict[str, float] = defaultdict(float)
    for pid, (_, name, seconds) in processes.items():
        group = next((g for g, tree in trees.items() if pid in tree), None)
        if group is None and name == "postgres":
            group = "postgres"
        elif group is None and name.startswith("redis-server"):
            group = "redis"
        if group is not None:
            spent[group] += seconds
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent["wrk"] = children.ru_utime + children.ru_stime
    return spent


def per_request(
    before: dict[str, float], after: dict[str, float], requests: int
) -> dict[str, float]:
    """µs of CPU a request, by group."""
    return {g: (after.get(g, 0.0) - before.get(g, 0.0)) * 1e6 / max(requests, 1) for g in GROUPS}


def table(rows: list[tuple[str, dict[str, float]]]) -> Table:
    """The figures' CPU a request, by process."""
    out = Table(title="CPU a request (µs), by process: judge a change by this when req/s wobble")
    out.add_column("figure")
    for group in GROUPS:
        out.add_column(group, justify="right")
    out.add_column("all", justify="right")
    for name, spent in rows:
        cells = [f"{spent[g]:,.0f}" for g in GROUPS]
        out.add_row(name, *cells, f"{sum(spent.values()):,.0f}")
    return out
