"""Allowlist entries that cannot switch the guard off, and ports on every entry."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from integrations.models import AllowedNetwork, ClayDestination, Secret
from integrations.outbound import allowlist, http
from integrations.outbound.http import BlockedAddressError, OutboundPolicy, check_address

# -- what an entry may be ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0.0.0.0/0", "every IPv4 address"),
        ("::/0", "every IPv6 address"),
        ("169.254.0.0/16", "169.254.169.254"),
        ("169.254.169.254", "169.254.169.254"),
        ("128.0.0.0/1", "169.254.169.254"),
        ("fd00::/8", "fd00:ec2::254"),
        ("::ffff:0:0/96", "169.254.169.254"),  # IPv4-mapped spelling
        ("64:ff9b::/96", "169.254.169.254"),  # NAT64 spelling
        ("2002::/16", "169.254.169.254"),  # 6to4 spelling
        ("100.64.0.0/10", "100.100.100.200"),
    ],
)
def test_entries_that_switch_the_guard_off_need_confirming(value, words):
    entry = allowlist.parse_entry(value)
    assert entry.risks and words in " ".join(entry.risks)


@pytest.mark.parametrize("value", ["10.0.0.0/8", "192.168.1.10", "fd12:3456::/48", "127.0.0.1"])
def test_ordinary_private_ranges_need_no_confirmation(value):
    assert allowlist.parse_entry(value).risks == []


@pytest.mark.parametrize("value", ["*", "*.internal", "directus.*"])
def test_wildcards_are_refused(value):
    with pytest.raises(ValueError, match="Wildcards are not allowed"):
        allowlist.parse_entry(value)


@pytest.mark.parametrize("value", ["bad_host", "-x.internal", "10.0.0.999/8", "a..b"])
def test_invalid_values_are_refused(value):
    with pytest.raises(ValueError):
        allowlist.parse_entry(value)


def test_a_single_label_host_is_allowed_with_a_warning():
    entry = allowlist.parse_entry("Directus.")
    assert entry.value == "directus" and entry.risks == []
    assert "single-label" in entry.warnings[0]
    assert allowlist.parse_entry("localhost").warnings == []
    assert allowlist.parse_entry("directus.internal").warnings == []


@pytest.mark.parametrize(
    "url", ["http://directus:8055", "https://cms.example.com/x", "http://10.0.0.5:8055"]
)
def test_single_label_hosts_are_urls(url):
    allowlist.validate_url(url)


@pytest.mark.parametrize("url", ["ftp://directus", "http://dir ectus", "directus:8055"])
def test_what_is_not_a_url_is_still_refused(url):
    with pytest.raises(ValidationError):
        allowlist.validate_url(url)


# -- ports in the guard -----------------------------------------------------------------------


def test_an_entry_with_ports_opens_only_those_ports():
    policy = OutboundPolicy(allowlist=[("localhost", (80, 443)), ("10.0.0.0/8", (8055,))])
    check_address("127.0.0.1", policy, host="localhost", port=443)
    check_address("10.1.2.3", policy, port=8055)
    with pytest.raises(BlockedAddressError, match="port 80, 443 only, not 6379"):
        check_address("127.0.0.1", policy, host="localhost", port=6379)
    with pytest.raises(BlockedAddressError, match="port 8055 only, not 6379"):
        check_address("10.1.2.3", policy, port=6379)


def test_a_host_entry_never_opens_the_metadata_address_whatever_the_port():
    policy = OutboundPolicy(allowlist=[("metadata.internal", (80,))])
    with pytest.raises(BlockedAddressError, match="metadata"):
        check_address("169.254.169.254", policy, host="metadata.internal", port=80)


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.hits += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def stand_in_for_redis():
    """A local HTTP server on a random port, counting what reaches it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.hits = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_allowing_localhost_does_not_let_send_test_reach_another_port(
    settings, stand_in_for_redis, monkeypatch
):
    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    monkeypatch.setattr(
        http, "_getaddrinfo", lambda host, port, **kw: socket.getaddrinfo("127.0.0.1", port, **kw)
    )
    port = stand_in_for_redis.server_port
    destination = ClayDestination.objects.create(
        name="Not Clay", webhook_url=Secret.seal(f"http://localhost:{port}/")
    )
    AllowedNetwork.objects.create(value="localhost")
    result = destination.run_test()
    assert result["ok"] is False and stand_in_for_redis.hits == 0
    assert f"not {port}; an admin can allow port {port}" in result["summary"]
    AllowedNetwork.objects.create(value="localhost", port=port)
    assert destination.run_test()["ok"] is True and stand_in_for_redis.hits == 1
