import pytest
from django.urls import reverse

from integrations.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_every_page_requires_login(client):
    for name in ["console:home", "console:connections", "console:destinations", "console:audit"]:
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("console:login"))


def test_it_signs_in_and_out(client, admin_user):
    response = client.post(
        reverse("console:login"), {"username": "admin", "password": "pw-for-tests-123"}
    )
    assert response.status_code == 302
    assert client.get(reverse("console:home")).status_code == 200
    client.post(reverse("console:logout"))
    assert client.get(reverse("console:home")).status_code == 302


def test_repeated_failed_logins_are_throttled(client, admin_user, settings):
    settings.KILN_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        response = client.post(reverse("console:login"), {"username": "admin", "password": "wrong"})
        assert response.status_code == 200
    # Now even the right password is refused until the lockout passes.
    response = client.post(
        reverse("console:login"), {"username": "admin", "password": "pw-for-tests-123"}
    )
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert AuditEvent.objects.filter(action="login_failed").count() == 3


def test_a_successful_login_clears_earlier_failures(client, admin_user, settings):
    settings.KILN_LOGIN_MAX_FAILURES = 3
    for _ in range(2):
        client.post(reverse("console:login"), {"username": "admin", "password": "wrong"})
    client.post(reverse("console:login"), {"username": "admin", "password": "pw-for-tests-123"})
    client.post(reverse("console:logout"))
    for _ in range(2):
        client.post(reverse("console:login"), {"username": "admin", "password": "wrong"})
    response = client.post(
        reverse("console:login"), {"username": "admin", "password": "pw-for-tests-123"}
    )
    assert response.status_code == 302
