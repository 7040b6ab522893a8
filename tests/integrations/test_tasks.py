"""Task names are part of the contract with queued messages and beat: they never change."""

from console.celery import app
from integrations import tasks

# Every name a message already in a queue, or beat's schedule, may carry.
STABLE_NAMES = {
    "integrations.tasks.run_sync_slice",
    "integrations.tasks.deliver_notifications",
    "integrations.tasks.resume_stale_runs",
    "integrations.tasks.dispatch_scheduled_syncs",
    "integrations.tasks.prune_row_results",
    "integrations.tasks.ping",
    "integrations.tasks_inbound.run_inbound_slice",
    "integrations.tasks_inbound.process_route",
    "integrations.tasks_inbound.sweep_inbound",
}


def test_every_task_keeps_its_name():
    assert STABLE_NAMES <= set(app.tasks)
    assert tasks.run_inbound_slice.name == "integrations.tasks_inbound.run_inbound_slice"


def test_every_beat_entry_names_a_registered_task():
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]
