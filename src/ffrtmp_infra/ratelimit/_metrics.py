"""OpenTelemetry metrics for rate-limit decisions (off until :func:`instrument`)."""

from __future__ import annotations

from typing import Any

__all__ = ["decision", "degraded", "instrument", "storage_error", "uninstrument"]


class _Instruments:
    def __init__(self, meter_provider: Any) -> None:
        from opentelemetry import metrics

        from ffrtmp_infra import __version__

        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("ffrtmp_infra.ratelimit", __version__)
        self.decisions = meter.create_counter(
            "ffrtmp.ratelimit.decisions",
            unit="{decision}",
            description="Rate-limit decisions by policy and outcome (allowed, rejected, shadowed)",
        )
        self.storage_errors = meter.create_counter(
            "ffrtmp.ratelimit.storage_errors",
            unit="{error}",
            description="Failed calls to the shared rate-limit storage, by policy and failure mode",
        )
        self.degraded = meter.create_counter(
            "ffrtmp.ratelimit.degraded_decisions",
            unit="{decision}",
            description="Decisions taken by the failure policy while the storage was unreachable",
        )
        # Attribute dicts are reused: policies are few, and the hot path then allocates nothing.
        self._attrs: dict[tuple[str, str], dict[str, str]] = {}

    def attrs(self, policy: str, name: str, value: str) -> dict[str, str]:
        found = self._attrs.get((policy, value))
        if found is None:
            found = self._attrs[(policy, value)] = {"ratelimit.policy": policy, name: value}
        return found


_instruments: _Instruments | None = None


def instrument(meter_provider: Any = None) -> None:
    """Count rate-limit decisions through the OpenTelemetry metrics API.

    Instruments (all counters, attributes are the policy name and an outcome, never a key):
    ``ffrtmp.ratelimit.decisions`` (``ratelimit.outcome`` = allowed | rejected | shadowed),
    ``ffrtmp.ratelimit.storage_errors`` and ``ffrtmp.ratelimit.degraded_decisions``
    (``ratelimit.failure`` = open | closed | local).

    Args:
        meter_provider: the provider to use; default the global one.
    """
    global _instruments
    _instruments = _Instruments(meter_provider)


def uninstrument() -> None:
    """Stop counting (the default state)."""
    global _instruments
    _instruments = None


def enabled() -> bool:
    return _instruments is not None


def decision(policy: str, outcome: str) -> None:
    inst = _instruments
    if inst is not None:
        inst.decisions.add(1, inst.attrs(policy, "ratelimit.outcome", outcome))


def storage_error(policy: str, failure: str) -> None:
    inst = _instruments
    if inst is not None:
        inst.storage_errors.add(1, inst.attrs(policy, "ratelimit.failure", failure))


def degraded(policy: str, failure: str) -> None:
    inst = _instruments
    if inst is not None:
        inst.degraded.add(1, inst.attrs(policy, "ratelimit.failure", failure))
