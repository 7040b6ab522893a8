"""Where a run's rows come from: keyset pages of a saved query, or the failed rows of a run.

A source yields `Window`s (one Directus page each) with the cursor to resume after them, so
the engine holds one or two pages at a time whatever the size of the collection.
"""

from dataclasses import dataclass, field

from integrations.directus.client import DirectusError
from integrations.models import RowResult, SyncRun

# Incremental syncs compare this field, and fall back to date_created for items never updated.
UPDATED, CREATED = "date_updated", "date_created"


@dataclass
class Window:
    cursor: object  # JSON value: resume after it
    items: list
    missing: list = field(default_factory=list)  # keys asked for that Directus no longer has
    # The read started over (rows before its position moved): items may repeat earlier ones.
    rescanned: bool = False


def key_of(item, pk) -> str:
    return str(item.get(pk)) if isinstance(item, dict) else ""


def timestamp_of(item, sync) -> str:
    """The item's change time for the high-water mark ("" if it has none)."""
    value = item.get(sync.timestamp_field) if isinstance(item, dict) else None
    if value is None and sync.timestamp_field == UPDATED:
        value = item.get(CREATED)
    return str(value) if value else ""


def changed_since(sync, since: str) -> dict:
    """The Directus filter for items changed at or after `since` (date_created if never updated).

    `>=`, not `>`: Directus stores dateTime with milliseconds but answers whole seconds, so a
    row changed later within the mark's second still compares equal to the mark. The rows the
    last run already read at its mark are skipped by the engine when unchanged (their hash).
    """
    ts = sync.timestamp_field or UPDATED
    if ts != UPDATED:
        return {ts: {"_gte": since}}
    return {
        "_or": [
            {UPDATED: {"_gte": since}},
            {"_and": [{UPDATED: {"_null": True}}, {CREATED: {"_gte": since}}]},
        ]
    }


def last_mark(sync) -> tuple[str, dict]:
    """(mark, {key: hash} of the rows at it) of the last incremental run whose read completed.

    A run moves the mark when it read everything, whatever happened to single rows; retries,
    dry runs and runs whose read stopped do not move it.
    """
    run = (
        SyncRun.objects.filter(sync=sync, dry_run=False)
        .exclude(trigger=SyncRun.Trigger.RETRY)
        .exclude(high_water_mark="")
        .order_by("-created_at", "-id")
        .first()
    )
    if run is None:
        return "", {}
    return run.high_water_mark, (run.checkpoint or {}).get("boundary") or {}


def newest_change(directus, sync, since: str = "") -> str | None:
    """The newest change time among the rows the run will read, as the read begins.

    The mark never moves past it, so a row changed while the run reads is read again next
    time. None when Directus will not aggregate for this token (the mark is then not capped).
    """
    plan = plan_for(sync, since)
    ts = sync.timestamp_field or UPDATED
    names = [ts] + ([CREATED] if ts == UPDATED else [])
    params = {"aggregate[max]": ",".join(names)}
    if plan.filter:
        params["filter"] = plan.filter
    try:
        page = directus.list_items(plan.collection, params)
    except DirectusError:
        return None
    row = page.data[0] if page.data and isinstance(page.data[0], dict) else {}
    values = [str(v) for v in ((row.get("max") or {}).values()) if v]
    return max(values) if values else None


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


def query_windows(directus, sync, *, since="", after=None, page_size=None):
    """Pages of the sync's saved query, from after `after` (see DirectusClient.iter_items)."""
    plan = plan_for(sync, since)
    page_size = page_size or sync.page_size
    pages = directus.iter_items(
        plan.collection,
        pk=sync.row_key,
        page_size=page_size,
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
        yield Window(page.cursor, items, rescanned=page.rescanned)


def retry_windows(directus, run, *, after=None, page_size=None):
    """The failed rows of `run.retry_of`, re-read from Directus a page at a time.

    The cursor is the id of the original row result, so the order does not depend on how
    the keys sort; rows Directus no longer has come back as `missing`.
    """
    sync = run.sync
    page_size = page_size or sync.page_size
    failed = RowResult.objects.filter(
        run_id=run.retry_of_id, status=RowResult.Status.FAILED
    ).order_by("id")
    cursor = after or 0
    while True:
        chunk = list(failed.filter(id__gt=cursor).values_list("id", "row_key")[:page_size])
        if not chunk:
            return
        cursor = chunk[-1][0]
        keys = [key for _, key in chunk]
        plan = plan_for(sync)
        found = {}
        for page in directus.iter_items(
            plan.collection,
            pk=sync.row_key,
            page_size=page_size,
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
