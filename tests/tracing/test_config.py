"""TracingConfig: explicit values, OTEL_* fallbacks and validation."""

from __future__ import annotations

import re

import pytest

from ffrtmp_infra.tracing import ConfigurationError, TracingConfig

OTEL_VARS = [
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PYTHON_EXCLUDED_URLS",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in OTEL_VARS:
        monkeypatch.delenv(var, raising=False)


def test_defaults_without_environment() -> None:
    config = TracingConfig()
    assert config.service_name is None
    assert config.protocol == "http/protobuf"
    assert config.enabled is True
    assert config.sample_ratio == 1.0
    assert config.traces_endpoint is None
    assert config.excluded_urls is None


def test_every_field_falls_back_to_its_otel_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "/internal/.*")
    config = TracingConfig()
    assert config.service_name == "from-env"
    assert config.protocol == "grpc"
    assert config.traces_endpoint == "http://collector:4317"
    assert config.enabled is False
    assert config.sample_ratio == 0.25
    assert config.excluded_urls == "/internal/.*"


def test_explicit_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    config = TracingConfig(service_name="code", sample_ratio=0.5, enabled=True)
    assert (config.service_name, config.sample_ratio, config.enabled) == ("code", 0.5, True)


@pytest.mark.parametrize(
    ("sampler", "ratio"),
    [("always_on", 1.0), ("parentbased_always_off", 0.0), ("traceidratio", 1.0)],
)
def test_named_samplers_map_to_ratios(
    monkeypatch: pytest.MonkeyPatch, sampler: str, ratio: float
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    assert TracingConfig().sample_ratio == ratio


def test_unknown_env_sampler_is_left_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "jaeger_remote")
    config = TracingConfig()
    assert config.sampler_from_env is True
    assert config.sample_ratio is None


@pytest.mark.parametrize(
    ("endpoint", "protocol", "expected"),
    [
        ("localhost:4318", None, "http://localhost:4318/v1/traces"),
        ("http://otel:4318", None, "http://otel:4318/v1/traces"),
        ("http://otel:4318/", None, "http://otel:4318/v1/traces"),
        ("https://otel.example/v1/traces", None, "https://otel.example/v1/traces"),
        ("https://gw.example/otlp/custom", None, "https://gw.example/otlp/custom"),
        ("localhost:4317", "grpc", "http://localhost:4317"),
        ("https://otel.example:4317", "grpc", "https://otel.example:4317"),
    ],
)
def test_endpoint_forms(endpoint: str, protocol: str | None, expected: str) -> None:
    assert TracingConfig(otlp_endpoint=endpoint, protocol=protocol).traces_endpoint == expected


GENERAL, TRACES = "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


@pytest.mark.parametrize(
    ("env", "protocol", "expected"),
    [
        # The general variable is a base: the signal path is appended (OTLP exporter spec).
        ({GENERAL: "http://gw:4318"}, "http/protobuf", "http://gw:4318/v1/traces"),
        ({GENERAL: "http://gw:4318/"}, "http/protobuf", "http://gw:4318/v1/traces"),
        ({GENERAL: "http://gw:4318/prefix"}, "http/protobuf", "http://gw:4318/prefix/v1/traces"),
        ({GENERAL: "https://gw.example/v1/traces"}, "http/protobuf",
         "https://gw.example/v1/traces/v1/traces"),
        ({GENERAL: "gw:4318"}, "http/protobuf", "http://gw:4318/v1/traces"),
        # The per-signal variable is used as written, with or without a path.
        ({TRACES: "http://gw:4318"}, "http/protobuf", "http://gw:4318"),
        ({TRACES: "http://gw:4318/custom/path"}, "http/protobuf", "http://gw:4318/custom/path"),
        ({TRACES: "https://gw.example/v1/traces"}, "http/protobuf", "https://gw.example/v1/traces"),
        ({TRACES: "gw:4318"}, "http/protobuf", "http://gw:4318"),
        # The per-signal variable wins over the general one.
        ({GENERAL: "http://a:4318", TRACES: "http://b:4318/x"}, "http/protobuf", "http://b:4318/x"),
        # gRPC takes no path: both are used as written (a scheme added when missing).
        ({GENERAL: "http://gw:4317"}, "grpc", "http://gw:4317"),
        ({GENERAL: "gw:4317"}, "grpc", "http://gw:4317"),
        ({TRACES: "https://gw:4317"}, "grpc", "https://gw:4317"),
        ({GENERAL: "http://a:4317", TRACES: "http://b:4317"}, "grpc", "http://b:4317"),
        # Nothing set: the exporter's own default.
        ({}, "http/protobuf", None),
        ({}, "grpc", None),
    ],
)  # fmt: skip
def test_endpoint_variables_follow_the_otlp_exporter_specification(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], protocol: str, expected: str | None
) -> None:
    monkeypatch.delenv(GENERAL, raising=False)
    monkeypatch.delenv(TRACES, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    assert TracingConfig().traces_endpoint == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_ratio": 1.5}, "sample_ratio must be in [0, 1], got 1.5"),
        ({"sample_ratio": float("nan")}, "sample_ratio must be in [0, 1]"),
        ({"sample_ratio": True}, "sample_ratio must be a number"),
        ({"protocol": "http/json"}, "protocol must be one of http/protobuf, grpc, got 'http/json'"),
        ({"otlp_endpoint": "localhost"}, "otlp_endpoint must be host:port"),
        ({"otlp_endpoint": "localhost:99999"}, "otlp_endpoint must be host:port"),
        ({"otlp_endpoint": "ftp://x:1"}, "otlp_endpoint must be host:port or an http(s)://"),
        ({"service_name": ""}, "service_name must be a non-empty string"),
        ({"enabled": "yes"}, "enabled must be True, False or None, got 'yes'"),
        ({"export_timeout": 0}, "export_timeout must be a number of seconds > 0, got 0"),
    ],
)
def test_invalid_values_fail_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        TracingConfig(**kwargs)  # type: ignore[arg-type]


def test_invalid_env_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "ten percent")
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_SAMPLER_ARG must be a number"):
        TracingConfig()
    monkeypatch.delenv("OTEL_TRACES_SAMPLER")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_PROTOCOL must be one of"):
        TracingConfig()
