"""The Directus client against a fake at the HTTP boundary (respx); bodies copied from observed.md."""

import inspect
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from integrations.directus.client import DirectusClient, DirectusError, ItemsPage, check_connection
from integrations.outbound import http

BASE = "http://directus.test"
TOKEN = "tok-directus-unit-test-0123456789"


def err(code, message, status, **extensions):
    return httpx.Response(
        status, json={"errors": [{"message": message, "extensions": {**extensions, "code": code}}]}
    )


def forbidden_collection(name):
    text = f'You don\'t have permission to access collection "{name}" or it does not exist. Queried in root.'
    return err("FORBIDDEN", text, 403, reason=text)


def outbound(kind, transient=False):
    return http.OutboundError(f"outbound failure of kind {kind}", kind=kind, transient=transient)


@pytest.fixture
def fake():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client(fake):
    with DirectusClient(BASE, TOKEN, client=httpx.Client()) as c:
        yield c


def params_of(request):
    return dict(parse_qsl(request.url.query.decode()))


def raised(call) -> DirectusError:
    with pytest.raises(DirectusError) as info:
        call()
    return info.value


# -- requests ------------------------------------------------------------------------------


def test_it_sends_the_token_as_bearer_and_registers_it_as_a_secret(fake, client):
    route = fake.get("/items/articles").respond(json={"data": []})
    client.list_items("articles", {"limit": 1})
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in http.redact(f"leaked {TOKEN}")


def test_list_items_returns_data_meta_status_and_time(fake, client):
    fake.get("/items/articles").respond(json={"meta": {"filter_count": 272}, "data": [{"id": 1}]})
    page = client.list_items(
        "articles", [("filter[status][_eq]", "published"), ("meta", "filter_count")]
    )
    assert page == ItemsPage([{"id": 1}], {"filter_count": 272}, 200, page.elapsed_ms)
    assert page.elapsed_ms >= 0


def test_list_items_without_meta_asked_has_meta_none(fake, client):
    fake.get("/items/articles").respond(json={"data": [{"id": 1}]})
    assert client.list_items("articles", {"limit": 1}).meta is None


def test_list_items_sends_clay_style_pairs_unchanged(fake, client):
    route = fake.get("/items/articles").respond(json={"data": []})
    client.list_items(
        "articles", [("filter[status][_in]", "published,archived"), ("sort", "-views")]
    )
    assert params_of(route.calls.last.request) == {
        "filter[status][_in]": "published,archived",
        "sort": "-views",
    }


def test_list_items_encodes_dict_filters_as_json_and_lists_as_commas(fake, client):
    route = fake.get("/items/articles").respond(json={"data": []})
    client.list_items(
        "articles", {"filter": {"status": {"_eq": "draft"}}, "fields": ["id", "title"], "limit": 5}
    )
    sent = params_of(route.calls.last.request)
    assert json.loads(sent["filter"]) == {"status": {"_eq": "draft"}}
    assert sent["fields"] == "id,title" and sent["limit"] == "5"


def test_a_singleton_answer_becomes_a_one_item_page(fake, client):
    fake.get("/items/settings").respond(json={"data": {"id": 1, "site": "x"}})
    assert client.list_items("settings").data == [{"id": 1, "site": "x"}]


def test_search_items_sends_the_http_search_method_with_a_query_body(fake, client):
    route = fake.route(method="SEARCH", path="/items/articles").respond(
        json={"data": [{"id": 1}], "meta": {"filter_count": 272}}
    )
    query = {
        "filter": {"status": {"_eq": "published"}},
        "fields": ["id", "title"],
        "limit": 2,
        "meta": ["filter_count"],
    }
    page = client.search_items("articles", query)
    assert json.loads(route.calls.last.request.content) == {"query": query}
    assert page.meta == {"filter_count": 272}


def test_get_item_returns_the_object(fake, client):
    fake.get("/items/articles/1").respond(
        json={"data": {"id": 1, "title": "PostgreSQL in Practice"}}
    )
    assert client.get_item("articles", 1)["title"] == "PostgreSQL in Practice"


def test_create_items_posts_one_object_or_a_list(fake, client):
    route = fake.post("/items/leads").mock(
        side_effect=lambda request: httpx.Response(200, json={"data": json.loads(request.content)})
    )
    assert client.create_items("leads", {"email": "a@x.test"}) == {"email": "a@x.test"}
    assert client.create_items("leads", [{"email": "b@x.test"}]) == [{"email": "b@x.test"}]
    assert json.loads(route.calls.last.request.content) == [{"email": "b@x.test"}]


def test_update_item_of_a_missing_id_returns_none_on_204(fake, client):
    fake.patch("/items/articles/999999").respond(204)
    assert client.update_item("articles", 999999, {"views": 1}) is None


def test_update_items_sends_keys_and_data(fake, client):
    route = fake.patch("/items/articles").respond(json={"data": [{"id": 502}, {"id": 503}]})
    assert len(client.update_items("articles", [502, 503], {"status": "archived"})) == 2
    assert json.loads(route.calls.last.request.content) == {
        "keys": [502, 503],
        "data": {"status": "archived"},
    }


def test_update_items_batch_sends_an_array_of_rows_with_pk(fake, client):
    route = fake.patch("/items/articles").respond(json={"data": [{"id": 502, "views": 7}]})
    client.update_items_batch("articles", [{"id": 502, "views": 7}, {"id": 503, "views": 8}])
    assert json.loads(route.calls.last.request.content) == [
        {"id": 502, "views": 7},
        {"id": 503, "views": 8},
    ]


def test_delete_items_sends_the_keys_as_body_and_accepts_204(fake, client):
    route = fake.delete("/items/articles").respond(204)
    assert client.delete_items("articles", [502, 503]) is None
    assert json.loads(route.calls.last.request.content) == [502, 503]


def test_collection_names_are_quoted_into_the_path(fake, client):
    route = fake.get("/items/a%2Fb").respond(json={"data": []})
    client.list_items("a/b")
    assert route.called


def test_items_request_returns_the_response_as_it_came(fake, client):
    route = fake.patch("/items/a%2Fb/x%2F1").respond(204)
    response = client.items_request("PATCH", "a/b", "x/1", body={"views": 1})
    assert response.status_code == 204 and route.called
    fake.get("/items/leads").respond(json={"data": []})
    assert client.items_request("GET", "leads", params=[("limit", "1")]).json() == {"data": []}
    fake.post("/items/leads").mock(return_value=forbidden_collection("leads"))
    assert raised(lambda: client.items_request("POST", "leads", body={})).status == 403


def test_call_returns_the_data_of_any_endpoint(fake, client):
    fake.get("/flows/f1").respond(json={"data": {"id": "f1"}})
    fake.delete("/flows/f1").respond(204)
    assert client.call("GET", "/flows/f1") == {"id": "f1"}
    assert client.call("DELETE", "/flows/f1") is None


def test_read_items_goes_as_search_only_when_the_query_is_too_long_for_a_url(fake, client):
    listed = fake.get("/items/leads").respond(json={"data": [{"id": 1}]})
    searched = fake.route(method="SEARCH", path="/items/leads").respond(json={"data": []})
    assert client.read_items("leads", {"filter": {"id": {"_in": [1]}}}).data == [{"id": 1}]
    big = {"email": {"_in": [f"person{i}@example.com" for i in range(400)]}}
    client.read_items("leads", {"filter": big, "limit": 401})
    assert listed.call_count == 1 and searched.call_count == 1
    assert json.loads(searched.calls.last.request.content)["query"]["filter"] == big


def test_permissions_me_is_none_where_the_server_has_no_such_route(fake, client):
    fake.get("/permissions/me").respond(
        404,
        json={
            "errors": [
                {
                    "message": "Route /permissions/me doesn't exist.",
                    "extensions": {"code": "ROUTE_NOT_FOUND"},
                }
            ]
        },
    )
    assert client.permissions_me() is None


def test_permissions_me_is_none_when_forbidden(fake, client):
    fake.get("/permissions/me").respond(
        403,
        json={
            "errors": [
                {
                    "message": "You don't have permission to access this.",
                    "extensions": {"code": "FORBIDDEN"},
                }
            ]
        },
    )
    assert client.permissions_me() is None


def test_me_asks_for_named_fields_only(fake, client):
    route = fake.get("/users/me").respond(json={"data": {"id": "u1", "email": "a@example.com"}})
    assert client.me()["email"] == "a@example.com"
    assert params_of(route.calls.last.request)["fields"] == "id,email,first_name,last_name"


def test_ping_of_a_server_that_does_not_say_pong_is_not_directus(fake, client):
    fake.get("/server/ping").respond(200, html="<html>Welcome to nginx</html>")
    assert raised(client.ping).code == "NOT_DIRECTUS"


def test_ping_sends_no_token(fake, client):
    route = fake.get("/server/ping").respond(200, text="pong")
    assert client.ping() == "pong"
    assert "Authorization" not in route.calls.last.request.headers


# -- errors --------------------------------------------------------------------------------


def test_401_invalid_credentials_is_explained_and_permanent(fake, client):
    fake.get("/items/articles").mock(
        return_value=err("INVALID_CREDENTIALS", "Invalid user credentials.", 401)
    )
    e = raised(lambda: client.list_items("articles"))
    assert (e.status, e.code, e.message, e.transient) == (
        401,
        "INVALID_CREDENTIALS",
        "Invalid user credentials.",
        False,
    )
    assert e.explain() == (
        "Directus rejected the token: it is unknown or was revoked. Check the static token on the user in Directus."
    )
    assert str(e) == e.explain()


def test_401_token_expired_points_at_static_tokens(fake, client):
    fake.get("/users/me").mock(return_value=err("TOKEN_EXPIRED", "Token expired.", 401))
    assert "expired" in raised(client.me).explain()


def test_403_on_items_names_both_possibilities(fake, client):
    fake.get("/items/leads").mock(return_value=forbidden_collection("leads"))
    e = raised(lambda: client.list_items("leads"))
    assert (e.status, e.code, e.collection, e.transient) == (403, "FORBIDDEN", "leads", False)
    assert e.explain() == (
        'Directus answered 403 FORBIDDEN for collection "leads": either the collection does not exist '
        "or this token may not read it — Directus gives the same answer for both."
    )


def test_403_on_an_unknown_field_names_the_field(fake, client):
    text = 'You don\'t have permission to access field "nope" in collection "articles" or it does not exist. Queried in root.'
    fake.get("/items/articles").mock(return_value=err("FORBIDDEN", text, 403, reason=text))
    e = raised(lambda: client.list_items("articles", {"fields": "nope"}))
    assert e.field == "nope"
    assert 'field "nope" does not exist in "articles" or the token may not read it' in e.explain()


def test_403_through_a_relation_names_the_related_collection(fake, client):
    text = 'You don\'t have permission to access collection "authors" or it does not exist. Queried in "author".'
    fake.get("/items/articles").mock(return_value=err("FORBIDDEN", text, 403, reason=text))
    assert 'collection "authors"' in raised(lambda: client.list_items("articles")).explain()


def test_403_on_a_missing_item_says_it_may_not_exist(fake, client):
    fake.get("/items/articles/999999").mock(
        return_value=err("FORBIDDEN", "You don't have permission to access this.", 403)
    )
    assert (
        'item 999999 in "articles": the item does not exist'
        in raised(lambda: client.get_item("articles", 999999)).explain()
    )


def test_403_on_a_write_names_the_verb(fake, client):
    fake.post("/items/articles").mock(return_value=forbidden_collection("articles"))
    assert (
        "may not create items"
        in raised(lambda: client.create_items("articles", {"title": "x"})).explain()
    )


def test_403_on_the_schema_names_the_system_collection(fake, client):
    text = 'You don\'t have permission to perform "read" for collection "directus_fields" or it does not exist.'
    fake.get("/fields").mock(return_value=err("FORBIDDEN", text, 403, reason=text))
    e = raised(client.fields)
    assert e.collection == "directus_fields" and "admin token" in e.explain()


def test_404_route_not_found_means_the_base_url_is_wrong(fake, client):
    fake.get("/items/articles").mock(
        return_value=err(
            "ROUTE_NOT_FOUND", "Route /items/articles doesn't exist.", 404, path="/items/articles"
        )
    )
    assert (
        "this URL is not a Directus API — check the base URL"
        in raised(lambda: client.list_items("articles")).explain()
    )


def test_400_invalid_query_gives_directus_reason(fake, client):
    reason = '"string" field type does not contain the "_foo" filter operator'
    fake.get("/items/articles").mock(
        return_value=err("INVALID_QUERY", f"Invalid query. {reason}.", 400, reason=reason)
    )
    e = raised(lambda: client.list_items("articles", {"filter[status][_foo]": "x"}))
    assert e.explain() == f"Directus rejected the query: {reason}." and not e.transient


def test_400_invalid_payload_is_explained(fake, client):
    fake.post("/items/articles").mock(
        return_value=err(
            "INVALID_PAYLOAD",
            "Invalid payload. Unexpected end of JSON input.",
            400,
            reason="Unexpected end of JSON input",
        )
    )
    assert (
        "request body: Unexpected end of JSON input"
        in raised(lambda: client.create_items("articles", {})).explain()
    )


def test_400_failed_validation_carries_the_field(fake, client):
    fake.post("/items/articles").mock(
        return_value=err(
            "FAILED_VALIDATION",
            'Validation failed for field "title". Value is required.',
            400,
            field="title",
            type="required",
            path=[],
        )
    )
    e = raised(lambda: client.create_items("articles", {"slug": "no-title"}))
    assert (e.field, e.transient) == ("title", False)
    assert e.explain() == 'Directus refused the item: field "title" is required.'


def test_400_record_not_unique_carries_the_field(fake, client):
    fake.post("/items/articles").mock(
        return_value=err(
            "RECORD_NOT_UNIQUE",
            'Value "a" for field "slug" in collection "articles" has to be unique.',
            400,
            collection="articles",
            field="slug",
            value="a",
        )
    )
    e = raised(lambda: client.create_items("articles", {"slug": "a"}))
    assert e.field == "slug" and "must be unique" in e.explain() and not e.transient


@pytest.mark.parametrize(
    ("header", "expected"), [("1", 1.0), ("0", 0.25), ("2.5", 2.5), ("soon", None)]
)
def test_429_parses_retry_after_including_zero(fake, client, header, expected):
    response = err("REQUESTS_EXCEEDED", "Too many requests.", 429, limit=20)
    response.headers["Retry-After"] = header
    fake.get("/items/articles").mock(return_value=response)
    e = raised(lambda: client.list_items("articles"))
    assert (e.status, e.code, e.retry_after, e.transient) == (
        429,
        "REQUESTS_EXCEEDED",
        expected,
        True,
    )
    if expected is not None:
        shown = "less than 1" if header == "0" else header
        assert e.explain() == f"Directus is rate limiting this client: retry after {shown} s."


def test_429_retry_after_zero_takes_the_milliseconds_in_the_message(fake, client):
    # observed.md: in the second half of the limiter's window Directus sends "Retry-After: 0"
    # while the message says "retry after 462ms"; waiting 0 s retried 5 times in 25 ms.
    response = err("REQUESTS_EXCEEDED", "Too many requests, retry after 462ms.", 429)
    response.headers["Retry-After"] = "0"
    fake.get("/items/articles").mock(return_value=response)
    assert raised(lambda: client.list_items("articles")).retry_after == pytest.approx(0.462)


def test_a_client_told_to_wait_rides_out_the_rate_limiter(fake):
    limited = err("REQUESTS_EXCEEDED", "Too many requests, retry after 10ms.", 429)
    limited.headers["Retry-After"] = "0"
    route = fake.get("/items/articles").mock(
        side_effect=[limited, limited, httpx.Response(200, json={"data": [{"id": 1}]})]
    )
    with DirectusClient(BASE, TOKEN, client=httpx.Client(), rate_limit_wait=5) as waiting:
        assert waiting.list_items("articles").data == [{"id": 1}]
        assert route.call_count == 3 and waiting.rate_limited_ms >= 500  # 0.25 s floor each
    route.side_effect = [limited]
    with DirectusClient(BASE, TOKEN, client=httpx.Client()) as impatient:
        assert raised(lambda: impatient.list_items("articles")).status == 429


def test_429_retry_after_as_an_http_date(fake, client):
    response = err("REQUESTS_EXCEEDED", "Too many requests.", 429)
    response.headers["Retry-After"] = format_datetime(
        datetime.now(UTC) + timedelta(seconds=30), usegmt=True
    )
    fake.get("/items/articles").mock(return_value=response)
    assert 25 <= raised(lambda: client.list_items("articles")).retry_after <= 30


@pytest.mark.parametrize(("text", "seconds"), [("699ms", 0.699), ("2s", 2.0)])
def test_429_without_header_falls_back_to_the_time_in_the_message(fake, client, text, seconds):
    fake.get("/items/articles").mock(
        return_value=err("REQUESTS_EXCEEDED", f"Too many requests, retry after {text}.", 429)
    )
    assert raised(lambda: client.list_items("articles")).retry_after == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("status", "transient"), [(500, False), (502, True), (503, True), (504, True)]
)
def test_5xx_is_explained_and_only_gateway_errors_are_transient(fake, client, status, transient):
    fake.get("/items/articles").mock(
        return_value=err(
            "INTERNAL_SERVER_ERROR" if status == 500 else "SERVICE_UNAVAILABLE",
            "Something broke",
            status,
        )
    )
    e = raised(lambda: client.list_items("articles"))
    assert (e.status, e.transient) == (status, transient)
    assert str(status) in e.explain()


def test_a_non_json_error_body_from_a_proxy_still_becomes_a_directus_error(fake, client):
    fake.get("/items/articles").respond(502, html="<html><h1>502 Bad Gateway</h1> nginx</html>")
    e = raised(lambda: client.list_items("articles"))
    assert (e.status, e.code, e.transient) == (502, "HTTP_502", True)
    assert "502 Bad Gateway" in e.message and "unavailable" in e.explain()


def test_a_non_json_404_says_the_url_is_not_directus(fake, client):
    fake.get("/items/articles").respond(404, text="Not Found")
    assert "not a Directus API" in raised(lambda: client.list_items("articles")).explain()


def test_a_success_that_is_not_json_is_not_directus(fake, client):
    fake.get("/items/articles").respond(200, html="<html>shop</html>")
    e = raised(lambda: client.list_items("articles"))
    assert (e.status, e.code) == (200, "NOT_DIRECTUS")


def test_a_redirect_is_not_followed_and_names_the_new_address(fake, client):
    fake.get("/items/articles").respond(
        301, headers={"Location": "https://directus.test/items/articles"}
    )
    e = raised(lambda: client.list_items("articles"))
    assert e.status == 301 and "https://directus.test" in e.explain()


def test_the_token_never_appears_in_an_error_even_when_the_server_echoes_it(fake, client):
    fake.get("/items/articles").mock(
        return_value=err("INVALID_QUERY", f"bad token {TOKEN}", 400, reason=f"echo {TOKEN}")
    )
    e = raised(lambda: client.list_items("articles"))
    assert TOKEN not in e.message + e.reason + e.explain() + str(e)


@pytest.mark.parametrize(
    ("kind", "transient"),
    [
        ("dns", False),
        ("refused", True),
        ("tls", False),
        ("timeout", True),
        ("blocked", False),
        ("connection", True),
        ("too_large", False),
    ],
)
def test_transport_failures_become_network_errors(monkeypatch, client, kind, transient):
    def fail(*args, **kwargs):
        raise outbound(kind, transient)

    monkeypatch.setattr(http, "send", fail)
    e = raised(lambda: client.list_items("articles"))
    assert (e.status, e.code, e.transient) == (None, f"NETWORK_{kind.upper()}", transient)
    assert e.message == f"outbound failure of kind {kind}"
    assert e.explain()


def test_a_raw_httpx_error_never_reaches_the_caller(fake, client):
    fake.get("/items/articles").mock(side_effect=httpx.ConnectError("connection refused"))
    e = raised(lambda: client.list_items("articles"))
    assert e.status is None and e.code.startswith("NETWORK_")


# -- keyset iteration ----------------------------------------------------------------------


def keyset_server(rows, seen):
    """A fake /items/leads that honours filter (id _gt, plus status _eq), sort=id and limit."""

    def handle(request):
        query = params_of(request)
        seen.append(query)
        assert query["sort"] == "id"
        conditions = json.loads(query.get("filter", "{}"))
        conditions = conditions.get("_and", [conditions])
        after = next((c["id"]["_gt"] for c in conditions if "id" in c), None)
        status = next((c["status"]["_eq"] for c in conditions if "status" in c), None)
        matching = [
            r
            for r in sorted(rows, key=lambda r: r["id"])
            if (after is None or r["id"] > after) and (status is None or r["status"] == status)
        ]
        return httpx.Response(200, json={"data": matching[: int(query["limit"])]})

    return handle


def test_iter_items_walks_pages_by_keyset_cursor(fake, client):
    rows = [{"id": i, "status": "new" if i % 2 else "old"} for i in range(1, 26)]
    seen = []
    fake.get("/items/leads").mock(side_effect=keyset_server(rows, seen))
    got = list(client.iter_items("leads", page_size=5, filter={"status": {"_eq": "new"}}))
    assert [r["id"] for r in got] == list(range(1, 26, 2))
    assert json.loads(seen[0]["filter"]) == {"status": {"_eq": "new"}}
    assert json.loads(seen[1]["filter"]) == {
        "_and": [{"status": {"_eq": "new"}}, {"id": {"_gt": 9}}]
    }
    assert json.loads(seen[2]["filter"]) == {
        "_and": [{"status": {"_eq": "new"}}, {"id": {"_gt": 19}}]
    }
    assert len(seen) == 4  # three pages, then the empty page that ends the read
    assert all(q["limit"] == "5" for q in seen)


def test_iter_items_is_a_lazy_generator_holding_one_page(fake, client):
    seen = []
    fake.get("/items/leads").mock(
        side_effect=keyset_server([{"id": i, "status": "x"} for i in range(1, 1001)], seen)
    )
    items = client.iter_items("leads", page_size=100)
    assert inspect.isgenerator(items) and seen == []
    for _ in range(100):
        next(items)
    assert len(seen) == 1
    next(items)
    assert len(seen) == 2
    frame_locals = items.gi_frame.f_locals
    assert len(frame_locals["page"].data) == 100  # only the current page is kept


def test_iter_items_does_not_skip_rows_when_earlier_rows_are_deleted_mid_read(fake, client):
    rows = [{"id": i, "status": "x"} for i in range(1, 21)]
    seen = []
    fake.get("/items/leads").mock(side_effect=keyset_server(rows, seen))
    got = []
    for item in client.iter_items("leads", page_size=5):
        got.append(item["id"])
        if item["id"] == 5:  # someone deletes rows already read; offset paging would now skip 6..10
            del rows[:3]
    assert got == list(range(1, 21))


def test_iter_items_starts_after_a_given_key_and_can_yield_pages(fake, client):
    seen = []
    fake.get("/items/leads").mock(
        side_effect=keyset_server([{"id": i, "status": "x"} for i in range(1, 11)], seen)
    )
    pages = list(client.iter_items("leads", page_size=4, after=2, pages=True))
    assert [[r["id"] for r in p.data] for p in pages] == [[3, 4, 5, 6], [7, 8, 9, 10]]
    assert json.loads(seen[0]["filter"]) == {"id": {"_gt": 2}}


def test_iter_items_adds_the_pk_to_narrowed_fields(fake, client):
    route = fake.get("/items/leads").respond(json={"data": []})
    list(client.iter_items("leads", fields="email,score"))
    assert params_of(route.calls.last.request)["fields"] == "email,score,id"


def test_iter_items_stops_with_an_error_when_items_carry_no_pk(fake, client):
    fake.get("/items/leads").respond(json={"data": [{"email": "a@x.test"}]})
    assert raised(lambda: list(client.iter_items("leads"))).code == "KEYSET_STUCK"


def test_iter_items_uses_search_when_the_filter_is_too_long_for_a_url(fake, client):
    route = fake.route(method="SEARCH", path="/items/leads").respond(json={"data": []})
    big = {"email": {"_in": [f"person{i}@example.com" for i in range(400)]}}
    list(client.iter_items("leads", filter=big))
    body = json.loads(route.calls.last.request.content)
    assert body["query"]["filter"] == big and body["query"]["sort"] == ["id"]


# -- offset reads for uuid and string keys --------------------------------------------------

AWKWARD_KEYS = ["a+b", "a#1", "o'brien", "with space", "Ärger", "ärger", "ABC", "abc", "zz/top"]


def directus_like_server(rows, seen, *, pk="code", limit_max=None):
    """A fake /items/things that answers as Directus 12.4 does for a string primary key:
    `_gt` on it is a 400, `sort`/`offset`/`limit` work, and a limit above QUERY_LIMIT_MAX is a 400.
    `rows` may change between calls (the test edits the collection mid-read)."""

    def handle(request):
        query = params_of(request)
        seen.append(query)
        if '"_gt"' in query.get("filter", ""):
            return err(
                "INVALID_QUERY",
                'Invalid query. "string" field type does not contain the "_gt" filter operator.',
                400,
            )
        limit = int(query.get("limit", 100))
        if limit_max is not None and limit > limit_max:
            return err("INVALID_QUERY", f'"limit" must be less than or equal to {limit_max}', 400)
        assert query["sort"] == pk
        ordered = sorted(rows, key=lambda r: r[pk])
        offset = int(query.get("offset", 0))
        return httpx.Response(200, json={"data": ordered[offset : offset + limit]})

    return handle


def read_keys(client, **kwargs):
    return [
        (item["code"], page.rescanned)
        for page in client.iter_items("things", pk="code", pages=True, **kwargs)
        for item in page.data
    ]


def test_string_keys_are_read_by_offset_never_by_gt(fake, client):
    rows = [{"code": k} for k in AWKWARD_KEYS] + [{"code": f"k{i:03}"} for i in range(40)]
    seen = []
    fake.get("/items/things").mock(side_effect=directus_like_server(rows, seen))
    got = [key for key, _ in read_keys(client, page_size=10)]
    assert got == sorted(r["code"] for r in rows)
    assert not any("_gt" in q.get("filter", "") for q in seen)
    assert "offset" not in seen[0] and seen[1]["offset"] == str(10 - 5)  # overlap: half a page


def test_uuid_keys_read_as_strings_resume_from_the_offset_cursor(fake, client):
    rows = [{"code": f"{i:08x}-0000-4000-8000-000000000000"} for i in range(30)]
    seen = []
    fake.get("/items/things").mock(side_effect=directus_like_server(rows, seen))
    first = next(iter(client.iter_items("things", pk="code", page_size=12, pages=True)))
    assert first.cursor == {"offset": 12, "last": rows[11]["code"]}
    rest = [key for key, _ in read_keys(client, page_size=12, after=first.cursor)]
    assert rest == [r["code"] for r in rows[12:]]


@pytest.mark.parametrize("change", ["insert", "delete"])
def test_rows_added_or_removed_before_the_position_neither_repeat_nor_skip(fake, client, change):
    rows = [{"code": f"k{i:03}"} for i in range(0, 60, 2)]
    seen = []
    fake.get("/items/things").mock(side_effect=directus_like_server(rows, seen))
    got = []
    for item in client.iter_items("things", pk="code", page_size=10):
        got.append(item["code"])
        if item["code"] == "k018":
            if change == "insert":  # three new rows sort before the position
                rows += [{"code": "k001"}, {"code": "k003"}, {"code": "k005"}]
            else:  # three rows already read are deleted
                del rows[:3]
    assert got == [f"k{i:03}" for i in range(0, 60, 2)]


def test_a_read_that_lost_its_place_starts_over_and_flags_the_pages(fake, client):
    rows = [{"code": f"k{i:03}"} for i in range(30)]
    seen = []
    fake.get("/items/things").mock(side_effect=directus_like_server(rows, seen))
    got = []
    for page in client.iter_items("things", pk="code", page_size=10, pages=True):
        got += [(item["code"], page.rescanned) for item in page.data]
        if len(got) == 10:
            del rows[:10]  # every row read so far, the last key with them
    fresh = [key for key, rescanned in got if not rescanned]
    again = [key for key, rescanned in got if rescanned]
    assert fresh == [f"k{i:03}" for i in range(10)]
    assert again == [f"k{i:03}" for i in range(10, 30)]
    assert seen[-1].get("offset") not in (None, "0")  # the rescan read to its own end


def test_a_page_size_above_the_servers_limit_is_lowered_not_failed(fake, client):
    rows = [{"code": f"k{i:03}"} for i in range(25)]
    seen = []
    fake.get("/items/things").mock(side_effect=directus_like_server(rows, seen, limit_max=7))
    assert [key for key, _ in read_keys(client, page_size=500)] == [r["code"] for r in rows]
    assert all(int(q["limit"]) <= 7 for q in seen if q is not seen[0])


def test_integer_keys_keep_the_keyset_cursor(fake, client):
    seen = []
    fake.get("/items/leads").mock(
        side_effect=keyset_server([{"id": i, "status": "x"} for i in range(1, 8)], seen)
    )
    pages = list(client.iter_items("leads", page_size=3, pages=True))
    assert [p.cursor for p in pages] == [3, 6, 7]
    assert not any("offset" in q for q in seen)


# -- check_connection ----------------------------------------------------------------------


def stages_of(fake_setup, probe="", token=TOKEN, base=BASE):
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        fake_setup(router)
        stages = check_connection(base, token, probe, client=httpx.Client())
    for stage in stages:
        assert not token or token not in stage.summary + stage.detail
    return stages


SERVER_INFO = {"version": "12.4.0", "queryLimit": {"default": 100, "max": 500}}


def healthy(router, me=None, collections=True, info=SERVER_INFO):
    router.get("/server/ping").respond(200, text="pong")
    router.get("/server/info").respond(json={"data": info})
    router.get("/users/me").respond(
        json={
            "data": me
            or {
                "id": "u1",
                "email": "admin@example.com",
                "first_name": "Admin",
                "last_name": "User",
            }
        }
    )
    if collections:
        rows = [{"collection": c} for c in ("articles", "authors", "directus_users")]
        router.get("/collections").respond(json={"data": rows})
        # An older Directus without /permissions/me: what /collections lists is read access.
        router.get("/permissions/me").respond(
            404, json={"errors": [{"message": "Not found", "extensions": {"code": "ROUTE_NOT_FOUND"}}]}
        )


def test_check_connection_passes_all_three_stages(monkeypatch):
    stages = stages_of(
        lambda r: (
            healthy(r),
            r.get("/items/articles").respond(
                json={"meta": {"filter_count": 500}, "data": [{"id": 1}]}
            ),
        ),
        probe="articles",
    )
    assert [s.name for s in stages] == ["Reachable", "Token valid", "What it may read"]
    assert [s.ok for s in stages] == [True, True, True]
    assert "admin@example.com" in stages[1].summary
    assert "2 collections: articles, authors" in stages[2].summary
    assert '"articles" works (500 items)' in stages[2].summary


def test_check_connection_tells_the_version_and_the_servers_page_limit():
    stages = stages_of(healthy)
    assert "Directus 12.4.0; pages of at most 500 items (QUERY_LIMIT_MAX)" in stages[1].summary
    assert stages[1].facts == {"user_id": "u1", "server_info": SERVER_INFO}
    unlimited = stages_of(
        lambda r: healthy(r, info={"version": "12.4.0", "queryLimit": {"default": 100, "max": -1}})
    )
    assert "no page size limit" in unlimited[1].summary


def test_check_connection_with_a_token_that_may_not_list_collections_uses_permissions_me():
    def setup(router):
        healthy(router, me={"id": "u2"}, collections=False)
        text = 'You don\'t have permission to access collection "directus_collections" or it does not exist. Queried in root.'
        router.get("/collections").mock(return_value=err("FORBIDDEN", text, 403, reason=text))
        router.get("/permissions/me").respond(
            json={
                "data": {
                    "articles": {
                        "read": {"access": "full", "fields": ["*"]},
                        "create": {"access": "none"},
                    },
                    "leads": {"read": {"access": "none"}},
                }
            }
        )

    stages = stages_of(setup)
    assert stages[1].ok and "user id u2" in stages[1].summary
    assert stages[2].ok and "1 collection: articles." in stages[2].summary
    assert "may not read the schema" in stages[2].warning


def test_check_connection_probe_403_names_both_possibilities():
    stages = stages_of(
        lambda r: (
            healthy(r),
            r.get("/items/leads").mock(return_value=forbidden_collection("leads")),
        ),
        probe="leads",
    )
    assert stages[2].ok is False
    assert (
        'collection "leads": either the collection does not exist or this token may not read it'
        in stages[2].summary
    )


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("dns", "does not resolve"),
        ("refused", "Nothing accepted the connection"),
        ("tls", "TLS"),
        ("timeout", "did not answer in time"),
        ("blocked", "does not connect to this address"),
    ],
)
def test_check_connection_explains_each_transport_failure(monkeypatch, kind, words):
    monkeypatch.setattr(
        http, "send", lambda *a, **k: (_ for _ in ()).throw(outbound(kind, kind == "timeout"))
    )
    stages = check_connection(BASE, TOKEN, "articles", client=httpx.Client())
    assert stages[0].ok is False and words in stages[0].summary
    assert f"NETWORK_{kind.upper()}" in stages[0].detail
    assert [s.ok for s in stages[1:]] == [None, None]


def test_check_connection_rejects_a_server_that_answers_200_html_to_ping():
    stages = stages_of(
        lambda r: r.get("/server/ping").respond(200, html="<!doctype html><title>Shop</title>")
    )
    assert stages[0].ok is False and "not a Directus API" in stages[0].summary
    assert [s.ok for s in stages[1:]] == [None, None]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, text="Not Found"),
        err("ROUTE_NOT_FOUND", "Route /x/server/ping doesn't exist.", 404),
    ],
)
def test_check_connection_rejects_a_404_on_ping(answer):
    stages = stages_of(lambda r: r.get("/server/ping").mock(return_value=answer))
    assert stages[0].ok is False and "check the base URL" in stages[0].summary


def test_check_connection_hints_at_the_admin_app_url():
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE}/admin/server/ping").respond(200, html="<html>Directus app</html>")
        stages = check_connection(f"{BASE}/admin/", TOKEN, client=httpx.Client())
    assert "without /admin" in stages[0].summary


@pytest.mark.parametrize(
    ("code", "words"),
    [("INVALID_CREDENTIALS", "unknown or was revoked"), ("TOKEN_EXPIRED", "expired")],
)
def test_check_connection_explains_a_rejected_token(code, words):
    def setup(router):
        router.get("/server/ping").respond(200, text="pong")
        router.get("/users/me").mock(return_value=err(code, "nope", 401))

    stages = stages_of(setup)
    assert stages[0].ok and stages[1].ok is False and words in stages[1].summary
    assert stages[2].ok is None


def test_check_connection_without_a_token_fails_the_token_stage():
    stages = stages_of(lambda r: r.get("/server/ping").respond(200, text="pong"), token="")
    assert stages[1].ok is False and "No token" in stages[1].summary


@pytest.mark.parametrize("stage_path", ["/server/ping", "/users/me", "/collections"])
def test_check_connection_explains_429_with_retry_after_at_any_stage(stage_path):
    def setup(router):
        healthy(router)
        limited = err("REQUESTS_EXCEEDED", "Too many requests, retry after 699ms.", 429)
        limited.headers["Retry-After"] = "1"
        router.get(stage_path).mock(return_value=limited)

    stages = stages_of(setup)
    failed = next(s for s in stages if s.ok is False)
    assert failed.summary == "Directus is rate limiting this client: retry after 1 s."


@pytest.mark.parametrize("status", [500, 503])
def test_check_connection_explains_server_errors(status):
    stages = stages_of(
        lambda r: r.get("/server/ping").mock(
            return_value=err("INTERNAL_SERVER_ERROR", "boom", status)
        )
    )
    assert stages[0].ok is False and str(status) in stages[0].summary


def test_check_connection_explains_a_server_error_on_collections():
    stages = stages_of(
        lambda r: (
            healthy(r, collections=False),
            r.get("/collections").respond(503, html="<h1>Service Unavailable</h1>"),
        )
    )
    assert stages[2].ok is False and "unavailable (503" in stages[2].summary


def test_check_connection_redacts_a_token_the_server_echoes():
    stages = stages_of(
        lambda r: (
            r.get("/server/ping").respond(200, text="pong"),
            r.get("/users/me").mock(
                return_value=err("INVALID_QUERY", f"token {TOKEN} is odd", 400)
            ),
        )
    )
    assert stages[1].ok is False  # stages_of asserts the token appears nowhere


def test_directus_client_builds_its_own_guarded_client_when_none_is_given(monkeypatch):
    made = []
    real = http.make_client

    def spy(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(http, "make_client", spy)
    with DirectusClient("http://127.0.0.1:9", TOKEN, timeout=3):
        pass
    assert made == [{"timeout": 3}]


# -- the same failures through the real outbound path (loopback sockets, no Directus) -------


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def plain_http_port():
    """A port that answers every connection with plain HTTP, so a TLS handshake fails."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def real_stages(url, allow_private=True, timeout=5):
    policy = http.OutboundPolicy(allow_private=allow_private)
    with http.make_client(policy=policy, timeout=timeout) as client:
        return check_connection(url, TOKEN, "articles", client=client)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_refused_connection():
    result = real_stages(f"http://127.0.0.1:{closed_port()}")
    assert result[0].ok is False and "NETWORK_REFUSED" in result[0].detail


def test_real_dns_failure(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(http, "_getaddrinfo", no_such_host)
    result = real_stages("http://directus.example.invalid")
    assert result[0].ok is False and "does not resolve" in result[0].summary
    assert "NETWORK_DNS" in result[0].detail


def test_real_blocked_address():
    result = real_stages(f"http://127.0.0.1:{closed_port()}", allow_private=False)
    assert result[0].ok is False and "does not connect to this address" in result[0].summary
    assert "NETWORK_BLOCKED" in result[0].detail and "loopback" in result[0].detail


def test_real_tls_failure(plain_http_port):
    result = real_stages(f"https://127.0.0.1:{plain_http_port}")
    assert result[0].ok is False and "TLS" in result[0].summary
    assert "NETWORK_TLS" in result[0].detail


def test_real_timeout(silent_port):
    result = real_stages(f"http://127.0.0.1:{silent_port}", timeout=0.3)
    assert result[0].ok is False and "did not answer in time" in result[0].summary
    assert "NETWORK_TIMEOUT" in result[0].detail


@pytest.mark.parametrize("base", ["", "directus.example.com", "ftp://directus.example.com"])
def test_a_base_url_that_is_not_http_is_explained(base):
    stages = check_connection(base, TOKEN, client=httpx.Client())
    assert stages[0].ok is False
    assert stages[0].summary == "The base URL is not a valid http(s) URL."
    assert [s.ok for s in stages[1:]] == [None, None]
