"""Thin Celery tasks for inbound routes, CSV write-back and relay runs: they take ids only."""

import os
import socket
import uuid

from celery import shared_task
from django.conf import settings

from integrations.runs import inbound


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _slice_seconds() -> float:
    return float(getattr(settings, "KILN_SYNC_SLICE_SECONDS", 50))


# acks_late: a redelivered message finds the run claimed (lease) or done, and does nothing.
@shared_task(acks_late=True, ignore_result=True)
def run_inbound_slice(run_id: int) -> None:
    if inbound.execute(run_id, _worker_id(), _slice_seconds()):
        run_inbound_slice.delay(run_id)


@shared_task(acks_late=True, ignore_result=True)
def process_route(route_id: int) -> None:
    run = inbound.start_route_run(route_id)
    if run is not None:
        run_inbound_slice(run.pk)


@shared_task(ignore_result=True)
def sweep_inbound() -> dict:
    return inbound.sweep()
