"""The Directus client and schema reader against the real server (seeded by harness/directus)."""

import socket
import uuid

import pytest

from integrations.directus.client import DirectusClient, DirectusError, check_connection
from integrations.directus.schema import fetch_schema
from integrations.outbound import http

# Seeded leads have ids 1..2000; rows other engineers create get higher ids.
SEEDED_LEADS = 2000


def outbound_client(**kwargs):
    # Loopback is allowed explicitly, so the tests need no database for the allowlist.
    return http.make_client(policy=http.OutboundPolicy(allow_private=True), **kwargs)


@pytest.fixture
def admin(live_directus):
    with DirectusClient(
        live_directus.url, live_directus.admin_token, client=outbound_client()
    ) as client:
        yield client


@pytest.fixture
def reader(live_directus):
    with DirectusClient(
        live_directus.url, live_directus.read_token, client=outbound_client()
    ) as client:
        yield client


def stages(url, token, probe=""):
    with outbound_client(timeout=10) as client:
        return check_connection(url, token, probe, client=client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- check_connection ----------------------------------------------------------------------


def test_admin_token_passes_all_three_stages(live_directus):
    result = stages(live_directus.url, live_directus.admin_token, "articles")
    assert [s.ok for s in result] == [True, True, True], result
    assert "admin@example.com" in result[1].summary
    for name in ("articles", "authors", "leads", "articles_categories"):
        assert name in result[2].summary
    assert "directus_" not in result[2].summary
    assert '"articles" works' in result[2].summary


def test_read_token_sees_articles_only_and_leads_is_explained(live_directus):
    result = stages(live_directus.url, live_directus.read_token, "leads")
    assert [s.ok for s in result[:2]] == [True, True]
    # Its /users/me answers only the id: no policy lets it read directus_users.
    assert "cannot show the email" in result[1].summary
    assert result[2].ok is False
    assert "It may read 1 collection: articles." in result[2].summary
    assert (
        'collection "leads": either the collection does not exist or this token may not read it'
        in result[2].summary
    )
    assert "may not read the schema" in result[2].warning


def test_bad_token_is_rejected_with_an_explanation(live_directus):
    result = stages(live_directus.url, "not-a-real-token-" + uuid.uuid4().hex)
    assert result[0].ok is True
    assert result[1].ok is False
    assert "rejected the token: it is unknown or was revoked" in result[1].summary
    assert "INVALID_CREDENTIALS" in result[1].detail
    assert result[2].ok is None


def test_wrong_port_is_refused(live_directus):
    result = stages(f"http://127.0.0.1:{free_port()}", live_directus.admin_token)
    assert result[0].ok is False
    assert "Nothing accepted the connection" in result[0].summary
    assert "NETWORK_REFUSED" in result[0].detail
    assert [s.ok for s in result[1:]] == [None, None]


def test_a_path_below_the_api_root_is_not_directus(live_directus):
    result = stages(f"{live_directus.url}/nope", live_directus.admin_token)
    assert result[0].ok is False and "check the base URL" in result[0].summary


def test_no_stage_ever_shows_the_token(live_directus):
    for token in (live_directus.admin_token, live_directus.read_token):
        for stage in stages(live_directus.url, token, "leads"):
            assert token not in stage.summary + stage.detail


# -- reading -------------------------------------------------------------------------------


def test_list_items_with_clay_style_filters_and_meta(admin):
    page = admin.list_items(
        "articles",
        [
            ("filter[status][_eq]", "published"),
            ("fields", "id,title,status"),
            ("meta", "filter_count"),
            ("limit", "5"),
        ],
    )
    assert page.status == 200 and len(page.data) == 5
    assert {item["status"] for item in page.data} == {"published"}
    assert page.meta["filter_count"] >= len(page.data)


def test_list_items_with_a_json_filter_and_nested_fields(admin):
    page = admin.list_items(
        "articles",
        {
            "filter": {"_and": [{"status": {"_eq": "published"}}, {"author": {"_nnull": True}}]},
            "fields": ["id", "author.last_name"],
            "limit": 3,
        },
    )
    assert page.meta is None
    assert all(isinstance(item["author"], dict) for item in page.data)


def test_search_answers_the_same_as_get(admin):
    query = {
        "filter": {"status": {"_eq": "draft"}},
        "fields": ["id"],
        "sort": ["id"],
        "limit": 10,
        "meta": ["filter_count"],
    }
    searched = admin.search_items("articles", query)
    listed = admin.list_items("articles", query)
    assert searched.data == listed.data and searched.meta == listed.meta


def test_iter_items_reads_all_seeded_leads_by_keyset(admin):
    ids = [
        item["id"]
        for item in admin.iter_items(
            "leads", page_size=300, fields=["id"], filter={"id": {"_lte": SEEDED_LEADS}}
        )
    ]
    assert len(ids) == SEEDED_LEADS == len(set(ids))
    assert ids == sorted(ids)


def test_iter_items_without_a_filter_reads_exactly_the_total_count(admin):
    total = admin.list_items("leads", {"meta": "total_count", "limit": 0}).meta["total_count"]
    ids = {item["id"] for item in admin.iter_items("leads", page_size=300, fields="id")}
    assert len(ids) == total >= SEEDED_LEADS


def test_reader_may_read_articles_but_not_leads(reader):
    assert reader.list_items("articles", {"limit": 1}).data
    with pytest.raises(DirectusError) as info:
        reader.list_items("leads", {"limit": 1})
    assert (
        info.value.status == 403 and "either the collection does not exist" in info.value.explain()
    )


def test_reader_permissions_me_names_articles(reader):
    permissions = reader.permissions_me()
    assert permissions["articles"]["read"]["access"] != "none"
    assert "leads" not in permissions


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"fields": "nope"}, 403, 'field "nope" does not exist in "articles"'),
        ({"filter[status][_foo]": "x"}, 400, 'does not contain the "_foo" filter operator'),
        ({"limit": "abc"}, 400, '"limit" must be a number'),
    ],
)
def test_real_query_errors_are_explained(admin, params, status, words):
    with pytest.raises(DirectusError) as info:
        admin.list_items("articles", params)
    assert info.value.status == status and words in info.value.explain()


def test_a_missing_item_is_a_403_not_a_404(admin):
    with pytest.raises(DirectusError) as info:
        admin.get_item("articles", 99_999_999)
    assert info.value.status == 403 and "the item does not exist" in info.value.explain()


# -- writing -------------------------------------------------------------------------------


def test_create_update_delete_leads(admin):
    marker = uuid.uuid4().hex[:10]
    rows = [
        {"email": f"kiln-live-{marker}-{n}@example.com", "first_name": "Live", "score": n}
        for n in range(3)
    ]
    created = admin.create_items("leads", rows, params={"fields": "id,email,score"})
    keys = [row["id"] for row in created]
    try:
        assert [row["email"] for row in created] == [row["email"] for row in rows]
        one = admin.create_items("leads", {"email": f"kiln-live-{marker}-single@example.com"})
        keys.append(one["id"])
        assert one["enriched"] is False  # the column default came back

        assert admin.update_item("leads", keys[0], {"score": 99})["score"] == 99
        updated = admin.update_items(
            "leads", keys[:2], {"enriched": True}, params={"fields": "id,enriched"}
        )
        assert {row["enriched"] for row in updated} == {True}
        batch = admin.update_items_batch(
            "leads",
            [{"id": keys[0], "score": 1}, {"id": keys[1], "score": 2}],
            params={"fields": "id,score"},
        )
        assert sorted(row["score"] for row in batch) == [1, 2]
        # PATCH of an id that does not exist: 204 and no error.
        assert admin.update_item("leads", 99_999_999, {"score": 1}) is None

        with pytest.raises(DirectusError) as info:
            admin.create_items("leads", {"first_name": "no email"})
        assert (info.value.code, info.value.field) == ("FAILED_VALIDATION", "email")
        assert info.value.explain() == 'Directus refused the item: field "email" is required.'
    finally:
        admin.delete_items("leads", keys)
    left = admin.list_items(
        "leads", {"filter": {"id": {"_in": keys}}, "meta": "filter_count", "limit": 0}
    )
    assert left.meta["filter_count"] == 0


# -- schema --------------------------------------------------------------------------------


def test_fetch_schema_reads_relations_from_the_real_server(admin):
    schema = fetch_schema(admin)
    collections = schema["collections"]
    assert schema["fetched_with_system"] is False
    assert not any(name.startswith("directus_") for name in collections)
    articles = collections["articles"]["fields"]
    assert collections["articles"]["primary_key"] == "id"
    assert articles["author"]["relation"] == {"kind": "m2o", "collection": "authors"}
    assert articles["categories"]["relation"] == {
        "kind": "o2m",
        "collection": "articles_categories",
        "field": "articles_id",
        "junction_field": "categories_id",
    }
    assert collections["authors"]["fields"]["articles"]["relation"] == {
        "kind": "o2m",
        "collection": "articles",
        "field": "author",
        "junction_field": None,
    }
    assert articles["status"]["choices"] == ["published", "draft", "archived"]
    assert articles["status"]["default"] == "draft"
    # NOT NULL without a default: Directus answers FAILED_VALIDATION "required" without it.
    assert articles["title"]["required"] is True
    assert articles["id"]["readonly"] is True and articles["id"]["required"] is False


def test_fetch_schema_with_system_collections(admin):
    schema = fetch_schema(admin, include_system=True)
    users = schema["collections"]["directus_users"]
    assert users["system"] is True and users["primary_key"] == "id"
    assert users["fields"]["role"]["relation"] == {"kind": "m2o", "collection": "directus_roles"}


def test_fetch_schema_with_the_read_token_is_forbidden_and_says_why(reader):
    with pytest.raises(DirectusError) as info:
        fetch_schema(reader)
    assert info.value.status == 403
    assert "directus_collections" in info.value.explain()
