"""A real Celery worker's log hides registered secrets: Celery replaces the logging handlers
of settings.LOGGING with its own, so console/celery.py gives them the redaction filter."""

import io
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from console.celery import _redact_worker_logs
from integrations.outbound import http

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.worker
def test_a_worker_log_redacts_a_registered_secret(tmp_path):
    secret = f"https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-{uuid.uuid4()}"
    for folder in ("queue", "processed", "control"):
        (tmp_path / "broker" / folder).mkdir(parents=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "KILN_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "",
        "REDIS_URL": "",
        "KILN_RATE_LIMIT_REDIS_URL": "",
        "KILN_TEST_LOG_SECRET": secret,
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.integrations.worker_logging_app",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "KILN-WORKER-LOG-TEST-DONE" not in log_path.read_text():
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(20)
    output = log_path.read_text()
    assert "posting to [redacted]" in output
    assert "printed [redacted]" in output
    assert "task logger [redacted]" in output
    assert "pull-in-data-from-a-webhook" not in output


def test_the_signal_handler_gives_every_handler_of_a_logger_the_filter_once():
    stream = io.StringIO()
    logger = logging.getLogger(f"kiln.test.celery.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(stream))
    secret = f"s3cret-{uuid.uuid4().hex}"
    http.register_secret(secret)
    _redact_worker_logs(logger=logger)
    _redact_worker_logs(logger=logger)
    logger.warning("token %s", secret)
    assert stream.getvalue() == "token [redacted]\n"
    assert len(logger.handlers[0].filters) == 1
