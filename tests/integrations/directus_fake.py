"""A small in-memory Directus `leads` collection behind respx: all-or-nothing batch writes,
a unique and required `email`, error bodies as harness/directus/observed.md records them."""

import json
from urllib.parse import parse_qsl

import httpx

BASE = "http://directus.test"
TOKEN = "tok-directus-writeback-0123456789"


def error(status, code, message, **extensions):
    body = {"errors": [{"message": message, "extensions": {**extensions, "code": code}}]}
    return httpx.Response(status, json=body)


def not_unique(value):
    return error(
        400,
        "RECORD_NOT_UNIQUE",
        f'Value "{value}" for field "email" in collection "leads" has to be unique.',
        collection="leads",
        field="email",
        value=value,
    )


def required(field):
    return error(
        400,
        "FAILED_VALIDATION",
        f'Validation failed for field "{field}". Value is required.',
        field=field,
        path=[],
        type="required",
    )


FORBIDDEN = (
    'You don\'t have permission to access collection "leads" or it does not exist. Queried in root.'
)


class FakeLeads:
    """State and the respx side effect. `fail_next` holds responses served before the real logic."""

    def __init__(self, items=(), *, create="full", update="full", read="full"):
        self.items = {}
        self.next_id = 1
        for item in items:
            self._insert(dict(item))
        self.access = {"create": create, "update": update, "read": read}
        self.fail_next: list[httpx.Response] = []
        self.calls: list[tuple[str, int]] = []  # (method, rows in body)
        self.searches = 0

    def _insert(self, item):
        item.setdefault("id", self.next_id)
        self.next_id = max(self.next_id, item["id"]) + 1
        self.items[item["id"]] = item
        return item

    def mount(self, router):
        router.route(host="directus.test").mock(side_effect=self)

    def __call__(self, request: httpx.Request):
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "INVALID_CREDENTIALS", "Invalid user credentials.")
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, len(body) if isinstance(body, list) else 1))
        path = request.url.path
        if self.fail_next and path != "/permissions/me":
            return self.fail_next.pop(0)
        if path == "/permissions/me":
            return httpx.Response(
                200, json={"data": {"leads": {a: {"access": v} for a, v in self.access.items()}}}
            )
        if path != "/items/leads":
            return error(
                403,
                "FORBIDDEN",
                FORBIDDEN.replace("leads", path.rsplit("/", 1)[-1]),
                reason=FORBIDDEN,
            )
        if request.method in ("GET", "SEARCH"):
            return self._read(request, body)
        if request.method == "POST":
            return self._create(body)
        if request.method == "PATCH":
            return self._update(body)
        return error(404, "ROUTE_NOT_FOUND", f"Route {path} doesn't exist.", path=path)

    def _allowed(self, action):
        return self.access[action] != "none"

    def _read(self, request, body):
        if not self._allowed("read"):
            return error(403, "FORBIDDEN", FORBIDDEN, reason=FORBIDDEN)
        if request.method == "SEARCH":
            self.searches += 1
            query = body["query"]
        else:
            params = dict(parse_qsl(request.url.query.decode()))
            query = {k: json.loads(v) if k == "filter" else v for k, v in params.items()}
        wanted = set(map(str, query["filter"]["email"]["_in"]))
        data = [
            {"id": i["id"], "email": i["email"]}
            for i in self.items.values()
            if str(i["email"]) in wanted
        ]
        return httpx.Response(200, json={"data": data})

    def _check(self, item, others, creating):
        if creating and not item.get("email"):
            return required("email")
        if "email" in item:
            taken = {o["email"] for o in others if o.get("id") != item.get("id")}
            if item["email"] in taken:
                return not_unique(item["email"])
        return None

    def _create(self, body):
        if not self._allowed("create"):
            return error(403, "FORBIDDEN", "You don't have permission to access this.")
        rows = body if isinstance(body, list) else [body]
        staged = list(self.items.values())
        for row in rows:
            problem = self._check(row, staged, creating=True)
            if problem:
                return problem  # all-or-nothing: nothing is written
            staged.append(row)
        created = [self._insert(dict(row)) for row in rows]
        return httpx.Response(
            200, json={"data": [{"id": c["id"], "email": c["email"]} for c in created]}
        )

    def _update(self, body):
        if not self._allowed("update"):
            return error(403, "FORBIDDEN", "You don't have permission to access this.")
        staged = {k: dict(v) for k, v in self.items.items()}
        for row in body:
            if row["id"] not in staged:
                continue  # Directus: updating a key that does not exist changes nothing
            merged = {**staged[row["id"]], **row}
            problem = self._check(merged, staged.values(), creating=False)
            if problem:
                return problem
            staged[row["id"]] = merged
        self.items = staged
        data = [
            {"id": r["id"], "email": staged[r["id"]]["email"]} for r in body if r["id"] in staged
        ]
        return httpx.Response(200, json={"data": data})

    def by_email(self, email):
        return next((i for i in self.items.values() if i.get("email") == email), None)
