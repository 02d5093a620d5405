"""Settings, read from ``ECERT_*`` environment variables through one cached loader.

Loading fails closed: an unknown ``ECERT_*`` name, a value out of range, or a production set-up
missing its database, Redis, keys or issuer is a :class:`ConfigurationError` with one plain
sentence, which the CLI prints before exiting with status 2.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import msgspec
from msgspec import Meta

#: ``ECERT_*`` names that are not settings but are read elsewhere (the test suite).
_NOT_SETTINGS = frozenset({"ECERT_TEST_BACKENDS"})

Seconds = Annotated[int, Meta(ge=1, le=86_400)]
Positive = Annotated[int, Meta(ge=1)]
Millis = Annotated[int, Meta(ge=0, le=600_000)]
#: A retention period of ``ecert purge``: a minute to ten years, in seconds.
Retention = Annotated[int, Meta(ge=60, le=3650 * 86_400)]
DAY_S = 86_400
#: Added to every derived retention floor: clocks of nodes differ, requests are in flight.
RETENTION_MARGIN_S = 300


class ConfigurationError(Exception):
    """The settings are unusable; the message is one sentence naming what to change."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ecert can be configured with; defaults give the embedded set-up."""

    #: ``embedded`` (SQLite, in-process store, generated keys), ``production`` (implied by a
    #: PostgreSQL URL: database, Redis, keys and issuer must be given), or ``development``
    #: (a PostgreSQL URL without the production demands, e.g. benchmarks; keys still explicit).
    env: Literal["embedded", "development", "production"] = "embedded"

    #: SQLAlchemy async URL. Default: a SQLite file in ``data_dir``.
    database_url: str = ""
    #: A streaming replica of the PostgreSQL primary (asyncpg URL) for the person's lookups;
    #: empty: everything reads the primary. Money, single use and read-after-write never use it.
    database_read_url: str = ""
    #: The replica serves lookups only while it is at most this far behind the primary.
    database_read_max_lag_s: Annotated[float, Meta(ge=0.1, le=3600)] = 5.0
    #: How long a worker trusts its last check of the replica's lag (one check per interval).
    database_read_check_s: Annotated[float, Meta(ge=0.1, le=300)] = 1.0
    #: ``redis://…`` (or ``rediss://``) for production, or a Redis Cluster as
    #: ``redis+cluster://[user:password@]host:port,host:port,…`` (``rediss+cluster://`` for TLS);
    #: empty means the in-process store (single process only).
    redis_url: str = ""
    #: Where the embedded default keeps its SQLite file and generated key file.
    data_dir: str = "ecert-data"
    #: JSON key file (PII keys, hash key); generated in ``data_dir`` on first run when unset.
    key_file: str = ""
    #: ``kid:base64url-32-bytes`` pairs, comma-separated. Overrides key_file.
    pii_keys: str = ""
    #: The PII key id that encrypts; required when there are several keys (the others decrypt
    #: only: a new key is deployed that way everywhere before it is made active).
    pii_active_key: str = ""
    #: base64url secret for the keyed hash of ID numbers, or ``hid:base64url`` pairs during a
    #: hash key rotation. Overrides key_file.
    hash_key: str = ""
    #: The hash key id that hashes new rows; required when there are several (the others are
    #: still looked up until ``ecert pii rehash`` moved every row).
    hash_active_key: str = ""
    #: base64url secret (≥ 32 bytes) that MACs the audit chain. Default: derived from the hash key.
    audit_key: str = ""
    #: This service's issuer URL: ``iss`` of access tokens, ``aud`` of client assertions.
    issuer_url: str = "http://localhost:8000"
    #: Audience of access tokens.
    api_audience: str = "ecert-api"
    access_token_ttl_s: Annotated[int, Meta(ge=60, le=86_400)] = 600
    person_token_ttl_s: Annotated[int, Meta(ge=60, le=86_400)] = 300
    #: Accepted clock difference for every JWT check, in seconds (RFC 8725 asks for small).
    leeway_s: Annotated[int, Meta(ge=0, le=60)] = 5
    #: Maximum lifetime (exp − iat) of a person assertion (JWT-bearer grant; spec §5: 5 min).
    max_assertion_ttl_s: Annotated[int, Meta(ge=10, le=3600)] = 300
    #: Maximum lifetime of a private_key_jwt client assertion: OAuth libraries sign them for an
    #: hour by default (authlib); each jti still works once, recorded until its exp.
    max_client_assertion_ttl_s: Annotated[int, Meta(ge=10, le=3600)] = 3600
    #: QR token lifetime (spec: 60–120 s).
    qr_ttl_s: Annotated[int, Meta(ge=60, le=120)] = 60
    #: Issuing area of this deployment (``iss`` of QR codes).
    issuer_area: Annotated[str, Meta(pattern=r"^[0-9]{6}$")] = "370102"
    #: Rotate QR and feed signing keys automatically after this many days (0: only by hand).
    key_rotate_days: Annotated[int, Meta(ge=0, le=3650)] = 30
    #: How long a worker may keep using its cached key ring before it reloads the key table.
    key_refresh_s: Seconds = 30
    #: How often a worker reloads the key table when the store cannot tell it the key ring's
    #: version (store down, or no version published yet); with the store up a revocation
    #: reaches every worker on its next request.
    key_refresh_fallback_s: Annotated[float, Meta(ge=0.1, le=300)] = 2.0
    #: Working days after a provisional card loss report before the card is restored (default).
    card_lapse_workdays: Annotated[int, Meta(ge=1, le=60)] = 2
    #: Per-area overrides, ``area:days`` comma-separated, e.g. ``370102:2,110105:3``.
    card_lapse_by_area: str = ""
    #: Extra holiday/workday years for the working-day calendar (JSON; see ecert/cards/).
    workday_file: str = ""
    #: Provinces this one settles with (docs/federation.md): their ecert URLs, our client ids
    #: there, and the key that signs our client assertions. Empty: no routing to provinces.
    federation_file: str = ""
    #: Settlement token (ec_token) lifetime; it opens one settlement (or visit) and is spent.
    ec_token_ttl_s: Seconds = 600
    #: Largest accepted request body.
    max_body_bytes: Annotated[int, Meta(ge=1024, le=1 << 30)] = 1_048_576
    #: Timeout for every Redis call, so a hung Redis cannot hang a request.
    redis_timeout_s: Annotated[float, Meta(gt=0, le=10)] = 0.25
    #: After a Redis failure or timeout, skip Redis (callers fall back) for this long.
    redis_breaker_s: Annotated[float, Meta(ge=0.1, le=300)] = 5.0
    #: On SIGTERM ``/readyz`` answers 503 for this long while requests are still served, so the
    #: load balancer takes the node out before the server stops accepting connections.
    drain_grace_s: Annotated[float, Meta(ge=0, le=120)] = 5.0
    #: OpenTelemetry traces (the ``ecert[otel]`` extra): exported over OTLP/HTTP to the SDK's own
    #: ``OTEL_EXPORTER_OTLP_*`` settings. Off: nothing of OpenTelemetry is imported.
    otel_enabled: bool = False
    #: Share of traces kept (a parent's decision is followed), 0 to 1.
    otel_sample_ratio: Annotated[float, Meta(ge=0, le=1)] = 1.0
    #: Requests a minute before 429 for each person-scoped token and each anonymous address.
    rate_limit_per_minute: Positive = 600
    #: Default quota of a client (requests a minute, token requests included) when it was
    #: registered without ``--rate-limit``: 100 a second, a large hospital's peak with headroom.
    client_rate_limit_per_minute: Positive = 6000
    #: How long a worker trusts its cached "client is active" answer: a disabled client's
    #: still-valid access tokens stop working within this interval.
    client_status_refresh_s: Annotated[float, Meta(ge=0, le=300)] = 5.0
    #: How long a worker mints codes from a remembered e-cert (``ecert.issuance.mintcache``): a
    #: change made through another worker reaches its minting within this; 0 remembers nothing.
    mint_cache_s: Annotated[float, Meta(ge=0, le=120)] = 60.0
    #: Coarse outer bound per address, a bucket each, on ``POST /oauth/token`` (clients are
    #: then counted by id) and on the revocation feed (scanner fleets share addresses).
    peer_rate_limit_per_minute: Positive = 6000
    #: CIDR networks of the load balancers/proxies whose ``X-Forwarded-For`` is believed
    #: (comma-separated); empty: the header is ignored and the peer address counts.
    trusted_proxies: str = ""
    #: ``ecert serve``: idle keep-alive of a client connection (uvicorn ``timeout_keep_alive``).
    #: Above the load balancer's idle timeout (60 s on most), so the balancer, not ecert, closes
    #: idle connections: otherwise it may send a request on a connection ecert is closing (502).
    serve_keep_alive_s: Annotated[int, Meta(ge=1, le=3600)] = 75
    #: ``ecert serve``: after the drain grace, how long in-flight requests may still take
    #: (uvicorn ``timeout_graceful_shutdown``). The orchestrator's termination grace must exceed
    #: ECERT_DRAIN_GRACE_S plus this.
    serve_graceful_shutdown_s: Annotated[int, Meta(ge=1, le=600)] = 20
    #: Demo only: mount ``POST /v1/demo/person-token`` (set by ``ecert demo``; never in production).
    demo_signin: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: Log as JSON lines (production) or as readable console lines.
    log_json: bool = True
    db_pool_size: Annotated[int, Meta(ge=1, le=1000)] = 10
    #: Test each pooled PostgreSQL connection before use. Off by default: asyncpg's ping is three
    #: round trips (BEGIN, ``;``, ROLLBACK) on every checkout, more than a typical request's own
    #: queries; without it a dropped connection fails one request and SQLAlchemy then discards
    #: every connection of the pool older than the failure.
    db_pre_ping: bool = False
    #: Replace pooled connections older than this (seconds), ahead of server/proxy idle cut-offs.
    db_pool_recycle_s: Seconds = 1800
    #: PostgreSQL ``statement_timeout``, ``lock_timeout`` and
    #: ``idle_in_transaction_session_timeout`` of every connection (ms; 0 turns one off). Kept
    #: well below the 60 s after which an Idempotency-Key claim is presumed dead and taken over,
    #: so a stuck request ends (and rolls back) long before a retry takes its key.
    db_statement_timeout_ms: Millis = 15_000
    db_lock_timeout_ms: Millis = 5_000
    db_idle_in_transaction_timeout_ms: Millis = 15_000
    #: asyncpg's client-side ``command_timeout`` (seconds; 0: none): a statement the server does
    #: not answer at all (a partition, a hung primary) fails with a retryable 503 after this,
    #: where ``statement_timeout`` needs a server that still runs.
    db_command_timeout_s: Annotated[float, Meta(ge=0, le=600)] = 30.0
    #: Behind PgBouncer in transaction mode: no named prepared statements cached per connection
    #: (another client may get the server connection next) and no start-up session settings (set
    #: the ECERT_DB_*_TIMEOUT_MS values on the database role instead; docs/operations.md).
    db_pgbouncer: bool = False
    db_echo: bool = False
    #: Bearer token a Prometheus scrape must present on ``/metrics``; empty: metrics are open
    #: (keep the port private then).
    metrics_token: str = ""
    #: ``ecert purge`` retention, in seconds: ``qr_uses`` rows after the verify, ``used_jtis``,
    #: ``ec_tokens`` and ``numeric_codes`` rows after they expired, ``idempotency_records`` after
    #: the first attempt (a key retried after its record is gone would run again).
    retention_qr_uses_s: Retention = 7 * DAY_S
    retention_used_jtis_s: Retention = DAY_S
    retention_ec_tokens_s: Retention = 7 * DAY_S
    retention_numeric_codes_s: Retention = DAY_S
    retention_idempotency_s: Retention = 30 * DAY_S
    #: ``ecert audit purge``: audit rows older than this many days go, leaving an anchor.
    retention_audit_days: Annotated[int, Meta(ge=30, le=36_500)] = 1825

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{Path(self.data_dir).resolve() / 'ecert.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def production(self) -> bool:
        """Production demands hold: set explicitly, or implied by a PostgreSQL URL."""
        if self.env == "production":
            return True
        return self.env == "embedded" and self.database_url.startswith("postgresql")

    @property
    def embedded(self) -> bool:
        """The one mode in which ecert may generate its own PII and hash keys."""
        return self.env == "embedded" and self.is_sqlite


def retention_floors(settings: Settings) -> dict[str, int]:
    """The shortest retention of each purged table that cannot reopen a replay.

    A ``qr_uses`` row is the authority on a code's single use: it must outlive the code, which a
    verifier accepts until ``exp`` + leeway and whose ``iat`` may run ``leeway`` ahead of our clock.
    The expiring rows are kept past their expiry by the leeway the checks allow. Idempotency
    records are kept at least a day: clients retry for minutes, operators for hours.
    """
    expiring = settings.leeway_s + RETENTION_MARGIN_S
    return {
        "retention_qr_uses_s": settings.qr_ttl_s + 2 * settings.leeway_s + RETENTION_MARGIN_S,
        "retention_used_jtis_s": expiring,
        "retention_ec_tokens_s": expiring,
        "retention_numeric_codes_s": expiring,
        "retention_idempotency_s": DAY_S,
    }


def _check_retention(settings: Settings) -> None:
    for field, floor in retention_floors(settings).items():
        if getattr(settings, field) < floor:
            raise ConfigurationError(
                f"{_variable(field)}={getattr(settings, field)} is too short: at least {floor} "
                "seconds, or a purged row could let a still-valid code or key be used again."
            )


def _variable(field: str) -> str:
    return f"ECERT_{field.upper()}"


def _unknown_names(env: dict[str, str] | os._Environ[str], known: set[str]) -> None:
    for name in sorted(env):
        if not name.startswith("ECERT_") or name in known or name in _NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigurationError(f"{name} is not an ecert setting{hint}.")


def _plain(error: msgspec.ValidationError, raw: dict[str, Any]) -> ConfigurationError:
    # msgspec says "Expected `int` <= 120 - at `$.qr_ttl_s`"; name the variable and the value.
    message = str(error)
    found = re.search(r"^(.*) - at `\$\.(\w+)`", message)
    if not found:
        return ConfigurationError(f"the settings are not valid: {message}.")
    expected, field = found.groups()
    expected = expected.replace("`", "").replace("Expected int", "expected an integer")
    expected = expected.replace("Expected", "expected")
    return ConfigurationError(f"{_variable(field)}={raw.get(field)!r} is not valid: {expected}.")


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def redis_cluster_nodes(url: str) -> tuple[str, str | None, str | None, list[tuple[str, int]]]:
    """``redis+cluster://[user:password@]host:port,…`` → (scheme, user, password, nodes).

    Written out because no URL parser takes several hosts; raises ValueError when malformed.
    """
    scheme, _, rest = url.partition("://")
    if "/" in rest or "?" in rest:
        raise ValueError("a cluster URL has no database number, path or options")
    userinfo, at, hosts = rest.rpartition("@")
    user = password = None
    if at:
        name, colon, secret = userinfo.partition(":")
        user, password = unquote(name) or None, unquote(secret) if colon else None
    nodes = []
    for node in hosts.split(","):
        host, colon, port = node.strip().rpartition(":")
        if not colon or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{node!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    return scheme, user, password, nodes


def _check_urls(settings: Settings) -> None:
    url = settings.redis_url
    if url.startswith(_CLUSTER_SCHEMES):
        try:
            redis_cluster_nodes(url)
        except ValueError as exc:
            raise ConfigurationError(
                f"ECERT_REDIS_URL is not a cluster URL ({exc}): write "
                "redis+cluster://host:port,host:port."
            ) from None
    elif url and not url.startswith(_REDIS_SCHEMES):
        raise ConfigurationError(
            "ECERT_REDIS_URL must start with redis://, rediss://, unix://, redis+cluster:// or "
            "rediss+cluster://."
        )
    if settings.database_read_url and not (
        settings.database_read_url.startswith("postgresql") and not settings.is_sqlite
    ):
        raise ConfigurationError(
            "ECERT_DATABASE_READ_URL is a PostgreSQL streaming replica of a PostgreSQL "
            "ECERT_DATABASE_URL; the embedded SQLite database has no replicas."
        )


def _demand_production(settings: Settings, given: set[str]) -> None:
    missing = [
        _variable(field)
        for field in ("database_url", "redis_url", "issuer_url", "issuer_area")
        if field not in given or not getattr(settings, field)
    ]
    if not (settings.pii_keys or settings.key_file):
        missing.append("ECERT_PII_KEYS and ECERT_HASH_KEY (or ECERT_KEY_FILE)")
    if missing:
        raise ConfigurationError(
            f"production mode (ECERT_ENV=production, or a PostgreSQL URL) needs "
            f"{', '.join(missing)} to be set explicitly."
        )
    if settings.demo_signin:
        raise ConfigurationError("ECERT_DEMO_SIGNIN is for the embedded demo, never production.")


def settings_from_env(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``ECERT_*`` variables (and explicit overrides, which win).

    Raises :class:`ConfigurationError` for an unknown ``ECERT_*`` name, a malformed or
    out-of-range value, or production mode without its explicit database, Redis, keys and issuer.
    """
    env = os.environ if environ is None else environ
    fields = [field.name for field in msgspec.structs.fields(Settings)]
    _unknown_names(env, {_variable(name) for name in fields})
    raw: dict[str, Any] = {}
    for name in fields:
        value = env.get(_variable(name))
        if value is not None:
            raw[name] = value
    raw.update(overrides)
    if isinstance(raw.get("log_level"), str):
        raw["log_level"] = raw["log_level"].upper()
    try:
        # strict=False lets msgspec turn "5" into 5 and "true" into True.
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise _plain(exc, raw) from None
    if settings.production:
        _demand_production(settings, set(raw))
    _check_urls(settings)
    _check_retention(settings)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return settings_from_env()
