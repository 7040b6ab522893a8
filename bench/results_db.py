"""1,000,000 row results in PostgreSQL: the run results page's server time, and pruning them.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kiln_bench .venv/bin/python bench/results_db.py

bench/run.py runs this in a child process (its own Django, on PostgreSQL). The database
named is dropped and created afresh, migrated, and dropped again at the end. The page is
the real view: a logged-in viewer's Django test Client GETs console:run-detail, timed
around `client.get` (URL resolving, middleware, the view's queries, template rendering).
An error-text search reads at most SEARCH_WINDOW failed/skipped rows per request (then
offers "search further"); the script also follows that link from the first page to the end.
"""

import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.run import seed_run, setup_django  # noqa: E402

ROWS = int(os.environ.get("ROWS", 1_000_000))
REQUESTS = int(os.environ.get("REQUESTS", 200))
FAILED_EVERY = 50  # 2 % of the rows failed, with an error message


def in_fresh_database(measure):
    """Drop and create $DATABASE_URL's database, run measure(), then drop it again."""
    url = os.environ["DATABASE_URL"]
    name = urlsplit(url).path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        measure()
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def main():
    in_fresh_database(measure)


def seed(run):
    from django.db import connection

    from integrations.models import SyncRun

    failed = ROWS // FAILED_EVERY
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO kiln_row_result (run_id, row_key, status, http_status, error_code, error_message,
                 attempts, duration_ms, payload_hash, resent, request_excerpt, response_excerpt, created_at,
                 possibly_duplicated, label, attempt_log)
               SELECT %s, i::text, CASE WHEN i %% %s = 0 THEN 'failed' ELSE 'sent' END,
                 CASE WHEN i %% %s = 0 THEN 400 ELSE 200 END,
                 CASE WHEN i %% %s = 0 THEN 'HTTP_400' ELSE '' END,
                 CASE WHEN i %% %s = 0 THEN 'Clay refused the row with 400; it will not be retried.'
                      ELSE '' END,
                 1, 12, md5(i::text), false, '{"id": ' || i || ', "title": "Article"}',
                 '{"status":"success"}', now() - interval '40 days', false, '', '[]'
               FROM generate_series(1, %s) AS i""",
            [run.pk, *[FAILED_EVERY] * 4, ROWS],
        )
        cursor.execute("ANALYZE kiln_row_result")
    # The page shows the run's stored counters, as the engine keeps them.
    SyncRun.objects.filter(pk=run.pk).update(
        status="partly_failed", total=ROWS, sent=ROWS - failed, failed=failed, expected_total=ROWS
    )


def page_times(client, path, queries):
    """Server time of each GET (ms), after a few warm-up requests."""
    for query in queries[:5]:
        assert client.get(path, query, secure=True).status_code == 200
    timings = []
    for query in queries:
        started = time.perf_counter()
        response = client.get(path, query, secure=True)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return timings


def measure():
    # No collectstatic here: plain static URLs (a manifest lookup costs the same dict get).
    os.environ.setdefault("KILN_MANIFEST_STATIC", "false")
    setup_django()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from console.models import User
    from integrations.runs import sync as engine

    call_command("migrate", verbosity=0)
    run = seed_run("results")
    started = time.perf_counter()
    seed(run)
    print(
        f"seeded {ROWS:,} row results of one run in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    user = User.objects.create_user("bench-viewer", password="x", role=User.Role.VIEWER)  # noqa: S106
    # Production settings: HTTPS only and a known host, as behind the TLS proxy.
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    path = reverse("console:run-detail", args=[run.pk])
    ids = run.results.values_list("id", flat=True)
    first_id, last_id = ids.order_by("id").first(), ids.order_by("-id").first()
    rnd = random.Random(7)

    def cursors(**params):
        # The first page, then pages from cursors spread over the whole run.
        return [params] + [
            {**params, "after": rnd.randint(first_id, last_id)} for _ in range(REQUESTS - 1)
        ]

    for params in [{}, {"q": "refused"}, {"q": "no such error", "after": first_id}]:
        with CaptureQueriesContext(connection) as captured:
            client.get(path, params, secure=True)
        sql = [q["sql"].upper() for q in captured]
        print(
            f"queries per page {params or '(no filter)'}: {len(sql)}, "
            f"COUNT(*): {sum('COUNT(' in q for q in sql)}, OFFSET: {sum('OFFSET' in q for q in sql)}",
            flush=True,
        )

    # An error-text search reads one bounded window per request; how far does one reach, and
    # does following its "Search further" link walk the whole run? Once now (the first read
    # of the failed rows' pages since seeding) and once after the timed pages.
    further = re.compile(
        r'covered rows up to row <span class="mono">(\w+)</span>.*?after=(\d+)', re.S
    )

    def search_further(when):
        params, pages, reach, started = {"q": "no such error"}, 0, [], time.perf_counter()
        while True:
            html = client.get(path, params, secure=True).content.decode()
            pages += 1
            link = further.search(html)
            if link is None:
                break
            reach.append(link[1])
            params = {"q": "no such error", "after": link[2]}
        print(
            f"error text matching nothing, following 'Search further' from the first page to "
            f"the end ({when}): {pages} pages, {(time.perf_counter() - started) * 1000 / pages:.1f} "
            f"ms each; the first window reaches row {reach[0]} of {ROWS:,}",
            flush=True,
        )

    search_further("first read")
    variants = [
        ("no filter", cursors()),
        ("status=failed", cursors(status="failed")),
        ("error text q=refused", cursors(q="refused")),
        ("error text matching nothing (a search window per page)", cursors(q="no such error")),
        ("status=failed + error text", cursors(status="failed", q="HTTP_400")),
    ]
    for label, queries in variants:
        timings = page_times(client, path, queries)
        p95 = statistics.quantiles(timings, n=20)[18]
        print(
            f"page {label}: p95 {p95:.1f} ms, median {statistics.median(timings):.1f} ms "
            f"({len(timings)} GETs)",
            flush=True,
        )

    search_further("again")

    started = time.perf_counter()
    deleted = engine.prune_row_results(older_than_days=30)
    print(
        f"pruned {deleted:,} row results in {time.perf_counter() - started:.1f} s (batches of 20,000)",
        flush=True,
    )


if __name__ == "__main__":
    main()
