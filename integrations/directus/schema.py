"""Kiln's schema dict, built from Directus's raw /collections, /fields and /relations answers.

The dict is what the query builder and the mapper validate against, so its shape is fixed:

    {"collections": {"articles": {"primary_key": "id", "system": False, "singleton": False,
        "note": "", "fields": {"author": {"type": "integer", "required": False,
        "nullable": True, "readonly": False, "relation": {"kind": "m2o", "collection": "authors"},
        "interface": "select-dropdown-m2o", "special": ["m2o"], "choices": None,
        "default": None}, ...}}, ...},
     "fetched_with_system": False}
"""

# Fields Directus fills in itself on create, so a NOT NULL column with one of these is not
# something a caller has to send.
_SERVER_FILLED = {"uuid", "date-created", "date-updated", "user-created", "user-updated"}


def build_schema(collections_json, fields_json, relations_json, include_system=False) -> dict:
    """Pure: the three raw answers (with or without their {"data": ...} envelope) -> schema."""
    collections = {}
    for row in _rows(collections_json):
        name = row.get("collection")
        meta = row.get("meta") or {}
        system = _is_system(name, meta)
        if not name or (system and not include_system):
            continue
        # A "folder" collection only groups others in the app: it has no table and no items.
        if row.get("schema") is None:
            continue
        note = meta.get("note") or ""
        collections[name] = {
            "primary_key": None,
            "system": system,
            "singleton": bool(meta.get("singleton")),
            # System notes are translation keys ("$t:directus_collection.directus_users").
            "note": "" if note.startswith("$t:") else note,
            "fields": {},
        }

    for row in _rows(fields_json):
        collection = collections.get(row.get("collection"))
        if collection is None or not row.get("field"):
            continue
        field = _field(row)
        if field is None:
            continue
        collection["fields"][row["field"]] = field
        if (row.get("schema") or {}).get("is_primary_key"):
            collection["primary_key"] = row["field"]

    for row in _rows(relations_json):
        _apply_relation(collections, row)

    return {"collections": collections, "fetched_with_system": bool(include_system)}


def fetch_schema(client, include_system=False) -> dict:
    """Read the three answers through a DirectusClient; DirectusError propagates as is."""
    return build_schema(
        client.collections(), client.fields(), client.relations(), include_system=include_system
    )


def _rows(answer) -> list:
    if isinstance(answer, dict):
        answer = answer.get("data")
    return [row for row in answer or [] if isinstance(row, dict)]


def _is_system(name, meta) -> bool:
    return bool(meta.get("system")) or str(name or "").startswith("directus_")


def _field(row) -> dict | None:
    meta = row.get("meta") or {}
    schema = row.get("schema") or {}
    special = _special(meta.get("special"))
    # Presentation-only fields (dividers, notices, groups) hold no data and cannot be queried.
    if row.get("type") == "alias" and ("no-data" in special or "group" in special):
        return None
    is_column = bool(row.get("schema"))
    nullable = bool(schema.get("is_nullable", True)) if is_column else True
    default = schema.get("default_value") if is_column else None
    return {
        "type": row.get("type") or "unknown",
        "required": _required(meta, schema, special, is_column),
        "nullable": nullable,
        "readonly": bool(meta.get("readonly")),
        "relation": None,
        "interface": meta.get("interface"),
        "special": special,
        "choices": _choices(meta.get("options")),
        "default": default,
    }


def _required(meta, schema, special, is_column) -> bool:
    """Whether a create must carry this field.

    Directus sets meta.required only for "required" ticked in the app, but it also refuses a
    NOT NULL column without a default with FAILED_VALIDATION "Value is required" (seen on
    12.4: articles.title has meta.required false and is_nullable false). Both count.
    """
    if meta.get("required"):
        return True
    if not is_column or schema.get("is_nullable", True):
        return False
    if schema.get("default_value") is not None:
        return False
    if schema.get("has_auto_increment") or schema.get("is_generated"):
        return False
    return not (_SERVER_FILLED & set(special))


def _special(value) -> list:
    # Directus 9 stored special as a CSV string; 10+ answers a list (or null).
    if not value:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def _choices(options) -> list | None:
    """Choice values from meta.options.choices: [{"text": "Draft", "value": "draft"}] -> ["draft"]."""
    if not isinstance(options, dict) or not isinstance(options.get("choices"), list):
        return None
    values = []
    for choice in options["choices"]:
        values.append(choice.get("value") if isinstance(choice, dict) else choice)
    return values


def _apply_relation(collections, row) -> None:
    meta = row.get("meta") or {}
    many_collection = meta.get("many_collection") or row.get("collection")
    many_field = meta.get("many_field") or row.get("field")
    one_collection = meta.get("one_collection") or row.get("related_collection")

    # The many side: a foreign-key column pointing at one item. An M2A ("builder") column has
    # no single related collection, so it gets no relation here.
    many = _field_of(collections, many_collection, many_field)
    if many is not None and one_collection:
        many["relation"] = {"kind": "m2o", "collection": one_collection}

    # The one side: an alias listing the items that point back. Through a junction
    # (articles.categories -> articles_categories.articles_id, junction_field categories_id)
    # this is the first hop of an M2M.
    one = _field_of(collections, one_collection, meta.get("one_field"))
    if one is not None and many_collection:
        one["relation"] = {
            "kind": "o2m",
            "collection": many_collection,
            "field": many_field,
            "junction_field": meta.get("junction_field") or None,
        }


def _field_of(collections, collection, field):
    if not collection or not field:
        return None
    return collections.get(collection, {}).get("fields", {}).get(field)
