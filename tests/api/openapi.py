"""The API's OpenAPI document, and a check of any API response against it."""

import functools
import re

from django.urls import resolve
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec


@functools.cache
def document() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    doc = SchemaGenerator().get_schema(request=None, public=True)
    validate_spec(doc)
    return doc


def _deref(node, doc, seen=()):
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            assert name not in seen, f"recursive schema {name}"
            return _deref(doc["components"]["schemas"][name], doc, (*seen, name))
        if len(node.get("allOf") or ()) == 1:
            # drf-spectacular writes a nullable reference as {allOf: [$ref], nullable: true}.
            rest = {k: v for k, v in node.items() if k != "allOf"}
            return {**_deref(node["allOf"][0], doc, seen), **_deref(rest, doc, seen)}
        return {k: _deref(v, doc, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v, doc, seen) for v in node]
    return node


def template_of(path: str) -> str:
    """/api/v1/runs/5/results/ → /api/v1/runs/{id}/results/ (the document's path)."""
    route = resolve(path).route
    return "/" + re.sub(
        r"<(?:\w+:)?(\w+)>", lambda m: "{id}" if m[1] == "pk" else "{" + m[1] + "}", route
    )


def operation(method: str, path: str) -> dict:
    doc = document()
    return doc["paths"][template_of(path)][method.lower()]


def check(response):
    """Assert the response's status, content type and body are what the document says."""
    request = response.request
    method, path = request["REQUEST_METHOD"], request["PATH_INFO"]
    op = operation(method, path)
    code = str(response.status_code)
    assert code in op["responses"], f"{method} {path} answered {code}, not in the document"
    content = op["responses"][code].get("content") or {}
    media = response.get("Content-Type", "").split(";")[0]
    assert media in content, f"{method} {path} {code}: {media} not documented ({list(content)})"
    if media == "application/json":
        schema = _deref(content[media]["schema"], document())
        OAS30Validator(schema).validate(response.json())
    return response
