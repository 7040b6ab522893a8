"""Asking a worker to work: the runs queue Celery tasks by their names.

integrations/tasks.py imports the runs (each task calls one domain function), so the runs do
not import it back: they look its tasks up by name in the Celery app. The names are the stable
contract with messages already queued (tests/integrations/test_tasks.py holds them);
integrations/apps.py imports the tasks at start-up so every process knows them.
"""

from celery import current_app

RUN_SYNC_SLICE = "integrations.tasks.run_sync_slice"
RUN_INBOUND_SLICE = "integrations.tasks_inbound.run_inbound_slice"
PROCESS_ROUTE = "integrations.tasks_inbound.process_route"


def task(name: str):
    return current_app.tasks[name]


def run_slice(run_id: int, *, engine: bool, on_commit: bool = False) -> None:
    """Queue the run's next slice: a Directus → Clay run to the engine, others to inbound_run."""
    slice_task = task(RUN_SYNC_SLICE if engine else RUN_INBOUND_SLICE)
    if on_commit:
        slice_task.delay_on_commit(run_id)
    else:
        slice_task.delay(run_id)


def process_route(route_id: int, *, countdown: float | None = None) -> None:
    """Queue a run over the route's waiting rows; a countdown gathers a burst into one batch."""
    if countdown is None:
        task(PROCESS_ROUTE).delay(route_id)
    else:
        task(PROCESS_ROUTE).apply_async((route_id,), countdown=countdown, retry=False)
