"""Run as a child process: continue the parent's trace from TRACEPARENT and export a span.

argv[1] is the OTLP endpoint. Prints the ids it saw as JSON on stdout.
"""

from __future__ import annotations

import json
import sys

from opentelemetry import baggage, context, trace

from ffrtmp_infra.tracing import TracingConfig, context_from_env, init_tracer


def main() -> None:
    handle = init_tracer(
        TracingConfig(service_name="child", otlp_endpoint=sys.argv[1], export_timeout=2)
    )
    parent_context = context_from_env()
    parent = trace.get_current_span(parent_context).get_span_context()
    token = context.attach(parent_context)
    try:
        with trace.get_tracer("child").start_as_current_span("child.work") as span:
            ids = {
                "parent_trace_id": format(parent.trace_id, "032x"),
                "parent_span_id": format(parent.span_id, "016x"),
                "span_id": format(span.get_span_context().span_id, "016x"),
                "baggage": baggage.get_baggage("job.id"),
            }
    finally:
        context.detach(token)
    handle.shutdown()
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
