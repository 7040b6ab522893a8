"""Personal API tokens in the console: made and shown once, stored as a digest, named in the
audit log, revoked by their owner or an admin, expiring, and used without CSRF."""

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.models import ApiToken
from integrations.models import AuditEvent
from integrations.outbound import http
from tests.api import openapi
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def make_token(client, name="deploy pipeline", expires_in=""):
    response = client.post(reverse("console:api-tokens"), {"name": name, "expires_in": expires_in})
    assert response.status_code == 200
    match = re.search(
        r'<code class="mono" id="new-token">(kiln_[^<]+)</code>', response.content.decode()
    )
    return response, match[1] if match else None


def test_a_token_is_shown_once_and_stored_only_as_a_digest(users):
    client = signed_in(users["viewer"])
    response, plaintext = make_token(client)
    assert plaintext and response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(name="deploy pipeline")
    assert token.digest == ApiToken.digest_of(plaintext) and plaintext not in token.digest
    assert not ApiToken.objects.filter(hint__contains=plaintext).exists()
    page = client.get(reverse("console:api-tokens")).content.decode()
    assert plaintext not in page and token.masked in page
    # Any log line that quotes it is redacted.
    assert http.redact(f"Authorization: Bearer {plaintext}") == "Authorization: Bearer [redacted]"


def test_making_and_revoking_a_token_is_audited_with_its_name(users):
    client = signed_in(users["operator"])
    make_token(client, "nightly export")
    token = ApiToken.objects.get(name="nightly export")
    created = AuditEvent.objects.get(target_type="apitoken", action="created")
    assert created.details["token"] == "nightly export" and created.actor_name == "operator"
    client.post(reverse("console:api-token-revoke", args=[token.pk]))
    token.refresh_from_db()
    assert token.is_revoked and token.revoked_by == users["operator"]
    revoked = AuditEvent.objects.get(target_type="apitoken", action="deleted")
    assert revoked.details == {"token": "nightly export", "owner": "operator", "revoked": True}


def test_a_revoked_token_is_refused_at_once(users):
    token, plaintext = ApiToken.issue(users["admin"], "ci")
    assert bearer(plaintext).get(reverse("api:me")).status_code == 200
    token.revoke()
    response = openapi.check(bearer(plaintext).get(reverse("api:me")))
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


def test_a_token_expires_when_it_was_told_to(users):
    client = signed_in(users["viewer"])
    _, plaintext = make_token(client, "a week", expires_in="7")
    token = ApiToken.objects.get(name="a week")
    assert token.expires_at - timezone.now() > dt.timedelta(days=6, hours=23)
    assert bearer(plaintext).get(reverse("api:me")).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    assert bearer(plaintext).get(reverse("api:me")).json()["error"]["code"] == "token_expired"


def test_the_last_use_is_recorded_at_most_once_a_minute(users):
    token, plaintext = ApiToken.issue(users["viewer"], "poller")
    caller = bearer(plaintext)
    caller.get(reverse("api:me"), REMOTE_ADDR="203.0.113.7")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and token.last_used_ip == "203.0.113.7"
    caller.get(reverse("api:me"))
    token.refresh_from_db()
    assert token.last_used_at == first
    assert (
        "203.0.113.7"
        in signed_in(users["viewer"]).get(reverse("console:api-tokens")).content.decode()
    )


def test_a_token_acts_with_its_owners_current_role(users, world):
    _, plaintext = ApiToken.issue(users["operator"], "ops")
    url = reverse("api:run-retry", args=[world.run.pk])
    users["operator"].role = "viewer"
    users["operator"].save()
    response = bearer(plaintext).post(url, {}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This needs the operator role."
    users["operator"].is_active = False
    users["operator"].save()
    assert bearer(plaintext).get(reverse("api:me")).json()["error"]["code"] == "user_inactive"


def test_people_see_and_revoke_only_their_own_tokens_but_admins_everyones(users):
    mine, _ = ApiToken.issue(users["viewer"], "mine")
    theirs, _ = ApiToken.issue(users["operator"], "theirs")
    viewer = signed_in(users["viewer"])
    page = viewer.get(reverse("console:api-tokens")).content.decode()
    assert "mine" in page and "theirs" not in page
    assert viewer.post(reverse("console:api-token-revoke", args=[theirs.pk])).status_code == 403
    theirs.refresh_from_db()
    assert not theirs.is_revoked
    admin = signed_in(users["admin"])
    page = admin.get(reverse("console:api-tokens")).content.decode()
    assert "mine" in page and "theirs" in page and "Everyone else" in page
    admin.post(reverse("console:api-token-revoke", args=[theirs.pk]))
    theirs.refresh_from_db()
    assert theirs.is_revoked and theirs.revoked_by == users["admin"]


def test_token_pages_need_a_sign_in(client):
    response = client.get(reverse("console:api-tokens"))
    assert response.status_code == 302 and reverse("console:login") in response["Location"]


def test_a_name_is_unique_among_ones_live_tokens(users):
    client = signed_in(users["viewer"])
    make_token(client, "twice")
    response, plaintext = make_token(client, "twice")
    assert plaintext is None and "already have a token with this name" in response.content.decode()


def test_token_requests_need_no_csrf_but_session_requests_do(users, world, engine):
    url = reverse("api:run-retry", args=[world.run.pk])
    _, plaintext = ApiToken.issue(users["operator"], "ci")
    token_client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert token_client.post(url, {}, content_type="application/json").status_code == 202

    session = Client(enforce_csrf_checks=True)
    session.force_login(users["operator"])
    refused = openapi.check(session.post(url, {}, content_type="application/json"))
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    session.get(reverse("console:api-tokens"))  # sets the CSRF cookie, as any page does
    csrf = session.cookies["csrftoken"].value
    fine = session.post(url, {}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert fine.status_code in (202, 409)  # the first retry may already be running
    assert session.get(reverse("api:me")).json()["token"] is None


def test_requests_are_throttled_per_token(users, monkeypatch):
    from console.api.auth import PerTokenThrottle

    monkeypatch.setattr(PerTokenThrottle, "THROTTLE_RATES", {"api": "3/min"})
    _, first = ApiToken.issue(users["viewer"], "busy")
    _, second = ApiToken.issue(users["viewer"], "quiet")
    busy = bearer(first)
    answers = [busy.get(reverse("api:me")).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = openapi.check(busy.get(reverse("api:me")))
    assert limited.json()["error"]["code"] == "throttled" and int(limited["Retry-After"]) > 0
    # Another token of the same user has its own budget.
    assert bearer(second).get(reverse("api:me")).status_code == 200


def test_the_docs_page_lists_every_endpoint_with_its_role(users):
    page = signed_in(users["viewer"]).get(reverse("console:api-docs")).content.decode()
    assert "POST /api/v1/syncs/{id}/runs/" in page and "operator" in page
    assert "GET /api/v1/runs/{id}/results/" in page
    assert reverse("api:schema") in page


def test_the_openapi_document_is_public_and_valid(client):
    from openapi_spec_validator import validate

    response = client.get(reverse("api:schema"))
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["info"]["title"] == "Kiln API"
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
