"""The card queries. Plain async functions taking the caller's session; none commits."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Card, CardEvent, CardStatus


async def card_in_use(session: AsyncSession, person_id: uuid.UUID) -> Card | None:
    """The person's newest card that has not been replaced."""
    card: Card | None = await session.scalar(
        select(Card)
        .where(Card.person_id == person_id, Card.status != CardStatus.REPLACED)
        .order_by(Card.created_at.desc())
        .limit(1)
    )
    return card


async def card_by_number(session: AsyncSession, number: str) -> Card | None:
    card: Card | None = await session.scalar(select(Card).where(Card.number == number))
    return card


async def history(
    session: AsyncSession, person_id: uuid.UUID, limit: int
) -> Sequence[Row[tuple[CardEvent, str]]]:
    """Events of every card the person has held, newest first, with the card's number."""
    return (
        await session.execute(
            select(CardEvent, Card.number)
            .join(Card, Card.id == CardEvent.card_id)
            .where(Card.person_id == person_id)
            .order_by(CardEvent.id.desc())
            .limit(limit)
        )
    ).all()


async def reports_due(session: AsyncSession, now: dt.datetime) -> Sequence[Card]:
    """Provisional reports whose working-day window has passed by ``now``."""
    return (
        await session.scalars(
            select(Card).where(
                Card.status == CardStatus.PROVISIONALLY_REPORTED, Card.lapse_at <= now
            )
        )
    ).all()
