"""Write-back against the real Directus: upsert `leads` by email, one bad row isolated, and the
permission failures explained. Every item created here has an email ending in WB_DOMAIN and is
deleted at the end; updated seed rows are put back as they were."""

import uuid

import pytest

from integrations import http
from integrations.directus import DirectusClient
from integrations.writeback import Writer, WriteRow

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


@pytest.fixture
def update_only_token(admin, live_directus):
    """A user whose policy may read and update `leads` but not create them."""
    suffix = uuid.uuid4().hex[:8]
    token = f"kiln-update-only-{suffix}"
    policy = admin._data(
        "POST",
        "/policies",
        body={"name": f"kiln update-only {suffix}", "admin_access": False, "app_access": False},
    )
    for action in ("read", "update"):
        admin._data(
            "POST",
            "/permissions",
            body={
                "policy": policy["id"],
                "collection": "leads",
                "action": action,
                "fields": ["*"],
                "permissions": {},
                "validation": {},
            },
        )
    role = admin._data(
        "POST",
        "/roles",
        body={"name": f"kiln update-only {suffix}", "policies": [{"policy": policy["id"]}]},
    )
    user = admin._data(
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
        admin._data("DELETE", f"/users/{user['id']}")
        admin._data("DELETE", f"/roles/{role['id']}")
        admin._data("DELETE", f"/policies/{policy['id']}")


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
