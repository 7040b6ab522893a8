"""Reading uuid-keyed versus integer-keyed items through the engine, on one real Directus.

    DIRECTUS_PORT=8095 SEED=0 harness/directus/up.sh        # a Directus of its own
    KILN_BENCH_DIRECTUS_URL=http://127.0.0.1:8095 .venv/bin/python bench/keys.py [--items 100000]

Two collections of N items each are created (and dropped afterwards): one keyed by an
auto-increment integer, one by uuid, with the same fields and values. Integer keys are read by
keyset (`id > last`); Directus has no range operators on uuids, so those are read by offset
pages sorted by key, each overlapping the one before (DirectusClient.iter_items). Each
measurement is a fresh child process:

- read: the engine's source (`sources.query_windows`) over the whole collection: every page
  as the engine asks for it, rows counted and dropped;
- dry run: a whole engine dry run (`execute_slice` as the Celery task calls it): read, render,
  and record one row result per item in a fresh SQLite database; nothing is sent.

Integer and uuid take turns three times and the medians are compared; each child samples its
RSS every 100 ms, so the memory profile over the read shows (start, middle, end, peak).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.run import setup_django  # noqa: E402

PAGE_SIZE = 500


def directus_url() -> str:
    return os.environ.get("KILN_BENCH_DIRECTUS_URL", "http://127.0.0.1:8095").rstrip("/")


def admin_token() -> str:
    return os.environ.get("KILN_BENCH_DIRECTUS_TOKEN", "harness-admin-token")


def admin():
    from integrations.directus.client import DirectusClient
    from integrations.outbound import http

    return DirectusClient(
        directus_url(),
        admin_token(),
        client=http.make_client(policy=http.OutboundPolicy(allow_private=True), timeout=120),
    )


def pk_field(kind):
    if kind == "integer":
        return {
            "field": "id",
            "type": "integer",
            "meta": {"hidden": True, "readonly": True},
            "schema": {"is_primary_key": True, "has_auto_increment": True},
        }
    return {
        "field": "id",
        "type": "uuid",
        "meta": {"special": ["uuid"], "hidden": True, "readonly": True},
        "schema": {"is_primary_key": True, "length": 36, "has_auto_increment": False},
    }


def create(kind, items) -> str:
    """A collection of `items` rows keyed by `kind`; returns its name."""
    from integrations.directus.client import DirectusError

    name = f"bench_{kind}_{uuid.uuid4().hex[:6]}"
    fields = [
        pk_field(kind),
        {"field": "title", "type": "string", "meta": {}, "schema": {}},
        {"field": "email", "type": "string", "meta": {}, "schema": {}},
        {"field": "views", "type": "integer", "meta": {}, "schema": {}},
    ]
    schema_call(
        "POST", "/collections", {"collection": name, "meta": {}, "schema": {}, "fields": fields}
    )
    with admin() as directus:
        batch = 2000
        for start in range(0, items, batch):
            rows = []
            for i in range(start, min(items, start + batch)):
                row = {"title": f"Article {i}", "email": f"author{i}@example.com", "views": i}
                if kind == "uuid":
                    row["id"] = str(uuid.UUID(int=(i * 2654435761) % (1 << 122) | 1, version=4))
                rows.append(row)
            for attempt in range(5):
                try:
                    directus.create_items(name, rows, {"fields": "id"})
                    break
                except DirectusError:
                    if attempt == 4:
                        raise
                    time.sleep(1)
    return name


def drop(name):
    schema_call("DELETE", f"/collections/{name}")


def schema_call(method, path, body=None):
    """Schema changes (the Directus client reads and writes items only)."""
    import httpx

    response = httpx.request(
        method,
        directus_url() + path,
        json=body,
        headers={"Authorization": f"Bearer {admin_token()}"},
        timeout=120,
    )
    response.raise_for_status()


# --- child: one measurement in a fresh process ---------------------------------------------


def status_kib(field) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


class RssSampler:
    def __init__(self):
        self.samples = []  # (seconds since start, KiB)
        self.started = time.perf_counter()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._done.wait(0.1):
            self.samples.append((time.perf_counter() - self.started, status_kib("VmRSS:")))

    def stop(self):
        self._done.set()
        self._thread.join()
        rss = [kib for _, kib in self.samples] or [status_kib("VmRSS:")]
        third = max(1, len(rss) // 3)
        return {
            "rss_start_mib": statistics.median(rss[:third]) / 1024,
            "rss_middle_mib": statistics.median(rss[third : 2 * third] or rss) / 1024,
            "rss_end_mib": statistics.median(rss[-third:]) / 1024,
            "rss_peak_mib": max(rss) / 1024,
        }


def child(args):
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from integrations import tasks
    from integrations.models import (
        ClayDestination,
        DirectusConnection,
        SavedQuery,
        Secret,
        Sync,
        SyncRun,
    )
    from integrations.runs import sources
    from integrations.runs import sync as engine

    connection = DirectusConnection.objects.create(
        name="bench", base_url=directus_url(), token=Secret.seal(admin_token())
    )
    query = SavedQuery.objects.create(
        connection=connection, name="all", collection=args.collection, query_string="fields=*"
    )
    destination = ClayDestination.objects.create(
        name="nowhere", webhook_url=Secret.seal("http://127.0.0.1:9/never-called")
    )
    sync = Sync.objects.create(
        name="bench",
        saved_query=query,
        destination=destination,
        page_size=PAGE_SIZE,
        rate_limit=0,
    )
    sampler = RssSampler()
    started = time.perf_counter()
    if args.mode == "read":
        rows = 0
        with connection.client() as directus:
            for window in sources.query_windows(directus, sync):
                rows += len(window.items)
    else:
        tasks.run_sync_slice.delay_on_commit = lambda run_id: None  # this process works it
        run = engine.start_run(sync, dry_run=True)
        while engine.execute_slice(run.pk, worker_id="bench", max_seconds=600):
            pass
        run = SyncRun.objects.get(pk=run.pk)
        assert run.status == "succeeded", (run.status, run.last_error)
        rows = run.total
    elapsed = time.perf_counter() - started
    memory = sampler.stop()
    print(json.dumps({"rows": rows, "elapsed": elapsed, "rows_per_s": rows / elapsed, **memory}))


def measure(mode, collection) -> dict:
    with tempfile.TemporaryDirectory(prefix="kiln-bench-keys-") as var:
        answer = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--collection", collection],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "KILN_VAR_DIR": var},  # a fresh SQLite database each time
        )
    if answer.returncode != 0:
        raise SystemExit(f"child failed:\n{answer.stderr[-3000:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["read", "dryrun"])
    parser.add_argument("--collection")
    args = parser.parse_args(argv)
    if args.child:
        args.mode = args.child
        return child(args)

    setup_django()
    print(f"Directus {directus_url()}, {args.items:,} items per collection, pages of {PAGE_SIZE}")
    made = time.perf_counter()
    collections = {kind: create(kind, args.items) for kind in ("integer", "uuid")}
    print(f"created both collections in {time.perf_counter() - made:.0f} s")
    try:
        for mode in ("read", "dryrun"):
            figures = {"integer": [], "uuid": []}
            for round_ in range(1, args.rounds + 1):
                for kind in ("integer", "uuid"):
                    result = measure(mode, collections[kind])
                    assert result["rows"] == args.items, (kind, result)
                    figures[kind].append(result)
                    print(
                        f"  {mode:6} round {round_} {kind:7}: {result['rows_per_s']:8,.0f} rows/s"
                        f"  RSS start/middle/end/peak {result['rss_start_mib']:.0f}/"
                        f"{result['rss_middle_mib']:.0f}/{result['rss_end_mib']:.0f}/"
                        f"{result['rss_peak_mib']:.0f} MiB"
                    )
            medians = {
                kind: statistics.median(r["rows_per_s"] for r in runs)
                for kind, runs in figures.items()
            }
            ratio = medians["uuid"] / medians["integer"]
            print(
                f"{mode}: integer {medians['integer']:,.0f} rows/s, uuid {medians['uuid']:,.0f} "
                f"rows/s: uuid at {ratio:.0%} of integer (target >= 50%)"
            )
    finally:
        for name in collections.values():
            drop(name)


if __name__ == "__main__":
    main()
