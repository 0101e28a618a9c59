"""What the ASGI and WSGI middleware share: the tracer plan, exclusions, attributes.

The per-request cost that matters is the unsampled request: most production
traffic at a 10% ratio. So before anything else the plan asks whether the
sampler's answer is already certain (ratio 0, or an unsampled parent under a
parent-based sampler). Then no attribute is built and no SDK span is made:
the request runs under a :class:`NonRecordingSpan` that carries fresh ids,
exactly what the SDK itself would have produced, so downstream propagation
still says "not sampled".
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import get_global_textmap
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)

from ffrtmp_infra import __version__
from ffrtmp_infra.tracing._compat import (
    RANDOM_TRACE_ID,
    fresh_context_with_span,
    global_provider,
    ids_are_random,
    parent_based_delegates,
)
from ffrtmp_infra.tracing._errors import ConfigurationError
from ffrtmp_infra.tracing._propagation import CASE_INSENSITIVE_GETTER

__all__ = [
    "DEFAULT_EXCLUDED_URLS",
    "Exclusions",
    "Plan",
    "SamplingIdGenerator",
    "global_provider",
    "normalize_method",
    "redact_query",
]

INSTRUMENTATION_NAME = "ffrtmp_infra.tracing"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"

#: Paths never traced unless you pass your own list: health probes and metrics scrapes.
DEFAULT_EXCLUDED_URLS: tuple[str, ...] = (
    r"^/healthz?/?$",
    r"^/livez/?$",
    r"^/readyz/?$",
    r"^/metrics/?$",
)

_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)

# Query parameters whose values never reach a span (semconv asks to redact
# signatures; stream keys and tokens are this project's own secrets).
_SENSITIVE_QUERY_KEYS = frozenset(
    {
        "key", "stream_key", "streamkey", "token", "access_token", "auth", "password",
        "passwd", "pwd", "secret", "sig", "signature", "api_key", "apikey",
        "passphrase", "pass", "credential", "credentials", "awsaccesskeyid",
        "x-goog-signature", "x-amz-signature", "x-amz-credential",
    }
)  # fmt: skip
REDACTED = "REDACTED"


def normalize_method(method: str) -> tuple[str, str | None]:
    """(``http.request.method``, original if it was not a known method) per HTTP semconv."""
    upper = method.upper()
    if upper in _KNOWN_METHODS:
        return upper, (method if method != upper else None)
    return "_OTHER", method


def redact_query(query: str) -> str:
    """``query`` with the values of secret-looking parameters replaced by ``REDACTED``."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in _SENSITIVE_QUERY_KEYS for k, _ in pairs):
        return query
    return urlencode(
        [(k, REDACTED if k.lower() in _SENSITIVE_QUERY_KEYS else v) for k, v in pairs],
        safe="/:",
    )


class Exclusions:
    """Regexes searched in the request path (``re.search``); a match is not traced."""

    def __init__(self, patterns: str | Sequence[str]) -> None:
        if isinstance(patterns, str):
            patterns = [p.strip() for p in patterns.split(",") if p.strip()]
        compiled = []
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise ConfigurationError(f"excluded_urls entries must be strings, got {pattern!r}")
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ConfigurationError(
                    f"excluded_urls pattern {pattern!r} is not a valid regex: {exc}"
                ) from None
        self.patterns: tuple[str, ...] = tuple(p.pattern for p in compiled)
        #: ``matcher(path)`` is not None for an excluded path; None when nothing is excluded.
        self.matcher: Callable[[str], object] | None = None
        if self.patterns:
            combined = re.compile("|".join(f"(?:{p})" for p in self.patterns))
            # All anchored at the start: match() gives search()'s answer, faster.
            anchored = all(p.startswith("^") for p in self.patterns)
            self.matcher = combined.match if anchored else combined.search

    def excluded(self, path: str) -> bool:
        return self.matcher is not None and self.matcher(path) is not None

    @classmethod
    def resolve(cls, explicit: str | Sequence[str] | None, env_vars: Iterable[str]) -> Exclusions:
        """The argument, else the ``init_tracer`` config, else the env vars, else the defaults."""
        from ffrtmp_infra.tracing._setup import active_config

        if explicit is not None:
            return cls(explicit)
        config = active_config()
        if config is not None and config.excluded_urls is not None:
            return cls(config.excluded_urls)
        for var in env_vars:
            value = os.environ.get(var, "").strip()
            if value:
                return cls(value)
        return cls(DEFAULT_EXCLUDED_URLS)


def _always_drops(sampler: Sampler) -> bool:
    if sampler is ALWAYS_OFF:
        return True
    return isinstance(sampler, TraceIdRatioBased) and sampler.bound == 0


def _attribute_blind(sampler: Sampler) -> bool:
    """Samplers that ignore span attributes, so they need not be built before sampling."""
    if isinstance(sampler, ParentBased):
        delegates = parent_based_delegates(sampler)
        return delegates is not None and all(_attribute_blind(d) for d in delegates.all())
    return isinstance(sampler, StaticSampler | TraceIdRatioBased)


_NO_FLAGS = TraceFlags(0)
_TRACE_ID_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT


class SamplingIdGenerator(RandomIdGenerator):
    """The SDK's random ids, plus a way to hand the next trace id to the SDK.

    The middleware draws a root trace id itself and applies the ratio sampler's
    rule to it (the low 64 bits against the bound). An unsampled request then
    needs no SDK span at all; a sampled one primes this generator so the SDK
    creates its span with that very id, and the SDK's sampler, seeing the same
    id, reaches the same decision. ``init_tracer`` installs this generator.
    """

    def __init__(self) -> None:
        self._primed = threading.local()

    def prime(self, trace_id: int) -> None:
        """Make the next :meth:`generate_trace_id` in this thread return ``trace_id``."""
        self._primed.trace_id = trace_id

    def generate_trace_id(self) -> int:
        primed = getattr(self._primed, "trace_id", 0)
        if primed:
            self._primed.trace_id = 0
            return primed
        return super().generate_trace_id()

    def random_trace_id(self) -> int:
        """A fresh random trace id, ignoring any primed one."""
        return super().generate_trace_id()


@dataclass
class Plan:
    """How to trace with one provider; rebuilt when the global provider changes."""

    provider: trace.TracerProvider | None
    tracer: trace.Tracer | None  # None: tracing is off, pass requests straight through
    drop_roots: bool = False
    drop_unsampled_remote: bool = False
    attribute_blind: bool = False
    id_generator: IdGenerator | None = None
    random_flag: int = 0
    root_flags: TraceFlags = _NO_FLAGS
    # Set when roots are sampled by ratio and the ids come from SamplingIdGenerator.
    root_bound: int | None = None

    @classmethod
    def build(cls, provider: trace.TracerProvider | None) -> Plan:
        if provider is None or isinstance(provider, trace.NoOpTracerProvider):
            return cls(provider, None)
        tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__, schema_url=SCHEMA_URL)
        if isinstance(tracer, trace.NoOpTracer):  # e.g. OTEL_SDK_DISABLED=true
            return cls(provider, None)
        if not isinstance(tracer, SdkTracer):
            return cls(provider, tracer)  # another SDK: always the plain API path
        sampler = tracer.sampler
        # A parent-based sampler whose delegates cannot be read (see _compat) is
        # its own "root": not a known dropper, so the SDK decides every request.
        delegates = parent_based_delegates(sampler) if isinstance(sampler, ParentBased) else None
        root = delegates.root if delegates is not None else sampler
        drop_roots = _always_drops(root)
        if delegates is not None:
            drop_unsampled = _always_drops(delegates.remote_parent_not_sampled)
        elif isinstance(sampler, ParentBased):
            drop_unsampled = False
        else:
            drop_unsampled = drop_roots
        generator = tracer.id_generator
        root_bound = None
        if (
            isinstance(generator, SamplingIdGenerator)
            and isinstance(root, TraceIdRatioBased)
            and 0 < root.bound <= _TRACE_ID_LIMIT
        ):
            root_bound = root.bound
        random_flag = RANDOM_TRACE_ID if ids_are_random(generator) else 0
        return cls(
            provider,
            tracer,
            drop_roots=drop_roots,
            drop_unsampled_remote=drop_unsampled,
            attribute_blind=_attribute_blind(sampler),
            id_generator=generator,
            random_flag=random_flag,
            root_flags=TraceFlags(random_flag),
            root_bound=root_bound,
        )

    def root_span(self) -> Span | None:
        """For a request without a parent: a non-recording span if the sampler drops it,
        else None (then the SDK makes the span; a primed generator gives it our id)."""
        if self.drop_roots:
            return self.dropped_root()
        bound = self.root_bound
        if bound is None:
            return None
        generator = self.id_generator
        assert isinstance(generator, SamplingIdGenerator)
        trace_id = generator.random_trace_id()
        if trace_id & _TRACE_ID_LIMIT < bound:
            generator.prime(trace_id)
            return None
        return NonRecordingSpan(
            SpanContext(
                trace_id, generator.generate_span_id(), False, self.root_flags, _EMPTY_STATE
            )
        )

    def unprime(self) -> None:
        """Drop a primed id the SDK did not consume (a tracer that made no span)."""
        if self.root_bound is not None:
            generator = self.id_generator
            assert isinstance(generator, SamplingIdGenerator)
            generator.prime(0)

    def dropped_root(self) -> Span:
        """The non-recording span the SDK would make for a dropped root (needs drop_roots)."""
        generator = self.id_generator
        assert generator is not None
        return NonRecordingSpan(
            SpanContext(
                generator.random_trace_id()
                if isinstance(generator, SamplingIdGenerator)
                else generator.generate_trace_id(),
                generator.generate_span_id(),
                False,
                self.root_flags,
                _EMPTY_STATE,
            )
        )

    def certain_drop(self, parent: SpanContext) -> Span | None:
        """A non-recording span with fresh ids if the sampler would surely drop, else None."""
        generator = self.id_generator
        if generator is None:
            return None
        if parent is INVALID_SPAN_CONTEXT or not parent.is_valid:
            if not self.drop_roots:
                return None
            trace_id = generator.generate_trace_id()
            flags = self.random_flag
            state = _EMPTY_STATE
        elif parent.is_remote and not parent.trace_flags.sampled:
            if not self.drop_unsampled_remote:
                return None
            trace_id = parent.trace_id
            flags = parent.trace_flags & RANDOM_TRACE_ID
            state = parent.trace_state
        else:
            return None
        context = SpanContext(
            trace_id,
            generator.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=state,
        )
        return NonRecordingSpan(context)


_EMPTY_STATE = TraceState()


class PropagationFields:
    """The header names the global propagator reads, cached until it is replaced."""

    def __init__(self) -> None:
        self.textmap: TextMapPropagator | None = None
        self.fields: frozenset[str] = frozenset()
        self.raw_fields: frozenset[bytes] = frozenset()
        #: (field, WSGI environ key) pairs: ("traceparent", "HTTP_TRACEPARENT").
        self.environ_keys: tuple[tuple[str, str], ...] = ()

    def refresh(self, textmap: TextMapPropagator) -> None:
        self.fields = frozenset(f.lower() for f in textmap.fields)
        self.raw_fields = frozenset(f.encode("latin-1") for f in self.fields)
        self.environ_keys = tuple(
            (f, "HTTP_" + f.upper().replace("-", "_")) for f in sorted(self.fields)
        )
        self.textmap = textmap

    def current(self) -> TextMapPropagator:
        textmap = get_global_textmap()
        if textmap is not self.textmap:
            self.refresh(textmap)
        return textmap

    def extract(self, textmap: TextMapPropagator, carrier: dict[str, str]) -> Context:
        """The remote context in ``carrier`` on top of an empty context (servers start clean)."""
        if not carrier:
            return Context()
        return textmap.extract(carrier, context=Context(), getter=CASE_INSENSITIVE_GETTER)


def context_with_span(span: Span, parent: Context | None) -> Context:
    """``parent`` (None: a fresh, empty context) with ``span`` as the current span."""
    if parent is None:
        return fresh_context_with_span(span)
    return trace.set_span_in_context(span, parent)


def serves_this_request(span: Span) -> bool:
    """Whether ``span``, current when a request reaches the middleware, is that request's.

    True for a local SERVER span (FastAPI's own telemetry, a contrib
    instrumentation or a serverless adapter around the app) and for a local
    span that is not recording (such a layer's request that was not sampled).
    The middleware's span then becomes its child instead of a second root.
    Other ambient spans (a test's, an in-process caller's) are not the
    request's: the server span starts clean, as a server would.
    """
    context = span.get_span_context()
    if not context.is_valid or context.is_remote:
        return False
    return not span.is_recording() or getattr(span, "kind", None) is SpanKind.SERVER


def response_headers(propagator: Any, context: Context) -> dict[str, str]:
    """What the global response propagator (``traceresponse``) adds for ``context``'s
    span; nothing when it fails (a broken propagator must not break the response)."""
    carrier: dict[str, str] = {}
    try:
        propagator.inject(carrier, context=context)
    except Exception:
        return {}
    return carrier


# What contrib's detect_synthetic_user_agent looks for (test first, then bot).
_SYNTHETIC_TEST = ("alwayson",)
_SYNTHETIC_BOT = ("googlebot", "bingbot")


def synthetic_type(user_agent: str) -> str | None:
    """``user_agent.synthetic.type`` per semconv: ``"test"``, ``"bot"`` or None."""
    lowered = user_agent.lower()
    if any(p in lowered for p in _SYNTHETIC_TEST):
        return "test"
    if any(p in lowered for p in _SYNTHETIC_BOT):
        return "bot"
    return None


def parse_host(host: str) -> tuple[str, int | None]:
    """``("example.com", 8080)`` from a Host header value (IPv6 brackets removed)."""
    if host.startswith("["):
        end = host.find("]")
        if end != -1:
            port = host[end + 2 :] if host[end + 1 : end + 2] == ":" else ""
            return host[1:end], int(port) if port.isdigit() else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return host, None


def route_name(method: str, route: str | None) -> str:
    """Span name per HTTP semconv: ``{method} {route}``, or just the method when unknown."""
    base = "HTTP" if method == "_OTHER" else method
    return f"{base} {route}" if route else base


# Flask/Werkzeug rules and Django path(): <item_id>, <int:item_id>, <string(length=2):code>.
_PLACEHOLDER = re.compile(r"<(?:[^<>:]+:)?(\w+)>")
# Django re_path() named groups without nested parentheses: (?P<year>[0-9]{4}).
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^()]*\)")


def route_template(pattern: str) -> str:
    """``/items/{item_id}`` from a Flask rule or a Django route (``items/<int:item_id>``).

    Converters and named regex groups become ``{name}``; a Django ``re_path``
    loses its ``^`` and ``$`` anchors; the result starts with ``/``.
    """
    template = _PLACEHOLDER.sub(r"{\1}", _NAMED_GROUP.sub(r"{\1}", pattern))
    template = template.removeprefix("^").removesuffix("$").removesuffix("\\Z")
    return template if template.startswith("/") else "/" + template


def exception_type(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return (
        cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    )


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


Attributes = dict[str, Any]
