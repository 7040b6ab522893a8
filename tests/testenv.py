"""Loaded with -p before Django is set up: the environment every test run starts from.

The keys are fixed test values that protect nothing; the variables can still be overridden
from outside (CI sets DATABASE_URL and CELERY_BROKER_URL to real PostgreSQL and Redis).
"""

import os
import tempfile

TEST_KEY = "P6NlQVHnqIrfry7iefUHF0_9BT7UmBOH83y16LLIYss="
OTHER_TEST_KEY = "3oJsV1Rst9h0-9cbL22y-AJxRV4XjVtqbtbVsMu4JrQ="

os.environ.setdefault("KILN_ENCRYPTION_KEYS", TEST_KEY)
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("KILN_MANIFEST_STATIC", "false")
os.environ.setdefault("KILN_ALLOW_PRIVATE_NETWORKS", "true")
# Each run gets its own var/ (embedded broker, cache, SQLite) so runs never share state.
os.environ.setdefault("KILN_VAR_DIR", tempfile.mkdtemp(prefix="kiln-test-var-"))
