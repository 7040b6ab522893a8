"""Where a run's rows come from: keyset pages of a saved query, or the failed rows of a run.

A source yields `Window`s (one Directus page each) with the cursor to resume after them, so
the engine holds one or two pages at a time whatever the size of the collection.
"""

from dataclasses import dataclass, field

from integrations.models import RowResult, SyncRun

# Incremental syncs compare this field, and fall back to date_created for items never updated.
UPDATED, CREATED = "date_updated", "date_created"


@dataclass
class Window:
    cursor: object  # JSON value: resume after it
    items: list
    missing: list = field(default_factory=list)  # keys asked for that Directus no longer has


def key_of(item, pk) -> str:
    return str(item.get(pk)) if isinstance(item, dict) else ""


def timestamp_of(item, sync) -> str:
    """The item's change time for the high-water mark ("" if it has none)."""
    value = item.get(sync.timestamp_field) if isinstance(item, dict) else None
    if value is None and sync.timestamp_field == UPDATED:
        value = item.get(CREATED)
    return str(value) if value else ""


def changed_since(sync, since: str) -> dict:
    """The Directus filter for items changed after `since` (date_created if never updated)."""
    ts = sync.timestamp_field or UPDATED
    if ts != UPDATED:
        return {ts: {"_gt": since}}
    return {
        "_or": [
            {UPDATED: {"_gt": since}},
            {"_and": [{UPDATED: {"_null": True}}, {CREATED: {"_gt": since}}]},
        ]
    }


def last_high_water_mark(sync) -> str:
    """The mark of the last successful full read (retries and dry runs do not move it)."""
    run = (
        SyncRun.objects.filter(sync=sync, status=SyncRun.Status.SUCCEEDED, dry_run=False)
        .exclude(trigger=SyncRun.Trigger.RETRY)
        .exclude(high_water_mark="")
        .order_by("-created_at", "-id")
        .first()
    )
    return run.high_water_mark if run else ""


def _all_of(*conditions):
    present = [c for c in conditions if c]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"_and": present}


@dataclass
class QueryPlan:
    """What to ask Directus for: collection, filter, fields, and fields we added to read."""

    collection: str
    filter: dict | None
    fields: list | None
    added_fields: tuple = ()


def plan_for(sync, since: str = "") -> QueryPlan:
    query = sync.saved_query.to_query()
    fields = getattr(query, "fields", None) or None
    if isinstance(fields, str):
        fields = fields.split(",")
    fields = [f.strip() for f in fields if f.strip()] if fields else None
    condition = query.filter_json()
    added = []
    if sync.mode == sync.Mode.INCREMENTAL:
        if since:
            condition = _all_of(condition, changed_since(sync, since))
        if fields and "*" not in fields:
            # The high-water mark needs the timestamps even when the query narrows fields.
            for name in (sync.timestamp_field, CREATED):
                if name and name not in fields:
                    fields.append(name)
                    added.append(name)
    return QueryPlan(sync.saved_query.collection, condition, fields, tuple(added))


def count_rows(directus, sync, since: str = "") -> int | None:
    """How many items the run will read (meta=filter_count), or None if Directus won't say."""
    plan = plan_for(sync, since)
    params = {"limit": 1, "fields": sync.row_key, "meta": "filter_count"}
    if plan.filter:
        params["filter"] = plan.filter
    page = directus.list_items(plan.collection, params)
    count = (page.meta or {}).get("filter_count")
    return int(count) if count is not None else None


def query_windows(directus, sync, *, since="", after=None):
    """Keyset pages of the sync's saved query, from after `after`."""
    plan = plan_for(sync, since)
    pages = directus.iter_items(
        plan.collection,
        pk=sync.row_key,
        page_size=sync.page_size,
        filter=plan.filter,
        fields=plan.fields,
        after=after,
        pages=True,
    )
    for page in pages:
        items = page.data
        if plan.added_fields:
            for item in items:
                for name in plan.added_fields:
                    item.pop(name, None)
        yield Window(items[-1].get(sync.row_key), items)


def retry_windows(directus, run, *, after=None):
    """The failed rows of `run.retry_of`, re-read from Directus a page at a time.

    The cursor is the id of the original row result, so the order does not depend on how
    the keys sort; rows Directus no longer has come back as `missing`.
    """
    sync = run.sync
    failed = RowResult.objects.filter(
        run_id=run.retry_of_id, status=RowResult.Status.FAILED
    ).order_by("id")
    cursor = after or 0
    while True:
        chunk = list(failed.filter(id__gt=cursor).values_list("id", "row_key")[: sync.page_size])
        if not chunk:
            return
        cursor = chunk[-1][0]
        keys = [key for _, key in chunk]
        plan = plan_for(sync)
        found = {}
        for page in directus.iter_items(
            plan.collection,
            pk=sync.row_key,
            page_size=sync.page_size,
            filter={sync.row_key: {"_in": keys}},
            fields=plan.fields,
            pages=True,
        ):
            for item in page.data:
                for name in plan.added_fields:
                    item.pop(name, None)
                found[key_of(item, sync.row_key)] = item
        yield Window(
            cursor, [found[k] for k in keys if k in found], [k for k in keys if k not in found]
        )
