"""Queries live in repositories: no module outside them builds a SQL statement.

The check reads the source (no database): a module "builds a query" when it imports a statement
constructor from SQLAlchemy (``select``, ``insert``, ``update``, ``delete``, ``text``, …) or
reaches one through the package (``sa.select``). Controllers never may; other modules only when
they are listed below with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ecert"

CONSTRUCTORS = frozenset(
    {"select", "insert", "update", "delete", "text", "union", "union_all", "exists", "values"}
)

#: Modules besides repositories (``repositories.py`` or a ``repositories/`` package) that may build
#: statements, and why; a module that no longer builds any must leave the list.
ALLOWED = {
    # The database layer itself: models, migrations, dialect helpers (upsert, COPY), partitions.
    "ecert/db/": "the database layer",
    # Top-level shared modules that are the repository of their table (said in their docstring).
    "ecert/persons.py": "the repository of persons",
    "ecert/suspension.py": "the repository of person_suspensions",
    # The audit chain's statements sit beside the MAC rules they follow (said in its docstring).
    "ecert/security/auditchain.py": "the repository of the audit tables",
    # Three reads in a one-off seeder of the embedded demo: they serve no request.
    "ecert/demo.py": "the demo seeder's own reads, outside any request path",
}


def _builds_queries(path: Path) -> list[str]:
    """``line: name`` of each statement constructor the module imports or reaches."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"{node.lineno}: {a.name}" for a in node.names if a.name in CONSTRUCTORS]
        elif isinstance(node, ast.Import):
            aliases |= {
                (a.asname or a.name).split(".")[0]
                for a in node.names
                if a.name.startswith("sqlalchemy")
            }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in CONSTRUCTORS
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def _modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py"))


def _repository(module: str) -> bool:
    """``repositories.py``, or any module of a ``repositories/`` package."""
    path = Path(module)
    return path.name == "repositories.py" or "repositories" in path.parts[:-1]


def _allowed(module: str) -> bool:
    return _repository(module) or any(module.startswith(prefix) for prefix in ALLOWED)


@pytest.mark.parametrize(
    "module", [m for m in _modules() if Path(m).name.endswith("controllers.py")]
)
def test_controllers_build_no_query(module: str) -> None:
    """A controller parses, calls a service and returns a schema: no statement of its own."""
    assert _builds_queries(ROOT / module) == []


def test_only_repositories_build_queries() -> None:
    """Every module that builds a statement is a repository or listed with its reason."""
    offenders = {
        module: found
        for module in _modules()
        if not _allowed(module) and (found := _builds_queries(ROOT / module))
    }
    assert offenders == {}


def test_allowed_lists_no_stale_module() -> None:
    """Each listed module (or folder) still builds a statement, so the list only shrinks: a
    module whose queries moved out must leave it."""
    stale = [
        prefix
        for prefix in ALLOWED
        if not any(
            module.startswith(prefix) and _builds_queries(ROOT / module) for module in _modules()
        )
    ]
    assert stale == []


def test_a_repositories_package_counts() -> None:
    """A domain whose repository outgrew one file splits it into a ``repositories/`` package."""
    assert _repository("ecert/settlement/repositories/booking.py")
    assert _repository("ecert/settlement/repositories.py")
    assert not _repository("ecert/settlement/services.py")


def test_the_check_sees_a_query(tmp_path: Path) -> None:
    """The scanner finds both spellings (so a green run means something)."""
    planted = tmp_path / "controllers.py"
    planted.write_text(
        "import sqlalchemy as sa\nfrom sqlalchemy import select, func\nq = sa.update(object)\n",
        encoding="utf-8",
    )
    assert _builds_queries(planted) == ["2: select", "3: sa.update"]
