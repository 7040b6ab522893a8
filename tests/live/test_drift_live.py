"""Schema drift before every run, against the real Directus: a field a sync
uses is renamed or retyped in Directus; the next run is refused naming the field and where."""

import pytest

from integrations.models import (
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    SavedQuery,
    Secret,
    Sync,
)
from integrations.query import drift
from integrations.runs import sync as engine_api
from tests.live.shapes import api, create_collection, drop_collection, field, string_pk

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(live_directus):
    name = create_collection(
        live_directus,
        "Drift",
        string_pk("code"),
        field("label", "string"),
        field("price", "integer"),
    )
    yield name
    drop_collection(live_directus, name)


@pytest.fixture
def drift_sync(live_directus, shop):
    connection = DirectusConnection.objects.create(
        name="Live", base_url=live_directus.url, token=Secret.seal(live_directus.admin_token)
    )
    saved = SavedQuery.objects.create(
        connection=connection,
        name="Pricey",
        collection=shop,
        query_string="filter[price][_gt]=5&fields=code,name,label",
    )
    template = MappingTemplate.objects.create(
        name="row", kind="clay_row", body='{"code": "{{code}}", "label": "{{label}}"}'
    )
    destination = ClayDestination.objects.create(
        name="Table", webhook_url=Secret.seal("https://api.clay.com/v3/sources/webhook/x")
    )
    return Sync.objects.create(
        name="Shop to Clay",
        saved_query=saved,
        destination=destination,
        template=template,
        row_key="code",
    )


def test_renaming_a_field_used_by_a_sync_makes_its_next_run_refuse_with_the_field(
    live_directus, shop, drift_sync
):
    assert drift.refusal(drift_sync) == ""
    api(live_directus, "DELETE", f"/fields/{shop}/label")
    api(live_directus, "POST", f"/fields/{shop}", field("label_text", "string"))

    with pytest.raises(engine_api.SyncError) as refused:
        engine_api.start_run(Sync.objects.get(pk=drift_sync.pk))
    message = str(refused.value)
    assert '"label"' in message
    assert 'template "row"' in message and "{{label}}" in message
    assert 'fields of saved query "Pricey"' in message
    # The cache was read again for the run, so lists and the dashboard flag it too.
    flagged = drift.drifted(Sync.objects.select_related("saved_query__connection"))
    assert [d.field for d in flagged[drift_sync.pk]] == ["label", "label"]


def test_retyping_a_field_used_by_a_filter_refuses_the_run(live_directus, shop, drift_sync):
    api(live_directus, "DELETE", f"/fields/{shop}/price")
    api(live_directus, "POST", f"/fields/{shop}", field("price", "string"))
    connection = drift_sync.saved_query.connection
    DirectusConnection.objects.filter(pk=connection.pk).update(schema_fetched_at=None)

    with pytest.raises(engine_api.SyncError, match="_gt is not valid for string field price"):
        engine_api.start_run(Sync.objects.get(pk=drift_sync.pk))
