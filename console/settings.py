"""Kiln settings: one file, every value read from the environment (see .env.example)."""

import importlib.util
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("KILN_VAR_DIR") or BASE_DIR / "var")


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# An empty SECRET_KEY fails Django's own start-up check, which is what we want in production;
# bin/dev writes a random one into var/dev.env for the embedded default.
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "console",
    "integrations",
]
# The demo (seed_demo, the servers bin/dev starts) is in checkouts, not in the production image.
if importlib.util.find_spec("demo") is not None:
    INSTALLED_APPS.append("demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page requires login unless a view says otherwise (login page, inbound webhooks).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A page that says why instead of a 500: NUL in the address or a form, keys missing.
    "console.middleware.RefuseNulMiddleware",
    "console.middleware.KeyProblemMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'kiln.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql") and env_bool("DATABASE_POOL", False):
    # psycopg's pool (Django 5.1+): under the asgi worker every request runs in a thread of its
    # own, where a persistent connection cannot be reused; a pool hands connections over
    # instead of opening one per request. Takes the place of DATABASE_CONN_MAX_AGE.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10),
        "timeout": 10,
    }
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The web process and the worker share the file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Tests get a file, not the shared-cache in-memory default: threads of the live server and
    # of an in-process worker then wait on each other's locks instead of failing at once.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-kiln.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True

AUTH_USER_MODEL = "console.User"
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("KILN_MANIFEST_STATIC", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Redis when configured; otherwise an embedded broker (kombu's filesystem transport) and a
# file cache, so the console and its worker run with no server at all.
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = TIME_ZONE
# Where the shared rate-limit buckets live; empty means a per-process bucket (embedded mode).
KILN_RATE_LIMIT_REDIS_URL = (
    env_str("KILN_RATE_LIMIT_REDIS_URL")
    or REDIS_URL
    or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
)

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Secrets at rest: comma-separated Fernet keys; the first encrypts, all decrypt.
KILN_ENCRYPTION_KEYS = env_list("KILN_ENCRYPTION_KEYS")
# Outbound requests to private, loopback and link-local addresses are refused unless allowed.
KILN_ALLOW_PRIVATE_NETWORKS = env_bool("KILN_ALLOW_PRIVATE_NETWORKS", False)
KILN_OUTBOUND_TIMEOUT = float(env_str("KILN_OUTBOUND_TIMEOUT", "15"))
KILN_MAX_RESPONSE_BYTES = env_int("KILN_MAX_RESPONSE_BYTES", 5 * 1024 * 1024)
KILN_TOKEN_MAX_AGE_DAYS = env_int("KILN_TOKEN_MAX_AGE_DAYS", 90)
KILN_LOGIN_MAX_FAILURES = env_int("KILN_LOGIN_MAX_FAILURES", 5)
KILN_LOGIN_LOCKOUT_SECONDS = env_int("KILN_LOGIN_LOCKOUT_SECONDS", 900)
# Failures from one address, whatever the usernames, before that address is locked out.
KILN_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("KILN_LOGIN_MAX_FAILURES_PER_ADDRESS", 50)
# Addresses/CIDRs of the proxies in front of Kiln: X-Forwarded-For is believed only from them.
KILN_TRUSTED_PROXIES = env_list("KILN_TRUSTED_PROXIES")
KILN_ROW_RESULT_RETENTION_DAYS = env_int("KILN_ROW_RESULT_RETENTION_DAYS", 30)
KILN_INBOUND_MAX_BYTES = env_int("KILN_INBOUND_MAX_BYTES", 1024 * 1024)
# A run is worked in slices; a worker's claim on a run lapses if not renewed within the lease.
KILN_SYNC_LEASE_SECONDS = env_int("KILN_SYNC_LEASE_SECONDS", 20)
KILN_SYNC_SLICE_SECONDS = env_int("KILN_SYNC_SLICE_SECONDS", 50)
KILN_PUBLIC_URL = env_str("KILN_PUBLIC_URL", "http://127.0.0.1:8000")

# Notifications by email (integrations/notify.py): Django's SMTP backend, set from here.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "kiln@localhost")

# The JSON API (console/api/): personal tokens, throttled per token (per user for a session).
KILN_API_RATE = env_str("KILN_API_RATE", "1200/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "console.api.auth.BearerTokenAuthentication",
        "console.api.auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["console.api.auth.SignedIn"],
    "DEFAULT_THROTTLE_CLASSES": ["console.api.auth.PerTokenThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api": KILN_API_RATE},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "console.api.schema.KilnAutoSchema",
    "EXCEPTION_HANDLER": "console.api.errors.handle",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kiln API",
    "DESCRIPTION": "Everything a Kiln user can click, for scripts. Send a personal token "
    "(Account → API tokens) as `Authorization: Bearer <token>`; it acts with its owner's role.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatus": "integrations.models.SyncRun.Status",
        "RowStatus": "integrations.models.RowResult.Status",
    },
}

# Production hardening: on whenever DEBUG is off; each can be relaxed behind a TLS proxy.
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "integrations.outbound.http.RedactingFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # httpx logs every full request URL at INFO, and a Clay webhook URL is a secret.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
