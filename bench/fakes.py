"""Loopback fakes for tests and the benchmark: a Directus items endpoint and a Clay-like sink.

Both are small asyncio HTTP/1.1 servers (keep-alive, Content-Length bodies) on 127.0.0.1
and an ephemeral port. asyncio rather than http.server because the sink shares the
machine's two cores with the engine it measures: a thread per connection cost it about
three times more CPU per request.

In tests they run in a background thread (`FakeDirectus(...).start()`); the benchmark runs
them in a subprocess (`python bench/fakes.py sink|directus ...`) so they do not compete
with the engine for its GIL, and talks to the sink over `/_stats` and `/_control`.
"""

import argparse
import asyncio
import bisect
import json
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, unquote, urlsplit

DROP = "drop"
# Store the row, then drop the connection before answering: the sender cannot know it arrived.
STORE_DROP = "store_drop"
REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class LoopbackServer:
    """An asyncio HTTP/1.1 server in its own thread; subclasses implement `respond`."""

    def __init__(self):
        self.port = None
        self.loop = None
        self._server = None
        self._thread = None
        self._writers = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self):
        if self.loop is None:
            return
        self.loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _shutdown(self):
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self.loop.stop()

    def _run(self, ready):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.set_exception_handler(_quiet_on_shutdown)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=512)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    async def _connection(self, reader, writer):
        self._writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                answer = await self.respond(method, target, headers, body)
                if answer == DROP:
                    writer.transport.abort()
                    return
                status, extra, payload = answer
                head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                head.append(f"Content-Length: {len(payload)}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def respond(self, method, target, headers, body):
        raise NotImplementedError


def _quiet_on_shutdown(loop, context):
    # Connections still open at stop() are cancelled; that is the point, not an error.
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def json_answer(status, value, extra=None):
    return status, {"Content-Type": "application/json", **(extra or {})}, json.dumps(value).encode()


# --- Clay-like webhook sink ------------------------------------------------------------------


class FakeSink(LoopbackServer):
    """Counts what it receives per row key; can answer 429, 5xx, slowly, or drop the connection.

    `script` maps a row key to the answers for its successive attempts, e.g.
    {"7": [500, "ok"], "9": [400], "11": [(429, 1)], "13": ["drop", "ok"], "15": [("slow", 2)]};
    attempts past the list are answered "ok"; "store_drop" keeps the row, then drops the
    connection before answering. `delay` slows every answer (seconds); `token` makes it
    require x-clay-webhook-auth (401 otherwise); `cap` is the webhook's lifetime limit: past
    that many stored rows it answers 403 naming `webhook_limit_reached`; `gone` answers 404
    to everything (a deleted webhook).
    """

    def __init__(
        self,
        *,
        key_field="id",
        script=None,
        delay=0.0,
        token=None,
        record_times=False,
        cap=None,
        gone=False,
    ):
        super().__init__()
        self.key_field = key_field
        self.cap = cap
        self.gone = gone
        self.script = {str(k): list(v) for k, v in (script or {}).items()}
        self.delay = delay
        self.token = token
        self.record_times = record_times
        self.reset()

    def reset(self):
        self.received = Counter()  # row key -> requests received (whatever the answer)
        self.accepted = Counter()  # row key -> 2xx answers
        self.times = []
        self.bodies = []
        self.keep_bodies = False
        self.headers_seen = []
        self.requests = 0  # every POST, whatever it was answered
        self.asked = Counter()  # row key -> every POST for it, refused or not
        self.refused = Counter()  # status -> requests answered 401/403/404 for the webhook
        self.stored = 0  # rows kept (2xx or stored-then-dropped), what the cap counts
        self.idempotency = {}  # row key -> set of Idempotency-Key values seen
        self.dropped_after_store = Counter()  # row key -> rows stored, then the answer dropped

    @property
    def total_received(self):
        return sum(self.received.values())

    def stats(self):
        return {
            "received": self.total_received,
            "unique": len(self.received),
            "accepted": sum(self.accepted.values()),
            "duplicates": sum(n - 1 for n in self.accepted.values() if n > 1),
            "times": self.times if self.record_times else [],
        }

    async def respond(self, method, target, headers, body):
        path = urlsplit(target).path
        if path == "/_stats":
            return json_answer(200, self.stats())
        if path == "/_control":
            control = json.loads(body or b"{}")
            if control.get("reset"):
                self.reset()
            self.delay = control.get("delay", self.delay)
            self.record_times = control.get("record_times", self.record_times)
            if "script" in control:
                self.script = {str(k): list(v) for k, v in control["script"].items()}
            return json_answer(200, {"ok": True})
        if method != "POST":
            return json_answer(405, {"error": "POST only"})
        self.requests += 1
        try:
            asked = json.loads(body)
            asked = str(asked.get(self.key_field)) if isinstance(asked, dict) else ""
        except ValueError:
            asked = ""
        self.asked[asked] += 1  # every request per row key, refused or not
        if self.gone:
            self.refused[404] += 1
            return json_answer(404, {"error": "Not Found"})
        if self.token is not None and headers.get("x-clay-webhook-auth") != self.token:
            self.refused[401] += 1
            return json_answer(401, {"error": "Unauthorized"})
        if self.cap is not None and self.stored >= self.cap:
            self.refused[403] += 1
            return json_answer(
                403,
                {"error": "webhook_limit_reached", "message": "This webhook reached its limit."},
            )
        try:
            row = json.loads(body)
            key = str(row.get(self.key_field)) if isinstance(row, dict) else ""
        except ValueError:
            return json_answer(400, {"error": "Invalid JSON"})
        self.received[key] += 1
        if "idempotency-key" in headers:
            self.idempotency.setdefault(key, set()).add(headers["idempotency-key"])
        if self.record_times:
            self.times.append(time.monotonic())
        if self.keep_bodies:
            self.bodies.append(row)
            self.headers_seen.append(headers)
        plan = self.script.get(key)
        action = plan.pop(0) if plan else "ok"
        if self.delay:
            await asyncio.sleep(self.delay)
        if action == "ok":
            self.accepted[key] += 1
            self.stored += 1
            return json_answer(200, {"status": "success"})
        if action == DROP:
            return DROP
        if action == STORE_DROP:
            self.accepted[key] += 1
            self.stored += 1
            self.dropped_after_store[key] += 1
            return DROP
        if isinstance(action, list | tuple) and action[0] == "slow":
            await asyncio.sleep(action[1])
            self.accepted[key] += 1
            self.stored += 1
            return json_answer(200, {"status": "success"})
        if isinstance(action, list | tuple):  # (status, retry_after)
            status, retry_after = action
            return json_answer(status, {"error": "slow down"}, {"Retry-After": str(retry_after)})
        return json_answer(int(action), {"error": f"Refused with {action}"})


# --- Directus-compatible items endpoint ------------------------------------------------------

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_item(i: int) -> dict:
    """A deterministic article-like item; every fourth one was never updated."""
    return {
        "id": i,
        "title": f'Article {i}: notes on "enrichment"',
        "status": "published" if i % 3 else "draft",
        "email": f"author{i}@example.com",
        "company": f"Company {i % 97}",
        "views": (i * 37) % 10_000,
        "date_created": iso(BASE_TIME + timedelta(minutes=i)),
        "date_updated": None if i % 4 == 0 else iso(BASE_TIME + timedelta(days=30, minutes=i)),
    }


class FakeDirectus(LoopbackServer):
    """GET/SEARCH /items/<collection> over generated items: filter (JSON or brackets), sort by
    the pk, limit, offset, fields, meta=filter_count/total_count, aggregate[max]; Bearer token
    required; /server/info with queryLimit. As Directus 12.4: `_gt` on a string (uuid) key is a
    400, and so is a limit above `query_limit_max`."""

    def __init__(
        self,
        n=100,
        *,
        collection="articles",
        token="directus-test-token",
        items=None,
        pk="id",
        query_limit_max=None,
    ):
        super().__init__()
        self.collection = collection
        self.token = token
        self.pk = pk
        self.query_limit_max = query_limit_max
        self.items = list(items) if items is not None else [make_item(i) for i in range(1, n + 1)]
        self.requests = 0
        self.queries = []  # every items query, as parsed
        self.fail_next = []  # statuses to answer for the next item requests
        self._sort()

    def _sort(self):
        self.items.sort(key=lambda item: item[self.pk])
        self.ids = [item[self.pk] for item in self.items]

    def touch(self, ids, when: str, **changes):
        """Set date_updated (and other fields) on some items (to test incremental syncs)."""
        for item in self.items:
            if item[self.pk] in ids:
                item["date_updated"] = when
                item.update(changes)

    def remove(self, ids):
        self.items = [item for item in self.items if item[self.pk] not in ids]
        self._sort()

    def add(self, items):
        self.items += list(items)
        self._sort()

    async def respond(self, method, target, headers, body):
        parts = urlsplit(target)
        if parts.path == "/server/ping":
            return 200, {"Content-Type": "text/plain"}, b"pong"
        if headers.get("authorization") != f"Bearer {self.token}":
            return json_answer(
                401, directus_error("Invalid user credentials.", "INVALID_CREDENTIALS")
            )
        if parts.path == "/server/info":
            limit = {"default": 100, "max": self.query_limit_max or -1}
            return json_answer(200, {"data": {"version": "12.4.0", "queryLimit": limit}})
        if parts.path != f"/items/{self.collection}" or method not in ("GET", "SEARCH"):
            return json_answer(
                403, directus_error("You don't have permission to access this.", "FORBIDDEN")
            )
        self.requests += 1
        if self.fail_next:
            status = self.fail_next.pop(0)
            return json_answer(status, directus_error("Service Unavailable", "SERVICE_UNAVAILABLE"))
        try:
            query = parse_query(parts.query) if method == "GET" else json.loads(body)["query"]
            self.queries.append(query)
            refusal = self.refuse(query)
            if refusal:
                return json_answer(400, directus_error(refusal, "INVALID_QUERY"))
            return json_answer(200, self.select(query))
        except (ValueError, KeyError, TypeError) as exc:
            return json_answer(400, directus_error(f"Invalid query: {exc}", "INVALID_QUERY"))

    def refuse(self, query: dict) -> str:
        """Directus's 400 message for what it refuses, or ""."""
        limit = int(query.get("limit", 100))
        if self.query_limit_max and limit > self.query_limit_max:
            return f'"limit" must be less than or equal to {self.query_limit_max}'
        if (
            self.ids
            and isinstance(self.ids[0], str)
            and f'"{self.pk}": {{"_gt"' in json.dumps(query.get("filter") or {})
        ):
            return 'Invalid query. "uuid" field type does not contain the "_gt" filter operator.'
        return ""

    def select(self, query: dict) -> dict:
        condition = query.get("filter") or {}
        if query.get("aggregate[max]"):
            names = query["aggregate[max]"].split(",")
            rows = [i for i in self.items if matches(i, condition)]
            top = {n: max((i[n] for i in rows if i.get(n)), default=None) for n in names}
            return {"data": [{"max": top}]}
        sort = query.get("sort") or [self.pk]
        sort = sort.split(",") if isinstance(sort, str) else sort
        limit = int(query.get("limit", 100))
        if self.query_limit_max and limit < 0:
            limit = self.query_limit_max  # observed: limit=-1 is cut to QUERY_LIMIT_MAX silently
        offset = int(query.get("offset") or 0)
        fields = query.get("fields")
        fields = fields.split(",") if isinstance(fields, str) else fields
        start = lower_bound(condition, self.ids, self.pk)  # keyset reads start at the cursor
        descending = sort[0] == f"-{self.pk}"
        pool = reversed(self.items) if descending else self.items[start:]
        data = []
        for item in pool:
            if limit >= 0 and len(data) >= limit:
                break
            if matches(item, condition):
                if offset:
                    offset -= 1
                    continue
                data.append(pick(item, fields))
        answer = {"data": data}
        meta = query.get("meta")
        if meta:
            meta = meta.split(",") if isinstance(meta, str) else meta
            answer["meta"] = {}
            if "filter_count" in meta or "*" in meta:
                answer["meta"]["filter_count"] = sum(1 for i in self.items if matches(i, condition))
            if "total_count" in meta or "*" in meta:
                answer["meta"]["total_count"] = len(self.items)
        return answer


def directus_error(message, code):
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def parse_query(query_string: str) -> dict:
    """Directus query params: `filter` as JSON or `filter[a][b]=v` brackets, the rest as is."""
    query, brackets = {}, {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key.startswith("filter["):
            path = [unquote(p) for p in key[len("filter[") : -1].split("][")]
            node = brackets
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        elif key == "filter":
            query["filter"] = json.loads(value)
        else:
            query[key] = value
    if brackets:
        query["filter"] = {"_and": [query["filter"], brackets]} if "filter" in query else brackets
    return query


def lower_bound(condition: dict, ids: list, pk="id") -> int:
    """Index of the first item a `pk > x` in the filter's top-level AND allows."""
    terms = condition.get("_and", [condition]) if isinstance(condition, dict) else []
    start = 0
    for term in terms:
        gt = (term.get(pk) or {}).get("_gt") if isinstance(term, dict) else None
        if gt is not None:
            start = max(start, bisect.bisect_right(ids, type(ids[0])(gt)) if ids else 0)
    return start


def coerce(value, like):
    if isinstance(like, bool):
        return str(value).lower() in ("true", "1") if isinstance(value, str) else bool(value)
    if isinstance(like, int | float) and isinstance(value, str):
        return float(value)
    return value


def matches(item: dict, condition) -> bool:
    if not condition:
        return True
    for key, test in condition.items():
        if key == "_and":
            if not all(matches(item, c) for c in _listed(test)):
                return False
        elif key == "_or":
            if not any(matches(item, c) for c in _listed(test)):
                return False
        elif not all(compare(item.get(key), op, arg) for op, arg in test.items()):
            return False
    return True


def _listed(value):
    return list(value.values()) if isinstance(value, dict) else value


def compare(value, op, arg) -> bool:
    if op == "_null":
        return (value is None) == coerce(arg, True)
    if op == "_nnull":
        return (value is not None) == coerce(arg, True)
    if op in ("_in", "_nin"):
        options = arg.split(",") if isinstance(arg, str) else arg
        found = (
            any(value == coerce(option, value) for option in options)
            if value is not None
            else False
        )
        return found if op == "_in" else not found
    if value is None:
        return op == "_neq"
    arg = coerce(arg, value)
    return {
        "_eq": lambda: value == arg,
        "_neq": lambda: value != arg,
        "_gt": lambda: value > arg,
        "_gte": lambda: value >= arg,
        "_lt": lambda: value < arg,
        "_lte": lambda: value <= arg,
        "_contains": lambda: str(arg) in str(value),
    }[op]()


def pick(item: dict, fields) -> dict:
    if not fields or "*" in fields:
        return dict(item)
    return {f: item.get(f) for f in fields}


# --- Subprocess mode (the benchmark) -------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["sink", "directus"])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--token", default="directus-test-token")
    args = parser.parse_args(argv)
    if args.kind == "sink":
        server = FakeSink(delay=args.delay)
    else:
        server = FakeDirectus(args.items, token=args.token)
    server.start()
    print(server.port, flush=True)
    try:
        sys.stdin.read()  # runs until the parent closes our stdin
    finally:
        server.stop()


if __name__ == "__main__":
    main()
