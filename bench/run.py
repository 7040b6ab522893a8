"""Kiln's sync engine benchmark: one command, every figure side by side with its baselines.

    .venv/bin/python bench/run.py [--quick] [--only engine,ratelimit,...]

The fakes (bench/fakes.py) run in their own processes on loopback; each measured engine run
runs in a fresh child process so its peak memory (ru_maxrss) is its own. The database is
a fresh SQLite file unless DATABASE_URL is set (PostgreSQL: a `kiln_bench` database is
created next to the one named and dropped afterwards).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEMPLATE = '{"id": {{id}}, "title": "{{title}}", "email": "{{email}}", "company": "{{company}}", "views": {{views}}}'
CONCURRENCY = 8
DIRECTUS_TOKEN = "bench-directus-token"


def setup_django(database_url=None):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789")
    os.environ.setdefault("KILN_ENCRYPTION_KEYS", "P6NlQVHnqIrfry7iefUHF0_9BT7UmBOH83y16LLIYss=")
    os.environ["KILN_ALLOW_PRIVATE_NETWORKS"] = "true"
    os.environ.setdefault("KILN_VAR_DIR", tempfile.mkdtemp(prefix="kiln-bench-"))
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


@contextmanager
def fake(kind, *args):
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fakes.py"), kind, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.stdin.close()
        process.wait(10)


def sink_call(url, path, body=None):
    import httpx

    if body is None:
        return httpx.get(url + path).json()
    return httpx.post(url + path, json=body).json()


# --- objects ------------------------------------------------------------------------------


def make_sync(
    directus_url, sink_url, *, name, rate_limit=0.0, concurrency=CONCURRENCY, page_size=200
):
    from integrations.models import (
        ClayDestination,
        DirectusConnection,
        MappingTemplate,
        SavedQuery,
        Secret,
        Sync,
    )

    connection = DirectusConnection.objects.create(
        name=name, base_url=directus_url, token=Secret.seal(DIRECTUS_TOKEN)
    )
    destination = ClayDestination.objects.create(
        name=name, webhook_url=Secret.seal(sink_url + "/hook/bench")
    )
    query = SavedQuery.objects.create(connection=connection, name=name, collection="articles")
    template = MappingTemplate.objects.create(name=name, kind="clay_row", body=TEMPLATE)
    return Sync.objects.create(
        name=name,
        saved_query=query,
        destination=destination,
        template=template,
        rate_limit=rate_limit,
        concurrency=concurrency,
        page_size=page_size,
    )


def start(sync, **kwargs):
    from integrations import sync as engine
    from integrations import tasks

    tasks.run_sync_slice.delay_on_commit = lambda run_id: None  # this process works the run
    return engine.start_run(sync, **kwargs)


def work(run, max_seconds=600):
    from integrations import sync as engine
    from integrations.models import SyncRun

    while engine.execute_slice(run.pk, worker_id=f"bench-{os.getpid()}", max_seconds=max_seconds):
        pass
    return SyncRun.objects.get(pk=run.pk)


# --- child: one engine run in a fresh process ----------------------------------------------


def engine_child(args):
    """Run the engine once over `items` and print JSON figures (rows/s, peak memory)."""
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from integrations.models import ClayDestination

    ClayDestination.SUBMISSION_CAP = 10**9  # the fake sink is not Clay: no lifetime cap
    sink_stats = sink_call(args.sink, "/_stats")
    sync = make_sync(args.directus, args.sink, name=f"bench-{args.items}-{os.getpid()}")
    run = start(sync)
    started = time.perf_counter()
    run = work(run)
    elapsed = time.perf_counter() - started
    received = sink_call(args.sink, "/_stats")["received"] - sink_stats["received"]
    print(
        json.dumps(
            {
                "rows": run.total,
                "sent": run.sent,
                "failed": run.failed,
                "status": run.status,
                "elapsed": elapsed,
                "rows_per_s": run.total / elapsed,
                "received": received,
                "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_engine(items, database_url, sink_url):
    with fake("directus", "--items", str(items), "--token", DIRECTUS_TOKEN) as directus_url:
        env = {**os.environ}
        if database_url:
            env["DATABASE_URL"] = database_url
        else:
            env["DATABASE_URL"] = (
                f"sqlite:///{tempfile.mkdtemp(prefix='kiln-bench-db-')}/bench.sqlite3"
            )
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--engine-child",
                "--items",
                str(items),
                "--directus",
                directus_url,
                "--sink",
                sink_url,
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            raise SystemExit(f"engine run of {items} items failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


# --- baselines --------------------------------------------------------------------------------


def payloads(n):
    from bench.fakes import make_item

    return [
        json.dumps({k: make_item(i)[k] for k in ("id", "title", "email", "company", "views")})
        for i in range(1, n + 1)
    ]


def fair_baseline(sink_url, n):
    """One reused client, one row at a time, one saved result row per request."""
    from integrations import clay, http
    from integrations.models import RowResult

    run = seed_run("baseline")
    bodies = payloads(n)
    headers = clay.headers_for(None)
    started = time.perf_counter()
    with http.make_client() as client:
        for i, body in enumerate(bodies, 1):
            d = clay.deliver(client, sink_url + "/hook/bench", body, headers)
            RowResult.objects.create(
                run=run,
                row_key=str(i),
                status="sent" if d.ok else "failed",
                http_status=d.status,
                attempts=1,
                duration_ms=d.elapsed_ms,
            )
    return n / (time.perf_counter() - started)


def naive_baseline(sink_url, n):
    """A new client per row (what a hand-written script often does)."""
    from integrations import clay, http
    from integrations.models import RowResult

    run = seed_run("naive")
    headers = clay.headers_for(None)
    started = time.perf_counter()
    for i, body in enumerate(payloads(n), 1):
        with http.make_client() as client:
            d = clay.deliver(client, sink_url + "/hook/bench", body, headers)
        RowResult.objects.create(
            run=run,
            row_key=str(i),
            status="sent" if d.ok else "failed",
            http_status=d.status,
            attempts=1,
        )
    return n / (time.perf_counter() - started)


def ceiling(sink_url, n, concurrency=CONCURRENCY):
    """The same client stack and concurrency, prebuilt payloads, nothing recorded."""
    from integrations import clay, http

    bodies = iter(payloads(n))
    lock = threading.Lock()
    headers = clay.headers_for(None)
    client = http.make_client(max_connections=concurrency)

    def send():
        while True:
            with lock:
                body = next(bodies, None)
            if body is None:
                return
            clay.deliver(client, sink_url + "/hook/bench", body, headers)

    threads = [threading.Thread(target=send) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    return n / (time.perf_counter() - started)


def seed_run(name):
    from integrations.models import Sync, SyncRun

    sync = Sync.objects.create(name=f"{name}-{time.time()}")
    return SyncRun.objects.create(sync=sync)


# --- rate limit ---------------------------------------------------------------------------------


def rate_precision(rate, workers, seconds, redis_url):
    """Rows/s actually paced by `workers` limiters (separate Redis clients) on one bucket."""
    import redis

    from integrations import ratelimit

    name = f"bench:{rate}:{workers}"
    ratelimit.reset(name, redis_url)
    stamps, lock = [], threading.Lock()
    deadline = time.monotonic() + seconds

    def take():
        limiter = ratelimit.RedisLimiter(
            ratelimit.KEY_PREFIX + name, rate, redis.Redis.from_url(redis_url)
        )
        while time.monotonic() < deadline:
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(workers * 4)]  # 4 sender threads each
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    # The worst one-second window shows bursts an average would hide.
    worst = max(sum(1 for s in stamps if w <= s < w + 1) for w in stamps if w + 1 <= stamps[-1])
    return achieved, worst


# --- main ---------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10k items only, shorter rate checks")
    parser.add_argument("--only", default="engine,ratelimit")
    parser.add_argument("--engine-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int)
    parser.add_argument("--directus")
    parser.add_argument("--sink")
    args = parser.parse_args()
    if args.engine_child:
        return engine_child(args)

    database_url = os.environ.get("DATABASE_URL", "")
    db_dir = tempfile.mkdtemp(prefix="kiln-bench-main-")
    setup_django(database_url or f"sqlite:///{db_dir}/bench.sqlite3")
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    only = set(args.only.split(","))
    print(
        f"Kiln benchmark — {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, database {connection.vendor}"
    )
    print(
        f"Engine: concurrency {CONCURRENCY}, page size 200, rate limit off, template of 5 fields.\n"
    )

    if "engine" in only:
        with fake("sink") as sink_url:
            sizes = [10_000] if args.quick else [10_000, 100_000]
            engine = {n: run_engine(n, database_url, sink_url) for n in sizes}
            for n, r in engine.items():
                print(
                    f"engine   {n:>7,} items: {r['rows_per_s']:>7,.0f} rows/s  ({r['elapsed']:.1f} s, status {r['status']}, sink got {r['received']:,}), peak RSS {r['peak_mib']:.0f} MiB"
                )
            if len(engine) > 1:
                print(
                    f"memory growth 10k -> 100k: {engine[100_000]['peak_mib'] - engine[10_000]['peak_mib']:+.1f} MiB"
                )
            ceil = {n: ceiling(sink_url, n) for n in sizes}
            for n, r in ceil.items():
                print(
                    f"ceiling  {n:>7,} rows : {r:>7,.0f} req/s  (same client stack and concurrency, prebuilt payloads, nothing recorded)"
                )
            fair = fair_baseline(sink_url, 5_000)
            print(
                f"baseline   5,000 rows : {fair:>7,.0f} rows/s  (one reused client, one row at a time, one result saved per request)"
            )
            naive = naive_baseline(sink_url, 1_000)
            print(f"naive      1,000 rows : {naive:>7,.0f} rows/s  (a new client per row)")
            top = max(sizes)
            print(
                f"\nengine at {top:,}: {engine[top]['rows_per_s'] / ceil[top]:.0%} of the ceiling, {engine[top]['rows_per_s'] / fair:.1f}x the fair baseline"
            )
        with fake("sink", "--delay", "0.02") as slow_sink:
            r = run_engine(5_000, database_url, slow_sink)
            allowed = CONCURRENCY / 0.02
            slow_ceiling = ceiling(slow_sink, 5_000)
            print(
                f"engine with a 20 ms sink, 5,000 items: {r['rows_per_s']:,.0f} rows/s = {r['rows_per_s'] / allowed:.0%} of the {allowed:,.0f}/s concurrency {CONCURRENCY} allows in theory"
            )
            print(
                f"ceiling with the 20 ms sink: {slow_ceiling:,.0f} req/s (engine = {r['rows_per_s'] / slow_ceiling:.0%} of it)"
            )

    if "ratelimit" in only:
        from django.conf import settings

        redis_url = settings.KILN_RATE_LIMIT_REDIS_URL or "redis://127.0.0.1:6379/15"
        seconds = 5 if args.quick else 10
        print(f"\nrate limit (Redis token bucket, {seconds} s each, 4 sender threads per worker):")
        for rate in (10, 200):
            for workers in (1, 2):
                achieved, worst = rate_precision(rate, workers, seconds, redis_url)
                print(
                    f"  {rate:>3}/s, {workers} worker(s): {achieved:7.2f}/s ({achieved / rate - 1:+.1%}), busiest second {worst}"
                )


if __name__ == "__main__":
    main()
