"""A shop schema Kiln has never seen, made with the admin token and dropped after.

`Products_<hex>` (capitalised, uuid key) has an m2o `supplier` to `suppliers_<hex>` (string
key, o2m alias `products` back, one supplier with 120 products: more than Directus's nested
default of 100) and an m2m `tags` through the junction `products_tags_<hex>` to `tags_<hex>`
(integer key). Labels hold the text "null", "true", "false" and "red, white & blue"; one
description is 120 KB. Narrow tokens: users whose policy allows only some actions.
"""

import contextlib
import uuid
from dataclasses import dataclass, field

from tests.live.shapes import api, insert, string_pk, uuid_pk

BIG_TEXT = ("A long description line with  two spaces,\ta tab and a break.\n" * 2000)[:120_000]
LABELS = ["null", "true", "false", "red, white & blue", "plain"]


@dataclass
class Catalog:
    products: str
    suppliers: str
    tags: str
    junction: str
    product_ids: dict = field(default_factory=dict)  # label -> id
    tagged: int = 0  # products with at least one tag
    untagged: int = 0


def _f(name, type_, special=None, **schema):
    meta = {"special": special} if special else {}
    return {"field": name, "type": type_, "meta": meta, "schema": schema or {}}


def _collection(live, name, fields):
    api(
        live,
        "POST",
        "/collections",
        {"collection": name, "meta": {}, "schema": {}, "fields": fields},
    )


def create_catalog(live) -> Catalog:
    suffix = uuid.uuid4().hex[:8]
    c = Catalog(
        f"Products_{suffix}", f"suppliers_{suffix}", f"tags_{suffix}", f"products_tags_{suffix}"
    )
    _collection(live, c.suppliers, [string_pk("code"), _f("name", "string")])
    _collection(
        live,
        c.tags,
        [
            {
                "field": "id",
                "type": "integer",
                "meta": {"hidden": True},
                "schema": {"is_primary_key": True, "has_auto_increment": True},
            },
            _f("name", "string"),
        ],
    )
    _collection(
        live,
        c.products,
        [
            uuid_pk(),
            _f("name", "string"),
            _f("label", "string"),
            _f("price", "integer"),
            _f("active", "boolean"),
            _f("released", "dateTime"),
            _f("released_on", "date"),
            _f("opens", "time"),
            _f("weight", "float"),
            _f("cost", "decimal"),
            _f("big", "bigInteger"),
            _f("notes", "text"),
            _f("data", "json", special=["cast-json"]),
            _f("sku", "uuid"),
            _f("supplier", "string"),
        ],
    )
    _collection(
        live,
        c.junction,
        [
            {
                "field": "id",
                "type": "integer",
                "meta": {"hidden": True},
                "schema": {"is_primary_key": True, "has_auto_increment": True},
            },
            _f("products_id", "uuid"),
            _f("tags_id", "integer"),
        ],
    )
    api(
        live,
        "POST",
        f"/fields/{c.suppliers}",
        {
            "field": "products",
            "type": "alias",
            "meta": {"special": ["o2m"], "interface": "list-o2m"},
        },
    )
    api(
        live,
        "POST",
        f"/fields/{c.products}",
        {"field": "tags", "type": "alias", "meta": {"special": ["m2m"], "interface": "list-m2m"}},
    )
    api(
        live,
        "POST",
        "/relations",
        {
            "collection": c.products,
            "field": "supplier",
            "related_collection": c.suppliers,
            "meta": {"one_field": "products"},
            "schema": {"on_delete": "SET NULL"},
        },
    )
    api(
        live,
        "POST",
        "/relations",
        {
            "collection": c.junction,
            "field": "products_id",
            "related_collection": c.products,
            "meta": {"one_field": "tags", "junction_field": "tags_id"},
            "schema": {"on_delete": "SET NULL"},
        },
    )
    api(
        live,
        "POST",
        "/relations",
        {
            "collection": c.junction,
            "field": "tags_id",
            "related_collection": c.tags,
            "meta": {"one_field": None, "junction_field": "products_id"},
            "schema": {"on_delete": "SET NULL"},
        },
    )
    insert(live, c.suppliers, [{"code": "big", "name": "Big"}, {"code": "small", "name": "Small"}])
    insert(live, c.tags, [{"name": "red"}, {"name": "blue"}])
    tag_ids = [t["id"] for t in api(live, "GET", f"/items/{c.tags}?sort=id")["data"]]
    rows = [
        {
            "id": str(uuid.uuid4()),
            "name": f"bulk {n}",
            "label": "bulk",
            "supplier": "big",
            "price": n,
        }
        for n in range(120)
    ]
    for label in LABELS:
        pid = str(uuid.uuid4())
        c.product_ids[label] = pid
        rows.append(
            {
                "id": pid,
                "name": f"labelled {label}",
                "label": label,
                "supplier": "small",
                "notes": BIG_TEXT if label == "plain" else "",
                "price": 5,
            }
        )
    insert(live, c.products, rows)
    links = [{"products_id": c.product_ids[label], "tags_id": tag_ids[0]} for label in LABELS[:2]]
    links.append({"products_id": c.product_ids["plain"], "tags_id": tag_ids[1]})
    insert(live, c.junction, links)
    c.tagged = len({link["products_id"] for link in links})
    c.untagged = len(rows) - c.tagged
    return c


def drop_catalog(live, c: Catalog):
    for name in (c.junction, c.products, c.suppliers, c.tags):
        with contextlib.suppress(AssertionError):
            api(live, "DELETE", f"/collections/{name}")


@contextlib.contextmanager
def narrow_token(live, actions: dict, app_access=False):
    """A user whose policy allows only `actions` ({"Products_x": ["update"]}); its token."""
    suffix = uuid.uuid4().hex[:8]
    token = f"kiln-narrow-{suffix}"
    policy = api(
        live,
        "POST",
        "/policies",
        {"name": f"kiln narrow {suffix}", "admin_access": False, "app_access": app_access},
    )["data"]
    for collection, names in actions.items():
        for action in names:
            api(
                live,
                "POST",
                "/permissions",
                {
                    "policy": policy["id"],
                    "collection": collection,
                    "action": action,
                    "fields": ["*"],
                    "permissions": {},
                    "validation": {},
                },
            )
    role = api(
        live,
        "POST",
        "/roles",
        {"name": f"kiln narrow {suffix}", "policies": [{"policy": policy["id"]}]},
    )["data"]
    user = api(
        live,
        "POST",
        "/users",
        {
            "email": f"kiln-narrow-{suffix}@example.com",
            "role": role["id"],
            "status": "active",
            "token": token,
        },
    )["data"]
    try:
        yield token
    finally:
        api(live, "DELETE", f"/users/{user['id']}")
        api(live, "DELETE", f"/roles/{role['id']}")
        api(live, "DELETE", f"/policies/{policy['id']}")


def catalog_fixture(live_directus):
    """The body of a module-scoped `catalog` fixture: made, yielded, dropped."""
    made = create_catalog(live_directus)
    try:
        yield made
    finally:
        drop_catalog(live_directus, made)
