"""What happened to one row: the fields every kind of run records as the row's RowResult.

The Clay sender (clay/sender.py: RowOutcome) and the Directus writer (runs/writeback.py:
WriteOutcome) each add what only they know; runs/core.py records either the same way.
"""

from dataclasses import dataclass, field


@dataclass
class Outcome:
    key: str
    status: str  # RowResult.Status value
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    attempts: int = 0
    duration_ms: int = 0
    payload_hash: str = ""
    request_excerpt: str = ""
    response_excerpt: str = ""
    resent: bool = False  # the row may have gone out before (its slice died mid-send)
    possibly_duplicated: bool = False  # sent after a try that may have reached the receiver
    attempt_log: list = field(default_factory=list)  # [{at, status, ms, error, maybe}]
