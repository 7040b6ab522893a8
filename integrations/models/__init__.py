"""Models by concept; import from here (`from integrations.models import Sync`)."""

from .credentials import (
    AllowedNetwork,
    AuditEvent,
    ClayDestination,
    DirectusConnection,
    Environment,
    Secret,
)
from .inbound import CsvUpload, InboundReceipt, InboundRoute, InboundRow, RowTrace, RowTraceEvent
from .queries import SavedQuery
from .syncs import RowResult, RunDailyStat, Sync, SyncRowState, SyncRun
from .templates import MappingTemplate

__all__ = [
    "AllowedNetwork",
    "AuditEvent",
    "ClayDestination",
    "CsvUpload",
    "DirectusConnection",
    "Environment",
    "InboundReceipt",
    "InboundRoute",
    "InboundRow",
    "MappingTemplate",
    "RowResult",
    "RowTrace",
    "RowTraceEvent",
    "RunDailyStat",
    "SavedQuery",
    "Secret",
    "Sync",
    "SyncRowState",
    "SyncRun",
]
