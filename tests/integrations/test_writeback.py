"""The Directus writer against an in-memory Directus behind respx (tests/integrations/directus_fake.py)."""

import httpx
import respx

from integrations import http, writeback
from integrations.directus import DirectusClient
from integrations.writeback import Writer, WriteRow
from tests.integrations.directus_fake import BASE, TOKEN, FakeLeads, error


def make_writer(fake, mode="upsert", **options):
    router = respx.mock(assert_all_called=False)
    router.start()
    fake.mount(router)
    client = DirectusClient(BASE, TOKEN, client=http.make_client(policy=http.OutboundPolicy()))
    pauses = []
    writer = Writer(
        client,
        "leads",
        mode=mode,
        match_field="email" if mode == "upsert" else "",
        sleep=pauses.append,
        **options,
    )
    writer.pauses = pauses
    writer.router = router
    return writer


def rows(*emails, **extra):
    return [
        WriteRow(f"line {n}", {"email": e, **extra} if e is not None else {**extra})
        for n, e in enumerate(emails, 2)
    ]


def test_it_upserts_creating_new_rows_and_updating_existing_ones():
    fake = FakeLeads([{"email": "a@x.example", "score": 1}])
    writer = make_writer(fake)
    try:
        outcomes = writer.write(rows("a@x.example", "b@x.example", score=9))
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["updated", "created"]
    assert fake.by_email("a@x.example")["score"] == 9
    assert fake.by_email("b@x.example")["score"] == 9
    assert outcomes[0].item_key == 1 and outcomes[1].item_key == 2
    # one lookup, one PATCH, one POST
    assert [m for m, _ in fake.calls if m != "GET"] == ["PATCH", "POST"]


def test_it_isolates_one_duplicate_in_a_batch_and_writes_every_other_row():
    fake = FakeLeads([{"email": "taken@x.example"}])
    writer = make_writer(fake, mode="create")
    try:
        batch = rows(
            *[f"r{n}@x.example" for n in range(9)],
            "taken@x.example",
            *[f"s{n}@x.example" for n in range(10)],
        )
        outcomes = writer.write(batch)
    finally:
        writer.router.stop()
    failed = [o for o in outcomes if o.status == "failed"]
    assert len(failed) == 1 and failed[0].key == "line 11"
    assert failed[0].error_code == "RECORD_NOT_UNIQUE"
    assert 'field "email" must be unique' in failed[0].error_message
    assert sum(o.status == "created" for o in outcomes) == 19
    assert len(fake.items) == 20


def test_it_bisects_when_the_error_does_not_name_the_row():
    fake = FakeLeads()
    writer = make_writer(fake, mode="create")
    bad_index = 5

    original = fake._create

    def create(body):
        # A server-side constraint Directus reports without naming the value.
        if any(row.get("company") == "broken" for row in body):
            return error(
                400, "INVALID_FOREIGN_KEY", 'Invalid foreign key "company".', field="company"
            )
        return original(body)

    fake._create = create
    try:
        batch = rows(*[f"r{n}@x.example" for n in range(16)])
        batch[bad_index].data["company"] = "broken"
        outcomes = writer.write(batch)
    finally:
        writer.router.stop()
    assert [o.key for o in outcomes if o.status == "failed"] == [f"line {bad_index + 2}"]
    assert outcomes[bad_index].error_code == "INVALID_FOREIGN_KEY"
    assert len(fake.items) == 15
    assert writer.stats.splits >= 4  # 16 -> 8 -> 4 -> 2 -> 1


def test_it_names_the_required_field_that_is_missing():
    fake = FakeLeads()
    writer = make_writer(fake, mode="create")
    try:
        outcomes = writer.write(
            [WriteRow("a", {"email": "a@x.example"}), WriteRow("b", {"first_name": "No mail"})]
        )
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["created", "failed"]
    assert outcomes[1].error_code == "FAILED_VALIDATION"
    assert 'field "email" is required' in outcomes[1].error_message


def test_upsert_fails_rows_without_a_match_value_and_writes_the_rest():
    fake = FakeLeads()
    writer = make_writer(fake)
    try:
        outcomes = writer.write(rows("a@x.example", None, "", first_name="X"))
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["created", "failed", "failed"]
    assert outcomes[1].error_code == "MISSING_MATCH_VALUE"
    assert '"email"' in outcomes[1].error_message


def test_upsert_writes_a_value_repeated_in_one_batch_once_then_updates_it():
    fake = FakeLeads()
    writer = make_writer(fake)
    try:
        batch = [
            WriteRow("1", {"email": "a@x.example", "score": 1}),
            WriteRow("2", {"email": "a@x.example", "score": 2}),
        ]
        outcomes = writer.write(batch)
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["created", "updated"]
    assert len(fake.items) == 1 and fake.by_email("a@x.example")["score"] == 2


def test_upsert_looks_up_long_lists_with_search():
    fake = FakeLeads([{"email": f"existing-{n}-padding-padding@x.example"} for n in range(300)])
    writer = make_writer(fake, batch_size=300)
    try:
        outcomes = writer.write(
            rows(*[f"existing-{n}-padding-padding@x.example" for n in range(300)], score=3)
        )
    finally:
        writer.router.stop()
    assert {o.status for o in outcomes} == {"updated"}
    assert fake.searches == 1


def test_a_token_that_may_update_but_not_create_fails_only_the_creates_with_a_reason():
    fake = FakeLeads([{"email": "a@x.example"}], create="none")
    writer = make_writer(fake)
    try:
        outcomes = writer.write(rows("a@x.example", "new@x.example", score=5))
    finally:
        writer.router.stop()
    assert outcomes[0].status == "updated"
    assert outcomes[1].status == "failed" and outcomes[1].error_code == "NOT_PERMITTED"
    assert 'not permitted to create items in "leads"' in outcomes[1].error_message
    assert "may update items" in outcomes[1].error_message
    assert "POST" not in [m for m, _ in fake.calls]  # nothing sent that was bound to fail


def test_a_403_without_a_permissions_answer_says_missing_or_not_permitted():
    fake = FakeLeads()
    writer = make_writer(fake, mode="create")
    fake.fail_next = [error(403, "FORBIDDEN", "You don't have permission to access this.")] * 5
    try:
        outcomes = writer.write(rows("a@x.example", "b@x.example"))
    finally:
        writer.router.stop()
    assert {o.status for o in outcomes} == {"failed"}
    assert "missing or not permitted" in outcomes[0].error_message


def test_update_by_key_reports_keys_that_do_not_exist():
    fake = FakeLeads([{"email": "a@x.example"}])
    writer = make_writer(fake, mode="update")
    try:
        outcomes = writer.write(
            [
                WriteRow("1", {"id": 1, "score": 4}),
                WriteRow("2", {"id": 99, "score": 4}),
                WriteRow("3", {"score": 4}),
            ]
        )
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["updated", "failed", "failed"]
    assert outcomes[1].error_code == "NOT_FOUND" and "changed nothing" in outcomes[1].error_message
    assert outcomes[2].error_code == "MISSING_KEY"


def test_it_waits_as_retry_after_says_on_429_and_slows_the_shared_limit():
    fake = FakeLeads()

    class Limiter:
        rate = 10
        slowed = []

        def acquire(self, stop=None):
            return True

        def slow_down(self, pause):
            self.slowed.append(pause)
            return 0.5

    limiter = Limiter()
    writer = make_writer(fake, mode="create", limiter=limiter)
    too_many = httpx.Response(
        429,
        headers={"Retry-After": "2"},
        json={
            "errors": [
                {
                    "message": "Too many requests, retry after 1500ms.",
                    "extensions": {"code": "REQUESTS_EXCEEDED"},
                }
            ]
        },
    )
    fake.fail_next = [too_many, too_many]
    try:
        outcomes = writer.write(rows("a@x.example"))
    finally:
        writer.router.stop()
    assert outcomes[0].status == "created" and outcomes[0].attempts == 3
    assert writer.pauses == [2.0, 2.0]
    assert limiter.slowed == [2.0, 2.0]


def test_a_retry_after_of_zero_still_pauses_a_little():
    fake = FakeLeads()
    writer = make_writer(fake, mode="create")
    fake.fail_next = [
        httpx.Response(
            429,
            headers={"Retry-After": "0"},
            json={"errors": [{"message": "x", "extensions": {"code": "REQUESTS_EXCEEDED"}}]},
        )
    ]
    try:
        writer.write(rows("a@x.example"))
    finally:
        writer.router.stop()
    assert writer.pauses == [writeback.MIN_PAUSE_SECONDS]


def test_a_create_that_timed_out_is_looked_up_again_before_it_is_created_twice(monkeypatch):
    fake = FakeLeads()
    writer = make_writer(fake)
    original = fake._create
    state = {"timed_out": False}

    def create(body):
        response = original(body)  # written...
        if not state["timed_out"]:
            state["timed_out"] = True
            raise httpx.ReadTimeout("timed out")  # ...but the answer never came
        return response

    fake._create = create
    try:
        outcomes = writer.write(rows("a@x.example", "b@x.example"))
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["updated", "updated"]
    assert len(fake.items) == 2


def test_a_bad_token_fails_every_row_with_one_request():
    fake = FakeLeads()
    router = respx.mock(assert_all_called=False)
    router.start()
    fake.mount(router)
    client = http.make_client(policy=http.OutboundPolicy())
    writer = Writer(
        DirectusClient(BASE, "wrong-token-0000000", client=client),
        "leads",
        mode="create",
        sleep=lambda s: None,
    )
    try:
        outcomes = writer.write(rows(*[f"{n}@x.example" for n in range(8)]))
    finally:
        router.stop()
    assert {o.error_code for o in outcomes} == {"INVALID_CREDENTIALS"}
    assert len([c for c in fake.calls if c[0] == "POST"]) == 0  # refused before the fake's logic
    assert writer.stats.splits == 0
