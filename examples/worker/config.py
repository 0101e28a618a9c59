"""The worker's configuration: one validated, immutable object built from flags or code."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from examples.common.netpolicy import DestinationPolicy
from ffrtmp_infra.tracing import TracingConfig

__all__ = ["WorkerConfig", "build_parser", "config_from_args", "default_node_id"]

_NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LABEL_KEY = re.compile(r"[A-Za-z0-9._/-]{1,63}")


def default_node_id(output_dir: str | os.PathLike[str] | None) -> str:
    """A stable id: the host name plus a short hash of the output directory.

    Two workers on one machine (with different output directories) get different ids, and
    a restarted worker gets its old id back, so the master sees it return rather than a
    new node appear.
    """
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:48] or "worker"
    where = str(Path(output_dir).resolve()) if output_dir is not None else ""
    return f"{host}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a :class:`~examples.worker.Worker` needs; validated on construction.

    Capacity fields left at ``None`` are auto-detected (cores, RAM, NVIDIA GPUs, encoders).
    ``grace_s`` is how long a batch job may keep running after SIGTERM before it is handed
    back; live jobs are handed back at once. ``destinations`` is the input-host policy
    checked again right before ffmpeg starts (see :mod:`examples.common.netpolicy`).
    ``other_masters`` are more masters on the same database, tried in turn after ``master``.
    """

    master: str
    output_dir: Path
    other_masters: tuple[str, ...] = ()
    api_key: str | None = None
    node_id: str | None = None
    media_root: Path | None = None
    cpu: float | None = None
    ram_gb: float | None = None
    gpu: int | None = None
    nvenc_sessions: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    max_jobs: int | None = None
    claim_wait_s: float = 20.0
    progress_interval_s: float = 0.5
    grace_s: float = 30.0
    result_retry_s: float = 300.0
    request_timeout_s: float = 10.0
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    otlp_endpoint: str | None = None
    sample_ratio: float | None = None
    ffmpeg: str | None = None
    destinations: DestinationPolicy = field(default_factory=DestinationPolicy)

    @property
    def masters(self) -> tuple[str, ...]:
        """Every master URL, ``master`` first."""
        return (self.master, *self.other_masters)

    def __post_init__(self) -> None:
        masters = []
        for url in (self.master, *self.other_masters):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"master must be an http:// or https:// URL, got {url!r}")
            masters.append(url.rstrip("/"))
        if len({urlsplit(url).scheme for url in masters}) > 1:
            raise ValueError(f"masters must all use http or all https, got {masters}")
        object.__setattr__(self, "master", masters[0])
        object.__setattr__(self, "other_masters", tuple(masters[1:]))
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if self.node_id is None:
            object.__setattr__(self, "node_id", default_node_id(self.output_dir))
        elif not _NODE_ID.fullmatch(self.node_id):
            raise ValueError(f"node_id must match [A-Za-z0-9._-]{{1,64}}, got {self.node_id!r}")
        if self.media_root is not None and not Path(self.media_root).is_dir():
            raise ValueError(f"media_root must be an existing directory, got {self.media_root}")
        _positive("cpu", self.cpu)
        _positive("ram_gb", self.ram_gb, allow_zero=True)
        _positive("gpu", self.gpu, allow_zero=True)
        _positive("nvenc_sessions", self.nvenc_sessions, allow_zero=True)
        _positive("max_jobs", self.max_jobs)
        _positive("progress_interval_s", self.progress_interval_s)
        _positive("grace_s", self.grace_s, allow_zero=True)
        _positive("result_retry_s", self.result_retry_s, allow_zero=True)
        _positive("request_timeout_s", self.request_timeout_s)
        if not 0 < self.claim_wait_s <= 30:
            raise ValueError(f"claim_wait_s must be in (0, 30], got {self.claim_wait_s!r}")
        if self.sample_ratio is not None and not 0 <= self.sample_ratio <= 1:
            raise ValueError(f"sample_ratio must be in [0, 1], got {self.sample_ratio!r}")
        if self.otlp_endpoint is not None:
            # Fails here, at start, with the library's message (a ValueError) if malformed.
            TracingConfig(otlp_endpoint=self.otlp_endpoint, sample_ratio=self.sample_ratio)
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key must be given together")
        for name in ("ca_cert", "client_cert", "client_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} must be an existing file, got {path}")
        for key, value in self.labels.items():
            if not _LABEL_KEY.fullmatch(key) or not isinstance(value, str) or len(value) > 256:
                raise ValueError(f"label {key!r}={value!r} must be a short key=value pair")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m examples.worker`` argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m examples.worker",
        description="Reference ffrtmp worker: registers with a master, claims jobs, runs ffmpeg.",
    )
    p.add_argument(
        "--master",
        required=True,
        action="append",
        help="master base URL, http(s)://host:port; repeat for several masters on one "
        "database: the worker moves to the next when one is unreachable or standing by",
    )
    p.add_argument("--output-dir", required=True, type=Path, help="outputs go to DIR/<job_id>/")
    p.add_argument(
        "--api-key",
        default=os.environ.get("FFRTMP_WORKER_KEY"),
        help="the master's worker key (default: $FFRTMP_WORKER_KEY)",
    )
    p.add_argument("--node-id", help="stable node id (default: host name + output-dir hash)")
    p.add_argument("--media-root", type=Path, help="directory file inputs are relative to")
    cap = p.add_argument_group("capacity (auto-detected when omitted)")
    cap.add_argument("--cpu", type=float, help="CPU cores to offer")
    cap.add_argument("--ram-gb", type=float, help="RAM to offer, GB")
    cap.add_argument("--gpu", type=int, help="GPUs to offer (nvidia-smi)")
    cap.add_argument("--nvenc-sessions", type=int, help="concurrent NVENC sessions")
    cap.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    cap.add_argument("--max-jobs", type=int, help="cap on concurrent jobs (default: master's call)")
    run = p.add_argument_group("behaviour")
    run.add_argument("--claim-wait", type=float, default=20.0, help="long-poll seconds (<= 30)")
    run.add_argument("--progress-interval", type=float, default=0.5, help="seconds between reports")
    run.add_argument("--grace", type=float, default=30.0, help="SIGTERM: seconds to finish a job")
    run.add_argument("--result-retry", type=float, default=300.0, help="seconds to retry a result")
    run.add_argument(
        "--allow-input-host",
        action="append",
        default=[],
        metavar="HOST",
        help="allow http(s) inputs from HOST even if private or loopback (repeatable)",
    )
    run.add_argument(
        "--allow-private-inputs",
        action="store_true",
        help="allow inputs from any private/loopback/link-local address (labs only)",
    )
    run.add_argument("--ffmpeg", help="ffmpeg binary (default: FFMPEG_BINARY, PATH, imageio)")
    tls = p.add_argument_group("TLS")
    tls.add_argument("--ca-cert", type=Path, help="CA bundle that signed the master's cert")
    tls.add_argument("--client-cert", type=Path, help="client certificate for mTLS")
    tls.add_argument("--client-key", type=Path, help="client key for mTLS")
    obs = p.add_argument_group("tracing")
    obs.add_argument("--otlp-endpoint", help="OTLP/HTTP endpoint (default: OTEL_* environment)")
    obs.add_argument("--sample-ratio", type=float, help="trace sampling ratio, 0..1")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _labels(pairs: Sequence[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--label must be KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    """Turn parsed flags into a :class:`WorkerConfig` (raises ``ValueError`` on bad values)."""
    return WorkerConfig(
        master=args.master[0],
        other_masters=tuple(args.master[1:]),
        output_dir=args.output_dir,
        api_key=args.api_key or None,
        node_id=args.node_id,
        media_root=args.media_root,
        cpu=args.cpu,
        ram_gb=args.ram_gb,
        gpu=args.gpu,
        nvenc_sessions=args.nvenc_sessions,
        labels=_labels(args.label),
        max_jobs=args.max_jobs,
        claim_wait_s=args.claim_wait,
        progress_interval_s=args.progress_interval,
        grace_s=args.grace,
        result_retry_s=args.result_retry,
        ca_cert=args.ca_cert,
        client_cert=args.client_cert,
        client_key=args.client_key,
        otlp_endpoint=args.otlp_endpoint,
        sample_ratio=args.sample_ratio,
        ffmpeg=args.ffmpeg,
        destinations=DestinationPolicy.from_options(
            args.allow_input_host, args.allow_private_inputs
        ),
    )
