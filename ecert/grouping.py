"""Concurrent calls sent as one: a lone call goes at once, the calls that arrive while one is in
flight are sent together after it.

Online verify's group spend (``ecert.verify.batches``) and its store call
(``ecert.store.RedisStore.count_and_mark``) pay a fixed cost per call — a round trip, a parse, a
commit, the client library's Python — that a batch pays once. A call
that finds nothing in flight is sent from its own task at once (no queue, no extra task: alone it
costs what it did without grouping); the calls that queue meanwhile are sent by a writer task, at
most ``max_batch`` a time, in the first one's context (its trace and log fields). Each caller gets
its own item's result, or the batch's exception.

Hand-written: a few lines of asyncio; no library groups calls of this shape (aiodataloader
batches per loop iteration, not behind a call in flight).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Grouped(Generic[T, R]):
    """``await grouped(item)``: ``send(items)`` for this item and the others of its batch.

    ``send`` returns one result per item, in order. ``key``: items with the same key never
    share a batch (the later one waits for the next), so that ``send`` may treat a batch as a
    set, e.g. two scans of one code in one statement.
    """

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int,
        key: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._send = send
        self._max = max_batch
        self._key = key
        self._waiting: list[tuple[T, asyncio.Future[R], contextvars.Context]] = []
        #: A batch is being sent (a lone caller's own, or the writer's).
        self._busy = False
        #: The writer task while it runs (held: the loop keeps only a weak reference).
        self._writer: asyncio.Task[None] | None = None
        #: Items per send, the last few (for tests and the curious: ``sizes``).
        self.sizes: list[int] = []

    async def __call__(self, item: T) -> R:
        if self._busy:
            done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._waiting.append((item, done, contextvars.copy_context()))
            return await asyncio.shield(done)  # a cancelled caller does not cancel the others
        self._busy = True
        try:
            (result,) = await self._sent([item])
        finally:
            self._hand_over()
        return result

    async def _sent(self, items: list[T]) -> list[R]:
        if len(self.sizes) >= 64:
            del self.sizes[:32]
        self.sizes.append(len(items))
        results = await self._send(items)
        if len(results) != len(items):
            raise RuntimeError(f"{len(results)} results for {len(items)} items")
        return results

    def _hand_over(self) -> None:
        """After a send: what queued meanwhile goes to a writer task."""
        if self._waiting:
            self._writer = asyncio.create_task(self._write(), context=contextvars.Context())
        else:
            self._busy = False

    def next_batch(self) -> list[tuple[T, asyncio.Future[R], contextvars.Context]]:
        """The next batch: the waiting calls in order, one per key, at most ``max_batch``."""
        batch: list[tuple[T, asyncio.Future[R], contextvars.Context]] = []
        later: list[tuple[T, asyncio.Future[R], contextvars.Context]] = []
        keys: set[Hashable] = set()
        for waiting in self._waiting:
            key = self._key(waiting[0]) if self._key is not None else None
            if len(batch) >= self._max or (key is not None and key in keys):
                later.append(waiting)
            else:
                keys.add(key)
                batch.append(waiting)
        self._waiting = later
        return batch

    async def _write(self) -> None:
        """Send the queued calls, a batch at a time, until none is left (still busy)."""
        try:
            while self._waiting:
                await self._write_one(self.next_batch())
        finally:
            self._busy = False

    async def _write_one(
        self, batch: list[tuple[T, asyncio.Future[R], contextvars.Context]]
    ) -> None:
        try:
            # In the first caller's context: a span of the send is a child of its request, and
            # a log line of the send carries its request id.
            results = await asyncio.create_task(
                self._sent([item for item, _, _ in batch]), context=batch[0][2]
            )
        except Exception as exc:  # every call of this batch gets the failure
            _settle(batch, exc=exc)
        else:
            _settle(batch, results=results)


def _settle(
    batch: list[tuple[T, asyncio.Future[R], contextvars.Context]],
    *,
    results: list[R] | None = None,
    exc: Exception | None = None,
) -> None:
    """Each waiting call's result, or the batch's exception for all."""
    for n, (_, done, _) in enumerate(batch):
        if done.done():
            continue
        if results is not None:
            done.set_result(results[n])
        else:
            assert exc is not None
            done.set_exception(exc)
