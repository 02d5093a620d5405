"""The client queries. Plain async functions taking the caller's session; none commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Client, Institution


async def client_by_id(
    session: AsyncSession, client_id: str, *, for_update: bool = False
) -> Client | None:
    query = select(Client).where(Client.client_id == client_id)
    client: Client | None = await session.scalar(query.with_for_update() if for_update else query)
    return client


async def active_client(session: AsyncSession, client_id: str) -> Client | None:
    client: Client | None = await session.scalar(
        select(Client).where(Client.client_id == client_id, Client.active.is_(True))
    )
    return client


async def client_by_name(session: AsyncSession, name: str) -> Client | None:
    """A client by its display name (names are not unique: the demo's own are)."""
    client: Client | None = await session.scalar(select(Client).where(Client.name == name).limit(1))
    return client


async def all_clients(session: AsyncSession) -> Sequence[Client]:
    """Oldest first."""
    return (await session.scalars(select(Client).order_by(Client.created_at))).all()


async def institution_by_code(session: AsyncSession, code: str) -> Institution | None:
    institution: Institution | None = await session.scalar(
        select(Institution).where(Institution.code == code)
    )
    return institution
