"""The master's API as an OpenAPI 3.1 document, generated from its routes.

:func:`openapi_document` walks the Starlette routes the app really serves and looks up
each ``(method, path)`` in :data:`OPERATIONS`; a route without an entry is an error, so
the document cannot silently fall behind the routes. Request schemas come from the
validators' own tables (:func:`examples.common.spec.spec_json_schema`, the limits in
:mod:`examples.master.wire`), not from a copy kept by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Route

from examples.common.spec import PRIORITIES, QUEUES, spec_json_schema
from examples.master import wire

__all__ = ["OPERATIONS", "Operation", "openapi_document"]

JOB_STATUSES = ("queued", "assigned", "running", "completed", "failed", "canceled")
NODE_STATUSES = ("online", "offline", "removed")

_ERROR = {
    "type": "object",
    "description": '{"error": message, "detail": ...}; rate-limit 429s are problem+json',
}
_OBJECT: dict[str, Any] = {"type": "object"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_JOB = {
    "type": "object",
    "required": ["id", "seq", "status", "scenario", "queue", "priority", "spec", "attempt"],
    "properties": {
        "id": {"type": "string"},
        "seq": {"type": "integer"},
        "status": {"enum": list(JOB_STATUSES)},
        "scenario": {"type": "string"},
        "queue": {"enum": list(QUEUES)},
        "priority": {"enum": list(PRIORITIES)},
        "spec": _OBJECT,
        "node_id": _NULLABLE_STRING,
        "attempt": {"type": "integer"},
        "failures": {"type": "integer"},
        "error": _NULLABLE_STRING,
        "dead_letter": {"type": "boolean"},
        "attempts": {"type": "array", "items": _OBJECT},
    },
}
_NODE = {
    "type": "object",
    "required": ["id", "status", "capacity"],
    "properties": {
        "id": {"type": "string"},
        "status": {"enum": list(NODE_STATUSES)},
        "capacity": _OBJECT,
        "labels": _OBJECT,
        "encoders": {"type": "array", "items": {"type": "string"}},
        "jobs": {"type": "array", "items": _OBJECT},
    },
}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_NODE_ID = {"type": "string", "pattern": wire.NODE_ID.pattern}
_ATTEMPT = {"type": "integer", "minimum": 1}
_REGISTER = {
    "type": "object",
    "required": ["node_id", "capacity"],
    "properties": {
        "node_id": _NODE_ID,
        "capacity": {
            "type": "object",
            "required": ["cpu"],
            "properties": {
                "cpu": {"type": "number", "exclusiveMinimum": 0, "maximum": 4096},
                "ram_gb": {"type": "number", "minimum": 0, "maximum": 65536},
                "gpu": {"type": "integer", "minimum": 0, "maximum": 64},
                "extended": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "labels": {
            "type": "object",
            "maxProperties": wire.MAX_LABELS,
            "additionalProperties": {"type": "string", "maxLength": 256},
        },
        "encoders": {
            "type": "array",
            "maxItems": wire.MAX_ENCODERS,
            "items": {"type": "string", "maxLength": 64},
        },
        "version": {"type": "string", "maxLength": 64},
    },
}
_PROGRESS = {
    "type": "object",
    "required": ["node_id", "attempt"],
    "properties": {
        "node_id": _NODE_ID,
        "attempt": _ATTEMPT,
        **dict.fromkeys(("percent", "fps", "speed", "out_time_s", "frame"), _NUMBER_OR_NULL),
    },
}
_RESULT = {
    "type": "object",
    "required": ["node_id", "attempt", "status"],
    "properties": {
        "node_id": _NODE_ID,
        "attempt": _ATTEMPT,
        "status": {"enum": list(wire.RESULT_STATUSES)},
        "retryable": {"type": "boolean"},
        "exit_code": {"type": ["integer", "null"]},
        "outputs": {"type": "array", "items": _OBJECT},
        "error": _NULLABLE_STRING,
        "log_tail": _NULLABLE_STRING,
    },
}


@dataclass(frozen=True)
class Operation:
    """What the document says about one route: purpose, who may call it, bodies."""

    summary: str
    role: str | None  # "submitter", "worker", "node" (worker key + X-Node-Token) or public
    responses: dict[str, dict[str, Any] | None]  # status -> JSON schema (None: no body)
    body: dict[str, Any] | None = None
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: bool = False  # the success body is text/plain (metrics)


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/health"): Operation(
        "Liveness and a summary (never rate limited, no key)",
        None,
        {
            "200": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string"},
                    "nodes_online": {"type": "integer"},
                    "queued": {"type": "integer"},
                },
            }
        },
    ),
    ("GET", "/metrics"): Operation("Prometheus metrics", None, {"200": None}, text=True),
    ("GET", "/openapi.json"): Operation("This document", None, {"200": _OBJECT}),
    ("POST", "/jobs"): Operation(
        "Submit a job", "submitter", {"201": _JOB}, body=spec_json_schema()
    ),
    ("GET", "/jobs"): Operation(
        "List jobs, newest first, paginated",
        "submitter",
        {
            "200": {
                "type": "object",
                "required": ["jobs", "next_cursor"],
                "properties": {
                    "jobs": {"type": "array", "items": _JOB},
                    "next_cursor": _NULLABLE_STRING,
                },
            }
        },
        query={
            "status": {"enum": list(JOB_STATUSES)},
            "queue": {"enum": list(QUEUES)},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500},
            "cursor": {"type": "string", "pattern": "^[0-9]+$"},
        },
    ),
    ("GET", "/jobs/{job_id}"): Operation("A job with its attempts", "submitter", {"200": _JOB}),
    ("POST", "/jobs/{job_id}/cancel"): Operation("Cancel a job", "submitter", {"200": _JOB}),
    ("POST", "/jobs/{job_id}/retry"): Operation(
        "Requeue a failed or canceled job", "submitter", {"200": _JOB}
    ),
    ("POST", "/jobs/{job_id}/progress"): Operation(
        "A worker's progress report", "node", {"200": _OBJECT}, body=_PROGRESS
    ),
    ("POST", "/jobs/{job_id}/result"): Operation(
        "How an attempt ended", "node", {"200": _OBJECT}, body=_RESULT
    ),
    ("GET", "/scenarios"): Operation("The scenario registry", "submitter", {"200": _OBJECT}),
    ("GET", "/nodes"): Operation(
        "List nodes, paginated",
        "submitter",
        {
            "200": {
                "type": "object",
                "required": ["nodes"],
                "properties": {"nodes": {"type": "array", "items": _NODE}},
            }
        },
        query={
            "limit": {"type": "integer", "minimum": 1, "maximum": 500},
            "cursor": {"type": "string"},
        },
    ),
    ("POST", "/nodes/register"): Operation(
        "Register a node (worker enrollment key); returns its node_token",
        "worker",
        {
            "200": {
                "type": "object",
                "required": ["node_id", "node_token", "heartbeat_interval"],
                "properties": {
                    "node_id": {"type": "string"},
                    "node_token": {"type": "string"},
                    "heartbeat_interval": {"type": "number"},
                    "heartbeat_timeout": {"type": "number"},
                },
            }
        },
        body=_REGISTER,
    ),
    ("GET", "/nodes/{node_id}"): Operation("A node", "submitter", {"200": _NODE}),
    ("DELETE", "/nodes/{node_id}"): Operation(
        "Remove a node and revoke its token (operator), or deregister (the node itself)",
        "node",
        {"200": _OBJECT},
    ),
    ("POST", "/nodes/{node_id}/heartbeat"): Operation(
        "Liveness of a node; answers with jobs to cancel",
        "node",
        {"200": _OBJECT},
        body={"type": "object", "properties": {"running": {"type": "array", "items": _OBJECT}}},
    ),
    ("POST", "/nodes/{node_id}/claim"): Operation(
        "Long-poll for the node's next assignment (204: none within wait)",
        "node",
        {"200": _OBJECT, "204": None},
        body={"type": "object", "properties": {"wait": {"type": "number", "minimum": 0}}},
    ),
}

_SECURITY: dict[str | None, list[dict[str, list[str]]]] = {
    "submitter": [{"submitterKey": []}],
    "worker": [{"workerKey": []}],
    "node": [{"workerKey": [], "nodeToken": []}, {"submitterKey": []}],
    None: [],
}


def _operation(method: str, path: str, route: Route, op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in op.responses.items():
        if schema is None and op.text:
            responses[status] = {
                "description": "OK",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        elif schema is None:
            responses[status] = {"description": "No content"}
        else:
            responses[status] = {
                "description": "OK",
                "content": {"application/json": {"schema": schema}},
            }
    responses["default"] = {
        "description": "An error",
        "content": {
            "application/json": {"schema": _ERROR},
            "application/problem+json": {"schema": _OBJECT},
        },
    }
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in op.query.items()
    ]
    document: dict[str, Any] = {
        "operationId": method.lower() + re.sub(r"[/{}]+", "_", path).rstrip("_"),
        "summary": op.summary,
        "security": _SECURITY[op.role],
        "responses": responses,
    }
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        document["requestBody"] = {
            "required": (method == "POST" and op.role != "node") or path.endswith("/result"),
            "content": {"application/json": {"schema": op.body}},
        }
    return document


def openapi_document(routes: list[Route], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``; raises ``LookupError`` for an undocumented one."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op = OPERATIONS.get((method, route.path))
            if op is None:
                raise LookupError(f"{method} {route.path} has no entry in OPERATIONS")
            paths.setdefault(route.path, {})[method.lower()] = _operation(
                method, route.path, route, op
            )
    bearer = {"type": "http", "scheme": "bearer"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ffrtmp reference master", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "submitterKey": {**bearer, "description": "the submitter/admin key"},
                "workerKey": {**bearer, "description": "the worker enrollment key"},
                "nodeToken": {"type": "apiKey", "in": "header", "name": "X-Node-Token"},
            }
        },
    }
