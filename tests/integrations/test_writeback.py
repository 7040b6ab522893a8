"""The Directus writer against an in-memory Directus behind respx (tests/integrations/directus_fake.py)."""

import json
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from integrations.directus.client import DirectusClient
from integrations.outbound import http
from integrations.runs import writeback
from integrations.runs.writeback import Writer, WriteRow
from tests.integrations.directus_fake import (
    BASE,
    FORBIDDEN,
    TOKEN,
    FakeLeads,
    error,
    not_unique,
)


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
    fake = LimitedLeads([{"email": "a@x.example"}], create="none")
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
    fake = LimitedLeads([{"email": "a@x.example"}])
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


# -- Directus's server limits, readbacks and letter case -----------------------------------------


class LimitedLeads(FakeLeads):
    """FakeLeads with the limits of a Directus 12.4 started with QUERY_LIMIT_MAX (and
    MAX_BATCH_MUTATION), as harness/directus/observed.md and live checks recorded them:

    - a write's readback and a read without `limit` answer at most QUERY_LIMIT_DEFAULT (100)
      items when QUERY_LIMIT_MAX is set; `limit=-1` is cut to the max; `limit` above the max is
      400 INVALID_QUERY and nothing is written;
    - a POST/PATCH of more items than MAX_BATCH_MUTATION is 400 INVALID_PAYLOAD, nothing written;
    - reads filter by `_in`, `_icontains` (substrings, any case) and `_or`; `_ieq` on a string
      field is 400 INVALID_QUERY; a token that may not read gets 204 from a write.
    """

    def __init__(
        self,
        items=(),
        *,
        query_max=500,
        query_default=100,
        max_batch=None,
        cut_readback=False,
        unique_ignores_case=False,
        **access,
    ):
        super().__init__(items, **access)
        self.query_max, self.query_default, self.max_batch = query_max, query_default, max_batch
        self.cut_readback = cut_readback  # answer QUERY_LIMIT_DEFAULT items whatever `limit` says
        self.unique_ignores_case = unique_ignores_case  # like a citext/collated unique index
        self.refusals = 0
        self.reads: list[dict] = []
        self.write_limits: list[str | None] = []

    def __call__(self, request):
        self._params = dict(parse_qsl(request.url.query.decode()))
        return super().__call__(request)

    def _limit_error(self, raw):
        if raw is not None and self.query_max and int(raw) > self.query_max:
            message = f'"limit" must be less than or equal to {self.query_max}'
            return error(400, "INVALID_QUERY", f"Invalid query. {message}.", reason=message)
        return None

    def _cap(self, raw, count):
        if raw is None:
            return min(count, self.query_default) if self.query_max else count
        limit = int(raw)
        if limit == -1:
            return min(count, self.query_max) if self.query_max else count
        return min(count, limit)

    def _mutate(self, body, write):
        raw = self._params.get("limit")
        self.write_limits.append(raw)
        refused = self._limit_error(raw)
        if refused is not None:
            return refused
        rows = body if isinstance(body, list) else [body]
        if self.max_batch and len(rows) > self.max_batch:
            self.refusals += 1
            reason = f"Exceeded max batch mutation limit of {self.max_batch}"
            return error(400, "INVALID_PAYLOAD", f"Invalid payload. {reason}.", reason=reason)
        response = write(body)
        if response.status_code != 200:
            return response
        if not self._allowed("read"):
            return httpx.Response(204)  # Directus: the write happened, the readback is forbidden
        data = response.json()["data"]
        keep = self._cap(None if self.cut_readback else raw, len(data))
        fields = (self._params.get("fields") or "id,email").split(",")
        data = [{f: item.get(f) for f in fields if f in item} for item in data[:keep]]
        return httpx.Response(200, json={"data": data})

    def _create(self, body):
        return self._mutate(body, super()._create)

    def _update(self, body):
        return self._mutate(body, super()._update)

    def _check(self, item, others, creating):
        problem = super()._check(item, others, creating)
        if problem is None and self.unique_ignores_case and item.get("email"):
            folded = item["email"].lower()
            for other in others:
                if other.get("id") != item.get("id") and str(other.get("email")).lower() == folded:
                    return not_unique(item["email"])
        return problem

    def _read(self, request, body):
        if not self._allowed("read"):
            return error(403, "FORBIDDEN", FORBIDDEN, reason=FORBIDDEN)
        if request.method == "SEARCH":
            self.searches += 1
            query = dict(body["query"])
        else:
            query = dict(self._params)
            query["filter"] = json.loads(query.get("filter", "{}"))
        self.reads.append(query)
        refused = self._limit_error(query.get("limit"))
        if refused is not None:
            return refused
        try:
            rows = [i for i in sorted(self.items.values(), key=lambda i: i["id"])]
            rows = [i for i in rows if _matches(i, query["filter"])]
        except _BadOperator as bad:
            message = f'"string" field type does not contain the "{bad}" filter operator'
            return error(400, "INVALID_QUERY", f"Invalid query. {message}.", reason=message)
        limit = self._cap(query.get("limit"), len(rows))
        page = int(query.get("page") or 1)
        rows = rows[(page - 1) * limit : page * limit] if limit else []
        fields = query.get("fields") or ["id", "email"]
        fields = fields.split(",") if isinstance(fields, str) else fields
        data = [{f: i.get(f) for f in fields if f in i} for i in rows]
        return httpx.Response(200, json={"data": data})


class _BadOperator(Exception):
    pass


def _matches(item, condition) -> bool:
    if not condition:
        return True
    if "_or" in condition:
        return any(_matches(item, c) for c in condition["_or"])
    if "_and" in condition:
        return all(_matches(item, c) for c in condition["_and"])
    ((name, ops),) = condition.items()
    value = item.get(name)
    for op, arg in ops.items():
        if op == "_in":
            args = arg.split(",") if isinstance(arg, str) else arg
            if str(value) not in {str(a) for a in args}:
                return False
        elif op == "_icontains":
            if value is None or str(arg).lower() not in str(value).lower():
                return False
        elif op == "_eq":
            if str(value) != str(arg):
                return False
        else:
            raise _BadOperator(op)
    return True


def limited_writer(fake, mode="upsert", **options):
    return make_writer(fake, mode=mode, **options)


def test_a_readback_cut_to_100_of_150_still_gives_150_updated():
    fake = LimitedLeads([{"email": f"{n}@x.example", "score": 0} for n in range(150)])
    writer = limited_writer(fake, mode="update", batch_size=200)
    try:
        outcomes = writer.write([WriteRow(f"r{n}", {"id": n + 1, "score": 7}) for n in range(150)])
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["updated"] * 150
    assert [o.item_key for o in outcomes] == list(range(1, 151))
    assert fake.write_limits == ["150"]  # the whole readback was asked for: no read needed
    assert writer.stats.confirm_reads == 0
    assert {i["score"] for i in fake.items.values()} == {7}


def test_keys_missing_from_a_cut_answer_are_read_back_before_anything_is_called_not_found():
    # A server that cuts the readback whatever `limit` says: absence alone proves nothing.
    fake = LimitedLeads([{"email": f"{n}@x.example"} for n in range(150)], cut_readback=True)
    writer = limited_writer(fake, mode="update", batch_size=200)
    try:
        outcomes = writer.write(
            [WriteRow(f"r{n}", {"id": n + 1, "score": 3}) for n in range(150)]
            + [WriteRow("gone", {"id": 999, "score": 3})]
        )
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes[:150]] == ["updated"] * 150
    assert outcomes[150].status == "failed" and outcomes[150].error_code == "NOT_FOUND"
    assert writer.stats.confirm_reads == 1
    confirm = fake.reads[-1]
    assert confirm["filter"] == {"id": {"_in": list(range(101, 151)) + [999]}}


def test_a_missing_key_confirmed_absent_by_the_read_fails_not_found():
    fake = LimitedLeads([{"email": "a@x.example"}])
    writer = limited_writer(fake, mode="update")
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
    assert outcomes[1].error_code == "NOT_FOUND"
    # The token may read all of "leads" (permissions/me says "full"): the item does not exist.
    assert outcomes[1].error_message.startswith('No item with id 99 in "leads"')
    assert "changed nothing" in outcomes[1].error_message
    assert "may not read" not in outcomes[1].error_message
    assert fake.reads[-1]["filter"] == {"id": {"_in": [99]}}
    assert outcomes[2].error_code == "MISSING_KEY"


def test_a_token_that_may_update_but_not_read_is_not_told_its_items_do_not_exist():
    fake = LimitedLeads([{"email": "a@x.example"}], read="none")
    writer = limited_writer(fake, mode="update")
    try:
        outcome = writer.write([WriteRow("1", {"id": 1, "score": 4})])[0]
    finally:
        writer.router.stop()
    assert fake.items[1]["score"] == 4  # Directus did write it, and answered 204
    assert outcome.status == "failed" and outcome.error_code == "NOT_CONFIRMED"
    assert "may update items but not read them" in outcome.error_message
    assert "may not exist" in outcome.error_message


def test_a_create_answer_shorter_than_the_batch_pairs_by_value_and_invents_no_failure():
    fake = LimitedLeads(cut_readback=True)
    writer = limited_writer(fake, mode="upsert", batch_size=200)
    try:
        outcomes = writer.write(rows(*[f"n{n}@x.example" for n in range(150)]))
    finally:
        writer.router.stop()
    assert {o.status for o in outcomes} == {"created"}
    # Paired by the match value, not by position: each row gets its own item's key.
    assert [o.item_key for o in outcomes[:100]] == [
        fake.by_email(f"n{n}@x.example")["id"] for n in range(100)
    ]
    assert {o.item_key for o in outcomes[100:]} == {None}
    assert "key is unknown" in outcomes[120].response_excerpt
    assert len(fake.items) == 150


def test_a_batch_over_the_mutation_limit_adapts_once_and_fails_no_row():
    fake = LimitedLeads(max_batch=50)
    writer = limited_writer(fake, mode="create", batch_size=200)
    try:
        first = writer.write(rows(*[f"a{n}@x.example" for n in range(180)]))
        second = writer.write(rows(*[f"b{n}@x.example" for n in range(120)]))
    finally:
        writer.router.stop()
    outcomes = first + second
    assert {o.status for o in outcomes} == {"created"}
    assert [o.item_key for o in first] == [
        fake.by_email(f"a{n}@x.example")["id"] for n in range(180)
    ]
    assert fake.refusals == 1 and writer.stats.limit_refusals == 1
    assert writer.batch_limit == 50 and writer.limits == {"batch": 50}
    assert [n for m, n in fake.calls if m == "POST"] == [180, 50, 50, 50, 30, 50, 50, 20]
    assert writer.stats.splits == 0


def test_a_learned_batch_limit_is_used_from_the_first_request():
    fake = LimitedLeads(max_batch=50)
    writer = limited_writer(fake, mode="create", batch_size=200, batch_limit=50)
    try:
        outcomes = writer.write(rows(*[f"a{n}@x.example" for n in range(120)]))
    finally:
        writer.router.stop()
    assert {o.status for o in outcomes} == {"created"}
    assert fake.refusals == 0
    assert [n for m, n in fake.calls if m == "POST"] == [50, 50, 20]


def test_a_readback_limit_above_query_limit_max_shrinks_the_batch_without_failing_rows():
    fake = LimitedLeads([{"email": f"{n}@x.example"} for n in range(300)], query_max=100)
    writer = limited_writer(fake, mode="update", batch_size=300)
    try:
        outcomes = writer.write([WriteRow(f"r{n}", {"id": n + 1, "score": 1}) for n in range(300)])
    finally:
        writer.router.stop()
    assert {o.status for o in outcomes} == {"updated"}
    assert writer.limits == {"batch": 100, "read": 100}
    assert fake.write_limits == ["300", "100", "100", "100"]


def test_an_upsert_lookup_pages_within_query_limit_max():
    fake = LimitedLeads([{"email": f"{n}@x.example"} for n in range(120)], query_max=50)
    writer = limited_writer(fake, batch_size=120, batch_limit=50)
    try:
        outcomes = writer.write(rows(*[f"{n}@x.example" for n in range(120)], score=2))
    finally:
        writer.router.stop()
    assert {o.status for o in outcomes} == {"updated"}
    assert "POST" not in [m for m, _ in fake.calls]


def test_ignore_case_upsert_updates_instead_of_creating_and_never_matches_a_substring():
    fake = LimitedLeads(
        [
            {"email": "ann@x.example", "score": 1},
            {"email": "joann@x.example", "score": 1},
            {"email": "42", "score": 1},
        ]
    )
    writer = limited_writer(fake, match_ignore_case=True)
    try:
        outcomes = writer.write(
            [
                WriteRow("ann", {"email": "Ann@X.example", "score": 5}),
                WriteRow("new", {"email": "Nn@X.example", "score": 6}),
                WriteRow("num", {"email": 42, "score": 7}),
            ]
        )
    finally:
        writer.router.stop()
    assert [(o.status, o.item_key) for o in outcomes] == [
        ("updated", 1),
        ("created", 4),
        ("updated", 3),
    ]
    assert fake.items[1]["score"] == 5 and fake.items[2]["score"] == 1  # joann untouched
    assert fake.items[1]["email"] == "ann@x.example"  # the stored spelling stays
    assert fake.by_email("Nn@X.example")["score"] == 6
    lookup = fake.reads[0]["filter"]
    assert {"email": {"_icontains": "Ann@X.example"}} in lookup["_or"]
    assert "_ieq" not in json.dumps(lookup)


def test_ignore_case_with_two_items_differing_only_in_case_names_both_and_writes_neither():
    fake = LimitedLeads([{"email": "ann@x.example"}, {"email": "ANN@x.example"}])
    writer = limited_writer(fake, match_ignore_case=True)
    try:
        outcome = writer.write([WriteRow("ann", {"email": "Ann@x.example", "score": 5})])[0]
    finally:
        writer.router.stop()
    assert outcome.status == "failed" and outcome.error_code == "MATCH_AMBIGUOUS"
    assert '1 ("ann@x.example")' in outcome.error_message
    assert '2 ("ANN@x.example")' in outcome.error_message
    assert [m for m, _ in fake.calls if m in ("POST", "PATCH")] == []


def test_a_case_twin_is_named_when_the_create_is_not_permitted():
    fake = LimitedLeads([{"email": "ann@x.example"}], create="none")
    writer = limited_writer(fake)
    try:
        outcomes = writer.write(
            [
                WriteRow("ann", {"email": "Ann@X.example", "score": 5}),
                WriteRow("bob", {"email": "bob@x.example", "score": 5}),
            ]
        )
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert outcomes[0].error_code == "NOT_PERMITTED"
    assert outcomes[0].error_message.startswith(
        'An item with "ann@x.example" exists in "leads"; matching is case-sensitive'
    )
    assert "turn on 'ignore letter case'" in outcomes[0].error_message
    assert "not permitted to create items" in outcomes[0].error_message
    assert "letter case" not in outcomes[1].error_message  # no twin: the reason alone
    assert fake.items[1].get("score") is None


def test_a_case_twin_is_named_when_a_case_insensitive_unique_index_refuses_the_create():
    fake = LimitedLeads([{"email": "ann@x.example"}], unique_ignores_case=True)
    writer = limited_writer(fake)
    try:
        outcomes = writer.write(rows("Ann@X.example", "new@x.example"))
    finally:
        writer.router.stop()
    assert [o.status for o in outcomes] == ["failed", "created"]
    assert outcomes[0].error_code == "RECORD_NOT_UNIQUE"
    assert 'An item with "ann@x.example" exists' in outcomes[0].error_message
    assert 'field "email" must be unique' in outcomes[0].error_message


def _compare(outcome):
    return (
        outcome.key,
        outcome.status,
        outcome.item_key,
        outcome.error_code,
        outcome.error_message,
    )


def _mixed_rows():
    batch = [WriteRow(f"e{n}", {"email": f"{n}@x.example", "score": n}) for n in range(120)]
    batch += [WriteRow(f"n{n}", {"email": f"new{n}@x.example", "score": n}) for n in range(30)]
    batch.insert(7, WriteRow("repeat", {"email": "new3@x.example", "score": 1}))
    batch.insert(40, WriteRow("no-email", {"first_name": "X"}))
    batch.insert(90, WriteRow("twin", {"email": "5@X.example", "score": 1}))
    return batch


def _one_at_a_time(fake, mode, batch):
    """One writer per row, as one row per POST to the inbound endpoint gives."""
    outcomes = []
    for row in batch:
        writer = limited_writer(fake, mode=mode, batch_size=200)
        try:
            outcomes += writer.write([row])
        finally:
            writer.router.stop()  # one respx router at a time: they would share the host
    return outcomes


def _all_at_once(fake, mode, batch):
    writer = limited_writer(fake, mode=mode, batch_size=200)
    try:
        return writer.write(batch)
    finally:
        writer.router.stop()


def test_a_row_has_the_same_outcome_alone_and_in_a_batch():
    existing = [{"email": f"{n}@x.example"} for n in range(120)]
    single_fake, batch_fake = LimitedLeads(existing), LimitedLeads(existing, max_batch=60)
    alone = _one_at_a_time(single_fake, "upsert", _mixed_rows())
    together = _all_at_once(batch_fake, "upsert", _mixed_rows())
    assert [_compare(o) for o in together] == [_compare(o) for o in alone]
    assert {o.status for o in together} == {"updated", "created", "failed"}
    assert single_fake.items == batch_fake.items


def test_an_update_by_key_has_the_same_outcome_alone_and_in_a_batch():
    existing = [{"email": f"{n}@x.example"} for n in range(150)]
    keyed = [WriteRow(f"r{n}", {"id": n, "score": n}) for n in range(1, 161)]  # 151.. missing
    single_fake, batch_fake = LimitedLeads(existing), LimitedLeads(existing)
    alone = _one_at_a_time(single_fake, "update", [WriteRow(r.key, dict(r.data)) for r in keyed])
    together = _all_at_once(batch_fake, "update", [WriteRow(r.key, dict(r.data)) for r in keyed])
    assert [_compare(o) for o in together] == [_compare(o) for o in alone]
    assert [o.status for o in together].count("updated") == 150


@pytest.mark.django_db
def test_a_write_back_run_learns_the_batch_limit_once_for_all_its_slices(monkeypatch, settings):
    from integrations import tasks
    from integrations.models import DirectusConnection, InboundRoute, Secret, Sync, SyncRun
    from integrations.runs import inbound, inbound_run

    settings.KILN_RATE_LIMIT_REDIS_URL = ""
    monkeypatch.setattr(tasks.run_inbound_slice, "delay_on_commit", lambda *a: None)
    monkeypatch.setattr(tasks.run_inbound_slice, "delay", lambda *a: None)
    monkeypatch.setattr(tasks.process_route, "apply_async", lambda *a, **k: None)
    monkeypatch.setattr(inbound_run, "BATCH_ROWS", 20)
    record = inbound_run.RunWorker._record

    def one_batch_per_slice(worker, batch, outcomes):
        record(worker, batch, outcomes)
        worker.deadline = 0  # end the slice here, as a slow batch near the deadline would

    monkeypatch.setattr(inbound_run.RunWorker, "_record", one_batch_per_slice)
    connection = DirectusConnection.objects.create(
        name="cms", base_url=BASE, token=Secret.seal(TOKEN)
    )
    sync_ = Sync.objects.create(
        name="Leads back",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
        rate_limit=0,
        page_size=20,
    )
    route = InboundRoute.open(sync_)[0]
    inbound.accept(route, [{"email": f"{n}@x.example"} for n in range(60)], size=10)
    run = inbound_run.start_route_run(route.pk)
    fake = LimitedLeads(max_batch=8)
    slices = 0
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        while inbound_run.execute(run.pk, "w1", max_seconds=30):
            slices += 1
    run = SyncRun.objects.get(pk=run.pk)
    assert slices >= 3
    assert (run.status, run.sent, run.failed) == ("succeeded", 60, 0)
    assert fake.refusals == 1  # the first slice learned it; later slices started from it
    assert run.checkpoint["write_limits"] == {"batch": 8}
    assert len(fake.items) == 60
