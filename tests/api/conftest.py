"""What the API tests share: a small world of objects, a caller per role and token state."""

import datetime as dt
import types

import pytest
from django.test import Client
from django.utils import timezone

from console.models import ApiToken, User
from integrations.models import (
    DirectusConnection,
    MappingTemplate,
    RowResult,
    RowTrace,
    RowTraceEvent,
    SyncRun,
)
from integrations.runs import sources
from tests.conftest import make_user
from tests.console.test_syncs import fake_engine, make_sync
from tests.integrations import syncfixtures

# The loopback Directus and Clay of the engine's tests (test_flow.py).
directus, sink, fast_retries = syncfixtures.directus, syncfixtures.sink, syncfixtures.fast_retries

CALLERS = ["anonymous", "revoked", "expired", "viewer", "operator", "admin"]
RANK = {"viewer": 0, "operator": 1, "admin": 2}


def bearer(plaintext):
    return Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Users are made for every test here; their passwords need no real hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(db):
    return {role: make_user(role) for role in RANK}


@pytest.fixture
def tokens(users):
    """A live token per role, plus an admin's revoked token and an admin's expired one."""
    out = {}
    for role, user in users.items():
        out[role] = ApiToken.issue(user, f"{role} script")[1]
    revoked, out["revoked"] = ApiToken.issue(users["admin"], "old script")
    revoked.revoke(by=users["admin"])
    _, out["expired"] = ApiToken.issue(
        users["admin"], "short-lived", expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    return out


@pytest.fixture
def callers(tokens):
    clients = {name: bearer(value) for name, value in tokens.items()}
    clients["anonymous"] = Client()
    return clients


@pytest.fixture
def engine(monkeypatch):
    return fake_engine(monkeypatch)


@pytest.fixture
def world(users):
    """A sync with a finished run (failed rows, a traced row), an active run and a stopped read."""
    sync = make_sync()
    other = make_sync("Leads to Clay")
    template = MappingTemplate.objects.create(
        name="Clay row", kind="clay_row", body='{"id": {{id}}}'
    )
    sync.template = template
    sync.save()
    started = timezone.now() - dt.timedelta(minutes=5)
    run = SyncRun.objects.create(
        sync=sync,
        status=SyncRun.Status.PARTLY_FAILED,
        started_by=users["operator"],
        started_at=started,
        finished_at=started + dt.timedelta(minutes=2),
        expected_total=30,
        total=30,
        sent=24,
        failed=4,
        skipped=2,
    )
    rows = []
    for i in range(1, 31):
        status, code, message = "sent", "", ""
        if i % 7 == 0:
            status, code, message = "failed", "HTTP_422", f"Clay refused row {i}: bad email"
        elif i % 13 == 0:
            status, code, message = "skipped", "UNCHANGED", "Same payload as the last run."
        rows.append(
            RowResult(
                run=run,
                row_key=str(i),
                status=status,
                http_status=422 if status == "failed" else 200,
                error_code=code,
                error_message=message,
                attempts=1,
                duration_ms=12,
                request_excerpt=f'{{"id": {i}}}',
            )
        )
    RowResult.objects.bulk_create(rows)
    trace = RowTrace.objects.create(
        kiln_row_id="kr_0123456789abcdef0123", sync=sync, collection="articles", directus_key="1"
    )
    RowTraceEvent.objects.create(trace=trace, step=RowTrace.Step.QUEUED, run=run, detail="Read.")
    RowTraceEvent.objects.create(trace=trace, step=RowTrace.Step.SENT, run=run, detail="Sent.")
    active = SyncRun.objects.create(sync=other, status=SyncRun.Status.RUNNING, total=3, sent=3)
    stopped = SyncRun.objects.create(
        sync=sync,
        status=SyncRun.Status.PARTLY_FAILED,
        total=10,
        sent=10,
        expected_total=40,
        checkpoint={"read_failed": True, "cursor": 10},
    )
    return types.SimpleNamespace(
        sync=sync,
        other=other,
        run=run,
        active=active,
        stopped=stopped,
        row=run.results.order_by("id").first(),
        trace=trace,
        template=template,
        connection=sync.saved_query.connection,
        destination=sync.destination,
        query=sync.saved_query,
    )


@pytest.fixture
def offline(monkeypatch):
    """Tests and counts answer without Directus (their own tests use a fake Directus)."""

    def run_test(self):
        stages = [
            {"name": "reach", "ok": True, "summary": "Reached", "detail": "", "elapsed_ms": 3}
        ]
        DirectusConnection.objects.filter(pk=self.pk).update(last_test_ok=True)
        self.last_test_ok, self.last_test_result = True, stages
        return stages

    monkeypatch.setattr(DirectusConnection, "run_test", run_test)
    monkeypatch.setattr(sources, "count_rows", lambda directus, sync, since="": 42)


__all__ = ["CALLERS", "RANK", "User", "bearer"]
