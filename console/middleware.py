"""Requests Kiln cannot serve, answered with a page that says why instead of a 500.

- A NUL character (%00) in the address or a form field: PostgreSQL refuses it in any text, so
  a lookup or a save with it would fail; 400 naming where it was. (Form fields of Django forms
  refuse it too; this covers values views read directly, and every path and query string.)
  The public inbound endpoint is left alone: it reads its own body (views/inbound.py).
- The secret keys missing or wrong (KILN_ENCRYPTION_KEYS): any page that needs a secret
  answers 503 naming the variable (never a key), so an operator knows what to fix.
"""

import logging

from django.shortcuts import render

from integrations import crypto

logger = logging.getLogger(__name__)


def problem(request, status: int, title: str, message: str):
    return render(
        request,
        "console/problem.html",
        {"title": title, "message": message},
        status=status,
    )


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        where = _nul_in_address(request)
        if (
            where is None
            and request.method == "POST"
            and not getattr(view_func, "csrf_exempt", False)
        ):
            where = _nul_in_form(request)
        if where is None:
            return None
        return problem(
            request,
            400,
            "Not a valid request",
            f"{where} holds a NUL character (%00 or \\u0000), which Kiln cannot store or "
            "look up. Remove it and try again.",
        )


def _nul_in_address(request):
    if "\x00" in request.path:
        return "The address"
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return f"The query parameter “{key.replace(chr(0), '')[:60]}”"
    return None


def _nul_in_form(request):
    for key, values in request.POST.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return f"The form field “{key.replace(chr(0), '')[:60]}”"
    return None


class KeyProblemMiddleware:
    """A missing or wrong KILN_ENCRYPTION_KEYS: a 503 page that names it, never a key."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, crypto.KeyConfigError):
            logger.error("Secrets unavailable: %s", exception)
            return problem(
                request,
                503,
                "Secrets are unavailable",
                f"Kiln cannot use its stored secrets: {exception} Set KILN_ENCRYPTION_KEYS "
                "in the environment (the .env file in production) and restart Kiln.",
            )
        if isinstance(exception, crypto.DecryptionError):
            logger.error("Secret cannot be decrypted: %s", exception)
            return problem(request, 503, "A secret cannot be decrypted", str(exception))
        return None
