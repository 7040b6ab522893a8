"""Models by concept; import from here (`from integrations.models import Sync`)."""

from .credentials import (
    AllowedNetwork,
    AuditEvent,
    ClayDestination,
    ClayWebhook,
    DirectusConnection,
    Environment,
    Secret,
    WebhookState,
)
from .inbound import CsvUpload, InboundReceipt, InboundRoute, InboundRow, RowTrace, RowTraceEvent
from .notifications import Notification, NotificationChannel, NotificationEvent
from .queries import SavedQuery
from .syncs import RowResult, RunDailyStat, Sync, SyncRowState, SyncRun
from .templates import MappingTemplate

__all__ = [
    "AllowedNetwork",
    "AuditEvent",
    "ClayDestination",
    "ClayWebhook",
    "CsvUpload",
    "DirectusConnection",
    "Environment",
    "InboundReceipt",
    "InboundRoute",
    "InboundRow",
    "MappingTemplate",
    "Notification",
    "NotificationChannel",
    "NotificationEvent",
    "RowResult",
    "RowTrace",
    "RowTraceEvent",
    "RunDailyStat",
    "SavedQuery",
    "Secret",
    "Sync",
    "SyncRowState",
    "SyncRun",
    "WebhookState",
]
