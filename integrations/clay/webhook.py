"""Clay webhooks: POST one JSON row to a table's webhook URL, classify what came back."""

import hashlib
import json
import re
import time
from dataclasses import dataclass

from django.utils import timezone

from integrations.outbound import http

AUTH_HEADER = "x-clay-webhook-auth"
# Lets Clay (or anything between) drop a row it already has: the same row with the same
# content always carries the same key.
IDEMPOTENCY_HEADER = "Idempotency-Key"

# What a webhook's answer can say about the webhook itself (not the row): sending stops.
HALT_AUTH = "auth_rejected"
HALT_NOT_FOUND = "not_found"
HALT_FULL = "full"
# Clay does not document its answer at the lifetime cap: one that names a limit is taken as it.
_CAP_WORDS = re.compile(
    r"(limit|quota|cap)[\s_-]*(reached|exceeded|hit)|webhook[\s_-]*(limit|full|cap)"
    r"|(submission|record|row)s?[\s_-]*(limit|cap|quota)"
    r"|maximum (number of )?(records|rows|submissions)",
    re.IGNORECASE,
)
HALT_CODES = {
    HALT_AUTH: "WEBHOOK_TOKEN_REJECTED",
    HALT_NOT_FOUND: "WEBHOOK_NOT_FOUND",
    HALT_FULL: "WEBHOOK_FULL",
}
HALT_SENTENCES = {
    HALT_AUTH: "Webhook token rejected: Clay refused the x-clay-webhook-auth token, so sending "
    "to this destination stopped. Fix the token on the destination page and test it.",
    HALT_NOT_FOUND: "Webhook not found: Clay does not know this webhook URL (the table or its "
    "webhook source was deleted), so sending to this destination stopped. Fix the URL on the "
    "destination page and test it.",
    HALT_FULL: "This webhook is full: Clay refused more rows at its lifetime limit. Create a new "
    "webhook on the same Clay table and add it to this destination's pool.",
}


@dataclass
class Delivery:
    """What happened to one POST: enough for a row result, never the URL or token."""

    ok: bool
    status: int | None
    code: str  # "" when ok; HTTP_<status>, NETWORK_<kind> otherwise
    message: str
    transient: bool
    retry_after: float | None
    elapsed_ms: int
    response_excerpt: str = ""
    # HALT_*: the answer is about the webhook (token, URL, cap), not this row: stop sending.
    halt: str = ""
    # No answer, but the request had gone out whole: Clay may have stored it.
    maybe_delivered: bool = False


def idempotency_key(kiln_row_id: str, payload_hash: str) -> str:
    """The same row with the same content gets the same key, on every try and every run."""
    return hashlib.sha256(f"{kiln_row_id}:{payload_hash}".encode()).hexdigest()[:40]


def names_the_cap(text: str) -> bool:
    return bool(text and _CAP_WORDS.search(text))


def halt_for(status: int | None, body: str = "") -> str:
    """HALT_* when this answer says the webhook cannot take rows at all, else ""."""
    if status is None or status in (413, 429) or status >= 500:
        return ""
    if status in (401, 403, 402, 400, 409, 422) and names_the_cap(body):
        return HALT_FULL
    if status in (401, 403):
        return HALT_AUTH
    if status in (404, 410):
        return HALT_NOT_FOUND
    return ""


def headers_for(auth_token: str | None) -> dict:
    headers = {"Content-Type": "application/json"}
    if auth_token:
        http.register_secret(auth_token)
        headers[AUTH_HEADER] = auth_token
    return headers


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


def explain_status(status: int) -> tuple[str, bool]:
    """A sentence for a person, and whether trying again can help."""
    if status == 401 or status == 403:
        return (
            "Clay refused the webhook auth token (x-clay-webhook-auth): check the destination's token.",
            False,
        )
    if status == 404:
        return (
            "Clay does not know this webhook URL: the table or its webhook source was deleted.",
            False,
        )
    if status == 413:
        return "Clay refused the row as too large.", False
    if status == 429:
        return "Clay is rate limiting this webhook; waiting before sending more.", True
    if status in (500, 502, 503, 504):
        return f"Clay answered {status}: a temporary server problem.", True
    if 400 <= status < 500:
        return f"Clay refused the row with {status}; it will not be retried.", False
    return f"Unexpected answer {status} from Clay.", status >= 500


def deliver(client, url: str, payload_json: bytes | str, headers: dict) -> Delivery:
    """One POST through the outbound path; never raises for transport or HTTP failures."""
    return _delivery(lambda: http.send(client, "POST", url, content=payload_json, headers=headers))


def deliver_prepared(
    post: "http.WebhookPost", payload_json: bytes | str, idempotency: str = ""
) -> Delivery:
    """deliver() for many rows to one webhook (the sync engine): URL and headers merged once."""
    headers = {IDEMPOTENCY_HEADER: idempotency} if idempotency else None
    return _delivery(lambda: post.send(payload_json, headers))


def _delivery(send) -> Delivery:
    started = time.perf_counter()
    try:
        response = send()
    except http.OutboundError as exc:
        return Delivery(
            ok=False,
            status=None,
            code=f"NETWORK_{exc.kind.upper()}",
            message=str(exc),
            transient=exc.transient,
            retry_after=None,
            elapsed_ms=int((time.perf_counter() - started) * 1000),
            maybe_delivered=getattr(exc, "after_send", False),
        )
    elapsed = int((time.perf_counter() - started) * 1000)
    excerpt = http.redacted_excerpt(response.text, 500) if response.content else ""
    if 200 <= response.status_code < 300:
        return Delivery(True, response.status_code, "", "", False, None, elapsed, excerpt)
    message, transient = explain_status(response.status_code)
    halt = halt_for(response.status_code, response.text if response.content else "")
    if halt:
        message, transient = HALT_SENTENCES[halt], False
    return Delivery(
        ok=False,
        status=response.status_code,
        code=f"HTTP_{response.status_code}",
        message=message,
        transient=transient,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        elapsed_ms=elapsed,
        response_excerpt=excerpt,
        halt=halt,
    )


def send_test_record(destination, sent_by: str = "") -> dict:
    """POST one clearly marked test row to a webhook (a destination's own or one of its pool);
    count it if Clay accepted it, and note what the answer says about the webhook: accepted
    clears "token rejected"/"not found", a refusal marks it."""
    url = destination.webhook_url.reveal()
    token = destination.auth_token.reveal() if destination.auth_token_id else None
    payload = {
        "kiln_test": True,
        "message": "Test record from Kiln: safe to delete.",
        "sent_by": sent_by,
        "sent_at": timezone.now().isoformat(),
    }
    with http.make_client(timeout=15) as client:
        delivery = deliver(client, url, json.dumps(payload), headers_for(token))
    if delivery.ok:
        destination.add_submissions(1)
        destination.clear_state()  # the token and URL work again: runs may send
        summary = (
            f"Clay accepted the test record (HTTP {delivery.status}) in {delivery.elapsed_ms} ms."
        )
    else:
        summary = delivery.message
        if delivery.halt:
            destination.mark(
                {HALT_AUTH: "auth_rejected", HALT_NOT_FOUND: "not_found", HALT_FULL: "full"}[
                    delivery.halt
                ],
                delivery.message,
            )
    return {
        "name": "Send test record",
        "ok": delivery.ok,
        "summary": summary,
        "detail": f"HTTP {delivery.status}" if delivery.status else delivery.code,
        "elapsed_ms": delivery.elapsed_ms,
    }
