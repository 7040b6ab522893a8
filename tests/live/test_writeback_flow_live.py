"""Write-back and relay through Kiln's own pages and endpoint, against the real Directus.

- upsert `leads` by email from a CSV upload (upload → map → confirm → a slice → the run page)
  and from the inbound endpoint, each batch holding one bad row that the split isolates;
- the read-only token's failures explained on the run;
- a relay installed with "Install relay in Directus" forwards created and updated `articles`
  to a local sink through Kiln, even while the sink answers 429;
- on a collection of its own (kiln_own_writes_*, with a Directus user for the write-back, both
  deleted at the end), the events Kiln's own write-back causes are skipped as OWN_WRITE while an
  edit made with another token is relayed.

Every lead created here has an email ending in WB_DOMAIN; every article a slug starting with
"kiln-relay-live-"; both are deleted at the end, with the Flow and its operation.
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations import tasks
from integrations.clay import sender
from integrations.directus.client import DirectusClient
from integrations.models import (
    ClayDestination,
    CsvUpload,
    DirectusConnection,
    InboundRoute,
    InboundRow,
    RowResult,
    RowTrace,
    Secret,
    Sync,
    SyncRun,
)
from integrations.outbound import http
from integrations.runs import relay
from integrations.runs.writeback import Writer, WriteRow

WB_DOMAIN = "kiln-wb-flow-live.example"
BAD_COMPANY = 999999  # no such company: Directus answers INVALID_FOREIGN_KEY without naming the row


@pytest.fixture
def admin(live_directus):
    policy = http.OutboundPolicy(allow_private=True)
    with DirectusClient(
        live_directus.url, live_directus.admin_token, client=http.make_client(policy=policy)
    ) as c:
        yield c


@pytest.fixture
def leads_restored(admin):
    """Two seed leads to update (put back afterwards); every lead created here is deleted."""
    seed = admin.list_items(
        "leads", {"sort": ["id"], "limit": 2, "fields": ["id", "email", "score", "company"]}
    ).data
    yield seed
    created = admin.list_items(
        "leads", {"filter": {"email": {"_ends_with": WB_DOMAIN}}, "fields": ["id"], "limit": -1}
    )
    if created.data:
        admin.delete_items("leads", [item["id"] for item in created.data])
    admin.update_items_batch("leads", seed)


@pytest.fixture
def fast(settings, monkeypatch):
    settings.KILN_RATE_LIMIT_REDIS_URL = ""
    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.05)
    queued = []
    monkeypatch.setattr(tasks.run_inbound_slice, "delay_on_commit", queued.append)
    monkeypatch.setattr(tasks.run_inbound_slice, "delay", queued.append)
    monkeypatch.setattr(tasks.process_route, "apply_async", lambda *a, **k: None)
    return queued


def leads_sync(live_directus, token=None, name="Leads back (live)"):
    connection = DirectusConnection.objects.create(
        name=f"{name} Directus",
        base_url=live_directus.url,
        token=Secret.seal(token or live_directus.admin_token),
    )
    return Sync.objects.create(
        name=name,
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
        rate_limit=0,
    )


def by_key(run):
    """Row results keyed by what the row was: 'line 3' → its result, or the email."""
    return {r.row_key: r for r in RowResult.objects.filter(run=run)}


@pytest.mark.django_db
def test_a_csv_upload_upserts_leads_by_email_and_the_split_isolates_the_bad_row(
    operator_client, live_directus, admin, leads_restored, fast
):
    sync = leads_sync(live_directus)
    known = leads_restored[0]
    tag = uuid.uuid4().hex[:8]
    csv = (
        "\ufeffEmail,First Name,Score,Company\r\n"
        f"{known['email'].upper()},,901,\r\n"
        f'new-{tag}-1@{WB_DOMAIN},"Doe, Jane",5,\r\n'
        f"new-{tag}-2@{WB_DOMAIN},Sam,,\r\n"
        f"bad-{tag}@{WB_DOMAIN},Broken,1,{BAD_COMPANY}\r\n"
        f"new-{tag}-3@{WB_DOMAIN},Extra,1,,EXTRA\r\n"
    )
    response = operator_client.post(
        reverse("console:writeback-upload"),
        {
            "sync": sync.pk,
            "file": SimpleUploadedFile("leads-enriched.csv", csv.encode()),
        },
    )
    upload = CsvUpload.objects.get()
    assert (upload.row_count, upload.bad_line_count) == (4, 1)
    page = operator_client.post(
        response.url,
        {
            "field-0": "email",
            "casts-0": "trim | lower",
            "field-1": "first_name",
            "field-2": "score",
            "casts-2": "integer",
            "field-3": "company",
            "casts-3": "integer",
        },
    )
    assert page.status_code == 200, page.content.decode()[-1500:]
    response = operator_client.post(reverse("console:writeback-upload-confirm", args=[upload.pk]))
    run = SyncRun.objects.get()
    assert fast == [run.pk]
    tasks.run_inbound_slice(run.pk)  # the worker's slice, inline

    run.refresh_from_db()
    assert (run.status, run.total, run.sent, run.failed) == ("partly_failed", 5, 3, 2)
    results = {key.split(" ")[1]: r for key, r in by_key(run).items()}
    assert results["2"].status == "updated"
    assert results["3"].status == "created" and results["4"].status == "created"
    assert results["5"].status == "failed" and results["5"].error_code == "INVALID_FOREIGN_KEY"
    assert results["6"].error_code == "BAD_LINE"
    assert admin.get_item("leads", known["id"], {"fields": ["score"]})["score"] == 901
    stored = admin.list_items(
        "leads",
        {
            "filter": {"email": {"_ends_with": WB_DOMAIN}},
            "fields": ["email", "first_name"],
            "limit": -1,
        },
    ).data
    assert sorted(i["email"] for i in stored) == [
        f"new-{tag}-1@{WB_DOMAIN}",
        f"new-{tag}-2@{WB_DOMAIN}",
    ]
    assert {i["first_name"] for i in stored} == {"Doe, Jane", "Sam"}

    html = operator_client.get(reverse("console:run-detail", args=[run.pk])).content.decode()
    assert "INVALID_FOREIGN_KEY" in html and "partly failed" in html


def post_rows(client, route, secret, rows):
    return client.post(
        reverse("console:inbound", args=[route.slug]),
        data=json.dumps(rows),
        content_type="application/json",
        HTTP_X_KILN_SECRET=secret,
    )


@pytest.mark.django_db
def test_rows_posted_to_the_inbound_endpoint_are_upserted_and_one_bad_row_is_isolated(
    client, live_directus, admin, leads_restored, fast
):
    route, secret = InboundRoute.open(leads_sync(live_directus))
    known = leads_restored[1]
    tag = uuid.uuid4().hex[:8]
    rows = [{"email": known["email"], "score": 444, "kiln_row_id": "kr_not_ours"}]
    rows += [
        {"email": f"in-{tag}-{n}@{WB_DOMAIN}", "first_name": f"In {n}", "score": n}
        for n in range(30)
    ]
    rows.insert(17, {"email": f"bad-{tag}@{WB_DOMAIN}", "company": BAD_COMPANY})
    response = post_rows(client, route, secret, rows)
    assert response.status_code == 202 and response.json()["rows"] == 32
    # Clay re-runs the column: the same rows again are recognised, not applied twice.
    again = post_rows(client, route, secret, rows[:3])
    assert again.status_code == 202 and again.json()["duplicates"] == 3

    tasks.process_route(route.pk)

    run = SyncRun.objects.get()
    assert (run.status, run.total, run.sent, run.failed) == ("partly_failed", 32, 31, 1)
    failed = RowResult.objects.get(run=run, status="failed")
    assert failed.error_code == "INVALID_FOREIGN_KEY" and f"bad-{tag}" in failed.row_key
    assert RowResult.objects.filter(run=run, status="created").count() == 30
    assert admin.get_item("leads", known["id"], {"fields": ["score"]})["score"] == 444
    assert (
        len(
            admin.list_items(
                "leads", {"filter": {"email": {"_ends_with": WB_DOMAIN}}, "limit": -1}
            ).data
        )
        == 30
    )
    assert InboundRow.objects.filter(status="failed").count() == 1


@pytest.mark.django_db
def test_the_read_only_tokens_failures_are_explained_on_the_run(
    client, live_directus, leads_restored, fast
):
    route, secret = InboundRoute.open(
        leads_sync(live_directus, token=live_directus.read_token, name="Read only")
    )
    post_rows(
        client, route, secret, [{"email": f"ro-{n}@{WB_DOMAIN}", "score": n} for n in range(3)]
    )
    tasks.process_route(route.pk)
    run = SyncRun.objects.get()
    assert (run.status, run.failed) == ("failed", 3)
    result = RowResult.objects.filter(run=run).first()
    assert result.http_status == 403
    # Directus says the same for "no such collection" and "not allowed": the reason says both.
    assert '"leads"' in result.error_message and "permitted" in result.error_message, (
        result.error_message
    )


class Sink:
    """Stands in for Clay: a loopback server that answers 429 to the first `busy` requests."""

    def __init__(self, busy=3):
        self.bodies, self.answers = [], []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 429 if len(sink.answers) < busy else 200
                sink.answers.append(status)
                if status == 200:
                    sink.bodies.append(json.loads(raw))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(
                    b'{"ok": true}' if status == 200 else b'{"error": "Too many requests"}'
                )

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook/relay-live"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate, what, timeout=10.0):
    """Directus runs Flows asynchronously: poll for their effect."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.mark.django_db(transaction=True)
def test_an_installed_relay_forwards_created_and_updated_articles_through_429s(
    admin_client, live_server, live_directus, admin, settings, fast
):
    settings.KILN_PUBLIC_URL = live_server.url
    sink = Sink(busy=3)
    connection = DirectusConnection.objects.create(
        name="Harness", base_url=live_directus.url, token=Secret.seal(live_directus.admin_token)
    )
    destination = ClayDestination.objects.create(
        name="Clay articles",
        webhook_url=Secret.seal(sink.url),
        auth_token=Secret.seal("clay-relay-live-token"),
    )
    sync = Sync.objects.create(
        name="Articles relay (live)",
        kind=Sync.Kind.RELAY,
        connection=connection,
        collection="articles",
        destination=destination,
        rate_limit=0,
        concurrency=2,
    )
    route, _ = InboundRoute.open(sync)
    slug = f"kiln-relay-live-{uuid.uuid4().hex[:8]}"
    article_ids = []
    try:
        response = admin_client.post(
            reverse("console:writeback-relay-install", args=[route.pk]), follow=True
        )
        assert "the Flow in Directus" in response.content.decode()
        route.refresh_from_db()
        assert route.flow_id and route.flow_operation_id
        # Neither the Clay webhook URL nor its token sits in Directus: only Kiln's route and secret.
        operation = admin.call("GET", f"/operations/{route.flow_operation_id}")
        assert route.url in json.dumps(operation) and sink.url not in json.dumps(operation)

        article = admin.create_items(
            "articles", {"title": "Relayed by Kiln", "slug": slug, "status": "draft"}
        )
        article_ids.append(article["id"])
        wait_for(
            lambda: InboundRow.objects.filter(route=route).exists(),
            "the create event reaching Kiln",
        )
        tasks.process_route(route.pk)  # the worker, inline: it waits out the 429s
        created = wait_for(
            lambda: [b for b in sink.bodies if b.get("slug") == slug],
            "the article reaching the sink",
        )
        assert sink.answers[:3] == [429, 429, 429]
        assert created[0]["title"] == "Relayed by Kiln" and created[0]["kiln_directus_key"] == str(
            article["id"]
        )

        admin.update_item("articles", article["id"], {"views": 42})
        wait_for(
            lambda: InboundRow.objects.filter(route=route).count() == 2,
            "the update event reaching Kiln",
        )
        tasks.process_route(route.pk)
        updated = wait_for(
            lambda: [b for b in sink.bodies if b.get("slug") == slug and b.get("views") == 42],
            "the updated article reaching the sink",
        )
        # fetch_full_item: the update carries the whole row, not only the changed field.
        assert updated[0]["title"] == "Relayed by Kiln" and updated[0]["status"] == "draft"
        assert set(InboundRow.objects.filter(route=route).values_list("status", flat=True)) == {
            "done"
        }
        trace = RowTrace.objects.get(kiln_row_id=updated[0]["kiln_row_id"])
        assert (trace.step, trace.ok, trace.directus_key) == ("sent", True, str(article["id"]))
    finally:
        route.refresh_from_db()
        if route.flow_operation_id:
            admin.call("DELETE", f"/operations/{route.flow_operation_id}")
        if route.flow_id:
            admin.call("DELETE", f"/flows/{route.flow_id}")
        if article_ids:
            admin.delete_items("articles", article_ids)
        sink.close()
    assert not admin.call(
        "GET", "/flows", params={"filter[id][_eq]": route.flow_id, "fields": "id"}
    )


def own_writes_collection(admin, name):
    admin.call(
        "POST",
        "/collections",
        body={
            "collection": name,
            "schema": {},
            "meta": {"note": "Kiln live test (own writes); deleted at the end"},
            "fields": [
                {
                    "field": "id",
                    "type": "integer",
                    "meta": {"hidden": True},
                    "schema": {"is_primary_key": True, "has_auto_increment": True},
                },
                {"field": "email", "type": "string", "schema": {}},
                {"field": "score", "type": "integer", "schema": {}},
            ],
        },
    )


@pytest.mark.django_db(transaction=True)
def test_kilns_own_write_back_is_not_relayed_to_clay_but_an_edit_with_another_token_is(
    live_server, live_directus, admin, settings, fast
):
    settings.KILN_PUBLIC_URL = live_server.url
    tag = uuid.uuid4().hex[:8]
    collection = f"kiln_own_writes_{tag}"
    wb_token = f"kiln-own-writes-{tag}-{uuid.uuid4().hex}"
    sink = Sink(busy=0)
    user_id, route = None, None
    try:
        own_writes_collection(admin, collection)
        # The write-back acts as a Directus user of its own (as in production), not the admin.
        role = admin.me(fields="id,role")["role"]
        user_id = admin.call(
            "POST",
            "/users",
            body={"email": f"kiln-wb-{tag}@example.com", "token": wb_token, "role": role},
        )["id"]
        harness = DirectusConnection.objects.create(
            name="Harness", base_url=live_directus.url, token=Secret.seal(live_directus.admin_token)
        )
        relay_sync = Sync.objects.create(
            name="Own writes relay (live)",
            kind=Sync.Kind.RELAY,
            connection=harness,
            collection=collection,
            destination=ClayDestination.objects.create(
                name="Clay", webhook_url=Secret.seal(sink.url)
            ),
            rate_limit=0,
        )
        route, _ = InboundRoute.open(relay_sync)
        relay.install(route)
        # The write-back's connection: its Directus user is not known yet (found when needed).
        wb_connection = DirectusConnection.objects.create(
            name="Kiln write-back", base_url=live_directus.url + "/", token=Secret.seal(wb_token)
        )
        Sync.objects.create(
            name="Enriched back (live)",
            kind=Sync.Kind.CLAY_TO_DIRECTUS,
            connection=wb_connection,
            collection=collection,
            write_mode="upsert",
            match_field="email",
            rate_limit=0,
        )

        def write(rows):
            with wb_connection.client() as directus:
                writer = Writer(directus, collection, mode="upsert", match_field="email")
                outcomes = writer.write([WriteRow(r["email"], r) for r in rows])
            assert all(o.ok for o in outcomes), [o.error_message for o in outcomes]
            return outcomes

        emails = [f"p{n}-{tag}@example.com" for n in range(4)]
        first = write([{"email": e, "score": 1} for e in emails])  # 4 creates
        second = write(  # 2 updates in one request, 1 create
            [{"email": emails[0], "score": 2}, {"email": emails[1], "score": 2}]
            + [{"email": f"p4-{tag}@example.com", "score": 2}]
        )
        assert [o.status for o in second] == ["updated", "updated", "created"]
        created = sum(o.status == "created" for o in first + second)
        # One event per created item and at least one for the update request.
        wait_for(
            lambda: InboundRow.objects.filter(route=route).count() >= created + 1,
            "the write-back's events reaching Kiln",
        )
        time.sleep(1.0)  # the Flow runs after each response: let any later event arrive
        own_events = InboundRow.objects.filter(route=route).count()
        stored = InboundRow.objects.filter(route=route).first().data
        assert set(stored) == {"trigger", "accountability"}
        assert stored["accountability"]["user"] == user_id
        assert stored["trigger"]["collection"] == collection

        tasks.process_route(route.pk)

        run = SyncRun.objects.get(sync=relay_sync)
        assert (run.status, run.total, run.sent, run.skipped, run.failed) == (
            "succeeded",
            own_events,
            0,
            own_events,
            0,
        )
        codes = set(RowResult.objects.filter(run=run).values_list("error_code", flat=True))
        assert codes == {relay.OWN_WRITE}
        assert sink.answers == [] and sink.bodies == []
        wb_connection.refresh_from_db()
        assert wb_connection.directus_user_id == user_id  # asked once and stored

        # The same item edited with another token (the admin's): relayed, with the whole row.
        target = first[2].item_key
        admin.update_item(collection, target, {"score": 99})
        wait_for(
            lambda: InboundRow.objects.filter(route=route).count() == own_events + 1,
            "the admin's edit reaching Kiln",
        )
        tasks.process_route(route.pk)
        bodies = wait_for(lambda: list(sink.bodies), "the admin's edit reaching the sink")
        assert len(bodies) == 1
        assert (bodies[0]["email"], bodies[0]["score"], bodies[0]["kiln_directus_key"]) == (
            emails[2],
            99,
            str(target),
        )
        assert bodies[0]["kiln_row_id"].startswith("kr_")
        latest = SyncRun.objects.filter(sync=relay_sync).order_by("-id").first()
        assert (latest.sent, latest.skipped) == (1, 0)

        # "Test connection" reads the same id from /users/me.
        DirectusConnection.objects.filter(pk=wb_connection.pk).update(directus_user_id="")
        wb_connection.refresh_from_db()
        wb_connection.run_test()
        wb_connection.refresh_from_db()
        assert wb_connection.directus_user_id == user_id
    finally:
        if route is not None:
            route.refresh_from_db()
            if route.flow_operation_id:
                admin.call("DELETE", f"/operations/{route.flow_operation_id}")
            if route.flow_id:
                admin.call("DELETE", f"/flows/{route.flow_id}")
        admin.call("DELETE", f"/collections/{collection}")
        if user_id:
            admin.call("DELETE", f"/users/{user_id}")
        sink.close()
