"""Keeping secrets (URL credentials, RTMP stream keys, tokens) out of spans."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ffrtmp_infra.tracing._server import REDACTED, redact_query

__all__ = ["REDACTED", "redact_argv", "redact_text", "redact_url"]

# RTMP URLs are rtmp://host[:port]/app/<stream key>: everything after the app is secret.
_RTMP_SCHEMES = frozenset({"rtmp", "rtmps", "rtmpe", "rtmpt", "rtmpte", "rtmpts"})

# ffmpeg options whose value is a secret (headers carry Authorization/cookies).
_SECRET_OPTIONS = frozenset(
    {
        "-headers", "-cookies", "-password", "-passphrase", "-key", "-rtmp_playpath",
        "-rtmp_conn", "-decryption_key", "-encryption_key", "-srtp_in_params",
        "-srtp_out_params", "-auth",
    }
)  # fmt: skip

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>\]\[,]+")


def redact_url(url: str) -> str:
    """``url`` without its secrets: credentials, the RTMP stream key, secret query values.

    ``rtmp://u:p@live.example/app/abcd-1234?token=x`` becomes
    ``rtmp://REDACTED@live.example/app/REDACTED?token=REDACTED``. Text that is
    not a URL is returned unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED  # not parseable, so we cannot tell what is secret in it
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rpartition("@")[2]
    path = parts.path
    if parts.scheme.lower() in _RTMP_SCHEMES:
        segments = path.split("/")  # ["", "app", "key", ...]
        if len(segments) > 2 and any(segments[2:]):
            path = "/".join([*segments[:2], REDACTED])
    query = redact_query(parts.query) if parts.query else ""
    return urlunsplit(SplitResult(parts.scheme, netloc, path, query, parts.fragment))


def _redact_whole(arg: str) -> str:
    """A secret argument: a URL keeps only its scheme and host, anything else goes."""
    try:
        parts = urlsplit(arg)
        host = parts.hostname
    except ValueError:
        return REDACTED
    if parts.scheme and host:
        return f"{parts.scheme}://{host}/{REDACTED}"
    return REDACTED


def redact_argv(argv: Iterable[str], secrets: Collection[str] = ()) -> list[str]:
    """A command line safe to record: URLs redacted, values of secret options replaced.

    Arguments listed in ``secrets`` (say a push URL whose path is a stream key on a
    server that is not RTMP) are reduced to ``scheme://host/REDACTED``, or to
    ``REDACTED`` when they are not URLs.
    """
    result: list[str] = []
    secret_next = False
    for raw in argv:
        arg = str(raw)
        if arg in secrets:
            result.append(_redact_whole(arg))
            secret_next = False
            continue
        if secret_next:
            result.append(REDACTED)
            secret_next = False
            continue
        if arg in _SECRET_OPTIONS:
            secret_next = True
            result.append(arg)
        elif "://" in arg:
            result.append(_URL.sub(lambda m: redact_url(m.group(0)), arg))
        else:
            result.append(arg)
    return result


def redact_text(text: str) -> str:
    """``text`` (an error message, a traceback) with every URL in it redacted."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
