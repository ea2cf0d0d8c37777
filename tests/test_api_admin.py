"""Companies, groups and members over the API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def check(
    client: TestClient,
    user: str,
    company: str,
    permission: str,
    owner: str | None = None,
) -> bool:
    resource, action = permission.split(":")
    body: dict[str, Any] = {
        "user": user,
        "company": company,
        "resource": resource,
        "action": action,
    }
    if owner:
        body["owner"] = owner
    response = client.post("/v1/check", json=body)
    assert response.status_code == 200
    allowed: bool = response.json()["allowed"]
    return allowed


def test_create_company_returns_it_with_its_predefined_groups(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/companies", json={"id": "newco", "name": "Neue Café AG"}
    )

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Neue Café AG"
    assert [g["id"] for g in body["groups"]] == [
        "admin",
        "buyer",
        "requester",
        "contact",
    ]
    assert all(g["predefined"] for g in body["groups"])
    assert "orders:read:own" in body["groups"][1]["permissions"]
    assert body["revision"] > 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"id": "acme", "name": "Again"}, 409, "id"),
        ({"id": "sub", "name": "Sub", "parent": "nowhere"}, 404, "parent"),
        ({"id": "a,b", "name": "Comma"}, 422, "id"),
        ({"id": "ok", "name": ""}, 422, "name"),
        ({"id": "ok", "name": " padded"}, 422, "name"),
        ({"id": "ok", "name": "line\nbreak"}, 422, "name"),
        ({"id": "ok", "name": "x" * 201}, 422, "name"),
        ({"id": "ok"}, 422, "name"),
        ({"id": "ok", "name": "Ok", "colour": "red"}, 422, "colour"),
    ],
)
def test_create_company_refuses(
    client: TestClient, body: dict[str, str], status: int, field: str
) -> None:
    before = client.get("/v1/companies", params={"limit": 1000}).json()

    response = client.post("/v1/companies", json=body)

    assert response.status_code == status
    assert field in [f["field"] for f in response.json()["fields"]]
    assert client.get("/v1/companies", params={"limit": 1000}).json() == before


def test_read_companies_pages_through_all(client: TestClient) -> None:
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if after:
            params["after"] = after
        page = client.get("/v1/companies", params=params).json()
        seen += [c["id"] for c in page["items"]]
        after = page["next"]
        if after is None:
            break

    assert seen == sorted(seen)
    assert len(seen) == 7
    assert client.get("/v1/companies/acme").json()["subsidiaries"] == [
        "acme-north",
        "acme-south",
    ]


def test_delete_company_removes_only_its_own_rules(client: TestClient) -> None:
    carol = "carol@acme.example"  # member of acme and acme-south
    assert check(client, carol, "acme-north", "company:read") is False
    assert check(client, carol, "acme-south", "users:manage") is True

    refused = client.delete("/v1/companies/acme")
    deleted = client.delete("/v1/companies/acme-south")

    assert refused.status_code == 409
    assert deleted.status_code == 204
    assert int(deleted.headers["Orgguard-Revision"]) > 1
    assert check(client, carol, "acme-south", "users:manage") is False
    assert check(client, carol, "acme", "invoices:pay") is True
    companies = client.get(f"/v1/users/{carol}/companies").json()["companies"]
    assert [c["company"] for c in companies] == ["acme", "globex"]
    assert client.get("/v1/companies/acme-south").status_code == 404


def test_delete_company_cascade_removes_the_subtree(client: TestClient) -> None:
    response = client.delete("/v1/companies/acme", params={"cascade": "true"})

    assert response.status_code == 204
    ids = [c["id"] for c in client.get("/v1/companies").json()["items"]]
    assert ids == ["globex", "initech", "stark", "umbrella"]
    assert check(client, "mallory@globex.example", "globex", "company:read")


def test_recreated_company_starts_empty(client: TestClient) -> None:
    client.delete("/v1/companies/globex")

    client.post("/v1/companies", json={"id": "globex", "name": "Globex again"})

    assert client.get("/v1/companies/globex/members").json()["items"] == []
    groups = client.get("/v1/companies/globex/groups").json()["items"]
    assert [g["id"] for g in groups] == ["admin", "buyer", "requester", "contact"]


def test_custom_group_lifecycle(client: TestClient) -> None:
    user = "dana@initech.example"
    created = client.post(
        "/v1/companies/initech/groups",
        json={
            "id": "ap",
            "name": "Accounts payable",
            "permissions": ["invoices:read:own", "invoices:pay"],
        },
    )
    client.put(f"/v1/companies/initech/members/{user}", json={"groups": ["ap"]})
    own_only = check(client, user, "initech", "invoices:read", owner=user)
    not_own = check(client, user, "initech", "invoices:read", owner="x@x.example")

    patched = client.patch(
        "/v1/companies/initech/groups/ap",
        json={"name": "AP team", "permissions": ["invoices:read"]},
    )
    company_wide = check(client, user, "initech", "invoices:read")
    cannot_pay = not check(client, user, "initech", "invoices:pay")

    deleted = client.delete("/v1/companies/initech/groups/ap")

    assert created.status_code == 201
    assert created.json()["permissions"] == ["invoices:pay", "invoices:read:own"]
    assert own_only and not not_own
    assert patched.status_code == 200
    assert patched.json()["name"] == "AP team"
    assert patched.json()["permissions"] == ["invoices:read"]
    assert company_wide and cannot_pay
    assert deleted.status_code == 204
    assert not check(client, user, "initech", "invoices:read")
    assert client.get(f"/v1/companies/initech/members/{user}").json()["groups"] == [
        "contact"
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("post", "/v1/companies/acme/groups", {"id": "admin", "name": "x"}, 409, "id"),
        (
            "post",
            "/v1/companies/acme/groups",
            {"id": "finance", "name": "x"},
            409,
            "id",
        ),
        ("patch", "/v1/companies/acme/groups/buyer", {"name": "x"}, 409, "group"),
        ("delete", "/v1/companies/acme/groups/contact", None, 409, "group"),
        ("patch", "/v1/companies/acme/groups/nope", {"name": "x"}, 404, "group"),
        ("post", "/v1/companies/nope/groups", {"id": "g", "name": "x"}, 404, "company"),
        (
            "post",
            "/v1/companies/acme/groups",
            {"id": "g", "name": "x", "permissions": ["orders:delete"]},
            422,
            "permissions[0]",
        ),
        (
            "post",
            "/v1/companies/acme/groups",
            {
                "id": "g",
                "name": "x",
                "permissions": ["company:read", "users:manage:own"],
            },
            422,
            "permissions[1]",
        ),
        (
            "post",
            "/v1/companies/acme/groups",
            {"id": "g", "name": "x", "permissions": ["orders"]},
            422,
            "permissions[0]",
        ),
        (
            "post",
            "/v1/companies/acme/groups",
            {"id": "g", "name": "x", "permissions": ["orders:*"]},
            422,
            "permissions[0]",
        ),
        (
            "put",
            "/v1/companies/acme/members/zz@x.example",
            {"groups": ["admin", "buyer"]},
            409,
            "groups",
        ),
        (
            "put",
            "/v1/companies/acme/members/zz@x.example",
            {"groups": ["approvers"]},
            422,
            "groups",
        ),
        (
            "put",
            "/v1/companies/nope/members/zz@x.example",
            {"groups": []},
            404,
            "company",
        ),
        ("delete", "/v1/companies/acme/members/zz@x.example", None, 404, "user"),
    ],
)
def test_admin_writes_refused_change_nothing(
    client: TestClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    field: str,
) -> None:
    revision = client.get("/v1/companies/acme").json()["revision"]
    groups = client.get("/v1/companies/acme/groups").json()
    members = client.get("/v1/companies/acme/members").json()

    response = client.request(method, path, json=body)

    assert response.status_code == status, response.text
    assert field in [f["field"] for f in response.json()["fields"]]
    assert client.get("/v1/companies/acme/groups").json() == groups
    assert client.get("/v1/companies/acme/members").json() == members
    assert client.get("/v1/companies/acme").json()["revision"] == revision


def test_set_member_sets_groups_in_one_step(client: TestClient) -> None:
    path = "/v1/companies/globex/members/new@globex.example"

    first = client.put(path, json={"groups": ["buyer", "approvers"]})
    moved = client.put(path, json={"groups": ["requester"]})
    same = client.put(path, json={"groups": ["requester", "contact"]})

    assert first.json()["groups"] == ["buyer", "contact", "approvers"]
    assert moved.json()["groups"] == ["requester", "contact"]
    assert moved.json()["revision"] > first.json()["revision"]
    assert same.json()["revision"] == moved.json()["revision"]  # nothing changed
    listing = client.get("/v1/companies/globex/members", params={"limit": 1000})
    assert {
        "user": "new@globex.example",
        "company": "globex",
        "groups": ["requester", "contact"],
    } in listing.json()["items"]


def test_delete_member_removes_from_that_company_only(client: TestClient) -> None:
    carol = "carol@acme.example"

    response = client.delete(f"/v1/companies/acme/members/{carol}")

    assert response.status_code == 204
    assert not check(client, carol, "acme", "company:read")
    assert check(client, carol, "acme-south", "company:read")


def test_permissions_equal_what_check_allows(client: TestClient) -> None:
    catalogue = [
        "company:read",
        "users:manage",
        "orders:read",
        "orders:checkout",
        "quotes:create",
        "quotes:read",
        "approvals:request",
        "approvals:approve",
        "invoices:read",
        "invoices:pay",
        "budgets:manage",
        "reports:read",
        "groups:read",
        "groups:write",
        "members:read",
        "members:write",
        "audit:read",
    ]
    for company in ("acme", "globex", "acme-south"):
        members = client.get(f"/v1/companies/{company}/members").json()["items"]
        for member in members:
            user = member["user"]
            listed = {
                p["permission"]
                for p in client.get(
                    f"/v1/companies/{company}/members/{user}/permissions"
                ).json()["permissions"]
            }
            expected = set()
            for permission in catalogue:
                if check(client, user, company, permission):
                    expected.add(permission)
                elif check(client, user, company, permission, owner=user):
                    expected.add(permission + ":own")
            assert listed == expected, (company, user)


def test_who_can_lists_exactly_the_allowed_users(client: TestClient) -> None:
    members = client.get("/v1/companies/acme/members").json()["items"]

    result = client.get(
        "/v1/companies/acme/who-can", params={"permission": "orders:read"}
    ).json()

    company_wide = {u["user"] for u in result["users"] if u["scope"] == "company"}
    own_only = {u["user"] for u in result["users"] if u["scope"] == "own"}
    for member in members:
        user = member["user"]
        assert (user in company_wide) == check(client, user, "acme", "orders:read")
        assert (user in own_only) == (
            user not in company_wide
            and check(client, user, "acme", "orders:read", owner=user)
        )
    assert company_wide and own_only


def test_user_companies_lists_groups_per_company(client: TestClient) -> None:
    body = client.get("/v1/users/carol@acme.example/companies").json()

    assert body["companies"] == [
        {"company": "acme", "groups": ["buyer", "contact", "finance"]},
        {"company": "acme-south", "groups": ["admin", "contact"]},
        {"company": "globex", "groups": ["buyer", "contact"]},
    ]
    assert client.get("/v1/users/nobody@x.example/companies").json()["companies"] == []


def test_a_company_id_differing_only_in_case_is_refused(client: TestClient) -> None:
    response = client.post("/v1/companies", json={"id": "ACME", "name": "Shout"})

    assert response.status_code == 409
    assert response.json()["fields"][0]["field"] == "id"
    assert "only in case" in response.json()["message"]
    assert client.get("/v1/companies/ACME").status_code == 404
