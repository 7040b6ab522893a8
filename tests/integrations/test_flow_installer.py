"""Installing a Flow in Directus against a fake at the HTTP boundary (respx)."""

import json

import httpx
import pytest
import respx

from integrations.directus import flows
from integrations.directus.client import DirectusClient
from integrations.directus.flow_installer import InstallError, flow_admin_url, install_flow

BASE = "http://directus.test"
SPEC = flows.directus_flow(
    "Kiln: articles to Clay",
    ["articles"],
    ["items.create", "items.update"],
    "https://hooks.example.com/in",
    '{"title": "{{$trigger.payload.title}}", "key": {{$trigger.key}}}',
)
FORBIDDEN = {
    "errors": [
        {
            "message": "You don't have permission to access this.",
            "extensions": {"code": "FORBIDDEN"},
        }
    ]
}


@pytest.fixture
def fake():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client():
    with DirectusClient(BASE, "tok-flow-installer-0123456789", client=httpx.Client()) as c:
        yield c


def sent(route):
    return json.loads(route.calls.last.request.content)


def test_it_creates_the_flow_then_its_operation_then_links_them(fake, client):
    create_flow = fake.post("/flows").respond(json={"data": {"id": "f-1"}})
    create_op = fake.post("/operations").respond(json={"data": {"id": "o-1"}})
    link = fake.patch("/flows/f-1").respond(json={"data": {"id": "f-1"}})
    result = install_flow(client, SPEC)
    assert (result.flow_id, result.operation_id, result.created) == ("f-1", "o-1", True)
    assert sent(create_flow)["options"] == {
        "type": "action",
        "scope": ["items.create", "items.update"],
        "collections": ["articles"],
    }
    operation = sent(create_op)
    assert operation["flow"] == "f-1" and operation["type"] == "request"
    assert operation["options"]["body"] == {
        "title": "{{$trigger.payload.title}}",
        "key": "{{$trigger.key}}",
    }
    assert sent(link) == {"operation": "o-1"}
    order = [call.request.method + " " + call.request.url.path for call in fake.calls]
    assert order == ["POST /flows", "POST /operations", "PATCH /flows/f-1"]


def test_reinstalling_updates_the_same_flow_and_operation(fake, client):
    fake.get("/flows/f-1").respond(
        json={"data": {"id": "f-1", "operation": "o-1", "operations": [{"id": "o-1"}]}}
    )
    patch_flow = fake.patch("/flows/f-1").respond(json={"data": {"id": "f-1"}})
    patch_op = fake.patch("/operations/o-1").respond(json={"data": {"id": "o-1"}})
    create = fake.post("/flows")
    result = install_flow(client, SPEC, "f-1", "o-1")
    assert (result.flow_id, result.operation_id, result.created) == ("f-1", "o-1", False)
    assert not create.called
    assert sent(patch_flow)["name"] == "Kiln: articles to Clay"
    assert sent(patch_op)["options"]["url"] == "https://hooks.example.com/in"


def test_a_flow_that_is_gone_is_created_anew_and_said_so(fake, client):
    fake.get("/flows/f-old").respond(403, json=FORBIDDEN)
    fake.post("/flows").respond(json={"data": {"id": "f-new"}})
    fake.post("/operations").respond(json={"data": {"id": "o-new"}})
    fake.patch("/flows/f-new").respond(json={"data": {"id": "f-new"}})
    result = install_flow(client, SPEC, "f-old", "o-old")
    assert result.created and result.flow_id == "f-new"
    assert "no longer exists" in result.note and "f-old" in result.note


def test_a_missing_operation_is_added_to_the_existing_flow(fake, client):
    fake.get("/flows/f-1").respond(
        json={"data": {"id": "f-1", "operation": None, "operations": []}}
    )
    fake.patch("/flows/f-1").respond(json={"data": {"id": "f-1"}})
    create_op = fake.post("/operations").respond(json={"data": {"id": "o-2"}})
    result = install_flow(client, SPEC, "f-1", "o-1")
    assert result.operation_id == "o-2" and not result.created
    assert sent(create_op)["flow"] == "f-1"


def test_a_403_is_explained_as_missing_permission_to_manage_flows(fake, client):
    fake.post("/flows").respond(403, json=FORBIDDEN)
    with pytest.raises(InstallError) as info:
        install_flow(client, SPEC)
    assert info.value.status == 403
    assert "may not manage Flows" in info.value.explain()
    assert "directus_flows" in info.value.explain()


def test_the_licence_cap_on_active_flows_is_explained(fake, client):
    fake.post("/flows").respond(
        403,
        json={
            "errors": [
                {"message": "Flows limit exceeded.", "extensions": {"code": "LIMIT_EXCEEDED"}}
            ]
        },
    )
    with pytest.raises(InstallError) as info:
        install_flow(client, SPEC)
    assert "licence caps the number of active Flows" in info.value.explain()
    assert "install this one as inactive" in info.value.explain()


def test_a_half_built_flow_is_deleted_when_its_operation_is_refused(fake, client):
    fake.post("/flows").respond(json={"data": {"id": "f-1"}})
    fake.post("/operations").respond(403, json=FORBIDDEN)
    delete = fake.delete("/flows/f-1").respond(204)
    with pytest.raises(InstallError) as info:
        install_flow(client, SPEC)
    assert delete.called
    assert "creating the Flow's operation" in info.value.explain()


def test_the_admin_link_points_at_the_flow_in_the_app():
    assert flow_admin_url("https://cms.example.com/", "f-1") == (
        "https://cms.example.com/admin/settings/flows/f-1"
    )
