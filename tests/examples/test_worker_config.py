"""Worker configuration, capacity detection and the security options (keys, TLS, mTLS)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from examples.worker.capacity import detect_capacity, detect_cpu, detect_ram_gb, parse_nvidia_smi
from examples.worker.config import WorkerConfig, build_parser, config_from_args, default_node_id

from tests.examples.conftest import WorkerFactory
from tests.examples.fake_master import FakeMaster
from tests.examples.helpers import wait_until
from tests.support.ffmpeg import FFmpeg
from tests.support.servers import serve_asgi


def test_config_rejects_bad_values_naming_them(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"master": "ftp://x"}, "master must be an http:// or https:// URL"),
        ({"node_id": "a/b"}, "node_id must match"),
        ({"cpu": -1}, "cpu must be > 0, got -1"),
        ({"claim_wait_s": 31}, r"claim_wait_s must be in \(0, 30\]"),
        ({"sample_ratio": 2}, r"sample_ratio must be in \[0, 1\]"),
        ({"client_cert": tmp_path}, "client_cert and client_key must be given together"),
        ({"ca_cert": tmp_path / "missing.pem"}, "ca_cert must be an existing file"),
        ({"media_root": tmp_path / "nope"}, "media_root must be an existing directory"),
        ({"labels": {"bad key": "v"}}, "must be a short key=value pair"),
        ({"otlp_endpoint": "ftp://collector"}, "otlp_endpoint must be"),
    ]
    for overrides, message in cases:
        kwargs = {"master": "http://127.0.0.1:1", "output_dir": tmp_path, **overrides}
        with pytest.raises(ValueError, match=message):
            WorkerConfig(**kwargs)


def test_default_node_id_is_stable_and_differs_per_output_dir(tmp_path: Path) -> None:
    assert default_node_id(tmp_path / "a") == default_node_id(tmp_path / "a")
    assert default_node_id(tmp_path / "a") != default_node_id(tmp_path / "b")
    config = WorkerConfig(master="http://h:1/", output_dir=tmp_path)
    assert config.node_id == default_node_id(tmp_path)
    assert config.master == "http://h:1"


def test_flags_map_onto_the_config(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "--master",
            "https://m:8443",
            "--output-dir",
            str(tmp_path),
            "--cpu",
            "3",
            "--label",
            "zone=a",
            "--label",
            "tier=gold",
            "--max-jobs",
            "2",
        ]
    )
    config = config_from_args(args)
    assert (config.cpu, config.max_jobs) == (3.0, 2)
    assert dict(config.labels) == {"zone": "a", "tier": "gold"}


def test_worker_key_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FFRTMP_WORKER_KEY", "k-123")
    args = build_parser().parse_args(["--master", "http://m:1", "--output-dir", str(tmp_path)])
    assert config_from_args(args).api_key == "k-123"


def test_cpu_and_ram_detection_match_the_machine() -> None:
    assert 0 < detect_cpu() <= len(os.sched_getaffinity(0))
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0]
    total_gb = int(meminfo.split()[1]) * 1024 / 1e9
    assert 0 < detect_ram_gb() <= round(total_gb, 2)


def test_nvidia_smi_output_parsing() -> None:
    output = "NVIDIA GeForce RTX 3080\nNVIDIA A100-SXM4-40GB\n\n"
    assert parse_nvidia_smi(output) == ("NVIDIA GeForce RTX 3080", "NVIDIA A100-SXM4-40GB")


def test_detect_capacity_uses_explicit_values_and_real_encoders(ffmpeg: FFmpeg) -> None:
    capacity = detect_capacity(ffmpeg.path, cpu=1.5, ram_gb=3, gpu=0)
    assert (capacity.cpu, capacity.ram_gb, capacity.gpu, capacity.nvenc_sessions) == (
        1.5,
        3,
        0,
        0,
    )
    assert "libx264" in capacity.encoders
    assert capacity.to_register()["extended"] == {"nvenc_sessions": 0}


# --- keys, TLS and mTLS against a fake master -------------------------------------------


@pytest.mark.slow
def test_worker_sends_its_key_and_exits_when_the_key_is_refused(
    start_worker: WorkerFactory,
) -> None:
    master = FakeMaster(worker_key="right-key")
    with serve_asgi(master.app) as url:
        good = start_worker(url, "--api-key", "right-key", name="good")
        wait_until(lambda: master.of("/heartbeat"), timeout=60, what="an accepted heartbeat")
        assert master.of("/register")[0].headers["authorization"] == "Bearer right-key"
        bad = start_worker(url, name="bad", env={"FFRTMP_WORKER_KEY": "wrong-key"})
        assert bad.wait(timeout=60) == 2
        assert "registration refused" in bad.log()
        assert "wrong-key" not in bad.log()
        good.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    other_ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("worker-1")
    stranger = other_ca.issue_cert("worker-x")
    files = {
        "ca": tmp_path / "ca.pem",
        "server": tmp_path / "server.pem",
        "client": tmp_path / "client.pem",
        "client_key": tmp_path / "client.key",
        "stranger": tmp_path / "stranger.pem",
        "stranger_key": tmp_path / "stranger.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_and_cert_chain_pem.write_to_path(str(files["server"]))
    client.cert_chain_pems[0].write_to_path(str(files["client"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    stranger.cert_chain_pems[0].write_to_path(str(files["stranger"]))
    stranger.private_key_pem.write_to_path(str(files["stranger_key"]))
    return files


@pytest.mark.slow
def test_mtls_accepts_a_worker_with_a_valid_client_certificate_only(
    start_worker: WorkerFactory, tls_files: dict[str, Path]
) -> None:
    master = FakeMaster()
    with serve_asgi(
        master.app,
        ssl_certfile=str(tls_files["server"]),
        ssl_keyfile=str(tls_files["server"]),
        ssl_ca_certs=str(tls_files["ca"]),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as url:
        ca = ["--ca-cert", str(tls_files["ca"])]
        stranger = start_worker(
            url,
            *ca,
            "--client-cert",
            str(tls_files["stranger"]),
            "--client-key",
            str(tls_files["stranger_key"]),
            name="stranger",
        )
        no_cert = start_worker(url, *ca, name="nocert")
        good = start_worker(
            url,
            *ca,
            "--client-cert",
            str(tls_files["client"]),
            "--client-key",
            str(tls_files["client_key"]),
            name="good",
        )
        wait_until(lambda: master.of("/heartbeat"), timeout=60, what="the good worker")
        for refused in (stranger, no_cert):
            wait_until(
                lambda p=refused: "master unreachable" in p.log(),  # type: ignore[misc]
                timeout=60,
                what="a refused TLS handshake",
            )
        assert {c.body["node_id"] for c in master.of("/register")} == {"good"}
        for process in (good, stranger, no_cert):
            process.stop()


@pytest.mark.slow
def test_tls_without_the_ca_is_refused(
    start_worker: WorkerFactory, tls_files: dict[str, Path]
) -> None:
    master = FakeMaster()
    with serve_asgi(
        master.app, ssl_certfile=str(tls_files["server"]), ssl_keyfile=str(tls_files["server"])
    ) as url:
        untrusting = start_worker(url, name="untrusting")
        wait_until(
            lambda: "CERTIFICATE_VERIFY_FAILED" in untrusting.log(), timeout=60, what="TLS error"
        )
        trusting = start_worker(url, "--ca-cert", str(tls_files["ca"]), name="trusting")
        wait_until(lambda: master.of("/register"), timeout=60, what="registration over TLS")
        assert {c.body["node_id"] for c in master.of("/register")} == {"trusting"}
        untrusting.stop()
        trusting.stop()
