"""Settings for bench/inbound.py's gunicorn: console.settings plus one bare view's URL."""

from console.settings import *  # noqa: F403

ROOT_URLCONF = "bench.inbound_urls"
