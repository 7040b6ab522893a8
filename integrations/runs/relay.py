"""Relay: a Directus Flow event → Kiln relay route → (the full item) → Clay row → Clay webhook.

A Flow's own Request URL operation sends once and forgets; the relay stores each event first
(inbound.accept) and delivers it with the engine's Sender: the destination's shared rate
limit, 429/503 honoured with Retry-After, timeouts and 5xx retried. An event that still
fails for a reason that may pass is tried again later with growing delays; one that keeps
failing, or fails for good (4xx), is kept as a failed inbound row and can be replayed.

Events (observed.md, flows.py): items.create {"key": 505, "payload": {as sent}},
items.update {"keys": ["505"] (strings from the URL, numbers from a batch), "payload":
{changed fields only}}, items.delete {"keys": [...], "payload": [keys]}. With "fetch the full
item" on, create and update rows are read back from Directus so Clay gets the whole row, not
only what changed. Each row sent carries kiln_row_id, kiln_sync, kiln_collection and
kiln_directus_key, so the enriched row Clay sends back can be linked to it.

Kiln's own writes: the Flow Kiln installs sends {"trigger": {{$trigger}}, "accountability":
{{$accountability}}} (seen live on 12.4: both whole objects, {"trigger": {"event": ...,
"payload": ..., "key" | "keys": ..., "collection": ...}, "accountability": {"user": <uuid>,
"role", "roles", "admin", "app", "ip", "userAgent"}}). An event whose accountability.user is
the Directus user of a write-back (Clay → Directus) sync's connection to the same Directus was
caused by Kiln writing Clay's rows back: relaying it would send the row to Clay again, which
enriches and writes it back again, forever. Such events are skipped (OWN_WRITE) unless the
route's relay_own_writes is on. A bare trigger (a Flow installed before, or made by hand) has
no accountability and is relayed as before.
"""

import json
import logging
import queue

from django.conf import settings

from integrations.clay import webhook as clay
from integrations.clay.sender import Job, Sender, excerpt
from integrations.directus import flow_installer, flows
from integrations.directus.client import DirectusError
from integrations.mapping import templates as mapping
from integrations.models import DirectusConnection, InboundRoute, RowTrace, Sync
from integrations.outbound import http, ratelimit
from integrations.runs import roundtrip
from integrations.runs.writeback import WriteOutcome

logger = logging.getLogger(__name__)

SCOPES = ("items.create", "items.update")
# The request body of the Flow Kiln installs: both placeholders are whole values, so Directus
# puts the objects themselves in the JSON it sends (not text).
FLOW_BODY = {"trigger": "{{$trigger}}", "accountability": "{{$accountability}}"}
OWN_WRITE = "OWN_WRITE"
OWN_WRITE_MESSAGE = (
    "Kiln's own write-back changed this item; not relayed back to Clay (turn on 'relay Kiln's "
    "own writes' on the route to send these)"
)


class RelayError(Exception):
    """The event cannot be relayed as it is (the message says why); not retried."""


def split_event(data: dict) -> tuple[dict, dict | None]:
    """(the Flow's $trigger, its $accountability or None) from a stored relay event.

    {"trigger": {...}, "accountability": {...}} is what the Flow Kiln installs sends; a bare
    trigger (older Flows, hand-made ones) has no accountability.
    """
    if isinstance(data.get("trigger"), dict) and "event" not in data:
        accountability = data.get("accountability")
        return data["trigger"], accountability if isinstance(accountability, dict) else None
    return data, None


def acting_user(accountability: dict | None) -> str:
    """The Directus user id that made the change, or "" (none, or a public request)."""
    user = (accountability or {}).get("user")
    return str(user) if user else ""


def _same_directus(url: str) -> str:
    return (url or "").strip().rstrip("/").lower()


def writeback_user_ids(base_url: str | None) -> set[str]:
    """The Directus user ids Kiln's write-back syncs write as, on the Directus at base_url
    (on any Directus when None: a relay without a connection; user ids are uuids).

    A connection whose user id is not known yet is asked once (/users/me) and the id stored.
    Raises DirectusError when Directus may answer later (down, timeout, 5xx), so the event waits
    rather than being relayed into a loop; a connection Directus refuses (401, 403) is left out
    with a warning: its token cannot write, so no write of Kiln's can come from it now.
    """
    connections = DirectusConnection.objects.filter(
        syncs__kind=Sync.Kind.CLAY_TO_DIRECTUS
    ).distinct()
    ids = set()
    for connection in connections:
        if base_url is not None and _same_directus(connection.api_url) != _same_directus(base_url):
            continue
        if not connection.directus_user_id:
            try:
                with connection.client() as client:
                    user_id = str((client.me(fields="id") or {}).get("id") or "")
            except DirectusError as exc:
                if exc.transient or exc.status is None or exc.status >= 500:
                    raise
                logger.warning(
                    "Connection %s: /users/me refused (%s); its writes cannot be told apart",
                    connection.pk,
                    exc.code,
                )
                continue
            if not user_id:
                continue
            DirectusConnection.objects.filter(pk=connection.pk).update(directus_user_id=user_id)
            connection.directus_user_id = user_id
        ids.add(connection.directus_user_id)
    return ids


def scope_of(event: dict) -> str:
    name = str(event.get("event") or "")
    scope = ".".join(name.split(".")[-2:])
    if scope not in flows.SCOPES:
        raise RelayError(
            f'"{name}" is not a Directus items event (items.create, items.update, items.delete).'
        )
    return scope


def event_rows(event: dict, directus=None, pk: str = "id") -> list[tuple[str, dict]]:
    """[(directus key, row)] for one Flow event; reads the full items when a client is given."""
    scope = scope_of(event)
    collection = event.get("collection") or ""
    payload = event.get("payload")
    if scope == "items.create":
        keys = [event.get("key")] if event.get("key") is not None else []
    else:
        keys = list(event.get("keys") or (payload if isinstance(payload, list) else []))
    if not keys:
        raise RelayError(f"The {scope} event names no item key.")
    if scope == "items.delete":
        return [(str(k), {pk: k, "deleted": True}) for k in keys]
    changed = payload if isinstance(payload, dict) else {}
    rows = {str(k): {**changed, pk: k} for k in keys}
    if directus is not None and collection:
        page = directus.list_items(collection, {"filter": {pk: {"_in": keys}}, "limit": len(keys)})
        for item in page.data:
            if isinstance(item, dict) and str(item.get(pk)) in rows:
                rows[str(item.get(pk))] = item
    return list(rows.items())


class Processor:
    """One batch of stored events → Clay deliveries → one outcome per event."""

    def __init__(self, run, stop, heartbeat=None):
        self.run, self.sync, self.stop = run, run.sync, stop
        # Called while waiting for Clay (429 pauses can be long), to keep the run's lease.
        self.heartbeat = heartbeat or (lambda: None)
        sync = self.sync
        if sync.destination_id is None:
            raise ValueError("Choose a Clay destination for this relay.")
        self.route = InboundRoute.objects.filter(sync=sync).first()
        self.relay_own_writes = self.route is not None and self.route.relay_own_writes
        self._own_users = None  # set of user ids once read; a DirectusError for this batch
        self.template = mapping.parse(sync.template.body) if sync.template_id else None
        self.options = (sync.template.options or {}) if sync.template_id else {}
        fetch = self.route is not None and self.route.fetch_full_item and sync.connection_id
        self.directus = sync.connection.client() if fetch else None
        destination = sync.destination
        token = destination.auth_token.reveal() if destination.auth_token_id else None
        self.post = http.WebhookPost(
            destination.webhook_url.reveal(),
            clay.headers_for(token),
            timeout=settings.KILN_OUTBOUND_TIMEOUT,
        )
        self.results = queue.SimpleQueue()
        self.sender = Sender(
            post=self.post,
            limiter=ratelimit.limiter_for(f"clay:{destination.pk}", sync.rate_limit),
            concurrency=max(1, sync.concurrency),
            stop=stop,
            results=self.results,
        )
        self.sent_ids = {}

    def close(self):
        self.sender.close()
        self.post.close()
        if self.directus is not None:
            self.directus.close()

    def own_users(self) -> set[str]:
        """writeback_user_ids for this relay's Directus: read once per Processor."""
        if isinstance(self._own_users, DirectusError):
            raise self._own_users  # failed earlier in this batch: not asked again
        if self._own_users is None:
            base_url = self.sync.connection.api_url if self.sync.connection_id else None
            try:
                self._own_users = writeback_user_ids(base_url)
            except DirectusError as exc:
                self._own_users = exc
                raise
        return self._own_users

    def _body(self, event, key, row, rid, accountability=None) -> dict:
        context = {
            **row,
            "$trigger": event,
            "$event": event.get("event"),
            "$accountability": accountability,
        }
        value = self.template.render(context, self.options) if self.template else dict(row)
        return roundtrip.stamp(value, self.sync.pk, event.get("collection") or "", key, row_id=rid)

    def process(self, batch) -> list[WriteOutcome]:
        outcomes = [None] * len(batch)
        pending = {}
        self.sent_ids = {}
        pk = self.sync.row_key or "id"
        if isinstance(self._own_users, DirectusError):
            self._own_users = None  # a new batch asks again
        for index, item in enumerate(batch):
            event, accountability = split_event(item.data)
            label = f"#{item.pk} {event.get('event', '?')}"
            try:
                rows = event_rows(event, None, pk)  # checks the event; no request
                if self._own_write(accountability):
                    keys = ",".join(k for k, _ in rows)
                    outcomes[index] = WriteOutcome(
                        f"#{item.pk} {event.get('collection', '')}:{keys}"[:200],
                        "skipped",
                        error_code=OWN_WRITE,
                        error_message=OWN_WRITE_MESSAGE,
                        request_excerpt=excerpt(json.dumps(item.data, default=str)),
                    )
                    continue
                if self.directus is not None:
                    rows = event_rows(event, self.directus, pk)
            except RelayError as exc:
                outcomes[index] = WriteOutcome(
                    label, "failed", error_code="BAD_EVENT", error_message=str(exc)
                )
                continue
            except OwnWriteUnknown as exc:
                outcomes[index] = WriteOutcome(
                    label,
                    "failed",
                    http_status=exc.error.status,
                    error_code=exc.error.code[:50],
                    error_message=str(exc),
                    transient=True,
                )
                continue
            except DirectusError as exc:
                outcomes[index] = WriteOutcome(
                    label,
                    "failed",
                    http_status=exc.status,
                    error_code=exc.code[:50],
                    error_message=f"Reading the item from Directus failed: {exc.explain()}",
                    transient=exc.transient or exc.status is None,
                )
                continue
            label = f"#{item.pk} {event.get('collection', '')}:{','.join(k for k, _ in rows)}"[:200]
            jobs = []
            try:
                for n, (key, row) in enumerate(rows):
                    rid = f"kr_{item.pk}_{n}"
                    body = self._body(event, key, row, rid, accountability)
                    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
                    jobs.append(Job(index, label, text, mapping.payload_hash(body)))
                    self.sent_ids.setdefault(index, []).append((key, rid))
            except (mapping.TemplateError, ValueError, TypeError, LookupError) as exc:
                outcomes[index] = WriteOutcome(
                    label,
                    "failed",
                    error_code="RENDER_ERROR",
                    error_message=http.redact(
                        f"The template could not be filled from this event: {exc}"
                    ),
                )
                self.sent_ids.pop(index, None)
                continue
            pending[index] = {"label": label, "left": len(jobs), "outcomes": []}
            for job in jobs:
                self.sender.submit(job)
        while any(p["left"] for p in pending.values()):
            try:
                index, outcome = self.results.get(timeout=0.5)
            except queue.Empty:
                self.heartbeat()
                continue
            pending[index]["left"] -= 1
            pending[index]["outcomes"].append(outcome)
        for index, p in pending.items():
            outcomes[index] = _combine(p["label"], p["outcomes"])
        return outcomes

    def after_record(self, batch, outcomes, now):
        sent = sum(
            len(self.sent_ids.get(i, [])) for i, o in enumerate(outcomes) if o.status == "sent"
        )
        if sent:
            self.sync.destination.add_submissions(sent)
        for index, outcome in enumerate(outcomes):
            ids = self.sent_ids.get(index)
            if not ids:
                continue
            collection = split_event(batch[index].data)[0].get("collection") or self.sync.collection
            roundtrip.start_traces(self.sync, collection, ids, self.run, at=batch[index].created_at)
            detail = (
                "Clay accepted the row."
                if outcome.status == "sent"
                else f"{outcome.error_code}: {outcome.error_message}"
            )
            roundtrip.record_steps(
                [
                    (rid, RowTrace.Step.SENT, outcome.status == "sent", detail, now, None)
                    for _, rid in ids
                ],
                self.run,
            )

    def _own_write(self, accountability) -> bool:
        """True when Kiln's write-back made this change and the route does not relay those."""
        user = acting_user(accountability)
        if not user or self.relay_own_writes:
            return False
        try:
            return user in self.own_users()
        except DirectusError as exc:
            raise OwnWriteUnknown(exc) from exc


class OwnWriteUnknown(Exception):
    """Directus could not say which user a write-back connection writes as (it may later)."""

    def __init__(self, error: DirectusError):
        self.error = error
        super().__init__(
            "Could not tell whether Kiln's own write-back made this change: asking Directus "
            f"which user a write-back connection's token belongs to failed: {error.explain()} "
            "The event is tried again later."
        )


def _combine(label, row_outcomes) -> WriteOutcome:
    """One outcome for an event: sent when every row was; else the first failure's reason."""
    failed = [o for o in row_outcomes if o.status != "sent"]
    first = failed[0] if failed else row_outcomes[0]
    status = "sent" if not failed else "failed"
    transient = bool(failed) and all(
        o.http_status is None or o.http_status in (408, 429) or o.http_status >= 500 for o in failed
    )
    return WriteOutcome(
        label,
        status,
        http_status=first.http_status,
        error_code=first.error_code,
        error_message=first.error_message if failed else "",
        attempts=max(o.attempts for o in row_outcomes),
        duration_ms=max(o.duration_ms for o in row_outcomes),
        request_excerpt=first.request_excerpt or excerpt(""),
        response_excerpt=first.response_excerpt,
        payload_hash=first.payload_hash,
        transient=transient,
    )


def install(route: InboundRoute, scopes=SCOPES) -> tuple[flow_installer.InstallResult, str]:
    """Create or update the Flow that posts this collection's events to the relay route.

    The Flow gets a fresh route secret in a header (the previous one stays valid while it
    rotates), so neither the Clay webhook URL nor its token is ever stored in Directus.
    """
    sync = route.sync
    if sync.connection_id is None or not sync.collection:
        raise RelayError("Choose the Directus connection and the collection to watch first.")
    secret = route.rotate()
    spec = flows.directus_flow(
        f"Kiln relay: {sync.name}",
        [sync.collection],
        scopes,
        route.url,
        FLOW_BODY,
        headers=[(InboundRoute.SECRET_HEADER, secret)],
    )
    with sync.connection.client() as client:
        result = flow_installer.install_flow(client, spec, route.flow_id, route.flow_operation_id)
    InboundRoute.objects.filter(pk=route.pk).update(
        flow_id=result.flow_id, flow_operation_id=result.operation_id
    )
    route.flow_id, route.flow_operation_id = result.flow_id, result.operation_id
    return result, secret
