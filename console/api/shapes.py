"""What the API answers: plain dicts built by small functions (fast at 100 rows a page), and
the serializers that document them in the OpenAPI document.

The tests check every answer against the document, so a field added to a function and not to
its serializer (or the other way round) fails them.
"""

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from integrations.models import RowResult, Sync, SyncRun

# -- documentation -----------------------------------------------------------------------------


class ErrorBody(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, for scripts: `not_found`, `refused`, …")
    message = serializers.CharField(help_text="The sentence the console shows, for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Invalid input only: each parameter and what is wrong with it.",
    )


class Error(serializers.Serializer):
    error = ErrorBody()


class Ref(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class SecretState(serializers.Serializer):
    """When a secret was set and whether it is old; never the secret or any part of it."""

    set_at = serializers.DateTimeField()
    age_days = serializers.IntegerField()
    stale = serializers.BooleanField(help_text="Older than KILN_TOKEN_MAX_AGE_DAYS.")


class Stage(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField(allow_null=True)
    summary = serializers.CharField(allow_blank=True)
    detail = serializers.CharField(allow_blank=True)
    elapsed_ms = serializers.IntegerField()


class ConnectionTest(serializers.Serializer):
    at = serializers.DateTimeField(allow_null=True)
    ok = serializers.BooleanField(allow_null=True)
    stages = Stage(many=True)


class Connection(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    name = serializers.CharField()
    base_url = serializers.CharField()
    environment = serializers.ChoiceField(choices=["dev", "staging", "prod"])
    token = SecretState()
    last_test = ConnectionTest()
    server_version = serializers.CharField(allow_null=True)
    schema_fetched_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DestinationTest(serializers.Serializer):
    at = serializers.DateTimeField(allow_null=True)
    ok = serializers.BooleanField(allow_null=True)


class Submissions(serializers.Serializer):
    count = serializers.IntegerField()
    cap = serializers.IntegerField()
    remaining = serializers.IntegerField()
    level = serializers.ChoiceField(choices=["ok", "warning", "critical", "full"])


class Destination(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    name = serializers.CharField()
    webhook_url = SecretState()
    has_auth_token = serializers.BooleanField()
    submissions = Submissions()
    last_test = DestinationTest()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SavedQuery(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    name = serializers.CharField()
    connection = Ref()
    collection = serializers.CharField()
    query_string = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class Template(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    name = serializers.CharField()
    kind = serializers.CharField()
    connection = serializers.IntegerField(allow_null=True)
    collection = serializers.CharField(allow_blank=True)
    saved_query = serializers.IntegerField(allow_null=True)
    body = serializers.CharField(allow_blank=True)
    options = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RunRef(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    status = serializers.ChoiceField(choices=SyncRun.Status.choices)
    created_at = serializers.DateTimeField()


class SyncOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    runs_url = serializers.URLField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Sync.Kind.choices)
    mode = serializers.ChoiceField(choices=Sync.Mode.choices)
    saved_query = serializers.IntegerField(allow_null=True)
    destination = serializers.IntegerField(allow_null=True)
    template = serializers.IntegerField(allow_null=True)
    connection = serializers.IntegerField(allow_null=True)
    collection = serializers.CharField(allow_blank=True)
    write_mode = serializers.ChoiceField(choices=Sync.WriteMode.choices)
    match_field = serializers.CharField(allow_blank=True)
    row_key = serializers.CharField()
    rate_limit = serializers.FloatField()
    concurrency = serializers.IntegerField()
    page_size = serializers.IntegerField()
    schedule = serializers.CharField(allow_blank=True)
    paused = serializers.BooleanField()
    last_run = RunRef(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RunCounts(serializers.Serializer):
    total = serializers.IntegerField(help_text="Rows recorded.")
    sent = serializers.IntegerField()
    skipped = serializers.IntegerField()
    failed = serializers.IntegerField()
    resent = serializers.IntegerField(help_text="Rows a crash may have sent twice.")
    expected = serializers.IntegerField(allow_null=True, help_text="Rows the run set out to read.")
    unread = serializers.IntegerField(
        allow_null=True, help_text="Rows never read because the read stopped."
    )


class Run(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    results_url = serializers.URLField()
    sync = Ref()
    status = serializers.ChoiceField(choices=SyncRun.Status.choices)
    active = serializers.BooleanField(help_text="Queued or running: poll until false.")
    trigger = serializers.ChoiceField(choices=SyncRun.Trigger.choices)
    dry_run = serializers.BooleanField()
    started_by = serializers.CharField(allow_null=True)
    retry_of = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    counts = RunCounts()
    progress_percent = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    read_failed = serializers.BooleanField()
    last_error = serializers.CharField(allow_blank=True)


class Cause(serializers.Serializer):
    status = serializers.ChoiceField(choices=RowResult.Status.choices)
    error_code = serializers.CharField(allow_blank=True)
    count = serializers.IntegerField()


class RunDetail(Run):
    causes = Cause(many=True, help_text="Failed and skipped rows per error code.")
    csv_url = serializers.URLField()


class RowOut(serializers.Serializer):
    id = serializers.IntegerField()
    row_key = serializers.CharField()
    status = serializers.ChoiceField(choices=RowResult.Status.choices)
    http_status = serializers.IntegerField(allow_null=True)
    error_code = serializers.CharField(allow_blank=True)
    error_message = serializers.CharField(allow_blank=True)
    attempts = serializers.IntegerField()
    duration_ms = serializers.IntegerField()
    resent = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class RowDetail(RowOut):
    payload_hash = serializers.CharField(allow_blank=True)
    request_excerpt = serializers.CharField(allow_blank=True)
    response_excerpt = serializers.CharField(allow_blank=True)
    timeline_url = serializers.URLField(allow_null=True)


class Page(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page, or null at the end.")
    previous = serializers.URLField(allow_null=True)


class RunPage(Page):
    results = Run(many=True)


class Search(serializers.Serializer):
    window = serializers.IntegerField(help_text="Rows with an error one request reads at most.")
    statuses = serializers.ListField(child=serializers.CharField())
    stopped_at = serializers.IntegerField(
        allow_null=True, help_text="Row id the search reached without filling the page."
    )
    search_further = serializers.URLField(
        allow_null=True, help_text="Continue the search from where it stopped."
    )


class RowPage(Page):
    results = RowOut(many=True)
    search = Search(allow_null=True)


class TimelineEvent(serializers.Serializer):
    step = serializers.CharField()
    ok = serializers.BooleanField()
    at = serializers.DateTimeField()
    detail = serializers.CharField(allow_blank=True)
    run = serializers.IntegerField(allow_null=True)


class Timeline(serializers.Serializer):
    kiln_row_id = serializers.CharField()
    sync = Ref(allow_null=True)
    collection = serializers.CharField(allow_blank=True)
    directus_key = serializers.CharField(allow_blank=True)
    step = serializers.CharField()
    ok = serializers.BooleanField()
    step_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    events = TimelineEvent(many=True)


class CountOut(serializers.Serializer):
    saved_query = serializers.IntegerField()
    collection = serializers.CharField()
    filter_count = serializers.IntegerField(allow_null=True)


class Me(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=["viewer", "operator", "admin"])
    token = serializers.CharField(allow_null=True, help_text="The token's name; null in a session.")


def listing(item):
    """A list of small objects (connections, syncs…), unpaged like the console's lists."""

    class Listing(serializers.Serializer):
        results = item(many=True)

    Listing.__name__ = f"{item.__name__}List"
    return Listing


# -- building --------------------------------------------------------------------------------


def url(request, name, *args, query=""):
    return request.build_absolute_uri(reverse(f"api:{name}", args=args)) + query


def _ref(obj):
    return {"id": obj.pk, "name": obj.name} if obj is not None else None


def _secret_state(secret):
    return {
        "set_at": secret.set_at,
        "age_days": secret.age.days,
        "stale": secret.age.days > settings.KILN_TOKEN_MAX_AGE_DAYS,
    }


STAGE_FIELDS = ("name", "ok", "summary", "detail", "elapsed_ms")


def connection(request, c):
    stages = c.last_test_result if isinstance(c.last_test_result, list) else []
    return {
        "id": c.pk,
        "url": url(request, "connection", c.pk),
        "name": c.name,
        "base_url": c.display_url,
        "environment": c.environment,
        "token": _secret_state(c.token),
        "last_test": {
            "at": c.last_test_at,
            "ok": c.last_test_ok,
            "stages": [
                {
                    k: s.get(k, None if k == "ok" else 0 if k == "elapsed_ms" else "")
                    for k in STAGE_FIELDS
                }
                for s in stages
                if isinstance(s, dict)
            ],
        },
        "server_version": (c.server_info or {}).get("version") or None,
        "schema_fetched_at": c.schema_fetched_at,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def destination(request, d):
    return {
        "id": d.pk,
        "url": url(request, "destination", d.pk),
        "name": d.name,
        "webhook_url": _secret_state(d.webhook_url),
        "has_auth_token": d.auth_token_id is not None,
        "submissions": {
            "count": d.submissions_count,
            "cap": d.SUBMISSION_CAP,
            "remaining": d.cap_remaining,
            "level": d.cap_level,
        },
        "last_test": {"at": d.last_test_at, "ok": d.last_test_ok},
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def saved_query(request, q):
    return {
        "id": q.pk,
        "url": url(request, "query", q.pk),
        "name": q.name,
        "connection": _ref(q.connection),
        "collection": q.collection,
        "query_string": q.query_string,
        "created_at": q.created_at,
        "updated_at": q.updated_at,
    }


def template(request, t):
    return {
        "id": t.pk,
        "url": url(request, "template", t.pk),
        "name": t.name,
        "kind": t.kind,
        "connection": t.connection_id,
        "collection": t.collection,
        "saved_query": t.saved_query_id,
        "body": t.body,
        "options": t.options if isinstance(t.options, dict) else {},
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def sync(request, s):
    last = None
    if getattr(s, "last_run_id", None):
        last = {
            "id": s.last_run_id,
            "url": url(request, "run", s.last_run_id),
            "status": s.last_run_status,
            "created_at": s.last_run_created_at,
        }
    return {
        "id": s.pk,
        "url": url(request, "sync", s.pk),
        "runs_url": url(request, "runs", query=f"?sync={s.pk}"),
        "name": s.name,
        "kind": s.kind,
        "mode": s.mode,
        "saved_query": s.saved_query_id,
        "destination": s.destination_id,
        "template": s.template_id,
        "connection": s.connection_id,
        "collection": s.collection,
        "write_mode": s.write_mode,
        "match_field": s.match_field,
        "row_key": s.row_key,
        "rate_limit": s.rate_limit,
        "concurrency": s.concurrency,
        "page_size": s.page_size,
        "schedule": s.schedule,
        "paused": s.paused,
        "last_run": last,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def run(request, r):
    duration = r.duration
    return {
        "id": r.pk,
        "url": url(request, "run", r.pk),
        "results_url": url(request, "run-results", r.pk),
        "sync": {"id": r.sync_id, "name": r.sync.name},
        "status": r.status,
        "active": r.is_active,
        "trigger": r.trigger,
        "dry_run": r.dry_run,
        "started_by": r.started_by.username if r.started_by_id and r.started_by else None,
        "retry_of": r.retry_of_id,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_seconds": round(duration.total_seconds(), 3) if duration is not None else None,
        "counts": {
            "total": r.total,
            "sent": r.sent,
            "skipped": r.skipped,
            "failed": r.failed,
            "resent": r.resent,
            "expected": r.expected_total,
            "unread": r.unread,
        },
        "progress_percent": r.progress_percent,
        "cancel_requested": r.cancel_requested,
        "read_failed": r.read_failed,
        "last_error": r.last_error,
    }


def row(r):
    return {
        "id": r.id,
        "row_key": r.row_key,
        "status": r.status,
        "http_status": r.http_status,
        "error_code": r.error_code,
        "error_message": r.error_message,
        "attempts": r.attempts,
        "duration_ms": r.duration_ms,
        "resent": r.resent,
        "created_at": r.created_at,
    }


def timeline(trace, events):
    return {
        "kiln_row_id": trace.kiln_row_id,
        "sync": _ref(trace.sync),
        "collection": trace.collection,
        "directus_key": trace.directus_key,
        "step": trace.step,
        "ok": trace.ok,
        "step_at": trace.step_at,
        "created_at": trace.created_at,
        "events": [
            {"step": e.step, "ok": e.ok, "at": e.at, "detail": e.detail, "run": e.run_id}
            for e in events
        ],
    }
