"""The per-app runtime: settings and the long-lived objects built from them by ``create_app``."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ecert.config import Settings
from ecert.db.engine import make_engine
from ecert.db.held import HeldConnection
from ecert.db.replica import ReadReplica
from ecert.ledger import PolicyCache
from ecert.security.auditbatch import AuditBatches
from ecert.security.auditchain import derive_key, session_info
from ecert.security.keys import KeyRing
from ecert.security.pii import PiiCipher, load_cipher
from ecert.security.tokens import VerifiedTokens
from ecert.store import Store, make_store


@dataclass
class Runtime:
    """Held in ``app.state.runtime``; reached by handlers through the ``runtime`` dependency."""

    settings: Settings
    cipher: PiiCipher
    keys: KeyRing
    store: Store
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    #: The group writers' sessions (``make_engine(group=True)``); on SQLite ``sessions`` itself.
    group_sessions: async_sessionmaker[AsyncSession]
    #: Where the person's lookups may read (``ECERT_DATABASE_READ_URL``); None: the primary.
    replica: ReadReplica | None = None
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Access tokens this worker has checked (ecert.security.tokens.VerifiedTokens).
    access_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)
    #: Policies parsed by this worker, checked against their row version (settle's load).
    policies: PolicyCache = field(default_factory=PolicyCache)
    #: The group writers' engine; on SQLite none (the writers use ``sessions``).
    group_engine: AsyncEngine | None = None
    #: Group commit of the reads' audit rows (ecert.security.auditbatch).
    audit_batches: AuditBatches = field(init=False)
    #: A domain's own per-worker objects, by name, which this plumbing does not know (online
    #: verify's group spend: ecert.verify.batches).
    worker_state: dict[str, object] = field(default_factory=dict)
    _held: list[HeldConnection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.audit_batches = AuditBatches(self.group_sessions, self.group_connection())

    def group_connection(self) -> HeldConnection | None:
        """A connection of the group writers' pool for one writer to keep (``ecert.db.held``),
        closed with the runtime; None on SQLite."""
        if self.group_engine is None:
            return None
        held = HeldConnection(self.group_engine, self.settings.db_pool_recycle_s)
        self._held.append(held)
        return held

    async def close(self) -> None:
        await self.store.close()
        for held in self._held:
            # Shutting down: a connection that died meanwhile must not keep the rest open.
            with contextlib.suppress(Exception):
                await held.close()
        await self.engine.dispose()
        if self.group_engine is not None:
            await self.group_engine.dispose()
        if self.replica is not None:
            await self.replica.engine.dispose()

    async def refresh_keys(self) -> None:
        async with self.sessions() as session:
            await self.keys.refresh(session)

    async def current_keys(self) -> KeyRing:
        """The key ring, reloaded first when a key changed elsewhere (see ``KeyRing.due``)."""
        loaded = self.keys.loaded_at
        if await self.keys.due(self.store):
            # Requests that meet a new version together share one reload.
            async with self._reloading:
                if self.keys.loaded_at == loaded:
                    await self.refresh_keys()
        return self.keys


def build_runtime(settings: Settings) -> Runtime:
    """Build the long-lived objects; used by ``create_app`` and by the CLI."""
    engine = make_engine(settings)
    cipher = load_cipher(settings)
    info = session_info(derive_key(settings, cipher))
    group = None if settings.is_sqlite else make_engine(settings, group=True)
    sessions = async_sessionmaker(engine, expire_on_commit=False, info=info)
    return Runtime(
        settings=settings,
        cipher=cipher,
        keys=KeyRing(
            cipher,
            refresh_every_s=settings.key_refresh_s,
            fallback_refresh_s=settings.key_refresh_fallback_s,
        ),
        store=make_store(settings.redis_url, settings.redis_timeout_s, settings.redis_breaker_s),
        engine=engine,
        sessions=sessions,
        group_sessions=(
            sessions
            if group is None
            else async_sessionmaker(group, expire_on_commit=False, info=info)
        ),
        group_engine=group,
        replica=_replica(settings, engine),
    )


def _replica(settings: Settings, primary: AsyncEngine) -> ReadReplica | None:
    if not settings.database_read_url:
        return None
    return ReadReplica(
        primary,
        # A replica that does not answer must not hold a lookup for asyncpg's minute.
        make_engine(settings, settings.database_read_url, connect_timeout_s=2.0),
        max_lag_s=settings.database_read_max_lag_s,
        check_s=settings.database_read_check_s,
    )
