"""Two real ``ecert serve`` processes as two provinces: a cross-province verify and settle over
real HTTP on loopback (bounded in time)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec

from ecert.config import Settings
from ecert.db.models import ClearingRecord, Settlement
from ecert.server.runtime import Runtime, build_runtime
from tests.factories import holder, institution, load_policies
from tests.federation.conftest import AREA_B, federate
from tests.federation.steps import HOSPITAL_B, count, fee, keyed
from tests.fixtures.app import clean
from tests.helpers import settings_env
from tests.servers import _wait_port, free_port
from tests.settlement.visit_steps import visit_body


@contextmanager
def serving(settings: Settings, port: int) -> Iterator[None]:
    env = {
        **os.environ,
        **settings_env(settings),
        "ECERT_FEDERATION_FILE": settings.federation_file,
        "ECERT_LOG_LEVEL": "WARNING",
    }
    if settings.is_sqlite:
        env.pop("ECERT_DATABASE_URL")  # the embedded file in ECERT_DATA_DIR
    process = subprocess.Popen(
        [sys.executable, "-m", "ecert.cli", "serve", "--port", str(port)],
        env=env,
        start_new_session=True,
    )
    try:
        _wait_port(port, 60)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


async def _verify_and_settle(
    client_a: httpx.AsyncClient, client_b: httpx.AsyncClient, runtime_a: Runtime, runtime_b: Runtime
) -> None:
    """A's insured person at B's hospital: verify, open, fees, settle — all through B."""
    await load_policies(runtime_a)
    person = await holder(client_a, runtime_a)
    hospital = await institution(client_b, runtime_b, code=HOSPITAL_B, area=AREA_B, level="3")
    verified = await client_b.post(
        "/v1/verify", json={"qr": await person.qr(client_a)}, headers=hospital
    )
    assert verified.status_code == 200, verified.text
    body = visit_body(verified.json()["ec_token"])
    opened = await client_b.post("/v1/visits", json=body, headers=keyed(hospital))
    assert opened.status_code == 201, opened.text
    visit = opened.json()["visit_id"]
    lines = {"lines": [fee("1", 150_000)]}
    uploaded = await client_b.post(f"/v1/visits/{visit}/fees", json=lines, headers=hospital)
    assert uploaded.status_code == 200, uploaded.text
    settled = await client_b.post(
        f"/v1/visits/{visit}/settlements", json={}, headers=keyed(hospital)
    )
    assert settled.status_code == 201, settled.text
    assert settled.json()["fund_paid"] == 15_000


async def test_two_provinces_as_processes_verify_and_settle_over_http(
    province_a_base: Settings, province_b_base: Settings, tmp_path: Path
) -> None:
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    a, b = await federate(
        msgspec.structs.replace(province_a_base, issuer_url=url_a),
        msgspec.structs.replace(province_b_base, issuer_url=url_b),
        tmp_path,
        url_a,
        url_b,
    )
    runtime_a, runtime_b = build_runtime(a), build_runtime(b)
    try:
        with serving(a, port_a), serving(b, port_b):
            async with (
                httpx.AsyncClient(base_url=url_a, timeout=20) as client_a,
                httpx.AsyncClient(base_url=url_b, timeout=20) as client_b,
            ):
                await runtime_a.refresh_keys()
                await _verify_and_settle(client_a, client_b, runtime_a, runtime_b)
        assert (await count(runtime_a, Settlement), await count(runtime_b, Settlement)) == (1, 0)
        assert await count(runtime_b, ClearingRecord) == 1
    finally:
        for runtime, settings in ((runtime_a, a), (runtime_b, b)):
            await clean(runtime, settings.redis_url)
            await runtime.engine.dispose()
            await runtime.store.close()
