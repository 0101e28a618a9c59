"""The semantic-convention attribute names this package writes, as plain strings.

Owned here rather than imported from ``opentelemetry.semconv``: its modules
moved between releases (``attributes.db_attributes`` and
``deployment_attributes`` only exist from 1.41/1.42 on, the process names are
still in the unstable ``_incubating`` package), and an import of a module an
older release lacks would make the whole package unusable there. The names
themselves are the specification's and do not change; ``tests/tracing/
test_attributes.py`` checks them against whichever semconv package is installed.
"""

from __future__ import annotations

# HTTP server (stable).
CLIENT_ADDRESS = "client.address"
CLIENT_PORT = "client.port"
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_REQUEST_METHOD_ORIGINAL = "http.request.method_original"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_ROUTE = "http.route"
NETWORK_PROTOCOL_VERSION = "network.protocol.version"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
URL_PATH = "url.path"
URL_QUERY = "url.query"
URL_SCHEME = "url.scheme"
USER_AGENT_ORIGINAL = "user_agent.original"
USER_AGENT_SYNTHETIC_TYPE = "user_agent.synthetic.type"  # still "development"

# Errors and exceptions (stable).
ERROR_TYPE = "error.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"
EXCEPTION_TYPE = "exception.type"

# Database client (stable since semconv 1.33).
DB_COLLECTION_NAME = "db.collection.name"
DB_OPERATION_NAME = "db.operation.name"
DB_SYSTEM_NAME = "db.system.name"

# Resource (stable; deployment.environment.name since semconv 1.27).
DEPLOYMENT_ENVIRONMENT_NAME = "deployment.environment.name"
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"

# Process (still "development" in the specification).
PROCESS_COMMAND_ARGS = "process.command_args"
PROCESS_EXECUTABLE_NAME = "process.executable.name"
PROCESS_EXIT_CODE = "process.exit.code"
PROCESS_PID = "process.pid"
