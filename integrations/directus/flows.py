"""Directus Flow payloads, a linter and simulator for Flow templates, and export builders (pure).

What Directus does (12.4, read in its source and seen in harness/directus/observed.md):
- An event hook (action) Flow gets `$trigger`:
    items.create  {"event": "articles.items.create", "payload": {fields as sent}, "key": 505,
                   "collection": "articles"}          one run per created item
    items.update  {"event": "articles.items.update", "payload": {changed fields only},
                   "keys": ["505"], "collection": "articles"}   one run per request; keys are
                   strings when the id came from the URL, numbers from a batch body
    items.delete  {"event": "articles.items.delete", "payload": ["505"], "keys": ["505"],
                   "collection": "articles"}          payload IS the key list (services/items.js
                   deleteMany emits {payload: keys, keys, collection}); not in observed.md
  The payload is the request body, not the stored row: no id, no defaults.
- Operation options are rendered by renderMustache: a string that is exactly one `{{ path }}`
  takes the raw value (an object stays an object); any other string gets each value pasted
  in as raw text (objects as JSON, null as "null", a missing value as "undefined") with no
  JSON escaping. Objects and lists in options are rendered value by value.
- The request operation sends an object body as JSON (axios serialises it). A text body is
  sent as typed, so a quote in a pasted value breaks it. Hence Kiln installs bodies as
  objects; the Directus app's body field is text, which is what the linter assumes.
- Options, headers included, are stored in plaintext, and with accountability "all" each
  run's rendered options are kept in the run log; only `{{$env.X}}` values (allowed by
  FLOWS_ENV_ALLOW_LIST) are redacted there.
"""

import copy
import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import quote

from integrations.mapping import templates as mapping
from integrations.mapping.templates import ParsedTemplate
from integrations.mapping.templatesyntax import Placeholder, Problem, TemplateError, split_inner

SCOPES = ("items.create", "items.update", "items.delete")

SAMPLE_TRIGGERS: dict[str, dict] = {
    "items.create": {
        "event": "articles.items.create",
        "payload": {
            "title": "Flow test A",
            "slug": "flow-test-a",
            "views": 1,
            "author": 1,
            "categories": [{"categories_id": 2}],
        },
        "key": 505,
        "collection": "articles",
    },
    "items.update": {
        "event": "articles.items.update",
        "payload": {"status": "published", "views": 2},
        "keys": ["505"],
        "collection": "articles",
    },
    "items.delete": {
        "event": "articles.items.delete",
        "payload": ["505"],
        "keys": ["505"],
        "collection": "articles",
    },
}

# `$accountability` is a separate Flow variable, never part of `$trigger` (observed.md).
SAMPLE_ACCOUNTABILITY = {
    "role": "d68fa867-bcd9-4019-8762-39d45c4808e2",
    "user": "16633aef-c52d-43ec-a7d5-b55780375623",
    "roles": ["d68fa867-bcd9-4019-8762-39d45c4808e2"],
    "admin": True,
    "app": True,
    "ip": "127.0.0.1",
    "userAgent": "curl/7.88.1",
}


def _scope(event: str) -> str:
    """ "articles.items.update" or "items.update" -> "items.update"; raise ValueError else."""
    scope = ".".join(event.split(".")[-2:])
    if scope not in SCOPES:
        raise ValueError(f"Unknown event {event!r}; expected one of {', '.join(SCOPES)}.")
    return scope


def sample_trigger(
    event: str, collection: str = "articles", item: dict | None = None, primary_key: str = "id"
) -> dict:
    """A real-shaped `$trigger` for event, built from item (the payload leaves out its key).

    sample_trigger("items.update", "leads", {"id": 7, "score": 3}) ->
    {"event": "leads.items.update", "payload": {"score": 3}, "keys": ["7"], "collection": "leads"}
    """
    scope = _scope(event)
    if item is None:
        trigger = copy.deepcopy(SAMPLE_TRIGGERS[scope])
        trigger["event"] = f"{collection}.{scope}"
        trigger["collection"] = collection
        return trigger
    key = item.get(primary_key, 1)
    payload = {name: value for name, value in item.items() if name != primary_key}
    trigger = {"event": f"{collection}.{scope}"}
    if scope == "items.create":
        # Directus hands create the new key as the database returned it (a number here).
        trigger |= {"payload": payload, "key": key}
    elif scope == "items.update":
        # One item updated through PATCH /items/c/:id: the key comes from the URL, as text.
        trigger |= {"payload": payload, "keys": [str(key)]}
    else:
        trigger |= {"payload": [str(key)], "keys": [str(key)]}
    trigger["collection"] = collection
    return trigger


def flow_scope_data(trigger: dict) -> dict:
    """The variables a Flow's first operation can template (`$last` is the trigger too)."""
    return {
        "$trigger": trigger,
        "$last": trigger,
        "$accountability": SAMPLE_ACCOUNTABILITY,
        "$env": {},
    }


# ---------------------------------------------------------------------------------------------
# Flow syntax


def flow_expr(expr: str) -> str:
    """Item fields become Flow variables: "title" -> "$trigger.payload.title"; `$x` stays."""
    return expr if expr.startswith("$") else f"$trigger.payload.{expr}"


def flow_syntax(template: str | ParsedTemplate) -> ParsedTemplate:
    """The template with every item-field placeholder in Flow syntax, layout and casts kept.

    '{"t": "{{title}}", "k": {{$trigger.key}}}' -> '{"t": "{{$trigger.payload.title}}", "k":
    {{$trigger.key}}}': a Clay-row template (filled from an item) becomes a Flow body.
    """
    parsed = mapping.parse(template) if isinstance(template, str) else template
    if all(ph.expr.startswith("$") for ph in parsed.placeholders):
        return parsed  # already Flow syntax: keep it, and the positions problems refer to
    return mapping.parse(
        parsed.rewrite(lambda ph: "{{" + " | ".join((flow_expr(ph.expr), *ph.casts)) + "}}")
    )


def flow_body(template) -> object:
    """The request operation's body as Directus should store it: an object, not text.

    Whole-value placeholders become strings ("{{$trigger.payload.views}}"), which Directus
    fills with the raw value (a number stays a number); embedded ones stay in their text and
    are escaped when axios serialises the object. A dict or list is taken as already built.
    Raises TemplateError for casts, which Directus cannot apply.
    """
    if isinstance(template, dict | list):
        return copy.deepcopy(template)
    parsed = flow_syntax(template)
    cast_problems = [
        Problem(
            f"Directus cannot apply casts ({' | '.join(ph.casts)}): remove them, or send the "
            "Flow to Kiln's relay, which can.",
            ph.line,
            ph.column,
            ph.expr,
        )
        for ph in parsed.placeholders
        if ph.casts
    ]
    if cast_problems:
        raise TemplateError(cast_problems)
    return parsed.as_object(lambda ph: "{{" + ph.expr + "}}")


# ---------------------------------------------------------------------------------------------
# Simulation: Kiln's rendering and Directus' own, side by side


@dataclass
class SimResult:
    """One event simulated: Kiln's rendering (None on problems) and what Directus would send."""

    rendered_json: str | None
    problems: list[Problem]
    directus_json: str | None = None
    trigger: dict = field(default_factory=dict)


def simulate(
    parsed_template: ParsedTemplate,
    events=SCOPES,
    item: dict | None = None,
    *,
    collection: str = "articles",
    options: dict | None = None,
) -> dict[str, SimResult]:
    """Render the template against a sample `$trigger` for each event.

    rendered_json is Kiln's rendering (as the relay sends it; missing values follow the
    options' policy). directus_json is what Directus itself sends with the body installed as
    an object by directus_flow(): a missing value there is the text "undefined".
    """
    parsed = flow_syntax(parsed_template)
    body = parsed.as_object()
    results = {}
    for event in events:
        trigger = sample_trigger(event, collection, item)
        scope = flow_scope_data(trigger)
        try:
            rendered, problems = parsed.render_json(scope, options), []
        except TemplateError as exc:
            rendered, problems = None, exc.problems
        directus = json.dumps(directus_render(body, scope), ensure_ascii=False)
        results[_scope(event)] = SimResult(rendered, problems, directus, trigger)
    return results


_RAW_TAG = re.compile(r"^\{\{\s*([^}\s]+)\s*\}\}$")
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_UNDEFINED = object()


def directus_render(value, scope: dict):
    """What Directus' renderMustache makes of an option value (a port of its rules).

    "{{ $trigger.key }}" -> 505; "id-{{$trigger.key}}" -> "id-505"; "{{$trigger.nope}}" ->
    "undefined"; "x {{$trigger.payload}}" -> 'x {"views":2}'. Dicts and lists: per value.
    """
    if isinstance(value, str):
        raw = _RAW_TAG.match(value)
        if raw:
            found = _js_get(scope, raw[1])
            if found is not _UNDEFINED:
                return found
        return _TAG.sub(lambda m: _js_text(_js_get(scope, m[1].strip())), value)
    if isinstance(value, list):
        return [directus_render(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: directus_render(item, scope) for key, item in value.items()}
    return value


def _js_get(scope, path: str):
    node = scope
    for part in re.sub(r"\[\s*(\d+)\s*\]", r".\1", path).split("."):
        part = part.strip()
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _UNDEFINED
    return node


def _js_text(value) -> str:
    if value is _UNDEFINED:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))  # JavaScript prints 2.0 as "2"
    return str(value)


# ---------------------------------------------------------------------------------------------
# Linter


@dataclass
class FlowWarning:
    """A likely mistake in a Flow template or operation, with its position when known."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None
    placeholder: str | None = None


Warning = FlowWarning  # the name other modules use; the builtin is not needed here

_SECRET_HEADERS = {
    "authorization",
    "proxy-authorization",
    "x-clay-webhook-auth",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "cookie",
}
_SECRET_KEYS = re.compile(
    r'"((?:[\w-]*[_-])?(?:token|secret|password|passwd|api_?key|apikey|auth))"\s*:\s*"([^"{}]{6,})"',
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?:bearer|basic)\s+(?!\{\{)([A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_CLAY_WEBHOOK = re.compile(r"https?://api\.clay\.com/\S*webhook\S*", re.IGNORECASE)
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.~]{32,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")

_HAS = {"key": {"items.create"}, "keys": {"items.update", "items.delete"}}


def lint(
    template_text: str,
    event_scopes,
    *,
    url: str | None = None,
    headers: list | None = None,
    body_as: str = "text",
    primary_key: str = "id",
) -> list[FlowWarning]:
    """Warn about the classic Flow mistakes in a body template (and the operation's URL/headers).

    body_as="text" (the Directus app's body field) or "object" (installed by Kiln), which
    decides whether pasted values are escaped. Rules: the payload has no id; key (create)
    vs keys (update, delete); update payloads hold only changed fields; delete's payload is
    the key list; casts and non-Flow names render "undefined"; embedded placeholders in a
    text body are not escaped; secrets in options are stored in plaintext.
    """
    scopes = []
    warnings = []
    for event in event_scopes:
        try:
            scopes.append(_scope(event))
        except ValueError as exc:
            warnings.append(FlowWarning("unknown-scope", str(exc)))
    try:
        parsed = mapping.parse(template_text)
    except TemplateError as exc:
        parsed = None
        warnings += [
            FlowWarning("invalid-template", p.message, p.line, p.column, p.placeholder)
            for p in exc.problems
        ]
    placeholders = parsed.placeholders if parsed else _scan_placeholders(template_text)
    for ph in placeholders:
        warnings += _lint_placeholder(ph, scopes, primary_key)
    if parsed and body_as == "text":
        warnings += _lint_text_body(parsed)
    warnings += _lint_secrets(template_text, "the body")
    if url:
        warnings += _lint_url(url)
    for name, value in _header_pairs(headers):
        warnings += _lint_header(name, value)
    # In reading order; warnings about the URL and headers (no position) come last.
    return sorted(warnings, key=lambda w: (w.line is None, w.line or 0, w.column or 0))


def _scan_placeholders(text: str) -> list[Placeholder]:
    """Placeholders found by pattern alone, for a template that does not parse."""
    found = []
    for match in _PLACEHOLDER.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        expr, casts = split_inner(match[1])
        found.append(Placeholder(expr, casts, line, column, True, "", True, *match.span()))
    return found


def _lint_placeholder(ph: Placeholder, scopes: list[str], primary_key: str) -> list[FlowWarning]:
    out = []

    def warn(code, message):
        out.append(FlowWarning(code, message, ph.line, ph.column, ph.expr))

    if ph.casts:
        warn(
            "cast-ignored",
            f"Directus does not apply casts: it looks up {ph.expr} | {' | '.join(ph.casts)} as "
            "one name and sends the text undefined. Cast in Kiln's relay or leave them out.",
        )
    if not ph.expr.startswith("$"):
        warn(
            "not-a-flow-variable",
            f"A Flow has no variable {ph.expr!r}; item fields are under $trigger.payload: "
            f"{{{{$trigger.payload.{ph.expr}}}}}.",
        )
        return out
    parts = re.sub(r"\[\s*(\d+)\s*\]", r".\1", ph.expr).split(".")
    if parts[0] != "$trigger" or len(parts) < 2:
        return out
    name = parts[1]
    if name in _HAS:
        missing = [scope for scope in scopes if scope not in _HAS[name]]
        if missing:
            other = "keys" if name == "key" else "key"
            warn(
                f"{name}-not-on-{missing[0].split('.')[1]}",
                f"$trigger.{name} is not set on {', '.join(missing)} (those have $trigger.{other}); "
                "Directus sends the text undefined there.",
            )
    if name != "payload" or len(parts) < 3:
        return out
    field_name = parts[2]
    if field_name == primary_key:
        advice = {
            "items.create": "use {{$trigger.key}} on create",
            "items.update": "use {{$trigger.keys}} on update (a list: one request can change several items)",
            "items.delete": "use {{$trigger.keys}} on delete",
        }
        tips = "; ".join(advice[scope] for scope in scopes) or advice["items.update"]
        warn(
            "payload-has-no-id",
            f"$trigger.payload is the request body, which carries no {primary_key}: {tips}.",
        )
        return out
    if "items.update" in scopes:
        warn(
            "payload-field-may-be-missing",
            f"On items.update the payload holds only the fields that changed; when {field_name} "
            "did not change Directus sends the text undefined. Send {{$trigger}} whole, or read "
            "the item in an earlier operation.",
        )
    if "items.delete" in scopes:
        warn(
            "delete-payload-is-keys",
            "On items.delete $trigger.payload is the list of deleted keys, not an item; "
            f"{{{{{ph.expr}}}}} is undefined there.",
        )
    return out


def _lint_text_body(parsed: ParsedTemplate) -> list[FlowWarning]:
    out = []
    if [ph.json_path for ph in parsed.placeholders if ph.whole_value] == ["$"]:
        return out  # the body is exactly "{{$trigger}}": Directus passes the raw value
    for ph in parsed.placeholders:
        if not ph.whole_value:
            out.append(
                FlowWarning(
                    "embedded-placeholder",
                    "Directus pastes this value into the string without escaping it: a quote, "
                    "backslash or line break in the value breaks the JSON. Make it the whole "
                    "value, or install the Flow from Kiln (the body is then an object, filled "
                    "value by value and escaped).",
                    ph.line,
                    ph.column,
                    ph.expr,
                )
            )
    risky = [ph for ph in parsed.placeholders if ph.whole_value and _pasted_raw_is_risky(ph)]
    if risky:
        out.append(
            FlowWarning(
                "text-body",
                "As text (the Directus app's body field) every placeholder is pasted in raw: "
                '"{{x}}" turns numbers into strings and a quote in a value breaks the JSON; '
                "a bare {{x}} leaves text unquoted. Send {{$trigger}} whole or install the "
                "Flow from Kiln, which stores the body as an object.",
                risky[0].line,
                risky[0].column,
                risky[0].expr,
            )
        )
    return out


# Values Directus pastes as JSON text (numbers, lists, objects), so a bare placeholder for them
# stays valid JSON even in a text body.
_JSON_SAFE_BARE = {
    "$trigger",
    "$trigger.key",
    "$trigger.keys",
    "$trigger.payload",
    "$last",
    "$accountability",
}


def _pasted_raw_is_risky(ph: Placeholder) -> bool:
    """In a text body: a quoted value can hold a quote; a bare one can be unquoted text."""
    return ph.quoted or ph.expr not in _JSON_SAFE_BARE


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _lint_secrets(text: str, where: str) -> list[FlowWarning]:
    """Literal secrets in text: bearer/basic credentials, JWTs, secret-named keys, random tokens."""
    out = []
    covered: list[tuple[int, int]] = []
    stored = (
        "Directus keeps operation options in plaintext (and, with accountability all, in "
        "every run log). Put the secret in an environment variable listed in "
        "FLOWS_ENV_ALLOW_LIST and write {{$env.NAME}}, or send through Kiln's relay."
    )

    def add(code, what, start, end):
        if any(start < b and a < end for a, b in covered):
            return
        covered.append((start, end))
        out.append(FlowWarning(code, f"{what} in {where}. {stored}", *_position(text, start)))

    for match in _CLAY_WEBHOOK.finditer(text):
        if where == "the URL":
            covered.append(match.span())  # _lint_url reports the URL itself
        else:
            add(
                "clay-webhook-url",
                "A Clay webhook URL (anyone holding it can add rows)",
                *match.span(),
            )
    for match in _BEARER.finditer(text):
        add("secret-in-options", "A literal credential", *match.span())
    for match in _JWT.finditer(text):
        add("secret-in-options", "A JSON Web Token", *match.span())
    for match in _SECRET_KEYS.finditer(text):
        add("secret-in-options", f"A literal value for {match[1]!r}", *match.span(2))
    for match in _LONG_TOKEN.finditer(text):
        if _looks_random(match[0]) and not _inside_placeholder(text, match.start()):
            add("secret-in-options", "A long random string (a key or token?)", *match.span())
    return out


def _looks_random(token: str) -> bool:
    # UUIDs are item ids, and slugs and paths have low entropy; keys mix classes densely.
    if _UUID.fullmatch(token) or token.count("/") > 1:
        return False
    if not (re.search(r"\d", token) and re.search(r"[A-Za-z]", token)):
        return False
    counts = {char: token.count(char) for char in set(token)}
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return entropy >= 3.5


def _inside_placeholder(text: str, offset: int) -> bool:
    opening = text.rfind("{{", 0, offset)
    return opening >= 0 and text.find("}}", opening) >= offset


def _lint_url(url: str) -> list[FlowWarning]:
    out = []
    if _CLAY_WEBHOOK.search(url):
        out.append(
            FlowWarning(
                "clay-webhook-url",
                "This Clay webhook URL is stored in plaintext in the operation and, with "
                "accountability all, in every run log; anyone who reads it can add rows to the "
                "table. Point the Flow at Kiln's relay URL to keep it in Kiln's encrypted store.",
            )
        )
    out += _lint_secrets(url, "the URL")
    if re.search(r"[?&](access_token|token|api_key|key)=(?!\{\{)[^&]+", url, re.IGNORECASE):
        out.append(
            FlowWarning(
                "secret-in-url", "A token in the URL's query string is stored in plaintext."
            )
        )
    return out


def _header_pairs(headers) -> list[tuple[str, str]]:
    """Headers as [{"header", "value"}] (Directus), [{"key", "value"}] (Clay) or pairs."""
    pairs = []
    for entry in headers or []:
        if isinstance(entry, dict):
            pairs.append(
                (str(entry.get("header") or entry.get("key") or ""), str(entry.get("value") or ""))
            )
        else:
            name, value = entry
            pairs.append((str(name), str(value)))
    return pairs


def _lint_header(name: str, value: str) -> list[FlowWarning]:
    if (
        name.strip().lower() in _SECRET_HEADERS
        and value.strip()
        and "{{$env." not in value.replace(" ", "")
    ):
        return [
            FlowWarning(
                "secret-in-header",
                f"The {name} header holds a literal value. Directus keeps operation options in "
                "plaintext (and, with accountability all, in every run log). Use "
                "{{$env.NAME}} with FLOWS_ENV_ALLOW_LIST, or send through Kiln's relay.",
                placeholder=name,
            )
        ]
    return _lint_secrets(value, f"the {name} header")


# ---------------------------------------------------------------------------------------------
# Exports


def directus_flow(
    name: str,
    collections,
    scopes,
    url: str,
    body_obj_or_text,
    headers: list | None = None,
    *,
    accountability: str = "all",
) -> dict:
    """The POST /flows and POST /operations bodies for an event hook -> Request URL Flow.

    Install in three calls, as harness/directus/flows.sh does: POST /flows with "flow";
    POST /operations with "operation" plus {"flow": <flow id>}; PATCH /flows/<id> with
    {"operation": <operation id>}. The body is stored as an object (see flow_body).
    headers: [(name, value)] or [{"header", "value"}]; Content-Type is always
    application/json (a Content-Type given here is dropped), as the body is JSON.
    """
    scope_list = [_scope(scope) for scope in scopes]
    extra = [
        {"header": key, "value": value}
        for key, value in _header_pairs(headers)
        if key.lower() != "content-type"
    ]
    return {
        "flow": {
            "name": name,
            "status": "active",
            "trigger": "event",
            "accountability": accountability,
            "options": {"type": "action", "scope": scope_list, "collections": list(collections)},
        },
        "operation": {
            "name": "Webhook",
            "key": "webhook",
            "type": "request",
            "position_x": 19,
            "position_y": 1,
            "options": {
                "method": "POST",
                "url": url,
                "headers": [{"header": "Content-Type", "value": "application/json"}, *extra],
                "body": flow_body(body_obj_or_text),
            },
        },
    }


CLAY_KINDS = ("create", "update", "get", "get_related")
CLAY_ACCOUNT = "Directus"
CLAY_NOTE = (
    'Authorization is not set here: choose the Clay account named "Directus", which holds '
    "the Directus token, so the token never sits in the column settings."
)


def clay_http_api_settings(
    kind: str,
    base_url: str,
    collection: str,
    body_text: str | None = None,
    query_params: list[tuple[str, str]] | None = None,
    item_id_placeholder: str = "{{Directus ID}}",
    fields: list[str] | None = None,
) -> dict:
    """Settings for a Clay HTTP API column doing one of the four Directus operations.

    create: POST {base}/items/{c} with the body; update: PATCH {base}/items/{c}/{{id}};
    get: GET {base}/items/{c} with the saved query's parameter rows; get_related: GET
    {base}/items/{c}/{{id}} with fields in dot notation. fields also narrows what create
    and update answer. Kiln casts are left out of the body: Clay cannot apply them.
    """
    if kind not in CLAY_KINDS:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {', '.join(CLAY_KINDS)}.")
    items_url = f"{base_url.rstrip('/')}/items/{quote(collection, safe='')}"
    method, url = {
        "create": ("POST", items_url),
        "update": ("PATCH", f"{items_url}/{item_id_placeholder}"),
        "get": ("GET", items_url),
        "get_related": ("GET", f"{items_url}/{item_id_placeholder}"),
    }[kind]
    params = (
        [(str(key), str(value)) for key, value in (query_params or [])] if kind == "get" else []
    )
    if fields:
        params = [pair for pair in params if pair[0] != "fields"]
        params.append(("fields", ",".join(fields)))
    note = CLAY_NOTE
    body = None
    if kind in ("create", "update"):
        if body_text is None or not body_text.strip():
            raise ValueError(f"A {kind} column needs a body.")
        parsed = mapping.parse(body_text)
        body = body_text
        cast = [ph for ph in parsed.placeholders if ph.casts]
        if cast:
            body = parsed.rewrite(lambda ph: "{{" + ph.expr + "}}")
            names = ", ".join(sorted({c for ph in cast for c in ph.casts}))
            note += f" Kiln casts ({names}) were left out of the body: Clay does not apply them."
    return {
        "method": method,
        "url": url,
        "query_params": [{"key": key, "value": value} for key, value in params],
        # A GET carries no body, so it needs no Content-Type.
        "headers": [{"key": "Content-Type", "value": "application/json"}] if body else [],
        "auth_account": CLAY_ACCOUNT,
        "body": body,
        "note": note,
    }


def clay_settings_text(settings: dict) -> str:
    """The settings as text to paste, field by field as Clay's HTTP API form asks for them."""

    def rows(pairs):
        return "\n".join(f"  {p['key']}: {p['value']}" for p in pairs) or "  (none)"

    parts = [
        f"Method: {settings['method']}",
        f"Endpoint: {settings['url']}",
        "Query parameters:",
        rows(settings["query_params"]),
        "Headers:",
        rows(settings["headers"]),
        "Body:",
        settings["body"] if settings.get("body") else "  (none)",
        f"Account: {settings['auth_account']}",
    ]
    if settings.get("note"):
        parts.append(f"Note: {settings['note']}")
    return "\n".join(parts) + "\n"
