"""A destination's webhook pool and its state on its page: a broken webhook says
how to fix it, a full one says to add a webhook, admins add webhooks (secrets write-only),
a new token clears "token rejected"."""

import pytest
from django.urls import reverse

from integrations.models import AuditEvent, ClayDestination, ClayWebhook, Secret, WebhookState

POOL_URL = "https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-second-0001"
POOL_TOKEN = "second-webhook-token-9876"


@pytest.fixture
def destination(db):
    return ClayDestination.objects.create(
        name="Leads table",
        webhook_url=Secret.seal("https://api.clay.com/v3/sources/webhook/first-0000000000"),
        auth_token=Secret.seal("first-webhook-token-1234"),
    )


def detail(client, destination):
    return client.get(reverse("console:destination-detail", args=[destination.pk])).content.decode()


def test_an_admin_adds_a_webhook_to_the_pool_and_it_is_never_shown_back(admin_client, destination):
    response = admin_client.post(
        reverse("console:destination-webhook-add", args=[destination.pk]),
        {"webhook_url": POOL_URL, "auth_token": POOL_TOKEN},
    )
    assert response.status_code == 302
    webhook = ClayWebhook.objects.get(destination=destination)
    assert webhook.webhook_url.reveal() == POOL_URL and webhook.auth_token.reveal() == POOL_TOKEN
    assert webhook.label == "webhook 2"
    page = detail(admin_client, destination)
    assert POOL_URL not in page and POOL_TOKEN not in page
    assert page.count('class="pool-webhook"') == 2
    assert '<strong class="pool-remaining">100,000</strong>' in page
    assert AuditEvent.objects.filter(target_id=str(destination.pk), action="changed").exists()


def test_a_pool_webhook_url_must_be_a_url(admin_client, destination):
    admin_client.post(
        reverse("console:destination-webhook-add", args=[destination.pk]),
        {"webhook_url": "ftp://nope", "auth_token": ""},
    )
    assert not ClayWebhook.objects.exists()


@pytest.mark.parametrize("fixture", ["operator_client", "viewer_client"])
def test_only_admins_change_the_pool(request, fixture, destination):
    client = request.getfixturevalue(fixture)
    response = client.post(
        reverse("console:destination-webhook-add", args=[destination.pk]),
        {"webhook_url": POOL_URL},
    )
    assert response.status_code == 403 and not ClayWebhook.objects.exists()


def test_a_full_webhook_says_to_add_another_and_the_pool_shows_what_is_left(
    viewer_client, destination
):
    destination.mark(WebhookState.FULL, "full")
    page = detail(viewer_client, destination)
    assert "this webhook is full: create a new webhook on the same clay table and add it here" in (
        page.lower()
    )
    assert '<strong class="pool-remaining">0</strong>' in page
    ClayWebhook.objects.create(
        destination=destination, position=1, webhook_url=Secret.seal(POOL_URL)
    )
    page = detail(viewer_client, destination)
    assert "this webhook is full" not in page.lower()  # sending goes on to webhook 2
    assert '<strong class="pool-remaining">50,000</strong>' in page


def test_a_rejected_token_says_how_to_fix_it_and_a_new_token_clears_it(admin_client, destination):
    destination.mark(WebhookState.AUTH_REJECTED, "Webhook token rejected: …")
    page = detail(admin_client, destination)
    assert "Sending stopped: token rejected" in page
    assert reverse("console:destination-edit", args=[destination.pk]) in page
    admin_client.post(
        reverse("console:destination-edit", args=[destination.pk]),
        {"name": destination.name, "webhook_url": "", "auth_token": "a-brand-new-token-5555"},
    )
    destination.refresh_from_db()
    assert destination.state == ""
    assert "Sending stopped" not in detail(admin_client, destination)
