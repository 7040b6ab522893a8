"""Re-encrypt stored secrets with the first key, in batches, or report what is still on old keys."""

from django.core.management.base import BaseCommand
from django.db import transaction

from integrations import crypto
from integrations.models import Secret


class Command(BaseCommand):
    help = "Re-encrypt every secret with the first KILN_ENCRYPTION_KEYS key (or --report only)."

    def add_arguments(self, parser):
        parser.add_argument("--report", action="store_true", help="Only count secrets per key.")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, report=False, batch_size=500, **options):
        ring = crypto.keyring()
        counts = dict.fromkeys(ring.ids, 0)
        for key_id in Secret.objects.values_list("key_id", flat=True):
            counts[key_id] = counts.get(key_id, 0) + 1
        old = sum(n for key_id, n in counts.items() if key_id != ring.primary_id)
        for key_id, n in counts.items():
            label = (
                "first (encrypts)"
                if key_id == ring.primary_id
                else ("configured" if key_id in ring.ids else "NOT CONFIGURED: cannot decrypt")
            )
            self.stdout.write(f"key {key_id}: {n} secret(s) — {label}")
        if report:
            if old:
                self.stdout.write(f"{old} secret(s) still on older keys: run without --report.")
            else:
                self.stdout.write("Every secret uses the first key: older keys can be removed.")
            return
        done = 0
        while True:
            # Each batch in its own transaction: an interruption loses nothing and can resume.
            with transaction.atomic():
                batch = list(
                    Secret.objects.select_for_update()
                    .exclude(key_id=ring.primary_id)
                    .order_by("pk")[:batch_size]
                )
                if not batch:
                    break
                for secret in batch:
                    secret.reencrypt()
                Secret.objects.bulk_update(batch, ["ciphertext", "key_id"])
            done += len(batch)
            self.stdout.write(f"re-encrypted {done} secret(s)…")
        self.stdout.write(
            self.style.SUCCESS(f"Done: {done} secret(s) re-encrypted with key {ring.primary_id}.")
        )
