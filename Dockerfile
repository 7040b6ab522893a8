# Production image: gunicorn serving console.asgi on :8000, static files by whitenoise.
# The same image runs the Celery worker and beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 --user-group kiln
WORKDIR /app

# Dependencies first, from the lockfile alone, so code changes reuse this layer: the versions
# the tests ran (bin/lock writes it from pyproject.toml), each file checked against its hash.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# Only what runs in production: never .env, var/ (dev.env, SQLite), .venv, tests or bench.
COPY --chown=kiln:kiln manage.py ./
COPY --chown=kiln:kiln console ./console
COPY --chown=kiln:kiln integrations ./integrations
COPY --chown=kiln:kiln templates ./templates
COPY --chown=kiln:kiln static ./static
# collectstatic imports settings, which need some SECRET_KEY; this one exists only at build time.
RUN SECRET_KEY=collectstatic-build-only DEBUG=false python manage.py collectstatic --noinput \
    && mkdir -p /app/var && chown kiln:kiln /app/var

USER kiln
EXPOSE 8000
# gunicorn's asgi worker: an event loop reads request bodies, so slow clients (a body trickled
# to /in/<route>/) cannot hold a worker; views run in threads (bench/slowclients.py).
# --reuse-port: each worker listens on its own socket and the kernel spreads connections over
# them. On one shared socket the first worker to wake accepted a whole burst of keep-alive
# connections (Clay's, a proxy's) and served them alone while the others idled: 1 of 3 workers
# busy under bench/inbound.py.
CMD ["gunicorn", "console.asgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "asgi", "--reuse-port", "--access-logfile", "-"]
