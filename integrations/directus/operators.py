"""Directus filter operators: their labels, the groups they fall in, and which a field type takes.

Operators per field type mirror Directus 12.4 exactly (`getFilterOperatorsForType` in
@directus/utils 13.5.5, used by both Studio's filter menu and the API's validation); see
`operators_for_type`. Functions per type (`year(published_at)`) follow `getFunctionsForType`.
"""

# Labels as Studio shows them (app/src/lang/translations/en-US.yaml `operators:`). Studio has no
# label for _nicontains, _some and _none; those three are ours, in the same style.
OPERATOR_LABELS: dict[str, str] = {
    "_eq": "Equals",
    "_neq": "Doesn't equal",
    "_lt": "Less than",
    "_lte": "Less than or equal to",
    "_gt": "Greater than",
    "_gte": "Greater than or equal to",
    "_in": "Is one of",
    "_nin": "Is not one of",
    "_null": "Is null",
    "_nnull": "Isn't null",
    "_contains": "Contains",
    "_ncontains": "Doesn't contain",
    "_icontains": "Contains (insensitive)",
    "_nicontains": "Doesn't contain (insensitive)",
    "_starts_with": "Starts with",
    "_nstarts_with": "Doesn't start with",
    "_istarts_with": "Starts with (insensitive)",
    "_nistarts_with": "Doesn't start with (insensitive)",
    "_ends_with": "Ends with",
    "_nends_with": "Doesn't end with",
    "_iends_with": "Ends with (insensitive)",
    "_niends_with": "Doesn't end with (insensitive)",
    "_between": "Is between",
    "_nbetween": "Isn't between",
    "_empty": "Is empty",
    "_nempty": "Isn't empty",
    "_intersects": "Intersects",
    "_nintersects": "Doesn't intersect",
    "_intersects_bbox": "Intersects bounding box",
    "_nintersects_bbox": "Doesn't intersect bounding box",
    "_regex": "Matches RegExp",
    "_some": "Some related items match",
    "_none": "No related items match",
    "_json": "JSON",
}
FUNCTION_LABELS: dict[str, str] = {
    "year": "Year",
    "month": "Month",
    "week": "Week",
    "day": "Day",
    "weekday": "Weekday",
    "hour": "Hour",
    "minute": "Minute",
    "second": "Second",
    "count": "Count",
}
LOGIC = ("_and", "_or")
RELATION_OPS = ("_some", "_none")
VALUELESS_OPS = frozenset({"_null", "_nnull", "_empty", "_nempty"})
LIST_OPS = frozenset({"_in", "_nin", "_between", "_nbetween"})
PAIR_OPS = frozenset({"_between", "_nbetween"})
GEOMETRY_OPS = frozenset({"_intersects", "_nintersects", "_intersects_bbox", "_nintersects_bbox"})
PATTERN_OPS = frozenset(
    op for op in OPERATOR_LABELS if op.endswith(("contains", "starts_with", "ends_with"))
)

_STRING_OPS = (
    *("_contains", "_ncontains", "_icontains"),
    *("_starts_with", "_nstarts_with", "_istarts_with", "_nistarts_with"),
    *("_ends_with", "_nends_with", "_iends_with", "_niends_with"),
    *("_eq", "_neq", "_empty", "_nempty", "_null", "_nnull", "_in", "_nin"),
)
_RANGE_OPS = (
    *("_eq", "_neq", "_lt", "_lte", "_gt", "_gte", "_between", "_nbetween"),
    *("_null", "_nnull", "_in", "_nin"),
)
_DEFAULT_OPS = (
    *("_contains", "_ncontains", "_eq", "_neq", "_lt", "_lte", "_gt", "_gte", "_between"),
    *("_nbetween", "_empty", "_nempty", "_null", "_nnull", "_in", "_nin"),
)
_OPS_BY_TYPE = {
    **dict.fromkeys(("binary", "string", "text", "csv"), _STRING_OPS),
    "hash": ("_empty", "_nempty", "_null", "_nnull"),
    "uuid": ("_eq", "_neq", "_null", "_nnull", "_in", "_nin"),
    "json": ("_null", "_nnull", "_json"),
    "boolean": ("_eq", "_neq", "_null", "_nnull"),
    **dict.fromkeys(("bigInteger", "integer", "decimal", "float"), _RANGE_OPS),
    **dict.fromkeys(("dateTime", "date", "time"), _RANGE_OPS),
    "geometry": (
        *("_eq", "_neq", "_null", "_nnull"),
        *("_intersects", "_nintersects", "_intersects_bbox", "_nintersects_bbox"),
    ),
}
# getFunctionsForType (the `json` function is selection-only, so it is left out here).
FUNCTIONS_BY_TYPE = {
    **dict.fromkeys(("dateTime", "timestamp"), tuple(FUNCTION_LABELS)[:8]),
    "date": ("year", "month", "week", "day", "weekday"),
    "time": ("hour", "minute", "second"),
    "json": ("count",),
    "alias": ("count",),
}


def operators_for_type(field_type: str) -> list[str]:
    """The filter operators Directus offers (Studio) and accepts (API) for a field type, in order.

    This is Directus's own table, quirks included: `timestamp`, `alias` and the typed geometry
    types (`geometry.Point`, ...) are not in its switch, so they get the default list
    (`_contains ... _nin`, no `_intersects`). Use `operators_for_field` for a field in a schema:
    it follows Studio in using the key type for relational alias fields.
    """
    return list(_OPS_BY_TYPE.get(field_type, _DEFAULT_OPS))
