"""Online verify's store call (rate-limit count and replay mark) grouped on one Redis server:
concurrent calls go as one script call and each gets the answer it would have got alone."""

from __future__ import annotations

import asyncio
import os
import signal

from ecert.store import RedisStore, StoreUnavailable, Window
from tests import servers


async def test_concurrent_marks_share_a_script_call_and_answer_as_in_turn() -> None:
    with servers.redis() as (redis_url, _):
        store = RedisStore(redis_url, timeout_s=1.0)
        try:
            window = Window("rl:c:h1:1", 60, 5)
            # Seven calls at once, two of them on one code: one script call after the first.
            codes = ["a", "b", "a", "c", "d", "e", "f"]
            found = await asyncio.gather(
                *(store.count_and_mark(window, f"qr:370102:s:{c}", 60) for c in codes)
            )
            assert store._marks.sizes == [1, 6]
            # Counted in arrival order; the second "a" is a replay; past the limit no mark.
            assert found == [
                (1, True),
                (2, True),
                (3, False),
                (4, True),
                (5, True),
                (6, False),
                (7, False),
            ]
            assert await store.set_once("qr:370102:s:e", 60)  # refused by the limit: unspent
            assert not await store.set_once("qr:370102:s:d", 60)
        finally:
            await store.close()


async def test_a_store_failure_is_every_grouped_callers_own() -> None:
    with servers.redis() as (redis_url, process):
        store = RedisStore(redis_url, timeout_s=0.1, breaker_s=30)
        try:
            assert await store.ping()
            os.kill(process.pid, signal.SIGSTOP)
            try:
                window = Window("rl:c:h1:2", 60, 100)
                found = await asyncio.gather(
                    *(store.count_and_mark(window, f"qr:370102:s:{n}", 60) for n in range(5)),
                    return_exceptions=True,
                )
            finally:
                os.kill(process.pid, signal.SIGCONT)
            assert all(isinstance(f, StoreUnavailable) for f in found), found
        finally:
            await store.close()
