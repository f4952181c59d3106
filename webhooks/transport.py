"""Sending one webhook: the SSRF guard and the HTTP POST.

Only http(s) URLs. The host is resolved once and every address it resolves to is checked; the request
then connects to that checked address (pinned: a DNS answer that changes between check and connect
cannot redirect us), with the original Host header and, for https, the original name for SNI and
certificate checks. Redirects are not followed. Refused always: link-local (169.254.0.0/16, fe80::/10,
which holds the cloud metadata service 169.254.169.254), other metadata addresses, multicast, reserved,
unspecified. Refused unless WEBHOOKS_ALLOW_PRIVATE_TARGETS: loopback, private and shared ranges."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254",
                                                        "169.254.170.2")}
EXCERPT_CHARS = 1000


class UnsafeTarget(ValueError):
    pass


@dataclass
class SendResult:
    status_code: int | None
    latency_ms: int
    response_excerpt: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def address_refusal(address: str, *, allow_private: bool) -> str | None:
    """Why this address may not be a webhook target, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        return "link-local and metadata addresses are not allowed"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "this address cannot receive webhooks"
    if not ip.is_global and not allow_private:
        return "private and loopback addresses are not allowed (WEBHOOKS_ALLOW_PRIVATE_TARGETS)"
    return None


def url_refusal(url: str, *, resolve: bool) -> str | None:
    """Why this URL may not be a webhook target, or None. Without `resolve` only literal addresses and
    `localhost` are checked (endpoint creation; the delivery checks the resolved addresses)."""
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in {"http", "https"}:
        return "only http and https URLs are allowed"
    host = parts.hostname
    if not host:
        return "the URL has no host"
    try:
        return address_refusal(host, allow_private=allow_private)
    except ValueError:
        pass  # a name, not a literal address
    if not resolve:
        if host.rstrip(".").lower() in {"localhost", "localhost.localdomain"} or host.endswith(".localhost"):
            return None if allow_private else "private and loopback addresses are not allowed (WEBHOOKS_ALLOW_PRIVATE_TARGETS)"
        return None
    try:
        resolve_target(host, port or (443 if parts.scheme == "https" else 80))
    except UnsafeTarget as exc:
        return str(exc)
    return None


def resolve_target(host: str, port: int) -> str:
    """One checked address for `host` (every resolved address must pass)."""
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        reason = address_refusal(address, allow_private=allow_private)
        if reason:
            raise UnsafeTarget(f"{host} resolves to {address}: {reason}")
    if not addresses:
        raise UnsafeTarget(f"cannot resolve {host}")
    return addresses[0]


class Pools:
    """Keep-alive connection pools for one sweep, keyed by the checked address (and, for https, the name)."""

    def __init__(self):
        self._pools: dict[tuple, urllib3.HTTPConnectionPool] = {}

    def get(self, *, scheme: str, address: str, port: int, hostname: str, timeout: float):
        key = (scheme, address, port, hostname, timeout)
        if key not in self._pools:
            self._pools[key] = _pool(scheme=scheme, address=address, port=port, hostname=hostname, timeout=timeout)
        return self._pools[key]

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def _pool(*, scheme: str, address: str, port: int, hostname: str, timeout: float):
    pool_timeout = urllib3.Timeout(connect=min(timeout, 5.0), read=timeout)
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(address, port, timeout=pool_timeout, retries=False, maxsize=1,
                                           server_hostname=hostname, assert_hostname=hostname,
                                           cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    return urllib3.HTTPConnectionPool(address, port, timeout=pool_timeout, retries=False, maxsize=1)


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float | None = None,
         pools: Pools | None = None) -> SendResult:
    timeout = settings.WEBHOOKS_TIMEOUT_SECONDS if timeout is None else timeout
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    reason = url_refusal(url, resolve=False)
    if reason:
        return SendResult(None, 0, error=f"refused: {reason}")
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = resolve_target(parts.hostname, port)
    except UnsafeTarget as exc:
        return SendResult(None, elapsed(), error=f"refused: {exc}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    request_headers = {**headers, "Host": parts.netloc.rsplit("@", 1)[-1]}
    own_pools = pools is None
    pools = Pools() if own_pools else pools
    pool = pools.get(scheme=parts.scheme, address=address, port=port, hostname=parts.hostname, timeout=timeout)
    try:
        response = pool.urlopen("POST", path, body=body, headers=request_headers, redirect=False,
                                preload_content=False)
        try:
            raw = response.read(EXCERPT_CHARS * 4, decode_content=True)
        finally:
            if response.length_remaining == 0:
                response.release_conn()  # fully read: the connection may serve the next delivery
            else:
                response.close()  # more than the excerpt (or unknown length): never reuse a dirty connection
        return SendResult(response.status, elapsed(), raw.decode("utf-8", "replace")[:EXCERPT_CHARS])
    except urllib3.exceptions.HTTPError as exc:
        timed_out = (isinstance(exc, urllib3.exceptions.TimeoutError)
                     and not isinstance(exc, urllib3.exceptions.NewConnectionError))
        kind = "timeout" if timed_out else "connection error"
        return SendResult(None, elapsed(), error=f"{kind}: {exc}"[:500])
    finally:
        if own_pools:
            pools.close()
