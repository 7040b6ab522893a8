"""1,000,000 row results in PostgreSQL: the keyset page query's p95, and pruning them all.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kiln_bench .venv/bin/python bench/results_db.py

The database named is created (and dropped afterwards) by this script. Until the run
results page exists this times the query that page will run (a keyset page of 50 results
of one run, filtered by status or not), not the page itself.
"""

import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.run import seed_run, setup_django  # noqa: E402

ROWS = int(os.environ.get("ROWS", 1_000_000))


def main():
    url = os.environ["DATABASE_URL"]
    name = urlsplit(url).path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        measure()
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def measure():
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from integrations import sync as engine
    from integrations.models import RowResult

    call_command("migrate", verbosity=0)
    run = seed_run("results")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO kiln_row_result (run_id, row_key, status, http_status, error_code, error_message,
                 attempts, duration_ms, payload_hash, resent, request_excerpt, response_excerpt, created_at)
               SELECT %s, i::text, CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'sent' END,
                 CASE WHEN i %% 50 = 0 THEN 400 ELSE 200 END, CASE WHEN i %% 50 = 0 THEN 'HTTP_400' ELSE '' END,
                 CASE WHEN i %% 50 = 0 THEN 'Clay refused the row with 400' ELSE '' END, 1, 12, md5(i::text),
                 false, '{"id": ' || i || ', "title": "Article"}', '{"status":"success"}',
                 now() - interval '40 days'
               FROM generate_series(1, %s) AS i""",
            [run.pk, ROWS],
        )
        cursor.execute("ANALYZE kiln_row_result")
    print(f"seeded {ROWS:,} row results in {time.perf_counter() - started:.1f} s")
    for label, status in (("all", None), ("failed only", "failed")):
        timings = []
        for step in range(200):
            cursor_id = (step * 4999) % ROWS
            qs = RowResult.objects.filter(run=run, id__gt=cursor_id)
            if status:
                qs = qs.filter(status=status)
            t = time.perf_counter()
            page = list(qs.order_by("id")[:51])
            timings.append((time.perf_counter() - t) * 1000)
            assert page or status
        p95 = statistics.quantiles(timings, n=20)[18]
        print(
            f"keyset page of 50 ({label}): p95 {p95:.2f} ms, median {statistics.median(timings):.2f} ms over 200 pages"
        )
    t = time.perf_counter()
    deleted = engine.prune_row_results(older_than_days=30)
    print(f"pruned {deleted:,} row results in {time.perf_counter() - t:.1f} s (batches of 20,000)")


if __name__ == "__main__":
    main()
