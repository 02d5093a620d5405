"""One registry of problem codes: every code the code can send is in it, and docs/errors.md is
generated from it."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from click.testing import CliRunner

import ecert
from ecert.cli.main import main
from ecert.errorcodes import CODES, render_markdown
from ecert.errors import EcertError

ROOT = Path(__file__).resolve().parent.parent


def _all_error_classes() -> list[type[EcertError]]:
    for module in pkgutil.walk_packages(ecert.__path__, "ecert."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    found: list[type[EcertError]] = []
    pending: list[type[EcertError]] = [EcertError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return found


def test_every_exception_code_is_registered_with_its_status() -> None:
    classes = _all_error_classes()
    assert len(classes) > 50
    for kind in classes:
        entry = CODES.get(kind.code)
        assert entry is not None, f"{kind.__module__}.{kind.__name__}: {kind.code!r} unregistered"
        assert entry.status == kind.status, f"{kind.code}: {kind.status} vs {entry.status}"


def test_every_code_literal_in_the_source_is_registered() -> None:
    """Codes written out where problems are built (``code="…"``, ``code = "…"``, the status
    table of ecert.server.problems)."""
    literal = re.compile(r"""\bcode\s*=\s*["']([a-z_]+)["']""")
    table = re.compile(r"""^\s*\d{3}:\s*["']([a-z_]+)["'],""", re.MULTILINE)
    seen: set[str] = set()
    for path in (ROOT / "ecert").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        seen |= set(literal.findall(text))
        if path.name == "problems.py":
            seen |= set(table.findall(text))
    assert {"internal_error", "validation_failed", "method_not_allowed"} <= seen
    assert sorted(seen - set(CODES)) == []


def test_every_entry_is_complete() -> None:
    for code, entry in CODES.items():
        assert code == entry.code
        assert re.fullmatch(r"[a-z][a-z_]*", code)
        assert 400 <= entry.status < 600
        assert entry.title
        assert entry.meaning.endswith(".")


def test_the_committed_errors_doc_is_current() -> None:
    committed = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert committed == render_markdown(), "run `ecert errors-doc -o docs/errors.md`"
    printed = CliRunner().invoke(main, ["errors-doc"])
    assert printed.exit_code == 0
    assert printed.output == committed
