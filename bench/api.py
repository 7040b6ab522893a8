"""The API's list endpoints beside the HTML pages for the same query, in one run, on PostgreSQL
with 1,000,000 row results:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kiln_bench_api .venv/bin/python bench/api.py

The database named is dropped and created afresh, migrated, and dropped again at the end (as
bench/results_db.py does, whose seeding it reuses: one run of 1M results, 2 % failed). It also
makes RUNS runs over 20 syncs for the runs list. Each request is timed around the Django test
Client's `get` (URL resolving, middleware, authentication, the view's queries, rendering):
the HTML page as a signed-in viewer, the API with a viewer's personal token (its throttle
counted in, at a rate the benchmark cannot reach: KILN_API_RATE). Pages alternate
HTML/API request by request from the same cursors, so both see the same cache state.

Figures, 2026-12-04, 2 cores, PostgreSQL 15, load average ~1,
200 GETs each, page sizes as the HTML pages (50 runs, 100 rows):

    what                                             API p95 (median)   HTML page p95 (median)
    runs list, no filter                             10.4 (8.4) ms      20.1 (16.7) ms
    runs list, status=failed                         13.6 (9.3) ms      25.7 (17.5) ms
    runs list, one sync                              10.1 (8.9) ms      19.0 (16.7) ms
    row results, no filter                            8.3 (7.3) ms      19.0 (17.5) ms
    row results, status=failed                        8.9 (7.9) ms      20.6 (19.1) ms
    row results, error text q=refused                10.4 (8.6) ms      22.9 (19.5) ms
    row results, error text matching nothing         19.1 (13.6) ms     23.9 (14.5) ms
    row results, status=failed + error text          10.3 (8.4) ms      21.3 (18.6) ms

Target: p95 ≤ 50 ms for every API list. Met (worst 19.1 ms).
"""

import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KILN_API_RATE", "1000000/min")
os.environ.setdefault("KILN_MANIFEST_STATIC", "false")
from bench.results_db import (  # noqa: E402
    ROWS,
    in_fresh_database,  # noqa: E402
    seed,
)
from bench.run import seed_run, setup_django  # noqa: E402

REQUESTS = int(os.environ.get("REQUESTS", 200))
RUNS = int(os.environ.get("RUNS", 5000))


def main():
    in_fresh_database(measure)


def seed_runs(count):
    """`count` finished runs over 20 syncs, a fifth of them failed, spread over 60 days."""
    from django.db import connection

    from integrations.models import Sync

    syncs = [Sync.objects.create(name=f"bench sync {i}").pk for i in range(20)]
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO kiln_sync_run (sync_id, status, trigger, dry_run, created_at, started_at,
                 finished_at, total, sent, skipped, failed, resent, expected_total,
                 high_water_mark, since, last_error, lease_owner, checkpoint, slices,
                 cancel_requested)
               SELECT (ARRAY[%s])[1 + i %% 20],
                 CASE WHEN i %% 5 = 0 THEN 'failed' ELSE 'succeeded' END, 'schedule', false,
                 now() - (i || ' minutes')::interval, now() - (i || ' minutes')::interval,
                 now() - (i || ' minutes')::interval + interval '30 seconds',
                 1000, 990, 0, 10, 0, 1000, '', '', '', '', '{}', 1, false
               FROM generate_series(1, %s) AS i""".replace(
                "[%s]", "[" + ",".join(["%s"] * 20) + "]"
            ),
            [*syncs, count],
        )
        cursor.execute("ANALYZE kiln_sync_run")
    return syncs


def timed(client, path, params, **headers):
    started = time.perf_counter()
    response = client.get(path, params, secure=True, **headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, params, response.status_code)
    return elapsed


def compare(label, html_client, html_path, api_client, api_path, queries):
    """p95 and median of the page and of the API over the same queries, interleaved."""
    for query in queries[:5]:  # warm-up
        timed(html_client, html_path, query)
        timed(api_client, api_path, query)
    html, api = [], []
    for query in queries:
        html.append(timed(html_client, html_path, query))
        api.append(timed(api_client, api_path, query))

    def p95(values):
        return statistics.quantiles(values, n=20)[18]

    print(
        f"{label}: API p95 {p95(api):.1f} ms (median {statistics.median(api):.1f}); "
        f"HTML page p95 {p95(html):.1f} ms (median {statistics.median(html):.1f}) "
        f"[{len(queries)} GETs each]",
        flush=True,
    )
    return p95(api)


def measure():
    setup_django()
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from console.models import ApiToken, User

    call_command("migrate", verbosity=0)
    run = seed_run("api")
    started = time.perf_counter()
    seed(run)
    syncs = seed_runs(RUNS)
    print(
        f"seeded {ROWS:,} row results of one run and {RUNS:,} runs in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    user = User.objects.create_user("bench-viewer", password="x", role=User.Role.VIEWER)  # noqa: S106
    page = Client(HTTP_HOST="localhost")
    page.force_login(user)
    _, plaintext = ApiToken.issue(user, "bench")
    api = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    from integrations.models import SyncRun

    rnd = random.Random(7)
    ids = run.results.values_list("id", flat=True)
    first_id, last_id = ids.order_by("id").first(), ids.order_by("-id").first()
    run_ids = SyncRun.objects.values_list("id", flat=True)
    first_run, last_run = run_ids.order_by("id").first(), run_ids.order_by("-id").first()

    def cursors(low, high, **params):
        return [params] + [{**params, "after": rnd.randint(low, high)} for _ in range(REQUESTS - 1)]

    worst = []
    runs_html, runs_api = reverse("console:runs"), reverse("api:runs")
    for label, queries in [
        ("runs list, no filter", cursors(first_run, last_run)),
        ("runs list, status=failed", cursors(first_run, last_run, status="failed")),
        ("runs list, one sync", cursors(first_run, last_run, sync=syncs[3])),
    ]:
        worst.append(compare(label, page, runs_html, api, runs_api, queries))

    html_path = reverse("console:run-detail", args=[run.pk])
    api_path = reverse("api:run-results", args=[run.pk])
    for label, queries in [
        ("row results, no filter", cursors(first_id, last_id)),
        ("row results, status=failed", cursors(first_id, last_id, status="failed")),
        ("row results, error text q=refused", cursors(first_id, last_id, q="refused")),
        (
            "row results, error text matching nothing (a search window per page)",
            cursors(first_id, last_id, q="no such error"),
        ),
        (
            "row results, status=failed + error text",
            cursors(first_id, last_id, status="failed", q="HTTP_400"),
        ),
    ]:
        worst.append(compare(label, page, html_path, api, api_path, queries))
    print(f"worst API p95: {max(worst):.1f} ms (target ≤ 50 ms)", flush=True)


if __name__ == "__main__":
    main()
