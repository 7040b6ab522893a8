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
def fast_password_hashing(settings):
    """Tests make hundreds of users: PBKDF2's deliberate slowness costs minutes of CI, not safety."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def forget_inbound_wakes():
    """inbound.wake remembers recent wake-ups per process; each test starts without them."""
    from integrations.runs import inbound

    inbound.recent_wakes.clear()


@pytest.fixture(autouse=True)
def isolated_cache(settings, request):
    """A fresh in-memory cache per test: login throttling state must not leak between tests."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }


def require_redis(url="redis://127.0.0.1:6379/15"):
    """Skip on a developer machine without Redis (README: only Python is needed); fail in CI,
    where Redis always runs and a skipped test would hide a failure."""
    import os

    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {url} in CI: {exc}")
        pytest.skip(f"no Redis at {url}: these tests need a real Redis")
