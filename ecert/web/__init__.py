"""Pages served by ecert: ``/app/`` for an insured person, ``/scanner/`` for a clinic,
``/agency/`` for the agency's counter staff."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).parent / "static"


def static_routers() -> list[Router]:
    """The pages and their shared assets (plain HTML, CSS and JS; no build step)."""
    return [
        create_static_files_router("/app", [STATIC / "app"], html_mode=True, name="app"),
        create_static_files_router(
            "/scanner", [STATIC / "scanner"], html_mode=True, name="scanner"
        ),
        create_static_files_router("/agency", [STATIC / "agency"], html_mode=True, name="agency"),
        create_static_files_router("/web", [STATIC / "common"], name="web"),
    ]
