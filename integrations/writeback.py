"""Write rows into a Directus collection in batches: create, update by key, or upsert by a field.

Directus batch writes are all-or-nothing (observed: a POST of three items where one email is
taken writes none and answers 400 RECORD_NOT_UNIQUE naming the field and value). So a failed
batch is taken apart until every good row is written and every bad row has its own reason:

1. pinpoint: an error that names a value (RECORD_NOT_UNIQUE `value`) or a required field
   (FAILED_VALIDATION `field`) that exactly one row / a clear set of rows explains fails
   those rows and retries the rest in one request;
2. otherwise bisect: halves are retried until the bad rows stand alone.

Upsert looks the match values up first (`_in`, by SEARCH when the list is too long for a
URL), creates the rows that match nothing and updates the rest. Rows that repeat a match
value inside one batch go in a later wave, after the first one exists.

Every request waits for the shared per-host limiter (Directus counts per client IP, not per
token), backs off on 429/503 as Retry-After says, and retries timeouts a few times. Nothing
here touches the database: the caller records the `WriteOutcome`s.
"""

import json
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from integrations import http, ratelimit
from integrations.directus import DirectusError, _encode_params
from integrations.sender import backoff

MAX_ATTEMPTS = 4
MAX_RATE_LIMITED_ATTEMPTS = 8
RETRY_AFTER_CAP_SECONDS = 120.0
# Directus rounds Retry-After to whole seconds, so "0" means "later within this second".
MIN_PAUSE_SECONDS = 0.25
# A lookup whose query string would be longer than this goes as SEARCH with a JSON body.
MAX_QUERY_STRING = 6000
EXCERPT_CHARS = 500
# Errors no smaller batch can fix: every row fails with the same reason, without splitting.
_BATCH_WIDE_CODES = {"INVALID_CREDENTIALS", "TOKEN_EXPIRED", "ROUTE_NOT_FOUND", "NOT_DIRECTUS"}
# RECORD_NOT_UNIQUE: 'Value "a@x.example" for field "email" in collection "leads" has to be unique.'
_UNIQUE_VALUE_RE = re.compile(
    r'Value "(.*)" for field "[^"]*" in collection "[^"]*" has to be unique', re.S
)


class Stopped(Exception):
    """The run was cancelled while this writer waited."""


@dataclass
class WriteRow:
    """One row to write: its result key, the fields, and the primary key when it is known."""

    key: str
    data: dict
    pk: object = None
    # Set by the caller when it knows the row may have been written before (crash resume).
    resent: bool = False


@dataclass
class WriteOutcome:
    key: str
    status: str  # RowResult.Status value: created, updated, failed, skipped
    item_key: object = None
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    attempts: int = 0
    duration_ms: int = 0
    request_excerpt: str = ""
    response_excerpt: str = ""
    resent: bool = False
    payload_hash: str = ""
    transient: bool = False  # trying again later may work (Directus down, still rate limited)

    @property
    def ok(self) -> bool:
        return self.status in ("created", "updated")


@dataclass
class _Failure(Exception):
    exc: DirectusError
    attempts: int


@dataclass
class Stats:
    requests: int = 0
    splits: int = 0
    rate_limited: int = 0
    waves: int = 0
    lookups: int = 0
    codes: dict = field(default_factory=dict)


def limiter_for(base_url: str, rate: float):
    """The limiter shared by everyone writing to this Directus host (it limits per client IP)."""
    parts = urlsplit(base_url)
    return ratelimit.limiter_for(f"directus:{parts.hostname}:{parts.port or ''}", rate)


def excerpt(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return http.redact(text[:EXCERPT_CHARS])


class Writer:
    """Writes WriteRows to one collection with one mode; `write()` returns one outcome per row."""

    def __init__(
        self,
        directus,
        collection: str,
        *,
        mode: str,
        match_field: str = "",
        pk: str = "id",
        limiter=None,
        batch_size: int = 100,
        stop: threading.Event | None = None,
        sleep=None,
    ):
        if mode not in ("create", "update", "upsert"):
            raise ValueError(f"Unknown write mode {mode!r}")
        if mode == "upsert" and not match_field:
            raise ValueError("Upsert needs a match field")
        self.directus, self.collection, self.mode = directus, collection, mode
        self.match_field, self.pk = match_field, pk or "id"
        self.limiter = limiter
        self.batch_size = max(1, int(batch_size))
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self.stats = Stats()
        self._permissions = None  # {"create": "full", ...} once read; {} when unknown

    # -- public --------------------------------------------------------------------------

    def write(self, rows: list[WriteRow]) -> list[WriteOutcome]:
        """Write every row; the outcomes come back in the order of `rows`."""
        started = time.perf_counter()
        outcomes: dict[int, WriteOutcome] = {}
        indexed = list(enumerate(rows))
        for start in range(0, len(indexed), self.batch_size):
            chunk = indexed[start : start + self.batch_size]
            if self.mode == "create":
                outcomes.update(self._creates(chunk))
            elif self.mode == "update":
                outcomes.update(self._updates_by_key(chunk))
            else:
                outcomes.update(self._upsert(chunk))
        elapsed = int((time.perf_counter() - started) * 1000)
        result = []
        for index, row in enumerate(rows):
            outcome = outcomes[index]
            outcome.duration_ms = outcome.duration_ms or elapsed
            outcome.resent = row.resent and outcome.attempts > 0
            if not outcome.request_excerpt:
                outcome.request_excerpt = excerpt(row.data)
            result.append(outcome)
        return result

    # -- modes ---------------------------------------------------------------------------

    def _creates(self, chunk):
        denied = self._denied("create")
        if denied:
            return {i: self._fail(row, denied, "NOT_PERMITTED", status=403) for i, row in chunk}
        return self._write_batch(chunk, "create")

    def _updates_by_key(self, chunk):
        out, ready = {}, []
        for i, row in chunk:
            pk = row.pk if row.pk not in (None, "") else row.data.get(self.pk)
            if pk in (None, ""):
                out[i] = self._fail(
                    row,
                    f'The row has no primary key ("{self.pk}"), so Kiln cannot tell which item '
                    "to update. Map a column to it, or use upsert by a match field.",
                    "MISSING_KEY",
                )
            else:
                row.pk = pk
                ready.append((i, row))
        if ready:
            denied = self._denied("update")
            if denied:
                out.update(
                    {i: self._fail(r, denied, "NOT_PERMITTED", status=403) for i, r in ready}
                )
            else:
                out.update(self._write_batch(ready, "update"))
        return out

    def _upsert(self, chunk):
        out, waves, seen = {}, [], {}
        for i, row in chunk:
            value = row.data.get(self.match_field)
            if value in (None, "") or isinstance(value, dict | list):
                out[i] = self._fail(
                    row,
                    f'The row has no value for the match field "{self.match_field}", so Kiln '
                    "cannot tell whether to create or update an item.",
                    "MISSING_MATCH_VALUE",
                )
                continue
            # The n-th row with a value goes in wave n: a wave never holds one value twice.
            wave = seen.get(_norm(value), 0)
            seen[_norm(value)] = wave + 1
            while len(waves) <= wave:
                waves.append([])
            waves[wave].append((i, row))
        for wave in waves:
            self.stats.waves += 1
            out.update(self._upsert_wave(wave))
        return out

    def _upsert_wave(self, wave):
        out = {}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                existing = self._lookup([row.data[self.match_field] for _, row in wave])
            except _Failure as failure:
                return {i: self._row_failure(row, failure) for i, row in wave}
            creates, updates = [], []
            for i, row in wave:
                pk = existing.get(_norm(row.data[self.match_field]))
                if pk is None:
                    creates.append((i, row))
                else:
                    row.pk = pk
                    updates.append((i, row))
            try:
                if updates:
                    denied = self._denied("update")
                    if denied:
                        out.update(
                            {
                                i: self._fail(r, denied, "NOT_PERMITTED", status=403)
                                for i, r in updates
                            }
                        )
                    else:
                        out.update(self._write_batch(updates, "update", ambiguous_raises=True))
                if creates:
                    denied = self._denied("create")
                    if denied:
                        out.update(
                            {
                                i: self._fail(r, denied, "NOT_PERMITTED", status=403)
                                for i, r in creates
                            }
                        )
                    else:
                        out.update(self._write_batch(creates, "create", ambiguous_raises=True))
                return out
            except _Ambiguous as amb:
                # A timeout after sending: Directus may have written the batch. Look the rows
                # up again rather than create them twice.
                if attempt == MAX_ATTEMPTS:
                    for i, row in wave:
                        out.setdefault(i, self._row_failure(row, amb.failure))
                    return out
                wave = [(i, row) for i, row in wave if i not in out or not out[i].ok]
                for i, _ in wave:
                    out.pop(i, None)
                self._pause(backoff(attempt))
        return out

    # -- lookups -------------------------------------------------------------------------

    def _lookup(self, values) -> dict:
        """{normalised match value: pk} for the items that have one of `values`."""
        found = {}
        unique = list({_norm(v): v for v in values}.values())
        fields = [self.pk, self.match_field]
        query = {
            "filter": {self.match_field: {"_in": unique}},
            "fields": fields,
            "limit": len(unique) + 1,
        }
        if len(urlencode(_encode_params(query))) > MAX_QUERY_STRING:
            call = lambda: self.directus.search_items(self.collection, query)  # noqa: E731
        else:
            call = lambda: self.directus.list_items(self.collection, query)  # noqa: E731
        self.stats.lookups += 1
        page, _ = self._call(call)
        for item in page.data:
            if isinstance(item, dict) and item.get(self.match_field) is not None:
                found.setdefault(_norm(item[self.match_field]), item.get(self.pk))
        return found

    # -- batch writes, pinpointing and bisection ------------------------------------------

    def _send(self, rows, op):
        params = {"fields": [self.pk] + ([self.match_field] if self.match_field else [])}
        if op == "create":
            body = [row.data for _, row in rows]
            return self.directus.create_items(self.collection, body, params) or []
        body = [{**row.data, self.pk: row.pk} for _, row in rows]
        return self.directus.update_items_batch(self.collection, body, params)

    def _write_batch(self, rows, op, ambiguous_raises=False):
        started = time.perf_counter()
        try:
            items, attempts = self._call(
                lambda: self._send(rows, op), retry_ambiguous=op == "update"
            )
        except _Failure as failure:
            if ambiguous_raises and _ambiguous(failure.exc):
                raise _Ambiguous(failure) from None
            return self._take_apart(rows, op, failure, ambiguous_raises)
        elapsed = int((time.perf_counter() - started) * 1000)
        items = items if isinstance(items, list) else [items]
        return self._successes(rows, op, items, attempts, elapsed)

    def _successes(self, rows, op, items, attempts, elapsed):
        out = {}
        if op == "create":
            for (i, row), item in zip(
                rows, items + [None] * (len(rows) - len(items)), strict=False
            ):
                key = item.get(self.pk) if isinstance(item, dict) else None
                out[i] = WriteOutcome(
                    row.key,
                    "created",
                    key,
                    200,
                    attempts=attempts,
                    duration_ms=elapsed,
                    response_excerpt=excerpt(item) if item else "",
                )
            return out
        returned = {str(item.get(self.pk)) for item in items if isinstance(item, dict)}
        for i, row in rows:
            if str(row.pk) in returned:
                out[i] = WriteOutcome(
                    row.key, "updated", row.pk, 200, attempts=attempts, duration_ms=elapsed
                )
            else:
                # Directus answers a PATCH of a key that does not exist without an error.
                out[i] = WriteOutcome(
                    row.key,
                    "failed",
                    row.pk,
                    200,
                    "NOT_FOUND",
                    f'No item with {self.pk} {row.pk} in "{self.collection}" (or this token may not '
                    "read it): Directus changed nothing.",
                    attempts=attempts,
                    duration_ms=elapsed,
                )
        return out

    def _take_apart(self, rows, op, failure, ambiguous_raises):
        exc = failure.exc
        if exc.status == 413 and len(rows) > 1:
            return self._halves(rows, op, ambiguous_raises)
        if (
            len(rows) == 1
            or exc.code in _BATCH_WIDE_CODES
            or exc.status in (401, 404, 405)
            or exc.status is None
            or exc.transient
        ):
            return {i: self._row_failure(row, failure) for i, row in rows}
        culprits = self._culprits(rows, op, exc)
        if culprits:
            out = {i: self._row_failure(row, failure) for i, row in rows if i in culprits}
            rest = [(i, row) for i, row in rows if i not in culprits]
            if rest:
                out.update(self._write_batch(rest, op, ambiguous_raises))
            return out
        return self._halves(rows, op, ambiguous_raises)

    def _halves(self, rows, op, ambiguous_raises):
        self.stats.splits += 1
        mid = len(rows) // 2
        out = self._write_batch(rows[:mid], op, ambiguous_raises)
        out.update(self._write_batch(rows[mid:], op, ambiguous_raises))
        return out

    def _culprits(self, rows, op, exc) -> set:
        """Row indexes the error itself points at; empty when it points at none for sure."""
        if exc.code == "RECORD_NOT_UNIQUE" and exc.field:
            taken = _UNIQUE_VALUE_RE.match(exc.message)
            if not taken:
                return set()
            hits = {i for i, row in rows if _norm(row.data.get(exc.field)) == taken.group(1)}
            return hits if len(hits) == 1 else set()
        if exc.code == "FAILED_VALIDATION" and exc.field and "required" in exc.message.lower():
            hits = {
                i
                for i, row in rows
                if (op == "create" and exc.field not in row.data)
                or row.data.get(exc.field, 0) is None
            }
            return hits if 0 < len(hits) < len(rows) else set()
        return set()

    # -- requests: pacing, 429, retries -----------------------------------------------------

    def _call(self, fn, retry_ambiguous=True):
        """(fn(), attempts); _Failure once retrying cannot help. A create is not repeated
        after a timeout (retry_ambiguous=False): it may have been written already."""
        attempts = 0
        while True:
            if self.stop.is_set():
                raise Stopped()
            if self.limiter is not None and not self.limiter.acquire(self.stop):
                raise Stopped()
            attempts += 1
            self.stats.requests += 1
            try:
                return fn(), attempts
            except DirectusError as exc:
                self.stats.codes[exc.code] = self.stats.codes.get(exc.code, 0) + 1
                if exc.status in (429, 503):
                    self.stats.rate_limited += 1
                    if attempts >= MAX_RATE_LIMITED_ATTEMPTS:
                        raise _Failure(exc, attempts) from None
                    pause = exc.retry_after if exc.retry_after is not None else backoff(attempts)
                    pause = min(RETRY_AFTER_CAP_SECONDS, max(MIN_PAUSE_SECONDS, pause))
                    if self.limiter is not None and self.limiter.rate > 0:
                        self.limiter.slow_down(pause)
                    self._pause(pause)
                elif (
                    exc.transient
                    and attempts < MAX_ATTEMPTS
                    and (retry_ambiguous or not _ambiguous(exc))
                ):
                    self._pause(backoff(attempts))
                else:
                    raise _Failure(exc, attempts) from None

    def _pause(self, seconds):
        if self._sleep is not None:
            self._sleep(seconds)
        elif seconds > 0 and self.stop.wait(seconds):
            raise Stopped()

    # -- permissions -----------------------------------------------------------------------

    def _denied(self, action) -> str:
        """A sentence when the token may not `action` in the collection at all, else ""."""
        if self._permissions is None:
            self._permissions = {}
            try:
                answer, _ = self._call(self.directus.permissions_me)
            except _Failure:
                answer = None
            if isinstance(answer, dict):
                collection = answer.get(self.collection) or {}
                self._permissions = {
                    a: ((collection.get(a) or {}).get("access") or "none")
                    for a in ("create", "read", "update")
                }
        if self._permissions.get(action) != "none":
            return ""
        other = "update" if action == "create" else "create"
        also = (
            f" It may {other} items, so rows that need an {other} are written."
            if self._permissions.get(other) not in (None, "none")
            else ""
        )
        need = "match no existing item" if action == "create" else "match an existing item"
        return (
            f'This token is not permitted to {action} items in "{self.collection}" (its Directus '
            f'policy gives no "{action}" access), so rows that {need} cannot be written.{also} '
            f'Add "{action}" permission on "{self.collection}" to the token\'s policy.'
        )

    # -- outcomes --------------------------------------------------------------------------

    def _fail(self, row, message, code, status=None) -> WriteOutcome:
        return WriteOutcome(row.key, "failed", row.pk, status, code, message)

    def _row_failure(self, row, failure) -> WriteOutcome:
        exc = failure.exc
        return WriteOutcome(
            row.key,
            "failed",
            row.pk,
            exc.status,
            exc.code[:50],
            _row_message(exc, self.collection),
            attempts=failure.attempts,
            transient=exc.transient or exc.status is None or (exc.status or 0) >= 500,
        )


class _Ambiguous(Exception):
    def __init__(self, failure):
        self.failure = failure


def _ambiguous(exc: DirectusError) -> bool:
    """A request that may have been applied though no answer came (timeout, dropped link)."""
    return exc.status is None and exc.code in (
        "NETWORK_TIMEOUT",
        "NETWORK_CONNECTION",
        "NETWORK_PROTOCOL",
    )


def _row_message(exc: DirectusError, collection) -> str:
    if exc.status == 403 and not exc.field:
        verb = {"POST": "create", "PATCH": "update"}.get(exc.method, "write")
        return (
            f'Directus answered 403 FORBIDDEN: the collection "{collection}" is missing or not '
            f"permitted — this token may not {verb} this item there (Directus gives the same "
            "answer for both)."
        )
    if _ambiguous(exc) and exc.method == "POST":
        return f"{exc.explain()} The item may or may not have been created: check Directus before retrying."
    return exc.explain()


def _norm(value) -> str:
    """Match values compare as text: 42 and "42" are the same email/slug/id."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- a write-back run's rows: CSV lines or inbound rows -> WriteRows -> outcomes ----------------


def template_for(sync, upload=None):
    """(parsed template or None, options): the upload's column mapping, else the sync's template."""
    from integrations import mapping

    if upload is not None and upload.mapping:
        rows = [
            mapping.MappingRow(
                m["field"], m.get("source_kind", "column"), m["source"], tuple(m.get("casts") or ())
            )
            for m in upload.mapping
        ]
        return mapping.parse(mapping.body_from_mapping(rows)), {"missing": "omit"}
    if sync.template_id:
        return mapping.parse(sync.template.body), sync.template.options or {}
    return None, {}


class Processor:
    """Turns a batch of CSV lines or InboundRows into written rows and their outcomes."""

    def __init__(self, run, stop, upload=None):
        from integrations import mapping

        self.mapping = mapping
        self.run, self.sync, self.upload = run, run.sync, upload
        sync = self.sync
        if sync.connection_id is None or not sync.collection:
            raise ValueError(
                "Choose a Directus connection and a collection for this write-back sync."
            )
        self.template, self.options = template_for(sync, upload)
        self.directus = sync.connection.client()
        self.writer = Writer(
            self.directus,
            sync.collection,
            mode=sync.write_mode,
            match_field=sync.match_field,
            pk=sync.row_key or "id",
            limiter=limiter_for(sync.connection.api_url, sync.rate_limit),
            batch_size=max(1, min(sync.page_size, 500)),
            stop=stop,
        )

    def close(self):
        self.directus.close()

    def _data(self, values: dict) -> dict:
        if self.upload is not None:
            values = {
                k: v for k, v in values.items() if v != ""
            }  # an empty cell leaves the field alone
        if self.template is None:
            return {k: v for k, v in values.items() if not k.startswith("kiln_")}
        value = self.template.render(values, self.options)
        if not isinstance(value, dict):
            raise ValueError("The mapping must give one JSON object per row.")
        return value

    def process(self, batch) -> list[WriteOutcome]:
        from integrations.models import RowTrace

        outcomes: list[WriteOutcome | None] = [None] * len(batch)
        rows, where = [], []
        trace_keys = {}
        ids = [_row_id(item) for item in batch if _row_id(item)]
        if ids and self.sync.write_mode == "update":
            trace_keys = dict(
                RowTrace.objects.filter(
                    kiln_row_id__in=ids, collection=self.sync.collection
                ).values_list("kiln_row_id", "directus_key")
            )
        for index, item in enumerate(batch):
            if hasattr(item, "number"):  # a CSV line
                key, values = f"line {item.number}", item.values
                if item.error:
                    outcomes[index] = WriteOutcome(
                        key, "failed", error_code="BAD_LINE", error_message=item.error
                    )
                    continue
            else:
                key, values = f"#{item.pk}", item.data
            try:
                data = self._data(values)
            except (self.mapping.TemplateError, ValueError, TypeError, LookupError) as exc:
                problems = getattr(exc, "problems", None)
                message = "; ".join(str(p) for p in problems) if problems else str(exc)
                outcomes[index] = WriteOutcome(
                    key,
                    "failed",
                    error_code="RENDER_ERROR",
                    error_message=http.redact(
                        f"The mapping could not be filled from this row: {message}"
                    ),
                    request_excerpt=excerpt(values),
                )
                continue
            label = data.get(self.sync.match_field) if self.sync.match_field else None
            if label not in (None, ""):
                key = f"{key} {label}"[:200]
            pk = trace_keys.get(_row_id(item))
            rows.append(WriteRow(key, data, pk=pk))
            where.append(index)
        for position, outcome in enumerate(self.writer.write(rows)):
            outcome.payload_hash = self.mapping.payload_hash(rows[position].data)
            outcomes[where[position]] = outcome
        return outcomes

    def after_record(self, batch, outcomes, now):
        """Link rows that carry a kiln_row_id: enriched row received, then written (or not)."""
        from integrations import inbound
        from integrations.models import RowTrace

        steps = []
        for item, outcome in zip(batch, outcomes, strict=True):
            rid = _row_id(item)
            if not rid:
                continue
            if hasattr(item, "number"):
                name = self.upload.original_name if self.upload else "the CSV file"
                received = (
                    f"Line {item.number} of {name}",
                    self.upload.created_at if self.upload else now,
                )
            else:
                received = (f"Inbound row #{item.pk}", item.created_at)
            steps.append((rid, RowTrace.Step.RECEIVED, True, received[0], received[1], None))
            detail = (
                f'{outcome.status} item {outcome.item_key} in "{self.sync.collection}"'
                if outcome.ok
                else f"{outcome.error_code}: {outcome.error_message}"
            )
            steps.append((rid, RowTrace.Step.WRITTEN, outcome.ok, detail, now, None))
        if steps:
            inbound.record_steps(steps, self.run)


def _row_id(item) -> str:
    """The kiln_row_id an enriched row carries: an inbound row's, or a CSV line's column."""
    if hasattr(item, "number"):  # a CSV line: Clay exports the kiln_row_id column as is
        return str((item.values or {}).get("kiln_row_id") or "").strip()[:40]
    return getattr(item, "kiln_row_id", "")
