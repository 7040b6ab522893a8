"""API errors as JSON with a stable code and the sentence the console shows.

Every error answers `{"error": {"code": "...", "message": "...", "fields": {...}}}`;
`fields` only for invalid input (400), naming each parameter and what is wrong with it.
"""

from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.views import exception_handler


class Refused(exceptions.APIException):
    """The domain said no (already running, nothing to retry…): 409 with its own sentence."""

    status_code = 409
    default_code = "refused"
    default_detail = "Kiln refused this action."


class Unavailable(exceptions.APIException):
    """An outside system did not answer as needed (Directus refused a count): 502."""

    status_code = 502
    default_code = "upstream_error"
    default_detail = "Directus did not answer as expected."


def _flatten(detail, prefix="") -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "non_field_errors": [str(item) for item in detail]}
        out = {}
        for i, item in enumerate(detail):
            out.update(_flatten(item, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def handle(exc, context):
    """DRF's handler, with every error body reshaped to {"error": {code, message[, fields]}}."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        message = "; ".join(
            f"{name}: {' '.join(problems)}" if name != "non_field_errors" else " ".join(problems)
            for name, problems in fields.items()
        )
        body = {"code": "invalid", "message": message or "Invalid input.", "fields": fields}
    else:
        detail = getattr(exc, "detail", None)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", None) or "error"
        body = {"code": str(code), "message": str(detail) if detail else str(exc)}
    response.data = {"error": body}
    request = context.get("request")
    if request is not None:
        # Errors are JSON whatever the caller asked for (a CSV export's 401 included).
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
    return response
