"""Collections of the shapes customers' Directus instances have, made with the admin token.

The seeded schema keys everything by integer; real instances key by uuid and by string codes
(with `+ # ' space`, non-ASCII letters and case twins). Tests create what they need with a
unique name and drop it afterwards.
"""

import json
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import quote

# Keys Directus stores as they are and that break careless encoding or comparison.
AWKWARD_CODES = [
    "a+b",
    "a#1",
    "o'brien",
    "with space",
    "Ärger",
    "ärger",
    "ABC-1",
    "abc-1",
    "100%",
    "semi;colon",
    "comma,separated",
    "slash/in/key",
    "日本",
]


def api(live, method, path, body=None):
    """One admin request; waits out the rate limiter (some test instances run one)."""
    data = json.dumps(body).encode() if body is not None else None
    for _ in range(100):
        request = urllib.request.Request(
            f"{live.url}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {live.admin_token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            if exc.code != 429:
                raise AssertionError(
                    f"{method} {path} -> {exc.code}: {exc.read()[:500]!r}"
                ) from None
            time.sleep(0.3)
    raise AssertionError(f"{method} {path}: still rate limited")


def uuid_pk(name="id"):
    return {
        "field": name,
        "type": "uuid",
        "meta": {"special": ["uuid"], "hidden": True, "readonly": True},
        "schema": {"is_primary_key": True, "length": 36, "has_auto_increment": False},
    }


def string_pk(name="code"):
    return {
        "field": name,
        "type": "string",
        "meta": {"interface": "input"},
        "schema": {"is_primary_key": True, "length": 255, "has_auto_increment": False},
    }


def field(name, type_, **meta):
    return {"field": name, "type": type_, "meta": meta or {}, "schema": {}}


def create_collection(live, prefix, pk_field, *extra_fields) -> str:
    """A new collection named `<prefix>_<random>` (prefix may be capitalised); returns the name."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    fields = [
        pk_field,
        field("name", "string"),
        # dateTime: Directus stores milliseconds and answers whole seconds.
        field("updated_at", "dateTime"),
        field("date_updated", "timestamp", special=["date-updated"]),
        *extra_fields,
    ]
    api(
        live,
        "POST",
        "/collections",
        {"collection": name, "meta": {}, "schema": {}, "fields": fields},
    )
    return name


def drop_collection(live, name):
    api(live, "DELETE", f"/collections/{quote(name, safe='')}")


def insert(live, collection, rows, batch=50):
    """POST rows in batches of at most `batch` (MAX_BATCH_MUTATION on the limited instance)."""
    for start in range(0, len(rows), batch):
        api(live, "POST", f"/items/{quote(collection, safe='')}", rows[start : start + batch])


def update(live, collection, keys, data, batch=50):
    keys = list(keys)
    for start in range(0, len(keys), batch):
        body = {"keys": keys[start : start + batch], "data": data}
        api(live, "PATCH", f"/items/{quote(collection, safe='')}", body)
