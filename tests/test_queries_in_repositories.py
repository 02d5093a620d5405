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

#: Modules besides ``repositories.py`` that may build statements, and why.
ALLOWED = {
    # The database layer itself: models, migrations, dialect helpers (upsert, COPY), partitions.
    "ecert/db/": "the database layer",
    # Top-level shared modules that are the repository of their table (said in their docstring).
    "ecert/persons.py": "the repository of persons",
    "ecert/suspension.py": "the repository of person_suspensions",
    # Hot paths whose queries sit beside their rules; not moved yet (issue 18 item 1 follow-up).
    "ecert/issuance/services.py": "not moved yet",
    "ecert/verify/services.py": "not moved yet",
    "ecert/lookup/services.py": "not moved yet",
    "ecert/settlement/context.py": "not moved yet",
    "ecert/settlement/idempotency.py": "not moved yet",
    "ecert/oauth/status.py": "not moved yet",
    "ecert/security/keys.py": "not moved yet",
    "ecert/security/auditchain.py": "not moved yet",
    "ecert/demo.py": "not moved yet",
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


def _allowed(module: str) -> bool:
    name = Path(module).name
    return name == "repositories.py" or any(module.startswith(prefix) for prefix in ALLOWED)


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


def test_the_check_sees_a_query(tmp_path: Path) -> None:
    """The scanner finds both spellings (so a green run means something)."""
    planted = tmp_path / "controllers.py"
    planted.write_text(
        "import sqlalchemy as sa\nfrom sqlalchemy import select, func\nq = sa.update(object)\n",
        encoding="utf-8",
    )
    assert _builds_queries(planted) == ["2: select", "3: sa.update"]
