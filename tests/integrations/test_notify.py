# ruff: noqa: F811 (pytest fixtures imported from syncfixtures are redefined as arguments)
"""Failures reach people: a failed run is told once by email and once to a chat
webhook, with a link; a webhook that breaks or fills is told once; the test button; a real
SMTP conversation with a local server; channel URLs are secrets behind the SSRF guard."""

import asyncio
import json
import threading

import pytest
from django.core import mail
from django.urls import reverse

from bench.fakes import FakeDirectus, FakeSink
from integrations import notify
from integrations.models import (
    ClayDestination,
    Notification,
    NotificationChannel,
    Secret,
    WebhookState,
)
from integrations.runs import sync as engine_api

from .syncfixtures import CLAY_TOKEN, DIRECTUS_TOKEN, fast_retries, make_sync, run_to_end  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]
CHAT_PATH = "/services/T000/B000/chat-SECRET-PATH-4242"


@pytest.fixture
def directus():
    with FakeDirectus(30, token=DIRECTUS_TOKEN) as server:
        yield server


@pytest.fixture
def chat():
    """A loopback chat webhook (Slack-like): keeps every JSON body it is sent."""
    with FakeSink(key_field="text") as server:
        server.keep_bodies = True
        yield server


@pytest.fixture
def channels(chat, settings):
    settings.KILN_PUBLIC_URL = "https://kiln.example.com"
    email = NotificationChannel.objects.create(
        name="Ops mail", kind="email", recipients="ops@example.com, lead@example.com"
    )
    hook = NotificationChannel.objects.create(
        name="Ops chat", kind="webhook", url=Secret.seal(chat.url + CHAT_PATH)
    )
    return email, hook


def test_a_failed_run_is_told_once_by_email_and_once_by_webhook(directus, channels, chat):
    with FakeSink(token=CLAY_TOKEN) as clay:
        clay.script = {str(i): [422] for i in range(1, 31)}  # every row refused: the run fails
        run = run_to_end(engine_api.start_run(make_sync(directus, clay)))
    assert run.status == "failed"

    assert notify.deliver_pending() == 2
    assert notify.deliver_pending() == 0  # each event told once
    notify.run_finished(run, run.status)  # a retried ending records nothing new
    assert notify.deliver_pending() == 0

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == f"Kiln: run #{run.pk} of {run.sync.name} failed"
    assert message.to == ["ops@example.com", "lead@example.com"]
    assert f"https://kiln.example.com/runs/{run.pk}/" in message.body
    assert "0 sent, 30 failed" in message.body
    assert chat.requests == 1
    body = chat.bodies[0]
    assert body["text"].startswith(f"*Kiln: run #{run.pk} of")
    assert f"<https://kiln.example.com/runs/{run.pk}/|Open in Kiln>" in body["text"]
    assert body["kiln"]["event"] == "run_failed"


def test_a_successful_run_tells_nobody(directus, channels, chat):
    with FakeSink(token=CLAY_TOKEN) as clay:
        run = run_to_end(engine_api.start_run(make_sync(directus, clay)))
    assert run.status == "succeeded"
    assert notify.deliver_pending() == 0 and not mail.outbox and chat.requests == 0


def test_a_rejected_token_is_told_once_besides_the_failed_run(directus, channels, chat):
    with FakeSink(token="another-token-entirely") as clay:
        sync = make_sync(directus, clay)
        run_to_end(engine_api.start_run(sync))
        run_to_end(engine_api.start_run(sync))  # the second run finds it broken: no new event
    events = sorted(Notification.objects.values_list("event", flat=True))
    assert events == ["auth_rejected", "run_failed", "run_failed"]
    notify.deliver_pending()
    subjects = sorted(m.subject for m in mail.outbox)
    assert len(subjects) == 3
    assert any("webhook token was rejected" in s for s in subjects)


def test_a_pool_at_80_then_95_percent_is_told_once_per_level(channels):
    destination = ClayDestination.objects.create(
        name="Leads", webhook_url=Secret.seal("https://clay.example.com/hook")
    )
    for count in (39_000, 40_000, 41_000, 47_600, 48_000):
        ClayDestination.objects.filter(pk=destination.pk).update(submissions_count=count)
        notify.pool_levels(destination)
    assert list(Notification.objects.order_by("id").values_list("event", flat=True)) == [
        "pool_80",
        "pool_95",
    ]
    destination.mark(WebhookState.FULL, "full")
    notify.webhook_state(destination, destination, "full")
    notify.webhook_state(destination, destination, "full")
    assert Notification.objects.filter(event="webhook_full").count() == 1


def test_the_test_button_reaches_the_channel_now(channels, chat):
    email, hook = channels
    assert notify.send_test(hook, "ada") == ""
    assert chat.requests == 1 and "sent by ada" in chat.bodies[0]["text"]
    assert notify.send_test(email, "ada") == ""
    assert len(mail.outbox) == 1
    assert notify.deliver_pending() == 0  # tests are not told again


def test_a_channel_url_to_a_metadata_address_is_refused_by_the_guard(db):
    hook = NotificationChannel.objects.create(
        name="Sneaky", kind="webhook", url=Secret.seal("http://169.254.169.254/latest/meta-data/")
    )
    error = notify.send_test(hook)
    assert error and ("169.254.169.254" in error or "not allowed" in error.lower())
    hook.refresh_from_db()
    assert hook.last_error == error[:500]


class SmtpServer:
    """Enough SMTP for Django's backend (EHLO, MAIL, RCPT, DATA, QUIT) on 127.0.0.1."""

    def __init__(self):
        self.messages = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._talk, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        server.close()

    async def _talk(self, reader, writer):
        writer.write(b"220 localhost ESMTP test\r\n")
        envelope = {"to": []}
        while line := await reader.readline():
            verb = line.decode().strip().upper()
            if verb.startswith(("EHLO", "HELO")):
                writer.write(b"250 localhost\r\n")
            elif verb.startswith("MAIL FROM"):
                envelope["from"] = line.decode().strip()[10:]
                writer.write(b"250 OK\r\n")
            elif verb.startswith("RCPT TO"):
                envelope["to"].append(line.decode().strip()[8:])
                writer.write(b"250 OK\r\n")
            elif verb == "DATA":
                writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                await writer.drain()
                data = []
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    data.append(chunk.decode())
                self.messages.append({**envelope, "data": "".join(data)})
                envelope = {"to": []}
                writer.write(b"250 OK queued\r\n")
            elif verb == "QUIT":
                writer.write(b"221 Bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_email_goes_out_through_a_real_smtp_server(settings, channels):
    smtp = SmtpServer()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        settings.DEFAULT_FROM_EMAIL = "kiln@example.com"
        email, _ = channels
        notify.record("run:9999", "run_failed", "Kiln: run #9999 failed", "It failed.", "/runs/9/")
        assert notify.tell(email, Notification.objects.get(key="run:9999")) == 1
        assert notify.tell(email, Notification.objects.get(key="run:9999")) == 0  # once
    finally:
        smtp.stop()
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["from"] == "<kiln@example.com>"
    assert sorted(message["to"]) == ["<lead@example.com>", "<ops@example.com>"]
    assert "Subject: Kiln: run #9999 failed" in message["data"]
    assert "https://kiln.example.com/runs/9/" in message["data"]


def test_admins_add_a_chat_channel_whose_url_is_never_shown_back(admin_client, chat):
    response = admin_client.post(
        reverse("console:notifications"),
        {"name": "Team chat", "kind": "webhook", "url": chat.url + CHAT_PATH},
    )
    assert response.status_code == 302
    channel = NotificationChannel.objects.get()
    assert channel.url.reveal() == chat.url + CHAT_PATH
    page = admin_client.get(reverse("console:notifications")).content.decode()
    assert "SECRET-PATH" not in page and "Send test notification" in page
    admin_client.post(reverse("console:notification-test", args=[channel.pk]))
    assert chat.requests == 1
    assert json.dumps(chat.bodies[0]).count("SECRET-PATH") == 0


@pytest.mark.parametrize("fixture", ["operator_client", "viewer_client"])
def test_only_admins_manage_channels(request, fixture):
    client = request.getfixturevalue(fixture)
    assert client.get(reverse("console:notifications")).status_code == 403


def test_a_scheduled_sync_that_cannot_start_when_due_is_told_once(directus, channels):
    import datetime as dt

    from django.utils import timezone

    from integrations.models import SyncRun

    with FakeSink(token=CLAY_TOKEN) as clay:
        sync = make_sync(directus, clay, schedule="*/5 * * * *")
    sync.last_scheduled_at = timezone.now() - dt.timedelta(minutes=30)
    sync.save()
    SyncRun.objects.create(sync=sync, status=SyncRun.Status.RUNNING)  # still busy
    engine_api.dispatch_scheduled_syncs()
    engine_api.dispatch_scheduled_syncs()
    late = Notification.objects.filter(event="schedule_late")
    assert late.count() == 1
    assert "has not run" in late.get().text and "did not start" in late.get().text
