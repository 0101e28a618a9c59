"""``gen-certs``: a private CA plus server and client certificates for TLS and mTLS.

Keys are ECDSA P-256 (fast handshakes, small certificates); certificates are
valid for ``days`` days. The server certificate always covers ``localhost``,
``127.0.0.1`` and ``::1`` plus the hosts and addresses you name; the client
certificate (``client.crt``) is what workers present when the master requires
mTLS.

Modes are explicit, whatever the umask: a directory it creates is 0700, keys are 0600
and certificates 0644. Every file is created exclusively without following symlinks
(``O_EXCL | O_NOFOLLOW``), so a planted link cannot redirect a key, and existing files
are not overwritten unless ``force`` (``--force``) is given. Keep ``ca.key`` off the
master host once the certificates are issued: the master needs only ``ca.crt``.
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


def _write(path: Path, data: bytes, mode: int, *, force: bool) -> None:
    """Create ``path`` with exactly ``mode``: exclusive, no symlink followed."""
    if force and (path.is_symlink() or path.exists()):
        path.unlink()  # removes a link itself, never its target
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise ValueError(f"{path} already exists; pass --force to overwrite it") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # the umask only ever removes bits; set them all
        handle.write(data)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, *, force: bool = False) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(path, data, 0o600, force=force)


def _write_cert(path: Path, cert: x509.Certificate, *, force: bool = False) -> None:
    _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644, force=force)


def _private_dir(out: Path) -> None:
    """Create ``out`` as 0700, or check that an existing one is not writable by others."""
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
        out.chmod(0o700)  # mkdir's mode is filtered by the umask
        return
    if not out.is_dir():
        raise ValueError(f"{out} is not a directory")
    if out.stat().st_mode & 0o022:
        raise ValueError(f"{out} is writable by group or others; use a private directory")


def _refuse_overwrite(paths: Iterable[Path], force: bool) -> None:
    """Check every target first, so a refusal leaves no half-written set behind."""
    if force:
        return
    for path in paths:
        if path.is_symlink() or path.exists():
            raise ValueError(f"{path} already exists; pass --force to overwrite it")


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
    force: bool = False,
) -> CertPaths:
    """Write ``ca.crt/key``, ``server.crt/key`` and ``client.crt/key`` into ``out_dir``.

    ``hosts`` are extra DNS names or IP addresses for the server certificate. Raises
    ``ValueError`` for ``days`` outside 1..3650, for an existing file unless ``force``,
    and for an existing directory writable by group or others.
    """
    if not isinstance(days, int) or not 1 <= days <= 3650:
        raise ValueError(f"days must be an integer in 1..3650, got {days!r}")
    out = Path(out_dir)
    names = ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")
    _private_dir(out)
    _refuse_overwrite((out / n for n in names), force)
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
    _write_cert(paths.ca_cert, ca_cert, force=force)
    _write_key(paths.ca_key, ca_key, force=force)
    _write_cert(paths.server_cert, server_cert, force=force)
    _write_key(paths.server_key, server_key, force=force)
    _write_cert(paths.client_cert, client_cert, force=force)
    _write_key(paths.client_key, client_key, force=force)
    return paths


def issue_client_cert(
    ca_dir: str | os.PathLike[str], name: str, *, days: int = 365, force: bool = False
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
    _refuse_overwrite((cert_path, key_path), force)
    _write_cert(cert_path, cert, force=force)
    _write_key(key_path, key, force=force)
    return cert_path, key_path
