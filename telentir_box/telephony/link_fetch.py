"""Fetching a link for a user (knowledge-base links): a request the user aims from
inside the box's network, so every hop is vetted before it is made.

For each hop the fetcher resolves the host itself, refuses the link if any address is
loopback, private, link-local, shared, multicast, reserved or a cloud metadata address
(unless the operator allows it), then connects to the address it vetted, with the
original host in the Host header and the TLS server name, so a second DNS answer (a
rebind) cannot send the request elsewhere. Redirects are followed by hand, each one
vetted the same way; size, total time and the number of redirects are capped."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import PurePosixPath

import httpx

from telentir_box.config import KnowledgeConfig
from telentir_box.errors import AppError, PayloadTooLarge, ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Allowed only when named in `allowed_networks`, whatever allow_private_links says.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "text/html, text/markdown, text/plain, application/pdf, application/xhtml+xml;q=0.9, */*;q=0.1"


class LinkRefused(AppError):
    code, status, default_message = "LINK_REFUSED", 400, "The link points to an address the box may not fetch"


class LinkFailed(AppError):
    code, status, default_message = "LINK_FETCH_FAILED", 400, "The link could not be fetched"


@dataclass(frozen=True, slots=True)
class Fetched:
    name: str  # the last path segment of the URL that answered, for its extension
    content_type: str | None
    body: bytes


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (IP literals included)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise LinkFailed(f"the host {host} was not found") from None
    return [str(info[4][0]).partition("%")[0] for info in infos]


class LinkFetcher:
    def __init__(self, http: httpx.AsyncClient, config: KnowledgeConfig) -> None:
        self.http = http
        self.config = config
        self.allowed_networks = [ipaddress.ip_network(n, strict=False) for n in config.allowed_networks]

    async def fetch(self, url: str) -> Fetched:
        """The body of `url` after at most link_max_redirects vetted redirects, all
        within link_timeout_seconds and link_max_bytes."""
        try:
            async with asyncio.timeout(self.config.link_timeout_seconds):
                return await self._follow(url)
        except TimeoutError:
            raise LinkFailed(
                f"{url}: no complete answer within {self.config.link_timeout_seconds:g} seconds"
            ) from None
        except httpx.HTTPError as exc:
            raise LinkFailed(f"{url}: could not be fetched ({type(exc).__name__})") from None

    async def _follow(self, url: str) -> Fetched:
        current = parse_link(url)
        for _ in range(self.config.link_max_redirects + 1):
            address = await self.vet(current)
            location, fetched = await self._get(current, address)
            if fetched is not None:
                return fetched
            current = parse_link(str(current.join(location)))
        raise LinkFailed(f"{url}: more than {self.config.link_max_redirects} redirects")

    async def vet(self, url: httpx.URL) -> str:
        """The address to connect to for `url`; refused if any address of its host is."""
        host = _ascii_host(url)
        addresses = await resolve_host(host, url.port or _default_port(url))
        if not addresses:
            raise LinkFailed(f"the host {host} was not found")
        for address in addresses:
            if not self.address_allowed(ipaddress.ip_address(address)):
                raise LinkRefused(f"{host} resolves to {address}, which the box may not fetch")
        return addresses[0]

    def address_allowed(self, ip: IPAddress) -> bool:
        if any(ip in network for network in self.allowed_networks):
            return True
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return self.address_allowed(embedded)
        if ip in METADATA_ADDRESSES:
            return False
        public = ip.is_global and not ip.is_multicast and not ip.is_reserved
        return public or self.config.allow_private_links

    async def _get(self, url: httpx.URL, address: str) -> tuple[str, Fetched | None]:
        """One hop: (the redirect's Location, None) or ("", the answer)."""
        extensions = {"sni_hostname": _ascii_host(url)} if url.scheme == "https" else {}
        request = self.http.build_request(
            "GET",
            url.copy_with(host=address),
            headers={"host": _host_header(url), "accept": _ACCEPT, "accept-encoding": "identity"},
            extensions=extensions,
        )
        response = await self.http.send(request, stream=True, follow_redirects=False)
        try:
            if response.status_code in _REDIRECTS and "location" in response.headers:
                return response.headers["location"], None
            if not 200 <= response.status_code < 300:
                raise LinkFailed(f"{url} answered {response.status_code}")
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                # Decoding happens in chunks the size cap cannot bound (a gzip bomb).
                raise LinkFailed(f"{url} answered with a compressed body; the box fetches identity only")
            body = await self._read_capped(response, url)
            return "", Fetched(PurePosixPath(url.path).name, response.headers.get("content-type"), body)
        finally:
            await response.aclose()

    async def _read_capped(self, response: httpx.Response, url: httpx.URL) -> bytes:
        limit = self.config.link_max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"{url} is larger than {limit} bytes")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"{url} is larger than {limit} bytes")
        return bytes(body)


def parse_link(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ValidationFailed(f"not a valid link: {url[:200]}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationFailed(f"only http and https links can be fetched: {url[:200]}")
    if parsed.userinfo:
        raise ValidationFailed("links must not carry a user name or password")
    return parsed


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _ascii_host(url: httpx.URL) -> str:
    """The host as DNS and TLS know it (an international name in its IDNA form)."""
    return url.raw_host.decode("ascii")


def _host_header(url: httpx.URL) -> str:
    host = _ascii_host(url)
    host = f"[{host}]" if ":" in host else host
    return host if url.port is None else f"{host}:{url.port}"


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), which is
    where the packets really go."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
