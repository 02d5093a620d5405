"""Rate limits in the shared store, with a local fallback when it is down.

Buckets (fixed one-minute windows):

- a client token: ``c:{client_id}``, the client's own quota (the ``rlm`` claim, set at
  registration) or ``ECERT_CLIENT_RATE_LIMIT_PER_MINUTE``; the token endpoint counts each
  authenticated client here too (``count_client``), and so does the national gateway;
- a person-scoped token: ``c:{client_id}:{person_id}``, ``ECERT_RATE_LIMIT_PER_MINUTE``;
- ``POST /oauth/token`` and the national gateway before authentication, and the revocation
  feed (it reads the database): the address, each in a bucket of its own, only as a coarse
  outer bound
  (``ECERT_PEER_RATE_LIMIT_PER_MINUTE``);
- any other anonymous request: the address, ``ECERT_RATE_LIMIT_PER_MINUTE``.

Online verify is charged by its handler (``DEFERRED``, :class:`Charge`): the count and the
code's early replay mark go to the store in one round trip. A request refused before its
handler ran (a malformed body) is counted after its answer instead, so every request counts.

Each worker counts a small share of a limit itself before telling the store (``LocalShares``):
a caller well inside its limit costs no store round trip, and the deployment's total can pass the
limit by at most one share a worker a window (docs/security.md, "Rate limits counted locally").

Health probes, metrics and the JWKS (served from the in-memory key ring) are not counted, so a
scanner fleet behind one address cannot spend a hospital's budget. The address is the peer's,
or — only when the peer is a configured trusted proxy — the rightmost ``X-Forwarded-For`` hop
that is not a trusted proxy: a caller can write anything into the header, only the hops our own
proxies appended are facts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time

from litestar.types import Scope

from ecert.config import Settings
from ecert.errors import RateLimited
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.store import MemoryStore, StoreUnavailable, Window

WINDOW_S = 60
#: Probes, scrapers and the key set: cheap, cacheable, never counted.
FEED_PATH = "/v1/revocations"
#: Not counted here. The feed counts itself, only the pages it must read from the database
#: (``feed_bucket``): the pages it serves from its cache cost nothing anyone could exhaust.
UNLIMITED = frozenset({"/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", FEED_PATH})
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a route, not a password
#: Routes that authenticate their callers themselves, then count them with ``count_client``: the
#: token endpoint and the national gateway (signed headers). Before that, the address only.
SELF_AUTHENTICATING = frozenset({TOKEN_PATH, "/fsi/api/rsfComIfsService/callService"})
#: Routes whose handler makes the charge itself, with a store call of its own (:class:`Charge`).
DEFERRED = frozenset({"/v1/verify"})
#: ``scope["state"]`` key of a deferred route's :class:`Charge`.
CHARGE = "ecert.rate_charge"

#: A worker counts up to this fraction of a limit on its own (limits below 20: none, exact).
SHARE_DIVISOR = 20
#: Buckets a worker counts locally in one window at most; past it, straight to the store.
MAX_LOCAL_BUCKETS = 50_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> tuple[Network, ...]:
    """``ECERT_TRUSTED_PROXIES``: comma-separated CIDR networks (a bare address is a /32)."""
    networks = []
    for part in text.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(
                    f"ECERT_TRUSTED_PROXIES: {part.strip()!r} is not a network"
                ) from exc
    return tuple(networks)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def client_address(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The caller's address: the peer, or behind trusted proxies the first untrusted hop."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    address = _address(peer)
    if not trusted or address is None or not any(address in n for n in trusted):
        return peer
    hops = [
        hop
        for name, value in scope["headers"]
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
    ]
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            return peer  # a proxy of ours never writes garbage: trust nothing left of it
        if not any(found in n for n in trusted):
            return str(found)
    return peer


class LocalShares:
    """A worker's hits not yet told to the store, and the store's last count, per bucket.

    A hit stays here while the bucket's unsent hits are at most ``limit // SHARE_DIVISOR`` and
    the last known count plus them is within the limit; otherwise all unsent hits go to the store
    in one increment, whose answer decides. Forgotten when the window turns.
    """

    def __init__(self) -> None:
        self._window = -1
        #: bucket → [unsent hits, the store's count when last asked]
        self._buckets: dict[str, list[int]] = {}

    def take(self, key: str, window: int, limit: int) -> int:
        """0: counted here; else the hits to send to the store now."""
        if window != self._window:
            self._window, self._buckets = window, {}
        found = self._buckets.get(key)
        if found is None:
            if len(self._buckets) >= MAX_LOCAL_BUCKETS:
                return 1
            found = self._buckets[key] = [0, 0]
        found[0] += 1
        if found[0] <= limit // SHARE_DIVISOR and found[1] + found[0] <= limit:
            return 0
        unsent, found[0] = found[0], 0
        return unsent

    def told(self, key: str, count: int) -> None:
        found = self._buckets.get(key)
        if found is not None:
            found[1] = count


class RateLimiter:
    """Fixed one-minute windows; the fallback counts per process while the store is down."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._fallback = MemoryStore()
        self._local = LocalShares()
        self.trusted = parse_networks(runtime.settings.trusted_proxies)

    async def hit(self, key: str, limit: int) -> None:
        number = int(time.time()) // WINDOW_S
        window = self.window(key, limit, number)
        unsent = self._local.take(window.key, number, limit)
        if not unsent:
            return
        try:
            count = await self._runtime.store.incr_window(window.key, WINDOW_S, unsent)
        except StoreUnavailable:
            count = await self._fallback.incr_window(window.key, WINDOW_S, unsent)
        self._local.told(window.key, count)
        refuse_over(count, limit)

    async def hit_and_mark(self, key: str, limit: int, mark: str, ttl_s: int) -> bool:
        """:meth:`hit` and the store's ``set_once(mark)`` in one round trip: True when the mark
        is new, and True as well when the store is down (the caller's authority decides). Counted
        in the store at once, not in a local share: the mark needs the round trip anyway."""
        window = self.window(key, limit, int(time.time()) // WINDOW_S)
        try:
            count, first = await self._runtime.store.count_and_mark(window, mark, ttl_s)
        except StoreUnavailable:
            count, first = await self._fallback.incr_window(window.key, WINDOW_S), True
        self._local.told(window.key, count)
        refuse_over(count, limit)
        return first

    @staticmethod
    def window(key: str, limit: int, number: int) -> Window:
        return Window(f"rl:{key}:{number}", WINDOW_S, limit)

    async def count_client(self, client_id: str, quota: int | None) -> None:
        """Count a token request of an authenticated client against the client's own quota."""
        await self.hit(
            f"c:{client_id}", quota or self._runtime.settings.client_rate_limit_per_minute
        )

    def bucket(self, scope: Scope) -> tuple[str, int]:
        """The key and the limit this request is counted under."""
        settings: Settings = self._runtime.settings
        user = scope.get("user")
        if isinstance(user, Principal):
            if user.person_id:
                return f"c:{user.client_id}:{user.person_id}", settings.rate_limit_per_minute
            return f"c:{user.client_id}", user.rate_limit or settings.client_rate_limit_per_minute
        address = client_address(scope, self.trusted)
        if scope["path"] in SELF_AUTHENTICATING:
            kind = "token" if scope["path"] == TOKEN_PATH else "gateway"
            return f"{kind}-ip:{address}", settings.peer_rate_limit_per_minute
        return f"ip:{address}", settings.rate_limit_per_minute

    def feed_bucket(self, scope: Scope) -> tuple[str, int]:
        """Where a revocation-feed page read from the database is counted (per address)."""
        address = client_address(scope, self.trusted)
        return f"feed-ip:{address}", self._runtime.settings.peer_rate_limit_per_minute


def refuse_over(count: int, limit: int) -> None:
    if count > limit:
        retry = WINDOW_S - int(time.time()) % WINDOW_S
        raise RateLimited(f"more than {limit} requests a minute", retry_after=retry)


class Charge:
    """A deferred route's one charge: taken by its handler (alone, or with a replay mark), or
    else by the middleware once the answer is out (counted then, too late to refuse)."""

    def __init__(self, limiter: RateLimiter, key: str, limit: int) -> None:
        self._limiter, self._key, self._limit = limiter, key, limit
        self.taken = False

    async def take(self) -> None:
        """Charge now; :class:`RateLimited` past the limit."""
        self.taken = True
        await self._limiter.hit(self._key, self._limit)

    async def take_with_mark(self, mark: str, ttl_s: int) -> bool:
        """Charge now, and mark ``mark`` once in the same round trip (``hit_and_mark``)."""
        self.taken = True
        return await self._limiter.hit_and_mark(self._key, self._limit, mark, ttl_s)

    async def settle(self) -> None:
        if not self.taken:
            with contextlib.suppress(RateLimited):
                await self.take()
