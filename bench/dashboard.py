"""The home page (ops dashboard) with 1,000,000 row results in PostgreSQL: its server time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kiln_bench_dashboard \
        .venv/bin/python bench/dashboard.py

The database named is dropped and created afresh, migrated, and dropped again at the end.
Seeded like a busy install: 40 syncs on 8 connections (each with a 25-collection schema
cached), 12 destinations (one token rejected, one near its cap), 4,000 runs over 30 days
(failed and partly failed ones in the last 24 h, 3 running), ROWS row results spread over
those runs, 200,000 row traces (some stuck in the round trip). The page is the real view: a
logged-in viewer's Django test Client GETs console:home, timed around `client.get`.
"""

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results_db import in_fresh_database  # noqa: E402
from bench.run import setup_django  # noqa: E402

ROWS = int(os.environ.get("ROWS", 1_000_000))
REQUESTS = int(os.environ.get("REQUESTS", 200))
SYNCS, CONNECTIONS, DESTINATIONS, RUNS, TRACES = 40, 8, 12, 4000, 200_000


def main():
    in_fresh_database(measure)


def schema():
    """25 collections of 30 fields, each with an m2o to the next: a mid-sized real schema."""
    collections = {}
    for c in range(25):
        fields = {
            f"field_{f}": {"type": "string", "relation": None, "special": []} for f in range(28)
        }
        fields["id"] = {"type": "integer", "relation": None, "special": []}
        fields["parent"] = {
            "type": "integer",
            "special": ["m2o"],
            "relation": {"kind": "m2o", "collection": f"things_{(c + 1) % 25}"},
        }
        collections[f"things_{c}"] = {"primary_key": "id", "system": False, "fields": fields}
    return {"collections": collections, "fetched_with_system": False}


def seed():
    from django.db import connection
    from django.utils import timezone

    from integrations.models import (
        ClayDestination,
        DirectusConnection,
        MappingTemplate,
        SavedQuery,
        Secret,
        Sync,
        SyncRun,
        WebhookState,
    )

    now = timezone.now()
    cached = schema()
    connections = [
        DirectusConnection.objects.create(
            name=f"CMS {n}",
            base_url=f"https://cms{n}.example.com",
            token=Secret.seal(f"directus-token-{n}"),
            schema=cached,
            schema_fetched_at=now,
            last_test_at=now,
            last_test_ok=n != 0,
            last_test_result=[{"name": "Token valid", "ok": n != 0, "summary": "Rejected."}],
        )
        for n in range(CONNECTIONS)
    ]
    destinations = [
        ClayDestination.objects.create(
            name=f"Table {n}",
            webhook_url=Secret.seal(f"https://api.clay.com/v3/sources/webhook/{n}"),
            submissions_count=45_000 if n == 1 else 10 * n,
        )
        for n in range(DESTINATIONS)
    ]
    destinations[0].mark(WebhookState.AUTH_REJECTED, "Clay answered 401.")
    template = MappingTemplate.objects.create(
        name="row", kind="clay_row", body='{"a": "{{field_1}}", "b": "{{parent.field_2}}"}'
    )
    drifted = MappingTemplate.objects.create(
        name="old row", kind="clay_row", body='{"a": "{{renamed_away}}"}'
    )
    syncs = []
    for n in range(SYNCS):
        saved = SavedQuery.objects.create(
            connection=connections[n % CONNECTIONS],
            name=f"q{n}",
            collection=f"things_{n % 25}",
            query_string="filter[field_3][_eq]=x&filter[parent][field_4][_contains]=y&sort=-id",
        )
        syncs.append(
            Sync.objects.create(
                name=f"Sync {n:02d}",
                saved_query=saved,
                destination=destinations[n % DESTINATIONS],
                template=drifted if n == 7 else template,
                schedule="*/15 * * * *" if n % 4 == 0 else "",
                last_scheduled_at=now - timedelta(minutes=3),
            )
        )
    statuses = ["succeeded"] * 8 + ["partly_failed", "failed"]
    runs = []
    for i in range(RUNS):
        age = timedelta(minutes=int(30 * 24 * 60 * i / RUNS))
        status = statuses[i % len(statuses)]
        runs.append(
            SyncRun(
                sync=syncs[i % SYNCS],
                status=status,
                created_at=now - age,
                started_at=now - age,
                finished_at=now - age + timedelta(minutes=2),
                total=ROWS // RUNS,
                sent=ROWS // RUNS - (5 if status != "succeeded" else 0),
                failed=5 if status != "succeeded" else 0,
                last_error="Clay refused 5 rows." if status == "failed" else "",
            )
        )
    for n in range(3):
        runs.append(
            SyncRun(sync=syncs[n], status="running", created_at=now, total=300, expected_total=900)
        )
    SyncRun.objects.bulk_create(runs, batch_size=1000)
    first = SyncRun.objects.order_by("id").values_list("id", flat=True).first()
    with connection.cursor() as cursor:
        extra_columns, extra_values = _other_required_columns(cursor, "kiln_row_result")
        cursor.execute(
            f"""INSERT INTO kiln_row_result (run_id, row_key, status, http_status, error_code,
                 error_message, attempts, duration_ms, payload_hash, resent, request_excerpt,
                 response_excerpt, created_at{extra_columns})
               SELECT %s + (i %% %s), i::text,
                 CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'sent' END,
                 CASE WHEN i %% 50 = 0 THEN 400 ELSE 200 END,
                 CASE WHEN i %% 50 = 0 THEN 'HTTP_400' ELSE '' END,
                 CASE WHEN i %% 50 = 0 THEN 'Clay refused the row.' ELSE '' END,
                 1, 12, md5(i::text), false, '{{"id": ' || i || '}}', '{{"status":"success"}}',
                 now() - (i %% 30) * interval '1 day'{extra_values}
               FROM generate_series(1, %s) AS i""",
            [first, RUNS, ROWS],
        )
        cursor.execute(
            """INSERT INTO kiln_row_trace (kiln_row_id, sync_id, collection, directus_key, step,
                 ok, step_at, created_at)
               SELECT 'k' || i, %s, 'things_0', i::text,
                 (ARRAY['queued','sent','received','written'])[1 + i %% 4], true,
                 now() - (i %% 240) * interval '1 minute', now()
               FROM generate_series(1, %s) AS i""",
            [syncs[0].pk, TRACES],
        )
        cursor.execute("ANALYZE")


_KNOWN = {
    "id",
    "run_id",
    "row_key",
    "status",
    "http_status",
    "error_code",
    "error_message",
    "attempts",
    "duration_ms",
    "payload_hash",
    "resent",
    "request_excerpt",
    "response_excerpt",
    "created_at",
}
_EMPTY = {
    "jsonb": "'[]'::jsonb",
    "boolean": "false",
    "integer": "0",
    "bigint": "0",
    "smallint": "0",
    "timestamp with time zone": "now()",
}


def _other_required_columns(cursor, table):
    """NOT NULL columns without a database default that later migrations added: their empty
    value, so the seed keeps working while the model grows."""
    cursor.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_name = %s AND is_nullable = 'NO' AND column_default IS NULL""",
        [table],
    )
    extra = [(c, _EMPTY.get(t, "''")) for c, t in cursor.fetchall() if c not in _KNOWN]
    return "".join(f", {c}" for c, _ in extra), "".join(f", {v}" for _, v in extra)


def measure():
    os.environ.setdefault("KILN_MANIFEST_STATIC", "false")
    setup_django()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from console.models import User

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seed()
    print(
        f"seeded {ROWS:,} row results over {RUNS:,} runs of {SYNCS} syncs, {TRACES:,} row "
        f"traces in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    user = User.objects.create_user("bench-viewer", password="x", role=User.Role.VIEWER)  # noqa: S106
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    path = reverse("console:home")
    with CaptureQueriesContext(connection) as captured:
        html = client.get(path, secure=True).content.decode()
    print(f"queries per page: {len(captured)}", flush=True)
    for needle in ("Clay rejected the token", "no longer fits the Directus schema", "failed"):
        assert needle in html, needle
    for _ in range(5):
        client.get(path, secure=True)
    timings = []
    for _ in range(REQUESTS):
        t = time.perf_counter()
        response = client.get(path, secure=True)
        timings.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200
    p95 = statistics.quantiles(timings, n=20)[18]
    print(
        f"home page (dashboard): p95 {p95:.1f} ms, median {statistics.median(timings):.1f} ms "
        f"({len(timings)} GETs)",
        flush=True,
    )


if __name__ == "__main__":
    main()
