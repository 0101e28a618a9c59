"""Every use of an OpenTelemetry name that is private, or newer than our oldest release.

Each one is feature-detected once, when this module is imported, and has a
fallback built on public API only, so no request path can raise because a
private name moved in a new release. Taking a fallback for a private name
warns once (``RuntimeWarning``): behaviour stays correct, a fast path is lost.
Names that are public but newer than the oldest supported release fall back
silently to what that older SDK itself does.

The ``detect_*`` functions are what runs at import; tests call them again
with the private name taken away (passed in: deleting it from the API's
module would break the API itself).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, Span, TraceFlags

__all__ = [
    "HISTOGRAM_ADVISORY",
    "MEASUREMENT_CONTEXT",
    "RANDOM_TRACE_ID",
    "ParentBasedDelegates",
    "fresh_context_with_span",
    "global_meter_provider",
    "global_provider",
    "http_suppressed",
    "ids_are_random",
    "parent_based_delegates",
    "response_propagator",
]

ProviderReader = Callable[[], "trace.TracerProvider | None"]
MeterProviderReader = Callable[[], "metrics.MeterProvider | None"]


def _fallback_warning(private: str, fallback: str) -> None:
    warnings.warn(
        f"ffrtmp_infra.tracing: this OpenTelemetry release has no usable {private}; "
        f"falling back to {fallback}. Spans stay correct; please report the version.",
        RuntimeWarning,
        stacklevel=3,
    )


# --- the global tracer provider ----------------------------------------------

_MISSING = object()


def _public_provider() -> trace.TracerProvider | None:
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider


def _slot_provider() -> trace.TracerProvider | None:
    return trace._TRACER_PROVIDER


def detect_provider_reader(api_globals: Mapping[str, object] | None = None) -> ProviderReader:
    """How to read the installed global provider (None while only the proxy is there).

    The API's module global ``trace._TRACER_PROVIDER`` is read directly when it
    exists: ``trace.get_tracer_provider()`` costs ~1 µs per request without a
    provider (it builds a proxy each time), and the middleware asks per request.
    """
    namespace = vars(trace) if api_globals is None else api_globals
    slot = namespace.get("_TRACER_PROVIDER", _MISSING)
    if slot is None or isinstance(slot, trace.TracerProvider):
        return _slot_provider
    _fallback_warning("opentelemetry.trace._TRACER_PROVIDER", "trace.get_tracer_provider()")
    return _public_provider


# --- the global meter provider ----------------------------------------------


def _public_meter_provider() -> metrics.MeterProvider | None:
    provider = metrics.get_meter_provider()
    # Before set_meter_provider the API hands out a proxy; it has no public type,
    # but it is the one provider that is not the global slot's value.
    return None if type(provider).__name__ == "_ProxyMeterProvider" else provider


def detect_meter_provider_reader(api_module: object = _MISSING) -> MeterProviderReader:
    """How to read the installed global meter provider (None while only the proxy is there).

    ``metrics.get_meter_provider()`` costs ~0.8 µs per call while no provider is
    installed (it looks up ``OTEL_PYTHON_METER_PROVIDER`` in the environment each
    time); the middleware asks per request, so the API's module global
    ``_METER_PROVIDER`` is read directly when it exists.
    """
    if api_module is _MISSING:
        from opentelemetry.metrics import _internal as api_module
    slot = getattr(api_module, "_METER_PROVIDER", _MISSING)
    if slot is None or isinstance(slot, metrics.MeterProvider):
        module = api_module

        def read_slot() -> metrics.MeterProvider | None:
            provider: metrics.MeterProvider | None = module._METER_PROVIDER  # type: ignore[attr-defined]
            return provider

        return read_slot
    _fallback_warning(
        "opentelemetry.metrics._internal._METER_PROVIDER", "metrics.get_meter_provider()"
    )
    return _public_meter_provider


# --- a fresh context holding one span ----------------------------------------


def _public_context_with_span(span: Span) -> Context:
    return trace.set_span_in_context(span, Context())


def _api_span_key() -> object:
    from opentelemetry.trace import propagation

    return getattr(propagation, "_SPAN_KEY", None)


def detect_context_factory(key: object = _MISSING) -> Callable[[Span], Context]:
    """How to build ``Context()`` with ``span`` current, once per request.

    With the API's (private) span key the Context is built directly: half the
    cost of ``set_span_in_context(span, Context())``. The key is checked to be
    the one the public API reads before it is trusted.
    """
    if key is _MISSING:
        key = _api_span_key()
    if isinstance(key, str):
        probe = NonRecordingSpan(INVALID_SPAN_CONTEXT)
        if trace.get_current_span(Context({key: probe})) is probe:
            span_key = key

            def direct(span: Span) -> Context:
                return Context({span_key: span})

            return direct
    _fallback_warning(
        "opentelemetry.trace.propagation._SPAN_KEY", "trace.set_span_in_context(span, Context())"
    )
    return _public_context_with_span


# --- the delegates of a ParentBased sampler ----------------------------------

_PARENT_BASED_FIELDS = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


@dataclass(frozen=True)
class ParentBasedDelegates:
    """The five samplers a ``ParentBased`` sampler hands each decision to."""

    root: Sampler
    remote_parent_sampled: Sampler
    remote_parent_not_sampled: Sampler
    local_parent_sampled: Sampler
    local_parent_not_sampled: Sampler

    def all(self) -> tuple[Sampler, ...]:
        return (
            self.root,
            self.remote_parent_sampled,
            self.remote_parent_not_sampled,
            self.local_parent_sampled,
            self.local_parent_not_sampled,
        )


def _read_delegates(sampler: ParentBased) -> ParentBasedDelegates | None:
    values = [getattr(sampler, name, None) for name in _PARENT_BASED_FIELDS]
    if not all(isinstance(value, Sampler) for value in values):
        return None  # a subclass that stores them elsewhere: unknown, so "may sample"
    return ParentBasedDelegates(*values)  # type: ignore[arg-type]


def _unknown_delegates(sampler: ParentBased) -> ParentBasedDelegates | None:
    return None


def detect_delegates_reader(
    parent_based: type[ParentBased] = ParentBased,
) -> Callable[[ParentBased], ParentBasedDelegates | None]:
    """How to see inside a ``ParentBased`` sampler (the SDK keeps its delegates private).

    Knowing them lets the middleware drop a request the sampler would surely
    drop before building anything. Without them a parent-based sampler is
    treated as one that may sample anything: the SDK decides every request.
    """
    delegates = _read_delegates(parent_based(ALWAYS_ON))
    if delegates is not None and delegates.root is ALWAYS_ON:
        return _read_delegates
    _fallback_warning(
        "ParentBased._root/_remote_parent_*/_local_parent_* (the delegate samplers)",
        "letting the SDK sample every request (no early drop of unsampled requests)",
    )
    return _unknown_delegates


# --- public names newer than the oldest supported release --------------------

#: ``TraceFlags.RANDOM_TRACE_ID`` (W3C Trace Context level 2); 0 on releases before it,
#: whose SDK never sets that flag either.
RANDOM_TRACE_ID: int = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)


def _accepts(function: Callable[..., object], parameter: str) -> bool:
    return parameter in inspect.signature(function).parameters


#: Whether ``Meter.create_histogram`` takes ``explicit_bucket_boundaries_advisory``
#: (API 1.23+ in the spec, later in Python); without it the SDK's default buckets
#: apply unless a View sets them (our own metrics setup adds one).
HISTOGRAM_ADVISORY: bool = _accepts(
    metrics.Meter.create_histogram, "explicit_bucket_boundaries_advisory"
)

#: Whether ``Histogram.record`` / ``UpDownCounter.add`` take ``context`` (the
#: releases with exemplars); older ones read the current context, if anything.
MEASUREMENT_CONTEXT: bool = _accepts(metrics.Histogram.record, "context")


def ids_are_random(generator: IdGenerator) -> bool:
    """Whether spans from ``generator`` carry the random-trace-id flag, as the SDK would set it."""
    is_random = getattr(generator, "is_trace_id_random", None)
    return bool(RANDOM_TRACE_ID) and is_random is not None and bool(is_random())


# --- suppress_http_instrumentation() ------------------------------------------


def detect_suppression_keys(api_context: object = _MISSING) -> tuple[str, ...]:
    """The context keys ``suppress_instrumentation()`` / ``suppress_http_instrumentation()``
    set (``opentelemetry-instrumentation``'s helpers; the keys are the API's, private).

    ``create_key`` makes each key unique, so without the API's own objects a
    suppression cannot be recognised: it is then ignored, with a warning.
    """
    if api_context is _MISSING:
        from opentelemetry import context as api_context
    keys = tuple(
        key
        for key in (
            getattr(api_context, "_SUPPRESS_INSTRUMENTATION_KEY", None),
            getattr(api_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None),
        )
        if isinstance(key, str)
    )
    if len(keys) != 2:
        _fallback_warning(
            "opentelemetry.context._SUPPRESS_(HTTP_)INSTRUMENTATION_KEY",
            "ignoring suppress_http_instrumentation() (requests are traced and measured)",
        )
        return ()
    # opentelemetry-instrumentation also sets this plain key, for older readers.
    return (*keys, "suppress_instrumentation")


_SUPPRESSION_KEYS = detect_suppression_keys()


def http_suppressed(ambient: Context) -> bool:
    """Whether ``ambient`` (the context a request arrives in) suppresses HTTP instrumentation."""
    return any(ambient.get(key) for key in _SUPPRESSION_KEYS)


# --- the global response propagator ------------------------------------------


def _no_response_propagator() -> object | None:
    return None


def detect_response_propagator() -> Callable[[], object | None]:
    """``opentelemetry.instrumentation.propagators.get_global_response_propagator``
    (public, in ``opentelemetry-instrumentation``, which this package does not
    require); without that package no response propagator can be set."""
    try:
        from opentelemetry.instrumentation.propagators import get_global_response_propagator
    except ImportError:
        return _no_response_propagator
    getter: Callable[[], object | None] = get_global_response_propagator
    return getter


response_propagator = detect_response_propagator()


global_provider = detect_provider_reader()
global_meter_provider = detect_meter_provider_reader()
fresh_context_with_span = detect_context_factory()
parent_based_delegates = detect_delegates_reader()
