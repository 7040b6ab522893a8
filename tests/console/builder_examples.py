"""The query builder's worked example, shared by the builder and page tests."""

import json
from pathlib import Path

from integrations.directus.schema import build_schema

FIXTURES = Path(__file__).resolve().parents[1] / "integrations" / "fixtures" / "directus"
SCHEMA = build_schema(
    *(
        json.loads((FIXTURES / name).read_text())
        for name in ("collections.json", "fields.json", "relations.json")
    )
)
EXAMPLE_QS = (
    "filter[status][_eq]=published&filter[_or][0][views][_gt]=1000"
    "&filter[_or][1][author][last_name][_contains]=Kn"
    "&fields=id,title,author.first_name&sort=-views&limit=10"
)


def example_form(connection, **extra):
    """The worked example as the builder form posts it, built by clicking."""
    data = {
        "connection": str(connection.pk),
        "collection": "articles",
        "was_collection": "articles",
        "f-logic": "_and",
        "f.0-field": "status", "f.0-op": "_eq", "f.0-value": "published", "f.0-was": "status",
        "f.1-logic": "_or",
        "f.1.0-field": "views", "f.1.0-op": "_gt", "f.1.0-value": "1000", "f.1.0-was": "views",
        "f.1.1-field": "author.last_name", "f.1.1-op": "_contains", "f.1.1-value": "Kn",
        "f.1.1-was": "author.last_name",
        "fields": "id,title,author.first_name",
        "s.0-field": "views", "s.0-dir": "desc",
        "limit": "10",
    }  # fmt: skip
    data.update(extra)
    return data
