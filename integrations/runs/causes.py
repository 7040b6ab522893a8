"""Why a row ended as it did, in groups a person recognises: the run page's headline.

Pure: a row's (status, error code, possibly duplicated) → one cause, and a cause → the
filter that lists its rows. The engine counts causes as it records (SyncRun.causes), so the
headline never groups millions of results.
"""

from django.db.models import Q

FAILED, SKIPPED = "failed", "skipped"
SENT_STATUSES = ("sent", "created", "updated")

# (cause, label, tone, codes): rows with one of `codes` as error code have this cause.
CAUSES = [
    ("sent", "sent", "ok", ()),
    ("possibly_duplicated", "possibly duplicated", "warn", ()),
    ("token_rejected", "webhook token rejected", "bad", ("WEBHOOK_TOKEN_REJECTED",)),
    ("webhook_gone", "webhook not found", "bad", ("WEBHOOK_NOT_FOUND",)),
    ("webhook_full", "webhook full", "bad", ("WEBHOOK_FULL", "CAP_REACHED")),
    ("too_large", "too large for Clay", "bad", ("HTTP_413",)),
    ("rate_limited", "rate limited by Clay", "bad", ("HTTP_429", "HTTP_503")),
    ("server_error", "Clay server errors", "bad", ("HTTP_500", "HTTP_502", "HTTP_504")),
    ("refused", "refused by Clay", "bad", ()),
    ("network", "no answer (network)", "bad", ("SENDER_LOST",)),
    ("render_error", "template could not be filled", "bad", ("RENDER_ERROR",)),
    ("not_in_directus", "gone from Directus", "bad", ("NOT_FOUND",)),
    ("cancelled", "cancelled before sending", "muted", ("CANCELLED",)),
    ("unchanged", "unchanged, not sent", "muted", ("UNCHANGED", "AT_MARK")),
    ("dry_run", "dry run, not sent", "muted", ("DRY_RUN",)),
    ("other_failed", "other failures", "bad", ()),
    ("other_skipped", "other skipped", "muted", ()),
]
LABELS = {name: label for name, label, _, _ in CAUSES}
_BY_CODE = {code: name for name, _, _, codes in CAUSES for code in codes}
_KNOWN_CODES = [code for _, _, _, codes in CAUSES for code in codes]


def cause_of(status: str, error_code: str = "", possibly_duplicated: bool = False) -> str:
    if status in SENT_STATUSES:
        return "possibly_duplicated" if possibly_duplicated else "sent"
    code = error_code or ""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code.startswith("NETWORK_"):
        return "network"
    if code.startswith("HTTP_4") and status == FAILED:
        return "refused"
    if code.startswith("HTTP_5") and status == FAILED:
        return "server_error"
    return "other_failed" if status == FAILED else "other_skipped"


def count(outcomes) -> dict:
    """{cause: rows} of outcomes (objects with status, error_code, possibly_duplicated)."""
    counts: dict = {}
    for o in outcomes:
        name = cause_of(o.status, o.error_code, getattr(o, "possibly_duplicated", False))
        counts[name] = counts.get(name, 0) + 1
    return counts


def merged(a: dict, b: dict) -> dict:
    out = dict(a or {})
    for name, n in b.items():
        out[name] = out.get(name, 0) + n
    return out


def condition(cause: str) -> Q | None:
    """The filter listing a cause's rows; None for an unknown cause."""
    if cause == "sent":
        return Q(status__in=SENT_STATUSES, possibly_duplicated=False)
    if cause == "possibly_duplicated":
        return Q(status__in=SENT_STATUSES, possibly_duplicated=True)
    if cause == "network":
        return Q(status=FAILED) & (
            Q(error_code__startswith="NETWORK_") | Q(error_code="SENDER_LOST")
        ) | Q(status=SKIPPED, error_code__startswith="NETWORK_")
    if cause == "refused":
        return Q(status=FAILED, error_code__startswith="HTTP_4") & ~Q(error_code__in=_KNOWN_CODES)
    if cause == "server_error":
        return Q(status=FAILED, error_code__startswith="HTTP_5") & ~Q(error_code__in=_KNOWN_CODES)
    if cause in ("other_failed", "other_skipped"):
        status = FAILED if cause == "other_failed" else SKIPPED
        known = Q(error_code__in=_KNOWN_CODES) | Q(error_code__startswith="NETWORK_")
        if status == FAILED:
            known |= Q(error_code__startswith="HTTP_4") | Q(error_code__startswith="HTTP_5")
        return Q(status=status) & ~known
    for name, _, _, codes in CAUSES:
        if name == cause and codes:
            return Q(status__in=(FAILED, SKIPPED), error_code__in=codes)
    return None


def headline(causes: dict) -> list[dict]:
    """The run page's groups, in a fixed order, only those with rows."""
    return [
        {"cause": name, "label": label, "tone": tone, "count": causes[name]}
        for name, label, tone, _ in CAUSES
        if causes.get(name)
    ]
