"""Install a Flow (event hook -> Request URL) in Directus, or update the one installed before.

Directus takes a Flow in three calls (harness/directus/observed.md, "Flows"): POST /flows,
POST /operations with {"flow": <flow id>}, then PATCH /flows/<id> with {"operation": <op id>}
to make it the first operation. A re-install PATCHes the same flow and operation, so
installing twice never leaves two Flows sending the same items. A flow that is gone answers
GET /flows/<id> with 403 FORBIDDEN (Directus never says 404 for a missing item); then a new
one is created and the result says so.

Refusals become one sentence (InstallError.explain()): 403 on create means the token may not
write directus_flows / directus_operations; a licence tier with a cap on active flows answers
an error whose message says the limit is exceeded.
"""

from dataclasses import dataclass

from integrations.directus.client import DirectusClient, DirectusError
from integrations.outbound import http


@dataclass
class InstallResult:
    flow_id: str
    operation_id: str
    created: bool  # False: the flow installed before was updated in place
    note: str = ""  # e.g. "the flow installed before no longer exists; created a new one"


class InstallError(Exception):
    """Directus refused the install; .explain() is the sentence for a person."""

    def __init__(self, error: DirectusError, step: str):
        self.error, self.step = error, step
        self.status, self.code = error.status, error.code
        super().__init__(self.explain())

    def explain(self) -> str:
        e = self.error
        text = f"{e.message} {e.reason}".lower()
        if "limit" in text or "LIMIT" in (e.code or ""):
            return (
                "Directus refused to add an active Flow: its licence caps the number of active "
                "Flows and the cap is reached. Deactivate or delete a Flow in Directus, or "
                f"install this one as inactive. (Directus said: {e.message})"
            )
        if e.status == 403:
            return (
                f"Directus answered 403 FORBIDDEN while {self.step}: this connection's token may "
                "not manage Flows. Installing needs an admin token, or a policy allowing "
                "create/update on directus_flows and directus_operations."
            )
        if e.status == 401:
            return "Directus rejected the connection's token (401): an admin can rotate it."
        return f"Directus refused the Flow while {self.step}: {e.explain()}"


def _call(client: DirectusClient, step: str, method: str, path: str, body=None, params=None):
    try:
        return client.call(method, path, body=body, params=params)
    except DirectusError as exc:
        raise InstallError(exc, step) from exc


def find_flow(client: DirectusClient, flow_id: str) -> dict | None:
    """The flow with its operations' ids, or None when Directus says it is not there (403)."""
    try:
        return client.call(
            "GET", f"/flows/{flow_id}", params={"fields": "id,name,status,operation,operations.id"}
        )
    except DirectusError as exc:
        if exc.status == 403:
            return None
        raise InstallError(exc, "reading the installed Flow") from exc


def install_flow(
    client: DirectusClient, spec: dict, flow_id: str = "", operation_id: str = ""
) -> InstallResult:
    """Create spec ({"flow", "operation"} from flows.directus_flow) or update flow_id in place."""
    note = ""
    if flow_id:
        existing = find_flow(client, flow_id)
        if existing is not None:
            return _update(client, spec, existing, operation_id)
        note = (
            f"The Flow installed before ({flow_id}) no longer exists in Directus (or this token "
            "may not see it), so a new one was created."
        )
    result = _create(client, spec)
    result.note = note
    return result


def _create(client, spec) -> InstallResult:
    flow = _call(client, "creating the Flow", "POST", "/flows", body=spec["flow"])
    new_flow_id = str(flow["id"])
    try:
        operation = _call(
            client,
            "creating the Flow's operation",
            "POST",
            "/operations",
            body={**spec["operation"], "flow": new_flow_id},
        )
        _call(
            client,
            "linking the operation to the Flow",
            "PATCH",
            f"/flows/{new_flow_id}",
            body={"operation": operation["id"]},
        )
    except InstallError:
        # Do not leave a half-built Flow behind (it would run with no operation).
        try:
            client.call("DELETE", f"/flows/{new_flow_id}")
        except DirectusError:
            pass
        raise
    return InstallResult(new_flow_id, str(operation["id"]), created=True)


def _update(client, spec, existing, operation_id) -> InstallResult:
    flow_id = str(existing["id"])
    _call(client, "updating the Flow", "PATCH", f"/flows/{flow_id}", body=spec["flow"])
    known = {str(op.get("id")) for op in existing.get("operations") or [] if isinstance(op, dict)}
    current = operation_id if operation_id in known else str(existing.get("operation") or "")
    if current:
        _call(
            client,
            "updating the Flow's operation",
            "PATCH",
            f"/operations/{current}",
            body=spec["operation"],
        )
        if str(existing.get("operation") or "") != current:
            _call(
                client,
                "linking the operation to the Flow",
                "PATCH",
                f"/flows/{flow_id}",
                body={"operation": current},
            )
        return InstallResult(flow_id, current, created=False)
    operation = _call(
        client,
        "creating the Flow's operation",
        "POST",
        "/operations",
        body={**spec["operation"], "flow": flow_id},
    )
    _call(
        client,
        "linking the operation to the Flow",
        "PATCH",
        f"/flows/{flow_id}",
        body={"operation": operation["id"]},
    )
    return InstallResult(
        flow_id,
        str(operation["id"]),
        created=False,
        note="The Flow's operation was missing; a new one was added.",
    )


def flow_admin_url(base_url: str, flow_id: str) -> str:
    """Where the Flow opens in the Directus app (without any user info of the base URL)."""
    base = http.url_without_password(base_url, mask=None)
    return f"{base.rstrip('/')}/admin/settings/flows/{flow_id}"
