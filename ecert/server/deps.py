"""Typed names for the dependencies every handler may ask for (Litestar named injection)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.server.runtime import Runtime

#: The request's database session (committed by the framework on 2xx, rolled back otherwise).
DbSession = NamedDependency[AsyncSession]
#: The app's long-lived objects: settings, cipher, key ring, store, engine.
RuntimeDep = NamedDependency[Runtime]
#: Any HTTP request (``request.user`` is a Principal on authenticated routes).
AnyRequest = Request[Any, Any, Any]
