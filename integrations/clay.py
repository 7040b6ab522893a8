"""Clay webhooks: POST one JSON row to a table's webhook URL, classify what came back."""

import json
import time
from dataclasses import dataclass

from django.utils import timezone

from integrations import http

AUTH_HEADER = "x-clay-webhook-auth"


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


def deliver_prepared(post: "http.WebhookPost", payload_json: bytes | str) -> Delivery:
    """deliver() for many rows to one webhook (the sync engine): URL and headers merged once."""
    return _delivery(lambda: post.send(payload_json))


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
        )
    elapsed = int((time.perf_counter() - started) * 1000)
    excerpt = http.redacted_excerpt(response.text, 500) if response.content else ""
    if 200 <= response.status_code < 300:
        return Delivery(True, response.status_code, "", "", False, None, elapsed, excerpt)
    message, transient = explain_status(response.status_code)
    return Delivery(
        ok=False,
        status=response.status_code,
        code=f"HTTP_{response.status_code}",
        message=message,
        transient=transient,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        elapsed_ms=elapsed,
        response_excerpt=excerpt,
    )


def send_test_record(destination, sent_by: str = "") -> dict:
    """POST one clearly marked test row to a destination; count it if Clay accepted it."""
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
        summary = (
            f"Clay accepted the test record (HTTP {delivery.status}) in {delivery.elapsed_ms} ms."
        )
    else:
        summary = delivery.message
    return {
        "name": "Send test record",
        "ok": delivery.ok,
        "summary": summary,
        "detail": f"HTTP {delivery.status}" if delivery.status else delivery.code,
        "elapsed_ms": delivery.elapsed_ms,
    }
