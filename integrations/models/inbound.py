"""Rows coming in: inbound routes and their receipts, CSV uploads, and one row's round trip."""

import functools
import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from .syncs import Sync, SyncRun

# During a rotation the previous secret keeps working this long, unless revoked sooner.
ROTATION_GRACE = timedelta(days=7)


def hash_secret(value: str) -> str:
    # The secrets are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(value.encode()).hexdigest()


class InboundRoute(models.Model):
    """A public URL that takes rows for one sync (Clay → Directus) or Flow events (relay)."""

    SECRET_HEADER = "X-Kiln-Secret"

    sync = models.OneToOneField(Sync, on_delete=models.CASCADE, related_name="inbound_route")
    slug = models.SlugField(max_length=40, unique=True)
    secret_hash = models.CharField(max_length=64)
    previous_secret_hash = models.CharField(max_length=64, blank=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    secret_set_at = models.DateTimeField(default=timezone.now)
    # Relay: read the whole item from Directus, so an update sends the full row.
    fetch_full_item = models.BooleanField(default=True)
    # Relay: also relay events caused by Kiln's own write-back (off: they would loop in Clay).
    relay_own_writes = models.BooleanField(default=False)
    # Write-back: [{"column": "Full Name", "field": "full_name", "cast": ""}], so Clay can send
    # its own column names; empty means the rows already use Directus field names.
    mapping = models.JSONField(default=list, blank=True)
    # Set once "Install relay in Directus" created the Flow, so a re-install updates it.
    flow_id = models.CharField(max_length=64, blank=True)
    flow_operation_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "kiln_inbound_route"
        ordering = ["slug"]

    def __str__(self):
        return f"{self.sync} ({self.slug})"

    @classmethod
    def open(cls, sync, created_by=None) -> tuple["InboundRoute", str]:
        """A new route with a fresh secret; the secret is returned once and never stored."""
        secret = secrets.token_urlsafe(32)
        route = cls.objects.create(
            sync=sync,
            slug=secrets.token_urlsafe(12).replace("_", "x").replace("-", "y").lower(),
            secret_hash=hash_secret(secret),
            created_by=created_by,
        )
        return route, secret

    def rotate(self) -> str:
        """A new secret; the old one stays valid for ROTATION_GRACE (two valid at once)."""
        secret = secrets.token_urlsafe(32)
        now = timezone.now()
        self.previous_secret_hash, self.previous_valid_until = (
            self.secret_hash,
            now + ROTATION_GRACE,
        )
        self.secret_hash, self.secret_set_at = hash_secret(secret), now
        self.save(
            update_fields=[
                "secret_hash",
                "previous_secret_hash",
                "previous_valid_until",
                "secret_set_at",
            ]
        )
        return secret

    def revoke_previous(self) -> None:
        self.previous_secret_hash, self.previous_valid_until = "", None
        self.save(update_fields=["previous_secret_hash", "previous_valid_until"])

    @classmethod
    def receiving(cls, slug: str) -> "InboundRoute | None":
        """The route at slug, with what the endpoint checks and `sync_kind`; None if there is none.

        The endpoint runs this on every request. The ORM's select_related query cost 3.6 ms, of
        which the database took 0.7: building the query and the two model instances was the
        rest. This fixed statement (names from the models) and one deferred instance take 0.9.
        Other fields load when read, as with .only().
        """
        return next(iter(cls.objects.raw(_receiving_sql(), [slug])), None)

    def accepts(self, presented: str | None) -> bool:
        """Constant-time check against the current and (while valid) the previous secret."""
        digest = hash_secret(presented or "")
        current = hmac.compare_digest(digest, self.secret_hash)
        previous = hmac.compare_digest(digest, self.previous_secret_hash or "0" * 64)
        previous = (
            previous
            and self.previous_valid_until is not None
            and self.previous_valid_until > timezone.now()
        )
        return bool(presented) and (current or previous)

    @property
    def rotating(self) -> bool:
        return bool(self.previous_secret_hash) and bool(
            self.previous_valid_until and self.previous_valid_until > timezone.now()
        )

    @property
    def path(self) -> str:
        from django.urls import reverse

        return reverse("console:inbound", args=[self.slug])

    @property
    def url(self) -> str:
        return settings.KILN_PUBLIC_URL.rstrip("/") + self.path


@functools.cache
def _receiving_sql() -> str:
    """InboundRoute.receiving's statement, built once: it runs on every inbound request."""
    quote = connection.ops.quote_name
    route = {f.name: quote(f.column) for f in InboundRoute._meta.concrete_fields}
    return (
        f"SELECT r.{route['id']}, r.{route['sync']}, r.{route['secret_hash']}, "  # noqa: S608
        f"r.{route['previous_secret_hash']}, r.{route['previous_valid_until']}, "
        f"s.{quote(Sync._meta.get_field('kind').column)} AS sync_kind "
        f"FROM {quote(InboundRoute._meta.db_table)} r JOIN {quote(Sync._meta.db_table)} s "
        f"ON s.{quote(Sync._meta.pk.column)} = r.{route['sync']} WHERE r.{route['slug']} = %s"
    )


class InboundReceipt(models.Model):
    """One accepted request, stored before Kiln answers 202."""

    route = models.ForeignKey(InboundRoute, on_delete=models.CASCADE, related_name="receipts")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    size = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    remote_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        db_table = "kiln_inbound_receipt"
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"receipt {self.pk} ({self.rows} rows)"


class InboundRow(models.Model):
    """One row (or one Flow event) waiting for, or done by, a worker."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting"
        DONE = "done", "done"
        RETRYING = "retrying", "will retry"
        FAILED = "failed", "failed (kept for replay)"

    route = models.ForeignKey(InboundRoute, on_delete=models.CASCADE, related_name="rows")
    receipt = models.ForeignKey(InboundReceipt, on_delete=models.CASCADE, related_name="row_set")
    # sha256 of the row's canonical JSON: the same row sent twice is stored once.
    dedup_key = models.CharField(max_length=64)
    data = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_rows"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    kiln_row_id = models.CharField(max_length=40, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "kiln_inbound_row"
        constraints = [
            models.UniqueConstraint(
                fields=["route", "dedup_key"], name="inbound_row_once_per_route"
            )
        ]
        indexes = [
            models.Index(fields=["route", "status", "id"], name="inbound_row_route_status"),
            models.Index(fields=["run", "status", "id"], name="inbound_row_run_status"),
        ]

    def __str__(self):
        return f"inbound row {self.pk}: {self.status}"


class CsvUpload(models.Model):
    """An uploaded Clay export: kept on disk, previewed and mapped before a run writes it."""

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="csv_uploads")
    path = models.CharField(max_length=500)
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    delimiter = models.CharField(max_length=1, default=",")
    columns = models.JSONField(default=list)
    preview = models.JSONField(default=list)
    row_count = models.PositiveIntegerField(default=0)
    bad_line_count = models.PositiveIntegerField(default=0)
    bad_lines = models.JSONField(default=list)  # the first few [line, message]
    # Field mapper rows: [{"field": "email", "source_kind": "column", "source": "Email", "casts": []}]
    mapping = models.JSONField(default=list)
    run = models.OneToOneField(
        SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="csv_upload"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "kiln_csv_upload"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.original_name

    @property
    def preview_table(self) -> list[list[str]]:
        """The preview rows as cells in the file's column order.

        PostgreSQL's jsonb does not keep an object's key order (it sorts keys by length), so
        the stored row dicts cannot be shown as they come.
        """
        return [[row.get(column, "") for column in self.columns] for row in self.preview]


class RowTrace(models.Model):
    """One row's round trip: Directus item → Clay → enriched row back → written to Directus."""

    class Step(models.TextChoices):
        QUEUED = "queued", "queued"
        SENT = "sent", "sent to Clay"
        RECEIVED = "received", "enriched row received"
        WRITTEN = "written", "written to Directus"

    kiln_row_id = models.CharField(max_length=40, unique=True)
    sync = models.ForeignKey(
        Sync, null=True, blank=True, on_delete=models.SET_NULL, related_name="traces"
    )
    collection = models.CharField(max_length=100, blank=True)
    directus_key = models.CharField(max_length=200, blank=True)
    step = models.CharField(max_length=10, choices=Step.choices, default=Step.QUEUED)
    ok = models.BooleanField(default=True)
    step_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "kiln_row_trace"
        indexes = [models.Index(fields=["step", "step_at"], name="row_trace_step")]

    def __str__(self):
        return self.kiln_row_id


class RowTraceEvent(models.Model):
    trace = models.ForeignKey(RowTrace, on_delete=models.CASCADE, related_name="events")
    step = models.CharField(max_length=10, choices=RowTrace.Step.choices)
    ok = models.BooleanField(default=True)
    at = models.DateTimeField(default=timezone.now)
    detail = models.TextField(blank=True)
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "kiln_row_trace_event"
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.trace_id} {self.step}"
