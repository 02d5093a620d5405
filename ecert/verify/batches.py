"""Group spend for online verify on PostgreSQL: the codes of every verify waiting at that
moment are checked and spent by one autocommitted statement, and each verify answers from its
own rows once that statement has committed.

A verify's one durable write used to be its own statement: per scan a round trip, a parse-bind-
execute and a commit in PostgreSQL, and the statement's Python on the worker. Verifies arriving
together now share them, as the audit rows of reads do (``ecert.security.auditbatch``). A verify
that finds nothing in flight sends its own statement at once; while one is in PostgreSQL the
next ones queue, and a writer then sends them all at once (at most ``MAX_BATCH``).

A verify's audit row (it names the holder, known only once its spend has answered) goes through
the same writer: the next statement carries the audit rows of the verifies before it with the
codes of the verifies after them (``repositories.spend_and_append``), so under load a batch of
verifies costs one statement, not a spend and an audit append. The rows are chained after this
writer's last link, as ``auditchain.append_after`` does; when another writer moved that head, the
rows go through the four round trips of ``auditchain.append`` instead. A verify answers only
once its audit row is committed, as before.

Nothing is weaker: each verify's checks run on its own rows in the statement, the use is still
``ON CONFLICT DO NOTHING`` on the unique key, a verify answers only after the COMMIT, and a
failed statement fails every verify it carried (none was spent, no audit row written). Two scans
of one code never share a batch: the second waits for the next one, where the unique key refuses
it (or spends it, when the first failed a check that the second, from another institution,
passes). The grouping itself is ``ecert.grouping.Grouped``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.db.held import HeldConnection
from ecert.grouping import Grouped
from ecert.security import auditchain
from ecert.server.runtime import Runtime
from ecert.verify import repositories

#: Verifies (and audit rows) a statement carries at most.
MAX_BATCH = 128

Spent = tuple[list[repositories.HolderRow], str | None]
#: A writer's item: a verify's spend values, or (``None``, its audit row).
Item = tuple[dict[str, Any] | None, dict[str, Any] | None]
#: An item's result: the spend's, ``None`` for a written audit row, or the item's own failure.
Result = Spent | BaseException | None


def _key(item: Item) -> Hashable:
    values = item[0]
    return None if values is None else (values["u_iss"], values["u_sub"], values["u_jti"])


class SpendBatches:
    """One per worker (``for_runtime``)."""

    def __init__(
        self, held: HeldConnection, sessions: async_sessionmaker[AsyncSession] | None = None
    ) -> None:
        """``held``: the connection the statements go on, one at a time (``ecert.db.held``);
        ``sessions``: where audit rows go when they cannot follow this writer's last link."""
        self._held = held
        self._sessions = sessions
        #: The audit key and this writer's last link (known after its first audit append).
        self._key: bytes | None = None
        self._hint: auditchain.Hint | None = None
        self.grouped: Grouped[Item, Result] = Grouped(self._send, max_batch=MAX_BATCH, key=_key)

    async def spend(self, values: dict[str, Any]) -> Spent:
        """The holder's rows and the new ``ec_token`` (None when a check failed or the code was
        used already) for one verify's ``values`` (``repositories.SPEND_ARRAYS`` but ``n``);
        no rows when the pseudonym matches no e-cert. Raises what the statement raised."""
        result = await self.grouped((values, None))
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        return result

    async def audit(self, row: dict[str, Any]) -> None:
        """Return once ``row`` (``audit_values``) is committed, carried by the next statement."""
        result = await self.grouped((None, row))
        if isinstance(result, BaseException):
            raise result

    async def _send(self, items: list[Item]) -> list[Result]:
        spends = [values for values, _ in items if values is not None]
        rows = [row for values, row in items if values is None and row is not None]
        spent, failure = await self._run(spends, rows)
        results: list[Result] = []
        n = 0
        for values, _ in items:
            if values is None:
                results.append(failure)
            elif isinstance(spent, BaseException):
                results.append(spent)
            else:
                results.append(spent.get(n, ([], None)))
                n += 1
        return results

    async def _run(
        self, spends: list[dict[str, Any]], rows: list[dict[str, Any]]
    ) -> tuple[repositories.Found | Exception, BaseException | None]:
        """The spends (their rows, or the failure they all get), and the audit rows with them
        after this writer's last link when it has one — else, or when that head had moved, in a
        transaction of their own — and the audit rows' failure.

        A statement PostgreSQL refused was rolled back: its audit rows go the long way. One whose
        connection died may have committed before its answer was lost: its spends are sent again
        once on a fresh connection (the unique key decides: a code spent the first time is
        refused as used, as the verify's own retry after a 503 would be), its audit rows' callers
        get the failure (never written twice), and the next rows take the long way."""
        if not rows:
            return await self._spend(spends), None
        if self._hint is None or self._key is None:
            return await self._spend(spends), await self._append(rows)
        audit, after = auditchain.after_values(self._key, rows, self._hint)
        try:
            if spends:
                spent, written = await repositories.spend_and_append(
                    self._held.fetch, spends, audit
                )
            else:  # audit rows alone (the writer was idle): the append's own statement
                spent, written = {}, await auditchain.append_bound(self._held, audit)
        except Exception as exc:
            if _refused(exc):
                return exc, await self._append(rows)
            self._hint = None
            return await self._spend(spends, again=False), exc
        if written:
            self._hint = after
            return spent, None
        return spent, await self._append(rows)

    async def _spend(
        self, spends: list[dict[str, Any]], again: bool = True
    ) -> repositories.Found | Exception:
        """The spends' rows, or their failure; ``again``: sent once more on a fresh connection
        when the first was found dead (after a PostgreSQL restart the pool's all are)."""
        if not spends:
            return {}
        try:
            return await repositories.spend_many(self._held.fetch, spends)
        except Exception as exc:
            if not (again and _dead(exc)):
                return exc
        return await self._spend(spends, again=False)

    async def _append(self, rows: list[dict[str, Any]]) -> BaseException | None:
        """The rows in a transaction of their own (``auditchain.append``); their failure."""
        if self._sessions is None:
            return RuntimeError("no sessions for the audit rows")
        try:
            self._key, self._hint = await auditchain.append_alone(self._sessions, rows)
        except Exception as exc:  # the audit rows' callers get it
            return exc
        return None


def _refused(exc: Exception) -> bool:
    """Whether PostgreSQL answered ``exc`` (the statement rolled back), rather than the
    connection failing with the statement's fate unknown."""
    return isinstance(exc, DBAPIError) and not exc.connection_invalidated


def _dead(exc: Exception) -> bool:
    """Whether ``exc`` is the connection found dead (the statement's fate unknown)."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


_KEY = "verify.spends"


def for_runtime(runtime: Runtime) -> SpendBatches:
    """The worker's batches (PostgreSQL), kept in its runtime's ``worker_state``."""
    found = runtime.worker_state.get(_KEY)
    if not isinstance(found, SpendBatches):
        held = runtime.group_connection()
        if held is None:
            raise RuntimeError("the group spend is PostgreSQL's")
        found = runtime.worker_state[_KEY] = SpendBatches(held, runtime.group_sessions)
    return found
