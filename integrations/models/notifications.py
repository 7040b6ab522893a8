"""Where failures are told (email addresses, a chat webhook) and what was told, once each."""

from django.db import models
from django.utils import timezone

from .credentials import Secret


class NotificationEvent(models.TextChoices):
    RUN_FAILED = "run_failed", "a run failed"
    RUN_PARTLY_FAILED = "run_partly_failed", "a run partly failed"
    AUTH_REJECTED = "auth_rejected", "a webhook's token was rejected or its URL is gone"
    WEBHOOK_FULL = "webhook_full", "a webhook is full"
    POOL_80 = "pool_80", "a destination's webhooks are 80% used"
    POOL_95 = "pool_95", "a destination's webhooks are 95% used"
    SCHEDULE_LATE = "schedule_late", "a scheduled sync has not run when due"
    TEST = "test", "test notification"


class NotificationChannel(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Chat webhook (Slack, Teams or any JSON receiver)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Email: comma-separated addresses. Webhook: the URL is a secret (write-only, encrypted).
    recipients = models.CharField(max_length=1000, blank=True)
    url = models.OneToOneField(
        Secret, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        db_table = "kiln_notification_channel"
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def addresses(self) -> list[str]:
        return [a.strip() for a in self.recipients.split(",") if a.strip()]


class Notification(models.Model):
    """One event told to every channel; `key` is unique, so an event is never told twice."""

    key = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=20, choices=NotificationEvent.choices)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    link = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # {channel id: "sent" or the error}, filled as each channel is told.
    deliveries = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "kiln_notification"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.subject
