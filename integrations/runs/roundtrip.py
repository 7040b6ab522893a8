"""One row id across the round trip: Directus item → Clay → enriched row back → Directus.

Every row Kiln sends to Clay carries four fields the enriched row brings back:
`kiln_row_id`, `kiln_sync`, `kiln_collection` and `kiln_directus_key`. A write-back route
that receives a row with a known `kiln_row_id` links it to the row's `RowTrace`, so one page
shows queued → sent to Clay → enriched row received → written to Directus, or the step that
failed and why.

The Directus → Clay engine derives the id from (sync, Directus key) rather than drawing a
fresh one: the same row sent by the next run has the same id, so the payload hash that "skip
unchanged" compares stays stable, a Clay table that re-runs a column sends back an id that
still resolves, and the trace keeps one timeline per row (each event names its run). Example:
sync 3, key "505" → "kr_" + the first 20 hex digits of sha256("3:505"). Relay events use
`kr_<inbound row id>_<n>` (one id per event row); the two forms never collide.

Traces are written in batches, a few statements per window or batch whatever its number of
rows, never one per row.
"""

import hashlib
from collections import defaultdict

from integrations.models import RowTrace, RowTraceEvent
from integrations.outbound import http
from integrations.runs import bulk

ROW_ID_FIELD = "kiln_row_id"
STAMP_FIELDS = (ROW_ID_FIELD, "kiln_sync", "kiln_collection", "kiln_directus_key")


def row_id_for(sync_id, directus_key) -> str:
    """The stable Kiln row id of one Directus item in one sync."""
    digest = hashlib.sha256(f"{sync_id}:{directus_key}".encode()).hexdigest()
    return "kr_" + digest[:20]


def stamp(value, sync_id, collection: str, directus_key: str, row_id: str | None = None):
    """The rendered row with the round-trip fields added; a value that is not an object is kept as is."""
    if not isinstance(value, dict):
        return value
    return {
        **value,
        ROW_ID_FIELD: row_id or row_id_for(sync_id, directus_key),
        "kiln_sync": sync_id,
        "kiln_collection": collection,
        "kiln_directus_key": str(directus_key),
    }


def record_steps(steps, run=None) -> int:
    """steps: [(kiln_row_id, step, ok, detail, at, extra)]; ids without a trace are ignored."""
    ids = {s[0] for s in steps if s[0]}
    if not ids:
        return 0
    traces = dict(RowTrace.objects.filter(kiln_row_id__in=ids).values_list("kiln_row_id", "pk"))
    events, latest = [], {}
    for kiln_row_id, step, ok, detail, at, extra in steps:
        trace_pk = traces.get(kiln_row_id)
        if trace_pk is None:
            continue
        events.append(
            RowTraceEvent(
                trace_id=trace_pk,
                step=step,
                ok=ok,
                detail=http.redact(detail)[:2000],
                at=at,
                run=run,
            )
        )
        latest[trace_pk] = (step, ok, at, tuple(sorted((extra or {}).items())))
    groups = defaultdict(list)
    for trace_pk, state in latest.items():
        groups[state].append(trace_pk)
    for (step, ok, at, extra), pks in groups.items():
        RowTrace.objects.filter(pk__in=pks).update(step=step, ok=ok, step_at=at, **dict(extra))
    RowTraceEvent.objects.bulk_create(events)
    return len(events)


def start_traces(sync, collection, keys_and_ids, run=None, at=None, detail="") -> None:
    """Traces for rows about to go to Clay, [(directus key, kiln_row_id)], at step "queued"."""
    from django.utils import timezone

    at = at or timezone.now()
    _create_traces(sync, collection, keys_and_ids, at)
    record_steps(
        [(rid, RowTrace.Step.QUEUED, True, detail, at, None) for _, rid in keys_and_ids], run
    )


def _create_traces(sync, collection, keys_and_ids, at):
    RowTrace.objects.bulk_create(
        [
            RowTrace(
                kiln_row_id=rid,
                sync=sync,
                collection=collection,
                directus_key=str(key)[:200],
                step=RowTrace.Step.QUEUED,
                step_at=at,
                created_at=at,
            )
            for key, rid in keys_and_ids
        ],
        ignore_conflicts=True,  # the engine's ids are stable: a row sent before has its trace
    )


def record_sent(sync, run, collection: str, outcomes, queued_at, sent_at) -> int:
    """The engine's window, recorded: queued, then sent (or failed, with the reason), per row sent.

    `outcomes` are the sender's RowOutcomes of rows that went to Clay (sent or failed after
    trying); rows skipped, unrendered or never sent have no trace. This runs once per window
    on the engine's hot path, so rows go in as plain tuples (bulk.insert), not model objects:
    a SELECT of the traces that exist, an INSERT of the others, one UPDATE per outcome for
    the existing ones (none on a first run), a SELECT of the new ids and two INSERTs of events.
    """
    if not outcomes:
        return 0
    ids = {o.key: row_id_for(sync.pk, o.key) for o in outcomes}
    # Traces of rows an earlier run sent already exist: those move on to this run's outcome;
    # the others are created at this step. (On a first run no UPDATE is needed at all.)
    pks = bulk.lookup(RowTrace, "kiln_row_id", "id", ids.values())
    new = [o for o in outcomes if ids[o.key] not in pks]
    bulk.insert(
        RowTrace,
        ["kiln_row_id", "directus_key", "ok"],
        [(ids[o.key], o.key[:200], o.status == "sent") for o in new],
        constants={
            "sync": sync.pk,
            "collection": collection,
            "step": RowTrace.Step.SENT,
            "step_at": sent_at,
            "created_at": queued_at,
        },
        ignore_conflicts=True,
    )
    for ok in (True, False):
        group = [
            pks[ids[o.key]] for o in outcomes if ids[o.key] in pks and (o.status == "sent") == ok
        ]
        if group:
            RowTrace.objects.filter(pk__in=group).update(
                step=RowTrace.Step.SENT, ok=ok, step_at=sent_at
            )
    if new:
        pks.update(bulk.lookup(RowTrace, "kiln_row_id", "id", [ids[o.key] for o in new]))
    bulk.insert(
        RowTraceEvent,
        ["trace"],
        [(pks[rid],) for rid in ids.values()],
        constants={
            "step": RowTrace.Step.QUEUED,
            "ok": True,
            "at": queued_at,
            "run": run.pk,
            "detail": f"Read from Directus by run #{run.pk}.",
        },
    )
    sent = []
    for o in outcomes:
        if o.status == "sent":
            detail = f"Clay accepted the row (HTTP {o.http_status})."
        else:
            status = f" (HTTP {o.http_status})" if o.http_status else ""
            detail = http.redact(f"{o.error_code or 'FAILED'}: {o.error_message}{status}")[:2000]
        sent.append((pks[ids[o.key]], o.status == "sent", detail))
    bulk.insert(
        RowTraceEvent,
        ["trace", "ok", "detail"],
        sent,
        constants={"step": RowTrace.Step.SENT, "at": sent_at, "run": run.pk},
    )
    return 2 * len(outcomes)


def record_window(run, window, outcomes, now) -> int:
    """The engine's hook: trace the rows of a window that went to Clay (not dry runs, not skipped)."""
    sent_keys = {job.key for job in window.jobs}
    tried = [o for o in outcomes if o.key in sent_keys and o.status in ("sent", "failed")]
    if run.dry_run or not tried:
        return 0
    sync = run.sync
    return record_sent(
        sync, run, sync.saved_query.collection, tried, getattr(window, "queued_at", now), now
    )
