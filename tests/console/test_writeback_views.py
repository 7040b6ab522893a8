"""Write-back pages: CSV upload → preview → map → confirm → a run with one result per row;
routes (secret shown once, rotation) and who may do what."""

import pytest
import respx
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations import tasks
from integrations.models import (
    AuditEvent,
    CsvUpload,
    DirectusConnection,
    InboundRoute,
    RowResult,
    RowTrace,
    Secret,
    Sync,
    SyncRun,
)
from integrations.runs import roundtrip
from tests.integrations.directus_fake import BASE, TOKEN, FakeLeads

pytestmark = pytest.mark.django_db

SCHEMA = {
    "collections": {
        "leads": {
            "primary_key": "id",
            "fields": {
                "id": {"type": "integer"},
                "email": {"type": "string", "required": True},
                "first_name": {"type": "string"},
                "score": {"type": "integer"},
            },
        }
    }
}
CSV = (
    "\ufeffEmail,First Name,Score,Notes\r\n"
    'known@x.example,Known,10,"likes commas, and quotes"\r\n'
    "new@x.example,New,,\r\n"
    "broken@x.example,Broken,1,x,EXTRA\r\n"
    ",No email,3,\r\n"
)


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


def upload(client, sync, content=CSV, name="leads-enriched.csv"):
    file = SimpleUploadedFile(
        name, content.encode("utf-8") if isinstance(content, str) else content
    )
    return client.post(reverse("console:writeback-upload"), {"sync": sync.pk, "file": file})


def test_upload_preview_map_confirm_writes_every_row_with_its_result(
    operator_client, sync, monkeypatch
):
    queued = []
    monkeypatch.setattr(
        tasks.run_inbound_slice, "delay_on_commit", lambda run_id: queued.append(run_id)
    )
    response = upload(operator_client, sync)
    csv_upload = CsvUpload.objects.get()
    assert response.status_code == 302 and response.url == reverse(
        "console:writeback-upload-detail", args=[csv_upload.pk]
    )
    assert csv_upload.columns == ["Email", "First Name", "Score", "Notes"]
    assert (csv_upload.row_count, csv_upload.bad_line_count) == (3, 1)
    # Matching names are mapped already, with the cast the field type needs.
    assert {
        "field": "score",
        "source_kind": "column",
        "source": "Score",
        "casts": ["integer"],
    } in csv_upload.mapping

    page = operator_client.get(response.url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "likes commas, and quotes" in html and "Line 4 has 5 values" in html
    # Line 5 has no email: refused before Confirm, so 2 of the 3 readable rows are offered.
    assert "Confirm: write 2 rows" in html

    # Map: Email→email, First Name→first_name, Score→score (integer); Notes not written.
    page = operator_client.post(
        response.url,
        {
            "field-0": "email",
            "casts-0": "trim | lower",
            "field-1": "first_name",
            "field-2": "score",
            "casts-2": "integer",
            "field-3": "",
        },
    )
    assert page.status_code == 200
    # The sample row, as it will be written: JSON, not a Python dict.
    assert "&quot;score&quot;: 10" in page.content.decode()
    assert not RowResult.objects.exists()  # nothing written before the confirm

    response = operator_client.post(
        reverse("console:writeback-upload-confirm", args=[csv_upload.pk])
    )
    run = SyncRun.objects.get()
    assert response.url == reverse("console:run-detail", args=[run.pk]) and queued == [run.pk]

    fake = FakeLeads([{"email": "known@x.example", "score": 1}])
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.run_inbound_slice(run.pk)
    run.refresh_from_db()
    assert (run.status, run.total, run.sent, run.failed) == ("partly_failed", 4, 2, 2)
    results = {r.row_key.split(" ")[1]: r for r in RowResult.objects.filter(run=run)}
    assert results["2"].status == "updated" and results["3"].status == "created"
    assert results["4"].error_code == "BAD_LINE" and "5 values" in results["4"].error_message
    assert results["5"].error_code == "MISSING_MATCH_VALUE"
    assert fake.by_email("known@x.example")["score"] == 10
    assert "score" not in fake.by_email("new@x.example")  # an empty cell leaves the field alone


def test_a_file_that_is_not_csv_gets_a_clear_message(operator_client, sync):
    response = upload(operator_client, sync, b"PK\x03\x04 a zip", name="leads.xlsx")
    assert response.status_code == 302
    page = operator_client.get(response.url)
    assert "Excel workbook" in page.content.decode()
    assert not CsvUpload.objects.exists()


def test_a_mapping_to_an_unknown_field_is_refused(operator_client, sync):
    upload(operator_client, sync)
    csv_upload = CsvUpload.objects.get()
    page = operator_client.post(
        reverse("console:writeback-upload-detail", args=[csv_upload.pk]), {"field-0": "emial"}
    )
    assert page.status_code == 400
    assert "is not a field of the collection" in page.content.decode()


def test_upsert_cannot_be_confirmed_without_the_match_field_mapped(operator_client, sync):
    upload(operator_client, sync)
    csv_upload = CsvUpload.objects.get()
    CsvUpload.objects.filter(pk=csv_upload.pk).update(
        mapping=[{"field": "first_name", "source": "First Name"}]
    )
    operator_client.post(reverse("console:writeback-upload-confirm", args=[csv_upload.pk]))
    assert not SyncRun.objects.exists()


def test_a_viewer_sees_uploads_but_cannot_upload_or_confirm(viewer_client, sync):
    assert viewer_client.get(reverse("console:writeback")).status_code == 200
    assert upload(viewer_client, sync).status_code == 403


def test_an_outsider_is_sent_to_login(client, sync):
    response = client.get(reverse("console:writeback"))
    assert response.status_code == 302 and "login" in response.url


def test_an_admin_creates_a_route_and_sees_the_secret_once(admin_client, sync):
    response = admin_client.post(reverse("console:writeback-route-open", args=[sync.pk]))
    route = InboundRoute.objects.get()
    html = response.content.decode()
    secret = html.split('class="secret">')[1].split("<")[0]
    assert route.accepts(secret) and route.url in html
    assert AuditEvent.objects.filter(target_type="inbound route", action="created").exists()
    again = admin_client.get(reverse("console:writeback-route", args=[route.pk])).content.decode()
    assert secret not in again


def test_rotation_shows_a_new_secret_and_keeps_the_old_one_working(admin_client, sync):
    route, old = InboundRoute.open(sync)
    response = admin_client.post(reverse("console:writeback-route-rotate", args=[route.pk]))
    new = response.content.decode().split('class="secret">')[1].split("<")[0]
    route.refresh_from_db()
    assert new != old and route.accepts(new) and route.accepts(old)
    admin_client.post(reverse("console:writeback-route-revoke", args=[route.pk]))
    route.refresh_from_db()
    assert not route.accepts(old) and route.accepts(new)


def test_an_operator_may_not_create_routes_or_rotate(operator_client, sync):
    assert (
        operator_client.post(reverse("console:writeback-route-open", args=[sync.pk])).status_code
        == 403
    )
    route, _ = InboundRoute.open(sync)
    assert (
        operator_client.post(reverse("console:writeback-route-rotate", args=[route.pk])).status_code
        == 403
    )


def test_the_timeline_shows_each_step_and_the_stuck_page_lists_rows_that_never_came_back(
    viewer_client, sync
):
    import datetime as dt

    from django.utils import timezone

    roundtrip.start_traces(sync, "leads", [("7", "kr_7_0")])
    long_ago = timezone.now() - dt.timedelta(hours=3)
    roundtrip.record_steps(
        [("kr_7_0", RowTrace.Step.SENT, True, "Clay accepted the row.", long_ago, None)]
    )
    page = viewer_client.get(reverse("console:row-timeline", args=["kr_7_0"])).content.decode()
    assert "queued" in page and "sent to Clay" in page and "Waiting for Clay" in page
    stuck = viewer_client.get(reverse("console:writeback-stuck")).content.decode()
    assert "kr_7_0" in stuck


def test_the_preview_keeps_the_files_column_order_whatever_the_json_storage_does():
    from integrations.models import CsvUpload

    # Keys in the order jsonb would hand them back (by length), not the file's order.
    upload = CsvUpload(
        columns=["Email", "First Name", "Score", "Company ID"],
        preview=[{"Email": "a@x.io", "Score": "7", "Company ID": "", "First Name": "Ann"}],
    )
    assert upload.preview_table == [["a@x.io", "Ann", "7", ""]]


# -- a relay route's settings: "relay Kiln's own writes" ---------------------------------------


@pytest.fixture
def relay_route(sync):
    from integrations.models import ClayDestination

    destination = ClayDestination.objects.create(
        name="Clay leads", webhook_url=Secret.seal("https://api.clay.com/hook/abc")
    )
    relay_sync = Sync.objects.create(
        name="Leads relay",
        kind=Sync.Kind.RELAY,
        connection=sync.connection,
        collection="leads",
        destination=destination,
        rate_limit=0,
    )
    route, _ = InboundRoute.open(relay_sync)
    return route


def settings_form(html):
    """The settings form of the route page: (its action, the checkbox tag, has a submit)."""
    section = html.split('id="route-settings"')[1].split("</section>")[0]
    form = section.split("<form")[1].split("</form>")[0]
    action = form.split('action="')[1].split('"')[0]
    checkbox = (
        form.split('type="checkbox"')[0].rsplit("<", 1)[1]
        + form.split('type="checkbox"')[1].split(">")[0]
    )
    return action, checkbox, 'type="submit"' in form


@pytest.mark.parametrize("who", ["admin_client", "operator_client"])
def test_admins_and_operators_turn_relaying_kilns_own_writes_on_and_off(who, request, relay_route):
    client = request.getfixturevalue(who)
    url = reverse("console:writeback-route", args=[relay_route.pk])
    action, checkbox, submit = settings_form(client.get(url).content.decode())
    # A real form posting to the page itself: it works without JavaScript.
    assert action == url and submit
    assert 'name="relay_own_writes"' in checkbox and "checked" not in checkbox
    assert "disabled" not in checkbox

    page = client.post(url, {"relay_own_writes": "on"}, follow=True)
    relay_route.refresh_from_db()
    assert relay_route.relay_own_writes is True
    html = page.content.decode()
    assert "relayed to Clay too" in html and "checked" in settings_form(html)[1]

    # An unticked checkbox is not sent at all: that turns the option off.
    response = client.post(url, {})
    assert response.status_code == 302 and response.url == url
    relay_route.refresh_from_db()
    assert relay_route.relay_own_writes is False
    changes = AuditEvent.objects.filter(target_type="inbound route", action="changed")
    assert [e.details for e in changes.order_by("id")] == [
        {"relay_own_writes": True},
        {"relay_own_writes": False},
    ]


def test_a_viewer_sees_the_setting_but_may_not_change_it(viewer_client, relay_route):
    InboundRoute.objects.filter(pk=relay_route.pk).update(relay_own_writes=True)
    url = reverse("console:writeback-route", args=[relay_route.pk])
    _, checkbox, submit = settings_form(viewer_client.get(url).content.decode())
    assert "checked" in checkbox and "disabled" in checkbox and not submit
    response = viewer_client.post(url, {})
    assert response.status_code == 403
    relay_route.refresh_from_db()
    assert relay_route.relay_own_writes is True
    assert not AuditEvent.objects.filter(action="changed").exists()


def test_an_outsider_cannot_change_the_setting(client, relay_route):
    url = reverse("console:writeback-route", args=[relay_route.pk])
    response = client.post(url, {"relay_own_writes": "on"})
    assert response.status_code == 302 and "login" in response.url
    relay_route.refresh_from_db()
    assert relay_route.relay_own_writes is False


def test_a_write_back_route_has_no_relay_setting(operator_client, sync):
    route, _ = InboundRoute.open(sync)
    url = reverse("console:writeback-route", args=[route.pk])
    assert 'id="route-settings"' not in operator_client.get(url).content.decode()
    operator_client.post(url, {"relay_own_writes": "on"})
    route.refresh_from_db()
    assert route.relay_own_writes is False


def test_a_write_back_sync_can_match_ignoring_letter_case(operator_client, sync):
    data = {
        "name": "Leads back, any case",
        "kind": Sync.Kind.CLAY_TO_DIRECTUS,
        "connection": sync.connection_id,
        "collection": "leads",
        "write_mode": "upsert",
        "match_field": "email",
        "match_ignore_case": "on",
        "row_key": "id",
        "rate_limit": "0",
    }
    response = operator_client.post(reverse("console:writeback-sync-add"), data)
    assert response.status_code == 302
    created = Sync.objects.get(name="Leads back, any case")
    assert created.match_ignore_case is True
    page = operator_client.get(reverse("console:sync-detail", args=[created.pk]))
    assert (
        'matched by <span class="mono">email</span> ignoring letter case' in page.content.decode()
    )
