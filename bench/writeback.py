"""Write-back benchmark: Kiln's batched writes into the real Directus versus one request per row,
and inbound requests accepted durably per second. One command, every figure side by side.

    bash harness/directus/up.sh                         # with DIRECTUS_PORT=8075 for an isolated one
    KILN_BENCH_DIRECTUS_URL=http://127.0.0.1:8075 .venv/bin/python bench/writeback.py [--rows 2000]
    # add PG_URL=postgres://postgres@127.0.0.1:5432/kiln_bench_wb to time inbound on PostgreSQL too

Write-back (the same N `leads`, same values, the same Directus, one after the other):
1. Kiln, end to end: the rows are stored as inbound rows, then a write-back run (upsert by
   email) is worked with `inbound_run.execute` exactly as the Celery task does — look the emails
   up, batch-create or batch-PATCH, and record a RowResult per row in the database.
2. The baseline: one reused httpx client (through Kiln's DirectusClient) that sends one
   POST (creates) or one PATCH by primary key (updates) per row and saves one RowResult per
   request. It knows the primary keys already: it does no lookups, Kiln does.
Inbound: sequential one-row POSTs to the inbound endpoint through Django's test client
(the full view, secret check, JSON parse, receipt + row committed, the wake-up queued), in a
fresh database; no HTTP server in front, so this is the application's own ceiling.
Everything created in Directus has an email ending in BENCH_DOMAIN and is deleted afterwards.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.run import setup_django  # noqa: E402

BENCH_DOMAIN = "kiln-bench-writeback.example"


def directus_url() -> str:
    return os.environ.get("KILN_BENCH_DIRECTUS_URL", "http://127.0.0.1:8075").rstrip("/")


def admin_token() -> str:
    return os.environ.get("KILN_BENCH_DIRECTUS_TOKEN", "harness-admin-token")


def migrate():
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def client():
    from integrations.directus.client import DirectusClient
    from integrations.outbound import http

    return DirectusClient(
        directus_url(),
        admin_token(),
        client=http.make_client(policy=http.OutboundPolicy(allow_private=True), max_connections=4),
    )


def leads_sync(name):
    from integrations.models import DirectusConnection, InboundRoute, Secret, Sync

    connection = DirectusConnection.objects.create(
        name=f"{name} Directus", base_url=directus_url(), token=Secret.seal(admin_token())
    )
    sync = Sync.objects.create(
        name=name,
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
        rate_limit=0,
    )
    return InboundRoute.open(sync)


def kiln_write(rows, name):
    """Store rows as inbound rows, then time the write-back run to its end; rows/s and the run."""
    from integrations.models import SyncRun
    from integrations.runs import inbound, inbound_run

    route, _ = leads_sync(name)
    inbound.accept(route, rows, size=0)
    run = inbound_run.start_route_run(route.pk)
    started = time.perf_counter()
    while inbound_run.execute(run.pk, "bench-worker", max_seconds=600):
        pass
    elapsed = time.perf_counter() - started
    run = SyncRun.objects.get(pk=run.pk)
    assert run.failed == 0 and run.sent == len(rows), (
        run.status,
        run.sent,
        run.failed,
        run.last_error,
    )
    return len(rows) / elapsed, elapsed, run


def baseline_write(rows, pks=None):
    """One request per row on one reused client, one RowResult saved per request."""
    from integrations.models import RowResult, Sync, SyncRun

    sync = Sync.objects.create(
        name=f"baseline {uuid.uuid4().hex[:6]}", kind=Sync.Kind.CLAY_TO_DIRECTUS
    )
    run = SyncRun.objects.create(sync=sync, status="running")
    created = []
    with client() as directus:
        started = time.perf_counter()
        for n, row in enumerate(rows):
            t = time.perf_counter()
            if pks is None:
                item = directus.create_items("leads", row, {"fields": ["id"]})
                created.append(item["id"])
                status = "created"
            else:
                directus.update_item("leads", pks[n], row, {"fields": ["id"]})
                status = "updated"
            RowResult.objects.create(
                run=run,
                row_key=row["email"],
                status=status,
                http_status=200,
                attempts=1,
                duration_ms=int((time.perf_counter() - t) * 1000),
            )
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed, elapsed, created


def cleanup():
    with client() as directus:
        while True:
            page = directus.list_items(
                "leads",
                {
                    "filter": {"email": {"_ends_with": BENCH_DOMAIN}},
                    "fields": ["id"],
                    "limit": 1000,
                },
            )
            if not page.data:
                return
            directus.delete_items("leads", [item["id"] for item in page.data])


def writeback(n):
    from django.db import connection

    setup_django()
    migrate()
    tag = uuid.uuid4().hex[:6]
    kiln_rows = [
        {"email": f"k{tag}-{i}@{BENCH_DOMAIN}", "first_name": f"Kiln {i}", "score": i}
        for i in range(n)
    ]
    base_rows = [
        {"email": f"b{tag}-{i}@{BENCH_DOMAIN}", "first_name": f"Base {i}", "score": i}
        for i in range(n)
    ]
    print(
        f"write-back: {n:,} leads each way into Directus at {directus_url()}, database {connection.vendor}"
    )
    try:
        k_create, k_create_s, _ = kiln_write(kiln_rows, "bench create")
        print(
            f"  Kiln upsert by email, all new (lookups + batch POSTs + results): {k_create:,.0f} rows/s ({k_create_s:.1f} s)"
        )
        b_create, b_create_s, base_pks = baseline_write(base_rows)
        print(
            f"  baseline, one POST per row (+ one result each):                   {b_create:,.0f} rows/s ({b_create_s:.1f} s)"
        )
        updates = [{**row, "score": row["score"] + 1000} for row in kiln_rows]
        k_update, k_update_s, _ = kiln_write(updates, "bench update")
        print(
            f"  Kiln upsert by email, all existing (lookups + batch PATCHes):     {k_update:,.0f} rows/s ({k_update_s:.1f} s)"
        )
        b_updates = [{**row, "score": row["score"] + 1000} for row in base_rows]
        b_update, b_update_s, _ = baseline_write(b_updates, pks=base_pks)
        print(
            f"  baseline, one PATCH per row by primary key (+ one result each):   {b_update:,.0f} rows/s ({b_update_s:.1f} s)"
        )
        with client() as directus:
            sample = directus.list_items(
                "leads", {"filter": {"email": {"_eq": updates[-1]["email"]}}, "fields": ["score"]}
            ).data
        assert sample and sample[0]["score"] == updates[-1]["score"], sample
        print(
            f"  => updates: Kiln {k_update / b_update:.1f}x one PATCH per row; creates: {k_create / b_create:.1f}x"
        )
        return {
            "kiln_create": k_create,
            "base_create": b_create,
            "kiln_update": k_update,
            "base_update": b_update,
        }
    finally:
        cleanup()


def inbound_rate(requests):
    """Sequential one-row POSTs to the inbound endpoint; each answered 202 after its commit."""
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    setup_django()
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from integrations.models import InboundRow

    setup_test_environment()  # lets the test client's "testserver" host in
    from django.conf import settings

    for folder in ("queue", "processed"):  # the embedded broker's folders, as bin/dev makes them
        (Path(settings.VAR_DIR) / "broker" / folder).mkdir(parents=True, exist_ok=True)
    migrate()
    route, secret = leads_sync(f"bench inbound {uuid.uuid4().hex[:6]}")
    url = reverse("console:inbound", args=[route.slug])
    http = Client()
    bodies = [
        json.dumps({"email": f"in{i}@{BENCH_DOMAIN}", "score": i, "company": "Acme"})
        for i in range(requests)
    ]
    for body in bodies[:50]:  # warm up: imports, first queries
        http.post(url, body, content_type="application/json", HTTP_X_KILN_SECRET=secret)
    started = time.perf_counter()
    for body in bodies[50:]:
        response = http.post(url, body, content_type="application/json", HTTP_X_KILN_SECRET=secret)
        assert response.status_code == 202, response.content
    elapsed = time.perf_counter() - started
    stored = InboundRow.objects.filter(route=route).count()
    assert stored == requests, stored
    rate = (requests - 50) / elapsed
    print(
        f"  inbound, {connection.vendor}: {rate:,.0f} requests/s accepted durably "
        f"({requests - 50:,} one-row POSTs in {elapsed:.1f} s; {stored:,} rows stored)"
    )
    return rate


def inbound_child(database_url, requests):
    env = {**os.environ, "KILN_BENCH_CHILD": "inbound"}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    subprocess.run(
        [sys.executable, __file__, "--inbound-only", "--requests", str(requests)],
        env=env,
        check=True,
    )


def with_postgres_database(url, fn):
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        fn()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--inbound-only", action="store_true")
    args = parser.parse_args()
    if args.inbound_only:
        inbound_rate(args.requests)
        return
    print(
        f"bench/writeback.py — {time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    figures = writeback(args.rows)
    ratio = figures["kiln_update"] / figures["base_update"]
    print(
        f"target: batched write-back >= 4x one PATCH per row -> {'met' if ratio >= 4 else 'NOT met'} ({ratio:.1f}x)"
    )
    print("inbound requests/s (Django test client, sequential, one row per request):")
    inbound_child(None, args.requests)
    pg = os.environ.get("PG_URL")
    if pg:
        with_postgres_database(pg, lambda: inbound_child(pg, args.requests))


if __name__ == "__main__":
    main()
