"""Clay column → Directus field, with casts: one mapping for CSV lines and inbound rows (pure).

A mapping is a list of entries. Two stored forms are read, the CSV upload's field mapper rows
and an inbound route's rows, and mean the same thing:

    {"field": "score", "source_kind": "column", "source": "Score", "casts": ["integer"]}
    {"column": "Score", "field": "score", "cast": "integer"}     ("trim | lower" for several)

apply() turns one row into the item to write: each mapped column's value, cast, under its field.
A column the mapping does not name is ignored; an empty cell ("") leaves its field alone, as in
a Clay export an empty cell means "nothing found", not "erase". Guessing matches a column to a
field when their names are equal after folding case, spaces and punctuation: "Full Name" →
full_name, "E-mail" → email, "Company ID" → company_id (not company).
"""

import json
from dataclasses import dataclass

from integrations.mapping.casts import CASTS, CastError, cast_names, jsonable

# A field of these Directus types gets this cast when a column is mapped to it: Clay sends text.
FIELD_CASTS = {
    "integer": "integer",
    "bigInteger": "integer",
    "float": "number",
    "decimal": "number",
    "boolean": "boolean",
    "json": "json",
    "date": "date",
    "dateTime": "datetime",
    "timestamp": "datetime",
}
# What a cast expects, for the sentence when a value does not cast: "is not {kind}".
CAST_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true/false",
    "date": "a date",
    "datetime": "a date and time",
    "json": "JSON",
}


class MappingError(ValueError):
    """A row the mapping cannot turn into an item; `problems` are sentences for a person."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Entry:
    column: str
    field: str
    casts: tuple[str, ...] = ()

    def stored(self) -> dict:
        """The inbound route's stored form."""
        return {"column": self.column, "field": self.field, "cast": " | ".join(self.casts)}


def entries(mapping) -> list[Entry]:
    """Either stored form → entries; rows that are not column rows (static values) are skipped."""
    found = []
    for item in mapping or []:
        if not isinstance(item, dict) or item.get("source_kind", "column") != "column":
            continue
        column = item.get("column", item.get("source"))
        casts = item.get("casts", item.get("cast"))
        if isinstance(column, str) and isinstance(item.get("field"), str) and item["field"]:
            found.append(Entry(column, item["field"], cast_names(casts)))
    return found


def fold(name: str) -> str:
    """Lower case, letters and digits only: "Full Name", "full_name", "FULL-NAME" -> "fullname"."""
    return "".join(ch for ch in str(name).casefold() if ch.isalnum())


def cast_for(field_info: dict | None) -> tuple[str, ...]:
    cast = FIELD_CASTS.get((field_info or {}).get("type"))
    return (cast,) if cast else ()


def guess(columns, fields: dict) -> list[Entry]:
    """Columns whose folded name equals one field's, with the cast the field's type needs.

    A field two columns fold to goes to the first; a folded name two fields share ("fullname"
    and "full_name") maps to neither, rather than to a guess.
    """
    by_fold: dict[str, list[str]] = {}
    for name in fields:
        by_fold.setdefault(fold(name), []).append(name)
    taken, found = set(), []
    for column in columns:
        names = by_fold.get(fold(column)) or []
        if len(names) != 1 or names[0] in taken:
            continue
        taken.add(names[0])
        found.append(Entry(column, names[0], cast_for(fields[names[0]])))
    return found


def apply(mapping: list[Entry], values: dict) -> tuple[dict, list[str]]:
    """(the item to write, sentences for the values that did not cast) for one row.

    apply([Entry("Score", "score", ("integer",))], {"Score": "n/a"}) ->
    ({}, ['Column "Score": "n/a" is not a number — the field "score" takes a whole number
    (cast: integer).'])
    """
    data, problems = {}, []
    for entry in mapping:
        if entry.column not in values:
            continue
        value = values[entry.column]
        if value == "":
            continue
        for cast in entry.casts:
            try:
                value = CASTS[cast](value)
            except CastError as exc:
                problems.append(cast_sentence(entry, cast, exc))
                break
            except KeyError:
                problems.append(f'Column "{entry.column}": there is no cast "{cast}".')
                break
        else:
            try:
                data[entry.field] = jsonable(value)
            except CastError as exc:
                problems.append(f'Column "{entry.column}": {exc}.')
    return data, problems


def cast_sentence(entry: Entry, cast: str, exc: Exception) -> str:
    word = CAST_WORDS.get(cast, f"what the {cast} cast takes")
    return (
        f'Column "{entry.column}": {exc} — the field "{entry.field}" takes {word} (cast: {cast}).'
    )


def key_text(value, fold_case: bool = False) -> str:
    """Match values compare as text, as the writer compares them: 42 and "42" are one value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text.casefold() if fold_case else text
