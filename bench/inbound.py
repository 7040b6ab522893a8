"""The inbound endpoint on the production shape under load, next to a bare view on the same server.

    .venv/bin/python bench/inbound.py [--seconds 60] [--clients 32]

Starts gunicorn exactly as the Dockerfile's CMD does (bound to a loopback port), on PostgreSQL
(`postgres://postgres@127.0.0.1:5432/kiln_bench_inbound`, dropped and created; `--pg-url`) and
Redis (db 12, flushed) as docker-compose runs it. wrk (Debian's package) keeps `--clients`
connections busy for `--seconds`, each request one Clay row with a unique email:

1. `/bench/bare/`: a view on the same server that reads the body and answers 202, storing
   nothing (bench/inbound_urls.py), served as every console page is: the issue's baseline;
2. `/in/bench-bare/`: the same view served as the endpoint is (console/asgi.py's
   InboundHandler), so the ratio to it is what storing costs and nothing else;
3. `/in/<route>/`: the real endpoint (secret check, JSON parse, receipt + row committed, the
   wake-up queued on Redis);
4. `/bench/in/<route>/`: the same view served by Django's ASGI handler, as before
   InboundHandler: the before/after of that change.

It prints accepted rows/s, latency percentiles, the ratios, and checks that every row answered
202 is stored exactly once (rows still in flight when wrk stops may be stored without wrk
counting their 202: at most one per connection).
"""

import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REDIS_URL = "redis://127.0.0.1:6379/12"

WRK_SCRIPT = r"""
counter, thread_id, accepted = 0, 0, 0  -- globals: thread:get/set reach only those
local threads = {}
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end
function request()
  counter = counter + 1
  local body = '{"email": "' .. run_label .. '-t' .. thread_id .. '-' .. counter .. '@bench.example", "score": 7}'
  return wrk.format("POST", nil, nil, body)
end
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("accepted") end
  io.write(string.format("ACCEPTED %d\n", total))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("P%d %.3f\n", p, latency:percentile(p) / 1000))
  end
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_command(port) -> list[str]:
    """The Dockerfile's CMD, bound to a loopback port instead of 0.0.0.0:8000."""
    text = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])", text, re.M).group(1))
    if "--bind" in cmd:
        cmd[cmd.index("--bind") + 1] = f"127.0.0.1:{port}"
    else:
        cmd += ["--bind", f"127.0.0.1:{port}"]
    cmd = [a for a in cmd if a not in ("--access-logfile", "-")]
    return [sys.executable, "-m", *cmd]


def psql(url, sql):
    subprocess.run(["psql", url, "-q", "-c", sql], check=True, capture_output=True)


def wrk(url, clients, seconds, headers) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        # Each run's rows are its own: a row another run sent would be a duplicate, not stored.
        label = re.sub(r"[^a-z0-9]+", "-", url.split("//", 1)[-1].split("/", 1)[-1])
        script.write(f'run_label = "{label}"\n' + WRK_SCRIPT)
    command = [
        "wrk",
        f"-t{min(2, clients)}",
        f"-c{clients}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        script.name,
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    answer = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    if answer.returncode != 0:
        raise SystemExit(f"wrk failed: {answer.stderr[-2000:]}")
    out = answer.stdout
    os.unlink(script.name)
    figures = dict(re.findall(r"^(ACCEPTED|P\d+) ([\d.]+)$", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "requests": total,
        "accepted": int(figures["ACCEPTED"]),
        "per_s": int(figures["ACCEPTED"]) / seconds,
        "p50_ms": float(figures["P50"]),
        "p90_ms": float(figures["P90"]),
        "p99_ms": float(figures["P99"]),
        "errors": re.findall(r"Socket errors: .*|Non-2xx.*", out),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "KILN_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/kiln_bench_inbound"
        ),
    )
    args = parser.parse_args(argv)
    admin_url, name = args.pg_url.rsplit("/", 1)
    psql(f"{admin_url}/postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(f"{admin_url}/postgres", f"CREATE DATABASE {name}")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.inbound_settings",
        "DATABASE_URL": args.pg_url,
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
        "KILN_ENCRYPTION_KEYS": "P6NlQVHnqIrfry7iefUHF0_9BT7UmBOH83y16LLIYss=",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "KILN_MANIFEST_STATIC": "false",
        "LOG_LEVEL": "WARNING",
        "DATABASE_POOL": "true",  # as .env.example sets it for docker-compose
    }
    os.environ.update(env)
    import django
    import redis

    django.setup()
    from django.core.management import call_command

    from integrations.models import DirectusConnection, InboundRoute, InboundRow, Secret, Sync

    redis.Redis.from_url(REDIS_URL).flushdb()
    call_command("migrate", verbosity=0)
    connection = DirectusConnection.objects.create(
        name="bench", base_url="http://127.0.0.1:9", token=Secret.seal("bench-token-0000")
    )
    sync = Sync.objects.create(
        name="bench inbound",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
    )
    route, secret = InboundRoute.open(sync)
    port = free_port()
    command = gunicorn_command(port)
    print(f"gunicorn: {shlex.join(command[2:])}; {args.clients} clients, {args.seconds} s each")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        headers = {"Content-Type": "application/json", InboundRoute.SECRET_HEADER: secret}
        bare = wrk(f"{base}/bench/bare/", args.clients, args.seconds, headers)
        bare_in = wrk(f"{base}/in/bench-bare/", args.clients, args.seconds, headers)
        real = wrk(f"{base}/in/{route.slug}/", args.clients, args.seconds, headers)
        before = wrk(f"{base}/bench/in/{route.slug}/", args.clients, args.seconds, headers)
    finally:
        server.terminate()
        server.wait(30)
    answered = real["accepted"] + before["accepted"]
    stored = InboundRow.objects.filter(route=route).count()
    unique = InboundRow.objects.filter(route=route).values("dedup_key").distinct().count()
    for label, figures in (
        ("bare 202 view", bare),
        ("bare view, /in/", bare_in),
        ("inbound endpoint", real),
        ("same, Django ASGI", before),
    ):
        print(
            f"{label:17}: {figures['per_s']:7,.0f} accepted/s, p50 {figures['p50_ms']:.1f} ms, "
            f"p90 {figures['p90_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms "
            f"({figures['requests']:,} requests{'; ' + '; '.join(figures['errors']) if figures['errors'] else ''})"
        )
    print(
        f"inbound / bare: {real['per_s'] / bare['per_s']:.0%} (target >= 50%); "
        f"inbound / bare served as /in/: {real['per_s'] / bare_in['per_s']:.0%}; "
        f"p99 {real['p99_ms']:.1f} ms (target < 100 ms)"
    )
    print(
        f"stored {stored:,} rows ({unique:,} distinct) for {answered:,} answered 202: "
        + (
            "every 202 row stored exactly once"
            if unique == stored and answered <= stored <= answered + 2 * args.clients
            else "MISMATCH"
        )
    )
    django.db.connections.close_all()
    psql(f"{admin_url}/postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
