import pytest

from integrations.models import DirectusConnection, Secret

pytestmark = pytest.mark.django_db


def test_a_cached_schema_keeps_the_field_order_directus_gave():
    # jsonb would hand these back sorted by key length: id, status, author_name.
    fields = {
        "status": {"type": "string"},
        "id": {"type": "integer"},
        "author_name": {"type": "string"},
    }
    connection = DirectusConnection.objects.create(
        name="cms",
        base_url="https://cms.example.com",
        token=Secret.seal("token-123456789"),
        schema={"collections": {"articles": {"fields": fields}}},
    )
    DirectusConnection.objects.filter(pk=connection.pk).update(
        schema={"collections": {"leads": {"fields": fields}}}
    )
    stored = DirectusConnection.objects.get(pk=connection.pk).schema
    assert list(stored["collections"]["leads"]["fields"]) == ["status", "id", "author_name"]


def test_no_schema_is_none():
    connection = DirectusConnection.objects.create(
        name="cms", base_url="https://cms.example.com", token=Secret.seal("token-123456789")
    )
    assert DirectusConnection.objects.get(pk=connection.pk).schema is None
