"""Settings, read from ``ECERT_*`` environment variables through one cached loader."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ecert can be configured with; defaults give the embedded set-up."""

    #: SQLAlchemy async URL. Default: a SQLite file in ``data_dir``.
    database_url: str = ""
    #: ``redis://…`` for production; empty means the in-process store (single process only).
    redis_url: str = ""
    #: Where the embedded default keeps its SQLite file and generated key file.
    data_dir: str = "ecert-data"
    #: JSON key file (PII keys, hash key); generated in ``data_dir`` on first run when unset.
    key_file: str = ""
    #: ``kid:base64url-32-bytes`` pairs, comma-separated; the first encrypts. Overrides key_file.
    pii_keys: str = ""
    #: base64url secret for the keyed hash of ID numbers. Overrides key_file.
    hash_key: str = ""
    #: This service's issuer URL: ``iss`` of access tokens, ``aud`` of client assertions.
    issuer_url: str = "http://localhost:8000"
    #: Audience of access tokens.
    api_audience: str = "ecert-api"
    access_token_ttl_s: int = 600
    person_token_ttl_s: int = 300
    #: Accepted clock difference for every JWT check, in seconds (RFC 8725 asks for small).
    leeway_s: int = 5
    #: Maximum lifetime a client may give its own assertion.
    max_assertion_ttl_s: int = 300
    #: QR token lifetime (spec: 60–120 s).
    qr_ttl_s: int = 60
    #: Issuing area of this deployment (``iss`` of QR codes).
    issuer_area: str = "370102"
    #: Rotate QR and feed signing keys automatically after this many days (0: only by hand).
    key_rotate_days: int = 30
    #: How long a worker may keep using its cached key ring before it reloads the key table.
    key_refresh_s: int = 30
    #: How often a worker reloads the key table when the store cannot tell it the key ring's
    #: version (store down, or no version published yet); with the store up a revocation
    #: reaches every worker on its next request.
    key_refresh_fallback_s: float = 2.0
    #: Working days after a provisional card loss report before the card is restored (default).
    card_lapse_workdays: int = 2
    #: Per-area overrides, ``area:days`` comma-separated, e.g. ``370102:2,110105:3``.
    card_lapse_by_area: str = ""
    #: Extra holiday/workday years for the working-day calendar (JSON; see ecert/cards/).
    workday_file: str = ""
    #: Settlement token (ec_token) lifetime.
    ec_token_ttl_s: int = 1800
    #: Largest accepted request body.
    max_body_bytes: int = 1_048_576
    #: Timeout for every Redis call, so a hung Redis cannot hang a request.
    redis_timeout_s: float = 0.25
    #: Requests per minute per principal before 429.
    rate_limit_per_minute: int = 600
    #: Demo only: mount ``POST /v1/demo/person-token`` (set by ``ecert demo``; never in production).
    demo_signin: bool = False
    log_level: str = "INFO"
    #: Log as JSON lines (production) or as readable console lines.
    log_json: bool = True
    db_pool_size: int = 10
    #: Test each pooled PostgreSQL connection before use. Off by default: asyncpg's ping is three
    #: round trips (BEGIN, ``;``, ROLLBACK) on every checkout, more than a typical request's own
    #: queries; without it a dropped connection fails one request and SQLAlchemy then discards
    #: every connection of the pool older than the failure.
    db_pre_ping: bool = False
    #: Replace pooled connections older than this (seconds), ahead of server/proxy idle cut-offs.
    db_pool_recycle_s: int = 1800
    db_echo: bool = False

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{Path(self.data_dir).resolve() / 'ecert.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def settings_from_env(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``ECERT_*`` variables (and explicit overrides, which win)."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        value = env.get(f"ECERT_{field.name.upper()}")
        if value is not None:
            raw[field.name] = value
    raw.update(overrides)
    # strict=False lets msgspec turn "5" into 5 and "true" into True, with clear errors otherwise.
    return msgspec.convert(raw, Settings, strict=False)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return settings_from_env()
