"""Rows coming in: inbound receipts, CSV uploads and relay events, stored before anything else.

Receiving stores first and works later: `accept()` writes the receipt and its rows in one
transaction and only then does the endpoint answer 202, so a row is never lost when workers
are busy, down or the broker is away — the periodic `sweep()` finds what waits. The same row
sent twice has the same `dedup_key` (sha256 of its canonical JSON), unique per route, so it is
stored, and applied, once. The runs that work these rows are in inbound_run.py.
"""

import functools
import json
import logging
import time
import uuid

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from integrations import jsontext
from integrations.mapping import templates as mapping
from integrations.models import (
    InboundReceipt,
    InboundRoute,
    InboundRow,
    RowResult,
    SyncRun,
)
from integrations.runs import queue, roundtrip

logger = logging.getLogger(__name__)

WAKE_DEBOUNCE_SECONDS = 2
ROW_ID_FIELD = roundtrip.ROW_ID_FIELD
Status = RowResult.Status


class BadPayload(ValueError):
    """The request body is not what an inbound route takes; the message names the problem."""


# -- receiving ---------------------------------------------------------------------------------


def parse_body(raw: bytes, *, relay: bool) -> list[dict]:
    """The rows in a request body: one JSON object, or a list of objects (not for a relay).

    Every body Kiln could not store or process is refused with a reason (see jsontext.loads):
    nesting deeper than 64, NaN/Infinity/1e400, integers of more than 4,300 digits, and
    strings with NUL or a lone surrogate ("\\u0000", "\\ud800"), which PostgreSQL's jsonb refuses.
    """
    if not raw.strip():
        raise BadPayload("The body is empty: send one row as a JSON object, or several as a list.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"The body is not UTF-8 (byte {exc.start}).") from None
    try:
        value = jsontext.loads(text)
    except json.JSONDecodeError as exc:
        raise BadPayload(
            f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from None
    except jsontext.JSONRefused as exc:
        raise BadPayload(str(exc)) from None
    if relay:
        # Kiln's Flow sends {"trigger": {{$trigger}}, "accountability": {{$accountability}}};
        # a Flow made before (or by hand) sends the bare trigger. Both are stored as received.
        trigger = (
            value.get("trigger") if isinstance(value, dict) and "event" not in value else value
        )
        if not isinstance(trigger, dict) or not isinstance(trigger.get("event"), str):
            raise BadPayload(
                'A relay takes a Directus Flow trigger: an object with "event", '
                '"collection" and "key" or "keys" (send {"trigger": "{{$trigger}}", '
                '"accountability": "{{$accountability}}"} as the body, or {{$trigger}}).'
            )
        return [value]
    rows = value if isinstance(value, list) else [value]
    if not rows:
        raise BadPayload("The body is an empty list: send at least one row.")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            where = f"Element {index} of the list" if isinstance(value, list) else "The body"
            raise BadPayload(f"{where} is {_json_type(row)}, not a JSON object (one row).")
    return rows


def _json_type(value) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        list: "a list",
        type(None): "null",
    }.get(type(value), "not an object")


def row_hash(row: dict) -> str:
    return mapping.payload_hash(row)


def accept(
    route: InboundRoute, rows: list[dict], *, size: int, remote_ip=None, relay=False
) -> InboundReceipt:
    """Store the receipt and its new rows durably; duplicates of stored rows are counted, not kept."""
    now = timezone.now()
    keyed = {}
    for row in rows:
        # A relay event is never a duplicate: two identical updates are two events.
        key = uuid.uuid4().hex if relay else row_hash(row)
        keyed.setdefault(key, row)
    receipt = InboundReceipt(
        route=route, received_at=now, size=size, rows=len(rows), remote_ip=remote_ip or None
    )
    fresh = [
        InboundRow(
            route=route,
            dedup_key=key,
            data=row,
            created_at=now,
            kiln_row_id=str(row.get(ROW_ID_FIELD) or "")[:40],
        )
        for key, row in keyed.items()
    ]
    if connection.vendor == "postgresql" and len(fresh) <= ONE_STATEMENT_ROWS:
        _store_in_one_statement(receipt, fresh)
    else:
        _store(receipt, fresh)
    return receipt


# The endpoint's usual request is one row; PostgreSQL stores it and its receipt in one
# statement (one round trip, committed on its own) instead of five: begin, look up duplicates,
# insert the receipt, insert the rows, commit. Bigger bodies take the general path, which
# keeps a statement's parameters well under PostgreSQL's 65,535.
ONE_STATEMENT_ROWS = 500


def _store(receipt: InboundReceipt, fresh: list[InboundRow]):
    with transaction.atomic():
        known = set(
            InboundRow.objects.filter(
                route=receipt.route, dedup_key__in=[row.dedup_key for row in fresh]
            ).values_list("dedup_key", flat=True)
        )
        fresh = [row for row in fresh if row.dedup_key not in known]
        receipt.duplicates = receipt.rows - len(fresh)
        receipt.save()
        for row in fresh:
            row.receipt = receipt
        # A concurrent request with the same row: stored once (counted fresh by both).
        InboundRow.objects.bulk_create(fresh, ignore_conflicts=True)


def _store_in_one_statement(receipt: InboundReceipt, fresh: list[InboundRow]):
    """PostgreSQL: the rows not stored before, then their receipt with the count of the others.

    Every column comes from the models' fields (values prepared and cast by Django), so a field
    added later is stored here too. ON CONFLICT DO NOTHING skips rows the route already holds,
    including one a concurrent request stored a moment ago, and the receipt counts exactly those
    as duplicates. The rows reference the receipt before it exists; the foreign key is checked
    when the statement ends.
    """
    row_fields, receipt_fields = _one_statement_fields()

    def values(obj, fields):
        return [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]

    params = [InboundReceipt._meta.db_table]
    for row in fresh:
        params += values(row, row_fields)
    params += [*values(receipt, receipt_fields), receipt.rows]
    with connection.cursor() as cursor:
        cursor.execute(_one_statement_sql(len(fresh)), params)
        receipt.pk, receipt.duplicates = cursor.fetchone()
    receipt._state.adding, receipt._state.db = False, connection.alias


@functools.cache
def _one_statement_fields():
    row_fields = [f for f in InboundRow._meta.concrete_fields if f.name not in ("id", "receipt")]
    receipt_fields = [
        f for f in InboundReceipt._meta.concrete_fields if f.name not in ("id", "duplicates")
    ]
    return row_fields, receipt_fields


# Built once per number of rows (almost always 1): building it took as long as running it.
@functools.cache
def _one_statement_sql(count: int) -> str:
    quote = connection.ops.quote_name
    row_fields, receipt_fields = _one_statement_fields()

    def columns(fields):
        return ", ".join(quote(f.column) for f in fields)

    def placeholders(fields):
        return ", ".join(f"CAST(%s AS {f.cast_db_type(connection)})" for f in fields)

    row_table, receipt_table = InboundRow._meta.db_table, InboundReceipt._meta.db_table
    rows_sql = ", ".join(f"({placeholders(row_fields)})" for _ in range(count))
    # Only names from the models and placeholders are formatted in; every value is a parameter.
    return (
        f"WITH receipt AS (SELECT nextval(pg_get_serial_sequence(%s, 'id')) AS id), "  # noqa: S608
        f"stored AS (INSERT INTO {quote(row_table)} ({columns(row_fields)}, "
        f"{quote(InboundRow._meta.get_field('receipt').column)}) "
        f"SELECT v.*, receipt.id FROM receipt, (VALUES {rows_sql}) AS v "
        f"ON CONFLICT DO NOTHING RETURNING 1) "
        f"INSERT INTO {quote(receipt_table)} (id, {columns(receipt_fields)}, duplicates) "
        f"SELECT receipt.id, {placeholders(receipt_fields)}, %s - (SELECT count(*) FROM stored) "
        f"FROM receipt RETURNING id, duplicates"
    )


# route id -> when this process last knew a wake-up was queued (time.monotonic()). Under the
# asgi worker each request runs in a new thread with a cache client of its own, so asking
# Redis costs a new connection per request: a burst of rows asks it once per debounce instead.
recent_wakes: dict[int, float] = {}


def wake(route_id: int) -> bool:
    """Ask a worker to process the route soon; never fails the request (sweep() is the fallback)."""
    now = time.monotonic()
    if now - recent_wakes.get(route_id, -WAKE_DEBOUNCE_SECONDS) < WAKE_DEBOUNCE_SECONDS:
        return False  # queued moments ago: that run will see these rows too
    try:
        if not cache.add(f"kiln:inbound:wake:{route_id}", 1, WAKE_DEBOUNCE_SECONDS):
            recent_wakes[route_id] = now
            return False  # one already queued: it will see these rows too
        # A short countdown lets a burst of one-row requests become one batch.
        queue.process_route(route_id, countdown=1)
        recent_wakes[route_id] = now
        return True
    except Exception as exc:  # the broker or cache is down: rows are stored, sweep() finds them
        logger.warning(
            "Inbound route %s: could not queue processing (%s); sweep will", route_id, exc
        )
        return False


def waiting(route, now):
    return InboundRow.objects.filter(route=route, run__isnull=True).filter(
        Q(status=InboundRow.Status.PENDING)
        | Q(status=InboundRow.Status.RETRYING, next_attempt_at__lte=now)
    )


# -- finding work that waits ----------------------------------------------------------------------


def sweep() -> dict:
    """Periodic: wake routes with rows waiting (runs whose worker died: sync.resume_stale_runs)."""
    now, woken = timezone.now(), 0
    # Rows held by a run that ended without them (it failed) wait for the next run.
    InboundRow.objects.filter(status=InboundRow.Status.PENDING, run__isnull=False).exclude(
        run__status__in=SyncRun.ACTIVE
    ).update(run=None)
    due = (
        InboundRow.objects.filter(run__isnull=True)
        .filter(
            Q(status=InboundRow.Status.PENDING)
            | Q(status=InboundRow.Status.RETRYING, next_attempt_at__lte=now)
        )
        .values_list("route_id", flat=True)
        .distinct()
    )
    for route_id in due:
        queue.process_route(route_id)
        woken += 1
    return {"woken": woken}


def replay(rows) -> int:
    """Put failed rows (a queryset) back in line; returns how many."""
    return rows.filter(status__in=[InboundRow.Status.FAILED, InboundRow.Status.RETRYING]).update(
        status=InboundRow.Status.PENDING, run=None, next_attempt_at=None
    )
