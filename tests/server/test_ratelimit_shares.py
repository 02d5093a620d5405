"""Rate limits counted partly in the worker (ecert.server.ratelimit.LocalShares): no store round
trip well inside a limit, exact below 20 a minute, and the deployment's total past the limit by
at most one share a worker."""

from __future__ import annotations

from ecert.server.ratelimit import SHARE_DIVISOR, LocalShares
from ecert.store import MemoryStore


def test_small_limits_are_counted_in_the_store_every_time() -> None:
    shares = LocalShares()
    assert [shares.take("k", 1, 19) for _ in range(3)] == [1, 1, 1]


def test_a_share_is_counted_here_then_sent_in_one_increment() -> None:
    shares = LocalShares()
    share = 100 // SHARE_DIVISOR
    assert [shares.take("k", 1, 100) for _ in range(share)] == [0] * share
    assert shares.take("k", 1, 100) == share + 1
    shares.told("k", 98)  # other workers counted too: near the limit every hit goes out
    assert shares.take("k", 1, 100) == 0  # 98 + 1 is within the limit
    assert shares.take("k", 1, 100) == 0
    assert shares.take("k", 1, 100) == 3  # 98 + 3 would pass it: the store decides
    assert shares.take("k", 2, 100) == 0  # a new window forgets


async def test_workers_together_pass_the_limit_by_at_most_a_share_each() -> None:
    store, limit, workers = MemoryStore(), 200, [LocalShares() for _ in range(4)]
    admitted = 0
    for n in range(2_000):
        shares = workers[n % len(workers)]
        unsent = shares.take("k", 1, limit)
        if unsent:
            count = await store.incr_window("k", 60, unsent)
            shares.told("k", count)
            if count > limit:
                continue
        admitted += 1
    assert limit <= admitted <= limit + len(workers) * (limit // SHARE_DIVISOR)
