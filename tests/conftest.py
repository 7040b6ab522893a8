import pytest

from console.models import User


def make_user(role, username=None, password="pw-for-tests-123"):
    user = User.objects.create_user(username or role, password=password, role=role)
    return user


@pytest.fixture
def admin_user(db):
    return make_user(User.Role.ADMIN)


@pytest.fixture
def operator_user(db):
    return make_user(User.Role.OPERATOR)


@pytest.fixture
def viewer_user(db):
    return make_user(User.Role.VIEWER)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def operator_client(client, operator_user):
    client.force_login(operator_user)
    return client


@pytest.fixture
def viewer_client(client, viewer_user):
    client.force_login(viewer_user)
    return client


@pytest.fixture(autouse=True)
def isolated_cache(settings, request):
    """A fresh in-memory cache per test: login throttling state must not leak between tests."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
