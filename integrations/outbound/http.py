"""The one outbound HTTP path: timeouts, size cap, redaction and a connect-time SSRF guard."""

import functools
import http.client
import ipaddress
import logging
import re
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import httpcore
import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

USER_AGENT = "Kiln/0.1 (+https://github.com/kiln)"
# Headers that carry a credential and must never follow a redirect to another host.
SENSITIVE_HEADERS = ("authorization", "x-clay-webhook-auth", "proxy-authorization", "cookie")
BLOCKED_HINT = (
    "Outbound requests may only reach public addresses unless an admin allows this host or network."
)

# --- Redaction --------------------------------------------------------------------------

_secrets_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
# (the secrets it was built for, the pattern): rebuilt by redact() when _secrets changed, so
# registering many secrets (a sender process gets them all at start) compiles once, not per value.
_compiled: tuple[frozenset, re.Pattern | None] = (frozenset(), None)


def _looks_random(part: str, min_length: int) -> bool:
    """A token-like part: long enough and mixing letters with digits or letter cases.

    `pull-in-data-from-a-webhook-0c5f7a1e` and `XyZ1aB2cD3eF` are; `webhook`, `sources`,
    `pull-in-data-from-a-webhook` and `2024` are not (redacting them would mangle plain text).
    """
    if len(part) < min_length:
        return False
    classes = [any(c.islower() for c in part), any(c.isupper() for c in part)]
    classes.append(any(c.isdigit() for c in part))
    return sum(classes) >= 2


def secret_parts(value: str) -> set[str]:
    """The parts of a URL secret that give it away on their own.

    `https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-0c5f7a1e?k=Ab12cd34`
    gives the path `/v3/sources/webhook/pull-in-data-from-a-webhook-0c5f7a1e`, the segment
    `pull-in-data-from-a-webhook-0c5f7a1e` and the query value `Ab12cd34`: an error body that
    echoes the request path shows no part of the URL. Generic parts (`/`, `/webhook`, `v3`)
    are not secret; a password in the URL always is.
    """
    try:
        parts = urlsplit(value.strip())
        password = parts.password
    except ValueError:
        return set()
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return set()
    found = set()
    segments = [s for s in parts.path.split("/") if _looks_random(s, 12)]
    if segments:
        found.update(segments)
        found.add(parts.path.rstrip("/"))
    if parts.query:
        values = [v for _, v in parse_qsl(parts.query) if _looks_random(v, 8)]
        found.update(values)
        if values:
            found.add(parts.query)
    if password and len(password) >= 6:
        found.add(password)
    return found


def url_without_password(url: str, mask: str | None = "••••") -> str:
    """url with the password of its user info masked (mask=None drops the user info).

    `https://kiln:hunter22@cms.example.com/x` -> `https://kiln:••••@cms.example.com/x`.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if mask is None:
        netloc = hostport
    elif password is None:
        netloc = parts.netloc
    else:
        netloc = f"{userinfo.split(':', 1)[0]}:{mask}@{hostport}"
    return parts._replace(netloc=netloc).geturl()


def register_secret(value: str) -> None:
    """Make `redact` hide this value, raw and URL-encoded, and its secret parts from now on."""
    global _secrets
    if not value or len(value) < 6 or value in _secrets:
        return
    with _secrets_lock:
        _secrets = _secrets | {value} | secret_parts(value)


def _pattern() -> re.Pattern | None:
    """The pattern for the registered secrets, built once per change of the set."""
    global _compiled
    secrets = _secrets
    built_for, pattern = _compiled
    if built_for is secrets:
        return pattern
    with _secrets_lock:
        secrets = _secrets
        # A secret often travels inside a URL, where it appears percent-encoded.
        forms = {f for s in secrets for f in (s, quote(s, safe=""), quote(s), quote_plus(s))}
        alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
        pattern = re.compile(alternatives) if alternatives else None
        # Readers use the pair without the lock, so swap in a finished one.
        _compiled = (secrets, pattern)
    return pattern


def registered_secrets() -> list[str]:
    """Every value redact() hides (for a child process that must hide them too)."""
    return sorted(_secrets)


def redact(text: str) -> str:
    """Replace every registered secret in text with [redacted]."""
    if not text or not _secrets:
        return text
    pattern = _pattern()
    if pattern is None:
        return text
    return pattern.sub("[redacted]", text)


def redacted_excerpt(text: str, limit: int) -> str:
    """The first `limit` characters of text, redacted before it is cut (a secret cut in two
    would no longer match and half of it would show)."""
    # Registered secrets are at most a few thousand characters (forms cap them at 2,000).
    return redact(text[: limit + 8192])[:limit]


class RedactingFilter(logging.Filter):
    """Logging filter that redacts the message, its arguments and any traceback text."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as usual
            return True
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set, so the raw traceback is never printed.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# --- Errors -----------------------------------------------------------------------------

TRANSIENT_KINDS = frozenset({"timeout", "refused", "connection", "protocol"})


class OutboundError(Exception):
    """A request that did not get a response; str() is a redacted sentence for humans."""

    kind = "connection"
    after_send = False  # WebhookPost: the request had been written whole (maybe delivered)

    def __init__(self, message: str, kind: str | None = None, transient: bool | None = None):
        super().__init__(redact(message))
        self.kind = kind or type(self).kind
        self.transient = self.kind in TRANSIENT_KINDS if transient is None else transient

    def __reduce__(self):
        # Keep kind/transient when pickled (Celery results, multiprocessing).
        return (type(self), (str(self), self.kind, self.transient))


class BlockedAddressError(OutboundError):
    """The host resolves to an address outbound requests may not reach."""

    kind = "blocked"


# --- Address policy ---------------------------------------------------------------------

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Cloud instance-metadata endpoints (AWS/GCP/Azure/Oracle, AWS ECS and IPv6, Alibaba, Azure
# WireServer): reaching them from a server hands out its cloud credentials.
METADATA_ADDRESSES = frozenset(
    map(
        ipaddress.ip_address,
        ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"),
    )
)
# First match wins: (networks, description, whether allow_private or an allowed host name
# lifts the block). Anything else Python does not call global is blocked at the end.
_SPECIAL_NETWORKS = [
    (ipaddress.ip_network(n), description, liftable)
    for networks, description, liftable in (
        # 0.0.0.0 reaches this very machine on Linux.
        (("0.0.0.0/8", "::/128"), "an unspecified ('this network') address", False),
        (("127.0.0.0/8", "::1/128"), "a loopback address", True),
        (("169.254.0.0/16", "fe80::/10"), "a link-local address", True),
        (("224.0.0.0/4", "ff00::/8"), "a multicast address", False),
        (("100.64.0.0/10",), "a carrier-grade NAT (shared) address", True),
        (("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "a private network address", True),
        (("fc00::/7",), "a unique-local (private) address", True),
        (("fec0::/10",), "a site-local address", True),  # Python calls it global
        # Teredo hides its IPv4 address; local-use NAT64 has no fixed place for it.
        (("2001::/32",), "a Teredo tunnel address", False),
        (("64:ff9b:1::/48",), "a local-use NAT64 address", False),
        (("240.0.0.0/4",), "a reserved address", False),
    )
    for n in networks
]


# What an admin's allowlist entry without a port opens: a host entry is not every service on
# that host (allowing `localhost` must not let a webhook POST reach Redis on 6379).
WEB_PORTS = (80, 443)


def _ports_open(ports_of_entries, port) -> bool:
    return any(ports is None or (port is not None and port in ports) for ports in ports_of_entries)


@dataclass(frozen=True)
class OutboundPolicy:
    """Which non-public destinations are allowed: private networks, hosts and CIDRs.

    An allowlist item is "host-or-CIDR" (every port) or ("host-or-CIDR", ports), a tuple of
    the ports it opens; default_policy() builds the second kind from the admin's allowlist.
    """

    allow_private: bool = False
    allowlist: list = field(default_factory=list)
    hosts: tuple = field(init=False, repr=False)  # ((host, ports or None), ...)
    networks: tuple = field(init=False, repr=False)  # ((network, ports or None), ...)

    def __post_init__(self):
        hosts, networks = [], []
        for item in self.allowlist:
            entry, ports = (item, None) if isinstance(item, str) else item
            entry = entry.strip().lower().rstrip(".")
            ports = None if ports is None else tuple(ports)
            if not entry:
                continue
            try:
                networks.append((ipaddress.ip_network(entry, strict=False), ports))
            except ValueError:
                if "/" in entry:
                    logger.warning("Ignoring invalid network %r in the outbound allowlist", entry)
                else:
                    hosts.append((entry, ports))
        object.__setattr__(self, "hosts", tuple(hosts))
        object.__setattr__(self, "networks", tuple(networks))

    def _network_ports(self, addr) -> list:
        return [p for n, p in self.networks if addr.version == n.version and addr in n]

    def _host_ports(self, host: str | None) -> list:
        name = (host or "").lower().rstrip(".")
        return [p for h, p in self.hosts if name and h == name]

    def allows_network(self, addr, port: int | None = None) -> bool:
        """addr is in an allowed network open on port (None: only entries open on every port)."""
        return _ports_open(self._network_ports(addr), port)

    def allows_host(self, host: str | None, port: int | None = None) -> bool:
        return _ports_open(self._host_ports(host), port)

    def ports_listed(self, addrs, host: str | None) -> list[int]:
        """The ports entries for these addresses or host open ([] when none lists a port)."""
        found = [*self._host_ports(host)] + [p for a in addrs for p in self._network_ports(a)]
        return sorted({port for ports in found if ports is not None for port in ports})


# The admin-managed allowlist: a callable giving (host-or-CIDR, port or None) pairs, set by
# integrations.apps once the models are ready (this module imports nothing else of the project:
# it is the outbound layer everything else goes through). Unset, the allowlist is empty.
allowlist_provider = None


def default_policy() -> OutboundPolicy:
    """The policy from settings plus the admin-managed allowlist (allowlist_provider)."""
    allow_private = bool(getattr(settings, "KILN_ALLOW_PRIVATE_NETWORKS", False))
    try:
        if allowlist_provider is None:
            raise LookupError("no allowlist provider is registered")
        allowlist = [
            (value, (port,) if port else WEB_PORTS) for value, port in allowlist_provider()
        ]
    except Exception as exc:  # no database (yet): the guard must still work, just stricter
        logger.warning("Outbound allowlist unavailable (%s); using settings only", exc)
        allowlist = []
    return OutboundPolicy(allow_private=allow_private, allowlist=allowlist)


def _reached(addr):
    """The IPv4 address a v6 address actually reaches (mapped, NAT64, 6to4), else addr."""
    if addr.version == 6:
        if addr.ipv4_mapped:
            return addr.ipv4_mapped
        if addr in _NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if addr.sixtofour:
            return addr.sixtofour
    return addr


def _classify(addr) -> tuple[str, bool] | None:
    """(description, liftable) for an address outbound requests may not reach by default."""
    if addr in METADATA_ADDRESSES:
        return "the cloud metadata address", False
    for network, description, liftable in _SPECIAL_NETWORKS:
        if addr.version == network.version and addr in network:
            return description, liftable
    if addr.is_reserved:
        return "a reserved address", False
    if not addr.is_global:
        return "a special-purpose (non-public) address", True
    return None


def check_address(
    ip: str, policy: OutboundPolicy, host: str | None = None, port: int | None = None
) -> None:
    """Raise BlockedAddressError unless policy lets a connection to ip:port (resolved from host)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    reached = _reached(addr)
    if policy.allows_network(addr, port) or policy.allows_network(reached, port):
        return
    # Only the unwrapped address counts: every ::ffff:a.b.c.d is "reserved" to Python.
    problem = _classify(reached)
    if problem is None:
        return
    description, liftable = problem
    if liftable and (policy.allow_private or policy.allows_host(host, port)):
        return
    shown = str(addr) if reached == addr else f"{addr} (which reaches {reached})"
    subject = f"{host} resolves to {shown}," if host and host != ip else f"{shown} is"
    hint = BLOCKED_HINT
    listed = policy.ports_listed({addr, reached}, host if liftable else None)
    if listed and port is not None:
        shown_ports = ", ".join(map(str, listed))
        hint = (
            f"The allowlist opens it on port {shown_ports} only, not {port}; an admin can "
            f"allow port {port} too."
        )
    elif reached in METADATA_ADDRESSES:
        hint = (
            "It stays blocked even when private networks are allowed, unless an admin adds "
            "this address to the allowlist."
        )
    raise BlockedAddressError(f"Blocked: {subject} {description}. {hint}")


# --- Connect-time guard -------------------------------------------------------------------

_getaddrinfo = socket.getaddrinfo  # module attribute so tests can stand in for DNS


def _resolve(host: str, port: int, policy: OutboundPolicy) -> list[str]:
    """Resolve host once and return its addresses, all of them checked against policy."""
    try:
        infos = _getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundError(
            f"Could not resolve host name {host} (DNS lookup failed).", kind="dns"
        ) from None
    addresses = list(
        dict.fromkeys(sa[0] for fam, *_, sa in infos if fam in (socket.AF_INET, socket.AF_INET6))
    )
    if not addresses:
        raise OutboundError(f"Could not resolve host name {host} (no addresses).", kind="dns")
    for ip in addresses:  # every one: a mixed public/private answer is an attack, not luck
        try:
            check_address(ip, policy, host, port)
        except BlockedAddressError as exc:
            logger.warning("Outbound connection refused by the guard: %s", exc)
            raise
    return addresses


def _attempts(addresses: list[str], timeout: float | None):
    """Each checked address with the time left for it; all share one connect timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for ip in addresses:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        yield ip, remaining


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's SyncBackend, but each TCP connect goes only to checked addresses."""

    def __init__(self, policy: OutboundPolicy):
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        error = None
        # Connect to a checked IP itself: resolving the name again could get another answer.
        for ip, left in _attempts(_resolve(host, port, self.policy), timeout):
            try:
                return self._inner.connect_tcp(ip, port, left, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectTimeout("timed out")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise BlockedAddressError("Blocked: Unix sockets are not an outbound destination.")

    def sleep(self, seconds):
        self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle is slow and the context is safe to share between connections.
    return httpx.create_ssl_context()


def _pool_options(max_connections: int) -> dict:
    return dict(
        ssl_context=_ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
        http1=True,
        http2=False,
    )


class GuardedTransport(httpx.HTTPTransport):
    """HTTPTransport whose connection pool uses GuardedBackend."""

    def __init__(self, policy: OutboundPolicy, max_connections: int = 10):
        # HTTPTransport.__init__ builds a pool without a way to pass network_backend, so build
        # the pool it would build (its no-proxy branch) here; `_pool` is all it keeps.
        self._pool = httpcore.ConnectionPool(
            network_backend=GuardedBackend(policy), **_pool_options(max_connections)
        )


def _client_options(timeout, base_url, headers) -> dict:
    if timeout is None:
        timeout = getattr(settings, "KILN_OUTBOUND_TIMEOUT", 15.0)
    all_headers = httpx.Headers({"User-Agent": USER_AGENT})
    all_headers.update(headers or {})  # case-insensitive, so a caller's user-agent wins
    return dict(
        timeout=httpx.Timeout(timeout),
        base_url=base_url,
        headers=all_headers,
        follow_redirects=False,
        # Nothing from the environment: no .netrc credentials, and no proxies (httpx already
        # skips env proxies when given a transport; a proxy would connect for us, unguarded).
        trust_env=False,
    )


def make_client(*, policy=None, timeout=None, max_connections=10, base_url="", headers=None):
    """A pooled httpx.Client whose every connection passes the address guard."""
    policy = default_policy() if policy is None else policy
    transport = GuardedTransport(policy, max_connections)
    return httpx.Client(transport=transport, **_client_options(timeout, base_url, headers))


# --- Sending ------------------------------------------------------------------------------


def _host_port(host: str, port) -> str:
    return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"


def _where(url: httpx.URL) -> str:
    """host:port only; the path and query of a Clay webhook URL are the secret."""
    return _host_port(url.host, url.port or {"https": 443, "http": 80}.get(url.scheme, ""))


def _too_large(where: str, limit: int) -> OutboundError:
    size = f"{limit / (1 << 20):g} MB" if limit >= 1 << 20 else f"{limit} bytes"
    return OutboundError(f"The response from {where} is larger than the {size} limit.", "too_large")


# The sentences both outbound paths (httpx's and WebhookPost's) give for the same failure.


def _timed_out(seconds, doing: str) -> OutboundError:
    return OutboundError(f"Timed out after {seconds:g} s {doing}.", "timeout")


def _tls_error(exc: ssl.SSLError, host: str, where: str) -> OutboundError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return OutboundError(
            f"TLS handshake failed: the server's certificate for {host} "
            f"could not be verified ({exc.verify_message or exc.reason}).",
            "tls",
        )
    return OutboundError(f"TLS handshake with {where} failed ({exc.reason}).", "tls")


def _refused(where: str) -> OutboundError:
    return OutboundError(
        f"Connection refused by {where} — is the server running and the port right?", "refused"
    )


def _bad_answer(where: str) -> OutboundError:
    return OutboundError(
        f"{where} closed the connection or sent an invalid HTTP response.", "protocol"
    )


def _invalid_request(where: str) -> OutboundError:
    # No detail: the message would quote the offending header value, which may be a token.
    return OutboundError(f"The request to {where} is not valid HTTP.", "protocol", False)


def _reset(where: str, exc: Exception) -> OutboundError:
    return OutboundError(f"The connection to {where} failed or was reset ({type(exc).__name__}).")


def _causes(exc: BaseException):
    """exc and every exception it was raised from, innermost last."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _translate(exc: Exception, request: httpx.Request | None) -> OutboundError:
    """Turn an httpx error into an OutboundError with a sentence a person can act on."""
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol) or request is None:
        return OutboundError(f"The URL is not valid: {exc}", "invalid_url")
    where = _where(request.url)
    if isinstance(exc, httpx.TimeoutException):
        phase, doing = {
            httpx.ConnectTimeout: ("connect", f"connecting to {where}"),
            httpx.PoolTimeout: ("pool", f"waiting for a free connection to {where}"),
        }.get(type(exc), ("read", "waiting for the server"))
        return _timed_out(request.extensions.get("timeout", {}).get(phase) or 0, doing)
    if isinstance(exc, httpx.ConnectError):  # TCP connect or TLS handshake
        causes = list(_causes(exc))
        for cause in causes:
            if isinstance(cause, ssl.SSLError):
                return _tls_error(cause, request.url.host, where)
            if isinstance(cause, ConnectionRefusedError):
                return _refused(where)
        reason = next((c.strerror for c in causes if isinstance(c, OSError) and c.strerror), None)
        return OutboundError(f"Could not connect to {where} ({reason or 'network error'}).")
    if isinstance(exc, httpx.RemoteProtocolError):
        return _bad_answer(where)
    if isinstance(exc, httpx.DecodingError):
        return OutboundError(
            f"{where} sent a response body that could not be decoded.", "protocol", False
        )
    if isinstance(exc, httpx.LocalProtocolError):
        return _invalid_request(where)
    return _reset(where, exc)


# httpx.InvalidURL and StreamError are not HTTPErrors.
_HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)


def max_response_bytes() -> int:
    return getattr(settings, "KILN_MAX_RESPONSE_BYTES", 5 * 1024 * 1024)


_limit = max_response_bytes


class _Body:
    """Collects a response body, raising too_large as soon as it passes the limit."""

    def __init__(self, request: httpx.Request, response: httpx.Response, limit: int):
        self.request, self.limit, self.size, self.chunks = request, limit, 0, []
        declared = response.headers.get("content-length", "")
        if request.method != "HEAD" and declared.isdigit() and int(declared) > limit:
            raise _too_large(_where(request.url), limit)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _too_large(_where(self.request.url), self.limit)
        self.chunks.append(chunk)


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """True if credentials for a may go to b (same host and port, or an upgrade to https)."""
    if a.host != b.host:
        return False
    if (a.scheme, a.port) == (b.scheme, b.port):
        return True
    return a.scheme == "http" and b.scheme == "https" and a.port is None and b.port is None


def _redirect(client, first: httpx.Request, request: httpx.Request, response, kwargs):
    """The request for the next hop; raises OutboundError for a redirect we will not follow."""
    try:
        url = request.url.join(response.headers["location"])
    except httpx.InvalidURL as exc:
        raise OutboundError(f"The server sent an invalid redirect: {exc}", "invalid_url") from None
    if url.scheme not in ("http", "https"):
        raise OutboundError(
            f"Refused to follow a redirect from {_where(request.url)} to a non-HTTP URL.",
            "invalid_url",
        )
    method, status = request.method, response.status_code
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
    hop = {k: v for k, v in kwargs.items() if k != "params"}  # the Location has its query
    if method != request.method:
        for body in ("content", "data", "json", "files"):
            hop.pop(body, None)
    nxt = client.build_request(method, url, **hop)
    if not _same_origin(first.url, url):
        # Also drops credentials the client itself adds (make_client(headers=...)).
        for name in SENSITIVE_HEADERS:
            nxt.headers.pop(name, None)
    return nxt


def _done(client, first, request, response, body, kwargs, hops_left, auth):
    """Attach the capped body; return the next hop's (request, auth), or None to stop."""
    # Where httpx's own read() keeps the body: we read it ourselves to cap it.
    response._content = b"".join(body.chunks)
    if hops_left <= 0 or not response.is_redirect:
        return None
    nxt = _redirect(client, first, request, response, kwargs)
    return nxt, auth if _same_origin(first.url, nxt.url) else None


def _start(client, method, url, kwargs):
    auth = kwargs.pop("auth", httpx.USE_CLIENT_DEFAULT)
    try:
        request = client.build_request(method, url, **kwargs)
    except _HTTPX_ERRORS as exc:
        raise _translate(exc, None) from None
    url = request.url
    if url.scheme not in ("http", "https"):
        raise OutboundError("Only http:// and https:// URLs are allowed.", "invalid_url")
    if not url.host or not 0 < (url.port or 80) < 65536:
        raise OutboundError(
            "The URL is not valid: it needs a host name and a valid port.", "invalid_url"
        )
    return request, auth


def send(client: httpx.Client, method: str, url: str, *, follow_redirects: int = 0, **kwargs):
    """Send a request, read at most KILN_MAX_RESPONSE_BYTES and return it whatever its status."""
    request, auth = _start(client, method, url, kwargs)
    first, limit = request, _limit()
    for hops_left in range(follow_redirects, -1, -1):
        try:
            response = client.send(request, auth=auth, stream=True, follow_redirects=False)
            try:
                body = _Body(request, response, limit)
                for chunk in response.iter_bytes():  # decoded, so a gzip bomb is caught too
                    body.add(chunk)
            finally:
                response.close()
        except _HTTPX_ERRORS as exc:
            raise _translate(exc, request) from None
        following = _done(client, first, request, response, body, kwargs, hops_left, auth)
        if following is None:
            return response
        request, auth = following


class WebhookResponse:
    """What a WebhookPost got back: the status, the capped body and the headers (lower-cased)."""

    __slots__ = ("status_code", "content", "headers")

    def __init__(self, status_code: int, content: bytes, headers: dict):
        self.status_code, self.content, self.headers = status_code, content, headers

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class _GuardedConnection(http.client.HTTPConnection):
    """http.client's connection, connecting only to addresses the guard checked."""

    tls = False

    def __init__(self, host, port, timeout, policy):
        super().__init__(host, port, timeout=timeout)
        self.policy = policy

    def connect(self):
        error = None
        # Connect to a checked IP itself: resolving the name again could get another answer.
        for ip, left in _attempts(_resolve(self.host, self.port, self.policy), self.timeout):
            try:
                self.sock = socket.create_connection((ip, self.port), left)
                break
            except OSError as exc:
                error = exc
        else:
            raise error or TimeoutError("timed out")
        self.sock.settimeout(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            self.sock = _ssl_context().wrap_socket(self.sock, server_hostname=self.host)

    def stale(self) -> bool:
        """An idle kept-alive socket that is readable was closed (or spoken to) by the server."""
        if self.sock is None:
            return False
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True


class _GuardedTLSConnection(_GuardedConnection):
    default_port = 443
    tls = True


class WebhookPost:
    """POSTs to one URL, many times, from several threads: the sync engine's hot path.

    The standard library's http.client over a socket the address guard opened, one kept-alive
    connection per sending thread. httpx/httpcore cost about three times the CPU per request
    (540-750 µs against 150-200 µs, measured with 8 threads on this 2-core box): for the
    engine, which spends most of its time here, that was the difference between 1.4x and
    3x a one-at-a-time loop (bench/README.md). Same guard, TLS verification, timeouts, size
    cap and OutboundErrors as send(); no redirects followed, no cookies, no proxies.
    """

    def __init__(self, url: str, headers: dict | None = None, *, policy=None, timeout=None):
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise OutboundError(f"The URL is not valid: {exc}", "invalid_url") from None
        if parts.scheme not in ("http", "https"):
            raise OutboundError("Only http:// and https:// URLs are allowed.", "invalid_url")
        if not parts.hostname or port == 0:
            raise OutboundError(
                "The URL is not valid: it needs a host name and a valid port.", "invalid_url"
            )
        self.url = url
        self.host, self.tls = parts.hostname, parts.scheme == "https"
        self.port = port or (443 if self.tls else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.where = _host_port(self.host, self.port)
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.policy = default_policy() if policy is None else policy
        if timeout is None:
            timeout = getattr(settings, "KILN_OUTBOUND_TIMEOUT", 15.0)
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set = set()

    def spec(self) -> dict:
        """What rebuilds this WebhookPost in another process: WebhookPost(**spec)."""
        return {
            "url": self.url,
            "headers": dict(self.headers),
            "policy": self.policy,
            "timeout": self.timeout,
        }

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def send(self, content: bytes | str, headers: dict | None = None) -> WebhookResponse:
        """POST content; the response (any status) with its body read, or OutboundError.

        An OutboundError raised once the whole request had been written has `after_send`
        set: the server may have acted on it (maybe delivered) though no answer came back.
        """
        if isinstance(content, str):
            content = content.encode()
        connection = self._connection()
        written = False
        try:
            connection.request(
                "POST",
                self.target,
                content,
                {**self.headers, **headers} if headers else self.headers,
            )
            written = True
            response = connection.getresponse()
            return self._read(connection, response)
        except BaseException as exc:
            connected = connection.sock is not None
            self._drop(connection)
            if isinstance(exc, OutboundError):
                exc.after_send = written
                raise
            if isinstance(exc, Exception):
                error = self._translate(exc, connected=connected)
                error.after_send = written
                raise error from None
            raise

    def _connection(self) -> _GuardedConnection:
        connection = getattr(self._local, "connection", None)
        if connection is not None and connection.stale():
            self._drop(connection)
            connection = None
        if connection is None:
            kind = _GuardedTLSConnection if self.tls else _GuardedConnection
            connection = kind(self.host, self.port, self.timeout, self.policy)
            self._local.connection = connection
            with self._lock:
                self._open.add(connection)
        return connection

    def _drop(self, connection) -> None:
        connection.close()
        with self._lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None

    def _read(self, connection, response) -> WebhookResponse:
        limit = _limit()
        declared = response.getheader("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(self.where, limit)
        if response.length is not None:  # read(n) would accept a cut-off body; read() does not
            body = response.read()
        else:  # chunked or until close: never hold more than the limit
            body = response.read(limit + 1)
            if len(body) > limit:
                raise _too_large(self.where, limit)
        if not response.isclosed():  # more than the limit said it would be: do not reuse
            self._drop(connection)
        headers = {k.lower(): v for k, v in response.getheaders()}
        return WebhookResponse(response.status, body, headers)

    def _translate(self, exc: Exception, connected: bool) -> OutboundError:
        where = self.where
        if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
            doing = "waiting for the server" if connected else f"connecting to {where}"
            return _timed_out(self.timeout, doing)
        if isinstance(exc, ssl.SSLError):
            return _tls_error(exc, self.host, where)
        if isinstance(exc, ConnectionRefusedError):
            return _refused(where)
        if isinstance(exc, http.client.HTTPException):  # a closed socket or a bad answer
            return _bad_answer(where)
        if isinstance(exc, ValueError):  # http.client refuses a header with a line break
            return _invalid_request(where)
        if not connected and isinstance(exc, OSError) and exc.strerror:
            return OutboundError(f"Could not connect to {where} ({exc.strerror}).")
        return _reset(where, exc)
