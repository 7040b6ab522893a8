"""manage.py run_sync NAME [--dry-run] [--wait]: start a sync like the button does."""

import time

from django.core.management.base import BaseCommand, CommandError

from integrations.models import Sync, SyncRun
from integrations.runs import sync as engine


class Command(BaseCommand):
    help = "Start a run of the sync NAME; with --wait, work it in this process and report."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--dry-run", action="store_true", help="Render and record, send nothing."
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Work the run here, slice by slice, instead of leaving it to a Celery worker.",
        )

    def handle(self, name, dry_run=False, wait=False, **options):
        try:
            sync = Sync.objects.select_related("destination", "saved_query", "template").get(
                name=name
            )
        except Sync.DoesNotExist:
            raise CommandError(f'No sync is named "{name}".') from None
        try:
            run = engine.start_run(sync, trigger=SyncRun.Trigger.COMMAND, dry_run=dry_run)
        except engine.SyncError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Run #{run.pk} of {sync.name} queued ({run.expected_total or 0} rows expected)."
        )
        if not wait:
            return
        # A queued slice task may race us for the run; the conditional claim lets only one work it.
        worker_id = f"command:{run.pk}"
        while True:
            more = engine.execute_slice(run.pk, worker_id=worker_id, max_seconds=50)
            run.refresh_from_db()
            self.stdout.write(
                f"  {run.done} of {run.expected_total or '?'} rows: {run.sent} sent, {run.skipped} skipped, {run.failed} failed"
            )
            if not run.is_active:
                break
            if not more:
                time.sleep(1)  # a worker holds it: watch it instead
        self.stdout.write(
            f"Run #{run.pk} {run.get_status_display()}."
            + (f" {run.last_error}" if run.last_error else "")
        )
        if run.status in (SyncRun.Status.FAILED, SyncRun.Status.PARTLY_FAILED):
            raise CommandError(f"Run #{run.pk} {run.get_status_display()}.")
