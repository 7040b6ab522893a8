"""Live tests run against a real Directus: one already answering, or one started by the harness.

KILN_LIVE_DIRECTUS_URL (default http://127.0.0.1:8055) is used as is when its /server/ping
answers "pong"; otherwise harness/directus/up.sh starts a fresh seeded instance on that port
and down.sh stops it at the end of the session. The first up.sh installs Directus from the npm
registry into a cache outside the tree (KILN_HARNESS_CACHE); that takes minutes, later runs
reuse it. Only a missing npm (with nothing installed yet) skips; any other failure to install
or start is an error, so a broken harness is never hidden.
"""

import json
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = REPO_ROOT / "harness" / "directus"
# up.sh runs install.sh first; a cold install (Node + Directus + native builds) takes minutes.
UP_TIMEOUT = 1800
LIVE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class LiveDirectus:
    url: str
    admin_token: str
    read_token: str


def pytest_collection_modifyitems(config, items):
    # This hook sees every collected item, not only this directory's.
    for item in items:
        if LIVE_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.live)


def _answers_pong(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server/ping", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"pong"
    except OSError:
        return False


def _skip_reason() -> str | None:
    # up.sh installs Node 22 and Directus with npm unless the cache already holds them.
    if shutil.which("npm") is not None:
        return None
    check = subprocess.run(
        ["bash", str(HARNESS_DIR / "install.sh"), "--check"], capture_output=True, timeout=60
    )
    if check.returncode == 0:
        return None
    return (
        "npm is not on PATH to install Directus with (harness/directus/install.sh), and the "
        "harness cache has no install (or start the docker compose `directus` profile: "
        "harness/directus/README.md)"
    )


def _harness_directus(url, admin, reader, extra_env=None):
    """Yield a LiveDirectus at `url`: the one answering there, else one up.sh starts (stopped
    by down.sh when the session ends). `extra_env` goes to up.sh (server limits, SEED)."""
    if _answers_pong(url):
        yield LiveDirectus(url, admin, reader)
        return

    reason = _skip_reason()
    if reason:
        print(f"\nlive Directus tests skipped: {reason}")
        pytest.skip(reason)
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        pytest.fail(
            f"{url} does not answer /server/ping and the harness only starts loopback instances"
        )
    env = {
        **os.environ,
        **(extra_env or {}),
        "DIRECTUS_PORT": str(parts.port or 8055),
        "ADMIN_TOKEN": admin,
        "READ_TOKEN": reader,
    }
    started = subprocess.run(
        ["bash", str(HARNESS_DIR / "up.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT,
    )
    if started.returncode != 0:
        pytest.fail(
            f"up.sh failed (exit {started.returncode}); last lines:\n{started.stderr[-3000:]}",
            pytrace=False,
        )
    info = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    try:
        yield LiveDirectus(
            info.get("DIRECTUS_URL", url),
            info.get("DIRECTUS_ADMIN_TOKEN", admin),
            info.get("DIRECTUS_READ_TOKEN", reader),
        )
    finally:
        subprocess.run(
            ["bash", str(HARNESS_DIR / "down.sh")], env=env, capture_output=True, timeout=60
        )


def _instance(url_variable, default_url, extra_env=None):
    """The Directus at $url_variable (else default_url), started by the harness if need be."""
    url = os.environ.get(url_variable, default_url).rstrip("/")
    admin = os.environ.get("KILN_LIVE_DIRECTUS_ADMIN_TOKEN", "harness-admin-token")
    reader = os.environ.get("KILN_LIVE_DIRECTUS_READ_TOKEN", "harness-read-token")
    yield from _harness_directus(url, admin, reader, extra_env)


@pytest.fixture(scope="session")
def live_directus():
    yield from _instance("KILN_LIVE_DIRECTUS_URL", "http://127.0.0.1:8055")


# The server limits real deployments set. MAX_BATCH_MUTATION=50 refuses the seed's 250-row
# POSTs, so this instance starts without rows (SEED=0: schema and the reader user only; tests
# create their own). QUERY_LIMIT_DEFAULT=20 (below the mutation limit) is what lets a batch
# Directus accepts show the readback cut that QUERY_LIMIT_DEFAULT=100 gives a 150-row PATCH on
# a server without MAX_BATCH_MUTATION.
LIMITED_ENV = {
    "QUERY_LIMIT_MAX": "500",
    "QUERY_LIMIT_DEFAULT": "20",
    "MAX_BATCH_MUTATION": "50",
    "SEED": "0",
}


@pytest.fixture(scope="session")
def live_directus_limited():
    """A second Directus with server limits (LIMITED_ENV), on KILN_LIVE_DIRECTUS_LIMITED_URL."""
    for live in _instance("KILN_LIVE_DIRECTUS_LIMITED_URL", "http://127.0.0.1:8065", LIMITED_ENV):
        _require_limits(live)
        yield live


def _require_limits(live):
    """An instance already answering at the URL must have the limits the tests rely on."""
    request = urllib.request.Request(
        f"{live.url}/server/info", headers={"Authorization": f"Bearer {live.admin_token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        limits = json.load(response)["data"].get("queryLimit")
    wanted = {
        "default": int(LIMITED_ENV["QUERY_LIMIT_DEFAULT"]),
        "max": int(LIMITED_ENV["QUERY_LIMIT_MAX"]),
    }
    if limits != wanted:
        pytest.fail(
            f"{live.url} reports queryLimit {limits}, not {wanted}: start it with "
            f"{' '.join(f'{k}={v}' for k, v in LIMITED_ENV.items())} harness/directus/up.sh",
            pytrace=False,
        )


# Directus's rate limiter as customers turn it on: 20 requests a second per client address.
RATE_LIMITED_ENV = {
    "RATE_LIMITER_ENABLED": "true",
    "RATE_LIMITER_POINTS": "20",
    "RATE_LIMITER_DURATION": "1",
    "SEED": "0",
}


@pytest.fixture(scope="session")
def live_directus_rate_limited():
    """A third Directus with the rate limiter on, on KILN_LIVE_DIRECTUS_RATE_LIMITED_URL."""
    yield from _instance(
        "KILN_LIVE_DIRECTUS_RATE_LIMITED_URL", "http://127.0.0.1:8075", RATE_LIMITED_ENV
    )
