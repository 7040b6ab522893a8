"""The embedded quick start's demo servers: a small Directus and a Clay-like webhook sink.

`bin/dev` runs them (`python -m demo`) so a fresh checkout can be clicked
through with no outside service: test the "Demo Directus" connection, build queries against
its schema, run the "Published articles → Clay" sync and watch the rows arrive at the sink.

DemoDirectus answers like Directus 12.4 does (harness/directus/observed.md) for the parts
Kiln uses: /server/ping, /server/info, /users/me, /permissions/me, /collections, /fields,
/relations and /items (list with filter, fields, sort, limit, offset, page, search, meta;
SEARCH; one item; POST, PATCH and DELETE, single and batch), with Directus's error bodies
and statuses. Three related collections hold generated, deterministic data: `authors`,
`articles` (many-to-one `author` -> authors, one-to-many alias `authors.articles`) and
`leads`. It keeps everything in memory: a restart brings the seeded data back.

DemoSink accepts webhook rows on any path (POST, JSON, optional x-clay-webhook-auth), counts
them and shows the last ones at GET /.

This module imports nothing from Django: it runs as a plain process beside the console.
Both servers bind to 127.0.0.1 only, and the token is a published demo value.
"""

import argparse
import html
import json
import random
import signal
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from integrations.directus import operators  # pure Python: still nothing from Django

DEMO_TOKEN = "kiln-demo-directus-token"
DEMO_SINK_TOKEN = "kiln-demo-clay-token"
DEMO_SINK_PATH = "/webhook/demo-published-articles"
DEFAULT_DIRECTUS_PORT = 8056
DEFAULT_SINK_PORT = 8057
HOST = "127.0.0.1"

VERSION = "12.4.0"
USER_ID = "7c0f6a2e-5b1d-4c1e-9d55-2f7d1c0d4e11"
ROLE_ID = "d68fa867-bcd9-4019-8762-39d45c4808e2"


# --- HTTP plumbing ---------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict = field(default_factory=dict)


def json_answer(status, value, headers=None) -> Answer:
    body = json.dumps(value, ensure_ascii=False).encode()
    return Answer(status, body, headers=headers or {})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KilnDemo/1"
    timeout = 60  # close idle keep-alive connections
    # Headers and body in one send: two small writes meet Nagle and delayed ACK (40 ms each).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    app = None  # set on the subclass made per server

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            answer = self.app.respond(self.command, self.path, headers, body)
        except Exception as exc:  # a bug in the demo must not kill the connection silently
            answer = json_answer(
                500, {"errors": [{"message": str(exc), "extensions": {"code": "INTERNAL"}}]}
            )
        self.send_response(answer.status)
        if answer.status != 204:
            self.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_SEARCH = do_HEAD = _handle

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if self.app.verbose:
            sys.stderr.write(f"{self.app.name}: {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class DemoServer:
    """Serve `respond` on 127.0.0.1 from a background thread (port 0: any free port)."""

    name = "demo"

    def __init__(self, *, verbose=False):
        self.verbose = verbose
        self.port = None
        self._httpd = None
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, port=0, host=HOST):
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd = _Server((host, port), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(5)
            self._httpd = None

    def __enter__(self):
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc_info):
        self.stop()

    def respond(self, method, target, headers, body) -> Answer:
        raise NotImplementedError


# --- Directus errors -------------------------------------------------------------------------


class DirectusProblem(Exception):
    def __init__(self, status, code, message, **extensions):
        super().__init__(message)
        self.status, self.code, self.message, self.extensions = status, code, message, extensions

    def answer(self) -> Answer:
        extensions = {**self.extensions, "code": self.code}
        return json_answer(
            self.status, {"errors": [{"message": self.message, "extensions": extensions}]}
        )


def forbidden_collection(collection):
    text = (
        f'You don\'t have permission to access collection "{collection}" or it does not exist. '
        "Queried in root."
    )
    return DirectusProblem(403, "FORBIDDEN", text, reason=text)


def forbidden_field(collection, name):
    text = (
        f'You don\'t have permission to access field "{name}" in collection "{collection}" or '
        "it does not exist. Queried in root."
    )
    return DirectusProblem(403, "FORBIDDEN", text, reason=text)


def forbidden():
    return DirectusProblem(403, "FORBIDDEN", "You don't have permission to access this.")


def invalid_query(reason):
    return DirectusProblem(400, "INVALID_QUERY", f"Invalid query. {reason}.", reason=reason)


def route_not_found(path):
    return DirectusProblem(404, "ROUTE_NOT_FOUND", f"Route {path} doesn't exist.", path=path)


# --- Schema ----------------------------------------------------------------------------------


@dataclass
class Field:
    name: str
    type: str  # Directus field type: integer, string, text, boolean, float, dateTime, timestamp
    data_type: str = ""
    nullable: bool = True
    unique: bool = False
    default: object = None
    pk: bool = False
    special: list | None = None
    interface: str | None = None
    options: dict | None = None
    readonly: bool = False
    hidden: bool = False
    width: str = "full"
    m2o: str | None = None  # related collection of a many-to-one column
    o2m: tuple | None = None  # (related collection, its foreign key field) of an alias
    note: str | None = None

    @property
    def alias(self) -> bool:
        return self.o2m is not None


def _pk():
    return Field(
        "id",
        "integer",
        "integer",
        nullable=False,
        pk=True,
        interface="input",
        readonly=True,
        hidden=True,
    )


def _timestamps():
    return [
        Field(
            "date_created",
            "timestamp",
            "datetime",
            special=["date-created", "cast-timestamp"],
            interface="datetime",
            readonly=True,
            hidden=True,
            width="half",
        ),
        Field(
            "date_updated",
            "timestamp",
            "datetime",
            special=["date-updated", "cast-timestamp"],
            interface="datetime",
            readonly=True,
            hidden=True,
            width="half",
        ),
    ]


STATUS_CHOICES = [
    {"text": "Published", "value": "published"},
    {"text": "Draft", "value": "draft"},
    {"text": "Archived", "value": "archived"},
]

SCHEMA = {
    "authors": {
        "icon": "person",
        "note": "People who write the articles.",
        "fields": [
            _pk(),
            Field("first_name", "string", "varchar"),
            Field("last_name", "string", "varchar"),
            Field("email", "string", "varchar", unique=True),
            Field("company", "string", "varchar"),
            Field(
                "articles",
                "alias",
                special=["o2m"],
                interface="list-o2m",
                o2m=("articles", "author"),
            ),
        ],
    },
    "articles": {
        "icon": "article",
        "note": "Blog articles; published ones are sent to Clay by the demo sync.",
        "fields": [
            _pk(),
            Field(
                "status",
                "string",
                "varchar",
                nullable=False,
                default="draft",
                interface="select-dropdown",
                options={"choices": STATUS_CHOICES},
            ),
            Field("title", "string", "varchar", nullable=False),
            Field("slug", "string", "varchar", unique=True),
            Field("views", "integer", "integer"),
            Field(
                "author",
                "integer",
                "integer",
                special=["m2o"],
                interface="select-dropdown-m2o",
                m2o="authors",
            ),
            Field("published_at", "dateTime", "datetime", interface="datetime"),
            *_timestamps(),
        ],
    },
    "leads": {
        "icon": "contact_mail",
        "note": "Sales leads to enrich.",
        "fields": [
            _pk(),
            Field("email", "string", "varchar", nullable=False, unique=True),
            Field("first_name", "string", "varchar"),
            Field("last_name", "string", "varchar"),
            Field("company", "string", "varchar"),
            Field("score", "integer", "integer"),
            Field(
                "enriched",
                "boolean",
                "boolean",
                nullable=False,
                default=False,
                special=["cast-boolean"],
                interface="boolean",
            ),
            *_timestamps(),
        ],
    },
}

_SERVER_FILLED = {"date-created", "date-updated"}


def fields_of(collection) -> dict:
    return {f.name: f for f in SCHEMA[collection]["fields"]}


def collection_row(name) -> dict:
    spec = SCHEMA[name]
    return {
        "collection": name,
        "meta": {
            "collection": name,
            "icon": spec["icon"],
            "note": spec["note"],
            "display_template": None,
            "hidden": False,
            "singleton": False,
            "translations": None,
            "archive_field": "status" if name == "articles" else None,
            "archive_app_filter": True,
            "archive_value": "archived" if name == "articles" else None,
            "unarchive_value": "draft" if name == "articles" else None,
            "sort_field": None,
            "accountability": "all",
            "color": None,
            "item_duplication_fields": None,
            "sort": None,
            "group": None,
            "collapse": "open",
            "preview_url": None,
            "versioning": False,
        },
        "schema": {"name": name},
    }


def field_row(collection, f: Field, meta_id: int) -> dict:
    schema = None
    if not f.alias:
        schema = {
            "name": f.name,
            "table": collection,
            "data_type": f.data_type,
            "default_value": f.default,
            "max_length": 255 if f.data_type == "varchar" else None,
            "numeric_precision": None,
            "numeric_scale": None,
            "is_generated": False,
            "generation_expression": None,
            "is_nullable": f.nullable,
            "is_unique": f.unique,
            "is_indexed": False,
            "is_primary_key": f.pk,
            "has_auto_increment": f.pk,
            "foreign_key_column": "id" if f.m2o else None,
            "foreign_key_table": f.m2o,
        }
    return {
        "collection": collection,
        "field": f.name,
        "type": f.type,
        "schema": schema,
        "meta": {
            "id": meta_id,
            "collection": collection,
            "field": f.name,
            "special": f.special,
            "interface": f.interface,
            "options": f.options,
            "display": "related-values" if f.m2o else None,
            "display_options": None,
            "readonly": f.readonly,
            "hidden": f.hidden,
            "sort": None,
            "width": f.width,
            "translations": None,
            "note": f.note,
            "conditions": None,
            "required": False,
            "group": None,
            "validation": None,
            "validation_message": None,
            "searchable": True,
        },
    }


def relation_rows() -> list:
    rows = []
    for collection, spec in SCHEMA.items():
        for f in spec["fields"]:
            if not f.m2o:
                continue
            one_field = next(
                (a.name for a in SCHEMA[f.m2o]["fields"] if a.o2m == (collection, f.name)), None
            )
            rows.append(
                {
                    "collection": collection,
                    "field": f.name,
                    "related_collection": f.m2o,
                    "schema": {
                        "table": collection,
                        "column": f.name,
                        "foreign_key_table": f.m2o,
                        "foreign_key_column": "id",
                        "on_update": "NO ACTION",
                        "on_delete": "SET NULL",
                        "constraint_name": None,
                    },
                    "meta": {
                        "id": len(rows) + 1,
                        "many_collection": collection,
                        "many_field": f.name,
                        "one_collection": f.m2o,
                        "one_field": one_field,
                        "one_collection_field": None,
                        "one_allowed_collections": None,
                        "junction_field": None,
                        "sort_field": None,
                        "one_deselect_action": "nullify",
                    },
                }
            )
    return rows


# --- Seeded data -----------------------------------------------------------------------------

BASE_TIME = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

AUTHORS = [
    ("Ada", "Lovelace", "Analytical Engines Ltd"),
    ("Grace", "Hopper", "Compiler Corp"),
    ("Alan", "Turing", "Bletchley Labs"),
    ("Edsger", "Dijkstra", "Shortest Path BV"),
    ("Barbara", "Liskov", "Substitution Inc"),
    ("Donald", "Knuth", "Literate Press"),
    ("Margaret", "Hamilton", "Apollo Software"),
    ("Dennis", "Ritchie", "Bell Systems"),
    ("Frances", "Allen", "Optimizing Co"),
    ("Ken", "Thompson", "Bell Systems"),
    ("Radia", "Perlman", "Spanning Tree Networks"),
    ("Linus", "Torvalds", "Kernel Works"),
]
TOPICS = [
    "PostgreSQL",
    "Jazz",
    "Cycling",
    "Sourdough",
    "Rust",
    "Gardening",
    "Chess",
    "Typography",
    "Coffee",
    "Data Enrichment",
    "Webhooks",
    "Mountain Hiking",
    "Café Culture",
    "Open Source",
    "Photography",
    "Remote Work",
]
TITLES = [
    "{} in Practice",
    "The Future of {}",
    "A Beginner's Guide to {}",
    "Why {} Matters",
    'Notes on "{}"',
    "10 Lessons from {}",
    "{}: What Nobody Tells You",
    "Rethinking {}",
]
FIRST = [
    "Maya",
    "Liam",
    "Noor",
    "Ivan",
    "Sofia",
    "Kenji",
    "Amara",
    "Lucas",
    "Elif",
    "Tomás",
    "Zara",
    "Finn",
    "Priya",
    "Jonas",
    "Chloé",
]
LAST = [
    "Okafor",
    "Schmidt",
    "Haddad",
    "Novak",
    "Rossi",
    "Tanaka",
    "Mensah",
    "Silva",
    "Yilmaz",
    "García",
    "Ahmed",
    "Berg",
    "Iyer",
    "Weber",
    "Dubois",
]
COMPANIES = [
    "Acme Analytics",
    "Northwind",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Hooli",
    "Stark Logistics",
    "Wayne Foods",
    "Tyrell Labs",
    "Cyberdyne",
]


def iso_timestamp(moment: datetime) -> str:
    """A Directus `timestamp` value: `2024-03-15T00:46:56.397Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_datetime(moment: datetime) -> str:
    """A Directus `dateTime` value: no zone, no fraction."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def seed_data(n_articles=300, n_leads=60) -> dict:
    """Deterministic demo items per collection, in primary key order."""
    rnd = random.Random(20250106)
    authors = []
    for i, (first, last, company) in enumerate(AUTHORS, start=1):
        authors.append(
            {
                "id": i,
                "first_name": first,
                "last_name": last,
                "email": f"{first.lower()}.{last.lower()}@example.com",
                "company": company,
            }
        )
    articles = []
    for i in range(1, n_articles + 1):
        roll = rnd.random()
        status = "published" if roll < 0.6 else "draft" if roll < 0.85 else "archived"
        topic = rnd.choice(TOPICS)
        title = rnd.choice(TITLES).format(topic)
        created = BASE_TIME + timedelta(hours=7 * i, minutes=rnd.randrange(60))
        updated = None if i % 4 == 0 else created + timedelta(days=rnd.randrange(1, 40))
        articles.append(
            {
                "id": i,
                "status": status,
                "title": title,
                "slug": f"{i}-"
                + "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-"),
                "views": None if rnd.random() < 0.05 else rnd.randrange(0, 20_000),
                # Published articles always have an author, so the demo sync's rows are complete.
                "author": (
                    rnd.randrange(1, len(authors) + 1)
                    if status == "published" or rnd.random() < 0.8
                    else None
                ),
                "published_at": (
                    iso_datetime(created + timedelta(hours=2)) if status == "published" else None
                ),
                "date_created": iso_timestamp(created),
                "date_updated": iso_timestamp(updated) if updated else None,
            }
        )
    leads, seen = [], set()
    for i in range(1, n_leads + 1):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        email = f"{first.lower()}.{last.lower()}{i}@example.org"
        seen.add(email)
        created = BASE_TIME + timedelta(days=i, minutes=rnd.randrange(600))
        leads.append(
            {
                "id": i,
                "email": email,
                "first_name": first,
                "last_name": last,
                "company": rnd.choice(COMPANIES),
                "score": None if rnd.random() < 0.1 else rnd.randrange(0, 101),
                "enriched": False,
                "date_created": iso_timestamp(created),
                "date_updated": None,
            }
        )
    return {"authors": authors, "articles": articles, "leads": leads}


# --- Query evaluation ------------------------------------------------------------------------


def normalize(node):
    """Bracket filters arrive as dicts with "0", "1" keys where JSON has lists."""
    if isinstance(node, dict):
        node = {k: normalize(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    elif isinstance(node, list):
        return [normalize(v) for v in node]
    return node


def coerce(value, type_):
    """A filter value (text in bracket form) as the field's type."""
    if value is None:
        return None
    if isinstance(value, str) and value == "$NOW":
        return iso_timestamp(datetime.now(UTC))
    if type_ == "boolean":
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)
    if type_ in ("integer", "float") and isinstance(value, str):
        try:
            return int(value) if type_ == "integer" else float(value)
        except ValueError:
            return value
    if type_ in ("string", "text", "timestamp", "dateTime") and not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def _as_list(value, type_):
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        items = [items]
    return [coerce(v, type_) for v in items]


def _ordered(a, b, test):
    try:
        return test(a, b)
    except TypeError:
        return test(str(a), str(b))


def compare(value, op, arg, type_) -> bool:
    if op == "_null":
        return (value is None) == coerce(arg, "boolean")
    if op == "_nnull":
        return (value is not None) == coerce(arg, "boolean")
    if op == "_empty":
        return (value is None or value == "") == coerce(arg, "boolean")
    if op == "_nempty":
        return (value is not None and value != "") == coerce(arg, "boolean")
    if value is None:  # SQL: NULL compared with anything is not true
        return False
    if op in ("_in", "_nin"):
        found = value in _as_list(arg, type_)
        return found if op == "_in" else not found
    if op in ("_between", "_nbetween"):
        bounds = _as_list(arg, type_)
        if len(bounds) != 2:
            raise invalid_query(f'"{op}" needs two values')
        inside = _ordered(bounds[0], value, lambda a, b: a <= b) and _ordered(
            value, bounds[1], lambda a, b: a <= b
        )
        return inside if op == "_between" else not inside
    arg = coerce(arg, type_)
    text, needle = str(value), str(arg)
    tests = {
        "_eq": lambda: value == arg,
        "_neq": lambda: value != arg,
        "_gt": lambda: _ordered(value, arg, lambda a, b: a > b),
        "_gte": lambda: _ordered(value, arg, lambda a, b: a >= b),
        "_lt": lambda: _ordered(value, arg, lambda a, b: a < b),
        "_lte": lambda: _ordered(value, arg, lambda a, b: a <= b),
        "_contains": lambda: needle in text,
        "_ncontains": lambda: needle not in text,
        "_icontains": lambda: needle.lower() in text.lower(),
        "_nicontains": lambda: needle.lower() not in text.lower(),
        "_starts_with": lambda: text.startswith(needle),
        "_nstarts_with": lambda: not text.startswith(needle),
        "_istarts_with": lambda: text.lower().startswith(needle.lower()),
        "_nistarts_with": lambda: not text.lower().startswith(needle.lower()),
        "_ends_with": lambda: text.endswith(needle),
        "_nends_with": lambda: not text.endswith(needle),
        "_iends_with": lambda: text.lower().endswith(needle.lower()),
        "_niends_with": lambda: not text.lower().endswith(needle.lower()),
    }
    return tests[op]()


class Store:
    """The collections' items and the query logic over them (callers hold the lock)."""

    def __init__(self, data=None):
        self.items = {c: {i["id"]: i for i in rows} for c, rows in (data or seed_data()).items()}
        self.next_id = {c: max(rows, default=0) + 1 for c, rows in self.items.items()}

    def field(self, collection, name) -> Field:
        found = fields_of(collection).get(name)
        if found is None:
            raise forbidden_field(collection, name)
        return found

    # -- reading ---------------------------------------------------------------------------

    def value(self, collection, item, f: Field):
        if f.o2m:
            related, fk = f.o2m
            return [i for i in self.items[related].values() if i.get(fk) == item["id"]]
        return item.get(f.name)

    def matches(self, collection, item, condition) -> bool:
        if not condition:
            return True
        if not isinstance(condition, dict):
            raise invalid_query("Invalid filter object")
        for key, test in condition.items():
            if key in ("_and", "_or"):
                parts = test if isinstance(test, list) else [test]
                results = (self.matches(collection, item, part) for part in parts)
                if not (all(results) if key == "_and" else any(results)):
                    return False
            elif not self._field_matches(collection, item, key, test):
                return False
        return True

    def _field_matches(self, collection, item, name, test) -> bool:
        f = self.field(collection, name)
        if not isinstance(test, dict):
            raise invalid_query(f'Invalid filter for field "{name}"')
        if f.m2o and not all(k.startswith("_") for k in test):
            related = self.items[f.m2o].get(item.get(name))
            return related is not None and self.matches(f.m2o, related, test)
        if f.o2m:
            target, _ = f.o2m
            rows = self.value(collection, item, f)
            if "_none" in test:
                return not any(self.matches(target, r, test["_none"]) for r in rows)
            inner = test.get("_some", test)
            return any(self.matches(target, r, inner) for r in rows)
        for op, arg in test.items():
            # Directus's own table, as the console's validation uses it.
            if op not in operators.operators_for_type(f.type):
                raise invalid_query(
                    f'"{f.type}" field type does not contain the "{op}" filter operator'
                )
            if not compare(item.get(name), op, arg, f.type):
                return False
        return True

    def field_tree(self, collection, fields) -> dict:
        """`id,author.first_name,*` -> {"id": {}, "author": {"first_name": {}}, "*": {}}."""
        tree = {}
        for path in fields or ["*"]:
            path = path.strip()
            if not path:
                continue
            node = tree
            for part in path.split("."):
                node = node.setdefault(part, {})
        self._check_tree(collection, tree)
        return tree

    def _check_tree(self, collection, tree):
        for name, sub in tree.items():
            if name == "*":
                continue
            f = self.field(collection, name)
            if sub:
                target = f.m2o or (f.o2m[0] if f.o2m else None)
                if target is None:
                    raise forbidden_field(collection, f"{name}.{next(iter(sub))}")
                self._check_tree(target, sub)

    def render(self, collection, item, tree) -> dict:
        out = {}
        schema = fields_of(collection)
        star = tree.get("*")
        names = list(schema) if star is not None else []
        names += [n for n in tree if n != "*" and n not in names]
        for name in names:
            f = schema[name]
            sub = tree.get(name) or (star if star and (f.m2o or f.o2m) else {})
            if f.m2o:
                related = self.items[f.m2o].get(item.get(name))
                out[name] = self.render(f.m2o, related, sub) if sub and related else item.get(name)
            elif f.o2m:
                target = f.o2m[0]
                rows = sorted(self.value(collection, item, f), key=lambda r: r["id"])
                out[name] = [self.render(target, r, sub) if sub else r["id"] for r in rows]
            else:
                out[name] = item.get(name)
        return out

    def sort_key(self, collection, item, path):
        names = path.split(".")
        current_collection, current = collection, item
        for name in names:
            f = self.field(current_collection, name)
            if current is None:
                return None
            value = current.get(name)
            if f.m2o and name != names[-1]:
                current_collection, current = f.m2o, self.items[f.m2o].get(value)
                continue
            return value
        return None

    def select(self, collection, query: dict) -> dict:
        if collection not in self.items:
            raise forbidden_collection(collection)
        condition = normalize(query.get("filter")) or {}
        if isinstance(condition, str):
            try:
                condition = json.loads(condition)
            except ValueError:
                raise invalid_query("Invalid JSON for filter object") from None
        rows = [
            i for i in self.items[collection].values() if self.matches(collection, i, condition)
        ]
        search = query.get("search")
        if search:
            text_fields = [
                f.name for f in SCHEMA[collection]["fields"] if f.type in ("string", "text")
            ]
            rows = [
                r
                for r in rows
                if any(search.lower() in str(r.get(n) or "").lower() for n in text_fields)
            ]
        sort = _listed(query.get("sort")) or [fields_of(collection)["id"].name]
        for path in reversed(sort):
            descending = path.startswith("-")
            path = path.lstrip("-")
            self.field(collection, path.split(".")[0])

            def key(row, path=path):
                value = self.sort_key(collection, row, path)
                return (value is not None, value if isinstance(value, int | float) else str(value))

            try:
                rows.sort(key=key, reverse=descending)
            except TypeError:
                rows.sort(key=lambda r, path=path: str(key(r)), reverse=descending)
        limit = _number(query.get("limit"), "limit", 100)
        offset = _number(query.get("offset"), "offset", 0)
        page = query.get("page")
        if page is not None:
            offset = (max(1, _number(page, "page", 1)) - 1) * max(limit, 0)
        chosen = rows[offset:] if limit < 0 else rows[offset : offset + limit]
        tree = self.field_tree(collection, _listed(query.get("fields")))
        answer = {}
        meta = _listed(query.get("meta"))
        if meta:
            answer["meta"] = {}
            for index, name in enumerate(meta):
                if name not in ("*", "total_count", "filter_count"):
                    raise invalid_query(
                        f'"meta[{index}]" must be one of [total_count, filter_count]'
                    )
            if "total_count" in meta or "*" in meta:
                answer["meta"]["total_count"] = len(self.items[collection])
            if "filter_count" in meta or "*" in meta:
                answer["meta"]["filter_count"] = len(rows)
        answer["data"] = [self.render(collection, r, tree) for r in chosen]
        return answer

    # -- writing ---------------------------------------------------------------------------

    def _clean(self, collection, row) -> dict:
        if not isinstance(row, dict):
            raise DirectusProblem(400, "INVALID_PAYLOAD", "Invalid payload. Expected an object.")
        schema = fields_of(collection)
        clean = {}
        for name, value in row.items():
            f = schema.get(name)
            if f is None or f.alias or f.readonly and not f.pk:
                continue  # Directus drops what it cannot write
            if f.m2o and isinstance(value, dict):
                value = value.get("id")
            clean[name] = value
        return clean

    def _validate(self, collection, item, others):
        for f in SCHEMA[collection]["fields"]:
            if f.alias or f.pk or _SERVER_FILLED & set(f.special or []):
                continue
            if not f.nullable and item.get(f.name) is None:
                raise DirectusProblem(
                    400,
                    "FAILED_VALIDATION",
                    f'Validation failed for field "{f.name}". Value is required.',
                    field=f.name,
                    path=[],
                    type="required",
                )
            if f.unique and item.get(f.name) is not None:
                if any(o.get(f.name) == item[f.name] for o in others if o["id"] != item["id"]):
                    value = item[f.name]
                    raise DirectusProblem(
                        400,
                        "RECORD_NOT_UNIQUE",
                        f'Value "{value}" for field "{f.name}" in collection "{collection}" '
                        "has to be unique.",
                        collection=collection,
                        field=f.name,
                        value=value,
                    )

    def create(self, collection, rows) -> list:
        staged = list(self.items[collection].values())
        next_id = self.next_id[collection]
        created = []
        now = iso_timestamp(datetime.now(UTC))
        for row in rows:
            item = {f.name: f.default for f in SCHEMA[collection]["fields"] if not f.alias}
            item.update(self._clean(collection, row))
            if item.get("id") is None:
                item["id"] = next_id
            next_id = max(next_id, int(item["id"])) + 1
            if any(o["id"] == item["id"] for o in staged):
                raise DirectusProblem(
                    400,
                    "RECORD_NOT_UNIQUE",
                    f'Value "{item["id"]}" for field "id" in collection "{collection}" '
                    "has to be unique.",
                    collection=collection,
                    field="id",
                    value=item["id"],
                )
            if "date_created" in item:
                item["date_created"] = now
            self._validate(collection, item, staged)
            staged.append(item)
            created.append(item)
        for item in created:  # all or nothing: written only when every row passed
            self.items[collection][item["id"]] = item
        self.next_id[collection] = next_id
        return created

    def update(self, collection, changes: dict) -> list:
        """`changes` maps existing ids to their new values; unknown ids change nothing."""
        staged = {k: dict(v) for k, v in self.items[collection].items()}
        now = iso_timestamp(datetime.now(UTC))
        touched = []
        for key, data in changes.items():
            if key not in staged:
                continue
            data = {k: v for k, v in self._clean(collection, data).items() if k != "id"}
            staged[key].update(data)
            if "date_updated" in staged[key]:
                staged[key]["date_updated"] = now
            self._validate(collection, staged[key], staged.values())
            touched.append(key)
        self.items[collection] = staged
        return [staged[k] for k in touched]

    def delete(self, collection, keys):
        for key in keys:
            self.items[collection].pop(key, None)


def _listed(value):
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v for v in (p.strip() for p in value.split(",")) if v]
    return [str(v) for v in value]


def _number(value, name, default):
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_query(f'"{name}" must be a number') from None


def parse_query(query_string: str) -> dict:
    """Directus query params: `filter` as JSON or `filter[a][b]=v` brackets, `x[]=` lists."""
    query, trees = {}, {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        head, bracket, rest = key.partition("[")
        if head in ("filter", "deep", "aggregate", "groupBy") and bracket and rest != "]":
            path = [unquote(p) for p in rest[:-1].split("][")]
            node = trees.setdefault(head, {})
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        elif bracket and rest == "]":  # fields[]=a&fields[]=b
            query.setdefault(head, []).append(value)
        elif head in ("filter", "deep"):
            try:
                query[head] = json.loads(value) if value else {}
            except ValueError:
                raise invalid_query(f"Invalid JSON for {head} object") from None
        else:
            query[head] = value
    for head, tree in trees.items():
        tree = normalize(tree)
        if head == "filter" and "filter" in query:
            query["filter"] = {"_and": [query["filter"], tree]}
        else:
            query[head] = tree
    return query


# --- Directus --------------------------------------------------------------------------------


class DemoDirectus(DemoServer):
    """A Directus 12.4 look-alike over generated authors, articles and leads."""

    name = "demo-directus"

    def __init__(self, *, token=DEMO_TOKEN, data=None, verbose=False):
        super().__init__(verbose=verbose)
        self.token = token
        self.store = Store(data)
        self.lock = threading.Lock()
        self.requests = 0

    def respond(self, method, target, headers, body) -> Answer:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        try:
            return self._route(method, path, parts.query, headers, body)
        except DirectusProblem as problem:
            return problem.answer()

    def _route(self, method, path, query_string, headers, body) -> Answer:
        with self.lock:
            self.requests += 1
        if path == "/server/ping" and method == "GET":
            return Answer(200, b"pong", "text/html; charset=utf-8")
        query = parse_query(query_string)
        authenticated = self._authenticate(headers, query)
        if path == "/server/info" and method == "GET":
            return json_answer(200, {"data": self._server_info(authenticated)})
        segments = path.strip("/").split("/")
        if segments[0] == "items" and len(segments) in (2, 3):
            if not authenticated:
                raise forbidden_collection(segments[1])
            return self._items(method, path, segments[1:], query, body)
        protected = ("users", "collections", "fields", "relations", "permissions")
        if not authenticated and segments[0] in protected:
            raise forbidden()
        if method != "GET":
            raise route_not_found(path)
        if path == "/users/me":
            user = {
                "id": USER_ID,
                "first_name": "Demo",
                "last_name": "Admin",
                "email": "demo@kiln.local",
                "role": ROLE_ID,
                "status": "active",
                "token": "**********",
            }
            wanted = _listed(query.get("fields")) or list(user)
            return json_answer(200, {"data": {k: user[k] for k in wanted if k in user}})
        if path == "/permissions/me":
            actions = ("create", "read", "update", "delete", "share")
            return json_answer(
                200,
                {
                    "data": {
                        c: {a: {"access": "full", "fields": ["*"]} for a in actions} for c in SCHEMA
                    }
                },
            )
        if path == "/collections":
            return json_answer(200, {"data": [collection_row(c) for c in SCHEMA]})
        if path == "/relations":
            return json_answer(200, {"data": relation_rows()})
        if segments[0] == "fields" and len(segments) <= 2:
            wanted = segments[1:] or list(SCHEMA)
            if wanted[0] not in SCHEMA:
                raise forbidden_collection(wanted[0])
            rows, meta_id = [], 0
            for c in SCHEMA:
                for f in SCHEMA[c]["fields"]:
                    meta_id += 1
                    if c in wanted:
                        rows.append(field_row(c, f, meta_id))
            return json_answer(200, {"data": rows})
        raise route_not_found(path)

    def _authenticate(self, headers, query) -> bool:
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        token = token or query.pop("access_token", None)
        if token is None:
            return False
        if token != self.token:
            raise DirectusProblem(401, "INVALID_CREDENTIALS", "Invalid user credentials.")
        return True

    def _server_info(self, authenticated) -> dict:
        info = {
            "project": {
                "project_name": "Kiln demo Directus",
                "project_descriptor": "Embedded demo data",
                "project_logo": None,
                "project_color": "#6644FF",
                "default_language": "en-US",
                "public_note": None,
                "public_registration": False,
            }
        }
        if authenticated:
            info.update(
                {
                    "rateLimit": False,
                    "rateLimitGlobal": False,
                    "queryLimit": {"default": 100, "max": -1},
                    "websocket": False,
                    "version": VERSION,
                }
            )
        return info

    def _items(self, method, path, segments, query, body) -> Answer:
        collection = segments[0]
        store = self.store
        if collection not in SCHEMA:
            raise forbidden_collection(collection)
        payload = None
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                raise DirectusProblem(
                    400, "INVALID_PAYLOAD", "Invalid payload. Invalid JSON.", reason="Invalid JSON"
                ) from None
        fields = _listed(query.get("fields"))
        with self.lock:
            if len(segments) == 2:
                return self._one(method, path, collection, segments[1], query, payload, fields)
            if method == "GET":
                return json_answer(200, store.select(collection, query))
            if method == "SEARCH":
                if not isinstance(payload, dict) or set(payload) - {"query"}:
                    raise DirectusProblem(
                        400, "INVALID_PAYLOAD", 'Invalid payload. "query" is required.'
                    )
                return json_answer(200, store.select(collection, payload.get("query") or {}))
            if method == "POST":
                if payload is None:
                    raise DirectusProblem(400, "INVALID_PAYLOAD", "Invalid payload.")
                created = store.create(
                    collection, payload if isinstance(payload, list) else [payload]
                )
                tree = store.field_tree(collection, fields)
                data = [store.render(collection, c, tree) for c in created]
                return json_answer(200, {"data": data if isinstance(payload, list) else data[0]})
            if method == "PATCH":
                changes = self._batch_changes(collection, payload)
                tree = store.field_tree(collection, fields)
                updated = store.update(collection, changes)
                return json_answer(
                    200, {"data": [store.render(collection, u, tree) for u in updated]}
                )
            if method == "DELETE":
                if isinstance(payload, dict):
                    keys = payload.get("keys") or [
                        r["id"]
                        for r in store.select(
                            collection,
                            {**(payload.get("query") or {}), "fields": "id", "limit": -1},
                        )["data"]
                    ]
                else:
                    keys = payload or []
                store.delete(collection, [self._key(k) for k in keys])
                return Answer(204)
        raise route_not_found(path)

    def _one(self, method, path, collection, raw_key, query, payload, fields) -> Answer:
        store = self.store
        key = self._key(raw_key)
        tree = store.field_tree(collection, fields)
        if method == "GET":
            item = store.items[collection].get(key)
            if item is None:
                raise forbidden()
            return json_answer(200, {"data": store.render(collection, item, tree)})
        if method == "PATCH":
            if not isinstance(payload, dict):
                raise DirectusProblem(400, "INVALID_PAYLOAD", "Invalid payload.")
            updated = store.update(collection, {key: payload})
            if not updated:
                return Answer(204)
            return json_answer(200, {"data": store.render(collection, updated[0], tree)})
        if method == "DELETE":
            store.delete(collection, [key])
            return Answer(204)
        raise route_not_found(path)

    def _batch_changes(self, collection, payload) -> dict:
        if isinstance(payload, list):
            return {self._key(r.get("id")): r for r in payload if isinstance(r, dict)}
        if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
            if "keys" in payload:
                keys = payload["keys"]
            else:
                query = {**(payload.get("query") or {}), "fields": "id", "limit": -1}
                keys = [r["id"] for r in self.store.select(collection, query)["data"]]
            return {self._key(k): payload["data"] for k in keys}
        raise DirectusProblem(400, "INVALID_PAYLOAD", "Invalid payload.")

    @staticmethod
    def _key(value):
        try:
            return int(value)
        except (TypeError, ValueError):
            return value


# --- Clay-like sink --------------------------------------------------------------------------


class DemoSink(DemoServer):
    """Accepts JSON rows on any path by POST, like a Clay table's webhook source."""

    name = "demo-clay"

    def __init__(self, *, token=DEMO_SINK_TOKEN, keep=50, verbose=False):
        super().__init__(verbose=verbose)
        self.token = token
        self.lock = threading.Lock()
        self.received = 0
        self.last = deque(maxlen=keep)

    def respond(self, method, target, headers, body) -> Answer:
        path = urlsplit(target).path
        if method in ("GET", "HEAD"):
            if path == "/_stats":
                with self.lock:
                    return json_answer(200, {"received": self.received, "last": list(self.last)})
            if path in ("/", ""):
                return Answer(200, self._page().encode(), "text/html; charset=utf-8")
            return json_answer(404, {"error": "Not found"})
        if method != "POST":
            return json_answer(405, {"error": "Method not allowed"})
        if path == "/_reset":
            with self.lock:
                self.received = 0
                self.last.clear()
            return Answer(303, headers={"Location": "/"})
        if self.token and headers.get("x-clay-webhook-auth") != self.token:
            return json_answer(401, {"error": "Unauthorized"})
        try:
            row = json.loads(body)
        except ValueError:
            return json_answer(400, {"error": "Invalid JSON"})
        with self.lock:
            self.received += 1
            self.last.appendleft(
                {
                    "n": self.received,
                    "at": iso_timestamp(datetime.now(UTC)),
                    "path": path,
                    "row": row,
                }
            )
        return json_answer(200, {"status": "success"})

    def _page(self) -> str:
        with self.lock:
            received, last = self.received, list(self.last)
        rows = (
            "".join(
                f"<tr><td>{r['n']}</td><td>{html.escape(r['at'])}</td>"
                f"<td><code>{html.escape(json.dumps(r['row'], ensure_ascii=False))}</code></td></tr>"
                for r in last
            )
            or '<tr><td colspan="3">Nothing yet: run the demo sync in Kiln.</td></tr>'
        )
        return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Demo Clay table ({received})</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}td{{padding:.2em .6em;vertical-align:top;
border-bottom:1px solid #ddd}}code{{white-space:pre-wrap}}</style></head><body>
<h1>Demo Clay table</h1>
<p>Kiln's demo webhook sink. Rows received: <strong>{received}</strong>
(the last {len(last)} below, newest first; this page refreshes every 2 s).</p>
<form method="post" action="/_reset"><button>Reset the count</button></form>
<table><tr><th>#</th><th>Received</th><th>Row</th></tr>{rows}</table>
</body></html>"""


# --- Command line ----------------------------------------------------------------------------


def wait_until_up(urls, timeout=10.0) -> bool:
    """Whether every URL answered within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending:
        try:
            # Only http://127.0.0.1 URLs built above.
            with urllib.request.urlopen(pending[0], timeout=1) as response:  # noqa: S310
                response.read()
            pending.pop(0)
            continue
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description="Kiln's demo Directus and Clay sink.")
    parser.add_argument("--directus-port", type=int, default=DEFAULT_DIRECTUS_PORT)
    parser.add_argument("--sink-port", type=int, default=DEFAULT_SINK_PORT)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="do not serve: wait until both servers answer, exit 1 if they do not",
    )
    args = parser.parse_args(argv)
    directus_url = f"http://{HOST}:{args.directus_port}"
    sink_url = f"http://{HOST}:{args.sink_port}"
    if args.wait is not None:
        ok = wait_until_up([f"{directus_url}/server/ping", f"{sink_url}/_stats"], args.wait)
        return 0 if ok else 1
    try:
        directus = DemoDirectus(verbose=args.verbose).start(args.directus_port)
        sink = DemoSink(verbose=args.verbose).start(args.sink_port)
    except OSError as exc:
        print(f"demo: cannot listen: {exc}", file=sys.stderr)
        return 1
    print(f"Demo Directus at {directus.url} (static token {DEMO_TOKEN})", flush=True)
    print(f"Demo Clay sink at {sink.url}/ (webhook {sink.url}{DEMO_SINK_PATH})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    directus.stop()
    sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
