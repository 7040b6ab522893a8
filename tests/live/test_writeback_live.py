"""Write-back against the real Directus: upsert `leads` by email, one bad row isolated, and the
permission failures explained. Every item created here has an email ending in WB_DOMAIN and is
deleted at the end; updated seed rows are put back as they were."""

import contextlib
import uuid

import pytest

from integrations.directus.client import DirectusClient, DirectusError
from integrations.outbound import http
from integrations.runs.writeback import Writer, WriteRow

WB_DOMAIN = "kiln-writeback-live.example"


def client(url, token):
    return DirectusClient(
        url, token, client=http.make_client(policy=http.OutboundPolicy(allow_private=True))
    )


@pytest.fixture
def admin(live_directus):
    with client(live_directus.url, live_directus.admin_token) as directus:
        yield directus


@pytest.fixture
def cleanup(admin):
    """Delete every lead this test created (by email domain), and restore touched seed rows."""
    restore = {}

    def remember(item_id, fields):
        item = admin.get_item("leads", item_id, {"fields": ["id", *fields]})
        restore[item_id] = item

    yield remember
    created = admin.list_items(
        "leads", {"filter": {"email": {"_ends_with": WB_DOMAIN}}, "fields": ["id"], "limit": -1}
    )
    if created.data:
        admin.delete_items("leads", [item["id"] for item in created.data])
    if restore:
        admin.update_items_batch("leads", list(restore.values()))


def seed_leads(admin, count=2):
    return admin.list_items(
        "leads", {"sort": ["id"], "limit": count, "fields": ["id", "email", "score"]}
    ).data


def test_upsert_by_email_creates_updates_and_isolates_one_bad_row(admin, cleanup):
    existing = seed_leads(admin, 3)
    for item in existing:
        cleanup(item["id"], ["score", "company"])
    run = uuid.uuid4().hex[:8]
    rows = [
        WriteRow(f"e{n}", {"email": item["email"], "score": 900 + n})
        for n, item in enumerate(existing)
    ]
    rows += [
        WriteRow(
            f"n{n}", {"email": f"new-{run}-{n}@{WB_DOMAIN}", "first_name": f"New {n}", "score": n}
        )
        for n in range(40)
    ]
    # Directus answers INVALID_FOREIGN_KEY without naming field or value: only splitting finds it.
    rows.insert(2, WriteRow("bad-update", {"email": existing[2]["email"], "company": 999999}))
    rows.insert(20, WriteRow("bad-create", {"email": f"bad-{run}@{WB_DOMAIN}", "company": 999999}))
    rows.insert(30, WriteRow("no-email", {"first_name": "No email at all"}))

    writer = Writer(admin, "leads", mode="upsert", match_field="email", batch_size=100)
    outcomes = {o.key: o for o in writer.write(rows)}

    assert outcomes["e0"].status == "updated" and outcomes["e0"].item_key == existing[0]["id"]
    assert outcomes["e1"].status == "updated"
    assert (
        outcomes["no-email"].status == "failed"
        and outcomes["no-email"].error_code == "MISSING_MATCH_VALUE"
    )
    for key in ("bad-update", "bad-create"):
        assert outcomes[key].status == "failed", outcomes[key]
        assert outcomes[key].error_code == "INVALID_FOREIGN_KEY"
    created = [o for k, o in outcomes.items() if k[0] == "n" and k[1:].isdigit()]
    assert len(created) == 40
    assert [o for o in created if not (o.status == "created" and o.item_key)] == []
    assert writer.stats.splits > 0
    stored = admin.list_items(
        "leads", {"filter": {"email": {"_ends_with": WB_DOMAIN}}, "limit": -1, "fields": ["id"]}
    )
    assert len(stored.data) == 40
    assert admin.get_item("leads", existing[1]["id"], {"fields": ["score"]})["score"] == 901


def test_a_create_batch_with_one_duplicate_writes_every_other_row(admin, cleanup):
    taken = seed_leads(admin, 1)[0]["email"]
    run = uuid.uuid4().hex[:8]
    rows = [WriteRow(f"n{n}", {"email": f"dup-{run}-{n}@{WB_DOMAIN}"}) for n in range(30)]
    rows.insert(17, WriteRow("dup", {"email": taken}))
    rows.insert(5, WriteRow("noemail", {"first_name": "Missing"}))

    writer = Writer(admin, "leads", mode="create", batch_size=100)
    outcomes = {o.key: o for o in writer.write(rows)}

    assert outcomes["dup"].status == "failed" and outcomes["dup"].error_code == "RECORD_NOT_UNIQUE"
    assert 'field "email" must be unique' in outcomes["dup"].error_message
    assert (
        outcomes["noemail"].status == "failed"
        and outcomes["noemail"].error_code == "FAILED_VALIDATION"
    )
    assert 'field "email" is required' in outcomes["noemail"].error_message
    assert sum(o.status == "created" for o in outcomes.values()) == 30
    # Pinpointed from the error bodies: three POSTs, not a bisection.
    assert writer.stats.requests <= 5


def test_the_read_only_token_failures_are_explained(live_directus, admin, cleanup):
    with client(live_directus.url, live_directus.read_token) as reader:
        upsert = Writer(reader, "leads", mode="upsert", match_field="email")
        outcome = upsert.write([WriteRow("r1", {"email": f"ro@{WB_DOMAIN}"})])[0]
        assert outcome.status == "failed" and outcome.http_status == 403
        assert "leads" in outcome.error_message

        create = Writer(reader, "articles", mode="create")
        outcome = create.write(
            [WriteRow("a1", {"title": "Read-only", "slug": f"ro-{uuid.uuid4().hex[:6]}"})]
        )[0]
        assert outcome.status == "failed" and outcome.error_code == "NOT_PERMITTED"
        assert 'not permitted to create items in "articles"' in outcome.error_message


@contextlib.contextmanager
def update_only_user(admin, collection="leads"):
    """A user whose policy may read and update `collection` but not create in it; its token."""
    suffix = uuid.uuid4().hex[:8]
    token = f"kiln-update-only-{suffix}"
    policy = admin.call(
        "POST",
        "/policies",
        body={"name": f"kiln update-only {suffix}", "admin_access": False, "app_access": False},
    )
    for action in ("read", "update"):
        admin.call(
            "POST",
            "/permissions",
            body={
                "policy": policy["id"],
                "collection": collection,
                "action": action,
                "fields": ["*"],
                "permissions": {},
                "validation": {},
            },
        )
    role = admin.call(
        "POST",
        "/roles",
        body={"name": f"kiln update-only {suffix}", "policies": [{"policy": policy["id"]}]},
    )
    user = admin.call(
        "POST",
        "/users",
        body={
            "email": f"kiln-update-only-{suffix}@example.com",
            "role": role["id"],
            "status": "active",
            "token": token,
        },
    )
    try:
        yield token
    finally:
        admin.call("DELETE", f"/users/{user['id']}")
        admin.call("DELETE", f"/roles/{role['id']}")
        admin.call("DELETE", f"/policies/{policy['id']}")


@pytest.fixture
def update_only_token(admin):
    """A user whose policy may read and update `leads` but not create them."""
    with update_only_user(admin) as token:
        yield token


def test_a_token_that_may_update_but_not_create_writes_the_updates(
    live_directus, admin, cleanup, update_only_token
):
    existing = seed_leads(admin, 1)[0]
    cleanup(existing["id"], ["score"])
    with client(live_directus.url, update_only_token) as directus:
        writer = Writer(directus, "leads", mode="upsert", match_field="email")
        outcomes = writer.write(
            [
                WriteRow("old", {"email": existing["email"], "score": 77}),
                WriteRow("new", {"email": f"brand-new@{WB_DOMAIN}", "score": 1}),
            ]
        )
    assert outcomes[0].status == "updated"
    assert outcomes[1].status == "failed" and outcomes[1].error_code == "NOT_PERMITTED"
    assert "may update items" in outcomes[1].error_message
    assert admin.get_item("leads", existing["id"], {"fields": ["score"]})["score"] == 77


# -- a Directus with server limits (QUERY_LIMIT_MAX=500, MAX_BATCH_MUTATION=50, SEED=0) ---------
# Every lead written here has an email in a domain unique to the test, deleted at the end in
# batches of at most 50 (a DELETE counts against MAX_BATCH_MUTATION too).


@pytest.fixture
def limited(live_directus_limited):
    with client(live_directus_limited.url, live_directus_limited.admin_token) as directus:
        yield directus


@pytest.fixture
def domain(limited):
    name = f"{uuid.uuid4().hex[:10]}.{WB_DOMAIN}"
    yield name
    while True:
        page = limited.list_items(
            "leads", {"filter": {"email": {"_ends_with": name}}, "fields": ["id"], "limit": 50}
        )
        if not page.data:
            break
        limited.delete_items("leads", [item["id"] for item in page.data])


def make_leads(directus, emails, **data) -> list[int]:
    """Create one lead per email, 50 per POST (the server's limit), and return their ids."""
    ids = []
    for start in range(0, len(emails), 50):
        body = [{"email": email, **data} for email in emails[start : start + 50]]
        created = directus.create_items("leads", body, {"fields": ["id"], "limit": 50})
        ids += [item["id"] for item in created]
    assert len(ids) == len(emails)
    return ids


def stored(directus, domain) -> dict:
    """{email: item} for every lead in `domain`, read page by page."""
    items, page = {}, 1
    while True:
        data = directus.list_items(
            "leads",
            {
                "filter": {"email": {"_ends_with": domain}},
                "fields": ["id", "email", "score"],
                "sort": ["id"],
                "limit": 500,
                "page": page,
            },
        ).data
        items.update({item["email"]: item for item in data})
        if len(data) < 500:
            return items
        page += 1


def test_an_update_of_380_rows_in_batches_of_200_reports_every_row_updated(limited, domain):
    emails = [f"u{n}@{domain}" for n in range(380)]
    ids = make_leads(limited, emails, score=0)
    rows = [WriteRow(f"r{n}", {"id": pk, "score": 1000 + n}) for n, pk in enumerate(ids)]

    writer = Writer(limited, "leads", mode="update", batch_size=200)
    outcomes = writer.write(rows)

    wrong = [(o.key, o.status, o.error_code, o.error_message) for o in outcomes if not o.ok]
    assert wrong == []
    assert [(o.status, o.item_key) for o in outcomes] == [("updated", pk) for pk in ids]
    held = stored(limited, domain)
    assert [held[email]["score"] for email in emails] == [1000 + n for n in range(380)]
    # Refused once (200 > 50), then 50 per PATCH with the whole readback: nothing read back.
    assert writer.stats.limit_refusals == 1 and writer.batch_limit == 50
    assert writer.stats.codes == {"INVALID_PAYLOAD": 1}
    assert writer.stats.confirm_reads == 0


def test_an_upsert_of_380_rows_updates_and_creates_every_row(limited, domain):
    existing = [f"x{n}@{domain}" for n in range(300)]
    ids = make_leads(limited, existing, score=0)
    rows = [WriteRow(f"e{n}", {"email": e, "score": 2000 + n}) for n, e in enumerate(existing)]
    rows += [WriteRow(f"n{n}", {"email": f"new{n}@{domain}", "score": n}) for n in range(80)]

    writer = Writer(limited, "leads", mode="upsert", match_field="email", batch_size=200)
    outcomes = writer.write(rows)

    assert [o.status for o in outcomes] == ["updated"] * 300 + ["created"] * 80
    assert [o.item_key for o in outcomes[:300]] == ids
    held = stored(limited, domain)
    assert len(held) == 380
    assert [held[e]["score"] for e in existing] == [2000 + n for n in range(300)]
    assert [o.item_key for o in outcomes[300:]] == [
        held[f"new{n}@{domain}"]["id"] for n in range(80)
    ]
    assert writer.stats.limit_refusals == 1


def test_a_create_batch_above_the_mutation_limit_adapts_once(limited, domain):
    emails = [f"c{n}@{domain}" for n in range(120)]
    writer = Writer(limited, "leads", mode="create", batch_size=120)
    outcomes = writer.write([WriteRow(f"c{n}", {"email": e}) for n, e in enumerate(emails)])
    more = writer.write([WriteRow(f"d{n}", {"email": f"d{n}@{domain}"}) for n in range(60)])

    held = stored(limited, domain)
    assert [(o.status, o.item_key) for o in outcomes] == [
        ("created", held[e]["id"]) for e in emails
    ]
    assert {o.status for o in more} == {"created"} and len(held) == 180
    assert writer.stats.codes == {"INVALID_PAYLOAD": 1}  # the 120: refused once, not per chunk
    assert writer.batch_limit == 50 and writer.stats.splits == 0


def test_an_update_only_token_gets_every_match_updated_and_every_other_row_its_reason(
    live_directus_limited, limited, domain
):
    existing = [f"m{n}@{domain}" for n in range(150)]
    ids = make_leads(limited, existing, score=0)
    rows = [WriteRow(f"e{n}", {"email": e, "score": 3000 + n}) for n, e in enumerate(existing)]
    rows += [WriteRow(f"n{n}", {"email": f"fresh{n}@{domain}", "score": 1}) for n in range(30)]
    rows.insert(60, WriteRow("twin", {"email": f"M7@{domain.upper()}", "score": 1}))

    with (
        update_only_user(limited) as token,
        client(live_directus_limited.url, token) as directus,
    ):
        writer = Writer(directus, "leads", mode="upsert", match_field="email", batch_size=200)
        outcomes = {o.key: o for o in writer.write(rows)}

    updated = [k for k, o in outcomes.items() if o.status == "updated"]
    assert updated == [f"e{n}" for n in range(150)]
    assert [outcomes[f"e{n}"].item_key for n in range(150)] == ids
    for n in range(30):
        outcome = outcomes[f"n{n}"]
        assert (outcome.status, outcome.error_code) == ("failed", "NOT_PERMITTED")
        assert 'not permitted to create items in "leads"' in outcome.error_message
        assert "letter case" not in outcome.error_message
    twin = outcomes["twin"]
    assert (twin.status, twin.error_code) == ("failed", "NOT_PERMITTED")
    assert twin.error_message.startswith(f'An item with "m7@{domain}" exists in "leads"')
    assert "matching is case-sensitive" in twin.error_message
    assert "turn on 'ignore letter case'" in twin.error_message
    held = stored(limited, domain)
    assert [held[e]["score"] for e in existing] == [3000 + n for n in range(150)]
    assert len(held) == 150  # nothing created


def test_ignore_letter_case_updates_the_item_that_differs_only_in_case(limited, domain):
    ann, joann, other = make_leads(
        limited, [f"ann@{domain}", f"joann@{domain}", f"Other@{domain}"], score=0
    )
    rows = [
        WriteRow("ann", {"email": f"ANN@{domain.upper()}", "score": 11}),
        WriteRow("other", {"email": f"other@{domain}", "score": 12}),
        WriteRow("new", {"email": f"nn@{domain}", "score": 13}),
    ]

    writer = Writer(limited, "leads", mode="upsert", match_field="email", match_ignore_case=True)
    outcomes = writer.write(rows)

    assert [(o.status, o.item_key) for o in outcomes[:2]] == [("updated", ann), ("updated", other)]
    assert outcomes[2].status == "created"
    held = stored(limited, domain)
    assert held[f"ann@{domain}"]["score"] == 11  # and its email keeps the stored spelling
    assert held[f"joann@{domain}"]["score"] == 0  # "ann@" is in "joann@": never a match
    assert held[f"Other@{domain}"]["score"] == 12
    assert set(held) == {f"ann@{domain}", f"joann@{domain}", f"Other@{domain}", f"nn@{domain}"}

    # Without the option the same row matches nothing and, allowed to create, makes a twin.
    case_sensitive = Writer(limited, "leads", mode="upsert", match_field="email")
    outcome = case_sensitive.write([WriteRow("ann", {"email": f"ANN@{domain}", "score": 1})])[0]
    assert outcome.status == "created" and outcome.item_key not in (ann, joann, other)


def test_directus_refuses_ieq_on_strings_and_takes_icontains(limited, domain):
    """Why the case-insensitive lookup reads with _icontains and compares folded values."""
    make_leads(limited, [f"ann@{domain}", f"joann@{domain}"])
    with pytest.raises(DirectusError) as refused:
        limited.list_items("leads", {"filter": {"email": {"_ieq": f"ANN@{domain}"}}})
    assert (refused.value.status, refused.value.code) == (400, "INVALID_QUERY")
    assert refused.value.message == (
        'Invalid query. "string" field type does not contain the "_ieq" filter operator.'
    )
    page = limited.search_items(
        "leads",
        {
            "filter": {"_or": [{"email": {"_icontains": f"ANN@{domain.upper()}"}}]},
            "fields": ["email"],
            "sort": ["id"],
            "limit": 10,
            "page": 1,
        },
    )
    assert [item["email"] for item in page.data] == [f"ann@{domain}", f"joann@{domain}"]
