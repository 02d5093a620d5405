"""Two provinces in one test: A (Shandong, 370102) insures, B (Guangdong, 440106) treats.

Each has its own database (a second SQLite file; a second PostgreSQL database on the session's
server and another Redis database number), keys and issuing area; they are registered at each
other as ``province`` clients and talk over httpx ASGI transports (``test_serve.py`` runs two
real ``ecert serve`` processes instead).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ecert.app import create_app
from ecert.config import Settings
from ecert.db.migrate import upgrade
from ecert.federation.routing import Federation
from ecert.server.runtime import Runtime, build_runtime
from tests.factories import add_client
from tests.fixtures.app import clean, open_client
from tests.fixtures.database import Backend

AREA_A, AREA_B = "370102", "440106"
URL_A, URL_B = "http://province-a", "http://province-b"


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


async def _create_database(url: str, name: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not found:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def province_b_base(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Province B's own database, keys and area (migrated once a session)."""
    overrides: dict[str, Any] = {
        "data_dir": str(tmp_path_factory.mktemp(f"province-b-{backend.name}")),
        "pii_keys": f"b1:{_key()}",
        "hash_key": _key(),
        "issuer_area": AREA_B,
        "issuer_url": URL_B,
    }
    if backend.name == "real":
        base = backend.settings.database_url.rsplit("/", 1)[0]
        asyncio.run(_create_database(backend.settings.database_url, "ecert_b"))
        overrides["database_url"] = f"{base}/ecert_b"
        overrides["redis_url"] = backend.settings.redis_url.rsplit("/", 1)[0] + "/1"
    settings = msgspec.structs.replace(backend.settings, **overrides)
    upgrade(settings.effective_database_url)
    return settings


@pytest.fixture
def province_a_base(backend: Backend) -> Settings:
    return msgspec.structs.replace(backend.settings, issuer_area=AREA_A, issuer_url=URL_A)


def _keypair(folder: Path, name: str) -> str:
    """Write a P-256 private key as ``name.pem``; return the public half as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / f"{name}.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


async def federate(
    a: Settings, b: Settings, folder: Path, url_a: str = URL_A, url_b: str = URL_B
) -> tuple[Settings, Settings]:
    """Register each province at the other and write each one's federation file."""
    ids = {}
    for name, here, other, public in (
        ("a", b, a, _keypair(folder, "a")),
        ("b", a, b, _keypair(folder, "b")),
    ):
        runtime = build_runtime(here)
        try:
            ids[name], _ = await add_client(
                runtime, "province", area=other.issuer_area, public_key_pem=public
            )
        finally:
            await runtime.engine.dispose()
            await runtime.store.close()
    for name, peer_area, url, client_id in (
        ("a", b.issuer_area, url_b, ids["a"]),
        ("b", a.issuer_area, url_a, ids["b"]),
    ):
        document = {
            "key_file": f"{name}.pem",
            "timeout_s": 5,
            "provinces": {peer_area: {"url": url, "client_id": client_id}},
        }
        (folder / f"{name}.json").write_text(json.dumps(document))
    return (
        msgspec.structs.replace(a, federation_file=str(folder / "a.json")),
        msgspec.structs.replace(b, federation_file=str(folder / "b.json")),
    )


@dataclass
class Province:
    app: Litestar
    client: httpx.AsyncClient
    runtime: Runtime

    @property
    def federation(self) -> Federation:
        federation = self.app.state.federation
        assert isinstance(federation, Federation)
        return federation

    def route_to(self, transport: httpx.AsyncBaseTransport) -> None:
        """Send this province's routed calls through ``transport`` (before the first one)."""
        (peer,) = self.federation.peers.values()
        assert peer._http is None, "set the transport before the first routed call"
        peer.transport = transport


def asgi(app: Litestar) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=cast("Any", app))


@pytest.fixture
async def provinces(
    province_a_base: Settings, province_b_base: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Province, Province]]:
    """Provinces A and B, running, each routing to the other in-process."""
    settings_a, settings_b = await federate(province_a_base, province_b_base, tmp_path)
    app_a, app_b = create_app(settings_a), create_app(settings_b)
    a_side, b_side = app_a.state.federation, app_b.state.federation
    a_side.peers[AREA_B].transport = asgi(app_b)
    b_side.peers[AREA_A].transport = asgi(app_a)
    try:
        async with open_client(app_a) as client_a, open_client(app_b) as client_b:
            yield (
                Province(app_a, client_a, app_a.state.runtime),
                Province(app_b, client_b, app_b.state.runtime),
            )
    finally:
        await clean(app_a.state.runtime, settings_a.redis_url)
        await clean(app_b.state.runtime, settings_b.redis_url)
