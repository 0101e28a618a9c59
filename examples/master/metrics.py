"""Prometheus metrics for the master, all in one registry.

The master's own metrics are ``prometheus_client`` instruments; the library's
OpenTelemetry metrics (resource utilisation, rate-limit decisions) go through
OpenTelemetry's Prometheus reader into the *same* registry, so ``/metrics``
renders one consistent exposition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "MasterMetrics", "StateSource"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)


class StateSource:
    """What the scrape-time collector reads; the scheduler provides these callables.

    ``job_counters`` returns ``{"submitted": {queue: n}, "placed": {queue: n}, "finished":
    {outcome: n}, "dead_letters": {"": n}}`` counted in the store, so the ``*_total``
    counters survive restarts and agree whichever master is scraped.
    """

    def __init__(
        self,
        jobs_by_status: Callable[[], Mapping[str, int]],
        queue_lengths: Callable[[], Mapping[tuple[str, str], int]],
        nodes_by_status: Callable[[], Mapping[str, int]],
        job_counters: Callable[[], Mapping[str, Mapping[str, int]]],
    ) -> None:
        self.jobs_by_status = jobs_by_status
        self.queue_lengths = queue_lengths
        self.nodes_by_status = nodes_by_status
        self.job_counters = job_counters


#: (counter name, help, label, key in ``job_counters``)
_COUNTERS = (
    ("ffrtmp_jobs_submitted", "Jobs accepted by POST /jobs.", "queue", "submitted"),
    ("ffrtmp_jobs_placed", "Attempts placed on a node.", "queue", "placed"),
    ("ffrtmp_jobs_finished", "Attempts that ended, by outcome.", "outcome", "finished"),
)


class _StateCollector(Collector):
    def __init__(self, source: StateSource) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("ffrtmp_jobs", "Jobs by current status.", labels=["status"])
        counts = self._source.jobs_by_status()
        for status in ("queued", "assigned", "running", "completed", "failed", "canceled"):
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        queue = GaugeMetricFamily(
            "ffrtmp_queue_length",
            "Queued jobs by queue and priority.",
            labels=["queue", "priority"],
        )
        lengths = self._source.queue_lengths()
        for name in ("live", "default", "batch"):
            for priority in ("high", "medium", "low"):
                queue.add_metric([name, priority], lengths.get((name, priority), 0))
        yield queue
        nodes = GaugeMetricFamily("ffrtmp_nodes", "Worker nodes by status.", labels=["status"])
        node_counts = self._source.nodes_by_status()
        for status in ("online", "offline"):
            nodes.add_metric([status], node_counts.get(status, 0))
        yield nodes
        counters = self._source.job_counters()
        for name, text, label, key in _COUNTERS:
            family = CounterMetricFamily(name, text, labels=[label])
            for value, count in sorted(counters[key].items()):
                family.add_metric([value], count)
            yield family
        yield GaugeMetricFamily(
            "ffrtmp_dead_letters",
            "Failed jobs out of retries (until retried by hand).",
            value=counters["dead_letters"].get("", 0),
        )


def _reader_on(registry: CollectorRegistry) -> PrometheusMetricReader:
    """A Prometheus reader feeding ``registry`` rather than the process-global one."""
    try:
        return PrometheusMetricReader(registry=registry)  # type: ignore[call-arg, unused-ignore]
    except TypeError:
        # opentelemetry-exporter-prometheus 0.48b0 (the one beside SDK 1.27, our floor)
        # always registers on the global registry (and unregisters from it at shutdown):
        # leave it there and register the same collector on ours too.
        reader = PrometheusMetricReader()
        registry.register(reader._collector)  # the only handle that release offers
        return reader


class MasterMetrics:
    """The master's registry, its instruments and an OTel meter provider feeding it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.meter_provider = MeterProvider(
            metric_readers=[_reader_on(self.registry)],
            resource=Resource.create({"service.name": "ffrtmp-master"}),
        )
        self.job_duration = Histogram(
            "ffrtmp_job_duration_seconds",
            "Wall time of completed jobs, assignment to result.",
            ["scenario"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.job_wait = Histogram(
            "ffrtmp_job_wait_seconds",
            "Time a job waited in the queue before being placed.",
            ["queue"],
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "ffrtmp_auth_failures",
            "Requests refused for a missing or wrong API key.",
            ["role"],
            registry=self.registry,
        )
        self.auth_lockouts = Counter(
            "ffrtmp_auth_lockouts",
            "Requests refused with 429 because the client failed auth too often.",
            registry=self.registry,
        )

    def watch(self, source: StateSource) -> None:
        """Report job, queue and node gauges from ``source`` at every scrape."""
        self.registry.register(_StateCollector(source))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in the registry."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        """Stop the meter provider (its reader stays registered until the registry goes)."""
        self.meter_provider.shutdown()
