"""``create_app(settings)``: builds the Litestar app. Importing this module has no side effects.

The top of the house: it wires every domain's controllers to the request plumbing of
``ecert.server``, which sits below the domains and imports none of them (``lint-imports``).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
    SQLAlchemyPlugin,
)
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import __version__
from ecert.agency.controllers import (
    AgencyKeysController,
    AgencyPersonController,
    AgencyReconciliationController,
    StaffSessionController,
)
from ecert.agency.lookups import AgencyLookupController
from ecert.apischema.document import render_plugins
from ecert.apischema.operation_ids import operation_id
from ecert.cards.controllers import AgencyCardController, CardCheckController, MyCardController
from ecert.cards.workdays import calendar
from ecert.config import Settings, get_settings
from ecert.federation.controllers import ClearingController, FederationController
from ecert.federation.middleware import federation_middleware
from ecert.federation.routing import load_federation
from ecert.fhir.controllers import FhirController
from ecert.fhir.outcome import as_outcome
from ecert.gateway.controllers import PATH as GATEWAY_PATH
from ecert.gateway.controllers import GatewayController
from ecert.imports.controllers import ImportController
from ecert.issuance.controllers import (
    AgencyECertController,
    MyECertController,
    PublicKeysController,
)
from ecert.issuance.family.controllers import AgencyFamilyController, FamilyController
from ecert.issuance.feed import FeedCache
from ecert.issuance.mintcache import CACHE_KEY as MINT_CACHE_KEY
from ecert.issuance.mintcache import MintCache
from ecert.lookup.controllers import LookupController
from ecert.metrics import watch_pool
from ecert.oauth.controllers import ServerMetadataController, TokenController
from ecert.oauth.status import ClientStatus
from ecert.ops.controllers import HealthController
from ecert.ops.metrics import MetricsController
from ecert.ops.readiness import Drain, SchemaCheck
from ecert.security.auditchain import audit_key, session_info
from ecert.security.keys import ensure_active_keys
from ecert.server.auth import admit
from ecert.server.commit import finish_request_session, remember
from ecert.server.deps import RuntimeDep
from ecert.server.edge import edge_middleware
from ecert.server.gate import gate_middleware
from ecert.server.observability import configure_logging, log_startup
from ecert.server.problems import exception_handlers
from ecert.server.ratelimit import RateLimiter
from ecert.server.runtime import build_runtime
from ecert.server.tracing import add_trace_ids, start_tracing
from ecert.settlement.controllers import AgencyPolicyController, SettlementController
from ecert.settlement.mutual_aid_controllers import MutualAidController
from ecert.settlement.reconciliation.controllers import ReconciliationController
from ecert.settlement.visits.controllers import VisitController
from ecert.verify.controllers import VerifyController
from ecert.web import static_routers
from ecert.web.controllers import DemoController, ScannerController

PUBLIC_PATHS = [
    "^/schema",
    "^/healthz$",
    "^/readyz$",
    "^/metrics$",
    "^/.well-known/",
    "^/fhir/metadata$",
    "^/v1/revocations$",
    "^/(app|scanner|agency|web)(/|$)",
]


def route_handlers(settings: Settings) -> list[Any]:
    """Every controller of every domain, the demo pages, and the demo sign-in when enabled."""
    demo = [DemoController] if settings.demo_signin else []
    return [
        *static_routers(),
        *demo,
        ScannerController,
        HealthController,
        TokenController,
        ServerMetadataController,
        MyECertController,
        AgencyECertController,
        PublicKeysController,
        FamilyController,
        AgencyFamilyController,
        VerifyController,
        SettlementController,
        ReconciliationController,
        VisitController,
        LookupController,
        MutualAidController,
        ImportController,
        MyCardController,
        AgencyCardController,
        CardCheckController,
        AgencyPolicyController,
        GatewayController,
        FhirController,
        ClearingController,
        FederationController,
        StaffSessionController,
        AgencyPersonController,
        AgencyLookupController,
        AgencyKeysController,
        AgencyReconciliationController,
    ]


def served_app() -> Litestar:
    """What ``ecert serve`` has uvicorn build in each worker: the app, whose objects (routes,
    models, the runtime) then leave the garbage collector's generations (``gc.freeze``). They
    live as long as the worker, and a full collection walked all of them: those pauses were the
    p99 of a loaded worker (verify 165 → 51 ms, lookup 187 → 66 ms in ``python -m bench``). Not
    in :func:`create_app`: a process that builds many apps (the tests) would keep their garbage."""
    app = create_app()
    gc.collect()  # only what is alive is frozen
    gc.freeze()
    return app


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings, [add_trace_ids] if settings.otel_enabled else [])
    calendar(settings.workday_file)  # read (and checked) now, not in a request on the event loop
    runtime = build_runtime(settings)
    engine, cipher = runtime.engine, runtime.cipher
    drain = Drain(settings.drain_grace_s)
    federation = load_federation(settings)
    engines = [engine] + ([runtime.group_engine] if runtime.group_engine else [])
    for pooled in engines:
        watch_pool(pooled)
    tracing = start_tracing(settings, *engines)
    mint_cache = MintCache(settings.mint_cache_s)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncGenerator[None, None]:
        async with runtime.sessions.begin() as session:
            await ensure_active_keys(session, cipher)
        await runtime.refresh_keys()
        log_startup(settings)
        drain.install(asyncio.get_running_loop())
        try:
            yield
        finally:
            drain.uninstall()
            if federation is not None:
                await federation.close()
            await runtime.close()
            if tracing is not None:
                tracing.shutdown()  # flushes the spans still batched

    db_config = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_config=AsyncSessionConfig(
            expire_on_commit=False,
            info={
                **session_info(audit_key(runtime)),
                # The request sessions tell the mint cache which e-certs they changed (mintcache).
                MINT_CACHE_KEY: mint_cache,
                # No advanced-alchemy cache is configured: without this its listener asks
                # engine.execution_options() (a copy of the engine) after every commit.
                "enable_cache_listener": False,
            },
        ),
        # No FileObject column exists: its flush and commit listeners would find nothing.
        enable_file_object_listener=False,
        # Our own (ecert.server.commit): the plugin's commits and closes sessions that never began.
        before_send_handler=finish_request_session,
        # Handlers ask for "db_session"; the plugin's own provider goes under a key none asks for.
        session_dependency_key="_plugin_db_session",
    )

    def provide_db_session(runtime: RuntimeDep, state: State, scope: Scope) -> AsyncSession:
        """The request's session (advanced-alchemy's), resolved after ``runtime``.

        ``runtime`` only orders the two: Litestar resolves the dependencies of one level
        together in an anyio task group (two tasks a request); one after the other they are
        two plain calls.
        """
        return remember(scope, db_config.provide_session(state, scope))

    return Litestar(
        route_handlers=[*route_handlers(settings), MetricsController],
        plugins=[SQLAlchemyPlugin(config=db_config), *([tracing.plugin] if tracing else [])],
        dependencies={
            "runtime": Provide(lambda: runtime, sync_to_thread=False, use_cache=True),
            "db_session": Provide(provide_db_session, sync_to_thread=False),
        },
        middleware=[
            # Request id, request log, HTTP metrics; renders the gate's refusals (401, 429).
            edge_middleware,
            # Key ring, caller, rate limit. The national gateway authenticates itself (Bearer or
            # signed _api_* headers).
            gate_middleware([*PUBLIC_PATHS, f"^{GATEWAY_PATH}$"]),
            # Innermost: it needs the caller, and sends other provinces' insured there.
            federation_middleware,
        ],
        exception_handlers=exception_handlers,
        # Each route's guard, named in its opt (ecert.server.auth).
        before_request=admit,
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="ecert",
            version=__version__,
            description="Electronic medical insurance certificates: issue, verify, settle, look up",
            path="/schema",
            render_plugins=render_plugins(PUBLIC_PATHS),
            operation_id_creator=operation_id,
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            security=[{"bearer": []}],
        ),
        state=State(
            {
                "runtime": runtime,
                "rate_limiter": RateLimiter(runtime),
                "feed_cache": FeedCache(),
                "mint_cache": mint_cache,
                "drain": drain,
                "federation": federation,
                "schema_check": SchemaCheck(engine),
                "client_status": ClientStatus(runtime.sessions, settings.client_status_refresh_s),
                # Refusals raised by middleware (401, 429) on a face's paths, in its shape.
                "problem_shapes": {"/fhir/": as_outcome},
            }
        ),
        debug=False,
    )
