"""Redaction properties: generated secrets never survive, ordinary arguments are untouched."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from ffrtmp_infra.tracing import redact_argv, redact_text, redact_url

SECRET = st.text(
    alphabet=string.ascii_letters + string.digits + "-_", min_size=8, max_size=40
).filter(lambda s: s not in "REDACTED")
HOST = st.sampled_from(["live.example", "10.0.0.7", "a.rtmp.youtube.com", "ingest:1935"])
SCHEME = st.sampled_from(["rtmp", "rtmps", "rtmpe", "rtmpt"])


@given(scheme=SCHEME, host=HOST, app=st.sampled_from(["app", "live2"]), key=SECRET)
def test_rtmp_stream_keys_never_survive(scheme: str, host: str, app: str, key: str) -> None:
    url = f"{scheme}://{host}/{app}/{key}"
    redacted = redact_url(url)
    assert key not in redacted
    assert redacted == f"{scheme}://{host}/{app}/REDACTED"


@given(user=SECRET, password=SECRET, host=HOST)
def test_credentials_never_survive(user: str, password: str, host: str) -> None:
    for url in (f"https://{user}:{password}@{host}/x.m3u8", f"srt://{user}:{password}@{host}"):
        redacted = redact_url(url)
        assert password not in redacted
        assert user not in redacted


@given(token=SECRET)
def test_secrets_in_error_messages_are_redacted(token: str) -> None:
    message = f"Command '['ffmpeg', '-i', 'rtmp://h/app/{token}']' returned non-zero exit status 1."
    assert token not in redact_text(message)


@given(args=st.lists(st.text(alphabet=string.ascii_letters + string.digits + "-:=./", max_size=12)))
def test_arguments_without_urls_or_secret_options_are_unchanged(args: list[str]) -> None:
    secret_options = {"-headers", "-cookies", "-password", "-passphrase", "-key", "-rtmp_playpath",
                      "-rtmp_conn", "-decryption_key", "-encryption_key", "-srtp_in_params",
                      "-srtp_out_params", "-auth"}  # fmt: skip
    args = [a for a in args if a not in secret_options and "://" not in a]
    assert redact_argv(args) == args
