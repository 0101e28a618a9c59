"""``gen-certs``: a private CA plus server and client certificates for TLS and mTLS.

Keys are ECDSA P-256 (fast handshakes, small certificates); certificates are
valid for ``days`` days. The server certificate always covers ``localhost``,
``127.0.0.1`` and ``::1`` plus the hosts and addresses you name; the client
certificate (``client.crt``) is what workers present when the master requires
mTLS. Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertPaths", "generate_certs", "issue_client_cert"]


@dataclass(frozen=True)
class CertPaths:
    """Where :func:`generate_certs` wrote each file."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ffrtmp-infra examples"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for name in names:
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _leaf(
    common_name: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    usage: x509.ObjectIdentifier,
    sans: Iterable[str],
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(_san(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256()), key


def generate_certs(
    out_dir: str | os.PathLike[str],
    *,
    hosts: Iterable[str] = (),
    client_name: str = "ffrtmp-worker",
    days: int = 365,
) -> CertPaths:
    """Write ``ca.crt/key``, ``server.crt/key`` and ``client.crt/key`` into ``out_dir``.

    ``hosts`` are extra DNS names or IP addresses for the server certificate.
    Raises ``ValueError`` for ``days`` outside 1..3650.
    """
    if not isinstance(days, int) or not 1 <= days <= 3650:
        raise ValueError(f"days must be an integer in 1..3650, got {days!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("ffrtmp examples CA"))
        .issuer_name(_name("ffrtmp examples CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    host_list = list(hosts)
    server_cert, server_key = _leaf(
        host_list[0] if host_list else "localhost",
        ca_cert,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=["localhost", "127.0.0.1", "::1", *host_list],
        days=days,
    )
    client_cert, client_key = _leaf(
        client_name,
        ca_cert,
        ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=[client_name],
        days=days,
    )
    paths = CertPaths(
        out / "ca.crt",
        out / "ca.key",
        out / "server.crt",
        out / "server.key",
        out / "client.crt",
        out / "client.key",
    )
    _write_cert(paths.ca_cert, ca_cert)
    _write_key(paths.ca_key, ca_key)
    _write_cert(paths.server_cert, server_cert)
    _write_key(paths.server_key, server_key)
    _write_cert(paths.client_cert, client_cert)
    _write_key(paths.client_key, client_key)
    return paths


def issue_client_cert(
    ca_dir: str | os.PathLike[str], name: str, *, days: int = 365
) -> tuple[Path, Path]:
    """Sign one more client certificate with the CA that :func:`generate_certs` wrote.

    Writes ``<name>.crt`` and ``<name>.key`` (0600) next to ``ca.crt``/``ca.key`` in
    ``ca_dir`` and returns their paths: one certificate per worker, one CA on the master.
    Raises ``ValueError`` for a bad name or ``days``, ``FileNotFoundError`` without a CA.
    """
    if not isinstance(days, int) or not 1 <= days <= 3650:
        raise ValueError(f"days must be an integer in 1..3650, got {days!r}")
    if not name or not all(c.isalnum() or c in "._-" for c in name) or name.startswith("."):
        raise ValueError(f"client name must be letters, digits, '.', '_' or '-', got {name!r}")
    if name in ("ca", "server"):
        raise ValueError(f"client name {name!r} would overwrite the CA or server files")
    directory = Path(ca_dir)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    loaded = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / 'ca.key'} is not an EC key written by gen-certs")
    cert, key = _leaf(
        name,
        ca_cert,
        loaded,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=[name],
        days=days,
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    _write_cert(cert_path, cert)
    _write_key(key_path, key)
    return cert_path, key_path
