"""No input gets a 500: every URL of console/urls.py, with hostile values in its path, in every
query parameter the views read and in every field of every form a page shows.

Each URL is fetched as an admin (and as a viewer), its forms are read out of the HTML and
posted back with one field at a time, and then all of them, set to a hostile value: deep
nesting, NUL, lone surrogates, huge numbers, 1 MB strings, wrong types, lists where one value
goes. Values are sampled per field (rotated through the list) to keep the run short.
"""

import html.parser
import inspect
import re
from pathlib import Path
from urllib.parse import quote_from_bytes, urlencode

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from console.models import User
from integrations.models import (
    AllowedNetwork,
    ClayDestination,
    ClayWebhook,
    CsvUpload,
    DirectusConnection,
    InboundRoute,
    MappingTemplate,
    NotificationChannel,
    RowResult,
    RowTrace,
    SavedQuery,
    Secret,
    Sync,
    SyncRun,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

DEEP = 5000
HOSTILE: list[bytes] = [
    b"\x00",
    b"a\x00b",
    b"\xed\xa0\x80",  # a lone surrogate, UTF-8 encoded (invalid UTF-8)
    b'{"a": "\\ud800"}',  # a lone surrogate as a JSON escape
    b'"\\u0000"',
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b'{"_and":[' * DEEP + b'{"a":{"_eq":1}}' + b"]}" * DEEP,
    b"filter" + b"[a]" * DEEP + b"[_eq]=1",
    b"{{" * DEEP,
    b"9" * 5000,
    b"-99999999999999999999",
    b"1e400",
    b"NaN",
    b"-1",
    b"0",
    b"abc",
    b"",
    b" ",
    b"[1, 2]",
    b'{"a": 1}',
    b"true",
    b"x" * 1_000_000,
]
# Where one value goes: the same key twice, and a "list" spelling of the key.
LISTS = "lists"

# Query parameters any view reads: request.GET["x"] / request.GET.get("x") in console/views/.
VIEWS_DIR = Path(__file__).resolve().parent.parent / "console" / "views"
GET_PARAMS = sorted(
    {
        match
        for path in VIEWS_DIR.glob("*.py")
        for match in re.findall(
            r"""request\.GET(?:\.get(?:list)?\(\s*|\[)["']([\w-]+)["']""", path.read_text()
        )
    }
    | {"page", "q", "next"}
)
JUNK_PATH_ARGS = ["%00", "abc", "99999999", "%ED%A0%80", "x" * 300]
# An outside system that cannot be reached is said so on purpose (the API's 502); a crash is not.
GATEWAY_ANSWERS = {502, 503, 504}


def console_urls():
    """(name, route with <converter:name> parts) for every URL pattern, includes walked."""
    found = []

    def walk(patterns, prefix, namespace):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route, entry.namespace or namespace)
            elif isinstance(entry, URLPattern):
                found.append((f"{namespace}:{entry.name}", route, entry.callback))

    walk(get_resolver().url_patterns, "/", "")
    return found


URLS = console_urls()


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Three users per URL: hashing their passwords properly would be most of the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db, admin_user):
    """One of every object a URL can name, with outbound calls that fail at once."""
    dead = "http://127.0.0.1:9"  # discard port: connection refused, no network
    schema = {
        "collections": {
            "leads": {
                "primary_key": "id",
                "fields": {
                    "id": {"type": "integer"},
                    "email": {"type": "string", "required": True},
                    "score": {"type": "integer"},
                },
            }
        }
    }
    connection = DirectusConnection.objects.create(
        name="cms", base_url=dead, token=Secret.seal("tok-directus-1234"), schema=schema
    )
    destination = ClayDestination.objects.create(
        name="clay", webhook_url=Secret.seal(dead + "/hook/secret-path")
    )
    network = AllowedNetwork.objects.create(value="10.0.0.0/8")
    pool_webhook = ClayWebhook.objects.create(
        destination=destination, webhook_url=Secret.seal(dead + "/hook/second-path")
    )
    channel = NotificationChannel.objects.create(
        name="chat", kind="webhook", url=Secret.seal(dead + "/chat")
    )
    query = SavedQuery.objects.create(
        connection=connection,
        name="leads",
        collection="leads",
        query_string="filter[score][_gt]=1",
    )
    template = MappingTemplate.objects.create(
        name="row", kind="clay_row", body='{"email": "{{email}}"}'
    )
    sync = Sync.objects.create(
        name="to clay", saved_query=query, destination=destination, template=template
    )
    back = Sync.objects.create(
        name="back",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
    )
    route, _ = InboundRoute.open(back)
    run = SyncRun.objects.create(
        sync=sync,
        status=SyncRun.Status.PARTLY_FAILED,
        started_by=admin_user,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        total=2,
        sent=1,
        failed=1,
    )
    row = RowResult.objects.create(
        run=run, row_key="1", status="failed", error_message="nope", attempts=1
    )
    RowResult.objects.create(run=run, row_key="2", status="sent", attempts=1)
    upload = CsvUpload.objects.create(
        sync=back,
        path="missing.csv",
        original_name="leads.csv",
        columns=["Email"],
        preview=[{"Email": "a@x.io"}],
        row_count=1,
    )
    trace = RowTrace.objects.create(kiln_row_id="kr_1_0", sync=sync, collection="leads")
    other = make_user(User.Role.OPERATOR, "someone")
    by_prefix = {
        "connection": connection.pk,
        "destination": destination.pk,
        "allowed-network": network.pk,
        "sync": sync.pk,
        "run": run.pk,
        "saved-query": query.pk,
        "template": template.pk,
        "writeback-upload": upload.pk,
        "writeback-route": route.pk,
        "writeback-relay": route.pk,
        "writeback-sync": back.pk,
        "user": other.pk,
        "notification": channel.pk,
        "query": query.pk,  # the API's names
        **_api_token(admin_user),
    }
    return {
        "by_prefix": by_prefix,
        "row_pk": row.pk,
        "webhook_pk": pool_webhook.pk,
        "kiln_row_id": trace.kiln_row_id,
        "route": route.slug,
    }


def _api_token(user) -> dict:
    """The API's personal token, where the API is installed."""
    from django.apps import apps

    try:
        model = apps.get_model("console", "ApiToken")
    except LookupError:
        return {}
    token, _ = model.issue(user, "hostile")
    return {"api-token": token.pk}


def real_kwargs(name, route, world):
    kwargs = {}
    for param in re.findall(r"<(?:\w+:)?(\w+)>", route):
        if param == "pk":
            bare = name.partition(":")[2]
            prefix = max(
                (p for p in world["by_prefix"] if bare.startswith(p)), key=len, default=None
            )
            assert prefix, f"tests/test_hostile_input.py: no object for <pk> of {name}; add one"
            kwargs[param] = world["by_prefix"][prefix]
        else:
            assert param in world, f"tests/test_hostile_input.py: no object for <{param}> of {name}"
            kwargs[param] = world[param]
    return kwargs


def fill(route, values: dict, junk=None) -> str:
    """The path with each <param> set to its value, or to the raw (already encoded) junk."""

    def one(match):
        if junk and match[1] in junk:
            return junk[match[1]]
        return quote_from_bytes(str(values[match[1]]).encode())

    return re.sub(r"<(?:\w+:)?(\w+)>", one, route)


class Forms(html.parser.HTMLParser):
    """Every <form> of a page: method, action, fields [(name, value)] and submit buttons."""

    def __init__(self):
        super().__init__()
        self.forms, self.current, self.textarea, self.select = [], None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.current = {
                "method": (attrs.get("method") or "get").lower(),
                "action": attrs.get("action"),
                "fields": [],
                "buttons": [],
                "actions": set(),
            }
            self.forms.append(self.current)
        if self.current is None:
            return
        for target in ("hx-post", "formaction", "hx-get"):
            if attrs.get(target):
                self.current["actions"].add(attrs[target])
        if tag == "form" or not attrs.get("name"):
            return
        name = attrs["name"]
        if tag == "input":
            kind = (attrs.get("type") or "text").lower()
            if kind in ("submit", "image"):
                self.current["buttons"].append((name, attrs.get("value") or ""))
            elif kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.current["fields"].append((name, attrs.get("value") or "on"))
                else:
                    self.current["fields"].append((name, None))  # hostile only
            elif kind != "file":
                self.current["fields"].append((name, attrs.get("value") or ""))
        elif tag == "button" and (attrs.get("type") or "submit") == "submit":
            self.current["buttons"].append((name, attrs.get("value") or ""))
        elif tag == "textarea":
            self.textarea = [name, ""]
            self.current["fields"].append(self.textarea)
        elif tag == "select":
            self.select = [name, None]
            self.current["fields"].append(self.select)
        elif tag == "option" and self.select is not None:
            if self.select[1] is None or "selected" in attrs:
                self.select[1] = attrs.get("value", "")

    def handle_data(self, data):
        if self.textarea is not None:
            self.textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None


def page_forms(response):
    if "html" not in response.get("Content-Type", ""):
        return []
    parser = Forms()
    parser.feed(response.content.decode("utf-8", "replace"))
    return [
        {**form, "fields": [tuple(field) for field in form["fields"]]}
        for form in parser.forms
        if form["action"] != reverse("console:logout")  # would end the session mid-test
    ]


def encode(pairs) -> bytes:
    """A form body or query string from (name, bytes-or-str-or-None) pairs; None is left out."""
    out = []
    for name, value in pairs:
        if value is None:
            continue
        if value is LISTS:
            out += [(name, b"a"), (name, b"b"), (name + "[]", b"c")]
            continue
        out.append((name, value if isinstance(value, bytes) else str(value).encode()))
    return urlencode(out).encode()


class Prober:
    """Sends requests and collects every 500 or traceback instead of stopping at the first."""

    def __init__(self, client, who):
        self.client, self.who, self.failures, self.count = client, who, [], 0

    def send(self, method, path, query=b"", body=None, htmx=False):
        self.count += 1
        extra = {"QUERY_STRING": query.decode("ascii")}
        if htmx:
            extra["HTTP_HX_REQUEST"] = "true"
        what = f"{self.who} {method} {path}?{query[:120]!r}" + (
            f" body {body[:160]!r}" if body else ""
        )
        try:
            if method == "GET":
                response = self.client.get(path, **extra)
            else:
                response = self.client.post(
                    path,
                    data=body or b"",
                    content_type="application/x-www-form-urlencoded",
                    **extra,
                )
        except Exception as exc:
            self.failures.append(f"{what}: raised {type(exc).__name__}: {str(exc)[:200]}")
            return None
        crashed = response.status_code >= 500 and response.status_code not in GATEWAY_ANSWERS
        if crashed or b"Traceback (most recent call last)" in (
            getattr(response, "content", b"") or b""
        ):
            self.failures.append(f"{what}: {response.status_code}")
        return response


def rotate(index, count=2):
    """`count` hostile values for the index-th field: every value is used across fields."""
    values = [*HOSTILE, LISTS]
    return [values[(index * count + k) % len(values)] for k in range(count)]


def probe_queries(prober, path, names, *, one_by_one=True):
    for index, name in enumerate(names if one_by_one else []):
        for value in rotate(index):
            prober.send("GET", path, encode([(name, value)]), htmx=index % 2 == 1)
    for value in HOSTILE[:-1]:  # every parameter at once (the 1 MB string only one at a time)
        prober.send("GET", path, encode([(name, value) for name in names]))


def probe_form(prober, form, page_path):
    """Post the form back with each field, then all of them, hostile; to every URL it targets
    (its action, and the hx-post/formaction of its controls), rotating like the values."""
    actions = sorted(
        {
            target.partition("?")[0]
            for target in [form["action"] or page_path, *form.get("actions", ())]
            if target.startswith("/")  # not another site (e.g. a Directus link)
        }
    )
    if not actions:
        return
    fields = form["fields"]
    buttons = form["buttons"] or [None]
    method = form["method"].upper()
    for index, (name, _) in enumerate(fields):
        button = buttons[index % len(buttons)]
        for k, value in enumerate(rotate(index)):
            action = actions[(index * 2 + k) % len(actions)]
            pairs = [(n, value if n == name else v) for n, v in fields]
            prober.send(method, action, *_split(form, pairs, button))
    for index, value in enumerate(HOSTILE[:-1]):
        button = buttons[index % len(buttons)]
        pairs = [(n, value) for n, _ in fields]
        prober.send(method, actions[index % len(actions)], *_split(form, pairs, button))


def _split(form, pairs, button):
    if button is not None:
        pairs = [*pairs, button]
    if form["method"] == "get":
        return (encode(pairs),)
    return (b"", encode(pairs))


MORE_FORMS = {
    "query-builder": lambda kwargs, world: f"saved={world['by_prefix']['saved-query']}",
}


def probe_url(prober, name, route, kwargs, callback, world, *, forms=True):
    path = fill(route, kwargs)
    page = prober.send("GET", path)
    for junk in (JUNK_PATH_ARGS if forms else JUNK_PATH_ARGS[:2]) if kwargs else []:
        for param in kwargs:
            junk_path = fill(route, kwargs, {param: junk})
            prober.send("GET", junk_path)
            if forms:
                prober.send("POST", junk_path, b"", encode([("row", b"abc")]))
    probe_queries(prober, path, GET_PARAMS, one_by_one=forms)
    if not forms:
        return
    found = page_forms(page) if page is not None and page.status_code == 200 else []
    if name in MORE_FORMS:  # the same page in another state shows more fields
        more = prober.send("GET", path, MORE_FORMS[name](kwargs, world).encode())
        found += page_forms(more) if more is not None and more.status_code == 200 else []
    for form in found:
        probe_form(prober, form, path)
    if page is not None and page.status_code == 405:
        # A POST-only URL (its form sits on another page): post every name any view reads.
        names = sorted(set(_post_names(callback)) | {"row", "confirm", "action"})
        probe_form(
            prober,
            {"method": "post", "action": path, "fields": [(n, "") for n in names], "buttons": []},
            path,
        )


def _post_names(callback):
    try:
        source = inspect.getsource(inspect.getmodule(callback))
    except (OSError, TypeError):
        return []
    return re.findall(r"""request\.POST(?:\.get(?:list)?\(\s*|\[)["']([\w-]+)["']""", source)


@pytest.mark.parametrize("name, route, callback", URLS, ids=[u[0] for u in URLS])
def test_no_input_gets_a_500(client, admin_user, viewer_user, world, name, route, callback):
    kwargs = real_kwargs(name, route, world)
    client.force_login(viewer_user)
    viewer = Prober(client, "viewer")
    probe_url(viewer, name, route, kwargs, callback, world, forms=False)
    client.force_login(admin_user)
    admin = Prober(client, "admin")
    probe_url(admin, name, route, kwargs, callback, world)
    failures = viewer.failures + admin.failures
    assert not failures, f"{len(failures)} of {viewer.count + admin.count} requests:\n" + "\n".join(
        failures[:40]
    )
