"""A small synchronous client for the master's worker-facing HTTP protocol."""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "MasterClient",
    "MasterError",
    "MasterUnavailableError",
    "NodeRemovedError",
    "NodeUnknownError",
    "SupersededError",
    "tls_context",
]


class MasterError(Exception):
    """The master answered with an error status; ``error`` is its ``{"error": ...}`` text."""

    def __init__(
        self, status: int, error: str, detail: Any = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"master answered {status}: {error}")
        self.status = status
        self.error = error
        self.detail = detail
        #: seconds from a ``Retry-After`` header (429, 503), else ``None``
        self.retry_after = retry_after


class MasterUnavailableError(Exception):
    """The master could not be reached (connection refused, timeout, TLS failure...)."""


class NodeUnknownError(MasterError):
    """404 for this node: the master forgot it (register again)."""


class NodeRemovedError(MasterError):
    """410: an operator removed this node (stop working)."""


class SupersededError(MasterError):
    """409: this attempt is no longer current (``canceled`` when the job was canceled)."""

    @property
    def canceled(self) -> bool:
        """True when the job was canceled rather than reassigned."""
        return self.error == "canceled"


def tls_context(
    ca_cert: str | Path | None = None,
    client_cert: str | Path | None = None,
    client_key: str | Path | None = None,
) -> ssl.SSLContext:
    """A client TLS context: system CAs or ``ca_cert``, plus a client cert for mTLS."""
    context = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
    if client_cert is not None:
        context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
    return context


RequestHook = Callable[[httpx.Request], Any]

#: Ids the worker puts in URLs and paths: what the master issues (uuids, node ids).
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def safe_id(value: Any, what: str) -> str:
    """``value`` if it is a safe job or node id, else :class:`MasterError` (a bad answer).

    The master's answers are checked like any input: an id such as ``../escape`` must not
    become a URL path or a directory name.
    """
    if not isinstance(value, str) or not SAFE_ID.fullmatch(value):
        raise MasterError(200, f"the master sent an invalid {what}: {str(value)[:80]!r}")
    return value


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object, or :class:`MasterError` (retried like any bad answer)."""
    try:
        body = response.json()
    except ValueError:
        raise MasterError(
            response.status_code, f"answer is not JSON: {response.text[:80]!r}"
        ) from None
    if not isinstance(body, dict):
        raise MasterError(response.status_code, f"answer is not a JSON object: {str(body)[:80]}")
    return body


log = logging.getLogger("examples.worker.client")


class MasterClient:
    """Calls the master's node and job endpoints, mapping answers to return values/errors.

    Thread-safe (one ``httpx.Client`` with a connection pool): the heartbeat thread, the
    claim loop and the job threads share it. Given several masters (one database, one of
    them active), it talks to one at a time and moves to the next when the current one is
    unreachable or answers 503 (a standby, or its database is down); the failed call raises
    :class:`MasterUnavailableError` or :class:`MasterError` as before, and the caller's own
    retry loop, with its backoff, sends the retry to the next master. A result report thus
    reaches whichever master is active, once: a master that had recorded it answers the
    retry with 409.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        api_key: str | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 10.0,
        request_hooks: Sequence[RequestHook] = (),
    ) -> None:
        headers = {"User-Agent": "ffrtmp-worker"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        self.masters = (base_url,) if isinstance(base_url, str) else tuple(base_url)
        if not self.masters:
            raise ValueError("MasterClient needs at least one master URL")
        self._current = 0
        self._switch = threading.Lock()
        self._http = httpx.Client(
            headers=headers,
            verify=verify,
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            event_hooks={"request": list(request_hooks)},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def master(self) -> str:
        """The master currently talked to."""
        return self.masters[self._current]

    def _fail_over(self, index: int, why: str) -> None:
        """Move on from master ``index`` (unless another thread already did)."""
        with self._switch:
            if len(self.masters) > 1 and self._current == index:
                self._current = (index + 1) % len(self.masters)
                log.warning("master %s %s; moving to %s", self.masters[index], why, self.master)

    def _call(
        self, method: str, path: str, body: Any = None, *, read_timeout: float | None = None
    ) -> httpx.Response:
        timeout = httpx.Timeout(self.timeout, read=read_timeout) if read_timeout else None
        index = self._current
        url = self.masters[index] + path
        try:
            if timeout is None:
                response = self._http.request(method, url, json=body)
            else:
                response = self._http.request(method, url, json=body, timeout=timeout)
        except httpx.TransportError as exc:
            self._fail_over(index, "is unreachable")
            raise MasterUnavailableError(f"{method} {path}: {exc!r}") from exc
        if response.status_code == 503:
            self._fail_over(index, "answered 503 (standby, or its database is down)")
        if response.status_code >= 400:
            self._raise(response)
        return response

    @staticmethod
    def _raise(response: httpx.Response) -> None:
        try:
            payload = response.json()
            error = str(payload.get("error", response.reason_phrase))
            detail = payload.get("detail")
        except (ValueError, AttributeError):
            error, detail = response.text[:200] or response.reason_phrase, None
        status = response.status_code
        retry_after = None
        with contextlib.suppress(ValueError):
            retry_after = float(response.headers.get("retry-after", ""))
        if status == 404 and "/nodes/" in response.request.url.path:
            raise NodeUnknownError(status, error, detail)
        if status == 410:
            raise NodeRemovedError(status, error, detail)
        if status == 409:
            raise SupersededError(status, error, detail)
        raise MasterError(status, error, detail, retry_after)

    def set_node_token(self, token: str | None) -> None:
        """Send this node's credential (from registration) with every later request."""
        if token:
            self._http.headers["X-Node-Token"] = token
        else:
            self._http.headers.pop("X-Node-Token", None)

    def register(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``POST /nodes/register``: heartbeat_interval, heartbeat_timeout and ``node_token``.

        A node that registered before presents its token (see :meth:`set_node_token`).
        """
        return _json_object(self._call("POST", "/nodes/register", payload))

    def heartbeat(self, node_id: str, running: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /nodes/{id}/heartbeat``: returns the answer (``cancel`` lists job ids)."""
        path = f"/nodes/{safe_id(node_id, 'node id')}/heartbeat"
        answer = _json_object(self._call("POST", path, {"running": running}))
        cancel = answer.get("cancel", [])
        if not isinstance(cancel, list) or not all(isinstance(c, str) for c in cancel):
            raise MasterError(200, f"heartbeat answer: cancel must be a list of ids: {cancel!r}")
        return answer

    def claim(self, node_id: str, wait: float) -> dict[str, Any] | None:
        """``POST /nodes/{id}/claim``: an assignment, or ``None`` after ``wait`` seconds."""
        response = self._call(
            "POST",
            f"/nodes/{safe_id(node_id, 'node id')}/claim",
            {"wait": wait},
            read_timeout=wait + self.timeout,
        )
        if response.status_code == 204:
            return None
        assignment = _json_object(response)
        safe_id(assignment.get("job_id"), "job id")
        attempt = assignment.get("attempt")
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise MasterError(200, f"the master sent an invalid attempt: {attempt!r}")
        if not isinstance(assignment.get("spec"), dict):
            raise MasterError(200, "the master sent an assignment without a spec object")
        return assignment

    def progress(self, job_id: str, report: dict[str, Any]) -> None:
        """``POST /jobs/{id}/progress`` (raises :class:`SupersededError` on 409)."""
        self._call("POST", f"/jobs/{safe_id(job_id, 'job id')}/progress", report)

    def result(self, job_id: str, report: dict[str, Any]) -> None:
        """``POST /jobs/{id}/result`` (raises :class:`SupersededError` on 409)."""
        self._call("POST", f"/jobs/{safe_id(job_id, 'job id')}/result", report)

    def deregister(self, node_id: str) -> dict[str, Any]:
        """``DELETE /nodes/{id}``: the master drains and removes this node."""
        return _json_object(self._call("DELETE", f"/nodes/{safe_id(node_id, 'node id')}"))
