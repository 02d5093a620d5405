"""Typed names for the dependencies every handler may ask for (Litestar named injection)."""

from __future__ import annotations

from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.runtime import Runtime

#: The request's database session (committed by the framework on 2xx, rolled back otherwise).
DbSession = NamedDependency[AsyncSession]
#: The app's long-lived objects: settings, cipher, key ring, store, engine.
RuntimeDep = NamedDependency[Runtime]
