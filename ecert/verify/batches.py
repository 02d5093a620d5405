"""Group spend for online verify on PostgreSQL: the codes of every verify waiting at that
moment are checked and spent by one autocommitted statement, and each verify answers from its
own rows once that statement has committed.

A verify's one durable write used to be its own statement: per scan a round trip, a parse-bind-
execute and a commit in PostgreSQL, and the statement's Python on the worker. Verifies arriving
together now share them, as the audit rows of reads do (``ecert.security.auditbatch``). A verify
that finds nothing in flight sends its own statement at once; while one is in PostgreSQL the
next ones queue, and a writer then sends them all at once (at most ``MAX_BATCH``).

Nothing is weaker: each verify's checks run on its own rows in the statement, the use is still
``ON CONFLICT DO NOTHING`` on the unique key, a verify answers only after the COMMIT, and a
failed statement fails every verify it carried (none was spent). Two scans of one code never
share a batch: the second waits for the next one, where the unique key refuses it (or spends
it, when the first failed a check that the second, from another institution, passes).
The grouping itself is ``ecert.grouping.Grouped``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import OperationalError

from ecert.db.held import HeldConnection
from ecert.grouping import Grouped
from ecert.server.runtime import Runtime
from ecert.verify import repositories

#: Verifies a statement carries at most.
MAX_BATCH = 128

Spent = tuple[list[repositories.HolderRow], str | None]


def _key(values: dict[str, Any]) -> tuple[str, str, str]:
    return values["u_iss"], values["u_sub"], values["u_jti"]


class SpendBatches:
    """One per worker (``for_runtime``)."""

    def __init__(self, held: HeldConnection) -> None:
        """``held``: the connection the statements go on, one at a time (``ecert.db.held``)."""
        self._held = held
        self.grouped: Grouped[dict[str, Any], Spent] = Grouped(
            self._send, max_batch=MAX_BATCH, key=_key
        )

    async def spend(self, values: dict[str, Any]) -> Spent:
        """The holder's rows and the new ``ec_token`` (None when a check failed or the code was
        used already) for one verify's ``values`` (``repositories.SPEND_ARRAYS`` but ``n``);
        no rows when the pseudonym matches no e-cert. Raises what the statement raised."""
        return await self.grouped(values)

    async def _send(self, verifies: list[dict[str, Any]]) -> list[Spent]:
        spent = await self._run(verifies)
        return [spent.get(n, ([], None)) for n in range(len(verifies))]

    async def _run(self, verifies: list[dict[str, Any]]) -> dict[int, Spent]:
        """The statement, sent again once on a fresh connection when the first one was found
        dead (after a PostgreSQL restart the pool's connections all are). Safe: the unique key
        decides, so a statement that had committed before its answer was lost refuses its codes
        as used the second time, which is what the verify's own retry after a 503 would get."""
        try:
            return await repositories.spend_many(self._held.fetch, verifies)
        except OperationalError as exc:
            if not exc.connection_invalidated:
                raise
        return await repositories.spend_many(self._held.fetch, verifies)


_KEY = "verify.spends"


def for_runtime(runtime: Runtime) -> SpendBatches:
    """The worker's batches (PostgreSQL), kept in its runtime's ``worker_state``."""
    found = runtime.worker_state.get(_KEY)
    if not isinstance(found, SpendBatches):
        held = runtime.group_connection()
        if held is None:
            raise RuntimeError("the group spend is PostgreSQL's")
        found = runtime.worker_state[_KEY] = SpendBatches(held)
    return found
