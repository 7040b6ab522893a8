"""Syncs, their runs and one result per row (the engine lives in sync.py)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .credentials import ClayDestination, DirectusConnection
from .queries import SavedQuery
from .templates import MappingTemplate


class Sync(models.Model):
    class Kind(models.TextChoices):
        DIRECTUS_TO_CLAY = "directus_to_clay", "Directus → Clay"
        CLAY_TO_DIRECTUS = "clay_to_directus", "Clay → Directus"
        RELAY = "relay", "Relay (Directus Flow → Clay)"

    class Mode(models.TextChoices):
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "Incremental"

    class WriteMode(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update by primary key"
        UPSERT = "upsert", "Upsert by match field"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.DIRECTUS_TO_CLAY)
    saved_query = models.ForeignKey(
        SavedQuery, null=True, blank=True, on_delete=models.PROTECT, related_name="syncs"
    )
    destination = models.ForeignKey(
        ClayDestination, null=True, blank=True, on_delete=models.PROTECT, related_name="syncs"
    )
    # No template means "send the item as is".
    template = models.ForeignKey(
        MappingTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="syncs"
    )
    row_key = models.CharField(max_length=100, default="id")
    # Shown beside each row's key on the run page (a name or SKU says more than a uuid).
    label_field = models.CharField(
        max_length=100, blank=True, help_text="Field shown beside each row's key, e.g. sku or name."
    )
    rate_limit = models.FloatField(default=10.0, help_text="Rows per second; 0 means no limit.")
    concurrency = models.PositiveSmallIntegerField(default=4)
    page_size = models.PositiveIntegerField(default=200)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.FULL)
    timestamp_field = models.CharField(max_length=100, default="date_updated")
    skip_unchanged = models.BooleanField(default=False)
    schedule = models.CharField(max_length=100, blank=True, help_text="Cron expression, UTC.")
    paused = models.BooleanField(default=False)
    # Write-back (Clay → Directus) settings.
    connection = models.ForeignKey(
        DirectusConnection, null=True, blank=True, on_delete=models.PROTECT, related_name="syncs"
    )
    collection = models.CharField(max_length=100, blank=True)
    write_mode = models.CharField(
        max_length=10, choices=WriteMode.choices, default=WriteMode.UPSERT
    )
    match_field = models.CharField(max_length=100, blank=True)
    # Upsert: "Ann@X.com" matches "ann@x.com" (Directus 12.4 refuses _ieq on strings, so the
    # lookup reads candidates with _icontains and compares folded values itself).
    match_ignore_case = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_scheduled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "kiln_sync"
        ordering = ["name"]

    def __str__(self):
        return self.name


class SyncRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        PARTLY_FAILED = "partly_failed", "partly failed"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    class Trigger(models.TextChoices):
        MANUAL = "manual", "button"
        SCHEDULE = "schedule", "schedule"
        COMMAND = "command", "command"
        RETRY = "retry", "retry of failed rows"
        INBOUND = "inbound", "inbound request"

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dry_run = models.BooleanField(default=False)
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Stored counters: the run pages never COUNT(*) the results.
    total = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    resent = models.PositiveIntegerField(default=0)
    # Rows sent after an attempt that may have reached Clay (the answer was lost): Clay may
    # hold them twice. Counted, flagged on the row, filterable.
    possibly_duplicated = models.PositiveIntegerField(default=0)
    # Rows recorded per cause (integrations/runs/causes.py), kept by the engine: the run page's
    # headline without a GROUP BY over millions of results.
    causes = models.JSONField(default=dict, blank=True)
    expected_total = models.PositiveIntegerField(null=True, blank=True)
    high_water_mark = models.CharField(max_length=40, blank=True)
    since = models.CharField(max_length=40, blank=True)
    last_error = models.TextField(blank=True)
    # Crash safety: a worker claims the run with a lease it keeps extending; the checkpoint
    # is the last row key fully recorded (keyset cursor), so a resumed run starts after it.
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    checkpoint = models.JSONField(default=dict, blank=True)
    slices = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        db_table = "kiln_sync_run"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["sync", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self):
        return f"{self.sync} run {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @classmethod
    def final_status(cls, counts: dict, *, cancelled=False, failure="") -> str:
        """The status a run ends with, from its counters and how it stopped."""
        if cancelled:
            return cls.Status.CANCELLED
        if failure:
            return cls.Status.PARTLY_FAILED if counts["sent"] else cls.Status.FAILED
        if not counts["failed"]:
            return cls.Status.SUCCEEDED
        if counts["failed"] == counts["total"]:
            return cls.Status.FAILED
        return cls.Status.PARTLY_FAILED

    @property
    def read_failed(self) -> bool:
        """Reading Directus stopped before the end: some rows were never read."""
        return bool((self.checkpoint or {}).get("read_failed"))

    @property
    def unread(self) -> int | None:
        """Rows the run was to read but never did (None: unknown, or the read completed)."""
        if not self.read_failed or self.expected_total is None:
            return None
        return max(0, self.expected_total - self.total)

    @property
    def answered(self) -> int:
        """Rows with an outcome the engine has not recorded yet (it records a page at a time)."""
        return (self.checkpoint or {}).get("answered", 0) if self.is_active else 0

    @property
    def done(self) -> int:
        return self.sent + self.skipped + self.failed + self.answered

    @property
    def waiting_for(self) -> str:
        """What a running run's sending waits for ("Redis", "the database"), or ""."""
        what = (self.checkpoint or {}).get("waiting", "") if self.is_active else ""
        return {"redis": "Redis", "database": "the database"}.get(what, what)

    @property
    def waited(self) -> str:
        """The last outage the run waited out, in words ("" if none)."""
        return (self.checkpoint or {}).get("waited", "")

    @property
    def sending(self) -> int:
        """Rows at the sender (being sent or next in line) when the run last wrote its state."""
        return (self.checkpoint or {}).get("sending", 0) if self.is_active else 0

    @property
    def progress_percent(self) -> int:
        if not self.expected_total:
            return 100 if not self.is_active else 0
        return min(100, int(100 * self.done / self.expected_total))

    @property
    def duration(self):
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class RowResult(models.Model):
    class Status(models.TextChoices):
        SENT = "sent", "sent"
        CREATED = "created", "created"
        UPDATED = "updated", "updated"
        SKIPPED = "skipped", "skipped"
        FAILED = "failed", "failed"

    # Not indexed alone: (run, id) below serves every lookup by run, in keyset order.
    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="results", db_index=False
    )
    row_key = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    payload_hash = models.CharField(max_length=64, blank=True)
    # Set when a crash made the row go out twice (at-least-once, reported honestly).
    resent = models.BooleanField(default=False)
    request_excerpt = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Sent after an attempt whose answer was lost once the body had gone (maybe delivered).
    possibly_duplicated = models.BooleanField(default=False)
    # The value of the sync's label field (name, SKU) for people; the key stays the key.
    label = models.CharField(max_length=200, blank=True)
    # Every attempt: [{"at": epoch s, "status": int|None, "ms": int, "error": code, "maybe": bool}]
    attempt_log = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "kiln_row_result"
        constraints = [
            models.UniqueConstraint(fields=["run", "row_key"], name="row_result_unique_per_run")
        ]
        indexes = [
            models.Index(fields=["run", "id"], name="row_result_run_id"),
            models.Index(fields=["run", "status", "id"], name="row_result_run_status"),
            models.Index(fields=["created_at"], name="row_result_created"),
        ]

    def __str__(self):
        return f"{self.row_key}: {self.status}"


class SyncRowState(models.Model):
    """The last payload hash a sync sent successfully per row, for "skip unchanged"."""

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="row_states")
    row_key = models.CharField(max_length=200)
    payload_hash = models.CharField(max_length=64)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "kiln_sync_row_state"
        constraints = [
            models.UniqueConstraint(fields=["sync", "row_key"], name="sync_row_state_unique")
        ]

    def __str__(self):
        return f"{self.row_key}: {self.payload_hash[:12]}"


class RunDailyStat(models.Model):
    """Rows per day per sync, kept when row results are pruned (for the success-rate chart)."""

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="daily_stats")
    day = models.DateField()
    sent = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "kiln_run_daily_stat"
        constraints = [models.UniqueConstraint(fields=["sync", "day"], name="daily_stat_unique")]

    def __str__(self):
        return f"{self.sync_id} {self.day}"
