"""``python -m examples.master``: run the master, or ``gen-certs`` to make TLS material.

python -m examples.master --port 8080 --db master.db
python -m examples.master gen-certs --out certs --host master.example.com
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from collections.abc import Sequence

from examples.common.netpolicy import DestinationPolicy
from examples.master.config import ConfigError, MasterConfig

log = logging.getLogger("examples.master")


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.master",
        description="Reference ffrtmp master: job API, scheduler and resource-aware placement. "
        "Run 'python -m examples.master gen-certs --help' to create TLS certificates.",
    )
    net = parser.add_argument_group("listening")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    net.add_argument(
        "--db",
        default="master.db",
        help="job store: a SQLite file or sqlite:///path (one master), or "
        "postgresql://user@host:port/database (several masters; default master.db)",
    )
    net.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    net.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        help="open connections at most (lowered to fit the descriptor limit; default 4096)",
    )
    net.add_argument(
        "--max-connections-per-client",
        type=int,
        default=64,
        help="open connections per peer address, trusted proxies exempt (default 64)",
    )
    net.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection has to send a complete request head (default 10)",
    )

    sec = parser.add_argument_group("security")
    sec.add_argument(
        "--api-key",
        default=os.environ.get("FFRTMP_API_KEY"),
        help="key for submitters and admins (env FFRTMP_API_KEY; unset = open, not recommended)",
    )
    sec.add_argument(
        "--worker-key",
        default=os.environ.get("FFRTMP_WORKER_KEY"),
        help="key workers present (env FFRTMP_WORKER_KEY; unset = open, not recommended)",
    )
    sec.add_argument("--tls-cert", help="server certificate (PEM)")
    sec.add_argument("--tls-key", help="server private key (PEM)")
    sec.add_argument(
        "--tls-auto",
        metavar="DIR",
        help="serve TLS with certificates from DIR, generating them there with gen-certs if absent",
    )
    sec.add_argument(
        "--tls-client-ca",
        help="require client certificates signed by this CA (mTLS; needs TLS)",
    )
    sec.add_argument(
        "--trust-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="honour X-Forwarded-For only from these proxies (repeatable)",
    )

    jobs = parser.add_argument_group("job destinations (SSRF guard)")
    jobs.add_argument(
        "--allow-input-host",
        action="append",
        default=[],
        metavar="HOST",
        help="allow http(s) inputs from HOST even if it is private or loopback (repeatable)",
    )
    jobs.add_argument(
        "--allow-private-inputs",
        action="store_true",
        help="allow inputs from any private/loopback/link-local address (labs only)",
    )
    jobs.add_argument(
        "--rtmp-allow",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow live RTMP output to HOST (any port, or only PORT); none by default",
    )

    limits = parser.add_argument_group("rate limits")
    limits.add_argument(
        "--rate-limit", type=float, default=50.0, help="requests/s per client (0 = off)"
    )
    limits.add_argument("--rate-burst", type=int, default=100, help="burst per client")
    limits.add_argument(
        "--worker-rate-limit", type=float, default=50.0, help="worker reports/s per node"
    )
    limits.add_argument("--worker-rate-burst", type=int, default=150, help="burst per node")
    limits.add_argument(
        "--auth-failure-limit", type=int, default=10, help="failed auths per window before lockout"
    )
    limits.add_argument("--auth-failure-window", type=float, default=60.0, help="seconds")

    sched = parser.add_argument_group("scheduling and fault tolerance (seconds)")
    sched.add_argument("--heartbeat-interval", type=float, default=5.0)
    sched.add_argument("--heartbeat-timeout", type=float, default=30.0)
    sched.add_argument(
        "--stale-timeout-live", type=float, default=300.0, help="live jobs without progress"
    )
    sched.add_argument(
        "--stale-timeout-batch", type=float, default=1800.0, help="batch jobs without progress"
    )
    sched.add_argument("--max-retries", type=int, default=3)
    sched.add_argument("--retry-backoff", type=float, default=2.0, help="first retry delay")
    sched.add_argument("--retry-backoff-max", type=float, default=300.0)
    sched.add_argument("--max-nodes", type=int, default=10_000, help="registered nodes at most")
    sched.add_argument(
        "--prune-offline-after",
        type=float,
        default=86_400.0,
        help="forget nodes offline this long (default one day)",
    )
    sched.add_argument("--placement", choices=["spread", "binpack", "balanced"], default="spread")
    sched.add_argument(
        "--lease-ttl",
        type=float,
        default=10.0,
        help="several masters on one database: the active one holds the duties lease this "
        "long per renewal; a standby takes over within 4/3 of it (default 10)",
    )
    sched.add_argument(
        "--ledger-redis",
        metavar="URL",
        help="keep the resource ledger in Redis (redis://...) instead of the active master's "
        "memory; its reservations are then leases of this master, renewed every second",
    )
    sched.add_argument(
        "--reservation-ttl",
        type=float,
        help="with --ledger-redis: a reservation not renewed this long (a dead master's) "
        "expires and its capacity comes back (default 3 heartbeat intervals)",
    )

    tracing = parser.add_argument_group("tracing")
    tracing.add_argument(
        "--otlp-endpoint", help="OTLP/HTTP endpoint, e.g. http://localhost:4318 (else OTEL_* env)"
    )
    tracing.add_argument("--sample-ratio", type=float, help="fraction of traces kept (0..1)")
    return parser


def _gen_certs(argv: Sequence[str]) -> int:
    from examples.master.certs import generate_certs, issue_client_cert

    parser = argparse.ArgumentParser(
        prog="python -m examples.master gen-certs",
        description="Write a CA, a server certificate and a worker client certificate.",
    )
    parser.add_argument("--out", required=True, help="directory to write into")
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        help="extra DNS name or IP for the server certificate (repeatable)",
    )
    parser.add_argument("--client-name", default="ffrtmp-worker")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--add-client",
        metavar="NAME",
        help="only sign a new client certificate NAME.crt/key with the CA already in --out",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite existing certificates and keys"
    )
    args = parser.parse_args(argv)
    if args.add_client:
        try:
            cert, key = issue_client_cert(
                args.out, args.add_client, days=args.days, force=args.force
            )
        except (ValueError, FileNotFoundError) as exc:
            parser.error(str(exc))
        print(f"client_cert  {cert}\nclient_key   {key}")
        return 0
    try:
        paths = generate_certs(
            args.out,
            hosts=args.host,
            client_name=args.client_name,
            days=args.days,
            force=args.force,
        )
    except ValueError as exc:
        parser.error(str(exc))
    for name, path in vars(paths).items():
        print(f"{name:12} {path}")
    return 0


def _tls_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, object]:
    cert, key = args.tls_cert, args.tls_key
    if args.tls_auto:
        from pathlib import Path

        from examples.master.certs import generate_certs

        directory = Path(args.tls_auto)
        if not (directory / "server.crt").exists():
            try:
                generate_certs(directory)
            except ValueError as exc:
                parser.error(f"--tls-auto: {exc}")
            log.warning("generated a CA and certificates in %s", directory)
        cert, key = str(directory / "server.crt"), str(directory / "server.key")
    if bool(cert) != bool(key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not cert:
        parser.error("--tls-client-ca (mTLS) needs TLS: give --tls-cert/--tls-key or --tls-auto")
    if not cert:
        return {}
    options: dict[str, object] = {"ssl_certfile": cert, "ssl_keyfile": key}
    if args.tls_client_ca:
        options.update(ssl_ca_certs=args.tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gen-certs"]:
        return _gen_certs(argv[1:])
    parser = _serve_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s]: %(message)s",
    )
    from ffrtmp_infra.tracing import install_log_correlation

    install_log_correlation()  # fills trace_id in every record (empty outside a span)
    try:
        destinations = DestinationPolicy.from_options(
            args.allow_input_host, args.allow_private_inputs, args.rtmp_allow
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        config = MasterConfig(
            db=args.db,
            api_key=args.api_key or None,
            worker_key=args.worker_key or None,
            heartbeat_interval=args.heartbeat_interval,
            heartbeat_timeout=args.heartbeat_timeout,
            stale_timeout_live=args.stale_timeout_live,
            stale_timeout_batch=args.stale_timeout_batch,
            max_retries=args.max_retries,
            retry_backoff=args.retry_backoff,
            retry_backoff_max=args.retry_backoff_max,
            placement=args.placement,
            rate_limit=args.rate_limit,
            rate_burst=args.rate_burst,
            worker_rate_limit=args.worker_rate_limit,
            worker_rate_burst=args.worker_rate_burst,
            auth_failure_limit=args.auth_failure_limit,
            auth_failure_window=args.auth_failure_window,
            trust_proxies=tuple(args.trust_proxy),
            destinations=destinations,
            max_nodes=args.max_nodes,
            prune_offline_after=args.prune_offline_after,
            lease_ttl=args.lease_ttl,
            ledger_redis=args.ledger_redis,
            reservation_ttl=args.reservation_ttl,
        )
    except ConfigError as exc:
        parser.error(str(exc))
    tls = _tls_options(args, parser)
    for role, flag, key in (
        ("submitters", "--api-key / FFRTMP_API_KEY", config.api_key),
        ("workers", "--worker-key / FFRTMP_WORKER_KEY", config.worker_key),
    ):
        if key is None:
            log.warning(
                "NO KEY FOR %s (%s): that part of the API is open to anyone who can reach it",
                role.upper(),
                flag,
            )

    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    import ffrtmp_infra
    from examples.common.telemetry import tracing_config
    from examples.master.app import create_app
    from examples.master.connguard import (
        FD_RESERVE,
        ConnectionGuard,
        guarded_protocol,
        raise_fd_limit,
    )
    from ffrtmp_infra.tracing import init_tracer

    try:
        tracing_settings = tracing_config(
            "ffrtmp-master",
            otlp_endpoint=args.otlp_endpoint,
            sample_ratio=args.sample_ratio,
            version=ffrtmp_infra.__version__,
        )
    except ValueError as exc:
        parser.error(str(exc))
    descriptors = raise_fd_limit()
    max_connections = min(args.max_connections, max(64, descriptors - FD_RESERVE))
    if max_connections < args.max_connections:
        log.warning(
            "--max-connections lowered to %d to fit the descriptor limit (%d)",
            max_connections,
            descriptors,
        )
    try:
        guard = ConnectionGuard(
            max_connections=max_connections,
            max_per_client=args.max_connections_per_client,
            header_timeout=args.header_timeout,
            trusted_proxies=config.trust_proxies,
        )
    except ValueError as exc:
        parser.error(str(exc))
    from examples.master.errors import SchemaTooNew, StoreUnavailable

    tracing = init_tracer(tracing_settings)
    try:
        # Flushed in the lifespan: on SIGTERM uvicorn re-raises the signal after its graceful
        # shutdown, so the finally below runs only on SIGINT and errors.
        app = create_app(config, on_shutdown=tracing.shutdown)
    except (SchemaTooNew, StoreUnavailable) as exc:
        log.error("cannot open the job store: %s", exc)
        return 1
    scheme = "https" if tls else "http"
    where = (scheme, args.host, args.port, app.store.display)
    log.info("master listening on %s://%s:%d (db %s)", *where)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 and rewrite the
            # client address; the app reads it itself, from --trust-proxy peers only.
            proxy_headers=False,
            http=guarded_protocol(AutoHTTPProtocol, guard),
            **tls,  # type: ignore[arg-type]
        )
    finally:
        app.store.close()
        tracing.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
