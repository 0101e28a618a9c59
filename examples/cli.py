"""``python -m examples.cli``: submit and manage jobs and nodes on a master.

    python -m examples.cli submit --scenario 720p-h264 --testsrc 10 --wait
    python -m examples.cli submit --scenario 480p-h264 --file clips/a.mp4 --set crf=28
    python -m examples.cli submit --scenario live-rtmp --testsrc 60 --output rtmp://host/live/key
    python -m examples.cli status JOB_ID
    python -m examples.cli list --status running
    python -m examples.cli cancel JOB_ID ; python -m examples.cli retry JOB_ID
    python -m examples.cli nodes [NODE_ID] ; python -m examples.cli nodes --remove NODE_ID

The master URL comes from ``--master`` or ``FFRTMP_MASTER`` (default http://127.0.0.1:8080),
the key from ``--api-key`` or ``FFRTMP_API_KEY``. ``--json`` prints raw JSON. Exit codes: 0
ok, 1 the job failed or was canceled (``--wait``), 2 usage, 3 the master refused, 4 the
master is unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from examples.worker.client import MasterError, tls_context

__all__ = ["APIClient", "MasterError", "format_table", "main"]

TERMINAL = ("completed", "failed", "canceled")


class APIClient:
    """The submitter/admin side of the master's API (jobs and nodes)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        ca_cert: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        headers = {"User-Agent": "ffrtmp-cli"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        verify: Any = True
        if base_url.startswith("https://"):
            verify = tls_context(ca_cert, client_cert, client_key)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, verify=verify, timeout=timeout
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; return the decoded JSON or raise :class:`MasterError`."""
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                payload = response.json()
                message, detail = str(payload.get("error")), payload.get("detail")
            except (ValueError, AttributeError):
                message, detail = response.text[:300] or response.reason_phrase, None
            raise MasterError(response.status_code, message, detail)
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        """``GET /health``."""
        result: dict[str, Any] = self.request("GET", "/health")
        return result

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``POST /jobs``: returns the created job."""
        result: dict[str, Any] = self.request("POST", "/jobs", json=spec)
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}`` (with its attempts history)."""
        result: dict[str, Any] = self.request("GET", f"/jobs/{job_id}")
        return result

    def jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """``GET /jobs``: ``{"jobs": [...], "next_cursor": ...}``."""
        params = {"status": status, "queue": queue, "limit": limit, "cursor": cursor}
        query = {k: v for k, v in params.items() if v is not None}
        result: dict[str, Any] = self.request("GET", "/jobs", params=query)
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        """``POST /jobs/{id}/cancel``."""
        result: dict[str, Any] = self.request("POST", f"/jobs/{job_id}/cancel")
        return result

    def retry(self, job_id: str) -> dict[str, Any]:
        """``POST /jobs/{id}/retry``."""
        result: dict[str, Any] = self.request("POST", f"/jobs/{job_id}/retry")
        return result

    def nodes(self) -> list[dict[str, Any]]:
        """``GET /nodes``."""
        result: list[dict[str, Any]] = self.request("GET", "/nodes")["nodes"]
        return result

    def node(self, node_id: str) -> dict[str, Any]:
        """``GET /nodes/{id}``."""
        result: dict[str, Any] = self.request("GET", f"/nodes/{node_id}")
        return result

    def remove_node(self, node_id: str) -> dict[str, Any]:
        """``DELETE /nodes/{id}``: drain and remove; returns the requeued job ids."""
        result: dict[str, Any] = self.request("DELETE", f"/nodes/{node_id}")
        return result

    def wait(
        self, job_id: str, *, timeout: float = 3600.0, interval: float = 0.5
    ) -> dict[str, Any]:
        """Poll a job until it is completed, failed or canceled (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in TERMINAL or time.monotonic() > deadline:
                return job
            time.sleep(interval)


# -- formatting ------------------------------------------------------------------------------


def human_size(size: float | None) -> str:
    """``1536`` -> ``1.5 KiB``."""
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with left-aligned columns."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def job_row(job: dict[str, Any]) -> list[Any]:
    """One job as a table row: id, status, scenario, node, progress, duration, speed, size."""
    result = job.get("result") or {}
    progress = job.get("progress") or {}
    percent = progress.get("percent")
    size = sum(o.get("size", 0) for o in result.get("outputs") or []) if result else None
    speed = result.get("speed")
    duration = result.get("media_duration_s")
    return [
        job["id"][:8],
        job["status"],
        job["scenario"],
        job.get("node_id"),
        f"{percent:.0f}%" if percent is not None else None,
        f"{duration:.2f}s" if duration is not None else None,
        f"{speed:.1f}x" if speed else None,
        human_size(size) if size else None,
    ]


JOB_HEADERS = ("job", "status", "scenario", "node", "progress", "duration", "speed", "output")


# -- command line ----------------------------------------------------------------------------


def _value(text: str) -> Any:
    """``--set`` values: integers stay integers, everything else is a string."""
    return int(text) if text.lstrip("-").isdigit() else text


def build_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The job spec for ``submit`` (the master validates it and answers 422 if wrong)."""
    sources = [args.testsrc is not None, args.file is not None, args.url is not None]
    if sum(sources) != 1:
        raise ValueError("give exactly one input: --testsrc SECONDS, --file PATH or --url URL")
    if args.testsrc is not None:
        source: dict[str, Any] = {"type": "testsrc", "duration": args.testsrc}
        if args.size:
            source["size"] = args.size
        if args.rate:
            source["rate"] = args.rate
    elif args.file is not None:
        source = {"type": "file", "path": args.file}
    else:
        source = {"type": "url", "url": args.url}
    spec: dict[str, Any] = {"scenario": args.scenario, "input": source}
    if args.queue:
        spec["queue"] = args.queue
    if args.priority:
        spec["priority"] = args.priority
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set must be NAME=VALUE, got {item!r}")
        overrides[key] = _value(value)
    if overrides:
        spec["overrides"] = overrides
    if args.output:
        spec["output"] = {"url": args.output}
    return spec


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m examples.cli`` argument parser."""
    p = argparse.ArgumentParser(prog="python -m examples.cli", description=__doc__.split("\n")[0])
    p.add_argument("--master", default=os.environ.get("FFRTMP_MASTER", "http://127.0.0.1:8080"))
    p.add_argument("--api-key", default=os.environ.get("FFRTMP_API_KEY"))
    p.add_argument("--ca-cert", help="CA bundle for an https master")
    p.add_argument("--client-cert", help="client certificate (mTLS)")
    p.add_argument("--client-key", help="client key (mTLS)")
    p.add_argument("--json", action="store_true", help="print raw JSON")
    sub = p.add_subparsers(dest="command", required=True)
    # --json also works after the subcommand (SUPPRESS keeps the global value otherwise)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    submit = sub.add_parser("submit", help="submit a job", parents=[common])
    submit.add_argument("--scenario", required=True, help="see docs/examples.md for the list")
    submit.add_argument("--testsrc", type=float, metavar="SECONDS", help="generated test input")
    submit.add_argument("--size", help="test input size, WxH")
    submit.add_argument("--rate", type=int, help="test input frame rate")
    submit.add_argument("--file", help="input path relative to the worker's --media-root")
    submit.add_argument("--url", help="http(s) input URL")
    submit.add_argument("--queue", choices=["live", "default", "batch"])
    submit.add_argument("--priority", choices=["high", "medium", "low"])
    submit.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override: bitrate, preset, crf, resolution, fps")  # fmt: skip
    submit.add_argument("--output", help="rtmp(s):// URL for live-rtmp")
    submit.add_argument("--wait", action="store_true", help="wait until the job ends")

    status = sub.add_parser("status", help="show one job with its attempts", parents=[common])
    status.add_argument("job_id")
    listing = sub.add_parser("list", help="list jobs, newest first", parents=[common])
    listing.add_argument("--status", choices=["queued", "assigned", "running", *TERMINAL])
    listing.add_argument("--queue", choices=["live", "default", "batch"])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor")
    for name in ("cancel", "retry"):
        sub.add_parser(name, help=f"{name} a job", parents=[common]).add_argument("job_id")
    nodes = sub.add_parser("nodes", help="list nodes, show one, or remove one", parents=[common])
    nodes.add_argument("node_id", nargs="?")
    nodes.add_argument("--remove", action="store_true", help="drain and remove NODE_ID")
    return p


def _print_job(job: dict[str, Any]) -> None:
    print(format_table(JOB_HEADERS, [job_row(job)]))
    for attempt in job.get("attempts") or []:
        print(
            f"  attempt {attempt['attempt']} on {attempt['node_id']}: "
            f"{attempt.get('outcome') or 'in progress'}"
            + (f" ({attempt['error']})" if attempt.get("error") else "")
        )
    if job.get("error"):
        print(f"  error: {job['error']}")
    result = job.get("result") or {}
    for output in result.get("outputs") or []:
        print(f"  output: {output['path']} ({human_size(output['size'])})")


def run(args: argparse.Namespace, client: APIClient) -> int:
    """Execute one parsed command; returns the exit code."""
    out: Any
    if args.command == "submit":
        out = client.submit(build_spec(args))
        if args.wait:
            out = client.wait(out["id"])
    elif args.command == "status":
        out = client.job(args.job_id)
    elif args.command == "list":
        out = client.jobs(
            status=args.status, queue=args.queue, limit=args.limit, cursor=args.cursor
        )
    elif args.command == "cancel":
        out = client.cancel(args.job_id)
    elif args.command == "retry":
        out = client.retry(args.job_id)
    elif args.node_id and args.remove:
        out = client.remove_node(args.node_id)
    elif args.node_id:
        out = client.node(args.node_id)
    else:
        out = {"nodes": client.nodes()}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    elif args.command == "list":
        print(format_table(JOB_HEADERS, [job_row(j) for j in out["jobs"]]))
        if out.get("next_cursor"):
            print(f"more: --cursor {out['next_cursor']}")
    elif args.command == "nodes" and "nodes" in out:
        rows = [
            [n["id"], n["status"], n["capacity"].get("cpu"), n["capacity"].get("gpu"),
             len(n.get("jobs") or []), n.get("last_heartbeat")]
            for n in out["nodes"]
        ]  # fmt: skip
        print(format_table(("node", "status", "cpu", "gpu", "jobs", "last heartbeat"), rows))
    elif args.command == "nodes" and "evicted" in out:
        print(f"removed {args.node_id}; requeued: {', '.join(out['evicted']) or 'none'}")
    elif args.command == "nodes":
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        _print_job(out)
    if args.command == "submit" and args.wait and out["status"] != "completed":
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        client = APIClient(
            args.master,
            api_key=args.api_key,
            ca_cert=args.ca_cert,
            client_cert=args.client_cert,
            client_key=args.client_key,
        )
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    with client:
        try:
            return run(args, client)
        except ValueError as exc:
            parser.error(str(exc))
        except MasterError as exc:
            detail = f" ({json.dumps(exc.detail)})" if exc.detail else ""
            print(f"error: the {exc}{detail}", file=sys.stderr)
            return 3
        except httpx.TransportError as exc:
            print(f"error: cannot reach the master at {args.master}: {exc}", file=sys.stderr)
            return 4


if __name__ == "__main__":
    sys.exit(main())
