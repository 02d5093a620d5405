"""Online verify's group spend (ecert.verify.batches): verifies that wait together share one
statement, each checked and answered on its own rows; two scans of one code never share one."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from ecert.db.models import utcnow
from ecert.qr import codec
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.verify import batches, services
from tests.factories import holder, institution, set_enrolment
from tests.helpers import Client

HOSPITAL = "H37010200001"


def _values(sub: str, jti: str, institution_code: str = HOSPITAL) -> dict[str, Any]:
    return {"u_iss": "370102", "u_sub": sub, "u_jti": jti, "institution": institution_code}


def test_a_batch_takes_each_code_once_in_order_and_at_most_max() -> None:
    spends = batches.SpendBatches(None)  # type: ignore[arg-type]  # no statement is sent
    grouped = spends.grouped
    loop = asyncio.new_event_loop()
    try:
        waiting = [
            _values("AAAAAAAAAAAA", "a1"),
            _values("BBBBBBBBBBBB", "b1"),
            _values("AAAAAAAAAAAA", "a1", "H37010200002"),  # the same code, elsewhere
            _values("AAAAAAAAAAAA", "a2"),
        ]
        for values in waiting:
            grouped._waiting.append((values, loop.create_future(), None))  # type: ignore[arg-type]
        first = grouped.next_batch()
        assert [entry[0] for entry in first] == [waiting[0], waiting[1], waiting[3]]
        assert [entry[0] for entry in grouped.next_batch()] == [waiting[2]]
        for n in range(batches.MAX_BATCH + 5):
            grouped._waiting.append((_values("C" * 12, f"c{n}"), loop.create_future(), None))  # type: ignore[arg-type]
        assert len(grouped.next_batch()) == batches.MAX_BATCH
        assert len(grouped.next_batch()) == 5
    finally:
        loop.close()


async def _spend_values(runtime: Runtime, text: str, institution_code: str) -> dict[str, Any]:
    jws, header = codec.open_code(text)
    key = runtime.keys.verifier("qr", header.kid)
    assert key is not None
    claims = codec.decode_jws(
        jws,
        key.public,
        now=int(time.time()),
        leeway_s=runtime.settings.leeway_s,
        issuers={runtime.settings.issuer_area},
    )
    principal = Principal("hospital", "institution", institution_code=institution_code)
    expires = utcnow() + dt.timedelta(minutes=5)
    return services.spend_values(principal, claims, header.kid, institution_code, "01101", expires)


@pytest.mark.postgres  # the group statement is PostgreSQL's; SQLite spends in the request
async def test_one_statement_answers_each_verify_from_its_own_rows(
    client: Client, runtime: Runtime
) -> None:
    people = [await holder(client, runtime, name=name) for name in ("李四", "王五", "赵六")]
    await set_enrolment(runtime, people[1], "paused")
    await institution(client, runtime)
    codes = [await people[i].qr(client) for i in (0, 1, 2)]
    given = [await _spend_values(runtime, code, HOSPITAL) for code in (*codes, codes[2])]
    spends = batches.for_runtime(runtime)
    answers = await asyncio.gather(*(spends.spend(values) for values in given))
    # The first sends its own statement at once; the two that queued meanwhile share the
    # next one, and the second scan of the third code waits for the one after.
    assert spends.grouped.sizes == [1, 2, 1]
    for person, (rows, _) in zip((*people, people[2]), answers, strict=True):
        assert {row.person_id for row in rows} == {person.person_id}
    tokens = [token for _, token in answers]
    assert tokens[0] is not None
    assert tokens[0].startswith("370102")
    assert tokens[1] is None  # not enrolled: checked on its rows, nothing spent
    assert tokens[2] is not None
    assert tokens[3] is None
    assert len({tokens[0], tokens[2]}) == 2
    # The refused verify spent nothing: its code goes through once the person is enrolled.
    await set_enrolment(runtime, people[1], "active")
    rows, token = await spends.spend(given[1])
    assert rows
    assert token is not None
