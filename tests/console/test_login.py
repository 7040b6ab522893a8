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


LOGIN = "console:login"
RIGHT = "pw-for-tests-123"


def sign_in(client, username, password, address="203.0.113.9", **headers):
    return client.post(
        reverse(LOGIN), {"username": username, "password": password}, REMOTE_ADDR=address, **headers
    )


def test_random_username_failures_do_not_stop_another_user_signing_in(client, admin_user):
    for n in range(5):
        assert sign_in(client, f"guess-{n}", "wrong").status_code == 200
    assert sign_in(client, "admin", RIGHT).status_code == 302


def test_failures_for_one_user_lock_that_user_on_that_address_only(
    client, admin_user, operator_user
):
    for _ in range(5):
        sign_in(client, "admin", "wrong")
    response = sign_in(client, "admin", RIGHT)
    assert response.status_code == 429
    assert b"Too many failed sign-ins for this account" in response.content
    # Another user from the same address, and the same user from another address, get in.
    assert sign_in(client, "operator", RIGHT).status_code == 302
    client.post(reverse("console:logout"))
    assert sign_in(client, "admin", RIGHT, address="198.51.100.7").status_code == 302


def test_the_username_is_counted_whatever_its_letter_case(client, admin_user):
    for name in ["admin", "ADMIN", "Admin", "aDmin", "admiN"]:
        sign_in(client, name, "wrong")
    assert sign_in(client, "admin", RIGHT).status_code == 429


def test_many_failures_from_one_address_lock_that_address_for_everyone(
    client, admin_user, settings
):
    settings.KILN_LOGIN_MAX_FAILURES_PER_ADDRESS = 8
    for n in range(8):
        sign_in(client, f"guess-{n}", "wrong")
    response = sign_in(client, "admin", RIGHT)
    assert response.status_code == 429
    assert b"Too many failed sign-ins from your address" in response.content
    assert sign_in(client, "admin", RIGHT, address="198.51.100.7").status_code == 302


def test_seven_failures_from_one_address_stay_under_the_address_threshold(
    client, admin_user, settings
):
    settings.KILN_LOGIN_MAX_FAILURES_PER_ADDRESS = 8
    for n in range(7):
        sign_in(client, f"guess-{n}", "wrong")
    assert sign_in(client, "admin", RIGHT).status_code == 302


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(client, admin_user, settings):
    settings.KILN_TRUSTED_PROXIES = ["10.0.0.0/24"]
    # Through the trusted proxy, each client is its own address: the attacker's five
    # failures do not lock the admin who signs in through the same proxy from elsewhere.
    for _ in range(5):
        sign_in(client, "admin", "wrong", "10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert AuditEvent.objects.filter(ip="203.0.113.66").count() == 5
    ok = sign_in(client, "admin", RIGHT, "10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert ok.status_code == 302
    client.post(reverse("console:logout"))
    # A client that is not a proxy cannot pick an address with the header.
    for _ in range(5):
        sign_in(client, "admin", "wrong", "192.0.2.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert AuditEvent.objects.filter(ip="192.0.2.1").count() == 5
    assert sign_in(client, "admin", RIGHT, "192.0.2.1").status_code == 429


def test_a_client_cannot_prepend_its_own_address_through_a_trusted_proxy(rf, settings):
    from console.access import client_ip

    settings.KILN_TRUSTED_PROXIES = ["10.0.0.2", "10.0.1.0/24"]
    request = rf.get(
        "/",
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9, 10.0.1.4",
    )
    assert client_ip(request) == "203.0.113.9"
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="not-an-ip")
    assert client_ip(request) == "10.0.0.2"
    settings.KILN_TRUSTED_PROXIES = []
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert client_ip(request) == "10.0.0.2"


def test_sign_in_works_and_is_logged_when_the_cache_is_down(client, admin_user, settings, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            # Nothing listens on port 1: every cache call fails to connect.
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    assert sign_in(client, "admin", "wrong").status_code == 200
    assert sign_in(client, "admin", RIGHT).status_code == 302
    assert "Sign-in lockouts are not enforced: the cache is unavailable" in caplog.text
