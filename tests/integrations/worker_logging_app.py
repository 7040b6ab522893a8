"""The Celery app of test_worker_logs.py: once ready, the worker logs and prints a secret."""

import logging
import os

from celery import signals

from console.celery import app
from integrations.outbound import http

__all__ = ["app"]
SECRET = os.environ.get("KILN_TEST_LOG_SECRET", "")


@signals.worker_ready.connect
def _log_a_secret(**kwargs):
    http.register_secret(SECRET)
    logger = logging.getLogger("kiln.test")
    logger.warning("posting to %s", SECRET)
    print(f"printed {SECRET}")  # the worker redirects stdout to a logger
    app.log.get_default_logger("celery.task").warning("task logger %s", SECRET)
    logger.warning("KILN-WORKER-LOG-TEST-DONE")
