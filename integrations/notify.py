"""Failures reach people: by email (Django's mail, SMTP from the environment) and by a chat
webhook (JSON that Slack and Teams incoming webhooks accept).

An event is recorded once (Notification.key is unique: "run-failed:42"), then told to every
enabled channel by `deliver_pending()` — called by a Celery beat task and right after a run
ends — so a slow mail server never holds up a run, and a retried slice never tells twice.
Channel URLs are Secrets and go out through integrations/outbound/http.py (timeouts, SSRF guard).
"""

import json
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from integrations.models import (
    Notification,
    NotificationChannel,
    NotificationEvent,
    WebhookState,
)
from integrations.outbound import http

logger = logging.getLogger(__name__)

# A channel that failed is tried again on the next deliver_pending, for this long.
RETRY_HOURS = 6
POOL_LEVELS = ((95, NotificationEvent.POOL_95), (80, NotificationEvent.POOL_80))


def link(path: str) -> str:
    return settings.KILN_PUBLIC_URL.rstrip("/") + path


def record(key: str, event: str, subject: str, text: str, path: str = "") -> Notification | None:
    """Record an event once; None if it was already recorded (never told twice)."""
    try:
        with transaction.atomic():
            return Notification.objects.create(
                key=key[:200],
                event=event,
                subject=subject[:300],
                text=text,
                link=link(path) if path else "",
            )
    except IntegrityError:
        return None


# -- the events ------------------------------------------------------------------------------


def run_finished(run, status: str, error: str = "") -> None:
    if run.dry_run or status not in ("failed", "partly_failed"):
        return
    event = (
        NotificationEvent.RUN_FAILED if status == "failed" else NotificationEvent.RUN_PARTLY_FAILED
    )
    words = "failed" if status == "failed" else "partly failed"
    run.refresh_from_db(fields=["sent", "failed", "skipped", "total", "possibly_duplicated"])
    text = (
        f'Run #{run.pk} of sync "{run.sync.name}" {words}: {run.sent} sent, {run.failed} failed, '
        f"{run.skipped} skipped of {run.total}."
        + (f" {run.possibly_duplicated} possibly duplicated." if run.possibly_duplicated else "")
        + (f"\n{error}" if error else "")
    )
    record(
        f"run:{run.pk}",
        event,
        f"Kiln: run #{run.pk} of {run.sync.name} {words}",
        text,
        reverse("console:run-detail", args=[run.pk]),
    )


def webhook_state(destination, webhook, why: str) -> None:
    """A webhook's token was rejected, its URL is gone, or it is full (once per change)."""
    state_at = webhook.state_at.isoformat() if webhook.state_at else timezone.now().isoformat()
    what = {
        "auth_rejected": "its webhook token was rejected",
        "not_found": "its webhook URL no longer exists",
        "full": f"{webhook.label} is full",
    }.get(why, why)
    event = (
        NotificationEvent.WEBHOOK_FULL
        if why == WebhookState.FULL
        else NotificationEvent.AUTH_REJECTED
    )
    record(
        f"webhook:{type(webhook).__name__}:{webhook.pk}:{why}:{state_at}",
        event,
        f'Kiln: Clay destination "{destination.name}": {what}',
        f'Clay destination "{destination.name}": {what}. {webhook.state_detail}',
        reverse("console:destination-detail", args=[destination.pk]),
    )


def pool_levels(destination) -> None:
    """The pool crossed 80 % or 95 % of what its webhooks can take (once per level and size)."""
    webhooks = destination.webhooks()
    capacity = destination.SUBMISSION_CAP * len(webhooks)
    used = capacity - destination.pool_remaining()
    percent = 100 * used / capacity
    for level, event in POOL_LEVELS:
        if percent >= level:
            record(
                f"pool:{destination.pk}:{len(webhooks)}:{level}",
                event,
                f'Kiln: Clay destination "{destination.name}" is {level}% used',
                f'Clay destination "{destination.name}" has used {used:,} of {capacity:,} '
                f"submissions on its {len(webhooks)} webhook(s). Add a new webhook on the same "
                "Clay table to its pool before it is full.",
                reverse("console:destination-detail", args=[destination.pk]),
            )
            return


def schedule_late(sync, due_at, why: str = "") -> None:
    record(
        f"late:{sync.pk}:{due_at.isoformat()}",
        NotificationEvent.SCHEDULE_LATE,
        f'Kiln: scheduled sync "{sync.name}" has not run',
        f'Sync "{sync.name}" was due at {due_at:%Y-%m-%d %H:%M} UTC and has not run. {why}'.strip(),
        reverse("console:sync-detail", args=[sync.pk]),
    )


# -- telling people --------------------------------------------------------------------------


def deliver_pending(limit: int = 50) -> int:
    """Tell every enabled channel about recent events it was not told yet; returns sends."""
    since = timezone.now() - timezone.timedelta(hours=RETRY_HOURS)
    channels = list(NotificationChannel.objects.filter(enabled=True).select_related("url"))
    sent = 0
    for note in Notification.objects.filter(created_at__gte=since).order_by("id")[: limit * 10]:
        missing = [c for c in channels if note.deliveries.get(str(c.pk)) != "sent"]
        if not missing or note.event == NotificationEvent.TEST:
            continue
        for channel in missing:
            sent += tell(channel, note)
    return sent


def tell(channel: NotificationChannel, note: Notification) -> int:
    """Send one note to one channel, claiming it first so two workers never both send it."""
    claim = f"sending:{timezone.now().timestamp()}"
    with transaction.atomic():
        locked = Notification.objects.select_for_update().get(pk=note.pk)
        status = locked.deliveries.get(str(channel.pk), "")
        if status == "sent" or status.startswith("sending:"):
            return 0
        locked.deliveries[str(channel.pk)] = claim
        locked.save(update_fields=["deliveries"])
    error = send(channel, note)
    with transaction.atomic():
        locked = Notification.objects.select_for_update().get(pk=note.pk)
        locked.deliveries[str(channel.pk)] = "sent" if not error else f"failed: {error}"[:300]
        locked.save(update_fields=["deliveries"])
    NotificationChannel.objects.filter(pk=channel.pk).update(
        last_sent_at=timezone.now(), last_error=error[:500]
    )
    return 0 if error else 1


def send(channel: NotificationChannel, note: Notification) -> str:
    """ "" when the channel took it, else a sentence (redacted)."""
    body = note.text + (f"\n\n{note.link}" if note.link else "")
    if channel.kind == NotificationChannel.Kind.EMAIL:
        try:
            send_mail(
                note.subject,
                body,
                settings.DEFAULT_FROM_EMAIL,
                channel.addresses,
                fail_silently=False,
            )
        except Exception as exc:  # smtplib, socket: any failure is the channel's, told as text
            return http.redact(f"The mail server refused or could not be reached: {exc}")
        return ""
    if channel.url_id is None:
        return "No webhook URL is set."
    payload = {
        # Slack reads "text" (mrkdwn links), Teams' incoming webhooks read "text" too.
        "text": f"*{note.subject}*\n{note.text}"
        + (f"\n<{note.link}|Open in Kiln>" if note.link else ""),
        "kiln": {"event": note.event, "subject": note.subject, "link": note.link},
    }
    try:
        with http.make_client(timeout=10) as client:
            response = http.send(
                client,
                "POST",
                channel.url.reveal(),
                content=json.dumps(payload),
                headers={"Content-Type": "application/json"},
            )
    except http.OutboundError as exc:
        return str(exc)
    if not 200 <= response.status_code < 300:
        return f"The webhook answered HTTP {response.status_code}."
    return ""


def send_test(channel: NotificationChannel, user="") -> str:
    """ "Send test notification": told at once to this channel only; "" when it arrived."""
    note = Notification.objects.create(
        key=f"test:{channel.pk}:{timezone.now().timestamp()}",
        event=NotificationEvent.TEST,
        subject="Kiln: test notification",
        text=f"Test notification from Kiln{f' sent by {user}' if user else ''}: this channel works.",
        link=link(reverse("console:notifications")),
    )
    error = send(channel, note)
    note.deliveries = {str(channel.pk): "sent" if not error else f"failed: {error}"[:300]}
    note.save(update_fields=["deliveries"])
    NotificationChannel.objects.filter(pk=channel.pk).update(
        last_sent_at=timezone.now(), last_error=error[:500]
    )
    return error
