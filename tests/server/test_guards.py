"""Route guards run from ``opt`` by the app's ``before_request`` hook (``ecert.server.auth``).

What each guard refuses is proven route by route in ``tests/test_access_matrix.py``; this checks
the wiring that makes it run: a route-level ``before_request`` would replace the app's and drop
the guard, and a Litestar guard would bring back the handler copy made on every request.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from ecert.server.auth import ADMIT, admit


def _handlers(app: Litestar) -> list[HTTPRouteHandler]:
    return [
        handler
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
    ]


async def test_every_guarded_route_runs_its_guard_through_the_hook(app: Litestar) -> None:
    handlers = _handlers(app)
    guarded = [handler for handler in handlers if handler.opt.get(ADMIT) is not None]
    assert len(guarded) > 50  # every /v1 route but the token endpoint's
    for handler in guarded:
        assert handler.resolve_before_request() is admit, handler.handler_name
    assert not [handler.handler_name for handler in handlers if handler.resolve_guards()]
