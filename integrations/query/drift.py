"""Schema drift: the fields a sync's query and template use, checked against the current schema.

A field renamed or removed in Directus, or retyped so the query's operator or value no longer
fits, makes Directus answer 403 or match something else mid-run. Before every run the fields
are checked against the schema read again from Directus (three GETs; the cached one when
Directus will not give it), which also refreshes the cache; lists and the dashboard check the
cached schema only, with no call out.
"""

import re
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from integrations.directus import fieldpaths
from integrations.directus.client import DirectusError
from integrations.mapping import templates as mapping
from integrations.query import filters, querycheck

_INDEX = re.compile(r"^\d+$")


@dataclass(frozen=True)
class Drift:
    """One field a sync uses that the schema no longer has as it was: what, and where."""

    field: str
    where: str
    message: str

    def __str__(self):
        return f"{self.where}: {self.message}"


def check(sync, schema: dict | None) -> list[Drift]:
    """What no longer fits in `schema` (pure apart from reading the sync's rows); [] if unknown."""
    saved = sync.saved_query
    if saved is None or not schema:
        return []
    collection = saved.collection
    if fieldpaths.fields_of(schema, collection) is None:
        message = f'the collection "{collection}" is no longer in the schema' + (
            fieldpaths.did_you_mean(collection, (schema.get("collections") or {}).keys())
        )
        return [Drift(collection, f'saved query "{saved.name}"', message)]
    found = []
    try:
        query = saved.to_query().with_(collection=collection)
    except filters.QueryParseError:
        query = None
    if query is not None:
        for problem in querycheck.validate(query, schema):
            part = problem.path.split(".", 1)[0]
            field = _field_named(problem.message)
            where = f'the {part} of saved query "{saved.name}"'
            found.append(Drift(field, where, problem.message))
    for name, label in (("row_key", "row key"), ("label_field", "label field")):
        path = getattr(sync, name, "") or ""
        if path:
            found += _path_drift(schema, collection, path, f"the sync's {label}")
    if sync.mode == sync.Mode.INCREMENTAL and sync.timestamp_field:
        found += _path_drift(schema, collection, sync.timestamp_field, "the sync's timestamp field")
    if sync.template_id:
        try:
            parsed = mapping.parse(sync.template.body)
        except mapping.TemplateError:
            parsed = None  # _check_runnable names a broken template itself
        seen = set()
        for ph in parsed.placeholders if parsed else []:
            path = ".".join(p for p in ph.expr.split(".") if not _INDEX.match(p))
            if not path or path in seen or path.startswith("$"):
                continue
            seen.add(path)
            where = f'template "{sync.template.name}" (line {ph.line}, {{{{{ph.expr}}}}})'
            found += _path_drift(schema, collection, path, where)
    return found


def _path_drift(schema, collection, path, where) -> list[Drift]:
    try:
        fieldpaths.resolve(schema, collection, path)
    except fieldpaths.PathError as error:
        return [Drift(path, where, str(error))]
    return []


def _field_named(message: str) -> str:
    """The field a querycheck message is about: 'x: articles has no field titel' -> titel."""
    match = re.search(r"has no field (\S+)", message) or re.search(r"field (\S+)", message)
    return match.group(1) if match else ""


def current_schema(connection, max_age: timedelta = timedelta(0)) -> dict | None:
    """The connection's schema, read again when older than `max_age`; the cached one (or None)
    when Directus will not give it (a token without schema access cannot be checked)."""
    fetched = connection.schema_fetched_at
    if connection.schema and fetched and timezone.now() - fetched < max_age:
        return connection.schema
    try:
        return connection.refresh_schema()
    except DirectusError:
        return connection.schema


def refusal(sync) -> str:
    """The sentence a run is refused with, or "" when the sync's fields still fit."""
    if sync.saved_query is None:
        return ""
    found = check(sync, current_schema(sync.saved_query.connection))
    if not found:
        return ""
    named = ", ".join(sorted({f'"{d.field}"' for d in found if d.field})) or "a field"
    details = "; ".join(str(d) for d in found[:5])
    details = details[:1].upper() + details[1:]
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return (
        f"The Directus schema changed: {named} no longer fits what this sync uses. "
        f"{details}{more}. Fix the saved query or template (or Refresh schema in the query "
        "builder if Directus was changed back), then run again."
    )


def drifted(syncs, schemas: dict | None = None) -> dict:
    """{sync id: [Drift]} for syncs whose cached schema no longer fits them (no call out).

    `schemas` ({connection id: schema}) saves loading each connection's schema once per sync.
    """
    out = {}
    for sync in syncs:
        if sync.saved_query_id is None:
            continue
        if schemas is not None:
            schema = schemas.get(sync.saved_query.connection_id)
        else:
            schema = sync.saved_query.connection.schema
        found = check(sync, schema)
        if found:
            out[sync.pk] = found
    return out
