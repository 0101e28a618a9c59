"""TLS, mTLS, gen-certs, the rate limiter in front and the auth-failure lockout."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from examples.master.app import create_app
from examples.master.certs import CertPaths, generate_certs
from examples.master.config import MasterConfig

from tests.support.servers import serve_asgi

API_KEY = "submitter-key-0123456789abcdef"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return generate_certs(tmp_path_factory.mktemp("certs"), hosts=["master.test"])


@pytest.fixture
def mtls_master(tmp_path: Path, certs: CertPaths) -> Iterator[str]:
    app = create_app(MasterConfig(db=str(tmp_path / "m.db"), api_key=API_KEY))
    with serve_asgi(
        app,
        ssl_certfile=str(certs.server_cert),
        ssl_keyfile=str(certs.server_key),
        ssl_ca_certs=str(certs.ca_cert),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as url:
        yield url
    app.store.close()


def _client_context(certs: CertPaths, *, with_cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    if with_cert:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


def test_gen_certs_writes_private_keys_0600(certs: CertPaths) -> None:
    for key in (certs.ca_key, certs.server_key, certs.client_key):
        assert key.stat().st_mode & 0o777 == 0o600


def test_gen_certs_command_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.master",
            "gen-certs",
            "--out",
            str(tmp_path),
            "--host",
            "10.0.0.5",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "server_cert" in out.stdout
    assert (tmp_path / "client.crt").exists()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.master",
            "gen-certs",
            "--out",
            str(tmp_path),
            "--days",
            "0",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "days must be" in bad.stderr


def test_add_client_signs_with_the_existing_ca(tmp_path: Path) -> None:
    paths = generate_certs(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.master",
            "gen-certs",
            "--out",
            str(tmp_path),
            "--add-client",
            "worker-7",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "worker-7.crt" in out.stdout
    assert (tmp_path / "worker-7.key").stat().st_mode & 0o777 == 0o600
    issued = x509.load_pem_x509_certificate((tmp_path / "worker-7.crt").read_bytes())
    issued.verify_directly_issued_by(x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()))
    other_ca = x509.load_pem_x509_certificate(
        generate_certs(tmp_path / "other").ca_cert.read_bytes()
    )
    with pytest.raises(InvalidSignature):
        issued.verify_directly_issued_by(other_ca)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.master",
            "gen-certs",
            "--out",
            str(tmp_path),
            "--add-client",
            "../evil",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "client name" in bad.stderr


def test_mtls_client_with_certificate_is_served(mtls_master: str, certs: CertPaths) -> None:
    with httpx.Client(base_url=mtls_master, verify=_client_context(certs)) as client:
        response = client.get("/health")
    assert response.status_code == 200


def test_mtls_client_without_certificate_fails_the_handshake(
    mtls_master: str, certs: CertPaths
) -> None:
    with (
        httpx.Client(
            base_url=mtls_master, verify=_client_context(certs, with_cert=False)
        ) as client,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        client.get("/health")


def test_client_certificate_from_another_ca_is_refused(
    mtls_master: str, certs: CertPaths, tmp_path: Path
) -> None:
    rogue = generate_certs(tmp_path / "rogue")
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    context.load_cert_chain(str(rogue.client_cert), str(rogue.client_key))
    with (
        httpx.Client(base_url=mtls_master, verify=context) as client,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        client.get("/health")


def _plain_master(tmp_path: Path, **config: Any) -> Any:
    settings: dict[str, Any] = {"db": str(tmp_path / "m.db"), "api_key": API_KEY}
    settings.update(config)
    return create_app(MasterConfig(**settings))


def test_rate_limiter_answers_429_in_front_of_the_api(tmp_path: Path) -> None:
    app = _plain_master(tmp_path, rate_limit=0.01, rate_burst=3)
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        codes = [
            client.get("/jobs", headers={"Authorization": f"Bearer {API_KEY}"}).status_code
            for _ in range(5)
        ]
        assert client.get("/health").status_code == 200  # exempt
    app.store.close()
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]


def test_repeated_auth_failures_lock_the_client_out(tmp_path: Path) -> None:
    app = _plain_master(tmp_path, auth_failure_limit=3, auth_failure_window=60.0)
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        wrong = {"Authorization": "Bearer guess-guess-guess-guess"}
        codes = [client.get("/jobs", headers=wrong).status_code for _ in range(5)]
        locked = client.get("/jobs", headers=wrong)
        right = client.get("/jobs", headers={"Authorization": f"Bearer {API_KEY}"})
        metrics = client.get("/metrics").text
    app.store.close()
    assert codes == [401, 401, 401, 429, 429]
    assert int(locked.headers["Retry-After"]) >= 1
    assert right.status_code == 200  # only failures are throttled: a right key gets in
    assert "ffrtmp_auth_lockouts_total" in metrics


def test_invalid_configuration_names_the_value() -> None:
    from examples.master.config import ConfigError

    with pytest.raises(ConfigError, match="heartbeat_timeout"):
        MasterConfig(heartbeat_interval=10, heartbeat_timeout=5)
    with pytest.raises(ConfigError, match="api_key must be at least 16"):
        MasterConfig(api_key="short")
    with pytest.raises(ConfigError, match="placement"):
        MasterConfig(placement="random")


def _gen_certs(out: Path, *extra: str, umask: int = 0o002) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.master", "gen-certs", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: os.umask(umask),
    )


def test_gen_certs_modes_ignore_a_loose_umask(tmp_path: Path) -> None:
    out = tmp_path / "fresh" / "certs"
    assert _gen_certs(out).returncode == 0
    assert out.stat().st_mode & 0o777 == 0o700
    for path in out.iterdir():
        mode = path.stat().st_mode & 0o777
        assert mode == (0o600 if path.suffix == ".key" else 0o644), (path, oct(mode))
        assert not mode & 0o022
    added = _gen_certs(out, "--add-client", "worker-7")
    assert added.returncode == 0, added.stderr
    assert (out / "worker-7.key").stat().st_mode & 0o777 == 0o600


def test_gen_certs_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    assert _gen_certs(out).returncode == 0
    before = (out / "ca.key").read_bytes()
    again = _gen_certs(out)
    assert again.returncode == 2
    assert "already exists; pass --force" in again.stderr
    assert (out / "ca.key").read_bytes() == before
    assert _gen_certs(out, "--force").returncode == 0
    assert (out / "ca.key").read_bytes() != before


def test_gen_certs_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    out.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (out / "server.key").symlink_to(victim)
    refused = _gen_certs(out)
    assert refused.returncode == 2
    assert victim.read_text() == "untouched"
    assert _gen_certs(out, "--force").returncode == 0
    assert victim.read_text() == "untouched"  # the link was replaced, not written through
    assert not (out / "server.key").is_symlink()


def test_gen_certs_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    refused = _gen_certs(shared)
    assert refused.returncode == 2
    assert "writable by group or others" in refused.stderr
