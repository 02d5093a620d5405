"""Test fixtures: every database test runs twice, on the embedded set-up and on real servers.

``embedded``: SQLite file + in-process store. ``real``: throwaway PostgreSQL 15 and Redis on
loopback, started here. A test about PostgreSQL itself is marked ``postgres`` and is not
collected for the embedded backend (deselected, never skipped). With ``CI=true`` any skip is a
failure: a missing server or browser fails the run. ``ECERT_TEST_BACKENDS=embedded`` (or
``real``) narrows a local run.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

# One fixtures module a real part (database, store, app); token helpers are in fixtures/auth.py.
pytest_plugins = ["tests.fixtures.database", "tests.fixtures.app"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``postgres`` is about PostgreSQL itself: it is not collected for the
    embedded backend at all (deselected, not skipped), so a skip always means something missing."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_embedded = callspec is not None and callspec.params.get("backend") == "embedded"
        (drop if on_embedded and item.get_closest_marker("postgres") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI a skipped test is a failed one: every test must run there (servers, browser)."""
    from tests.fixtures.database import in_ci  # after pytest_plugins registered it

    report: pytest.TestReport = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"
    return report
