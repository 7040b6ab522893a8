"""Settings for the Celery worker subprocesses of test_worker.py: short leases and slices."""

from console.settings import *  # noqa: F403

KILN_SYNC_LEASE_SECONDS = 3
KILN_SYNC_SLICE_SECONDS = 5
CELERY_BEAT_SCHEDULE = {
    "resume-stale-runs": {"task": "integrations.tasks.resume_stale_runs", "schedule": 1.0},
}
