"""OpenTelemetry traces, off unless ``ECERT_OTEL_ENABLED``; off, nothing of OpenTelemetry loads.

Server spans come from Litestar's plugin, child spans from the SQLAlchemy and Redis
instrumentations. The exporter is OTLP over HTTP and reads the SDK's own ``OTEL_*`` variables
(endpoint, headers, service name). Every span passes :class:`_Scrubbed` before export: whatever an
instrumentation or an ``OTEL_INSTRUMENTATION_*`` variable adds, no query string, header or client
address leaves the process (query strings and headers may carry tokens and ID numbers).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from ecert.config import ConfigurationError, Settings
from ecert.db import native
from ecert.server.observability import ensure_request_id

if TYPE_CHECKING:
    from litestar.plugins.opentelemetry import OpenTelemetryPlugin
    from litestar.types import Scope
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span as ApiSpan
    from sqlalchemy.ext.asyncio import AsyncEngine

#: Test hook: builds the exporter instead of OTLP (tests put an ``InMemorySpanExporter`` here).
exporter_factory: Callable[[], SpanExporter] | None = None

#: Health and scrape paths: a span each every few seconds is noise.
_UNTRACED = ["^/healthz$", "^/readyz$", "^/metrics$"]
#: Attributes that carry a URL: kept as scheme, host and path.
_URLS = frozenset({"http.url", "url.full"})
#: Attributes that carry the path with its query string: kept as the path.
_TARGETS = frozenset({"http.target"})
#: Attributes dropped outright: query strings, client addresses, agents, user names, and an
#: exception's message and stack trace (a driver's message quotes the values of the row; the
#: log line of the same trace has the traceback with the message withheld).
_DROPPED = frozenset(
    {
        "exception.message",
        "exception.stacktrace",
        "url.query",
        "client.address",
        "client.port",
        "net.peer.ip",
        "net.peer.port",
        "http.client_ip",
        "network.peer.address",
        "network.peer.port",
        "http.user_agent",
        "user_agent.original",
        "db.user",
        "enduser.id",
    }
)
_HEADERS = ("http.request.header.", "http.response.header.")


def scrub(attributes: MutableMapping[str, Any]) -> dict[str, Any]:
    """The attributes fit to export: no query string, header, address, user or error message."""
    kept: dict[str, Any] = {}
    for key, value in attributes.items():
        if key in _DROPPED or key.startswith(_HEADERS):
            continue
        if key in _URLS and isinstance(value, str):
            parts = urlsplit(value)
            value = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        elif key in _TARGETS and isinstance(value, str):
            value = value.partition("?")[0]
        kept[key] = value
    return kept


@dataclass
class Tracing:
    """What :func:`start_tracing` switched on, to be shut down (and flushed) with the app."""

    provider: TracerProvider
    plugin: OpenTelemetryPlugin

    def shutdown(self) -> None:
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        SQLAlchemyInstrumentor().uninstrument()
        RedisInstrumentor().uninstrument()
        native.trace_with(None, None)
        self.provider.shutdown()


def _scrub_event(event: Event) -> Event:
    return type(event)(event.name, scrub(dict(event.attributes or {})), event.timestamp)


def scrubbing(inner: SpanProcessor) -> SpanProcessor:
    """A processor that hands ``inner`` each ended span with :func:`scrub`'s attributes."""
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.trace import Status

    class _Scrubbed(SpanProcessor):
        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            inner.on_start(span, parent_context)

        def on_end(self, span: ReadableSpan) -> None:
            inner.on_end(
                ReadableSpan(
                    name=span.name,
                    context=span.context,
                    parent=span.parent,
                    resource=span.resource,
                    attributes=scrub(dict(span.attributes or {})),
                    events=[_scrub_event(event) for event in span.events],
                    links=span.links,
                    kind=span.kind,
                    # The status's description is the exception's message: the code only.
                    status=Status(span.status.status_code),
                    start_time=span.start_time,
                    end_time=span.end_time,
                    instrumentation_scope=span.instrumentation_scope,
                )
            )

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return inner.force_flush(timeout_millis)

    return _Scrubbed()


def _request_hook(span: ApiSpan, scope: dict[str, Any]) -> None:
    # The request id middleware runs inside this span and reuses the id kept in scope state.
    if span.is_recording():
        span.set_attribute("ecert.request_id", ensure_request_id(cast("Scope", scope)))


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's trace and span ids, so logs and traces join."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def start_tracing(settings: Settings, *engines: AsyncEngine) -> Tracing | None:
    """The tracer provider, exporter and instrumentations; None (and no import) when disabled."""
    if not settings.otel_enabled:
        return None
    try:
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "ECERT_OTEL_ENABLED=true needs the OpenTelemetry packages: install ecert[otel]."
        ) from None
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import SpanKind

    from ecert import __version__

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, win over our defaults.
    ours = Resource({"service.name": "ecert", "service.version": __version__})
    resource = Resource.create().merge(ours).merge(OTELResourceDetector().detect())
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio))
    )
    exporter = exporter_factory() if exporter_factory else OTLPSpanExporter()
    provider.add_span_processor(scrubbing(BatchSpanProcessor(exporter)))
    # Statements are recorded with their placeholders; the engine has hide_parameters=True and
    # the instrumentation never records bound values. The commenter stays off.
    SQLAlchemyInstrumentor().instrument(
        engines=[engine.sync_engine for engine in engines], tracer_provider=provider
    )
    native.trace_with(provider.get_tracer("ecert.db"), SpanKind.CLIENT)
    # Redis commands are recorded as "SET ? ?": names only, no keys or values.
    RedisInstrumentor().instrument(tracer_provider=provider)
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        exclude=_UNTRACED,
        exclude_spans=["receive", "send"],
        server_request_hook_handler=_request_hook,
    )
    return Tracing(provider=provider, plugin=OpenTelemetryPlugin(config))
