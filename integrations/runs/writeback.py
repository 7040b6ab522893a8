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
value inside one batch go in a later wave, after the first one exists. With
`match_ignore_case` the lookup reads candidates with `_icontains` (Directus 12.4 refuses `_ieq`
on strings) and keeps only those whose folded value equals the row's, never a mere substring.

An outcome is what Directus did, whatever else shared the batch: a write asks for the whole
readback (`limit` = rows in the batch; Directus otherwise cuts it to QUERY_LIMIT_DEFAULT), a
key missing from an update's answer is read back before it is called "not found", and a batch
Directus refuses as larger than MAX_BATCH_MUTATION or QUERY_LIMIT_MAX is sent again in
smaller batches, the learned size kept for the rest of the writer's (and the run's) life.

Every request waits for the shared per-host limiter (Directus counts per client IP, not per
token), backs off on 429/503 as Retry-After says, and retries timeouts a few times. Nothing
here touches the database: the caller records the `WriteOutcome`s.
"""

import functools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from integrations.clay.sender import backoff
from integrations.directus.client import DirectusError
from integrations.mapping import columnmap
from integrations.outbound import http, ratelimit
from integrations.outcome import Outcome
from integrations.runs import roundtrip

MAX_ATTEMPTS = 4
MAX_RATE_LIMITED_ATTEMPTS = 8
RETRY_AFTER_CAP_SECONDS = 120.0
# Directus rounds Retry-After to whole seconds, so "0" means "later within this second".
MIN_PAUSE_SECONDS = 0.25
EXCERPT_CHARS = 500
# Errors no smaller batch can fix: every row fails with the same reason, without splitting.
_BATCH_WIDE_CODES = {"INVALID_CREDENTIALS", "TOKEN_EXPIRED", "ROUTE_NOT_FOUND", "NOT_DIRECTUS"}
# RECORD_NOT_UNIQUE: 'Value "a@x.example" for field "email" in collection "leads" has to be unique.'
_UNIQUE_VALUE_RE = re.compile(
    r'Value "(.*)" for field "[^"]*" in collection "[^"]*" has to be unique', re.S
)
# MAX_BATCH_MUTATION, seen on Directus 12.4.0 (SQLite, MAX_BATCH_MUTATION=50): a POST or PATCH
# of 51 items answers 400 and writes nothing:
#   {"errors":[{"message":"Invalid payload. Exceeded max batch mutation limit of 50.",
#     "extensions":{"reason":"Exceeded max batch mutation limit of 50","code":"INVALID_PAYLOAD"}}]}
# Nested relational items count as mutations too, so fewer rows than the limit can exceed it.
_MUTATION_LIMIT_RE = re.compile(r"max batch mutation limit of (\d+)")
# QUERY_LIMIT_MAX=500 and `limit=600` on a read or on a write's readback: 400 INVALID_QUERY
#   'Invalid query. "limit" must be less than or equal to 500.' (checked before anything is written)
_QUERY_LIMIT_RE = re.compile(r'"limit" must be less than or equal to (\d+)')


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
class WriteOutcome(Outcome):
    """A row's outcome from Directus; status: created, updated, failed or skipped."""

    item_key: object = None
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
    confirm_reads: int = 0  # reads of update keys missing from Directus's answer
    limit_refusals: int = 0  # batches refused as over MAX_BATCH_MUTATION / QUERY_LIMIT_MAX
    codes: dict = field(default_factory=dict)


def limiter_for(base_url: str, rate: float):
    """The limiter shared by everyone writing to this Directus host (it limits per client IP)."""
    parts = urlsplit(base_url)
    return ratelimit.limiter_for(f"directus:{parts.hostname}:{parts.port or ''}", rate)


def excerpt(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return http.redacted_excerpt(text, EXCERPT_CHARS)


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
        match_ignore_case: bool = False,
        batch_limit: int | None = None,
        read_limit: int | None = None,
    ):
        if mode not in ("create", "update", "upsert"):
            raise ValueError(f"Unknown write mode {mode!r}")
        if mode == "upsert" and not match_field:
            raise ValueError("Upsert needs a match field")
        self.directus, self.collection, self.mode = directus, collection, mode
        self.match_field, self.pk = match_field, pk or "id"
        self.limiter = limiter
        self.batch_size = max(1, int(batch_size))
        self.match_ignore_case = bool(match_ignore_case)
        # Learned from Directus's refusals (MAX_BATCH_MUTATION, QUERY_LIMIT_MAX) and kept, so a
        # limit is discovered once per writer; a run passes what an earlier slice learned.
        self.batch_limit = int(batch_limit) if batch_limit else None
        self.read_limit = int(read_limit) if read_limit else None
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self.stats = Stats()
        self._permissions = None  # {"create": "full", ...} once read; {} when unknown

    @property
    def limits(self) -> dict:
        """What this writer learned about the server's limits, to hand to a later writer."""
        learned = {"batch": self.batch_limit, "read": self.read_limit}
        return {k: v for k, v in learned.items() if v}

    def _chunk_size(self) -> int:
        return min(self.batch_size, self.batch_limit or self.batch_size)

    # -- public --------------------------------------------------------------------------

    def write(self, rows: list[WriteRow]) -> list[WriteOutcome]:
        """Write every row; the outcomes come back in the order of `rows`."""
        started = time.perf_counter()
        outcomes: dict[int, WriteOutcome] = {}
        indexed = list(enumerate(rows))
        start = 0
        while start < len(indexed):
            chunk = indexed[start : start + self._chunk_size()]
            start += len(chunk)
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
            wave = seen.get(self._match_key(value), 0)
            seen[self._match_key(value)] = wave + 1
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
                matches = existing.get(self._match_key(row.data[self.match_field]), [])
                if len(matches) > 1 and self.match_ignore_case:
                    out[i] = self._fail(row, self._ambiguous_match(row, matches), "MATCH_AMBIGUOUS")
                elif not matches:
                    creates.append((i, row))
                else:
                    row.pk = matches[0][0]
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
                        made = {
                            i: self._fail(r, denied, "NOT_PERMITTED", status=403)
                            for i, r in creates
                        }
                    else:
                        made = self._write_batch(creates, "create", ambiguous_raises=True)
                    self._note_case_twins(creates, made)
                    out.update(made)
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

    def _match_key(self, value) -> str:
        """What two match values must share to be the same item: the text, folded if asked."""
        return _norm(value).casefold() if self.match_ignore_case else _norm(value)

    def _lookup(self, values) -> dict:
        """{match key: [(pk, stored value), ...]} for the items that have one of `values`."""
        unique = list({self._match_key(v): v for v in values}.values())
        if self.match_ignore_case:
            condition = _case_insensitive_filter(self.match_field, unique)
        else:
            condition = {self.match_field: {"_in": unique}}
        items = self._read_items(condition, [self.pk, self.match_field], len(unique))
        wanted = {self._match_key(v) for v in unique}
        found: dict = {}
        for item in items:
            stored = item.get(self.match_field)
            if stored is None or isinstance(stored, dict | list):
                continue
            # `_icontains` also finds "joann@x" for "ann@x": only an equal folded value matches.
            key = self._match_key(stored)
            if key in wanted:
                found.setdefault(key, []).append((item.get(self.pk), stored))
        return found

    def _existing_keys(self, keys) -> set:
        """The keys (as text) of `keys` that a read finds in the collection."""
        self.stats.confirm_reads += 1
        items = self._read_items({self.pk: {"_in": list(keys)}}, [self.pk], len(keys))
        return {str(item.get(self.pk)) for item in items}

    def _read_items(self, condition, fields, expected) -> list[dict]:
        """Every item matching `condition`, page by page (sorted by key), within QUERY_LIMIT_MAX."""
        items, seen, page = [], set(), 1
        while True:
            limit = max(1, min(expected + 1, self.read_limit or expected + 1))
            query = {
                "filter": condition,
                "fields": fields,
                "sort": [self.pk],
                "limit": limit,
                "page": page,
            }
            # A long `_in` list goes as SEARCH with a JSON body (DirectusClient.read_items).
            call = functools.partial(self.directus.read_items, self.collection, query)
            self.stats.lookups += 1
            try:
                answer, _ = self._call(call)
            except _Failure as failure:
                if self._learn_limit(failure.exc, limit, reading=True):
                    items, seen, page = [], set(), 1
                    continue
                raise
            data = [item for item in answer.data if isinstance(item, dict)]
            new = [item for item in data if str(item.get(self.pk)) not in seen]
            seen.update(str(item.get(self.pk)) for item in new)
            items.extend(new)
            if len(data) < limit or not new:
                return items
            page += 1

    def _learn_limit(self, exc: DirectusError, size: int, reading=False) -> bool:
        """True when `exc` is Directus refusing `size` items as over one of its limits and a
        smaller size is now known (the request wrote nothing, so it can be sent again)."""
        if exc.status != 400:
            return False
        text = f"{exc.message} {exc.reason}"
        mutation = _MUTATION_LIMIT_RE.search(text) if not reading else None
        query = _QUERY_LIMIT_RE.search(text)
        if mutation:
            limit = int(mutation.group(1))
            if limit < 1 or limit >= size or (self.batch_limit or size) <= limit:
                return False  # nested items make even fewer rows too many: bisect instead
            self.batch_limit = limit
        elif query:
            limit = int(query.group(1))
            if limit < 1 or limit >= size or (self.read_limit or size) <= limit:
                return False
            self.read_limit = limit
            if not reading:  # a write's readback must hold the whole batch
                self.batch_limit = min(self.batch_limit or limit, limit)
        else:
            return False
        self.stats.limit_refusals += 1
        return True

    # -- batch writes, pinpointing and bisection ------------------------------------------

    def _send(self, rows, op):
        # Without `limit` Directus answers at most QUERY_LIMIT_DEFAULT (100) of the written items
        # when QUERY_LIMIT_MAX is set (observed: a PATCH of 150 answers 100).
        params = {
            "fields": [self.pk] + ([self.match_field] if self.match_field else []),
            "limit": len(rows),
        }
        if op == "create":
            body = [row.data for _, row in rows]
            return self.directus.create_items(self.collection, body, params) or []
        body = [{**row.data, self.pk: row.pk} for _, row in rows]
        if self.mode == "upsert" and self.match_ignore_case and self.match_field != self.pk:
            # Matched ignoring letter case: the item keeps its match value as it is stored.
            body = [{k: v for k, v in item.items() if k != self.match_field} for item in body]
        return self.directus.update_items_batch(self.collection, body, params)

    def _write_batch(self, rows, op, ambiguous_raises=False):
        size = self._chunk_size()
        if len(rows) > size:
            out = {}
            for start in range(0, len(rows), size):
                out.update(self._write_batch(rows[start : start + size], op, ambiguous_raises))
            return out
        started = time.perf_counter()
        try:
            items, attempts = self._call(
                lambda: self._send(rows, op), retry_ambiguous=op == "update"
            )
        except _Failure as failure:
            if self._learn_limit(failure.exc, len(rows)):
                # Refused as too many at once, nothing written: the same rows, smaller batches.
                return self._write_batch(rows, op, ambiguous_raises)
            if ambiguous_raises and _ambiguous(failure.exc):
                raise _Ambiguous(failure) from None
            return self._take_apart(rows, op, failure, ambiguous_raises)
        elapsed = int((time.perf_counter() - started) * 1000)
        items = items if isinstance(items, list) else [items]
        return self._successes(rows, op, items, attempts, elapsed)

    def _successes(self, rows, op, items, attempts, elapsed):
        items = [item for item in items if isinstance(item, dict)]
        if op == "create":
            return self._created(rows, items, attempts, elapsed)
        returned = {str(item.get(self.pk)) for item in items}
        missing = [row.pk for _, row in rows if str(row.pk) not in returned]
        found, unreadable = set(), None
        if missing:
            # Absence from the answer proves nothing (a cut readback, a token that may update
            # but not read): only a read of those keys tells which do not exist.
            try:
                found = self._existing_keys(missing)
            except _Failure as failure:
                unreadable = failure.exc
        out = {}
        for i, row in rows:
            if str(row.pk) in returned or str(row.pk) in found:
                out[i] = WriteOutcome(
                    row.key,
                    "updated",
                    item_key=row.pk,
                    http_status=200,
                    attempts=attempts,
                    duration_ms=elapsed,
                )
                continue
            code, message = self._not_found(row.pk, unreadable)
            out[i] = WriteOutcome(
                row.key,
                "failed",
                item_key=row.pk,
                http_status=200,
                error_code=code,
                error_message=message,
                attempts=attempts,
                duration_ms=elapsed,
            )
        return out

    def _not_found(self, pk, unreadable):
        where = f'{self.pk} {pk} in "{self.collection}"'
        if unreadable is not None:
            return "NOT_CONFIRMED", (
                f"Directus accepted the update but did not return {where}, and Kiln could not "
                f"read it back to check ({unreadable.explain()}): the item may not exist, or "
                "this token may update items but not read them."
            )
        if (self._permissions or {}).get("read") == "full":
            return "NOT_FOUND", (
                f"No item with {where}: reading that key back found nothing, so Directus "
                "changed nothing (it answers an update of a missing key without an error)."
            )
        return "NOT_FOUND", (
            f"Directus changed nothing for {where}: reading that key back found nothing — the "
            "item does not exist, or this token may not read it (Directus gives the same answer "
            "for both)."
        )

    def _created(self, rows, items, attempts, elapsed):
        """Pair the created items with their rows by key, by match value, else by position.

        Directus creates a batch all or nothing, so every row of a 200 answer was created; a row
        its answer does not account for is created with its key unknown, never failed."""
        paired = {}
        pks = [row.data.get(self.pk) for _, row in rows]
        if all(pk not in (None, "") for pk in pks):
            index = {str(item.get(self.pk)): item for item in items}
            paired = {i: index.get(str(row.data[self.pk])) for i, row in rows}
        elif self.match_field:
            values = [_norm(row.data.get(self.match_field)) for _, row in rows]
            if len(set(values)) == len(values):
                index = {_norm(item.get(self.match_field)): item for item in items}
                paired = {i: index.get(_norm(row.data.get(self.match_field))) for i, row in rows}
        if len(items) == len(rows) and not all(paired.get(i) for i, _ in rows):
            paired = {i: item for (i, _), item in zip(rows, items, strict=True)}
        out = {}
        for i, row in rows:
            item = paired.get(i)
            out[i] = WriteOutcome(
                row.key,
                "created",
                item_key=item.get(self.pk) if item else None,
                http_status=200,
                attempts=attempts,
                duration_ms=elapsed,
                response_excerpt=excerpt(item)
                if item
                else (
                    f"Created (Directus wrote the whole batch) but its answer listed {len(items)} "
                    f"of {len(rows)} items, so the new item's key is unknown."
                ),
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

    # -- letter case -----------------------------------------------------------------------

    def _note_case_twins(self, creates, outcomes):
        """Case-sensitive upsert: a row that matched nothing but was not created, while an item
        exists whose match value differs only in letter case, says so in its outcome."""
        if self.match_ignore_case:
            return
        failed = [(i, row) for i, row in creates if i in outcomes and not outcomes[i].ok]
        values = [row.data.get(self.match_field) for _, row in failed]
        values = [v for v in values if isinstance(v, str) and v.lower() != v.upper()]
        if not values:
            return
        try:
            items = self._read_items(
                _case_insensitive_filter(self.match_field, values),
                [self.pk, self.match_field],
                len(values),
            )
        except _Failure:
            return  # the reason the create failed stands on its own
        twins = {}
        for item in items:
            stored = item.get(self.match_field)
            if isinstance(stored, str):
                twins.setdefault(stored.casefold(), stored)
        for i, row in failed:
            value = row.data.get(self.match_field)
            twin = twins.get(value.casefold()) if isinstance(value, str) else None
            if twin is None or twin == value:
                continue
            outcome = outcomes[i]
            outcome.error_message = (
                f'An item with "{twin}" exists in "{self.collection}"; matching is case-sensitive, '
                f"so \"{value}\" did not match it — turn on 'ignore letter case' for this sync "
                f"to update that item instead. {outcome.error_message}"
            )

    def _ambiguous_match(self, row, matches) -> str:
        value = row.data.get(self.match_field)
        found = ", ".join(f'{pk} ("{stored}")' for pk, stored in matches[:5])
        return (
            f'{len(matches)} items in "{self.collection}" match "{value}" when letter case is '
            f"ignored ({self.pk} {found}), so Kiln cannot tell which one to update. Make the "
            f'"{self.match_field}" values differ by more than letter case, or turn off '
            "'ignore letter case'."
        )

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
        return WriteOutcome(
            row.key,
            "failed",
            item_key=row.pk,
            http_status=status,
            error_code=code,
            error_message=message,
        )

    def _row_failure(self, row, failure) -> WriteOutcome:
        exc = failure.exc
        return WriteOutcome(
            row.key,
            "failed",
            item_key=row.pk,
            http_status=exc.status,
            error_code=exc.code[:50],
            error_message=_row_message(exc, self.collection),
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


def _case_insensitive_filter(field_name, values) -> dict:
    """Items whose `field_name` may equal one of `values` ignoring letter case.

    Directus 12.4 refuses `_ieq` on string fields (400 INVALID_QUERY '"string" field type does
    not contain the "_ieq" filter operator'); `_icontains` works, finds substrings too, so the
    caller compares folded values. Values without letters (numbers, ids) use `_in`, which also
    works on fields that are not strings."""
    cased = [str(v) for v in values if str(v).lower() != str(v).upper()]
    plain = [v for v in values if str(v).lower() == str(v).upper()]
    terms = [{field_name: {"_icontains": v}} for v in cased]
    if plain:
        terms.append({field_name: {"_in": plain}})
    return terms[0] if len(terms) == 1 else {"_or": terms}


def _norm(value) -> str:
    """Match values compare as text: 42 and "42" are the same email/slug/id."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- a write-back run's rows: CSV lines or inbound rows -> WriteRows -> outcomes ----------------


def template_for(sync):
    """(parsed template or None, options): the sync's template; None sends the row as it is."""
    from integrations.mapping import templates as mapping

    if sync.template_id:
        return mapping.parse(sync.template.body), sync.template.options or {}
    return None, {}


def _nothing_mapped(entries, data) -> str:
    wanted = ", ".join(f'"{e.column}"' for e in entries[:8])
    sent = ", ".join(f'"{k}"' for k in list(data)[:8]) or "no columns"
    return (
        f"None of the mapped columns is in this row (the mapping reads {wanted}; the row has "
        f"{sent}): nothing to write. Add its columns to the mapping."
    )


class Processor:
    """Turns a batch of CSV lines or InboundRows into written rows and their outcomes."""

    def __init__(self, run, stop, upload=None, columns=None):
        """`columns`: an inbound route's column → field entries (a CSV upload brings its own)."""
        from integrations.mapping import templates as mapping

        self.mapping = mapping
        self.run, self.sync, self.upload = run, run.sync, upload
        sync = self.sync
        if sync.connection_id is None or not sync.collection:
            raise ValueError(
                "Choose a Directus connection and a collection for this write-back sync."
            )
        self.template, self.options = template_for(sync)
        # Clay column -> Directus field with casts: a CSV upload's mapping or the route's.
        self.columns = columnmap.entries(upload.mapping) if upload is not None else columns or []
        self.directus = sync.connection.client()
        learned = (run.checkpoint or {}).get("write_limits") or {}
        self.writer = Writer(
            self.directus,
            sync.collection,
            mode=sync.write_mode,
            match_field=sync.match_field,
            pk=sync.row_key or "id",
            limiter=limiter_for(sync.connection.api_url, sync.rate_limit),
            batch_size=max(1, min(sync.page_size, 500)),
            stop=stop,
            match_ignore_case=sync.match_ignore_case,
            batch_limit=learned.get("batch"),
            read_limit=learned.get("read"),
        )

    def close(self):
        self.directus.close()

    def _data(self, values: dict) -> dict:
        if self.columns:
            data, problems = columnmap.apply(self.columns, values)
            if not problems and not data and not any(e.column in values for e in self.columns):
                problems = [_nothing_mapped(self.columns, values)]
            if problems:
                raise columnmap.MappingError(problems)
            if self.upload is not None:
                return data  # a CSV upload's mapping is the whole body
            # An inbound route's mapping names the fields; the sync's template, if any, applies.
            values = data
        elif self.upload is not None:
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
            except columnmap.MappingError as exc:
                outcomes[index] = WriteOutcome(
                    key,
                    "failed",
                    error_code="MAPPING_ERROR",
                    error_message=http.redact(" ".join(exc.problems))[:2000],
                    request_excerpt=excerpt(values),
                )
                continue
            except (self.mapping.TemplateError, ValueError, TypeError, LookupError) as exc:
                outcomes[index] = WriteOutcome(
                    key,
                    "failed",
                    error_code="RENDER_ERROR",
                    error_message=http.redact(
                        f"The mapping could not be filled from this row: {exc}"
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
        self._remember_limits()
        return outcomes

    def _remember_limits(self):
        """Keep what the writer learned about the server's limits on the run's checkpoint: the
        run worker saves `run.checkpoint` with this batch's results, and the next slice's
        Writer starts from it instead of being refused again."""
        checkpoint = self.run.checkpoint or {}
        learned = self.writer.limits
        if learned and checkpoint.get("write_limits") != learned:
            self.run.checkpoint = {**checkpoint, "write_limits": learned}

    def after_record(self, batch, outcomes, now):
        """Link rows that carry a kiln_row_id: enriched row received, then written (or not)."""
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
            roundtrip.record_steps(steps, self.run)


def _row_id(item) -> str:
    """The kiln_row_id an enriched row carries: an inbound row's, or a CSV line's column."""
    if hasattr(item, "number"):  # a CSV line: Clay exports the kiln_row_id column as is
        return str((item.values or {}).get("kiln_row_id") or "").strip()[:40]
    return getattr(item, "kiln_row_id", "")
