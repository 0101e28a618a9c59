"""Key functions: client_ip and api_key on RequestInfo."""

from __future__ import annotations

import pytest

from ffrtmp_infra.ratelimit import ConfigurationError, RequestInfo, api_key, client_ip


def info(client: str | None = "198.51.100.1", **headers: str) -> RequestInfo:
    return RequestInfo("GET", "/", {k.replace("_", "-"): v for k, v in headers.items()}, client)


def test_socket_peer_is_the_key_by_default() -> None:
    assert client_ip()(info(x_forwarded_for="1.2.3.4")) == "198.51.100.1"


def test_ipv6_clients_are_grouped_by_slash_64() -> None:
    key = client_ip()
    assert key(info("2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::/64"
    assert key(info("2001:db8:1:2:bbbb::9")) == "2001:db8:1:2::/64"
    assert client_ip(ipv6_prefix=128)(info("2001:db8::1")) == "2001:db8::1"


def test_ipv4_mapped_ipv6_peer_keys_as_ipv4() -> None:
    assert client_ip()(info("::ffff:192.0.2.9")) == "192.0.2.9"


def test_untrusted_peer_cannot_spoof_through_headers() -> None:
    key = client_ip(trusted_proxies=["10.0.0.0/8"])
    assert key(info("198.51.100.1", x_forwarded_for="1.2.3.4")) == "198.51.100.1"


def test_chain_of_trusted_proxies_is_skipped_from_the_right() -> None:
    key = client_ip(trusted_proxies=["10.0.0.0/8"])
    found = key(info("10.0.0.1", x_forwarded_for="6.6.6.6, 203.0.113.9, 10.0.0.2"))
    assert found == "203.0.113.9"


def test_garbage_in_the_chain_stops_at_the_last_vouched_hop() -> None:
    key = client_ip(trusted_proxies=["10.0.0.0/8"])
    assert key(info("10.0.0.1", x_forwarded_for="evil, 10.0.0.2")) == "10.0.0.2"
    assert key(info("10.0.0.1", x_forwarded_for="nonsense")) == "10.0.0.1"


def test_forwarded_header_rfc7239_with_ipv6_and_port() -> None:
    key = client_ip(trusted_proxies=["10.0.0.1"], header="forwarded", ipv6_prefix=128)
    value = 'for=192.0.2.60;proto=http, for="[2001:db8::7]:4711"'
    assert key(info("10.0.0.1", forwarded=value)) == "2001:db8::7"


def test_single_address_headers_such_as_x_real_ip() -> None:
    key = client_ip(trusted_proxies=["10.0.0.1"], header="X-Real-IP")
    assert key(info("10.0.0.1", x_real_ip="203.0.113.4")) == "203.0.113.4"


def test_missing_client_keys_as_unknown() -> None:
    assert client_ip()(info(None)) == "unknown"


def test_invalid_trusted_proxy_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="trusted_proxies entries must be"):
        client_ip(trusted_proxies=["10.0.0.0/33"])
    with pytest.raises(ConfigurationError, match=r"ipv6_prefix must be an int in 1\.\.128"):
        client_ip(ipv6_prefix=0)


def test_api_key_is_hashed_and_stable() -> None:
    key = api_key()
    first = key(info(x_api_key="secret-value"))
    assert first == key(info(authorization="Bearer secret-value"))
    assert isinstance(first, str)
    assert first.startswith("key:")
    assert "secret" not in first
    assert len(first) == 4 + 32


def test_api_key_secret_changes_the_hash() -> None:
    plain = api_key()(info(x_api_key="k"))
    keyed = api_key(secret=b"pepper")(info(x_api_key="k"))
    assert plain != keyed


def test_api_key_without_fallback_exempts_anonymous_requests() -> None:
    assert api_key(fallback=lambda i: None)(info()) is None


def test_request_info_joins_repeated_headers_and_decodes_any_bytes() -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "client": ("1.2.3.4", 1),
        "headers": [(b"x-a", b"1"), (b"X-A", b"2"), (b"x-b", b"\xff")],
    }
    request = RequestInfo.from_scope(scope)
    assert request.headers["x-a"] == "1, 2"
    assert request.header("x-b") == "\xff"
    assert request.client == "1.2.3.4"
