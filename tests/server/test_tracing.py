"""OpenTelemetry traces: off by default; on, a verify is a server span with database children."""

from __future__ import annotations

import contextlib
import json
import sys

import msgspec
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ecert.config import ConfigurationError, Settings, settings_from_env
from ecert.server import tracing
from ecert.server.runtime import Runtime
from tests.factories import holder, institution
from tests.fixtures.app import AppFactory, open_client

REQUEST_ID = "trace-test-0001"


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    spans = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "exporter_factory", lambda: spans)
    return spans


def _descends(span: ReadableSpan, root: ReadableSpan, by_id: dict[int, ReadableSpan]) -> bool:
    current: ReadableSpan | None = span
    while current is not None and current.parent is not None:
        if current.parent.span_id == root.context.span_id:
            return True
        current = by_id.get(current.parent.span_id)
    return False


async def test_verify_is_a_server_span_with_database_children_and_no_personal_data(
    make_app: AppFactory, exporter: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(otel_enabled=True, log_json=True, log_level="INFO")
    runtime: Runtime = app.state.runtime
    async with open_client(app) as client:
        person = await holder(client, runtime, name="李四")
        hospital = await institution(client, runtime)
        qr = await person.qr(client)
        response = await client.post(
            "/v1/verify?id_number=" + person.id_number,
            json={"qr": qr, "business_type": "01101"},
            headers={**hospital, "X-Request-ID": REQUEST_ID},
        )
        assert response.status_code == 200, response.text
        ec_token = response.json()["ec_token"]
    # The app's shutdown flushed the batch.
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    [server] = [
        span
        for span in spans
        if span.kind == SpanKind.SERVER
        and (span.attributes or {}).get("ecert.request_id") == REQUEST_ID
    ]
    assert "/v1/verify" in server.name
    children = [span for span in spans if _descends(span, server, by_id)]
    systems = {(span.attributes or {}).get("db.system") for span in children}
    assert systems & {"sqlite", "postgresql"}, [span.name for span in children]
    if runtime.settings.redis_url:
        assert "redis" in systems
    secrets = [person.id_number, person.id_number[-4:] + "'", "李四", qr, ec_token]
    secrets += [
        value.removeprefix("Bearer ") for value in (*hospital.values(), *person.headers.values())
    ]
    for span in spans:
        text = repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events])
        for secret in secrets:
            assert secret not in text, (span.name, secret)
        assert "authorization" not in text.lower()
        assert "?" not in str((span.attributes or {}).get("http.target", ""))
    # The request's log line carries the trace id: logs and traces join.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    [logged] = [line for line in lines if line.get("request_id") == REQUEST_ID]
    assert logged["trace_id"] == format(server.context.trace_id, "032x")


async def test_disabled_by_default_builds_no_provider(make_app: AppFactory) -> None:
    assert Settings().otel_enabled is False
    app = make_app()
    assert tracing.start_tracing(app.state.runtime.settings, app.state.runtime.engine) is None
    assert "OpenTelemetryPlugin" not in {type(plugin).__name__ for plugin in app.plugins}


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"ECERT_OTEL_SAMPLE_RATIO": "1.5"}, "ECERT_OTEL_SAMPLE_RATIO"),
        ({"ECERT_OTEL_SAMPLE_RATIO": "-0.1"}, "ECERT_OTEL_SAMPLE_RATIO"),
        ({"ECERT_OTEL_ENABLED": "perhaps"}, "ECERT_OTEL_ENABLED"),
        ({"ECERT_OTEL_ENABLE": "true"}, "did you mean ECERT_OTEL_ENABLED"),
    ],
)
def test_bad_tracing_setting_is_one_plain_sentence(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        settings_from_env(environ)
    message = str(refused.value)
    assert named in message
    assert "\n" not in message
    assert message.endswith((".", "?)."))


def test_scrub_keeps_paths_and_drops_queries_headers_and_addresses() -> None:
    kept = tracing.scrub(
        {
            "http.url": "http://user:pw@host:8000/v1/verify?id_number=1",
            "http.target": "/v1/verify?id_number=1",
            "url.query": "id_number=1",
            "http.request.header.authorization": ("Bearer x",),
            "net.peer.ip": "10.0.0.1",
            "exception.message": "DETAIL: Key (x)=(1)",
            "exception.stacktrace": "Traceback … DETAIL: Key (x)=(1)",
            "exception.type": "UniqueViolationError",
            "http.method": "POST",
        }
    )
    assert kept == {
        "http.url": "http://host/v1/verify",
        "http.target": "/v1/verify",
        "http.method": "POST",
        "exception.type": "UniqueViolationError",
    }


def test_a_failed_span_is_exported_without_the_error_message() -> None:
    """SQLAlchemy's and Redis's instrumentations put a driver's message in status and events."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(tracing.scrubbing(SimpleSpanProcessor(spans)))
    leaked = "Key (id_number_hash)=(370102198005170016) already exists."
    with contextlib.suppress(ValueError), provider.get_tracer("test").start_as_current_span("q"):
        raise ValueError(leaked)
    [span] = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    text = repr(span.status.description) + repr([event.attributes for event in span.events])
    assert "370102198005170016" not in text
    assert "ValueError" in text


def test_enabled_without_the_extra_is_one_plain_sentence(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime: Runtime = make_app().state.runtime
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)  # as if not installed
    enabled = msgspec.structs.replace(runtime.settings, otel_enabled=True)
    with pytest.raises(ConfigurationError, match=r"^ECERT_OTEL_ENABLED=true needs .*otel\]\.$"):
        tracing.start_tracing(enabled, runtime.engine)
