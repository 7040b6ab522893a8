"""Slow clients and slow servers against the production web server: /login/ latency under load.

    .venv/bin/python bench/slowclients.py [--seconds 30] [--trickle 50] [--tests 3]
                                          [--configs old,gthread,new] [--sqlite]

Starts gunicorn exactly as the Dockerfile's CMD does (the compose `web` command must be the
same; the bench says so if not), on a loopback port, against a fresh PostgreSQL database
`kiln_bench_slow` at postgres://postgres@127.0.0.1:5432 (created, migrated and dropped;
`--sqlite` for a SQLite file instead). Then, for each configuration in turn:

- 50 connections POST to a real inbound route `/in/<route>/`, each declaring a 100 kB body
  and sending one byte a second (reconnecting when the server closes on them);
- 3 signed-in admins click "Test connection" on a connection whose server accepts the TCP
  connection and never answers (each waits KILN_OUTBOUND_TIMEOUT, then clicks again);
- one client GETs /login/ back to back for --seconds and the latency p50/p95/p99 is printed.

`old` is the command the image had before (3 sync workers), `gthread` a threaded alternative,
`new` the Dockerfile's command. All run in the same invocation, so their ratios survive a
noisy machine.
"""

import argparse
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
PG_DB = "kiln_bench_slow"
PASSWORD = "bench-slow-clients-pw-1"
KEY = "P6NlQVHnqIrfry7iefUHF0_9BT7UmBOH83y16LLIYss="
DECLARED_BODY = 100_000

OLD = "gunicorn console.wsgi --bind 0.0.0.0:8000 --workers 3 --access-logfile -"
GTHREAD = (
    "gunicorn console.wsgi --bind 0.0.0.0:8000 --workers 3 --worker-class gthread "
    "--threads 32 --access-logfile -"
)


def dockerfile_command() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^CMD (\[.*\])\s*$", text, re.M)
    return json.loads(match[1])


def compose_command() -> list[str] | None:
    text = (ROOT / "docker-compose.yml").read_text()
    match = re.search(r"exec (gunicorn [^\n]*)", text)
    return shlex.split(match[1]) if match else None


def on_port(command: list[str], port: int) -> list[str]:
    """The command with its --bind moved to loopback (and the venv's gunicorn)."""
    args = [a.replace("0.0.0.0:8000", f"127.0.0.1:{port}") for a in command]
    assert args[0] == "gunicorn", args
    return [sys.executable, "-m", "gunicorn", *args[1:]]


# -- the database and what the bench needs in it --------------------------------------------------


def prepare_database(use_sqlite: bool, var_dir: str) -> str:
    if use_sqlite:
        return f"sqlite:///{var_dir}/bench.sqlite3"
    import psycopg

    with psycopg.connect(
        PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True
    ) as c:
        c.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {PG_DB}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DB


def drop_database(use_sqlite: bool):
    if use_sqlite:
        return
    import psycopg

    with psycopg.connect(
        PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True
    ) as c:
        c.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


def seed(slow_url: str) -> dict:
    """Migrate; an admin, a connection to the silent server, a write-back sync and its route."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from console.models import User
    from integrations.models import DirectusConnection, InboundRoute, Secret, Sync

    User.objects.create_user("admin", password=PASSWORD, role=User.Role.ADMIN)
    connection = DirectusConnection.objects.create(
        name="silent", base_url=slow_url, token=Secret.seal("bench-token-1234")
    )
    sync = Sync.objects.create(
        name="leads back",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
    )
    route, secret = InboundRoute.open(sync)
    return {"connection": connection.pk, "route": route.slug, "secret": secret}


class SilentServer:
    """Accepts TCP connections and never answers (a Directus that hangs)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


# -- load --------------------------------------------------------------------------------------


def trickler(port, seed_data, stop: threading.Event):
    head = (
        f"POST /in/{seed_data['route']}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Kiln-Secret: {seed_data['secret']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {DECLARED_BODY}\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(head + b"[")
                while not stop.wait(1.0):
                    s.sendall(b" ")
        except OSError:
            stop.wait(0.2)  # closed on us (timeout, 408): come back, as an attacker would


def http(port, method, path, headers=None, body=b"", timeout=60):
    """(status, headers dict, body, seconds) over a fresh connection."""
    import http.client

    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": "127.0.0.1", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        return (
            response.status,
            response.getheader("Set-Cookie") or "",
            data,
            time.monotonic() - started,
        )
    finally:
        conn.close()


def cookies(header: str) -> dict:
    return dict(re.findall(r"(csrftoken|sessionid)=([^;]+)", header))


def sign_in(port) -> dict:
    _, set_cookie, page, _ = http(port, "GET", "/login/")
    jar = cookies(set_cookie)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1].decode()
    body = urllib.parse.urlencode(
        {"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token}
    ).encode()
    status, set_cookie, _, _ = http(
        port,
        "POST",
        "/login/",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={jar['csrftoken']}",
        },
        body,
    )
    jar.update(cookies(set_cookie))
    assert status == 302 and "sessionid" in jar, f"sign-in failed: {status}"
    return jar


def tester(port, seed_data, jar, stop: threading.Event, outcomes: list):
    headers = {
        "Cookie": f"csrftoken={jar['csrftoken']}; sessionid={jar['sessionid']}",
        "X-CSRFToken": jar["csrftoken"],
    }
    while not stop.is_set():
        try:
            status, _, _, seconds = http(
                port, "POST", f"/connections/{seed_data['connection']}/test/", headers
            )
            outcomes.append((status, seconds))
        except OSError as exc:
            outcomes.append((type(exc).__name__, 0))
            stop.wait(0.5)


def measure_login(port, seconds) -> list[float]:
    latencies, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            status, _, _, took = http(port, "GET", "/login/", timeout=60)
            latencies.append(took if status == 200 else 60.0)
        except OSError:
            latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    return latencies


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run_config(name, command, env, seed_data, args) -> dict:
    port = free_port()
    log = open(Path(env["KILN_VAR_DIR"]) / f"gunicorn-{name}.log", "w")
    server = subprocess.Popen(
        on_port(command, port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_up(port, server)
        baseline = statistics.median(measure_login(port, 2))
        stop = threading.Event()
        jars = [sign_in(port) for _ in range(args.tests)]
        outcomes: list = []
        threads = [
            threading.Thread(target=trickler, args=(port, seed_data, stop), daemon=True)
            for _ in range(args.trickle)
        ] + [
            threading.Thread(
                target=tester, args=(port, seed_data, jar, stop, outcomes), daemon=True
            )
            for jar in jars
        ]
        for thread in threads:
            thread.start()
        time.sleep(3)  # every trickler connected and every test hanging
        latencies = measure_login(port, args.seconds)
        stop.set()
        return {
            "name": name,
            "command": " ".join(command),
            "idle_p50": baseline,
            "n": len(latencies),
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies),
            "tests": [o for o in outcomes],
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port, server, seconds=30):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}; see its log")
        try:
            if http(port, "GET", "/login/", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /login/ in time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--trickle", type=int, default=50)
    parser.add_argument("--tests", type=int, default=3)
    parser.add_argument("--configs", default="old,gthread,new")
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()

    new = dockerfile_command()
    compose = compose_command()
    if compose != new:
        print(f"WARNING: compose runs {compose}, the Dockerfile {new}; measuring the Dockerfile's")
    commands = {"old": shlex.split(OLD), "gthread": shlex.split(GTHREAD), "new": new}

    var_dir = tempfile.mkdtemp(prefix="kiln-bench-slow-")
    silent = SilentServer()
    database_url = prepare_database(args.sqlite, var_dir)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "KILN_ENCRYPTION_KEYS": KEY,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "KILN_MANIFEST_STATIC": "false",
        "KILN_ALLOW_PRIVATE_NETWORKS": "true",
        "KILN_VAR_DIR": var_dir,
        "CELERY_BROKER_URL": "filesystem://",
        "REDIS_URL": "",
    }
    os.environ.update(env)
    try:
        seed_data = seed(f"http://127.0.0.1:{silent.port}")
        timeout = os.environ.get("KILN_OUTBOUND_TIMEOUT", "15")
        print(
            f"{args.trickle} connections trickling 1 byte/s to /in/<route>/, {args.tests} "
            f'"Test connection" clicks on a server that never answers ({timeout} s timeout '
            f"each), /login/ GET back to back for {args.seconds:.0f} s; "
            f"{'SQLite' if args.sqlite else 'PostgreSQL'}; {os.cpu_count()} cores\n"
        )
        results = []
        for name in args.configs.split(","):
            result = run_config(name, commands[name], env, seed_data, args)
            results.append(result)
            tests = result["tests"]
            print(
                f"{name:8} /login/ p50 {result['p50']:7.3f} s  p95 {result['p95']:7.3f} s  "
                f"p99 {result['p99']:7.3f} s  max {result['max']:7.3f} s  ({result['n']} GETs; "
                f"idle p50 {result['idle_p50'] * 1000:.0f} ms; {len(tests)} tests answered)\n"
                f"         {result['command']}",
                flush=True,
            )
        by_name = {r["name"]: r for r in results}
        if "old" in by_name and "new" in by_name:
            old, new_ = by_name["old"]["p95"], by_name["new"]["p95"]
            print(
                f"\np95 old {old:.3f} s -> new {new_:.3f} s ({old / max(new_, 1e-6):.0f}x); "
                f"new under 1 s: {'yes' if new_ < 1 else 'NO'}"
            )
    finally:
        drop_database(args.sqlite)


if __name__ == "__main__":
    main()
