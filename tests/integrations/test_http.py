"""The outbound HTTP path: address guard, errors, size cap, redirects and redaction."""

import datetime
import gzip
import io
import ipaddress
import logging
import pickle
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import httpx
import pytest

from integrations.outbound import http
from integrations.outbound.http import (
    BlockedAddressError,
    GuardedBackend,
    OutboundError,
    OutboundPolicy,
    check_address,
)

STRICT = OutboundPolicy(allow_private=False, allowlist=[])
LOOPBACK_ONLY = OutboundPolicy(allow_private=False, allowlist=["127.0.0.1/32"])
PRIVATE = OutboundPolicy(allow_private=True, allowlist=[])


# --- Tiny local servers ---------------------------------------------------------------------


@dataclass
class Seen:
    command: str
    path: str
    headers: object
    body: bytes


class Server:
    """A threaded HTTP/1.1 server on a loopback address; respond(handler) -> (status, headers, body)."""

    def __init__(self, respond, host="127.0.0.1", tls_context=None):
        self.requests = []
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length)
                outer.requests.append(Seen(self.command, self.path, self.headers, self.body))
                status, headers, body = respond(self)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if isinstance(body, list):  # a list of chunks is sent chunked, no length
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in body:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = handle_one

            def log_message(self, *args):
                pass

        class CountingServer(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address):
                outer.connections += 1
                return True

        self.httpd = CountingServer((host, 0), Handler)
        if tls_context:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        scheme = "https" if tls_context else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(respond=lambda h: (200, {}, b"ok"), **kwargs):
        servers.append(Server(respond, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def listener():
    """A bare listening socket, to prove that nothing ever connected to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def assert_no_connection(sock):
    with pytest.raises(BlockingIOError):
        sock.accept()


@dataclass
class FakeDNS:
    """Stands in for DNS: names in `answers` resolve to their addresses, others fail."""

    answers: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)

    def getaddrinfo(self, host, port, *args, **kwargs):
        self.calls.append(host)
        try:
            ips = self.answers.get(host) or [str(ipaddress.ip_address(host))]
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        family = {4: socket.AF_INET, 6: socket.AF_INET6}
        return [
            (family[ipaddress.ip_address(ip).version], socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in ips
        ]


@pytest.fixture
def fake_dns(monkeypatch):
    dns = FakeDNS()
    monkeypatch.setattr(http, "_getaddrinfo", dns.getaddrinfo)
    return dns


# --- Address classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "description"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private network"),
        ("172.16.0.1", "private network"),
        ("192.168.1.1", "private network"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("192.0.2.1", "special-purpose"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private network"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ("64:ff9b::a00:1", "private network"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("2002:7f00:1::1", "loopback"),
        ("2002:a00:1::", "private network"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("fd00:ec2::254", "cloud metadata"),
    ],
)
def test_it_blocks_non_public_addresses(ip, description):
    with pytest.raises(BlockedAddressError, match=description) as caught:
        check_address(ip, STRICT)
    assert caught.value.kind == "blocked"
    assert caught.value.transient is False


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_it_allows_public_addresses_including_wrapped_ones(ip):
    check_address(ip, STRICT)


@pytest.mark.parametrize(
    "ip", ["10.0.0.1", "127.0.0.1", "::ffff:10.0.0.1", "fd00::1", "100.64.0.1"]
)
def test_allow_private_allows_private_addresses(ip):
    check_address(ip, PRIVATE)


@pytest.mark.parametrize(
    "ip",
    [
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "fd00:ec2::254",
        "0.0.0.0",
        "224.0.0.1",
    ],
)
def test_allow_private_still_blocks_metadata_and_unroutable_addresses(ip):
    with pytest.raises(BlockedAddressError):
        check_address(ip, PRIVATE)


def test_metadata_message_says_it_stays_blocked():
    with pytest.raises(BlockedAddressError, match="stays blocked even when private"):
        check_address("169.254.169.254", PRIVATE, host="metadata.google.internal")


def test_metadata_is_allowed_when_its_address_is_in_the_allowlist():
    policy = OutboundPolicy(allow_private=True, allowlist=["169.254.169.254/32"])
    check_address("169.254.169.254", policy)
    check_address("::ffff:169.254.169.254", policy)


def test_allowlisted_cidr_allows_addresses_inside_it_only():
    policy = OutboundPolicy(allow_private=False, allowlist=["10.0.0.0/8", "fd00::/8"])
    check_address("10.1.2.3", policy)
    check_address("::ffff:10.1.2.3", policy)
    check_address("fd00::5", policy)
    with pytest.raises(BlockedAddressError):
        check_address("192.168.1.1", policy)


def test_allowlisted_host_skips_the_private_check_for_that_host_only():
    policy = OutboundPolicy(allow_private=False, allowlist=["Directus.Internal"])
    check_address("10.0.0.5", policy, host="directus.internal")
    check_address("10.0.0.5", policy, host="DIRECTUS.internal.")
    with pytest.raises(BlockedAddressError):
        check_address("10.0.0.5", policy, host="other.internal")
    with pytest.raises(BlockedAddressError, match="cloud metadata"):
        check_address("169.254.169.254", policy, host="directus.internal")


def test_blocked_message_names_host_address_and_kind():
    with pytest.raises(BlockedAddressError) as caught:
        check_address("127.0.0.1", STRICT, host="api.example.com")
    assert str(caught.value) == (
        "Blocked: api.example.com resolves to 127.0.0.1, a loopback address. Outbound requests "
        "may only reach public addresses unless an admin allows this host or network."
    )


@pytest.mark.django_db
def test_default_policy_reads_settings_and_the_allowed_network_table(settings):
    from integrations.models import AllowedNetwork

    settings.KILN_ALLOW_PRIVATE_NETWORKS = True
    AllowedNetwork.objects.create(value="10.0.0.0/8")
    AllowedNetwork.objects.create(value="directus.internal")
    AllowedNetwork.objects.create(value="directus", port=8055)
    policy = http.default_policy()
    assert policy.allow_private is True
    # Without a port an entry opens the web ports only.
    assert policy.allows_host("directus.internal", 443)
    assert not policy.allows_host("directus.internal", 6379)
    assert policy.allows_host("directus", 8055) and not policy.allows_host("directus", 443)
    check_address("10.9.9.9", OutboundPolicy(False, policy.allowlist), port=80)
    with pytest.raises(BlockedAddressError):
        check_address("10.9.9.9", OutboundPolicy(False, policy.allowlist), port=6379)


def test_default_policy_falls_back_to_settings_without_a_database(settings):
    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    policy = http.default_policy()  # pytest-django refuses DB access here
    assert policy.allow_private is False
    assert policy.allowlist == []


def test_without_an_allowlist_provider_the_policy_is_settings_only(settings, monkeypatch, caplog):
    # Before the app registry is ready (or in a process without it) nobody registered one.
    settings.KILN_ALLOW_PRIVATE_NETWORKS = True
    monkeypatch.setattr(http, "allowlist_provider", None)
    policy = http.default_policy()
    assert policy.allow_private is True and policy.allowlist == []
    assert "Outbound allowlist unavailable" in caplog.text


def test_an_allowlist_provider_that_fails_leaves_settings_only(settings, monkeypatch, caplog):
    def broken():
        raise RuntimeError("database is down")

    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    monkeypatch.setattr(http, "allowlist_provider", broken)
    policy = http.default_policy()
    assert policy.allow_private is False and policy.allowlist == []
    assert "Outbound allowlist unavailable (database is down)" in caplog.text


# --- The guard through the real backend -----------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "0x7f000001",
        "0x7f.1",
        "2130706433",
        "017700000001",
        "localhost",
        "LOCALHOST",
        "0.0.0.0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
    ],
)
def test_client_blocks_loopback_spellings_before_connecting(host, listener):
    port = listener.getsockname()[1]
    with http.make_client(policy=STRICT) as client:
        with pytest.raises(BlockedAddressError):
            http.send(client, "GET", f"http://{host}:{port}/")
    assert_no_connection(listener)


def test_octal_dotted_spelling_never_connects(listener):
    port = listener.getsockname()[1]
    with http.make_client(policy=STRICT) as client:
        with pytest.raises(OutboundError) as caught:  # httpx itself rejects it as a URL
            http.send(client, "GET", f"http://0177.0.0.1:{port}/")
    assert caught.value.kind in ("blocked", "invalid_url")
    with pytest.raises(BlockedAddressError):  # and the backend blocks it had it got through
        GuardedBackend(STRICT).connect_tcp("0177.0.0.1", port, timeout=1)
    assert_no_connection(listener)


@pytest.mark.parametrize("ip", ["100.64.0.1", "169.254.169.254", "64:ff9b::a00:1", "2002:a00:1::1"])
def test_backend_blocks_literal_addresses_without_connecting(ip):
    with pytest.raises(BlockedAddressError):
        GuardedBackend(STRICT).connect_tcp(ip, 80, timeout=1)


def test_a_name_with_any_blocked_address_is_blocked(fake_dns, listener):
    fake_dns.answers["mixed.example.com"] = ["93.184.216.34", "127.0.0.1"]
    with http.make_client(policy=STRICT) as client:
        with pytest.raises(BlockedAddressError, match="mixed.example.com resolves to 127.0.0.1"):
            http.send(client, "GET", f"http://mixed.example.com:{listener.getsockname()[1]}/")
    assert_no_connection(listener)


def test_it_connects_to_the_checked_address_without_resolving_again(fake_dns, serve):
    server = serve()
    fake_dns.answers["directus.example.com"] = ["127.0.0.1"]
    policy = OutboundPolicy(allow_private=False, allowlist=["directus.example.com"])
    with http.make_client(policy=policy) as client:
        for _ in range(5):
            response = http.send(client, "GET", f"http://directus.example.com:{server.port}/")
            assert response.status_code == 200
    assert fake_dns.calls == ["directus.example.com"]  # one lookup for one pooled connection
    assert server.connections == 1
    assert server.requests[0].headers["Host"] == f"directus.example.com:{server.port}"


def test_allowlisted_host_name_is_reachable_and_others_are_not(serve):
    server = serve()
    policy = OutboundPolicy(allow_private=False, allowlist=["localhost"])
    with http.make_client(policy=policy) as client:
        assert http.send(client, "GET", f"http://localhost:{server.port}/").status_code == 200
        with pytest.raises(BlockedAddressError):
            http.send(client, "GET", f"http://127.0.0.1:{server.port}/")


def test_allowlisted_cidr_is_reachable(serve):
    server = serve()
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        response = http.send(client, "GET", server.url + "/items")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert server.requests[0].headers["User-Agent"] == "Kiln/0.1 (+https://github.com/kiln)"


def test_it_returns_error_statuses_as_responses(serve):
    server = serve(lambda h: (503, {}, b"busy"))
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        response = http.send(client, "GET", server.url)
    assert response.status_code == 503
    assert response.text == "busy"


def test_tls_keeps_the_host_name_for_sni_and_reports_an_unverified_certificate(serve, tmp_path):
    seen_sni = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = self_signed_certificate(tmp_path)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    server = serve(host="127.0.0.1", tls_context=context)
    policy = OutboundPolicy(allow_private=False, allowlist=["localhost"])
    with http.make_client(policy=policy) as client:
        with pytest.raises(OutboundError) as caught:
            http.send(client, "GET", f"https://localhost:{server.port}/secret/path")
    assert caught.value.kind == "tls"
    assert caught.value.transient is False
    assert str(caught.value).startswith(
        "TLS handshake failed: the server's certificate for localhost could not be verified"
    )
    assert seen_sni == ["localhost"]


def self_signed_certificate(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


# --- Errors as sentences -------------------------------------------------------------------


def test_dns_failure_is_a_plain_sentence(fake_dns):
    with http.make_client(policy=STRICT) as client:
        with pytest.raises(OutboundError) as caught:
            http.send(client, "GET", "https://api.example.com/items?token=abc")
    assert str(caught.value) == "Could not resolve host name api.example.com (DNS lookup failed)."
    assert caught.value.kind == "dns"
    assert caught.value.transient is False


def test_refused_connection_names_host_and_port_but_not_the_path():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        with pytest.raises(OutboundError) as caught:
            http.send(client, "POST", f"http://127.0.0.1:{port}/hook/s3cret-path?key=zz")
    assert str(caught.value) == (
        f"Connection refused by 127.0.0.1:{port} — is the server running and the port right?"
    )
    assert caught.value.kind == "refused"
    assert caught.value.transient is True


def test_a_server_that_never_answers_times_out(listener):
    port = listener.getsockname()[1]
    with http.make_client(policy=LOOPBACK_ONLY, timeout=0.3) as client:
        with pytest.raises(OutboundError) as caught:
            http.send(client, "GET", f"http://127.0.0.1:{port}/")
    assert str(caught.value) == "Timed out after 0.3 s waiting for the server."
    assert caught.value.kind == "timeout"
    assert caught.value.transient is True


def test_timeout_defaults_to_the_setting(settings):
    settings.KILN_OUTBOUND_TIMEOUT = 7
    with http.make_client(policy=STRICT) as client:
        assert client.timeout == httpx.Timeout(7)


def test_a_dropped_connection_is_transient(serve):
    def hang_up(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError

    server = serve(hang_up)
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        with pytest.raises(OutboundError) as caught:
            http.send(client, "GET", server.url)
    assert caught.value.kind == "protocol"
    assert caught.value.transient is True


def test_invalid_and_non_http_urls_are_invalid_url():
    with http.make_client(policy=STRICT) as client:
        for url in (
            "ftp://example.com/file",
            "http://example.com:99999/",
            "http://[::1/",
            "http:///path",
            "/relative",
        ):
            with pytest.raises(OutboundError) as caught:
                http.send(client, "GET", url)
            assert caught.value.kind == "invalid_url"


def test_outbound_error_survives_pickling():
    error = pickle.loads(pickle.dumps(BlockedAddressError("Blocked: 10.0.0.1 is private.")))
    assert (type(error), error.kind, error.transient) == (BlockedAddressError, "blocked", False)


# --- Response size cap ---------------------------------------------------------------------


def test_a_response_over_the_cap_is_refused(serve, settings):
    settings.KILN_MAX_RESPONSE_BYTES = 1000
    server = serve(lambda h: (200, {}, b"x" * 2000))
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        with pytest.raises(OutboundError) as caught:
            http.send(client, "GET", server.url)
    assert caught.value.kind == "too_large"
    assert caught.value.transient is False
    assert "1000 bytes limit" in str(caught.value)


def test_a_streamed_response_is_cut_off_at_the_cap(serve, settings):
    settings.KILN_MAX_RESPONSE_BYTES = 10_000
    server = serve(lambda h: (200, {}, [b"y" * 4096] * 50))
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        with pytest.raises(OutboundError, match="larger than"):
            http.send(client, "GET", server.url)


def test_the_cap_counts_decompressed_bytes(serve, settings):
    settings.KILN_MAX_RESPONSE_BYTES = 10_000
    bomb = gzip.compress(b"a" * 500_000)
    server = serve(lambda h: (200, {"Content-Encoding": "gzip"}, bomb))
    assert len(bomb) < 10_000
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        with pytest.raises(OutboundError, match="larger than"):
            http.send(client, "GET", server.url)


def test_a_response_at_the_cap_is_returned_whole(serve, settings):
    settings.KILN_MAX_RESPONSE_BYTES = 3000
    server = serve(
        lambda h: (200, {"Content-Type": "application/json"}, [b'{"a": 1}', b" " * 2000])
    )
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        response = http.send(client, "GET", server.url)
    assert response.json() == {"a": 1}


# --- Redirects -----------------------------------------------------------------------------


def redirect_to(location, status=302):
    return lambda h: (
        (status, {"Location": location}, b"") if h.path == "/start" else (200, {}, b"done")
    )


def test_redirects_are_not_followed_by_default(serve):
    server = serve(redirect_to("/final"))
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        response = http.send(client, "GET", server.url + "/start")
    assert response.status_code == 302
    assert [r.path for r in server.requests] == ["/start"]


def test_redirects_are_followed_up_to_the_limit_on_the_same_host(serve):
    server = serve(redirect_to("/final"))
    headers = {"Authorization": "Bearer t0ken-123456"}
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        response = http.send(
            client, "GET", server.url + "/start", follow_redirects=1, headers=headers
        )
    assert response.status_code == 200
    assert [r.path for r in server.requests] == ["/start", "/final"]
    assert server.requests[1].headers["Authorization"] == "Bearer t0ken-123456"


def test_a_redirect_beyond_the_limit_is_returned(serve):
    server = serve(lambda h: (302, {"Location": "/again"}, b""))
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        response = http.send(client, "GET", server.url + "/start", follow_redirects=2)
    assert response.status_code == 302
    assert len(server.requests) == 3


def test_each_redirect_hop_passes_the_guard_again(serve, listener):
    target = f"http://127.0.0.2:{listener.getsockname()[1]}/internal"
    server = serve(redirect_to(target))
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        with pytest.raises(BlockedAddressError, match="127.0.0.2"):
            http.send(client, "GET", server.url + "/start", follow_redirects=3)
    assert_no_connection(listener)


def test_credentials_are_not_forwarded_to_another_host(serve):
    other = serve(host="127.0.0.2")
    server = serve(redirect_to(other.url + "/elsewhere", status=307))
    with http.make_client(
        policy=PRIVATE, headers={"Authorization": "Bearer client-wide"}
    ) as client:
        response = http.send(
            client,
            "POST",
            server.url + "/start",
            follow_redirects=1,
            json={"a": 1},
            headers={"x-clay-webhook-auth": "clay-s3cret", "X-Trace": "keep"},
        )
    assert response.status_code == 200
    assert server.requests[0].headers["x-clay-webhook-auth"] == "clay-s3cret"
    hop = other.requests[0]
    assert hop.command == "POST" and hop.body == b'{"a":1}'  # 307 keeps method and body
    assert "Authorization" not in hop.headers
    assert "x-clay-webhook-auth" not in hop.headers
    assert hop.headers["X-Trace"] == "keep"


def test_a_303_becomes_a_get_without_body(serve):
    server = serve(redirect_to("/final", status=303))
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        http.send(client, "POST", server.url + "/start", follow_redirects=1, json={"a": 1})
    assert (server.requests[1].command, server.requests[1].body) == ("GET", b"")


def test_a_redirect_to_a_non_http_url_is_refused(serve):
    server = serve(redirect_to("file:///etc/passwd"))
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        with pytest.raises(OutboundError, match="non-HTTP URL") as caught:
            http.send(client, "GET", server.url + "/start", follow_redirects=1)
    assert caught.value.kind == "invalid_url"


# --- Redaction -----------------------------------------------------------------------------


def make_secret():
    return f"s3cret-{uuid.uuid4().hex}"


def test_registered_secrets_are_redacted_in_error_text():
    secret = make_secret()
    http.register_secret(secret)
    assert str(OutboundError(f"failed for {secret}")) == "failed for [redacted]"


def test_url_encoded_forms_of_a_secret_are_redacted():
    secret = f"tok/en+{uuid.uuid4().hex} with?space"
    http.register_secret(secret)
    for form in (secret, quote(secret, safe=""), quote_plus(secret), quote(secret)):
        assert http.redact(f"https://x/?t={form}&b=2") == "https://x/?t=[redacted]&b=2"
    assert http.redact(str(httpx.QueryParams({"t": secret}))) == "t=[redacted]"


def test_short_values_are_not_registered():
    http.register_secret("abc")
    assert http.redact("abc abc") == "abc abc"


def test_a_secret_host_is_redacted_in_a_dns_error(fake_dns):
    secret_host = f"{uuid.uuid4().hex}.example.com"
    http.register_secret(secret_host)
    with http.make_client(policy=STRICT) as client:
        with pytest.raises(OutboundError) as caught:
            http.send(client, "GET", f"https://{secret_host}/")
    assert secret_host not in str(caught.value)


def test_a_registered_urls_secret_path_and_query_are_redacted_on_their_own():
    hook = f"pull-in-data-from-a-webhook-{uuid.uuid4()}"
    key = f"Ab{uuid.uuid4().hex[:10]}"
    http.register_secret(f"https://api.clay.com/v3/sources/webhook/{hook}?key={key}&format=json")
    # Clay's error body echoes the request path, without the host.
    body = f'{{"error": "No source at /v3/sources/webhook/{hook}", "key": "{key}"}}'
    redacted = http.redact(body)
    assert hook not in redacted and key not in redacted
    assert "No source at [redacted]" in redacted
    assert http.redact(f"segment {hook} alone") == "segment [redacted] alone"
    assert http.redact(f"key={key}&format=json") == "[redacted]"


def test_generic_parts_of_a_registered_url_do_not_redact_plain_text():
    http.register_secret(f"https://hooks.example.com/webhook/v3/{uuid.uuid4()}?format=json&a=1")
    text = "POST / to /webhook failed; see /v3 docs, format=json, webhook hooks.example.com"
    assert http.redact(text) == text


def test_the_password_of_a_registered_url_is_redacted_on_its_own():
    password = f"pw-{uuid.uuid4().hex[:8]}"
    http.register_secret(f"https://kiln:{password}@cms.example.com")
    assert http.redact(f"login failed with {password}") == "login failed with [redacted]"


def test_an_excerpt_is_redacted_before_it_is_cut():
    secret = make_secret()
    http.register_secret(secret)
    text = "x" * 490 + secret + " tail"
    excerpt = http.redacted_excerpt(text, 500)
    assert excerpt == "x" * 490 + "[redacted]"
    assert secret[:10] not in excerpt


def test_row_excerpts_are_redacted_before_they_are_cut():
    from integrations.clay import sender
    from integrations.runs import writeback

    hook = f"pull-in-data-from-a-webhook-{uuid.uuid4()}"
    http.register_secret(f"https://api.clay.com/v3/sources/webhook/{hook}")
    body = "e" * (sender.EXCERPT_CHARS - 40) + f"{hook} was not found"  # cut inside the hook
    for cut in (sender.excerpt(body), writeback.excerpt(body)):
        assert "pull-in-data" not in cut and "e[redacted]" in cut


def capture(logger_name):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(http.RedactingFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    return stream, handler, logger


def test_log_records_and_tracebacks_are_redacted():
    secret = make_secret()
    http.register_secret(secret)
    stream, handler, logger = capture("kiln.test")
    try:
        logger.warning("posting to %s", f"https://api.clay.com/hook/{secret}")
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert secret not in output
    assert "posting to https://api.clay.com/hook/[redacted]" in output
    assert "ValueError: bad [redacted]" in output


def test_httpx_info_lines_with_a_secret_url_are_redacted(serve):
    server = serve()
    secret = make_secret()
    http.register_secret(secret)
    stream, handler, logger = capture("httpx")
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        with http.make_client(policy=LOOPBACK_ONLY) as client:
            http.send(client, "POST", f"{server.url}/v3/sources/webhook/{secret}?x=1", json={})
    finally:
        logger.setLevel(previous)
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "HTTP Request: POST" in output
    assert "/v3/sources/webhook/[redacted]" in output
    assert secret not in output


# --- Client construction ---------------------------------------------------------------------


def test_environment_proxies_are_ignored(serve, monkeypatch):
    # A proxy would make the connection for us, outside the guard.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    server = serve()
    with http.make_client(policy=LOOPBACK_ONLY) as client:
        assert http.send(client, "GET", server.url).status_code == 200


def test_without_a_policy_the_default_blocks_private_addresses(listener, settings):
    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    with http.make_client() as client:
        with pytest.raises(BlockedAddressError):
            http.send(client, "GET", f"http://127.0.0.1:{listener.getsockname()[1]}/")
    assert_no_connection(listener)


def test_callers_can_set_headers_and_base_url(serve):
    server = serve()
    headers = {"user-agent": "Custom/1", "Authorization": "Bearer abc123456"}
    with http.make_client(policy=LOOPBACK_ONLY, base_url=server.url, headers=headers) as client:
        http.send(client, "GET", "/items", params={"limit": 5})
    seen = server.requests[0]
    assert seen.path == "/items?limit=5"
    assert seen.headers.get_all("User-Agent") == ["Custom/1"]
    assert seen.headers["Authorization"] == "Bearer abc123456"


def test_auth_argument_is_not_sent_to_another_host(serve):
    other = serve(host="127.0.0.2")
    server = serve(redirect_to(other.url + "/elsewhere"))
    with http.make_client(policy=PRIVATE) as client:
        http.send(client, "GET", server.url + "/start", follow_redirects=1, auth=("u", "pw-123456"))
    assert "Authorization" in server.requests[0].headers
    assert "Authorization" not in other.requests[0].headers


# --- WebhookPost: the sync engine's path ------------------------------------------------------


def test_a_webhook_post_sends_the_body_with_the_given_headers_on_one_connection(serve):
    server = serve(lambda h: (201, {}, b'{"status":"success"}'))
    post = http.WebhookPost(
        server.url + "/hook", {"x-clay-webhook-auth": "tok"}, policy=LOOPBACK_ONLY
    )
    first, second = post.send('{"id": 1}'), post.send(b'{"id": 2}')
    post.close()
    assert (first.status_code, second.text) == (201, '{"status":"success"}')
    assert [r.body for r in server.requests] == [b'{"id": 1}', b'{"id": 2}']
    seen = server.requests[0]
    assert (seen.command, seen.path) == ("POST", "/hook")
    assert seen.headers["x-clay-webhook-auth"] == "tok"
    assert seen.headers["User-Agent"] == http.USER_AGENT
    assert seen.headers["Content-Length"] == "9"
    assert server.connections == 1  # one kept-alive connection for both


def test_a_webhook_post_passes_the_address_guard(listener):
    port = listener.getsockname()[1]
    post = http.WebhookPost(f"http://127.0.0.1:{port}/hook", policy=STRICT)
    with pytest.raises(BlockedAddressError):
        post.send("{}")
    assert_no_connection(listener)


def test_a_webhook_post_caps_the_response_and_does_not_follow_redirects(serve, settings):
    settings.KILN_MAX_RESPONSE_BYTES = 1000
    big = serve(lambda h: (200, {}, b"x" * 2000))
    moved = serve(redirect_to("/elsewhere"))
    with pytest.raises(OutboundError) as caught:
        http.WebhookPost(big.url, policy=LOOPBACK_ONLY).send("{}")
    assert caught.value.kind == "too_large"
    assert (
        http.WebhookPost(moved.url + "/start", policy=LOOPBACK_ONLY).send("{}").status_code == 302
    )
    assert len(moved.requests) == 1


def test_a_webhook_post_to_a_refused_port_is_a_transient_outbound_error(listener):
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(OutboundError) as caught:
        http.WebhookPost(f"http://127.0.0.1:{port}/hook", policy=LOOPBACK_ONLY).send("{}")
    assert caught.value.kind == "refused"
    assert caught.value.transient is True


def test_a_webhook_post_resolves_once_and_keeps_the_host_header(fake_dns, serve):
    server = serve()
    fake_dns.answers["clay.example.com"] = ["127.0.0.1"]
    policy = OutboundPolicy(allow_private=False, allowlist=["clay.example.com"])
    post = http.WebhookPost(f"http://clay.example.com:{server.port}/hook?x=1", policy=policy)
    assert [post.send("{}").status_code for _ in range(3)] == [200, 200, 200]
    post.close()
    assert fake_dns.calls == ["clay.example.com"]
    assert server.requests[0].headers["Host"] == f"clay.example.com:{server.port}"
    assert server.requests[0].path == "/hook?x=1"


def test_a_webhook_post_reconnects_when_the_server_closed_the_idle_connection(serve):
    server = serve(lambda h: (200, {"Connection": "close"} if h.body == b"1" else {}, b"ok"))
    post = http.WebhookPost(server.url + "/hook", policy=LOOPBACK_ONLY)
    assert [post.send(b).status_code for b in ("1", "2", "3")] == [200, 200, 200]
    post.close()
    assert server.connections == 2  # a new one after the server said close, then kept


def test_a_webhook_post_over_tls_checks_the_certificate_for_the_host(serve, tmp_path):
    seen_sni = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = self_signed_certificate(tmp_path)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    server = serve(host="127.0.0.1", tls_context=context)
    policy = OutboundPolicy(allow_private=False, allowlist=["localhost"])
    post = http.WebhookPost(f"https://localhost:{server.port}/secret/path", policy=policy)
    with pytest.raises(OutboundError) as caught:
        post.send("{}")
    assert (caught.value.kind, caught.value.transient) == ("tls", False)
    assert "certificate for localhost could not be verified" in str(caught.value)
    assert "secret" not in str(caught.value)
    assert seen_sni == ["localhost"]


def test_a_webhook_post_reports_a_dropped_connection_and_a_slow_server_as_transient(serve):
    def hang_up(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError

    def slow(handler):
        time.sleep(0.5)
        return 200, {}, b"late"

    with pytest.raises(OutboundError) as caught:
        http.WebhookPost(serve(hang_up).url, policy=LOOPBACK_ONLY).send("{}")
    assert (caught.value.kind, caught.value.transient) == ("protocol", True)
    post = http.WebhookPost(serve(slow).url, policy=LOOPBACK_ONLY, timeout=0.1)
    with pytest.raises(OutboundError) as caught:
        post.send("{}")
    assert (caught.value.kind, caught.value.transient) == ("timeout", True)
    assert str(caught.value) == "Timed out after 0.1 s waiting for the server."


def test_a_webhook_post_reads_a_chunked_answer_and_lowercases_its_headers(serve):
    server = serve(lambda h: (429, {"Retry-After": "3"}, [b'{"err', b'or":1}']))
    response = http.WebhookPost(server.url, policy=LOOPBACK_ONLY).send("{}")
    assert (response.status_code, response.text) == (429, '{"error":1}')
    assert response.headers["retry-after"] == "3"


def test_a_webhook_post_refuses_bad_urls_and_header_values_without_quoting_them():
    for url in ("ftp://x.example/hook", "http:///nohost", "http://x.example:0/"):
        with pytest.raises(OutboundError) as caught:
            http.WebhookPost(url, policy=STRICT)
        assert caught.value.kind == "invalid_url"
    post = http.WebhookPost(
        "http://127.0.0.1:9/hook", {"x-clay-webhook-auth": "tok\r\nX: s3cret"}, policy=PRIVATE
    )
    with pytest.raises(OutboundError) as caught:
        post.send("{}")
    assert (caught.value.kind, caught.value.transient) == ("protocol", False)
    assert "s3cret" not in str(caught.value)
