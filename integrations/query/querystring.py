"""The query-string form of a query: bracket rows like `filter[author][name][_eq]=Ada` (pure).

Rows are what Clay's query-parameter table and Directus URLs hold. Writing flattens a JSON-like
tree into rows; reading nests rows back into a tree the way the `qs` parser Directus uses
does (`[0]`, `[1]` make lists). The Query model (filters.py) uses these both ways.

Encoding. `encode` percent-encodes like a browser address bar: space is `%20`, `+`, `&`,
`=`, `#`, `%`, quotes and braces are encoded, and `[ ] , . ( ) * $ : / @` stay readable (Directus
parses them literally), so the string reads like the Directus docs.
"""

import json
import re
from urllib.parse import quote

from integrations import jsontext
from integrations.directus.operators import GEOMETRY_OPS, LIST_OPS, RELATION_OPS


class QueryParseError(ValueError):
    """A query string, row set or JSON filter that cannot be read; the message says where."""


PARAMS = ("filter", "fields", "sort", "limit", "offset", "page", "search", "meta", "deep")


def flatten(key: str, node, parent: str = "", raw: bool = False) -> list[tuple[str, str]]:
    """Bracket rows for a JSON-like tree. `raw` (deep, `_json`) writes every list indexed."""
    if isinstance(node, dict):
        if not raw and parent in GEOMETRY_OPS:
            return [(key, compact(node))]
        if not node and parent in RELATION_OPS:
            return [(key, "")]  # `_some` with no conditions: "has any related item"
        rows = []
        for name, child in node.items():
            rows += flatten(f"{key}[{name}]", child, name, raw or name == "_json")
        return rows
    if isinstance(node, list):
        if not raw and parent in GEOMETRY_OPS:
            return [(key, compact(node))]
        if not raw and parent in LIST_OPS:
            texts = [value_text(v) for v in node]
            if not any("," in t for t in texts) and not any(
                isinstance(v, dict | list) for v in node
            ):
                # An empty list has no query-string form; validate() reports it before sending.
                return [(key, ",".join(texts))]
        rows = []
        for index, child in enumerate(node):
            rows += flatten(f"{key}[{index}]", child, "", raw)
        return rows
    return [(key, value_text(node))]


def split_key(key: str) -> list[str]:
    """`filter[author][name][_eq]` -> ["filter", "author", "name", "_eq"]."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    segments, position, rest = [head], 0, bracket + rest
    for match in re.finditer(r"\[([^\[\]]*)\]", rest):
        if match.start() != position:
            break
        segments.append(match.group(1))
        position = match.end()
    if position != len(rest):
        raise QueryParseError(f"{key!r} is not a valid parameter name (check its brackets)")
    return segments


def read_tree_param(name: str, rows):
    """One `filter`/`deep` parameter: a single JSON text, or bracket rows nested like qs does."""
    if any(not segments for _, _, segments in rows):
        if len(rows) > 1:
            raise QueryParseError(f"{name} is given as JSON and also in another row")
        text = rows[0][1]
        if not text.strip():
            return None
        value = load_json(text, name)
        if name == "deep" and not isinstance(value, dict):
            raise QueryParseError("deep must be a JSON object")
        return value
    root: dict = {}
    for key, value, segments in rows:
        if len(segments) > jsontext.MAX_DEPTH:
            raise QueryParseError(
                f"{key[:80]}… is nested more than {jsontext.MAX_DEPTH} levels deep"
            )
        node = root
        for index, segment in enumerate(segments):
            if segment == "":  # `[]` appends
                segment = str(len(node))
            if index == len(segments) - 1:
                if segment in node:
                    raise QueryParseError(f"{key} is given more than once, or clashes with a row")
                node[segment] = value
                break
            node = node.setdefault(segment, {})
            if not isinstance(node, dict):
                prefix = name + "".join(f"[{s}]" for s in segments[: index + 1])
                raise QueryParseError(f"{key} clashes with the row that gives {prefix} a value")
    tree = _listify(root)
    if not isinstance(tree, dict):
        raise QueryParseError(f"{name} rows must start with a field name, not an index")
    return tree


def _listify(node):
    """Dicts keyed 0, 1, 2... become lists, as the qs parser Directus uses makes them."""
    if not isinstance(node, dict):
        return node
    node = {key: _listify(value) for key, value in node.items()}
    if node and all(key.isascii() and key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


def unsupported(name: str) -> str:
    """Why a parameter that is not in PARAMS is refused, in a sentence."""
    if name == "access_token":
        return "access_token does not belong in a saved query: Kiln sends the connection's token"
    return f"{name!r} is not a query parameter Kiln's query builder supports ({', '.join(PARAMS)})"


# ----------------------------------------------------------------------------- small helpers

_SAFE = "[](),*$:/@"  # kept readable by encode, besides letters, digits and -._~


def encode(text: str) -> str:
    """Percent-encode a key or value (see the module docstring, Encoding)."""
    return quote(text, safe=_SAFE)


def compact(value) -> str:
    """JSON without spaces, as a query-string value."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def value_text(value) -> str:
    """A value as query-string text: JSON spelling for numbers, booleans and null."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return compact(value)


def load_json(text: str, name: str):
    """json.loads, raising QueryParseError that names the parameter."""
    try:
        return jsontext.loads(text)
    except ValueError as error:
        raise QueryParseError(f"{name} is not valid JSON: {error}") from None


def int_or_text(value: str):
    """`"10"` -> 10; anything else stays text."""
    # Kept as text when not an integer, so validate() can say what is wrong with it.
    return int(value) if re.fullmatch(r"\s*[+-]?\d{1,1000}\s*", value) else value
