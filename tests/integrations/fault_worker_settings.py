"""Settings for the fault suite's worker subprocesses (test_faults.py): short leases and slices,
and a switch that makes every database query fail while a file exists (the SQLite stand-in for
PostgreSQL dropping its connections)."""

import os

from django.db import OperationalError
from django.db.backends.signals import connection_created

from tests.integrations.worker_settings import *  # noqa: F403

KILN_OUTBOUND_TIMEOUT = 2

_FAULT_FILE = os.environ.get("KILN_TEST_DB_FAULT_FILE", "")


def _failing_while_the_file_exists(execute, sql, params, many, context):
    if _FAULT_FILE and os.path.exists(_FAULT_FILE):
        raise OperationalError("injected: the database went away")
    return execute(sql, params, many, context)


def _install(sender, connection, **kwargs):
    if _failing_while_the_file_exists not in connection.execute_wrappers:
        connection.execute_wrappers.append(_failing_while_the_file_exists)


connection_created.connect(_install)
