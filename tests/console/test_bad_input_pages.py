"""Inputs that used to answer 500 get a page that says what is wrong."""

import pytest
from django.urls import reverse

from integrations import crypto
from integrations.models import DirectusConnection, InboundRoute, Secret, Sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(db):
    return DirectusConnection.objects.create(
        name="cms", base_url="http://127.0.0.1:9", token=Secret.seal("tok-directus-1234")
    )


def test_a_nul_in_the_address_is_a_400_page_saying_so(viewer_client):
    response = viewer_client.get("/rows/%00/")
    assert response.status_code == 400
    assert "NUL character" in response.content.decode()


def test_a_nul_in_a_query_parameter_is_a_400_page_naming_it(viewer_client):
    response = viewer_client.get(reverse("console:runs"), {"q": "a\x00b"})
    assert response.status_code == 400
    assert "query parameter “q”" in response.content.decode()


def test_a_nul_in_a_posted_field_is_a_400_page_naming_it(admin_client):
    response = admin_client.post(reverse("console:query-builder"), {"collection": "x\x00"})
    assert response.status_code == 400
    assert "form field “collection”" in response.content.decode()


def test_the_inbound_endpoint_reads_its_own_body_whatever_it_holds(client):
    response = client.post("/in/nope/", {"a": "\x00"})
    assert response.status_code == 404  # no such route: the NUL guard stayed out of it


def test_replaying_a_row_that_is_not_a_number_says_so(admin_client, connection):
    sync = Sync.objects.create(
        name="back",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
    )
    route, _ = InboundRoute.open(sync)
    url = reverse("console:writeback-route-replay", args=[route.pk])
    response = admin_client.post(url, {"row": "abc"}, follow=True)
    assert response.status_code == 200
    assert "No such row to replay" in response.content.decode()


def test_a_run_id_too_large_for_the_database_matches_nothing(viewer_client):
    response = viewer_client.get(reverse("console:runs"), {"sync": "-99999999999999999999"})
    assert response.status_code == 200


def test_a_missing_encryption_key_gives_a_503_page_naming_the_variable(
    admin_client, connection, settings
):
    settings.KILN_ENCRYPTION_KEYS = []
    response = admin_client.post(reverse("console:connection-test", args=[connection.pk]))
    assert response.status_code == 503
    page = response.content.decode()
    assert "KILN_ENCRYPTION_KEYS is not set" in page


def test_an_invalid_encryption_key_gives_a_503_page_that_never_shows_the_key(
    admin_client, connection, settings
):
    settings.KILN_ENCRYPTION_KEYS = ["not-a-fernet-key-but-secret-text"]
    response = admin_client.post(reverse("console:connection-test", args=[connection.pk]))
    assert response.status_code == 503
    page = response.content.decode()
    assert "KILN_ENCRYPTION_KEYS key #1 is not a Fernet key" in page
    assert "not-a-fernet-key-but-secret-text" not in page


def test_a_key_removed_too_early_gives_a_503_page(admin_client, connection, settings):
    settings.KILN_ENCRYPTION_KEYS = [crypto.generate_key()]
    response = admin_client.post(reverse("console:connection-test", args=[connection.pk]))
    assert response.status_code == 503
    assert "cannot be decrypted" in response.content.decode()
