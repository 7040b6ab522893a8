"""Write-back mapping: an upload reads the schema it needs, every row is checked before Confirm,
the sample is JSON, and an inbound route maps Clay's own column names; who may change what."""

import html
import json

import httpx
import pytest
import respx
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from console.views import writeback as writeback_views
from integrations.models import (
    AuditEvent,
    CsvUpload,
    DirectusConnection,
    InboundRoute,
    Secret,
    Sync,
    SyncRun,
)
from tests.integrations.directus_fake import BASE, TOKEN, FakeLeads

pytestmark = pytest.mark.django_db

FIELDS = [
    ("id", "integer"),
    ("email", "string"),
    ("full_name", "string"),
    ("score", "integer"),
    ("signed_up", "dateTime"),
]
SCHEMA = {
    "collections": {
        "leads": {"primary_key": "id", "fields": {name: {"type": t} for name, t in FIELDS}}
    }
}


def mount_schema(router):
    """Directus's /collections, /fields and /relations answers for `leads`."""
    router.get(f"{BASE}/collections").mock(
        return_value=httpx.Response(
            200, json={"data": [{"collection": "leads", "meta": {}, "schema": {"name": "leads"}}]}
        )
    )
    fields = [
        {
            "collection": "leads",
            "field": name,
            "type": kind,
            "meta": {},
            "schema": {"is_primary_key": name == "id", "is_nullable": True},
        }
        for name, kind in FIELDS
    ]
    router.get(f"{BASE}/fields").mock(return_value=httpx.Response(200, json={"data": fields}))
    router.get(f"{BASE}/relations").mock(return_value=httpx.Response(200, json={"data": []}))


@pytest.fixture
def sync(db):
    connection = DirectusConnection.objects.create(
        name="cms", base_url=BASE, token=Secret.seal(TOKEN), schema=SCHEMA
    )
    return Sync.objects.create(
        name="Leads back",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
        rate_limit=0,
    )


def upload(client, sync, content, name="leads.csv"):
    file = SimpleUploadedFile(name, content.encode("utf-8"))
    return client.post(reverse("console:writeback-upload"), {"sync": sync.pk, "file": file})


def detail_url(csv_upload):
    return reverse("console:writeback-upload-detail", args=[csv_upload.pk])


def text_of(response):
    return html.unescape(response.content.decode())


# -- the schema, read when the upload needs it ------------------------------------------------


def test_an_upload_with_no_cached_schema_reads_it_and_maps_by_folded_names_with_casts(
    operator_client, sync
):
    DirectusConnection.objects.filter(pk=sync.connection_id).update(schema=None)
    content = "Full Name,E-mail,Score,Signed Up,Company ID\nAda,ada@x.example,7,2024-03-15,3\n"
    with respx.mock(assert_all_called=False) as router:
        mount_schema(router)
        FakeLeads().mount(router)
        response = upload(operator_client, sync, content)
    assert response.status_code == 302
    assert DirectusConnection.objects.get().schema["collections"]["leads"]["fields"]
    mapping = {m["source"]: (m["field"], m["casts"]) for m in CsvUpload.objects.get().mapping}
    assert mapping == {
        "Full Name": ("full_name", []),
        "E-mail": ("email", []),
        "Score": ("score", ["integer"]),
        "Signed Up": ("signed_up", ["datetime"]),
        # "companyid" is no field's folded name: not guessed as "company" or anything else.
    }


def test_a_token_that_cannot_read_the_schema_is_told_so_and_nothing_is_guessed(
    operator_client, sync
):
    DirectusConnection.objects.filter(pk=sync.connection_id).update(schema=None)
    with respx.mock(assert_all_called=False) as router:
        FakeLeads().mount(router)  # answers 403 to /collections, as Directus does
        response = upload(operator_client, sync, "Email,Score\na@x.example,1\n")
        page = operator_client.get(response.url)
    assert CsvUpload.objects.get().mapping == []
    body = text_of(page)
    assert "could not read the fields of “leads”" in body
    assert "403" in body and "no cast is chosen" in body
    assert "Read the fields from Directus" in body
    assert "Confirm:" not in body
    assert "No column is mapped to a field yet" in body


def test_reading_the_fields_again_maps_the_columns_once_the_token_may(operator_client, sync):
    DirectusConnection.objects.filter(pk=sync.connection_id).update(schema=None)
    with respx.mock(assert_all_called=False) as router:
        FakeLeads().mount(router)
        upload(operator_client, sync, "Email,Full Name\na@x.example,Ada\n")
    csv_upload = CsvUpload.objects.get()
    with respx.mock(assert_all_called=False) as router:
        mount_schema(router)
        FakeLeads().mount(router)
        response = operator_client.post(detail_url(csv_upload), {"action": "read-fields"})
        page = operator_client.get(response.url)
    assert {m["field"] for m in CsvUpload.objects.get().mapping} == {"email", "full_name"}
    assert "2 columns are mapped by name" in text_of(page)
    assert "Confirm: write 1 row to Directus" in text_of(page)


# -- every row checked before Confirm ----------------------------------------------------------

CHECKED = (
    "Email,Full Name,Score\n"
    "known@x.example,Known,1\n"  # line 2: updates the known lead
    ",No email,2\n"  # line 3: no match value
    "n-a@x.example,Bad score,n/a\n"  # line 4: does not cast to an integer
    "new@x.example,New,3\n"  # line 5: creates
    "known@x.example,Known again,4\n"  # line 6: repeats line 2
    "new@x.example,New again,\n"  # line 7: repeats line 5
    "other@x.example,Other,5\n"  # line 8: creates
)


def test_the_check_counts_refusals_with_line_numbers_duplicates_and_what_will_be_created(
    operator_client, sync
):
    fake = FakeLeads([{"email": "known@x.example"}])
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        response = upload(operator_client, sync, CHECKED)
        page = operator_client.get(response.url)
    body = text_of(page)
    check = body.split('id="check"')[1].split("</section>")[0]
    assert "5 of 7 rows" in check.split('class="count-ready"')[1].split("</td>")[0]
    assert "2 rows" in check.split('class="count-refused"')[1].split("</td>")[0]
    assert "2 rows" in check.split('class="count-duplicates"')[1].split("</td>")[0]
    # known (twice), new (twice), other: 2 new values are created, the 3 other rows update.
    assert '<span class="count-updates">3</span>' in check
    assert '<span class="count-creates">2</span>' in check
    assert 'Line 4: Column "Score": "n/a" is not a number' in check
    assert "takes a whole number (cast: integer)" in check
    assert "no value for “email”" in check and "Lines: 3." in check
    assert 'Line 6 repeats "known@x.example" of line 2.' in check
    assert 'Line 7 repeats "new@x.example" of line 5.' in check
    assert "the last row wins" in check
    assert "Confirm: write 5 rows to Directus" in body
    # One lookup of the 3 distinct match values, read-only: nothing written by the check.
    assert [method for method, _ in fake.calls] == ["GET"]
    assert len(fake.items) == 1


def test_the_check_says_why_it_does_not_split_creates_and_updates_for_a_big_file(
    operator_client, sync, monkeypatch
):
    monkeypatch.setattr(writeback_views, "LOOKUP_MAX_KEYS", 2)
    fake = FakeLeads()
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        response = upload(operator_client, sync, CHECKED)
        page = operator_client.get(response.url)
    body = text_of(page)
    assert "5 rows will be created or updated" in body
    assert "more than 2 distinct match values" in body
    assert not fake.calls  # no lookup at all


def test_a_lookup_directus_refuses_is_said_and_confirm_is_still_offered(operator_client, sync):
    with respx.mock(assert_all_called=False) as router:
        FakeLeads(read="none").mount(router)
        response = upload(operator_client, sync, CHECKED)
        page = operator_client.get(response.url)
    body = text_of(page)
    assert "5 rows will be created or updated" in body
    assert "could not look the match values up" in body and "403" in body
    assert "Confirm: write 5 rows to Directus" in body


def test_matching_that_ignores_case_is_not_looked_up_and_folds_duplicates(operator_client, sync):
    Sync.objects.filter(pk=sync.pk).update(match_ignore_case=True)
    content = "Email,Score\nAnn@X.example,1\nann@x.example,2\n"
    fake = FakeLeads()
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        response = upload(operator_client, sync, content)
        page = operator_client.get(response.url)
    body = text_of(page)
    assert "2 rows will be created or updated" in body and "ignoring case" in body
    assert 'Line 3 repeats "ann@x.example" of line 2.' in body
    assert not fake.calls


def test_confirm_is_not_offered_while_the_match_field_is_unmapped(operator_client, sync):
    with respx.mock(assert_all_called=False) as router:
        FakeLeads().mount(router)
        response = upload(operator_client, sync, CHECKED)
        csv_upload = CsvUpload.objects.get()
        # Email is left unmapped.
        page = operator_client.post(
            response.url, {"field-1": "full_name", "field-2": "score", "casts-2": "integer"}
        )
    body = text_of(page)
    assert page.status_code == 200
    assert "Upsert matches items on “email”, and no column is mapped to it" in body
    assert "Confirm:" not in body and 'id="check"' not in body
    response = operator_client.post(
        reverse("console:writeback-upload-confirm", args=[csv_upload.pk]), follow=True
    )
    assert not SyncRun.objects.exists()
    assert "no column is mapped to it" in text_of(response)


def test_the_sample_row_is_json(operator_client, sync):
    with respx.mock(assert_all_called=False) as router:
        FakeLeads().mount(router)
        response = upload(operator_client, sync, "Email,Score,Notes\na@x.example,7,true\n")
        page = operator_client.get(response.url)
    body = text_of(page)
    sample = body.split('<pre class="excerpt sample">')[1].split("</pre>")[0]
    assert json.loads(sample) == {"email": "a@x.example", "score": 7}
    assert '\n  "score": 7' in sample  # indented, not a Python dict on one line


@pytest.mark.parametrize(
    "post, sentence",
    [
        ({"field-0": "emial"}, '"emial" is not a field of the collection (column "Email")'),
        ({"field-0": "email", "field-1": "email"}, 'Two columns are mapped to "email"'),
        ({"field-0": "email", "casts-0": "lowercase"}, 'Unknown cast "lowercase"'),
        ({}, "Map at least one column to a field"),
    ],
)
def test_a_wrong_upload_mapping_gets_a_sentence_and_is_not_saved(
    operator_client, sync, post, sentence
):
    with respx.mock(assert_all_called=False) as router:
        FakeLeads().mount(router)
        upload(operator_client, sync, "Email,Score\na@x.example,7\n")
        csv_upload = CsvUpload.objects.get()
        before = csv_upload.mapping
        page = operator_client.post(detail_url(csv_upload), post)
    assert page.status_code == 400
    assert sentence in text_of(page) and "Confirm:" not in text_of(page)
    assert CsvUpload.objects.get().mapping == before


def test_a_viewer_sees_the_check_but_may_not_change_the_mapping(viewer_client, sync):
    fake = FakeLeads()
    csv_path = writeback_views._upload_dir() / "viewer-test.csv"
    csv_path.write_text("Email,Score\na@x.example,n/a\n")
    csv_upload = CsvUpload.objects.create(
        sync=sync,
        path=str(csv_path),
        original_name="leads.csv",
        columns=["Email", "Score"],
        preview=[{"Email": "a@x.example", "Score": "n/a"}],
        row_count=1,
        mapping=[
            {"field": "email", "source_kind": "column", "source": "Email", "casts": []},
            {"field": "score", "source_kind": "column", "source": "Score", "casts": ["integer"]},
        ],
    )
    try:
        with respx.mock(assert_all_called=False) as router:
            fake.mount(router)
            page = viewer_client.get(detail_url(csv_upload))
            refused = viewer_client.post(detail_url(csv_upload), {"field-0": "full_name"})
            confirm = viewer_client.post(
                reverse("console:writeback-upload-confirm", args=[csv_upload.pk])
            )
    finally:
        csv_path.unlink()
    assert page.status_code == 200 and 'Line 2: Column "Score"' in text_of(page)
    assert "Confirm:" not in text_of(page)  # nothing to write, and a viewer may not anyway
    assert refused.status_code == 403 and confirm.status_code == 403
    assert CsvUpload.objects.get().mapping[0]["field"] == "email"


def test_an_outsider_is_sent_to_login_from_an_upload(client, sync):
    csv_upload = CsvUpload.objects.create(sync=sync, path="/nowhere.csv", original_name="x.csv")
    response = client.post(detail_url(csv_upload), {"field-0": "email"})
    assert response.status_code == 302 and "login" in response.url


# -- an inbound route's mapping ------------------------------------------------------------------


@pytest.fixture
def route(sync):
    return InboundRoute.open(sync)[0]


def route_url(route):
    return reverse("console:writeback-route", args=[route.pk])


MAPPING_POST = {
    "m-count": "4",
    "column-0": "Full Name",
    "field-0": "full_name",
    "column-1": "Email",
    "field-1": "email",
    "casts-1": "trim | lower",
    "column-2": "Score",
    "field-2": "score",
    "casts-2": "integer",
    "column-3": "Notes",
    "field-3": "",  # not written
}


@pytest.mark.parametrize("who", ["admin_client", "operator_client"])
def test_admins_and_operators_save_a_routes_mapping(who, request, route):
    client = request.getfixturevalue(who)
    response = client.post(route_url(route), MAPPING_POST)
    assert response.status_code == 302 and response.url == route_url(route)
    route.refresh_from_db()
    assert route.mapping == [
        {"column": "Full Name", "field": "full_name", "cast": ""},
        {"column": "Email", "field": "email", "cast": "trim | lower"},
        {"column": "Score", "field": "score", "cast": "integer"},
    ]
    event = AuditEvent.objects.get(target_type="inbound route", action="changed")
    assert event.details == {"mapping": ["Full Name → full_name", "Email → email", "Score → score"]}
    page = text_of(client.get(route_url(route)))
    assert "Columns not in the mapping are ignored" in page
    assert 'value="Full Name"' in page and 'value="trim | lower"' in page


def test_a_viewer_sees_a_routes_mapping_but_may_not_change_it(viewer_client, route):
    InboundRoute.objects.filter(pk=route.pk).update(
        mapping=[{"column": "Email", "field": "email", "cast": ""}]
    )
    page = viewer_client.get(route_url(route))
    assert page.status_code == 200 and 'value="Email"' in text_of(page)
    assert "Save mapping" not in text_of(page)
    assert viewer_client.post(route_url(route), MAPPING_POST).status_code == 403
    route.refresh_from_db()
    assert route.mapping == [{"column": "Email", "field": "email", "cast": ""}]


def test_an_outsider_cannot_change_a_routes_mapping(client, route):
    response = client.post(route_url(route), MAPPING_POST)
    assert response.status_code == 302 and "login" in response.url
    route.refresh_from_db()
    assert route.mapping == []


@pytest.mark.parametrize(
    "changes, sentence",
    [
        ({"field-0": "fullname"}, "“fullname” is not a field of “leads” (column “Full Name”)"),
        ({"casts-2": "int"}, "unknown cast “int” on column “Score”"),
        ({"field-1": ""}, "Upsert matches items on “email”: map the column Clay sends it in"),
        ({"column-1": ""}, "the field “email” needs the column it comes from"),
        ({"field-2": "email"}, "Two columns are mapped to “email”"),
        ({"m-count": None}, "Nothing to save: the form sent no mapping rows"),
        ({"m-count": "lots"}, "The form's row count is not a number"),
    ],
)
def test_a_wrong_route_mapping_gets_a_sentence_and_is_not_saved(
    operator_client, route, changes, sentence
):
    post = {k: v for k, v in {**MAPPING_POST, **changes}.items() if v is not None}
    response = operator_client.post(route_url(route), post)
    assert response.status_code == 400
    assert sentence in text_of(response)
    route.refresh_from_db()
    assert route.mapping == []


def test_the_route_page_suggests_columns_seen_in_recent_rows(operator_client, route):
    from integrations.runs import inbound

    inbound.accept(
        route, [{"Full Name": "Ada", "E-mail": "a@x.example", "kiln_row_id": "k"}], size=1
    )
    page = text_of(operator_client.get(route_url(route)))
    mapping = page.split('id="route-mapping"')[1].split("</section>")[0]
    assert 'value="Full Name"' in mapping and 'value="full_name"' in mapping
    assert 'value="E-mail"' in mapping and 'value="email"' in mapping
    assert "kiln_row_id" not in mapping  # bookkeeping, never a column to write
    route.refresh_from_db()
    assert route.mapping == []  # suggestions are not saved until the operator saves


def test_a_route_without_known_fields_says_so_and_takes_the_mapping_unchecked(
    operator_client, route
):
    DirectusConnection.objects.update(schema=None)
    page = text_of(operator_client.get(route_url(route)))
    assert "has not read the fields of “leads”" in page
    response = operator_client.post(route_url(route), {**MAPPING_POST, "field-0": "any_name"})
    assert response.status_code == 302
    route.refresh_from_db()
    assert route.mapping[0] == {"column": "Full Name", "field": "any_name", "cast": ""}
