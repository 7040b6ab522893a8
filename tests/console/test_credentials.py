"""The credential store pages, tried as admin, operator, viewer and anonymous user."""

import pytest
from django.urls import reverse

from integrations.models import AuditEvent, ClayDestination, DirectusConnection, Secret

pytestmark = pytest.mark.django_db

TOKEN = "tok-CONNECTION-SECRET-9f8e7d6c"
WEBHOOK = "https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-HOOKSECRET-1234"


@pytest.fixture
def connection(admin_user):
    return DirectusConnection.objects.create(
        name="CMS prod",
        base_url="https://cms.example.com",
        environment="prod",
        token=Secret.seal(TOKEN),
        created_by=admin_user,
    )


@pytest.fixture
def destination(admin_user):
    return ClayDestination.objects.create(
        name="Leads table",
        webhook_url=Secret.seal(WEBHOOK),
        auth_token=Secret.seal("clay-auth-AUTHSECRET-55"),
    )


def test_admin_adds_a_connection_and_the_token_is_encrypted_and_audited(admin_client):
    response = admin_client.post(
        reverse("console:connection-add"),
        {
            "name": "CMS",
            "base_url": "https://cms.example.com/",
            "environment": "staging",
            "token": TOKEN,
        },
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 302
    connection = DirectusConnection.objects.get(name="CMS")
    assert connection.base_url == "https://cms.example.com"
    assert connection.token.reveal() == TOKEN
    assert TOKEN not in connection.token.ciphertext
    event = AuditEvent.objects.get(action="created", target_type="directusconnection")
    assert event.actor_name == "admin" and event.ip == "10.1.2.3"
    assert TOKEN not in str(event.details)


def test_the_token_is_never_rendered_back(admin_client, connection):
    for url in [
        reverse("console:connections"),
        reverse("console:connection-detail", args=[connection.pk]),
        reverse("console:connection-edit", args=[connection.pk]),
    ]:
        body = admin_client.get(url).content.decode()
        assert TOKEN not in body
    assert "••••6c" not in body  # shown as the last four characters only
    assert (
        "••••7d6c"
        in admin_client.get(
            reverse("console:connection-edit", args=[connection.pk])
        ).content.decode()
    )


def test_leaving_the_token_empty_keeps_it_and_a_new_one_is_a_rotation(admin_client, connection):
    url = reverse("console:connection-edit", args=[connection.pk])
    data = {
        "name": "CMS prod",
        "base_url": "https://cms2.example.com",
        "environment": "prod",
        "token": "",
    }
    assert admin_client.post(url, data).status_code == 302
    connection.refresh_from_db()
    assert connection.token.reveal() == TOKEN
    assert AuditEvent.objects.filter(action="changed").exists()
    assert not AuditEvent.objects.filter(action="rotated").exists()
    assert admin_client.post(url, {**data, "token": "tok-NEW-0000000001"}).status_code == 302
    connection.refresh_from_db()
    assert connection.token.reveal() == "tok-NEW-0000000001"
    assert AuditEvent.objects.filter(action="rotated", details__secret="token").exists()


def test_a_new_token_or_server_forgets_what_was_known_about_the_old_one(admin_client, connection):
    known = {"server_info": {"version": "12.4.0"}, "directus_user_id": "u-old"}
    DirectusConnection.objects.filter(pk=connection.pk).update(**known)
    url = reverse("console:connection-edit", args=[connection.pk])
    data = {"name": connection.name, "base_url": connection.base_url, "environment": "dev"}
    admin_client.post(url, {**data, "token": "tok-NEW-0000000002"})
    connection.refresh_from_db()
    assert (connection.directus_user_id, connection.server_info) == ("", {"version": "12.4.0"})
    DirectusConnection.objects.filter(pk=connection.pk).update(**known)
    admin_client.post(url, {**data, "base_url": "https://other.example.com", "token": ""})
    connection.refresh_from_db()
    assert (connection.directus_user_id, connection.server_info) == ("", {})


def test_bad_input_gets_a_clear_error_and_changes_nothing(admin_client, connection):
    url = reverse("console:connection-edit", args=[connection.pk])
    response = admin_client.post(
        url, {"name": "", "base_url": "ftp://x", "environment": "prod", "token": "Bearer abc"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "This field is required" in body
    assert "without &#x27;Bearer &#x27;" in body or "without 'Bearer '" in body
    connection.refresh_from_db()
    assert connection.name == "CMS prod" and connection.token.reveal() == TOKEN


def test_a_new_connection_needs_a_token(admin_client):
    response = admin_client.post(
        reverse("console:connection-add"),
        {"name": "CMS", "base_url": "https://cms.example.com", "environment": "dev", "token": ""},
    )
    assert response.status_code == 200
    assert not DirectusConnection.objects.exists()


@pytest.mark.parametrize("fixture, status", [("operator_client", 403), ("viewer_client", 403)])
def test_only_admins_change_credentials(request, fixture, status, connection, destination):
    client = request.getfixturevalue(fixture)
    assert client.get(reverse("console:connection-add")).status_code == status
    assert (
        client.post(
            reverse("console:connection-edit", args=[connection.pk]), {"name": "x"}
        ).status_code
        == status
    )
    assert (
        client.post(reverse("console:connection-delete", args=[connection.pk])).status_code
        == status
    )
    assert (
        client.post(
            reverse("console:destination-edit", args=[destination.pk]), {"name": "x"}
        ).status_code
        == status
    )
    assert client.get(reverse("console:audit")).status_code == status
    assert client.get(reverse("console:users")).status_code == status
    connection.refresh_from_db()
    assert connection.name == "CMS prod"


def test_anonymous_users_are_sent_to_login(client, connection):
    response = client.get(reverse("console:connection-detail", args=[connection.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]
    response = client.post(reverse("console:connection-test", args=[connection.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_viewers_read_configuration_but_see_no_secret_hint_and_cannot_test(
    viewer_client, connection, destination
):
    body = viewer_client.get(
        reverse("console:connection-detail", args=[connection.pk])
    ).content.decode()
    assert "CMS prod" in body and "••••" not in body and "Test connection" not in body
    body = viewer_client.get(
        reverse("console:destination-detail", args=[destination.pk])
    ).content.decode()
    assert "Leads table" in body and "••••" not in body and WEBHOOK not in body
    assert (
        viewer_client.post(reverse("console:connection-test", args=[connection.pk])).status_code
        == 403
    )
    assert (
        viewer_client.post(
            reverse("console:destination-test", args=[destination.pk]), {"confirm": "yes"}
        ).status_code
        == 403
    )


def test_deleting_a_connection_deletes_its_token(admin_client, connection):
    secret_id = connection.token_id
    assert (
        admin_client.post(reverse("console:connection-delete", args=[connection.pk])).status_code
        == 302
    )
    assert not DirectusConnection.objects.exists()
    assert not Secret.objects.filter(pk=secret_id).exists()
    assert AuditEvent.objects.filter(action="deleted", target_name="CMS prod").exists()


def test_admin_adds_a_destination_with_an_auth_token(admin_client):
    response = admin_client.post(
        reverse("console:destination-add"),
        {"name": "Leads", "webhook_url": WEBHOOK, "auth_token": "clay-auth-XYZ-123456"},
    )
    assert response.status_code == 302
    destination = ClayDestination.objects.get(name="Leads")
    assert destination.webhook_url.reveal() == WEBHOOK
    assert destination.auth_token.reveal() == "clay-auth-XYZ-123456"
    body = admin_client.get(
        reverse("console:destination-detail", args=[destination.pk])
    ).content.decode()
    assert WEBHOOK not in body and "clay-auth-XYZ-123456" not in body


def test_an_admin_can_remove_the_auth_token(admin_client, destination):
    old_secret = destination.auth_token_id
    admin_client.post(
        reverse("console:destination-edit", args=[destination.pk]),
        {"name": "Leads table", "webhook_url": "", "auth_token": "", "clear_auth_token": "on"},
    )
    destination.refresh_from_db()
    assert destination.auth_token_id is None
    assert not Secret.objects.filter(pk=old_secret).exists()
    assert destination.webhook_url.reveal() == WEBHOOK


@pytest.mark.parametrize(
    "count, level, words",
    [
        (10, "ok", None),
        (40_000, "warning", "over 80%"),
        (47_500, "critical", "over 95%"),
        (50_000, "full", "full"),
    ],
)
def test_the_submission_cap_is_shown_with_warnings(admin_client, destination, count, level, words):
    ClayDestination.objects.filter(pk=destination.pk).update(submissions_count=count)
    destination.refresh_from_db()
    assert destination.cap_level == level
    body = admin_client.get(reverse("console:destinations")).content.decode()
    if words:
        assert words in body


def test_sending_a_test_record_needs_confirmation(operator_client, destination, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "integrations.clay.webhook.send_test_record",
        lambda d, sent_by="": (
            sent.append(d)
            or {
                "name": "Send test record",
                "ok": True,
                "summary": "accepted",
                "detail": "HTTP 200",
                "elapsed_ms": 3,
            }
        ),
    )
    url = reverse("console:destination-test", args=[destination.pk])
    response = operator_client.post(url)
    assert response.status_code == 200 and b"uses one of this webhook" in response.content
    assert sent == []
    response = operator_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302 and len(sent) == 1
    destination.refresh_from_db()
    assert destination.last_test_ok is True
    assert AuditEvent.objects.filter(action="tested", target_type="claydestination").exists()


def test_audit_log_filters(admin_client, connection):
    AuditEvent.record(None, "127.0.0.1", "tested", connection)
    AuditEvent.record(None, "127.0.0.1", "deleted", connection)
    body = admin_client.get(reverse("console:audit"), {"action": "tested"}).content.decode()
    assert "tested" in body and "deleted</td>" not in body


def test_admins_allow_a_private_network(admin_client):
    response = admin_client.post(
        reverse("console:allowed-networks"), {"value": "10.0.0.0/8", "note": "office"}
    )
    assert response.status_code == 302
    response = admin_client.post(reverse("console:allowed-networks"), {"value": "10.0.0.999/8"})
    assert b"Not a valid IP address or CIDR" in response.content


def test_an_allowlist_entry_that_turns_the_guard_off_needs_the_box_ticked(admin_client):
    from integrations.models import AllowedNetwork

    url = reverse("console:allowed-networks")
    for value in ["0.0.0.0/0", "::/0", "169.254.0.0/16"]:
        response = admin_client.post(url, {"value": value})
        body = response.content.decode()
        assert response.status_code == 200 and "Tick the box below" in body, value
        assert 'name="confirm_risk"' in body
    assert not AllowedNetwork.objects.exists()
    response = admin_client.post(url, {"value": "*"})
    assert "Wildcards are not allowed" in response.content.decode()
    assert 'name="confirm_risk"' not in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"value": "169.254.169.254", "confirm_risk": "on"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="created", target_type="allowednetwork")
    assert event.details == {"value": "169.254.169.254", "port": None, "confirmed_risk": True}


def test_an_allowlist_entry_carries_a_port_and_a_single_label_host_warns(admin_client):
    from integrations.models import AllowedNetwork

    url = reverse("console:allowed-networks")
    response = admin_client.post(url, {"value": "directus", "port": "8055"}, follow=True)
    body = response.content.decode()
    assert "may now reach directus on port 8055" in body and "single-label name" in body
    assert AllowedNetwork.objects.get().port == 8055
    response = admin_client.post(url, {"value": "directus", "port": "8055"})
    assert response.status_code == 200 and AllowedNetwork.objects.count() == 1  # not twice
    assert admin_client.post(url, {"value": "directus"}).status_code == 302
    assert admin_client.post(url, {"value": "directus"}).status_code == 200
    assert admin_client.post(url, {"value": "x.internal", "port": "70000"}).status_code == 200
    assert AllowedNetwork.objects.count() == 2
    page = admin_client.get(url).content.decode()
    assert "80, 443" in page and "8055" in page


def test_a_connection_to_a_compose_service_name_is_accepted(admin_client):
    response = admin_client.post(
        reverse("console:connection-add"),
        {"name": "CMS", "base_url": "http://directus:8055", "environment": "dev", "token": TOKEN},
    )
    assert response.status_code == 302
    assert DirectusConnection.objects.get().base_url == "http://directus:8055"


@pytest.mark.parametrize("fixture", ["operator_client", "viewer_client"])
def test_only_admins_change_the_allowlist(request, fixture):
    from integrations.models import AllowedNetwork

    network = AllowedNetwork.objects.create(value="10.0.0.0/8")
    client = request.getfixturevalue(fixture)
    url = reverse("console:allowed-networks")
    assert client.get(url).status_code == 403
    assert client.post(url, {"value": "0.0.0.0/0", "confirm_risk": "on"}).status_code == 403
    delete = reverse("console:allowed-network-delete", args=[network.pk])
    assert client.post(delete).status_code == 403
    assert list(AllowedNetwork.objects.values_list("value", flat=True)) == ["10.0.0.0/8"]


def test_an_outsider_is_sent_to_sign_in_before_the_allowlist(client):
    response = client.post(reverse("console:allowed-networks"), {"value": "0.0.0.0/0"})
    assert response.status_code == 302 and "/login/" in response["Location"]


def fake_stages(ok):
    from integrations.directus.client import Stage

    return [
        Stage("Reachable", True, "Directus answered /server/ping.", "", 3),
        Stage(
            "Token valid",
            ok,
            "Signed in as ops@example.com." if ok else "Directus rejected the token.",
            "",
            4,
        ),
        Stage(
            "What it may read", True if ok else None, "3 collections." if ok else "Skipped.", "", 5
        ),
    ]


def test_test_connection_shows_each_stage_in_place_with_htmx(
    operator_client, connection, monkeypatch
):
    monkeypatch.setattr(
        "integrations.directus.client.check_connection", lambda *a, **k: fake_stages(False)
    )
    url = reverse("console:connection-test", args=[connection.pk])
    response = operator_client.post(url, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    # Only the result partial comes back, with every stage.
    assert response.status_code == 200 and "<html" not in body
    assert (
        'id="test-result"' in body and "Directus rejected the token." in body and "skipped" in body
    )
    connection.refresh_from_db()
    assert connection.last_test_ok is False and connection.last_test_at is not None
    event = AuditEvent.objects.get(action="tested")
    assert event.actor_name == "operator" and TOKEN not in str(event.details)


def test_test_connection_works_without_javascript(operator_client, connection, monkeypatch):
    monkeypatch.setattr("integrations.directus.client.check_connection", lambda *a, **k: fake_stages(True))
    url = reverse("console:connection-test", args=[connection.pk])
    response = operator_client.post(url, follow=True)
    body = response.content.decode()
    assert "<html" in body and "passed" in body and "3 collections." in body
    # The outcome also shows in the list.
    listing = operator_client.get(reverse("console:connections")).content.decode()
    assert "OK" in listing


def test_a_stale_token_is_flagged_in_the_list(admin_client, connection, settings):
    settings.KILN_TOKEN_MAX_AGE_DAYS = 0
    Secret.objects.filter(pk=connection.token_id).update(
        set_at=connection.token.set_at.replace(year=2020)
    )
    body = admin_client.get(reverse("console:connections")).content.decode()
    assert "rotate" in body


# -- URLs with credentials ----------------------------------------------------------------

URL_PASSWORD = "pw-IN-URL-7c1d9e"


def test_a_connection_url_with_a_password_is_refused_with_a_sentence(admin_client):
    response = admin_client.post(
        reverse("console:connection-add"),
        {
            "name": "CMS",
            "base_url": f"https://kiln:{URL_PASSWORD}@cms.example.com",
            "environment": "dev",
            "token": TOKEN,
        },
    )
    assert response.status_code == 200
    assert "Remove the user name and password from the URL" in response.content.decode()
    assert URL_PASSWORD not in response.content.decode()
    assert not DirectusConnection.objects.exists()


def test_a_destination_url_with_a_password_is_refused_with_a_sentence(admin_client):
    response = admin_client.post(
        reverse("console:destination-add"),
        {"name": "Leads", "webhook_url": f"https://u:{URL_PASSWORD}@api.clay.com/v3/hook"},
    )
    assert response.status_code == 200
    assert "Remove the user name and password from the URL" in response.content.decode()
    assert not ClayDestination.objects.exists()


@pytest.mark.parametrize("fixture", ["admin_client", "operator_client", "viewer_client"])
def test_an_older_connection_url_with_a_password_is_never_shown(request, fixture, connection):
    DirectusConnection.objects.filter(pk=connection.pk).update(
        base_url=f"https://kiln:{URL_PASSWORD}@cms.example.com"
    )
    client = request.getfixturevalue(fixture)
    pages = [
        reverse("console:connections"),
        reverse("console:connection-detail", args=[connection.pk]),
        reverse("console:query-builder") + f"?connection={connection.pk}&collection=articles",
    ]
    if fixture == "admin_client":
        pages.append(reverse("console:connection-edit", args=[connection.pk]))
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        body = response.content.decode()
        assert URL_PASSWORD not in body, page
        assert "cms.example.com" in body, page
    detail = client.get(reverse("console:connection-detail", args=[connection.pk]))
    assert "https://kiln:••••@cms.example.com" in detail.content.decode()


def test_saving_an_older_connection_asks_to_remove_the_password(admin_client, connection):
    DirectusConnection.objects.filter(pk=connection.pk).update(
        base_url=f"https://kiln:{URL_PASSWORD}@cms.example.com"
    )
    url = reverse("console:connection-edit", args=[connection.pk])
    shown = admin_client.get(url).context["form"]["base_url"].value()
    assert shown == "https://kiln:••••@cms.example.com"
    data = {"name": "CMS prod", "base_url": shown, "environment": "prod", "token": ""}
    response = admin_client.post(url, data)
    assert "Remove the user name and password from the URL" in response.content.decode()
    data["base_url"] = "https://cms.example.com"
    assert admin_client.post(url, data).status_code == 302
    connection.refresh_from_db()
    assert connection.base_url == "https://cms.example.com"
