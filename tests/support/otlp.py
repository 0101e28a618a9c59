"""Real OTLP receivers on loopback: OTLP/HTTP decoding protobuf (traces and metrics), and gRPC."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived on the wire, with ids as lowercase hex."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int
    status_message: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(pairs)
    return {kv.key: _value(kv.value) for kv in items}


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=int(span.kind),
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        status_code=int(span.status.code),
                        status_message=span.status.message,
                        events=[(e.name, _attributes(e.attributes)) for e in span.events],
                    )
                )
    return spans


@dataclass(frozen=True)
class ReceivedPoint:
    """One metric data point as it arrived: histogram (count, sum, bounds) or sum (value)."""

    metric: str
    unit: str
    kind: str  # "histogram", "sum" or "gauge"
    attributes: dict[str, Any]
    resource: dict[str, Any]
    count: int = 0
    sum: float = 0.0
    bounds: tuple[float, ...] = ()
    value: float = 0.0
    monotonic: bool = False
    exemplars: tuple[tuple[str, str], ...] = ()  # (trace id, span id) as hex


def decode_metrics(body: bytes) -> list[ReceivedPoint]:
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    points = []
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                common = {"metric": metric.name, "unit": metric.unit, "resource": resource}
                if kind == "histogram":
                    for h in metric.histogram.data_points:
                        points.append(
                            ReceivedPoint(
                                kind="histogram",
                                attributes=_attributes(h.attributes),
                                count=h.count,
                                sum=h.sum,
                                bounds=tuple(h.explicit_bounds),
                                exemplars=tuple(
                                    (e.trace_id.hex(), e.span_id.hex()) for e in h.exemplars
                                ),
                                **common,
                            )
                        )
                elif kind in ("sum", "gauge"):
                    data = getattr(metric, kind)
                    for n in data.data_points:
                        points.append(
                            ReceivedPoint(
                                kind=kind,
                                attributes=_attributes(n.attributes),
                                value=getattr(n, n.WhichOneof("value") or "as_int"),
                                monotonic=kind == "sum" and data.is_monotonic,
                                **common,
                            )
                        )
    return points


class OTLPReceiver:
    """Accepts ``POST /v1/traces`` and ``/v1/metrics`` (protobuf, optionally gzip/deflate)
    and keeps the spans and the metric points (each export's points in ``metric_exports``).

    ``delay``: answer each export that many seconds late (a slow collector); ``stop()``
    releases the requests still waiting.
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        self.spans: list[ReceivedSpan] = []
        self.metric_exports: list[list[ReceivedPoint]] = []
        self.requests: list[dict[str, str]] = []  # headers of each export request
        self._cond = threading.Condition()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/metrics":
                    self._metrics(body)
                    return
                if self.path != "/v1/traces":
                    self.send_error(404, f"no OTLP signal at {self.path}")
                    return
                try:
                    spans = decode(body)
                except Exception as exc:  # a malformed export is the exporter's bug: say so
                    self.send_error(400, f"undecodable ExportTraceServiceRequest: {exc}")
                    return
                if delay:
                    receiver._release.wait(delay)
                with receiver._cond:
                    receiver.requests.append(dict(self.headers))
                    receiver.spans.extend(spans)
                    receiver._cond.notify_all()
                self._answer(ExportTraceServiceResponse().SerializeToString())

            def _metrics(self, body: bytes) -> None:
                try:
                    points = decode_metrics(body)
                except Exception as exc:
                    self.send_error(400, f"undecodable ExportMetricsServiceRequest: {exc}")
                    return
                if delay:
                    receiver._release.wait(delay)
                with receiver._cond:
                    receiver.metric_exports.append(points)
                    receiver._cond.notify_all()
                self._answer(ExportMetricsServiceResponse().SerializeToString())

            def _answer(self, payload: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.endpoint}/v1/traces"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait_for_metric_exports(
        self, count: int, timeout: float = 10.0
    ) -> list[list[ReceivedPoint]]:
        """Block until ``count`` metric exports arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.metric_exports) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = len(self.metric_exports)
                    raise AssertionError(
                        f"expected {count} metric exports in {timeout}s, got {got}"
                    )
                self._cond.wait(remaining)
            return list(self.metric_exports)

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Block until at least ``count`` spans arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.spans) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [s.name for s in self.spans]
                    raise AssertionError(f"expected {count} spans in {timeout}s, got {names}")
                self._cond.wait(remaining)
            return list(self.spans)


@contextlib.contextmanager
def grpc_trace_collector(on_export: Callable[[ExportTraceServiceRequest], None]) -> Iterator[int]:
    """A gRPC OTLP trace service on loopback calling ``on_export``; yields its port."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: ExportTraceServiceRequest, context: Any) -> Any:
            on_export(request)
            return ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)
