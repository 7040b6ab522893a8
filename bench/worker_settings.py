"""Settings for the benchmark's Celery workers: production leases, slices and resume interval.

Only the resume job is scheduled, every 10 s as in console/celery.py, so the kill -9 figure is
what production timings give (lease 20 s), not the short ones of tests/integrations/.
"""

from console.settings import *  # noqa: F403

CELERY_BEAT_SCHEDULE = {
    "resume-stale-runs": {"task": "integrations.tasks.resume_stale_runs", "schedule": 10.0},
}
