"""Directus client: every call goes through integrations.outbound.http and fails as one DirectusError.

Facts this relies on (harness/directus/observed.md, Directus 12.4): errors are
{"errors": [{"message", "extensions": {"code", ...}}]}; an unknown collection, an unknown
field and a missing item all answer 403 FORBIDDEN, never 404; 404 ROUTE_NOT_FOUND means the
URL is not a Directus route; writes answer 200 with the items, DELETE and PATCH of a missing
id answer 204; 429 carries Retry-After in whole seconds, which can be "0".
"""

import email.utils
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit

import httpx

from integrations.directus.fieldpaths import did_you_mean
from integrations.outbound import http

# A GET longer than this goes as SEARCH with the query in the body: proxies and Node cap
# URL length (Node's default header limit is 16 KB), and keyset filters can grow.
_MAX_QUERY_STRING = 6000
_TRANSIENT_STATUSES = {408, 429, 502, 503, 504}
_FIELD_RE = re.compile(r'field "([^"]+)" in collection "([^"]+)"')
_COLLECTION_RE = re.compile(r'collection "([^"]+)"')
_QUERIED_IN_RE = re.compile(r'Queried in "([^"]+)"')
_LIMIT_MAX_RE = re.compile(r'"limit" must be less than or equal to (\d+)')
# Rows re-read at the start of each offset page to check the page still lines up.
OFFSET_OVERLAP = 8
# The shortest wait after a 429: Directus's "Retry-After: 0" means "within this second".
RATE_LIMIT_FLOOR = 0.25
# Times an offset read may start over because rows before it moved, before it gives up.
MAX_RESCANS = 3
_RETRY_IN_MESSAGE_RE = re.compile(r"retry after (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_SKIPPED = "Skipped: an earlier stage failed."
_SAME_ANSWER = "Directus gives the same answer for both."
_WRITE_VERBS = {"POST": "create", "PATCH": "update", "DELETE": "delete"}
_NETWORK_SENTENCES = {
    "dns": "The host name in the base URL does not resolve (DNS): check it for typos.",
    "refused": "Nothing accepted the connection at that address and port: Directus is not "
    "running there, or the port is wrong.",
    "tls": "The secure (TLS) connection failed: the certificate is not valid for this host, "
    "or the server does not speak HTTPS on this port.",
    "timeout": "Directus did not answer in time: the server is slow or overloaded, or a "
    "firewall drops the traffic.",
    "blocked": "Kiln does not connect to this address: it is private, loopback or link-local, "
    "and calls to internal networks are turned off.",
    "too_large": "The answer was larger than Kiln accepts: ask for fewer items or fields.",
    "invalid_url": "The base URL is not a valid http(s) URL.",
}
# Fixed sentences per Directus error code ({what}: Directus's reason, {field}, {path}).
_SENTENCES = {
    "INVALID_CREDENTIALS": "Directus rejected the token: it is unknown or was revoked. Check the "
    "static token on the user in Directus.",
    "TOKEN_EXPIRED": "Directus says the token has expired. Static tokens do not expire, so this is "
    "a login (JWT) token: use the static token from the user's page in Directus.",
    "ROUTE_NOT_FOUND": "Directus answered 404 ROUTE_NOT_FOUND for {path}: this URL is not a "
    "Directus API — check the base URL.",
    "NOT_DIRECTUS": "The server answered, but not like Directus: this URL is not a Directus API "
    "— check the base URL.",
    "INVALID_QUERY": "Directus rejected the query: {what}.",
    "INVALID_PAYLOAD": "Directus rejected the request body: {what}.",
    "RECORD_NOT_UNIQUE": 'Directus refused the item: field "{field}" must be unique and this value '
    "is already used.",
}


class DirectusError(Exception):
    """Any failed call: a non-2xx answer, an answer that is not Directus, or a transport failure."""

    def __init__(
        self, message, *, status=None, code="", retry_after=None, transient=False, **context
    ):
        self.message = http.redact(message or "")
        self.status, self.code = status, code
        self.retry_after, self.transient = retry_after, transient
        self.field = context.get("field")  # FAILED_VALIDATION, RECORD_NOT_UNIQUE, 403 on a field
        self.reason = http.redact(context.get("reason") or "")
        # What was asked, for the explanation: collection (as Directus named it), item, request.
        self.collection, self.item = context.get("collection"), context.get("item")
        self.method, self.path = context.get("method", ""), context.get("path", "")
        super().__init__(self.explain())

    @property
    def permanent(self) -> bool:
        return not self.transient

    def explain(self) -> str:
        """One plain-language sentence for a person; never contains the token."""
        return http.redact(_explain(self))


@dataclass
class ItemsPage:
    data: list
    meta: dict | None
    status: int
    elapsed_ms: int
    # Set by iter_items: where to resume after this page, the page size the server allowed,
    # and whether the read started over (the caller drops rows it already has).
    cursor: object = None
    limit: int | None = None
    rescanned: bool = False


@dataclass
class Stage:
    name: str
    ok: bool | None  # None: skipped because an earlier stage failed
    summary: str
    detail: str
    elapsed_ms: int
    # What the stage learned for the connection's row: {"server_info": {...}, "user_id": "...",
    # "permissions": {"articles": ["read", "update"]}, "schema_access": False}
    facts: dict = field(default_factory=dict)
    # Passed, but something will not work with this token: one sentence saying what.
    warning: str = ""


class DirectusClient:
    def __init__(
        self,
        base_url,
        token,
        *,
        client: httpx.Client | None = None,
        timeout=None,
        rate_limit_wait: float = 0.0,
    ):
        """`rate_limit_wait`: seconds a call may spend waiting out Directus's rate limiter
        (429) before it fails; 0 fails at once, for callers with their own retry loop."""
        self.base_url = (base_url or "").strip().rstrip("/")
        self.token = token or ""
        http.register_secret(self.token)
        self._owns_client = client is None
        self._client = client if client is not None else http.make_client(timeout=timeout)
        self.last_elapsed_ms = 0
        self.rate_limit_wait = rate_limit_wait
        self.rate_limited_ms = 0  # time spent waiting for the rate limiter, for "waited" notes

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if self._owns_client:
            self._client.close()

    # -- server and schema -------------------------------------------------------------

    def ping(self) -> str:
        """GET /server/ping; returns "pong" or raises (a server that says anything else is not Directus)."""
        response = self._request("GET", "/server/ping", auth=False)
        body = response.text.strip()
        if body != "pong":
            raise DirectusError(
                f"/server/ping answered {response.status_code} with {body[:80]!r}, not 'pong'",
                status=response.status_code,
                code="NOT_DIRECTUS",
                method="GET",
                path="/server/ping",
            )
        return body

    def server_info(self) -> dict:
        return self._data("GET", "/server/info")

    def me(self, fields="id,email,first_name,last_name") -> dict:
        # Ask for named fields: the full row also carries the (masked) token and password.
        return self._data("GET", "/users/me", params={"fields": fields})

    def collections(self) -> list:
        return self._data("GET", "/collections")

    def fields(self, collection=None) -> list:
        path = f"/fields/{_q(collection)}" if collection else "/fields"
        return self._data("GET", path, collection=collection)

    def relations(self) -> list:
        return self._data("GET", "/relations")

    def permissions_me(self) -> dict | None:
        """{"articles": {"read": {"access": "full", ...}, ...}}, or None where the server has no answer.

        Directus 11+ answers any authenticated user (even one that may not read /collections);
        older servers answer 404 ROUTE_NOT_FOUND, and a policy may forbid it (403).
        """
        try:
            return self._data("GET", "/permissions/me")
        except DirectusError as exc:
            if exc.status in (403, 404):
                return None
            raise

    # -- items -------------------------------------------------------------------------

    def list_items(self, collection, params=None) -> ItemsPage:
        return self._page("GET", _items(collection), collection, params=params)

    def search_items(self, collection, query: dict, params=None) -> ItemsPage:
        """HTTP SEARCH with {"query": {...}}: filter/fields/sort/limit/meta as JSON, no URL limit.

        Directus 12.4 takes fields, sort and meta as lists or comma strings there; any other
        top-level body key than "query" is 400 INVALID_PAYLOAD.
        """
        if not isinstance(query, dict):
            raise TypeError("search_items takes the query as a dict")
        body = {"query": query}
        return self._page("SEARCH", _items(collection), collection, params=params, body=body)

    def get_item(self, collection, id, params=None) -> dict:
        path = f"{_items(collection)}/{_q(id)}"
        return self._data("GET", path, params=params, collection=collection, item=id)

    def create_items(self, collection, rows, params=None):
        """POST one object (returns it) or a list (returns the list); Directus answers 200."""
        return self._data(
            "POST", _items(collection), params=params, body=rows, collection=collection
        )

    def update_item(self, collection, id, data, params=None) -> dict | None:
        """PATCH one item; None when Directus answers 204 (it does so for an id that does not exist)."""
        path = f"{_items(collection)}/{_q(id)}"
        return self._data("PATCH", path, params=params, body=data, collection=collection, item=id)

    def update_items(self, collection, keys, data, params=None) -> list:
        """The same change to many items: PATCH {"keys": [...], "data": {...}}."""
        body = {"keys": list(keys), "data": data}
        path = _items(collection)
        return self._data("PATCH", path, params=params, body=body, collection=collection) or []

    def update_items_batch(self, collection, rows_with_pk, params=None) -> list:
        """A different change per item: PATCH [{"id": 1, ...}, {"id": 2, ...}]."""
        body = list(rows_with_pk)
        path = _items(collection)
        return self._data("PATCH", path, params=params, body=body, collection=collection) or []

    def delete_items(self, collection, keys) -> None:
        """DELETE with the keys as the body; Directus answers 204 even for keys that do not exist."""
        self._request("DELETE", _items(collection), body=list(keys), collection=collection)

    def iter_items(
        self,
        collection,
        *,
        pk="id",
        page_size=200,
        filter=None,
        fields=None,
        after=None,
        pages=False,
    ):
        """Yield every matching item (or each ItemsPage, with `.cursor` to resume after it).

        Integer keys are read by keyset: each page asks for `pk > last seen` sorted by pk, so
        rows added or removed during the read never shift later pages. Directus has no range
        operators on uuid or string keys (400 "uuid" field type does not contain the "_gt"
        filter operator), so those are read by offset, sorted by pk, each page overlapping the
        end of the one before by OFFSET_OVERLAP rows: the last key seen is looked for in the
        overlap, and a page that no longer lines up (rows before it were added or removed)
        continues right after that key. When the key is gone from the overlap, the read starts
        again from the top with `rescan` set on the cursor and on every page after it: the
        caller then drops the rows it already has (see ItemsPage.rescanned).

        The first page decides the method (its keys are JSON integers or not), so no schema
        read is needed: a narrow token may not read /fields. The read ends on an empty page,
        not a short one: a server may return fewer rows than asked without meaning "no more".
        A page size above the server's QUERY_LIMIT_MAX is lowered to it when Directus says so.
        """
        fields = _fields_with_pk(fields, pk)
        cursor = after
        if isinstance(cursor, str):
            # A string cursor from before offset reads: its position is unknown, so start over.
            cursor = {"offset": 0, "rescan": 1}
        while True:
            if isinstance(cursor, dict):
                page, cursor = self._offset_page(collection, pk, page_size, filter, fields, cursor)
            else:
                page, cursor = self._keyset_page(collection, pk, page_size, filter, fields, cursor)
            if page is None:
                return
            page_size = page.limit or page_size
            if not page.data:
                continue  # a rescan begins: the next round starts from the top
            if pages:
                yield page
            else:
                yield from page.data

    def _keyset_page(self, collection, pk, page_size, filter, fields, cursor):
        after = None if cursor is None else {pk: {"_gt": cursor}}
        page = self._read_capped(collection, _query(filter, after, fields, [pk], page_size))
        if not page.data:
            return None, cursor
        last = _key(page.data[-1], pk)
        if last is None or last == cursor:
            raise DirectusError(
                f'Reading "{collection}" cannot continue: the items carry no "{pk}" value to '
                "continue from (is the primary key readable?).",
                code="KEYSET_STUCK",
                collection=collection,
            )
        if cursor is None and not all(_is_int(_key(item, pk)) for item in page.data):
            # uuid or string keys: no _gt on them, so the rest is read by offset.
            page.cursor = {"offset": len(page.data), "last": last}
        else:
            page.cursor = last
        return page, page.cursor

    def _offset_page(self, collection, pk, page_size, filter, fields, cursor):
        offset, last = int(cursor.get("offset") or 0), cursor.get("last")
        rescans = int(cursor.get("rescan") or 0)
        page_size = max(2, page_size)
        overlap = min(offset, OFFSET_OVERLAP, page_size // 2) if last is not None else 0
        query = _query(filter, None, fields, [pk], page_size)
        query["offset"] = offset - overlap
        page = self._read_capped(collection, query)
        keys = [_key(item, pk) for item in page.data]
        start = 0
        if overlap:
            where = _index_of(keys, last)
            if where is None:
                # The last key read is not where it was, nor nearby: rows before it changed
                # more than the overlap covers, or it was deleted. Read again from the top;
                # the caller drops what it already has.
                if rescans >= MAX_RESCANS:
                    raise DirectusError(
                        f'Reading "{collection}" stopped: rows before the read position were '
                        f"added or deleted {rescans + 1} times while Kiln read, so the pages no "
                        "longer line up. Run again when the collection is quieter.",
                        code="READ_SHIFTED",
                        collection=collection,
                    )
                page.data, page.rescanned = [], True
                page.cursor = {"offset": 0, "rescan": rescans + 1}
                return page, page.cursor
            start = where + 1
        page.data, keys = page.data[start:], keys[start:]
        if not page.data:
            return None, cursor
        if any(k is None for k in keys):
            raise DirectusError(
                f'Reading "{collection}" cannot continue: the items carry no "{pk}" value '
                "(is the primary key readable?).",
                code="KEYSET_STUCK",
                collection=collection,
            )
        page.cursor = {"offset": offset - overlap + start + len(page.data), "last": keys[-1]}
        if rescans:
            page.cursor["rescan"] = rescans
        page.rescanned = bool(rescans)
        return page, page.cursor

    def _read_capped(self, collection, query) -> ItemsPage:
        """Read one page; a limit above the server's QUERY_LIMIT_MAX is lowered to it once."""
        try:
            page = self.read_items(collection, query)
        except DirectusError as exc:
            cap = query_limit_from_error(exc)
            if cap is None or cap >= int(query.get("limit") or 0):
                raise
            query = {**query, "limit": cap}
            page = self.read_items(collection, query)
            page.limit = cap
        return page

    def read_items(self, collection, query: dict) -> ItemsPage:
        """One page for query (filter, fields, sort, limit...): GET with the query in the URL,
        or SEARCH with it in the body when the URL would be too long for proxies and Node."""
        params = _encode_params(query)
        if len(urlencode(params)) > _MAX_QUERY_STRING:
            return self.search_items(collection, query)
        return self.list_items(collection, params)

    def items_request(self, method, collection, item=None, *, params=None, body=None):
        """One request on /items/<collection>[/<item>], its httpx response returned as it came
        (an error answer still raises DirectusError): for showing exactly what Directus said,
        e.g. the 204 a PATCH of a missing id answers."""
        path = _items(collection) if item is None else f"{_items(collection)}/{_q(item)}"
        return self._request(
            method, path, params=params, body=body, collection=collection, item=item
        )

    def call(self, method, path, *, params=None, body=None):
        """Any other endpoint (`/flows`, `/operations/<id>`...): the answer's `data`, None when
        Directus answers 204 or nothing."""
        return self._data(method, path, params=params, body=body)

    # -- plumbing ----------------------------------------------------------------------

    def _page(self, method, path, collection, *, params=None, body=None) -> ItemsPage:
        response = self._request(method, path, params=params, body=body, collection=collection)
        payload = _json(response, method, path)
        data = payload.get("data")
        if isinstance(data, dict):  # a singleton collection answers one object
            data = [data]
        return ItemsPage(
            data or [], payload.get("meta"), response.status_code, self.last_elapsed_ms
        )

    def _data(self, method, path, *, params=None, body=None, **context):
        response = self._request(method, path, params=params, body=body, **context)
        if response.status_code == 204 or not response.content:
            return None
        return _json(response, method, path).get("data")

    def _request(self, method, path, **kwargs):
        waited = 0.0
        while True:
            try:
                return self._request_once(method, path, **kwargs)
            except DirectusError as exc:
                if exc.status != 429 or waited >= self.rate_limit_wait:
                    raise
                pause = min(
                    max(RATE_LIMIT_FLOOR, exc.retry_after or 0.0), self.rate_limit_wait - waited
                )
                time.sleep(pause)
                waited += pause
                self.rate_limited_ms += int(pause * 1000)

    def _request_once(self, method, path, *, params=None, body=None, auth=True, **context):
        headers = {"Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        kwargs = {"headers": headers}
        if params:
            kwargs["params"] = _encode_params(params)
        if body is not None:
            kwargs["json"] = body
        started = time.perf_counter()
        try:
            response = http.send(self._client, method, self.base_url + path, **kwargs)
        except http.OutboundError as exc:
            code = f"NETWORK_{exc.kind.upper()}"
            raise DirectusError(
                str(exc),
                code=code,
                transient=bool(exc.transient),
                method=method,
                path=path,
                **context,
            ) from exc
        finally:
            self.last_elapsed_ms = int((time.perf_counter() - started) * 1000)
        if not 200 <= response.status_code < 300:
            raise _from_response(response, method, path, **context)
        return response


def check_connection(base_url, token, probe_collection: str = "", *, client=None) -> list[Stage]:
    """ "Test connection": Reachable, Token valid, What it may read; later stages skip on failure."""
    with DirectusClient(base_url, token, client=client, timeout=10) as directus:
        stages = [_stage_reachable(directus)]
        if stages[-1].ok:
            stages.append(_stage_token(directus))
        else:
            stages.append(Stage("Token valid", None, _SKIPPED, "", 0))
        if stages[-1].ok:
            stages.append(_stage_reading(directus, (probe_collection or "").strip()))
        else:
            stages.append(Stage("What it may read", None, _SKIPPED, "", 0))
    redact = http.redact
    return [
        Stage(
            s.name,
            s.ok,
            redact(s.summary),
            redact(s.detail),
            s.elapsed_ms,
            s.facts,
            redact(s.warning),
        )
        for s in stages
    ]


def _stage_reachable(directus) -> Stage:
    try:
        directus.ping()
    except DirectusError as exc:
        summary = exc.explain()
        if exc.status is None:
            summary = _NETWORK_SENTENCES.get(exc.code.removeprefix("NETWORK_").lower(), summary)
        elif exc.code == "NOT_DIRECTUS" or exc.status == 404:
            summary = (
                'The server answered, but /server/ping did not say "pong": this URL is not a '
                "Directus API — check the base URL."
            )
            if urlsplit(directus.base_url).path.rstrip("/").endswith("/admin"):
                summary += (
                    " It ends in /admin, the Data Studio app: use the address without /admin."
                )
        return Stage("Reachable", False, summary, _detail(exc), directus.last_elapsed_ms)
    ms = directus.last_elapsed_ms
    return Stage(
        "Reachable",
        True,
        "Directus answered /server/ping.",
        f"GET /server/ping -> 200 pong in {ms} ms",
        ms,
    )


def _stage_token(directus) -> Stage:
    if not directus.token:
        return Stage("Token valid", False, "No token is set for this connection.", "", 0)
    try:
        user = directus.me() or {}
    except DirectusError as exc:
        return Stage("Token valid", False, exc.explain(), _detail(exc), directus.last_elapsed_ms)
    who = " ".join(filter(None, [user.get("first_name"), user.get("last_name")]))
    if user.get("email"):
        summary = f"The token is valid: it belongs to {user['email']}{f' ({who})' if who else ''}."
    else:  # the seeded read-only user: no policy lets it read directus_users, /users/me has only id
        summary = (
            f"The token is valid (user id {user.get('id', '?')}). It may not read its own user "
            "record, so Kiln cannot show the email."
        )
    ms = directus.last_elapsed_ms
    detail = f"GET /users/me -> 200 in {ms} ms"
    facts = {"user_id": str(user.get("id") or "")}
    try:
        info = directus.server_info() or {}
    except DirectusError as exc:
        detail += f"\n{_detail(exc)}"
    else:
        facts["server_info"] = {
            k: info[k] for k in ("version", "queryLimit", "rateLimit") if k in info
        }
        summary += f" {_describe_server(info)}"
        detail += "\nGET /server/info -> 200"
    return Stage("Token valid", True, summary, detail, ms, facts)


def _describe_server(info: dict) -> str:
    """ "Directus 12.4.0; pages of at most 500 items (QUERY_LIMIT_MAX)." """
    parts = [f"Directus {info['version']}" if info.get("version") else "Directus"]
    most = query_limit_max(info)
    default = ((info.get("queryLimit") or {}).get("default")) or 100
    if most:
        parts.append(f"pages of at most {most} items (QUERY_LIMIT_MAX)")
    else:
        parts.append("no page size limit")
    parts.append(f"{default} items when a request names no limit")
    limiter = info.get("rateLimit")
    if isinstance(limiter, dict) and limiter.get("points"):
        parts.append(
            f"rate limited to {limiter['points']} requests per {limiter.get('duration', 1)} s"
        )
    return "; ".join(parts) + "."


ACTIONS = ("read", "create", "update", "delete")
NO_SCHEMA_WARNING = (
    "This token may not read the schema (/collections, /fields, /relations): the query "
    "builder cannot list its collections and fields or check a query before sending, the "
    "mapper cannot offer fields, and runs cannot be checked for schema drift. Give its policy "
    "read access to directus_collections, directus_fields and directus_relations (or app "
    "access) to fix that."
)


def _stage_reading(directus, probe) -> Stage:
    """What the token may do: actions per collection from /permissions/me, schema access."""
    notes, started = [], time.perf_counter()
    try:
        listed = _listed_collections(directus, notes)
        permissions = directus.permissions_me()
    except DirectusError as exc:
        return Stage("What it may read", False, exc.explain(), _detail(exc), _ms_since(started))
    facts = {"schema_access": listed is not None}
    if permissions is not None:
        notes.append("GET /permissions/me -> 200")
        facts["permissions"] = allowed_actions(permissions)
        summary = describe_actions(facts["permissions"])
    elif listed is not None:  # an older Directus: /collections is all there is to go on
        facts["permissions"] = {name: ["read"] for name in listed}
        summary = describe_actions(facts["permissions"])
    else:
        summary = "The token works, but Directus does not tell which collections it may read."
    known = sorted(set(listed or []) | set(facts.get("permissions") or {}))
    ok = True
    if probe:
        try:
            page = directus.list_items(probe, {"limit": "1", "meta": "filter_count"})
            count = (page.meta or {}).get("filter_count")
            summary += f' Reading "{probe}" works' + (
                f" ({count} items)." if count is not None else "."
            )
            notes.append(f"GET /items/{probe}?limit=1 -> 200")
        except DirectusError as exc:
            ok, summary = False, f"{exc.explain()}{did_you_mean(probe, known)} {summary}"
            notes.append(_detail(exc))
    warning = "" if listed is not None else NO_SCHEMA_WARNING
    return Stage(
        "What it may read", ok, summary, "\n".join(notes), _ms_since(started), facts, warning
    )


def _listed_collections(directus, notes) -> list | None:
    """Non-system collections from /collections; None when the token may not read the schema."""
    try:
        rows = directus.collections()
    except DirectusError as exc:
        if exc.status != 403:
            raise
        notes.append(_detail(exc))
        return None
    notes.append(f"GET /collections -> 200 ({len(rows)} rows including system collections)")
    return [r["collection"] for r in rows if not r["collection"].startswith("directus_")]


def allowed_actions(permissions: dict) -> dict:
    """/permissions/me -> {"articles": ["read", "update"]}: non-system collections, actions
    whose access is not "none" ("partial": only some items or fields, still an action)."""
    allowed = {}
    for name, actions in (permissions or {}).items():
        if name.startswith("directus_") or not isinstance(actions, dict):
            continue
        allowed[name] = [
            a for a in ACTIONS if ((actions.get(a) or {}).get("access") or "none") != "none"
        ]
    return allowed


def describe_actions(allowed: dict) -> str:
    """ "It may read 1 collection: articles. It may update 1 collection: Products." """
    groups: dict[tuple, list] = {}
    for name, actions in allowed.items():
        if actions:
            groups.setdefault(tuple(actions), []).append(name)
    if not groups:
        return "It may not read or change any collection outside Directus's own."
    sentences = []
    for actions, names in sorted(groups.items(), key=lambda g: (-len(g[0]), g[0])):
        verbs = list(actions)
        said = verbs[0] if len(verbs) == 1 else ", ".join(verbs[:-1]) + " and " + verbs[-1]
        noun = "collection" if len(names) == 1 else "collections"
        sentences.append(f"It may {said} {len(names)} {noun}: {', '.join(names)}.")
    if not any("read" in actions for actions in groups):
        sentences.append("It may read no collection.")
    return " ".join(sentences)


def _detail(exc) -> str:
    status = exc.status if exc.status is not None else "no answer"
    text = f"{exc.method} {exc.path} -> {status} {exc.code}".strip()
    return f"{text}: {exc.message}" if exc.message else text


def _ms_since(started) -> int:
    return int((time.perf_counter() - started) * 1000)


def _from_response(response, method, path, collection=None, item=None) -> DirectusError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    extensions = first.get("extensions") or {}
    if first:
        code = str(extensions.get("code") or f"HTTP_{status}")
        message = str(first.get("message") or "")
    else:  # not a Directus error body: a proxy, a load balancer or another server answered
        code = f"HTTP_{status}"
        message = response.headers.get("location") if 300 <= status < 400 else None
        message = message or " ".join(response.text[:200].split())
    named_field = _FIELD_RE.search(message)
    named_collection = _COLLECTION_RE.search(message)
    return DirectusError(
        message,
        status=status,
        code=code,
        retry_after=_retry_after(response, message),
        transient=status in _TRANSIENT_STATUSES,
        field=extensions.get("field") or (named_field.group(1) if named_field else None),
        reason=str(extensions.get("reason") or ""),
        collection=named_collection.group(1) if named_collection else collection,
        item=item,
        method=method,
        path=path,
    )


def _retry_after(response, message) -> float | None:
    """Seconds to wait: Retry-After (delta or HTTP date), else Directus's "retry after 699ms".

    Directus rounds Retry-After to whole seconds, so in the second half of its window it
    says "0" while its message says "retry after 462ms": the message wins over a "0", and
    a bare "0" still means "later within this second" (RATE_LIMIT_FLOOR), never "now".
    """
    seconds = None
    value = (response.headers.get("retry-after") or "").strip()
    if value:
        try:
            seconds = max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                seconds = max(0.0, (when - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    if response.status_code != 429 or seconds:
        return seconds
    match = _RETRY_IN_MESSAGE_RE.search(message)
    if match:
        seconds = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    if seconds is None:
        return None
    return max(RATE_LIMIT_FLOOR, seconds)


def _explain(e: DirectusError) -> str:
    status, code = e.status, e.code
    if status is None:
        return (
            f"Kiln could not reach Directus: {e.message}"
            if code.startswith("NETWORK_")
            else e.message
        )
    if code in _SENTENCES:
        return _SENTENCES[code].format(what=e.reason or e.message, field=e.field, path=e.path)
    if code == "FAILED_VALIDATION":
        if "Value is required" in e.message:
            return f'Directus refused the item: field "{e.field}" is required.'
        return f'Directus refused the value of field "{e.field}": {e.message}'
    if 300 <= status < 400:
        return f"The server redirects to {e.message}: use that address as the base URL."
    if status == 401:
        return f"Directus refused the request as not authenticated (401 {code}): {e.message}"
    if status == 403:
        return _explain_forbidden(e)
    if status == 404 and code.startswith("HTTP_"):
        return (
            f"The server answered 404 for {e.path} without a Directus error body: this URL is not "
            "a Directus API — check the base URL."
        )
    if status == 429:
        if e.retry_after is None:
            return "Directus is rate limiting this client: wait a little and retry."
        return f"Directus is rate limiting this client: retry after {_seconds(e.retry_after)} s."
    if status == 413:
        return "Directus refused the request as too large (413): send fewer rows per batch."
    if status in (502, 503, 504):
        later = (
            "try again later"
            if e.retry_after is None
            else f"retry after {_seconds(e.retry_after)} s"
        )
        return f"Directus, or a proxy in front of it, is unavailable ({status} {code}): {later}."
    if status >= 500:
        return (
            f"Directus failed with an internal error ({status} {code}): {e.message or 'no message'}. "
            "Its server log has the details."
        )
    if code.startswith("HTTP_"):
        return f"The server answered {status} without a Directus error body; check the base URL. {e.message}"
    return f"Directus answered {status} {code}: {e.message}"


def _explain_forbidden(e: DirectusError) -> str:
    c = e.collection
    if c and c.startswith("directus_"):
        return (
            f'Directus answered 403 FORBIDDEN for its system collection "{c}": this token may not '
            "read it. Reading the schema needs an admin token or read access to "
            "directus_collections, directus_fields and directus_relations."
        )
    if e.field and c:
        subject, why = "", f'field "{e.field}" does not exist in "{c}" or the token may not read it'
    elif c and e.item is not None and e.method == "GET":
        subject, why = (
            f' for item {e.item} in "{c}"',
            "the item does not exist or this token may not read it",
        )
    elif c and e.method in _WRITE_VERBS:
        why = f"this token may not {_WRITE_VERBS[e.method]} items there, or the collection does not exist"
        subject = f' for collection "{c}"'
    elif c and (through := _QUERIED_IN_RE.search(e.message)):
        # A filter or field through a relation: 'Queried in "supplier".' names the hop.
        subject, why = (
            f' for collection "{c}" (reached through "{through.group(1)}")',
            "this token may not read that collection, or it does not exist",
        )
    elif c:
        subject, why = (
            f' for collection "{c}"',
            "either the collection does not exist or this token may not read it",
        )
    else:
        subject, why = "", "this token may not do this, or what it asked for does not exist"
    return f"Directus answered 403 FORBIDDEN{subject}: {why} — {_SAME_ANSWER}"


def _seconds(value) -> str:
    # Directus rounds Retry-After to whole seconds, so "0" means "within the second".
    if value < 1:
        return "less than 1"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _json(response, method, path) -> dict:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        message = f"{path} answered {response.status_code} with a body that is not Directus JSON"
        raise DirectusError(
            message, status=response.status_code, code="NOT_DIRECTUS", method=method, path=path
        )
    return payload


def _q(value) -> str:
    return quote(str(value), safe="")


def _items(collection) -> str:
    return f"/items/{_q(collection)}"


def _fields_with_pk(fields, pk):
    """The keyset cursor needs the pk in every item, so it is added to a narrowed field list."""
    if not fields:
        return None
    names = [f.strip() for f in fields.split(",")] if isinstance(fields, str) else list(fields)
    if pk not in names and "*" not in names:
        names.append(pk)
    return names


def _query(filter, after, fields, sort, limit) -> dict:
    conditions = [c for c in (filter, after) if c]
    query = {"sort": sort, "limit": limit}
    if conditions:
        query["filter"] = conditions[0] if len(conditions) == 1 else {"_and": conditions}
    if fields:
        query["fields"] = fields
    return query


def _key(item, pk):
    return item.get(pk) if isinstance(item, dict) else None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _index_of(keys, key) -> int | None:
    try:
        return keys.index(key)
    except ValueError:
        return None


def query_limit_from_error(exc: DirectusError) -> int | None:
    """QUERY_LIMIT_MAX from Directus's 400 '"limit" must be less than or equal to 500'."""
    if exc.status != 400:
        return None
    match = _LIMIT_MAX_RE.search(f"{exc.message} {exc.reason}")
    return int(match.group(1)) if match else None


def query_limit_max(info: dict | None) -> int | None:
    """The largest page /server/info allows (None: no limit, or the server did not say)."""
    limit = ((info or {}).get("queryLimit") or {}).get("max")
    if not _is_int(limit) or limit <= 0:
        return None
    return limit


def _encode_params(params) -> list[tuple[str, str]]:
    """Query params as pairs: dicts/lists of dicts become JSON, lists become "a,b", bools "true"."""
    items = params.items() if isinstance(params, dict) else params
    pairs = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, dict) or (
            isinstance(value, list) and any(isinstance(v, dict) for v in value)
        ):
            value = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((str(key), str(value)))
    return pairs
