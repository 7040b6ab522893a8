"""The quick start's demo servers (demo/servers.py) and `manage.py seed_demo`."""

import json

import httpx
import pytest
from django.core.management import call_command

from demo import servers as demo
from integrations.directus.client import DirectusClient, DirectusError, check_connection
from integrations.directus.schema import fetch_schema
from integrations.models import (
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    RowResult,
    SavedQuery,
    Secret,
    Sync,
)
from integrations.runs import sync as engine_api
from tests.integrations.syncfixtures import run_to_end


@pytest.fixture(scope="module")
def directus():
    with demo.DemoDirectus() as server:
        yield server


@pytest.fixture
def fresh_directus():
    """For tests that write: a server of their own."""
    with demo.DemoDirectus() as server:
        yield server


@pytest.fixture
def sink():
    with demo.DemoSink() as server:
        yield server


@pytest.fixture
def client(directus):
    with DirectusClient(directus.url, demo.DEMO_TOKEN) as c:
        yield c


def published():
    return [a for a in demo.seed_data()["articles"] if a["status"] == "published"]


def test_test_connection_passes_all_three_stages(directus):
    stages = check_connection(directus.url, demo.DEMO_TOKEN, "articles")
    assert [s.name for s in stages] == ["Reachable", "Token valid", "What it may read"]
    assert all(s.ok for s in stages), stages
    assert "demo@kiln.local" in stages[1].summary
    assert "3 collections: authors, articles, leads" in stages[2].summary
    assert '"articles" works (300 items)' in stages[2].summary


def test_a_wrong_token_fails_the_token_stage(directus):
    stages = check_connection(directus.url, "not-the-demo-token")
    assert [s.ok for s in stages] == [True, False, None]


def test_the_schema_has_the_relations(client):
    schema = fetch_schema(client)
    collections = schema["collections"]
    assert set(collections) == {"authors", "articles", "leads"}
    articles = collections["articles"]
    assert articles["primary_key"] == "id"
    assert articles["fields"]["author"]["relation"] == {"kind": "m2o", "collection": "authors"}
    assert articles["fields"]["status"]["choices"] == ["published", "draft", "archived"]
    assert articles["fields"]["title"]["required"] is True
    assert articles["fields"]["date_created"]["required"] is False
    assert collections["authors"]["fields"]["articles"]["relation"] == {
        "kind": "o2m",
        "collection": "articles",
        "field": "author",
        "junction_field": None,
    }
    assert collections["leads"]["fields"]["email"]["required"] is True
    assert client.fields("leads")[0]["collection"] == "leads"


def test_a_keyset_read_returns_every_item_once(client):
    ids = [item["id"] for item in client.iter_items("articles", page_size=7, fields=["title"])]
    assert ids == list(range(1, 301))

    wanted = {"status": {"_eq": "published"}}
    rows = list(client.iter_items("articles", page_size=50, filter=wanted))
    assert [r["id"] for r in rows] == [a["id"] for a in published()]
    count = client.list_items("articles", {"filter": wanted, "limit": 0, "meta": "filter_count"})
    assert count.meta == {"filter_count": len(rows)} and count.data == []


def test_filters_fields_sort_and_paging(client):
    def ids(params):
        return [r["id"] for r in client.list_items("articles", {"fields": "id", **params}).data]

    by_knuth = client.list_items(
        "articles",
        {"filter": {"author": {"last_name": {"_eq": "Knuth"}}}, "fields": "id,author.last_name"},
    ).data
    assert by_knuth and {r["author"]["last_name"] for r in by_knuth} == {"Knuth"}
    assert ids({"filter[id][_in]": "3,5,7"}) == [3, 5, 7]
    assert ids({"filter[id][_in]": "3,5,7", "page": 2, "limit": 1}) == [5]
    assert ids({"filter[id][_in]": "3,5,7", "offset": 1, "sort": "-id"}) == [5, 3]
    either = {"_or": [{"id": {"_lte": 2}}, {"id": {"_gte": 299}}]}
    assert ids({"filter": either}) == [1, 2, 299, 300]
    assert ids({"filter[_and][0][id][_gt]": "10", "filter[_and][1][id][_lt]": "13"}) == [11, 12]
    assert ids({"filter[views][_null]": "true"}) == [
        a["id"] for a in demo.seed_data()["articles"] if a["views"] is None
    ]
    views = [r["views"] for r in client.list_items("articles", {"sort": "-views"}).data]
    assert views == sorted(views, reverse=True) and None not in views  # NULLs last
    assert client.list_items("articles", {"sort": "views", "limit": 1}).data[0]["views"] is None
    titles = client.list_items("articles", {"filter[title][_contains]": "Jazz", "limit": -1})
    assert titles.data and all("Jazz" in r["title"] for r in titles.data)
    meta = client.list_items("articles", {"limit": 1, "meta": "*"}).meta
    assert meta == {"total_count": 300, "filter_count": 300}
    one = client.get_item("articles", 1, {"fields": "id,author.*"})
    assert set(one) == {"id", "author"} and "articles" in one["author"]


@pytest.mark.parametrize(
    "path, params, status, code",
    [
        ("/items/nope", {}, 403, "FORBIDDEN"),
        ("/items/articles", {"fields": "nope"}, 403, "FORBIDDEN"),
        ("/items/articles", {"filter[nope][_eq]": "1"}, 403, "FORBIDDEN"),
        ("/items/articles", {"sort": "nope"}, 403, "FORBIDDEN"),
        ("/items/articles", {"filter[status][_foo]": "1"}, 400, "INVALID_QUERY"),
        ("/items/articles", {"meta": "bogus"}, 400, "INVALID_QUERY"),
        ("/items/articles", {"limit": "abc"}, 400, "INVALID_QUERY"),
        ("/items/articles/100000", {}, 403, "FORBIDDEN"),
        ("/nope", {}, 404, "ROUTE_NOT_FOUND"),
    ],
)
def test_errors_have_directus_shapes(directus, path, params, status, code):
    response = httpx.get(
        directus.url + path, params=params, headers={"Authorization": f"Bearer {demo.DEMO_TOKEN}"}
    )
    assert response.status_code == status
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == code and error["message"]


def test_no_token_or_a_bad_one(directus):
    assert httpx.get(directus.url + "/server/ping").text == "pong"
    anonymous = httpx.get(directus.url + "/items/articles")
    assert anonymous.status_code == 403
    bad = httpx.get(directus.url + "/items/articles", headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS"


def test_writes_answer_like_directus(fresh_directus):
    with DirectusClient(fresh_directus.url, demo.DEMO_TOKEN) as client:
        created = client.create_items(
            "leads", [{"email": "new@example.org"}, {"email": "other@example.org", "score": 5}]
        )
        assert [c["id"] for c in created] == [61, 62]
        assert created[0]["enriched"] is False and created[0]["date_created"]
        with pytest.raises(DirectusError) as duplicate:
            client.create_items("leads", [{"email": "x@example.org"}, {"email": "new@example.org"}])
        assert (duplicate.value.status, duplicate.value.code) == (400, "RECORD_NOT_UNIQUE")
        assert client.list_items("leads", {"filter[email][_eq]": "x@example.org"}).data == []
        with pytest.raises(DirectusError) as missing:
            client.create_items("leads", {"first_name": "No email"})
        assert missing.value.code == "FAILED_VALIDATION"

        updated = client.update_items_batch(
            "leads", [{"id": 61, "score": 9}, {"id": 9999, "score": 1}], {"fields": "id,score"}
        )
        assert updated == [{"id": 61, "score": 9}]
        assert client.update_items("leads", [1, 2], {"enriched": True}, {"fields": "id"}) == [
            {"id": 1},
            {"id": 2},
        ]
        assert client.update_item("leads", 9999, {"score": 1}) is None
        assert client.get_item("leads", 1)["date_updated"]
        client.delete_items("leads", [61, 62])
        page = client.search_items(
            "leads", {"filter": {"enriched": {"_eq": True}}, "fields": ["id"]}
        )
        assert page.data == [{"id": 1}, {"id": 2}]
        assert client.list_items("leads", {"limit": 0, "meta": "total_count"}).meta == {
            "total_count": 60
        }


def test_the_sink_counts_rows_and_shows_the_last_ones(sink):
    url = sink.url + demo.DEMO_SINK_PATH
    headers = {"x-clay-webhook-auth": demo.DEMO_SINK_TOKEN}
    assert httpx.post(url, json={"id": 1}).status_code == 401
    assert httpx.post(url, json={"id": 1, "title": "<b>hi</b>"}, headers=headers).status_code == 200
    assert httpx.post(url, content=b"{bad", headers=headers).status_code == 400
    assert httpx.get(sink.url + "/_stats").json()["received"] == 1
    page = httpx.get(sink.url + "/").text
    assert "Rows received: <strong>1</strong>" in page and "&lt;b&gt;hi&lt;/b&gt;" in page


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    call_command(
        "seed_demo", directus_url="http://127.0.0.1:8056", sink_url="http://127.0.0.1:8057"
    )
    secrets = Secret.objects.count()
    call_command(
        "seed_demo", directus_url="http://127.0.0.1:8056", sink_url="http://127.0.0.1:8057"
    )
    assert secrets == Secret.objects.count() == 3
    call_command(
        "seed_demo", directus_url="http://127.0.0.1:9056", sink_url="http://127.0.0.1:9057"
    )
    assert Secret.objects.count() == 3
    for model in (DirectusConnection, ClayDestination, SavedQuery, MappingTemplate, Sync):
        assert model.objects.count() == 1, model
    connection = DirectusConnection.objects.get(name="Demo Directus")
    assert connection.base_url == "http://127.0.0.1:9056"
    assert connection.token.reveal() == demo.DEMO_TOKEN
    destination = ClayDestination.objects.get(name="Demo Clay table")
    assert destination.webhook_url.reveal() == "http://127.0.0.1:9057" + demo.DEMO_SINK_PATH
    sync = Sync.objects.get(name="Published articles → Clay")
    assert (sync.rate_limit, sync.saved_query.name, sync.template.kind) == (
        20,
        "Published articles",
        "clay_row",
    )


@pytest.mark.django_db
def test_the_seeded_sync_runs_against_the_demo_servers(fresh_directus, sink, settings):
    settings.KILN_RATE_LIMIT_REDIS_URL = ""
    call_command("seed_demo", directus_url=fresh_directus.url, sink_url=sink.url)
    connection = DirectusConnection.objects.get(name="Demo Directus")
    assert connection.run_test() and connection.last_test_ok is True
    connection.refresh_from_db()
    assert connection.server_info["queryLimit"]["default"] == 100  # kept for runs and the form
    assert connection.directus_user_id
    assert connection.refresh_schema()["collections"]["articles"]["fields"]["author"]["relation"]
    sync = Sync.objects.get(name="Published articles → Clay")
    Sync.objects.filter(pk=sync.pk).update(rate_limit=0)  # the demo's 20/s, without the wait
    sync.refresh_from_db()

    run = engine_api.start_run(sync)
    expected = published()
    assert run.expected_total == len(expected)
    run = run_to_end(run)

    assert run.status == "succeeded", run.last_error
    assert (run.sent, run.failed) == (len(expected), 0)
    results = {r.row_key: r for r in RowResult.objects.filter(run=run)}
    assert set(results) == {str(a["id"]) for a in expected}
    assert sink.received == len(expected)
    first = expected[0]
    row = json.loads(results[str(first["id"])].request_excerpt)
    author = demo.seed_data()["authors"][first["author"] - 1]
    assert row["author_name"] == f"{author['first_name']} {author['last_name']}"
    assert row["source"] == "kiln-demo" and row["title"] == first["title"]
