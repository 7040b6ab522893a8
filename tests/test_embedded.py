"""The embedded default: a real Celery worker on the filesystem broker, no server at all."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CELERY = [sys.executable, "-m", "celery", "-A", "console"]
NODE = "embedded-test@localhost"


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("embedded-var")


@pytest.fixture(scope="module")
def embedded_env(var_dir):
    """Settings that pick SQLite and the filesystem broker under a fresh var/ directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "KILN_RATE_LIMIT_REDIS_URL")
    }
    env.update(
        KILN_VAR_DIR=str(var_dir),
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="console.settings",
        CELERY_TASK_ALWAYS_EAGER="false",
    )
    # kombu's filesystem transport expects its folders to exist (bin/dev creates them too).
    (var_dir / "broker" / "queue").mkdir(parents=True)
    (var_dir / "broker" / "processed").mkdir(parents=True)
    return env


@pytest.fixture(scope="module")
def worker(embedded_env, var_dir):
    """A real `celery worker` process; cwd is var_dir so the broker's control folder lands there."""
    log = var_dir / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                *CELERY,
                "worker",
                "-l",
                "info",
                "--concurrency",
                "1",
                "-n",
                NODE,
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=var_dir,
            env=embedded_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "ready." in log.read_text() or process.poll() is not None,
            timeout=60,
            what="worker start",
            log=log,
        )
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{log.read_text()}")
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition, timeout, what, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()}")


def celery(*args, env, cwd):
    return subprocess.run(
        [*CELERY, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.worker
def test_worker_answers_a_ping_over_the_filesystem_broker(worker, embedded_env, var_dir):
    assert "filesystem://" in worker.read_text()
    result = celery("inspect", "ping", "-d", NODE, "-t", "10", env=embedded_env, cwd=var_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{NODE}: OK" in result.stdout
    assert "pong" in result.stdout


@pytest.mark.worker
def test_a_task_sent_by_another_process_runs_in_the_worker(worker, embedded_env, var_dir):
    # celery.accumulate is a Celery built-in that returns its arguments: the project needs no
    # task of its own to prove that a message goes producer -> broker folder -> worker.
    result = celery("call", "celery.accumulate", "--args", "[1, 2]", env=embedded_env, cwd=var_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    task_id = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", task_id), result.stdout
    wait_for(
        lambda: f"Task celery.accumulate[{task_id}] succeeded" in worker.read_text(),
        timeout=30,
        what=f"task {task_id}",
        log=worker,
    )
    assert "(1, 2)" in worker.read_text()
