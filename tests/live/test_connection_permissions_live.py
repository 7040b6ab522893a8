"""Test connection says what a token may do, on a schema Kiln has never seen."""

import pytest

from integrations.directus.client import check_connection
from integrations.outbound import http
from tests.live.catalog import catalog_fixture, narrow_token


@pytest.fixture(scope="module")
def catalog(live_directus):
    yield from catalog_fixture(live_directus)


def stages(url, token, probe=""):
    with http.make_client(policy=http.OutboundPolicy(allow_private=True), timeout=10) as client:
        return check_connection(url, token, probe, client=client)


def test_a_token_that_may_only_update_one_collection_is_shown_as_exactly_that(
    live_directus, catalog
):
    with narrow_token(live_directus, {catalog.products: ["update"]}) as token:
        result = stages(live_directus.url, token)
    reading = result[2]
    assert reading.facts["permissions"] == {catalog.products: ["update"]}
    assert f"It may update 1 collection: {catalog.products}." in reading.summary
    assert "It may read no collection." in reading.summary
    assert "may read 6" not in reading.summary


def test_a_token_without_schema_access_passes_with_a_warning_that_says_the_consequence(
    live_directus, catalog
):
    actions = {catalog.products: ["read", "update"], catalog.suppliers: ["read"]}
    with narrow_token(live_directus, actions) as token:
        result = stages(live_directus.url, token, catalog.products)
    reading = result[2]
    assert [s.ok for s in result] == [True, True, True]
    assert reading.facts["schema_access"] is False
    assert "may not read the schema" in reading.warning
    assert "query builder cannot list its collections and fields" in reading.warning
    assert reading.facts["permissions"] == {
        catalog.products: ["read", "update"],
        catalog.suppliers: ["read"],
    }


def test_an_admin_token_has_schema_access_and_every_action(live_directus, catalog):
    result = stages(live_directus.url, live_directus.admin_token)
    reading = result[2]
    assert reading.warning == "" and reading.facts["schema_access"] is True
    assert reading.facts["permissions"][catalog.products] == [
        "read",
        "create",
        "update",
        "delete",
    ]
    assert not any(name.startswith("directus_") for name in reading.facts["permissions"])
    # The token stage read /server/info: the version and the query limits.
    assert "Directus 12." in result[1].summary
    assert result[1].facts["server_info"]["queryLimit"]["default"] == 100


def test_a_collection_name_in_the_wrong_case_gets_did_you_mean(live_directus, catalog):
    wrong = catalog.products.lower()
    result = stages(live_directus.url, live_directus.admin_token, wrong)
    reading = result[2]
    assert reading.ok is False
    assert f'Did you mean "{catalog.products}"? Collection names are case-sensitive.' in (
        reading.summary
    )
