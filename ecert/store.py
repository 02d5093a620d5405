"""The fast, forgetful store: early replay rejection, rate-limit counters, small caches.

Production uses Redis; the embedded default is an in-process store with the same interface
(single process only: counters and replay marks are not shared between workers). Neither is an
authority — PostgreSQL is — so every caller must stay correct when the store is down.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from ecert.config import redis_cluster_nodes
from ecert.grouping import Grouped
from ecert.metrics import STORE_FALLBACKS

_log = structlog.get_logger("ecert.store")


@dataclass(frozen=True, slots=True)
class Window:
    """A rate-limit window's counter: its key, its length and the most hits it allows."""

    key: str
    seconds: int
    limit: int


class StoreUnavailable(Exception):
    """Raised when the store did not answer within its timeout; callers fall back."""


class Store(Protocol):
    """What ecert needs from Redis."""

    async def set_once(self, key: str, ttl_s: int) -> bool:
        """Mark ``key``; True the first time, False while the mark lives."""
        ...

    async def incr_window(self, key: str, window_s: int, by: int = 1) -> int:
        """Count ``by`` hits in a fixed window; returns the count so far in this window."""
        ...

    async def count_and_mark(self, window: Window, key: str, ttl_s: int) -> tuple[int, bool]:
        """:meth:`incr_window` and, unless that count is over ``window.limit``, :meth:`set_once`
        of ``key``: a hot path's rate limit and its early replay mark in one round trip."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """In-process store: a dict with expiry times. Single process only."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str, now: float) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._data[key]
            return None
        return item[1]

    def _sweep(self, now: float) -> None:
        # Bounded memory: drop expired entries once the dict grows.
        if len(self._data) > 100_000:
            for key in [k for k, (exp, _) in self._data.items() if exp <= now]:
                del self._data[key]

    async def set_once(self, key: str, ttl_s: int) -> bool:
        async with self._lock:
            now = time.monotonic()
            if self._live(key, now) is not None:
                return False
            self._sweep(now)
            self._data[key] = (now + ttl_s, b"1")
            return True

    async def incr_window(self, key: str, window_s: int, by: int = 1) -> int:
        async with self._lock:
            now = time.monotonic()
            current = self._live(key, now)
            count = int(current) + by if current is not None else by
            expiry = self._data[key][0] if current is not None else now + window_s
            self._data[key] = (expiry, str(count).encode())
            return count

    async def count_and_mark(self, window: Window, key: str, ttl_s: int) -> tuple[int, bool]:
        count = await self.incr_window(window.key, window.seconds)
        return count, count <= window.limit and await self.set_once(key, ttl_s)

    async def get(self, key: str) -> bytes | None:
        return self._live(key, time.monotonic())

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._data[key] = (time.monotonic() + ttl_s, value)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class CircuitBreaker:
    """After a failure, callers skip the backend for ``open_s`` seconds and use their fallback.

    A hung Redis otherwise costs every request its timeout. Once the interval is over one caller
    probes (the others keep skipping); success closes the circuit. One log line on opening and
    one on closing, not one per request.
    """

    def __init__(self, open_s: float, name: str = "redis") -> None:
        self._open_s = open_s
        self._name = name
        self._open = False
        self._retry_at = 0.0

    @property
    def is_open(self) -> bool:
        return self._open

    def allow(self) -> bool:
        if not self._open:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._open_s  # this caller probes; the rest wait another round
        return True

    def failed(self, reason: str) -> None:
        self._retry_at = time.monotonic() + self._open_s
        if not self._open:
            self._open = True
            _log.warning("store circuit open", store=self._name, reason=reason, skip_s=self._open_s)

    def succeeded(self) -> None:
        if self._open:
            self._open = False
            # Warning like the opening line: the pair must survive ECERT_LOG_LEVEL=WARNING.
            _log.warning("store circuit closed", store=self._name)


def redis_client(url: str, timeout_s: float) -> aioredis.Redis | RedisCluster:
    """A client for ``redis://`` or, for ``redis+cluster://h:p,h:p``, redis-py's cluster client.

    The cluster client learns the slot map from any listed node and follows MOVED/ASK itself.
    Every command (and the one script) ecert sends a cluster touches a single key, so no hash
    tags are needed (verify's two-key script runs on a single server only); a future command,
    script or pipeline on several keys must give them one ``{tag}``.
    """
    if not url.startswith(("redis+cluster://", "rediss+cluster://")):
        return aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
            retry_on_timeout=False,
        )
    scheme, user, password, nodes = redis_cluster_nodes(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=user,
        password=password,
        ssl=scheme.startswith("rediss"),
        # One quick retry after a MOVED storm or a dead node's refresh; the caller's own timeout
        # and the breaker bound the rest.
        retry=Retry(NoBackoff(), retries=1),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )


#: Count and set the window's expiry in one atomic step on one key. A script rather than
#: MULTI: redis-py runs a cluster MULTI on a thread of its own that blocks the event loop.
_INCR_WINDOW = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

#: :meth:`RedisStore.count_and_mark` on one server, for every call of a batch in turn: the
#: window's count, then the mark unless the count is over the limit (a refused request spends no
#: code). Keys ``window, mark`` and arguments ``seconds, limit, ttl`` a call; ``{count, 1 if
#: marked}`` a call, flat. In turn, so two calls of one batch on one code or window see each other
#: as two calls in a row would.
_COUNT_AND_MARK = """
local out = {}
for i = 1, #KEYS / 2 do
  local window, mark = KEYS[2 * i - 1], KEYS[2 * i]
  local count = redis.call('INCR', window)
  if count == 1 then redis.call('EXPIRE', window, ARGV[3 * i - 2]) end
  local marked = 0
  if count <= tonumber(ARGV[3 * i - 1]) and
     redis.call('SET', mark, '1', 'NX', 'EX', ARGV[3 * i]) then marked = 1 end
  out[2 * i - 1], out[2 * i] = count, marked
end
return out
"""

#: Count-and-marks one script call carries at most.
MAX_MARKS = 128


_STORE_FAULTS = (
    RedisError,
    RedisClusterException,
    OSError,
    TimeoutError,
    AttributeError,
    TypeError,
)


class RedisStore:
    """Redis (one server or a cluster) behind explicit short timeouts and a circuit breaker: a
    hung Redis costs a request at most ``timeout_s`` until the breaker opens, then nothing."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.25,
        breaker_s: float = 5.0,
        prefix: str = "ecert:",
    ) -> None:
        self._prefix = prefix
        self._timeout = timeout_s
        self.breaker = CircuitBreaker(breaker_s)
        self._redis = redis_client(url, timeout_s)
        self._incr_window = self._redis.register_script(_INCR_WINDOW)
        self._count_and_mark = self._redis.register_script(_COUNT_AND_MARK)
        # Online verify's one store call (its rate limit and its code's mark): those of the
        # verifies waiting at the same moment go as one script call. redis-py's own Python — the
        # pool, the retry wrapper, packing and parsing — was the larger part of a verify's store
        # cost, and a batch pays it once (``ecert.grouping``).
        self._marks: Grouped[tuple[Window, str, int], tuple[int, bool]] = Grouped(
            self._count_and_mark_many, max_batch=MAX_MARKS
        )

    async def _guard(self, awaitable: object) -> object:
        if not self.breaker.allow():
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()  # the coroutine is never awaited: no "never awaited" warning
            STORE_FALLBACKS.labels("circuit_open").inc()
            raise StoreUnavailable("circuit open")
        # asyncio.timeout on top of socket timeouts: a SIGSTOPped Redis accepts the TCP
        # connection but never answers, and connection-pool waits are not socket reads.
        try:
            async with asyncio.timeout(self._timeout * 2):
                result = await awaitable  # type: ignore[misc]
        # RedisClusterException: no node reachable for the slot map (not a RedisError).
        # AttributeError/TypeError: redis-py's cluster client can meet a connection another
        # task is tearing down after a node died ('NoneType' object has no attribute
        # 'writelines'; redis-py #3546, #3835). That is the store failing, not a bug of ours:
        # fall back like any other store failure rather than answer 500.
        except _STORE_FAULTS as exc:
            self.breaker.failed(type(exc).__name__)
            STORE_FALLBACKS.labels("error").inc()
            raise StoreUnavailable(type(exc).__name__) from exc
        self.breaker.succeeded()
        return result

    async def set_once(self, key: str, ttl_s: int) -> bool:
        result = await self._guard(self._redis.set(self._prefix + key, b"1", nx=True, ex=ttl_s))
        return bool(result)

    async def incr_window(self, key: str, window_s: int, by: int = 1) -> int:
        result = await self._guard(
            self._incr_window(keys=[self._prefix + key], args=[window_s, by], client=self._redis)
        )
        assert isinstance(result, int)
        return result

    async def count_and_mark(self, window: Window, key: str, ttl_s: int) -> tuple[int, bool]:
        if isinstance(self._redis, RedisCluster):
            # The two keys live in different slots (a code's mark is global, the counter the
            # caller's), which one script cannot touch on a cluster: two calls there.
            count = await self.incr_window(window.key, window.seconds)
            return count, count <= window.limit and await self.set_once(key, ttl_s)
        return await self._marks((window, key, ttl_s))

    async def _count_and_mark_many(
        self, calls: list[tuple[Window, str, int]]
    ) -> list[tuple[int, bool]]:
        """One script call for a batch of :meth:`count_and_mark` calls (a store failure is
        every call's: each falls back as it would alone)."""
        keys: list[str] = []
        args: list[int] = []
        for window, key, ttl_s in calls:
            keys += (self._prefix + window.key, self._prefix + key)
            args += (window.seconds, window.limit, ttl_s)
        result = await self._guard(self._count_and_mark(keys=keys, args=args, client=self._redis))
        assert isinstance(result, list)
        return [(int(result[i]), bool(result[i + 1])) for i in range(0, len(result), 2)]

    async def get(self, key: str) -> bytes | None:
        result = await self._guard(self._redis.get(self._prefix + key))
        return result if isinstance(result, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._guard(self._redis.set(self._prefix + key, value, ex=ttl_s))

    async def delete(self, key: str) -> None:
        await self._guard(self._redis.delete(self._prefix + key))

    async def ping(self) -> bool:
        try:
            return bool(await self._guard(self._redis.ping()))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


def make_store(redis_url: str, timeout_s: float, breaker_s: float = 5.0) -> Store:
    """Redis when a URL is configured, otherwise the in-process store."""
    if redis_url:
        return RedisStore(redis_url, timeout_s=timeout_s, breaker_s=breaker_s)
    return MemoryStore()
