"""A Hypothesis state machine over settle / retry / reverse / crash, with the ledger invariants
I1–I4 checked after every step. Crashes are modelled where they hurt: after the commit but before
the client hears back (the retry must return the committed answer), and before the commit with
the key still claimed (the retry waits until the claim is stale, then settles exactly once)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import secrets
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, pool, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from ecert import ledger
from ecert.benefits import BillItem
from ecert.clock import business_date
from ecert.config import settings_from_env
from ecert.data import illustrative_policies
from ecert.db.migrate import upgrade
from ecert.db.models import (
    Account,
    ECert,
    EcToken,
    Enrolment,
    IdempotencyRecord,
    LedgerEntry,
    Settlement,
    utcnow,
)
from ecert.identity import make_id_number
from ecert.oauth.services import register_client
from ecert.persons import upsert_person
from ecert.security.auditchain import audit_key, session_info
from ecert.security.keys import ensure_active_keys
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime, build_runtime
from ecert.settlement import idempotency, reversal, services
from ecert.settlement.exceptions import IdempotencyInProgress, ReversalTooLarge
from ecert.settlement.schemas import ReversalRequest, SettlementRequest

T = TypeVar("T")
START = 50_000


def _run(work: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(work())  # type: ignore[arg-type]


class Money(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="ecert-sm-")
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        config = settings_from_env({}, data_dir=self.folder, pii_keys=f"m1:{key}", hash_key=key)
        upgrade(config.effective_database_url)
        self.runtime: Runtime = build_runtime(config)
        # Every step runs in its own event loop: connections must not outlive one.
        self.runtime.engine = create_async_engine(
            config.effective_database_url, poolclass=pool.NullPool
        )
        self.runtime.sessions = async_sessionmaker(
            self.runtime.engine,
            expire_on_commit=False,
            info=session_info(audit_key(self.runtime)),  # audit rows are chained (finding 12)
        )
        self.answers: dict[str, dict[str, Any]] = {}
        _run(self._seed)

    async def _seed(self) -> None:
        async with self.runtime.sessions.begin() as session:
            await ensure_active_keys(session, self.runtime.cipher)
            await ledger.upsert_policies(session, illustrative_policies(business_date().year))
            person = await upsert_person(
                session,
                self.runtime.cipher,
                area="370102",
                id_number=make_id_number("370102", dt.date(1980, 1, 1), 3),
                name="状态机",
                category="employee",
            )
            session.add(
                Enrolment(
                    person_id=person.id,
                    insurance_type="310",
                    area="370102",
                    status="active",
                    start_date=dt.date(2020, 1, 1),
                )
            )
            client, _ = await register_client(
                session,
                cipher=self.runtime.cipher,
                kind="institution",
                name="H",
                code="P37010200003",
                level="community",
                area="370102",
            )
            ecert = ECert(person_id=person.id, channel="c", number="E1", pseudonym="p" * 12)
            session.add(ecert)
            await session.flush()
            self.person_id, self.ecert_id = person.id, ecert.id
            await ledger.credit(session, person.id, START, "start")
        self.principal = Principal(
            client.client_id, "institution", frozenset(), None, "P37010200003"
        )

    async def _new_token(self) -> str:
        """A fresh ec_token: each opens one settlement and is then spent."""
        token = "370102" + secrets.token_hex(16)
        async with self.runtime.sessions.begin() as session:
            session.add(
                EcToken(
                    token=token,
                    person_id=self.person_id,
                    ecert_id=self.ecert_id,
                    institution_code="P37010200003",
                    expires_at=utcnow() + dt.timedelta(hours=1),
                    ecert_version=1,
                )
            )
        return token

    def _bill(self, amount: int) -> SettlementRequest:
        return SettlementRequest(
            ec_token=_run(self._new_token),
            med_type="41",
            use_account=True,
            items=[BillItem(code="A", name="药", item_class="A", amount=amount)],
        )

    async def _settle(self, key: str, bill: SettlementRequest) -> tuple[int, dict[str, Any], bool]:
        async with self.runtime.sessions() as session:
            answer = await services.settle(session, self.runtime, self.principal, bill, key)
            await session.commit()
            return answer

    @rule(amount=st.integers(1, 20_000))
    def settle(self, amount: int) -> None:
        key, bill = uuid.uuid4().hex, self._bill(amount)
        status, body, replayed = _run(lambda: self._settle(key, bill))
        assert (status, replayed) == (201, False)
        self.answers[key] = {"bill": bill, "body": body}

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        if not self.answers:
            return
        key = data.draw(st.sampled_from(sorted(self.answers)))
        _, body, replayed = _run(lambda: self._settle(key, self.answers[key]["bill"]))
        assert replayed
        assert body == self.answers[key]["body"]

    @rule(amount=st.integers(1, 20_000))
    def crash_after_commit(self, amount: int) -> None:
        """The settlement commits; the answer never reaches the client; the client retries."""
        key, bill = uuid.uuid4().hex, self._bill(amount)
        _run(lambda: self._settle(key, bill))  # answer lost
        _, body, replayed = _run(lambda: self._settle(key, bill))
        assert replayed
        self.answers[key] = {"bill": bill, "body": body}

    @rule(amount=st.integers(1, 20_000))
    def crash_before_commit(self, amount: int) -> None:
        """The worker dies holding the key: nothing written; retries wait, then it settles once."""
        key, bill = uuid.uuid4().hex, self._bill(amount)
        fingerprint = idempotency.fingerprint("/v1/settlements", bill)
        _run(lambda: idempotency.claim(self.runtime, self.principal.client_id, key, fingerprint))
        try:
            _run(lambda: self._settle(key, bill))
            raise AssertionError("a claimed key must answer 409 while its claim is fresh")
        except IdempotencyInProgress:
            pass

        async def age() -> None:
            async with self.runtime.sessions.begin() as session:
                await session.execute(
                    update(IdempotencyRecord)
                    .where(IdempotencyRecord.key == key)
                    .values(started_at=utcnow() - dt.timedelta(minutes=5))
                )

        _run(age)
        status, body, replayed = _run(lambda: self._settle(key, bill))
        assert (status, replayed) == (201, False)
        self.answers[key] = {"bill": bill, "body": body}

    @rule(data=st.data(), share=st.floats(0.01, 1.2))
    def reverse(self, data: st.DataObject, share: float) -> None:
        if not self.answers:
            return
        key = data.draw(st.sampled_from(sorted(self.answers)))
        result = self.answers[key]["body"]
        amount = max(1, int(result["total"] * share))

        async def work() -> None:
            async with self.runtime.sessions() as session:
                await reversal.reverse(
                    session,
                    self.runtime,
                    self.principal,
                    uuid.UUID(result["settlement_id"]),
                    ReversalRequest(reason="t", amount=amount),
                    uuid.uuid4().hex,
                )
                await session.commit()

        with contextlib.suppress(ReversalTooLarge):
            _run(work)

    @invariant()
    def ledger_holds(self) -> None:
        if not hasattr(self, "runtime"):
            return

        async def check() -> None:
            async with self.runtime.sessions() as session:
                balance = await session.scalar(select(Account.balance))
                total = await session.scalar(select(func.sum(LedgerEntry.amount)))
                count = await session.scalar(select(func.count()).select_from(Settlement))
                rows = (await session.scalars(select(Settlement))).all()
            assert balance is not None
            assert balance >= 0  # I1
            assert total == balance  # I2: credits − debits + reversals
            assert count == len(self.answers)  # I3: each key at most once
            for s in rows:  # I4
                assert s.reversed_total <= s.total
                assert s.reversed_account <= s.account_paid

        _run(check)

    def teardown(self) -> None:
        if hasattr(self, "runtime"):
            _run(self.runtime.engine.dispose)


Money.TestCase.settings = settings(
    max_examples=12, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
)
test_money_state_machine = Money.TestCase
