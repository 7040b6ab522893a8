"""Canary: credentials holding unique markers go through every page and action that touches
them, failures included, and the markers never show up in responses, logs, the database or
the broker."""

import io
import json
import logging
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.urls import reverse

from integrations.models import ClayDestination, DirectusConnection

TOKEN = "CANARYTOKEN-5b1e0c2d7a"
BAD_TOKEN = "CANARYBADTOKEN-9c8d7e6f"
AUTH = "CANARYAUTH-44aa55bb66"
HOOK_PATH = "/v3/sources/webhook/CANARYHOOK-0f1e2d3c"
MARKERS = ["CANARYTOKEN", "CANARYBADTOKEN", "CANARYAUTH", "CANARYHOOK"]


class FakeDirectusAndClay(BaseHTTPRequestHandler):
    """Answers like Directus for the right token, 401 for any other; accepts Clay POSTs."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/server/ping"):
            return self._send(200, "pong", "text/html")
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(
                401,
                {
                    "errors": [
                        {
                            "message": "Invalid user credentials.",
                            "extensions": {"code": "INVALID_CREDENTIALS"},
                        }
                    ]
                },
            )
        if self.path.startswith("/users/me"):
            return self._send(200, {"data": {"id": "u1", "email": "ops@example.com"}})
        if self.path.startswith("/collections"):
            return self._send(200, {"data": [{"collection": "articles", "meta": {}, "schema": {}}]})
        if self.path.startswith("/items/articles"):
            return self._send(200, {"data": [{"id": 1}]})
        return self._send(
            403,
            {
                "errors": [
                    {
                        "message": "You don't have permission to access this.",
                        "extensions": {"code": "FORBIDDEN"},
                    }
                ]
            },
        )

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == HOOK_PATH and self.headers.get("x-clay-webhook-auth") == AUTH:
            return self._send(200, {"status": "ok"})
        return self._send(401, {"error": "bad auth"})


@pytest.fixture
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDirectusAndClay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def captured_logs():
    """Route every log record through the handlers configured in settings, into a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers = [
        h for h in root.handlers if any(type(f).__name__ == "RedactingFilter" for f in h.filters)
    ]
    assert handlers, "settings.LOGGING must attach the RedactingFilter to the root handler"
    old_streams = [h.setStream(buffer) for h in handlers]
    old_levels = {
        name: logging.getLogger(name).level for name in ["", "httpx", "httpcore", "django"]
    }
    for name in old_levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield buffer
    for handler, stream in zip(handlers, old_streams, strict=True):
        handler.setStream(stream)
    for name, level in old_levels.items():
        logging.getLogger(name).setLevel(level)


def database_dump() -> str:
    """Every row of every table as text, and the raw database file where there is one."""
    parts = []
    with db_connection.cursor() as cursor:
        for table in db_connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {db_connection.ops.quote_name(table)}")
            parts.append(repr(cursor.fetchall()))
    if db_connection.vendor == "sqlite":
        target = Path(settings.VAR_DIR) / "canary-dump.sqlite3"
        target.unlink(missing_ok=True)
        with db_connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(target)])
        parts.append(target.read_bytes().decode("latin-1"))
    elif shutil.which("pg_dump"):
        db = db_connection.settings_dict
        result = subprocess.run(
            [
                "pg_dump",
                "-h",
                db["HOST"] or "127.0.0.1",
                "-p",
                str(db["PORT"] or 5432),
                "-U",
                db["USER"] or "postgres",
                db["NAME"],
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""},
        )
        parts.append(result.stdout)
    return "\n".join(parts)


def broker_dump() -> str:
    """Everything the broker holds: Redis keys and values, or the embedded broker's files."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(url)
        chunks = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            value = {
                "string": lambda k: client.get(k),
                "list": lambda k: client.lrange(k, 0, -1),
                "hash": lambda k: client.hgetall(k),
                "set": lambda k: client.smembers(k),
                "zset": lambda k: client.zrange(k, 0, -1),
            }.get(kind, lambda k: b"")(key)
            chunks.append(f"{key!r}={value!r}")
        return "\n".join(chunks)
    folder = Path(settings.VAR_DIR) / "broker"
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


@pytest.mark.django_db(transaction=True)
def test_secret_markers_never_leak(admin_client, fake_server, captured_logs):
    bodies = []

    def visit(response):
        bodies.append(response.content.decode("utf-8", "replace"))
        bodies.append(repr(dict(response.headers)))
        return response

    # An admin stores a connection and a destination, each secret with a marker.
    visit(
        admin_client.post(
            reverse("console:connection-add"),
            {
                "name": "Canary CMS",
                "base_url": fake_server,
                "environment": "prod",
                "token": TOKEN,
                "probe_collection": "articles",
            },
            follow=True,
        )
    )
    conn = DirectusConnection.objects.get(name="Canary CMS")
    visit(
        admin_client.post(
            reverse("console:destination-add"),
            {"name": "Canary Clay", "webhook_url": fake_server + HOOK_PATH, "auth_token": AUTH},
            follow=True,
        )
    )
    dest = ClayDestination.objects.get(name="Canary Clay")

    # Every page that shows them, as HTML and as HTMX partials.
    for url in [
        reverse("console:home"),
        reverse("console:connections"),
        reverse("console:destinations"),
        reverse("console:connection-detail", args=[conn.pk]),
        reverse("console:connection-edit", args=[conn.pk]),
        reverse("console:destination-detail", args=[dest.pk]),
        reverse("console:destination-edit", args=[dest.pk]),
        reverse("console:audit"),
    ]:
        visit(admin_client.get(url))

    # Test connection: success, then a wrong token (401), then an unreachable server.
    visit(
        admin_client.post(
            reverse("console:connection-test", args=[conn.pk]), HTTP_HX_REQUEST="true"
        )
    )
    assert DirectusConnection.objects.get(pk=conn.pk).last_test_ok is True
    visit(
        admin_client.post(
            reverse("console:connection-edit", args=[conn.pk]),
            {
                "name": "Canary CMS",
                "base_url": fake_server,
                "environment": "prod",
                "token": BAD_TOKEN,
                "probe_collection": "articles",
            },
            follow=True,
        )
    )
    visit(admin_client.post(reverse("console:connection-test", args=[conn.pk]), follow=True))
    assert DirectusConnection.objects.get(pk=conn.pk).last_test_ok is False
    visit(
        admin_client.post(
            reverse("console:connection-edit", args=[conn.pk]),
            {
                "name": "Canary CMS",
                "base_url": "http://127.0.0.1:9",
                "environment": "prod",
                "token": "",
                "probe_collection": "articles",
            },
            follow=True,
        )
    )
    visit(admin_client.post(reverse("console:connection-test", args=[conn.pk]), follow=True))

    # A form error while secrets are posted must not echo them back.
    visit(
        admin_client.post(
            reverse("console:destination-edit", args=[dest.pk]),
            {"name": "", "webhook_url": "not a url CANARYHOOK", "auth_token": AUTH},
        )
    )

    # Clay destination test: accepted, then refused after the auth token is rotated to a bad one.
    visit(
        admin_client.post(
            reverse("console:destination-test", args=[dest.pk]), {"confirm": "yes"}, follow=True
        )
    )
    assert ClayDestination.objects.get(pk=dest.pk).last_test_ok is True
    visit(
        admin_client.post(
            reverse("console:destination-edit", args=[dest.pk]),
            {"name": "Canary Clay", "webhook_url": "", "auth_token": "CANARYAUTH-wrong-000"},
            follow=True,
        )
    )
    visit(
        admin_client.post(
            reverse("console:destination-test", args=[dest.pk]), {"confirm": "yes"}, follow=True
        )
    )
    assert ClayDestination.objects.get(pk=dest.pk).last_test_ok is False
    visit(
        admin_client.post(
            reverse("console:destination-edit", args=[dest.pk]),
            {
                "name": "Canary Clay",
                "webhook_url": "http://127.0.0.1:9" + HOOK_PATH,
                "auth_token": "",
            },
            follow=True,
        )
    )
    visit(
        admin_client.post(
            reverse("console:destination-test", args=[dest.pk]), {"confirm": "yes"}, follow=True
        )
    )

    everything = {
        "responses": "\n".join(bodies),
        "logs": captured_logs.getvalue(),
        "database": database_dump(),
        "broker": broker_dump(),
    }
    for where, text in everything.items():
        for marker in MARKERS:
            assert marker not in text, f"{marker} leaked into {where}"
    # The canary is alive: httpx did log the requests (URLs included), so silence is not the reason.
    assert "HTTP Request: POST" in everything["logs"] and "[redacted]" in everything["logs"]


@pytest.mark.django_db(transaction=True)
def test_secret_markers_never_leak_through_the_api(admin_client, fake_server, captured_logs):
    """The JSON API too: credentials, their tests and counts, and the API token itself."""
    from console.models import ApiToken
    from integrations.models import SavedQuery, Secret, Sync

    bodies = []

    def visit(response):
        bodies.append(
            b"".join(response.streaming_content).decode("utf-8", "replace")
            if response.streaming
            else response.content.decode("utf-8", "replace")
        )
        bodies.append(repr(dict(response.headers)))
        return response

    conn = DirectusConnection.objects.create(
        name="Canary CMS",
        base_url=fake_server,
        token=Secret.seal(TOKEN),
        probe_collection="articles",
    )
    dest = ClayDestination.objects.create(
        name="Canary Clay",
        webhook_url=Secret.seal(fake_server + HOOK_PATH),
        auth_token=Secret.seal(AUTH),
    )
    query = SavedQuery.objects.create(connection=conn, name="all", collection="articles")
    sync = Sync.objects.create(name="Canary sync", saved_query=query, destination=dest)

    # The token is made in the console; that one page shows it, once, by design.
    page = admin_client.post(reverse("console:api-tokens"), {"name": "canary script"})
    assert ApiToken.objects.filter(name="canary script").exists()
    plaintext = page.content.decode().split('id="new-token">')[1].split("<")[0]
    assert plaintext.startswith("kiln_")
    api = type(admin_client)(HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    for name, args in [
        ("api:connections", []),
        ("api:connection", [conn.pk]),
        ("api:destinations", []),
        ("api:destination", [dest.pk]),
        ("api:queries", []),
        ("api:query", [query.pk]),
        ("api:syncs", []),
        ("api:sync", [sync.pk]),
        ("api:runs", []),
        ("api:me", []),
        ("api:schema", []),
    ]:
        visit(api.get(reverse(name, args=args)))
    # Test and count: with the right token, a wrong one (401), and an unreachable server.
    visit(api.post(reverse("api:connection-test", args=[conn.pk])))
    visit(api.post(reverse("api:query-count", args=[query.pk])))
    conn.token.set_value(BAD_TOKEN)
    conn.token.save()
    visit(api.post(reverse("api:connection-test", args=[conn.pk])))
    visit(api.post(reverse("api:query-count", args=[query.pk])))
    DirectusConnection.objects.filter(pk=conn.pk).update(base_url="http://127.0.0.1:9")
    visit(api.post(reverse("api:connection-test", args=[conn.pk])))
    visit(api.post(reverse("api:query-count", args=[query.pk])))
    visit(api.post(reverse("api:sync-start", args=[sync.pk]), {}, content_type="application/json"))
    # The console pages that list tokens, and the audit log that names them.
    for url in [
        reverse("console:api-tokens"),
        reverse("console:audit"),
        reverse("console:api-docs"),
    ]:
        visit(admin_client.get(url))

    everything = {
        "responses": "\n".join(bodies),
        "logs": captured_logs.getvalue(),
        "database": database_dump(),
        "broker": broker_dump(),
    }
    for where, text in everything.items():
        for marker in [*MARKERS, plaintext, plaintext[len("kiln_") :]]:
            assert marker not in text, f"{marker[:14]}… leaked into {where}"
    assert "HTTP Request:" in everything["logs"]
