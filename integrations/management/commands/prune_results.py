"""manage.py prune_results [--days N]: delete old row results, keep runs and daily stats."""

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations.runs import sync as engine


class Command(BaseCommand):
    help = "Delete row results older than KILN_ROW_RESULT_RETENTION_DAYS (or --days), in batches."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None)
        parser.add_argument("--batch-size", type=int, default=20000)

    def handle(self, days=None, batch_size=20000, **options):
        days = settings.KILN_ROW_RESULT_RETENTION_DAYS if days is None else days
        deleted = engine.prune_row_results(older_than_days=days, batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted:,} row results older than {days} days.")
