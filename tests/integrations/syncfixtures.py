"""Objects and loopback fakes the sync engine tests share (test_sync, test_worker)."""

import pytest

from bench.fakes import FakeDirectus, FakeSink
from integrations.clay import sender
from integrations.models import (
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    SavedQuery,
    Secret,
    Sync,
    SyncRun,
)
from integrations.runs import engine

DIRECTUS_TOKEN = "directus-static-token-1234"
CLAY_TOKEN = "clay-webhook-auth-token-5678"
HOOK_PATH = "/webhook/pull-in-data-from-a-webhook-0f3a9c2e"
TEMPLATE = '{"id": {{id}}, "title": "{{title}}", "email": "{{email}}", "source": "kiln"}'


@pytest.fixture
def directus():
    with FakeDirectus(50, token=DIRECTUS_TOKEN) as server:
        yield server


@pytest.fixture
def sink():
    with FakeSink(token=CLAY_TOKEN) as server:
        yield server


@pytest.fixture
def fast_retries(monkeypatch, settings):
    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.01)
    monkeypatch.setattr(engine, "CONTROL_INTERVAL", 0.05)
    settings.KILN_RATE_LIMIT_REDIS_URL = ""
    settings.KILN_OUTBOUND_TIMEOUT = 2


def make_sync(directus, sink, *, name="Articles to Clay", query="", template=TEMPLATE, **options):
    connection = DirectusConnection.objects.create(
        name=f"{name} Directus", base_url=directus.url, token=Secret.seal(DIRECTUS_TOKEN)
    )
    destination = ClayDestination.objects.create(
        name=f"{name} table",
        webhook_url=Secret.seal(sink.url + HOOK_PATH),
        auth_token=Secret.seal(CLAY_TOKEN),
    )
    saved = SavedQuery.objects.create(
        connection=connection, name="articles", collection="articles", query_string=query
    )
    mapping = None
    if template is not None:
        mapping = MappingTemplate.objects.create(name=f"{name} row", kind="clay_row", body=template)
    options = {"rate_limit": 0, "concurrency": 4, "page_size": 10, **options}
    return Sync.objects.create(
        name=name, saved_query=saved, destination=destination, template=mapping, **options
    )


def run_to_end(run, *, max_seconds=30, worker_id="test-worker"):
    """Work a run slice after slice, as the task would; return it fresh from the database."""
    for _ in range(1000):
        if not engine_slice(run.pk, worker_id, max_seconds):
            break
    return SyncRun.objects.get(pk=run.pk)


def engine_slice(run_id, worker_id, max_seconds):
    from integrations.runs import sync

    return sync.execute_slice(run_id, worker_id=worker_id, max_seconds=max_seconds)


def results_by_key(run):
    return {r.row_key: r for r in run.results.all()}
