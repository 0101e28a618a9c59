"""End to end: keys and mTLS between real workers, a real master and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from examples.cli import APIClient, MasterError

from tests.examples.conftest import MasterFactory, WorkerFactory
from tests.examples.helpers import REPO, child_env, wait_until

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    subprocess.run(
        [sys.executable, "-m", "examples.master", "gen-certs", "--out", str(out)],
        cwd=REPO,
        env=child_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


def test_mtls_lets_in_only_workers_with_a_client_certificate_from_the_ca(
    start_master: MasterFactory, start_worker: WorkerFactory, certs: Path, tmp_path: Path
) -> None:
    ca, cert, key = certs / "ca.crt", certs / "client.crt", certs / "client.key"
    master = start_master(
        "--tls-cert",
        str(certs / "server.crt"),
        "--tls-key",
        str(certs / "server.key"),
        "--tls-client-ca",
        str(ca),
        client_options={"ca_cert": ca, "client_cert": cert, "client_key": key},
    )
    assert master.url.startswith("https://")
    stranger_ca = trustme.CA()
    stranger = stranger_ca.issue_cert("intruder")
    stranger.cert_chain_pems[0].write_to_path(str(tmp_path / "stranger.crt"))
    stranger.private_key_pem.write_to_path(str(tmp_path / "stranger.key"))

    good = start_worker(
        master.url,
        "--ca-cert",
        str(ca),
        "--client-cert",
        str(cert),
        "--client-key",
        str(key),
        name="good",
        env=master.env,
    )
    intruder = start_worker(
        master.url,
        "--ca-cert",
        str(ca),
        "--client-cert",
        str(tmp_path / "stranger.crt"),
        "--client-key",
        str(tmp_path / "stranger.key"),
        name="intruder",
        env=master.env,
    )
    no_cert = start_worker(master.url, "--ca-cert", str(ca), name="nocert", env=master.env)
    with master.client() as api:
        wait_until(
            lambda: any(n["id"] == "good" for n in api.nodes()), timeout=60, what="good worker"
        )
        for refused in (intruder, no_cert):
            wait_until(
                lambda p=refused: "master unreachable" in p.log(),  # type: ignore[misc]
                timeout=60,
                what="a refused TLS handshake",
            )
        assert {n["id"] for n in api.nodes()} == {"good"}
        job = api.submit(
            {
                "scenario": "480p-h264",
                "input": {"type": "testsrc", "duration": 1, "size": "320x240"},
                "overrides": {"resolution": "320x240"},
            }
        )
        done = api.wait(job["id"], timeout=90, interval=0.1)
        assert done["status"] == "completed", done
    # the CLI without a client certificate cannot even complete the handshake
    with APIClient(master.url, api_key=master.api_key, ca_cert=ca) as anonymous:
        with pytest.raises(Exception) as handshake:  # noqa: PT011 (TLS errors vary by version)
            anonymous.nodes()
        assert not isinstance(handshake.value, MasterError)
    good.stop()


def test_worker_with_the_wrong_key_is_refused_and_exits(
    start_master: MasterFactory, start_worker: WorkerFactory
) -> None:
    master = start_master()
    worker = start_worker(
        master.url, name="badkey", env={"FFRTMP_WORKER_KEY": "not-the-worker-key-at-all"}
    )
    assert worker.wait(timeout=60) == 2
    assert "registration refused" in worker.log()
    assert "not-the-worker-key-at-all" not in worker.log()
    with master.client() as api:
        assert api.nodes() == []
    # the submitter key is not a worker key either
    other = start_worker(master.url, name="wrongrole", env={"FFRTMP_WORKER_KEY": master.api_key})
    assert other.wait(timeout=60) == 2


def test_api_without_a_key_gets_401(start_master: MasterFactory) -> None:
    master = start_master()
    with APIClient(master.url) as anonymous, pytest.raises(MasterError) as denied:
        anonymous.jobs()
    assert denied.value.status == 401
