"""The query builder's generated queries against the real, seeded Directus.

Each case is built the way the builder page builds it (a BuilderState with condition rows ->
state_to_query), validated against the live schema, sent, and checked against what the filter
means: the items Directus returns are exactly the items of the whole collection that satisfy
the condition (checked in Python), and meta.filter_count agrees.

On the harness's SQLite, LIKE ignores ASCII case, so `_contains`, `_starts_with` and
`_ends_with` match case-insensitively there; the predicates below say so.
"""

import pytest
from django.urls import reverse

from console.builder import (
    BuilderState,
    ConditionRow,
    GroupRow,
    parse_pasted,
    state_from_query,
    state_to_query,
)
from integrations.directus.client import DirectusClient
from integrations.directus.schema import fetch_schema
from integrations.models import DirectusConnection, Secret
from integrations.query import filters
from integrations.query.querycheck import validate

ARTICLE_FIELDS = (
    "id,status,title,slug,content,views,price,published_at,deleted_at,"
    "author.last_name,categories.categories_id.name"
)


@pytest.fixture(scope="module")
def directus(live_directus):
    with DirectusClient(live_directus.url, live_directus.admin_token) as client:
        yield client


@pytest.fixture(scope="module")
def schema(directus):
    return fetch_schema(directus)


@pytest.fixture(scope="module")
def articles(directus):
    return directus.list_items("articles", {"fields": ARTICLE_FIELDS, "limit": "-1"}).data


@pytest.fixture(scope="module")
def leads(directus):
    return directus.list_items(
        "leads", {"fields": "id,enriched,score,company.name", "limit": "-1"}
    ).data


def built(collection, schema, *rows, logic="_and", **settings) -> filters.Query:
    """The query the builder makes from these condition rows; it must pass validation."""
    state = BuilderState(collection=collection, root=GroupRow(logic, list(rows)), **settings)
    query, _, problems = state_to_query(state, schema)
    assert problems == []
    assert validate(query, schema) == []
    return query


def run(directus, query, **changes) -> tuple[list, dict]:
    query = query.with_(**{"fields": ("id",), "limit": -1, "meta": ("filter_count",), **changes})
    page = directus.list_items(query.collection, query.to_params())
    assert page.status == 200
    return page.data, page.meta


def low(value):
    return (value or "").lower()


def category_names(item):
    return [(c.get("categories_id") or {}).get("name") for c in item.get("categories") or []]


CASES = [
    # strings
    (ConditionRow("status", "_eq", "published"), lambda a: a["status"] == "published"),
    (ConditionRow("status", "_neq", "draft"), lambda a: a["status"] != "draft"),
    (
        ConditionRow("status", "_in", "published,archived"),
        lambda a: a["status"] in ("published", "archived"),
    ),
    (
        ConditionRow("status", "_nin", "published,archived"),
        lambda a: a["status"] not in ("published", "archived"),
    ),
    (ConditionRow("title", "_contains", "Rust"), lambda a: "rust" in low(a["title"])),
    (ConditionRow("title", "_ncontains", "Rust"), lambda a: "rust" not in low(a["title"])),
    (ConditionRow("title", "_icontains", "rUsT"), lambda a: "rust" in low(a["title"])),
    (ConditionRow("title", "_starts_with", "The"), lambda a: low(a["title"]).startswith("the")),
    (
        ConditionRow("title", "_nstarts_with", "The"),
        lambda a: not low(a["title"]).startswith("the"),
    ),
    (ConditionRow("title", "_istarts_with", "the"), lambda a: low(a["title"]).startswith("the")),
    (
        ConditionRow("title", "_nistarts_with", "the"),
        lambda a: not low(a["title"]).startswith("the"),
    ),
    (ConditionRow("slug", "_ends_with", "-1"), lambda a: a["slug"].endswith("-1")),
    (ConditionRow("slug", "_nends_with", "-1"), lambda a: not a["slug"].endswith("-1")),
    (ConditionRow("slug", "_iends_with", "-1"), lambda a: a["slug"].endswith("-1")),
    (ConditionRow("slug", "_niends_with", "-1"), lambda a: not a["slug"].endswith("-1")),
    (ConditionRow("content", "_null"), lambda a: a["content"] is None),
    (ConditionRow("content", "_nnull"), lambda a: a["content"] is not None),
    (ConditionRow("content", "_empty"), lambda a: not a["content"]),
    (ConditionRow("content", "_nempty"), lambda a: bool(a["content"])),
    # numbers (NULL never compares)
    (ConditionRow("views", "_gt", "1000"), lambda a: a["views"] is not None and a["views"] > 1000),
    (
        ConditionRow("views", "_gte", "9000"),
        lambda a: a["views"] is not None and a["views"] >= 9000,
    ),
    (ConditionRow("views", "_lt", "100"), lambda a: a["views"] is not None and a["views"] < 100),
    (ConditionRow("views", "_lte", "0"), lambda a: a["views"] is not None and a["views"] <= 0),
    (
        ConditionRow("price", "_between", "10", "20.5"),
        lambda a: a["price"] is not None and 10 <= a["price"] <= 20.5,
    ),
    (
        ConditionRow("price", "_nbetween", "10", "900"),
        lambda a: a["price"] is not None and not 10 <= a["price"] <= 900,
    ),
    (ConditionRow("views", "_null"), lambda a: a["views"] is None),
    (ConditionRow("id", "_in", "3,5,8"), lambda a: a["id"] in (3, 5, 8)),
    # dates, a date function, a dynamic value
    (
        ConditionRow("published_at", "_between", "2024-01-01", "2024-12-31"),
        lambda a: (
            a["published_at"] is not None and "2024-01-01" <= a["published_at"] <= "2024-12-31"
        ),
    ),
    (
        ConditionRow("published_at", "_gte", "2024-06-01T00:00:00"),
        lambda a: (a["published_at"] or "") >= "2024-06-01T00:00:00",
    ),
    (
        ConditionRow("year(published_at)", "_eq", "2023"),
        lambda a: (a["published_at"] or "").startswith("2023"),
    ),
    (ConditionRow("published_at", "_lte", "$NOW"), lambda a: a["published_at"] is not None),
    (ConditionRow("deleted_at", "_nnull"), lambda a: a["deleted_at"] is not None),
    # relations: many-to-one, many-to-many through the junction, _some / _none
    (
        ConditionRow("author.last_name", "_eq", "Knuth"),
        lambda a: (a["author"] or {}).get("last_name") == "Knuth",
    ),
    (
        ConditionRow("author.last_name", "_contains", "Kn"),
        lambda a: "kn" in low((a["author"] or {}).get("last_name")),
    ),
    (ConditionRow("author", "_null"), lambda a: a["author"] is None),
    (
        ConditionRow("categories.categories_id.name", "_eq", "Science"),
        lambda a: "Science" in category_names(a),
    ),
    (
        ConditionRow("categories", "_some", '{"categories_id": {"name": {"_eq": "Science"}}}'),
        lambda a: "Science" in category_names(a),
    ),
    (
        ConditionRow("categories", "_none", '{"categories_id": {"name": {"_eq": "Science"}}}'),
        lambda a: "Science" not in category_names(a),
    ),
]


@pytest.mark.parametrize(("row", "means"), CASES, ids=[f"{r.field} {r.op}" for r, _ in CASES])
def test_each_operator_returns_exactly_what_it_means(directus, schema, articles, row, means):
    query = built("articles", schema, row)
    data, meta = run(directus, query)
    expected = sorted(a["id"] for a in articles if means(a))
    assert sorted(item["id"] for item in data) == expected
    assert meta == {"filter_count": len(expected)}


def test_a_boolean_and_a_relation_on_leads(directus, schema, leads):
    query = built(
        "leads",
        schema,
        ConditionRow("enriched", "_eq", "true"),
        ConditionRow("score", "_gte", "50"),
    )
    assert query.filter_json() == {"enriched": {"_eq": True}, "score": {"_gte": 50}}
    data, meta = run(directus, query)
    expected = [
        lead["id"] for lead in leads if lead["enriched"] is True and (lead["score"] or 0) >= 50
    ]
    assert sorted(item["id"] for item in data) == sorted(expected) and meta["filter_count"] == len(
        expected
    )
    query = built("leads", schema, ConditionRow("company.name", "_starts_with", "A"))
    data, _ = run(directus, query)
    expected = [
        lead["id"] for lead in leads if low((lead["company"] or {}).get("name")).startswith("a")
    ]
    assert sorted(item["id"] for item in data) == sorted(expected)


def test_nested_and_or_groups(directus, schema, articles):
    query = built(
        "articles",
        schema,
        ConditionRow("status", "_eq", "published"),
        GroupRow(
            "_or",
            [
                ConditionRow("views", "_gt", "5000"),
                GroupRow(
                    "_and", [ConditionRow("price", "_lt", "50"), ConditionRow("author", "_nnull")]
                ),
            ],
        ),
    )
    data, meta = run(directus, query)

    def means(a):
        popular = a["views"] is not None and a["views"] > 5000
        cheap = a["price"] is not None and a["price"] < 50 and a["author"] is not None
        return a["status"] == "published" and (popular or cheap)

    expected = sorted(a["id"] for a in articles if means(a))
    assert sorted(item["id"] for item in data) == expected and meta["filter_count"] == len(expected)


def test_the_issues_query_gives_the_ten_most_viewed_matches(directus, schema, articles):
    query = built(
        "articles",
        schema,
        ConditionRow("status", "_eq", "published"),
        GroupRow(
            "_or",
            [
                ConditionRow("views", "_gt", "1000"),
                ConditionRow("author.last_name", "_contains", "Kn"),
            ],
        ),
        fields="id,title,author.first_name",
        sorts=[("views", True)],
        limit="10",
    )
    page = directus.list_items("articles", query.to_params())
    matching = [
        a
        for a in articles
        if a["status"] == "published"
        and ((a["views"] or 0) > 1000 or "kn" in low((a["author"] or {}).get("last_name")))
    ]
    views = {a["id"]: a["views"] for a in articles}
    assert len(page.data) == min(10, len(matching))
    assert {a["id"] for a in page.data} <= {a["id"] for a in matching}
    shown = [views[item["id"]] for item in page.data]
    assert (
        shown == sorted((a["views"] for a in matching if a["views"] is not None), reverse=True)[:10]
    )
    assert set(page.data[0]) == {"id", "title", "author"}
    assert page.data[0]["author"] is None or set(page.data[0]["author"]) == {"first_name"}


def test_dot_path_fields_through_m2o_and_m2m(directus, schema):
    query = built(
        "articles",
        schema,
        ConditionRow("id", "_lte", "3"),
        fields="id,title,author.first_name,categories.categories_id.name",
        sorts=[("id", False)],
    )
    data = directus.list_items("articles", query.to_params()).data
    assert [item["id"] for item in data] == [1, 2, 3]
    for item in data:
        assert set(item) == {"id", "title", "author", "categories"}
        assert item["author"] is None or set(item["author"]) == {"first_name"}
        for link in item["categories"]:
            assert set(link) == {"categories_id"} and set(link["categories_id"]) == {"name"}


def test_several_sorts_each_with_a_direction(directus, schema, articles):
    query = built(
        "articles",
        schema,
        fields="id,status,price",
        sorts=[("status", False), ("price", True)],
        limit="-1",
    )
    data = directus.list_items("articles", query.to_params()).data
    assert len(data) == len(articles)
    keys = [(item["status"], item["price"]) for item in data]
    statuses = [s for s, _ in keys]
    assert statuses == sorted(statuses)
    for status in set(statuses):
        prices = [p for s, p in keys if s == status]
        present = [p for p in prices if p is not None]
        assert present == sorted(present, reverse=True)
        assert prices[len(present) :] == [None] * (len(prices) - len(present))  # -price: NULLs last


def test_page_and_offset_give_the_same_rows(directus, schema, articles):
    by_page = built("articles", schema, fields="id", sorts=[("id", False)], limit="5", page="3")
    by_offset = built(
        "articles", schema, fields="id", sorts=[("id", False)], limit="5", offset="10"
    )
    ids = sorted(a["id"] for a in articles)
    for query in (by_page, by_offset):
        assert [i["id"] for i in directus.list_items("articles", query.to_params()).data] == ids[
            10:15
        ]


def test_search_and_both_counts(directus, schema, articles):
    query = built(
        "articles", schema, search="Directus", meta=["total_count", "filter_count"], limit="-1"
    )
    page = directus.list_items("articles", query.to_params())
    assert page.meta == {"total_count": len(articles), "filter_count": len(page.data)}
    assert page.data
    for item in page.data:
        text = " ".join(
            str(item.get(f) or "") for f in ("title", "slug", "content", "status")
        ).lower()
        assert "directus" in text


def test_count_matches_asks_for_the_filter_count_only(directus, schema, articles):
    query = built("articles", schema, ConditionRow("status", "_eq", "published"))
    count = query.with_(limit=0, meta=("filter_count",))
    page = directus.list_items("articles", count.to_params())
    assert page.data == []
    assert page.meta == {"filter_count": sum(a["status"] == "published" for a in articles)}


def test_a_pasted_clay_query_runs_as_built(directus, schema):
    pasted = parse_pasted(
        "filter[status][_eq]=published\nfilter[_or][0][views][_gt]=1000\n"
        "filter[_or][1][author][last_name][_contains]=Kn\nsort=-views\nlimit=10\nfields=id,views"
    ).with_(collection="articles")
    state = state_from_query(pasted)
    query, _, problems = state_to_query(state, schema)
    assert problems == [] and validate(query, schema) == []
    assert query.to_params() == pasted.to_params()
    data = directus.list_items("articles", query.to_params()).data
    assert len(data) == 10


@pytest.mark.django_db
def test_send_test_request_through_the_page(operator_client, live_directus, schema):
    connection = DirectusConnection.objects.create(
        name="Harness",
        base_url=live_directus.url,
        token=Secret.seal(live_directus.admin_token),
        schema=schema,
    )
    form = {
        "connection": str(connection.pk),
        "collection": "articles",
        "was_collection": "articles",
        "f-logic": "_and",
        "f.0-field": "status", "f.0-op": "_eq", "f.0-value": "published", "f.0-was": "status",
        "fields": "id,title", "limit": "3", "meta": "filter_count",
    }  # fmt: skip
    body = operator_client.post(reverse("console:query-send"), form).content.decode()
    assert '<span id="item-count">3</span>' in body and "filter_count = " in body
    assert live_directus.admin_token not in body
    # An unknown field is refused before sending: the schema knows it is not there.
    form["fields"] = "id,nope"
    body = operator_client.post(reverse("console:query-send"), form).content.decode()
    assert "Not sent" in body and "articles has no field nope" in body
