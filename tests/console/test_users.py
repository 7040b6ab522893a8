"""Admins manage users and their roles in the console."""

import pytest
from django.urls import reverse

from console.models import User
from integrations.models import AuditEvent

pytestmark = pytest.mark.django_db

NEW_USER = {
    "username": "sam",
    "email": "sam@example.com",
    "role": "operator",
    "is_active": "on",
    "password1": "a-strong-pass-4821",
    "password2": "a-strong-pass-4821",
}


def test_an_admin_adds_a_user_with_a_role(admin_client):
    response = admin_client.post(reverse("console:user-add"), NEW_USER)
    assert response.status_code == 302
    sam = User.objects.get(username="sam")
    assert sam.role == "operator" and sam.check_password("a-strong-pass-4821")
    assert AuditEvent.objects.filter(
        action="created", target_type="user", target_name="sam"
    ).exists()


def test_a_weak_or_mismatched_password_is_refused(admin_client):
    response = admin_client.post(
        reverse("console:user-add"), {**NEW_USER, "password2": "other-pass-9999"}
    )
    assert response.status_code == 200 and not User.objects.filter(username="sam").exists()
    response = admin_client.post(
        reverse("console:user-add"), {**NEW_USER, "password1": "123", "password2": "123"}
    )
    assert b"too short" in response.content and not User.objects.filter(username="sam").exists()


def test_changing_a_role_is_audited_and_keeps_the_password(admin_client, viewer_user):
    url = reverse("console:user-edit", args=[viewer_user.pk])
    data = {"username": "viewer", "email": "", "role": "operator", "is_active": "on"}
    assert admin_client.post(url, data).status_code == 302
    viewer_user.refresh_from_db()
    assert viewer_user.role == "operator" and viewer_user.check_password("pw-for-tests-123")
    event = AuditEvent.objects.get(action="role_changed")
    assert event.details == {"from": "viewer", "to": "operator"}


def test_an_admin_cannot_demote_or_deactivate_themselves(admin_client, admin_user):
    url = reverse("console:user-edit", args=[admin_user.pk])
    response = admin_client.post(url, {"username": "admin", "role": "viewer", "is_active": "on"})
    assert response.status_code == 200 and b"cannot remove your own admin role" in response.content
    admin_user.refresh_from_db()
    assert admin_user.role == "admin"


@pytest.mark.parametrize("fixture", ["operator_client", "viewer_client"])
def test_only_admins_manage_users(request, fixture, viewer_user):
    client = request.getfixturevalue(fixture)
    assert client.get(reverse("console:users")).status_code == 403
    assert client.post(reverse("console:user-add"), NEW_USER).status_code == 403
    url = reverse("console:user-edit", args=[viewer_user.pk])
    assert client.post(url, {"username": "viewer", "role": "admin"}).status_code == 403
    viewer_user.refresh_from_db()
    assert viewer_user.role == "viewer"
    assert not User.objects.filter(username="sam").exists()


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("console:users"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_deactivated_user_cannot_sign_in(client, viewer_user):
    viewer_user.is_active = False
    viewer_user.save()
    response = client.post(
        reverse("console:login"), {"username": "viewer", "password": "pw-for-tests-123"}
    )
    assert response.status_code == 200
    assert client.get(reverse("console:home")).status_code == 302


def _lock(client, username, address="203.0.113.9", times=5):
    for _ in range(times):
        client.post(
            reverse("console:login"),
            {"username": username, "password": "wrong"},
            REMOTE_ADDR=address,
        )


def test_an_admin_sees_and_lifts_a_users_lockout(client, admin_user, viewer_user):
    _lock(client, "viewer")
    client.force_login(admin_user)
    page = client.get(reverse("console:users")).content.decode()
    assert "locked on 203.0.113.9" in page
    response = client.post(reverse("console:user-unlock", args=[viewer_user.pk]))
    assert response.status_code == 302
    assert "locked on" not in client.get(reverse("console:users")).content.decode()
    event = AuditEvent.objects.get(action="changed", target_type="user")
    assert event.details == {"unlocked": ["203.0.113.9"]}
    client.logout()
    response = client.post(
        reverse("console:login"),
        {"username": "viewer", "password": "pw-for-tests-123"},
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 302


def test_an_admin_lifts_an_address_lockout(client, admin_user, settings):
    settings.KILN_LOGIN_MAX_FAILURES_PER_ADDRESS = 6
    for n in range(6):
        _lock(client, f"guess-{n}", times=1)
    client.force_login(admin_user)
    assert client.get(reverse("console:users")).context["locked_addresses"] == ["203.0.113.9"]
    response = client.post(reverse("console:address-unlock"), {"address": "203.0.113.9"})
    assert response.status_code == 302
    assert client.get(reverse("console:users")).context["locked_addresses"] == []
    assert AuditEvent.objects.filter(action="changed", target_type="address").count() == 1
    client.logout()
    response = client.post(
        reverse("console:login"),
        {"username": "admin", "password": "pw-for-tests-123"},
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 302


@pytest.mark.parametrize("fixture", ["operator_client", "viewer_client"])
def test_only_admins_lift_lockouts(request, fixture, viewer_user):
    client = request.getfixturevalue(fixture)
    _lock(client, "viewer")
    assert client.post(reverse("console:user-unlock", args=[viewer_user.pk])).status_code == 403
    response = client.post(reverse("console:address-unlock"), {"address": "203.0.113.9"})
    assert response.status_code == 403


def test_an_outsider_is_sent_to_sign_in_before_unlocking(client, viewer_user):
    response = client.post(reverse("console:user-unlock", args=[viewer_user.pk]))
    assert response.status_code == 302 and reverse("console:login") in response["Location"]
    response = client.post(reverse("console:address-unlock"), {"address": "203.0.113.9"})
    assert response.status_code == 302 and reverse("console:login") in response["Location"]
