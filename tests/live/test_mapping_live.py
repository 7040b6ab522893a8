"""Mapping templates against the real Directus: test on one row writes leads; a Flow really POSTs.

Everything created here (leads, articles, flows) is deleted at the end of each test.
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from integrations.directus.client import DirectusClient
from integrations.models import ClayDestination, DirectusConnection, MappingTemplate, Secret
from integrations.outbound import http

pytestmark = pytest.mark.django_db

LEAD_BODY = json.dumps(
    {
        "email": "{{Email | trim | lower}}",
        "first_name": "{{First Name}}",
        "score": "{{Score | number}}",
        "enrichment": {"domain": "{{Company Domain}}"},
    },
    indent=2,
)
FLOW_BODY = json.dumps(
    {
        "event": "{{$trigger.event}}",
        "key": "{{$trigger.key}}",
        "keys": "{{$trigger.keys}}",
        "payload": "{{$trigger.payload}}",
        "title": "{{$trigger.payload.title}}",
        "views": "{{$trigger.payload.views}}",
        "headline": "New: {{$trigger.payload.title}}",
    },
    indent=2,
)


@pytest.fixture
def admin(live_directus):
    policy = http.OutboundPolicy(allow_private=True)
    with DirectusClient(
        live_directus.url, live_directus.admin_token, client=http.make_client(policy=policy)
    ) as client:
        yield client


@pytest.fixture
def connection(live_directus, admin_user):
    connection = DirectusConnection.objects.create(
        name="Harness",
        base_url=live_directus.url,
        token=Secret.seal(live_directus.admin_token),
        created_by=admin_user,
    )
    connection.refresh_schema()
    return connection


def send_one_row(client, connection, **fields):
    data = {
        "name": "live",
        "connection": str(connection.pk),
        "collection": "leads",
        "missing": "error",
        "confirm": "yes",
        **fields,
    }
    response = client.post(reverse("console:template-test"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def test_create_and_update_templates_really_write_leads(operator_client, connection, admin):
    email = f"kiln-live-{uuid.uuid4().hex[:10]}@example.com"
    row = {
        "Email": f"  {email.upper()} ",
        "First Name": 'Dwayne "The Rock" O\'Neil',
        "Company Domain": "acme.example",
        "Score": "87",
    }
    created_ids = []
    try:
        html = send_one_row(
            operator_client, connection, kind="create", body=LEAD_BODY, sample=json.dumps(row)
        )
        assert "Directus answered 200" in html, html[-3000:]
        found = admin.list_items("leads", {"filter[email][_eq]": email, "fields": "*"}).data
        assert len(found) == 1
        lead = found[0]
        created_ids.append(lead["id"])
        assert lead["first_name"] == 'Dwayne "The Rock" O\'Neil'
        assert lead["score"] == 87 and lead["enrichment"] == {"domain": "acme.example"}

        csv_row = f'Directus ID,Score\n{lead["id"]},"12"\n'
        html = send_one_row(
            operator_client,
            connection,
            kind="update",
            body='{"score": "{{Score | number}}"}',
            id_column="Directus ID",
            sample=csv_row,
        )
        assert "Directus answered 200" in html and f"/items/leads/{lead['id']}" in html
        assert admin.get_item("leads", lead["id"])["score"] == 12
    finally:
        if created_ids:
            admin.delete_items("leads", created_ids)


class Listener:
    """A loopback HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                bodies.append((dict(self.headers), raw))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"received": true}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for headers, raw in list(self.bodies):
                body = json.loads(raw)  # must be valid JSON
                if predicate(body):
                    return headers, body
            time.sleep(0.2)
        raise AssertionError(f"nothing matching arrived in {timeout} s: {self.bodies!r}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_an_installed_flow_posts_the_mapped_body_and_reinstalling_does_not_duplicate(
    admin_client, connection, admin
):
    # Putting a destination's secrets into a Flow in plaintext is for admins only.
    name = f"Live flow {uuid.uuid4().hex[:8]}"
    template = MappingTemplate.objects.create(
        name=name, kind="flow", connection=connection, collection="articles", body=FLOW_BODY
    )
    listener = Listener()
    install_url = reverse("console:template-install", args=[template.pk])
    # The listener stands in for Clay: the Flow sends to the destination's webhook URL.
    destination = ClayDestination.objects.create(
        name="Clay articles",
        webhook_url=Secret.seal(listener.url),
        auth_token=Secret.seal("clay-live-auth-token-123"),
    )
    choices = {
        "scope": ["items.create", "items.update"],
        "collections": "articles",
        "target": "destination",
        "destination": str(destination.pk),
        "confirm_plaintext": "1",
    }
    article_id = None
    try:
        response = admin_client.post(install_url, choices)
        html = response.content.decode()
        assert response.status_code == 200 and "Installed Flow" in html, html[-2000:]
        template.refresh_from_db()
        assert template.flow_id and template.flow_operation_id
        assert f"/admin/settings/flows/{template.flow_id}" in html

        title = 'Kiln says "hi" \\ to you 🔥'
        article = admin.create_items("articles", {"title": title, "status": "draft", "views": 3})
        article_id = article["id"]
        headers, body = listener.wait_for(
            lambda b: b.get("event") == "articles.items.create" and b.get("key") == article_id
        )
        assert headers["Content-Type"].startswith("application/json")
        assert headers["x-clay-webhook-auth"] == "clay-live-auth-token-123"
        assert body["title"] == title and body["views"] == 3 and isinstance(body["views"], int)
        assert body["headline"] == f"New: {title}"
        assert body["payload"] == {"title": title, "status": "draft", "views": 3}

        admin.update_item("articles", article_id, {"views": 5})
        _, body = listener.wait_for(
            lambda b: (
                b.get("event") == "articles.items.update" and b.get("keys") == [str(article_id)]
            )
        )
        assert body["payload"] == {"views": 5} and body["views"] == 5

        response = admin_client.post(install_url, choices)
        assert "Updated Flow" in response.content.decode()
        flows_named = admin.call(
            "GET", "/flows", params={"filter[name][_eq]": f"Kiln: {name}", "fields": "id"}
        )
        assert [f["id"] for f in flows_named] == [template.flow_id]
        operations = admin.call(
            "GET", "/operations", params={"filter[flow][_eq]": template.flow_id, "fields": "id"}
        )
        assert [o["id"] for o in operations] == [template.flow_operation_id]
    finally:
        template.refresh_from_db()
        if template.flow_id:
            admin.call("DELETE", f"/flows/{template.flow_id}")
        if article_id is not None:
            admin.delete_items("articles", [article_id])
        listener.close()
