"""ecert.grouping: a lone call goes at once, the calls behind it share one send, and each gets
its own result or the batch's failure."""

from __future__ import annotations

import asyncio

import pytest

from ecert.grouping import Grouped


async def test_calls_behind_one_in_flight_share_the_next_send() -> None:
    sent: list[list[int]] = []
    gate = asyncio.Event()

    async def send(items: list[int]) -> list[int]:
        sent.append(items)
        if len(sent) == 1:
            await gate.wait()  # the first send is in flight while the others arrive
        return [item * 10 for item in items]

    grouped: Grouped[int, int] = Grouped(send, max_batch=3)
    calls = [asyncio.create_task(grouped(n)) for n in range(6)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*calls) == [0, 10, 20, 30, 40, 50]
    assert sent == [[0], [1, 2, 3], [4, 5]]
    assert grouped.sizes == [1, 3, 2]
    assert await grouped(7) == 70  # alone again: sent at once
    assert sent[-1] == [7]


async def test_one_key_a_batch_and_every_caller_gets_the_failure() -> None:
    gate = asyncio.Event()
    sent: list[list[str]] = []

    async def send(items: list[str]) -> list[str]:
        sent.append(items)
        if len(sent) == 1:
            await gate.wait()
        if "x-boom" in items:
            raise ValueError("the batch failed")
        return items

    grouped: Grouped[str, str] = Grouped(send, max_batch=10, key=lambda item: item[0])
    calls = [asyncio.create_task(grouped(item)) for item in ("a1", "a2", "b1", "a3", "x-boom")]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    # "a3" waits for the send after (the same key as "a2"); "x-boom" fails its whole batch.
    assert sent == [["a1"], ["a2", "b1", "x-boom"], ["a3"]]
    assert results[0] == "a1"
    assert results[3] == "a3"
    assert all(isinstance(results[n], ValueError) for n in (1, 2, 4))


async def test_a_cancelled_caller_does_not_cancel_its_batch() -> None:
    gate = asyncio.Event()

    async def send(items: list[int]) -> list[int]:
        await gate.wait()
        return items

    grouped: Grouped[int, int] = Grouped(send, max_batch=10)
    first = asyncio.create_task(grouped(1))
    await asyncio.sleep(0)
    second, third = asyncio.create_task(grouped(2)), asyncio.create_task(grouped(3))
    await asyncio.sleep(0)
    second.cancel()
    gate.set()
    assert await first == 1
    assert await third == 3
    with pytest.raises(asyncio.CancelledError):
        await second
