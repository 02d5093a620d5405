"""Business metrics (``ecert_*``), defined once per process.

Every label is a small closed set (a problem ``code``, a ``med_type``, a key purpose): never a
person, a client or an institution. Under ``ecert serve`` the values live in
``PROMETHEUS_MULTIPROC_DIR`` (one file per worker) and a scrape sums every worker's
(``ecert.ops.metrics``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

VERIFICATIONS = Counter(
    "ecert_verifications",
    "Verifications of a scanned code, by result: ok or the refusal's problem code",
    ["result"],
)
PROBLEMS = Counter(
    "ecert_problems",
    "Problem responses (refusals and errors) by status and code",
    ["status", "code"],
)
SETTLEMENTS = Counter(
    "ecert_settlements", "Settlements written (not replays), by med_type", ["med_type"]
)
REVERSALS = Counter(
    "ecert_reversals", "Reversals (returns) written (not replays), by med_type", ["med_type"]
)
STORE_FALLBACKS = Counter(
    "ecert_store_fallbacks",
    "Store (Redis) calls that failed or were skipped by the open breaker; callers fell back",
    ["reason"],
)
REPLICA_READS = Counter(
    "ecert_replica_reads",
    "Lookups with a read replica configured, by where they read: replica, primary (replica "
    "lagging or down), primary_after_error (a read on the replica failed)",
    ["served_by"],
)
REPLICA_LAG = Gauge(
    "ecert_replica_lag_seconds",
    "The read replica's lag at this worker's last check (inf: not a replica)",
    multiprocess_mode="max",
)
POOL_IN_USE = Gauge(
    "ecert_db_pool_in_use", "Database connections checked out", multiprocess_mode="livesum"
)
KEY_AGE = Gauge(
    "ecert_signing_key_age_seconds",
    "Age of the active signing key, by purpose (set at scrape)",
    ["purpose"],
    multiprocess_mode="mostrecent",
)
AUDIT_OK = Gauge(
    "ecert_audit_chain_intact",
    "Last `ecert audit verify`: 1 intact, 0 broken, -1 not run (set at scrape)",
    multiprocess_mode="mostrecent",
)
AUDIT_AT = Gauge(
    "ecert_audit_chain_verified_timestamp_seconds",
    "When `ecert audit verify` last ran (set at scrape)",
    multiprocess_mode="mostrecent",
)


def watch_pool(engine: AsyncEngine) -> None:
    """Count checked-out connections through pool events: no query, no lock."""

    def checkout(*_: Any) -> None:
        POOL_IN_USE.inc()

    def checkin(*_: Any) -> None:
        POOL_IN_USE.dec()

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "checkin", checkin)
