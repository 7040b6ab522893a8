"""Thin Celery tasks: they take ids, re-fetch, and call one domain function.

Task names are what queued messages and beat's schedule carry, so they never change: the
inbound, write-back and relay tasks keep the names they had in their own module.
"""

import logging
import os
import socket
import uuid

from celery import shared_task
from django.conf import settings
from kombu.exceptions import OperationalError as BrokerUnreachable

from integrations import notify
from integrations.runs import inbound, inbound_run, sync

logger = logging.getLogger(__name__)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _slice_seconds() -> float:
    return float(getattr(settings, "KILN_SYNC_SLICE_SECONDS", 50))


# acks_late: a message is acknowledged only after its slice; a redelivered one finds the run
# claimed or done (claims are conditional UPDATEs), so it does nothing.
@shared_task(acks_late=True, ignore_result=True)
def run_sync_slice(run_id: int) -> None:
    if not sync.is_engine_run(run_id):  # a write-back or relay run: its own slice worker
        return run_inbound_slice(run_id)
    worker_id = _worker_id()
    while sync.execute_slice(run_id, worker_id=worker_id, max_seconds=_slice_seconds()):
        try:
            run_sync_slice.delay(run_id)
            return
        except BrokerUnreachable:
            # The broker (Redis) is down: work the next slice here rather than leave the run
            # to wait for resume_stale_runs.
            logger.warning("Run %s: the broker is unreachable; next slice in this task", run_id)
    # The run ended (or another worker holds it): tell people what failed without waiting
    # for the next beat tick. A channel that fails is tried again by the beat task.
    try:
        notify.deliver_pending()
    except Exception:  # never let telling people fail the run's task
        logger.exception("Run %s: notifications could not be delivered", run_id)


@shared_task(ignore_result=True)
def deliver_notifications() -> int:
    return notify.deliver_pending()


@shared_task(ignore_result=True)
def resume_stale_runs() -> int:
    return sync.resume_stale_runs()


@shared_task(ignore_result=True)
def dispatch_scheduled_syncs() -> list[int]:
    return [run.pk for run in sync.dispatch_scheduled_syncs()]


@shared_task(ignore_result=True)
def prune_row_results() -> int:
    return sync.prune_row_results()


@shared_task
def ping() -> str:
    return "pong"



# Inbound routes, CSV write-back and relay runs.
# acks_late: a redelivered message finds the run claimed (lease) or done, and does nothing.
@shared_task(name="integrations.tasks_inbound.run_inbound_slice", acks_late=True, ignore_result=True)
def run_inbound_slice(run_id: int) -> None:
    if inbound_run.execute(run_id, _worker_id(), _slice_seconds()):
        run_inbound_slice.delay(run_id)


@shared_task(name="integrations.tasks_inbound.process_route", acks_late=True, ignore_result=True)
def process_route(route_id: int) -> None:
    run = inbound_run.start_route_run(route_id)
    if run is not None:
        run_inbound_slice(run.pk)


@shared_task(name="integrations.tasks_inbound.sweep_inbound", ignore_result=True)
def sweep_inbound() -> dict:
    return inbound.sweep()
