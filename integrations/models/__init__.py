"""Models by concept; import from here (`from integrations.models import Sync`)."""

from .credentials import (
    AllowedNetwork,
    AuditEvent,
    ClayDestination,
    DirectusConnection,
    Environment,
    Secret,
)
from .queries import SavedQuery
from .syncs import RowResult, RunDailyStat, Sync, SyncRowState, SyncRun
from .templates import MappingTemplate

__all__ = [
    "AllowedNetwork",
    "AuditEvent",
    "ClayDestination",
    "DirectusConnection",
    "Environment",
    "MappingTemplate",
    "RowResult",
    "RunDailyStat",
    "SavedQuery",
    "Secret",
    "Sync",
    "SyncRowState",
    "SyncRun",
]
