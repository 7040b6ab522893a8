"""The Celery app: configured from Django settings (CELERY_*), tasks in integrations/tasks.py."""

import os

from celery import Celery, signals
from celery.schedules import crontab

from integrations.outbound.http import RedactingFilter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("kiln")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["integrations"])

# Used unless settings define CELERY_BEAT_SCHEDULE.
DEFAULT_BEAT_SCHEDULE = {
    "dispatch-scheduled-syncs": {
        "task": "integrations.tasks.dispatch_scheduled_syncs",
        "schedule": crontab(),  # every minute, on the minute
    },
    # Leases last ~20 s: a run whose worker died resumes within about half a minute.
    "resume-stale-runs": {"task": "integrations.tasks.resume_stale_runs", "schedule": 10.0},
    # Rows that arrived while no worker was free, and relay deliveries due for a retry.
    "sweep-inbound": {"task": "integrations.tasks_inbound.sweep_inbound", "schedule": 10.0},
    # Failures told by email and chat webhook (integrations/notify.py), once each.
    "deliver-notifications": {
        "task": "integrations.tasks.deliver_notifications",
        "schedule": 30.0,
    },
    "prune-row-results": {
        "task": "integrations.tasks.prune_row_results",
        "schedule": crontab(hour=3, minute=17),
    },
}


@app.on_after_configure.connect
def _default_beat_schedule(sender, **kwargs):
    if not sender.conf.beat_schedule:
        sender.conf.beat_schedule = DEFAULT_BEAT_SCHEDULE


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_worker_logs(logger, **kwargs):
    """Celery swaps the root handlers of settings.LOGGING for its own (and gives task loggers
    theirs): without this a registered secret would print in clear in a worker's log."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
