"""Who may do what: every caller against every admin action, by table.

Callers (company ``acme-south``, a subsidiary of ``acme``):

    seller-admin    olga@seller.example, a JWT; platform role seller-admin
    seller-support  sam@seller.example, a JWT; platform role seller-support
    company-admin   carol@acme.example, admin of acme-south (buyer in acme)
    parent-admin    alice@acme.example, admin of acme, not a member of acme-south
    member          jonas@acme.example, buyer in acme-south
    checker         an API key with the role checker
    anonymous       no credential
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import bearer, make_key, user_token

CALLERS = (
    "seller-admin",
    "seller-support",
    "company-admin",
    "parent-admin",
    "member",
    "checker",
    "anonymous",
)
PEOPLE = {
    "seller-admin": "olga@seller.example",
    "seller-support": "sam@seller.example",
    "company-admin": "carol@acme.example",
    "parent-admin": "alice@acme.example",
    "member": "jonas@acme.example",
}
CHECK = {
    "user": "jonas@acme.example",
    "company": "acme-south",
    "resource": "orders",
    "action": "checkout",
}
C = "/v1/companies/acme-south"

# (method, path, body) and the status for each caller, in CALLERS order.
MATRIX: list[tuple[str, str, Any, tuple[int, ...]]] = [
    ("POST", "/v1/check", CHECK, (200, 200, 403, 403, 403, 200, 401)),
    ("POST", "/v1/check/batch", {"checks": [CHECK]}, (200, 200, 403, 403, 403, 200, 401)),
    ("GET", "/v1/companies", None, (200, 200, 200, 200, 403, 403, 401)),
    ("POST", "/v1/companies", {"id": "newco", "name": "N"}, (201, 403, 403, 403, 403, 403, 401)),
    ("GET", C, None, (200, 200, 200, 200, 403, 403, 401)),
    ("GET", f"{C}/hierarchy", None, (200, 200, 200, 200, 403, 403, 401)),
    ("DELETE", C, None, (204, 403, 403, 403, 403, 403, 401)),
    ("GET", f"{C}/groups", None, (200, 200, 200, 200, 403, 403, 401)),
    ("POST", f"{C}/groups", {"id": "pickers", "name": "Pickers", "permissions": ["orders:read:own"]}, (201, 403, 201, 201, 403, 403, 401)),
    ("PATCH", f"{C}/groups/helpers", {"name": "Helpers 2"}, (200, 403, 200, 200, 403, 403, 401)),
    ("DELETE", f"{C}/groups/helpers", None, (204, 403, 204, 204, 403, 403, 401)),
    ("GET", f"{C}/members", None, (200, 200, 200, 200, 403, 403, 401)),
    ("GET", f"{C}/members/judy@acme.example", None, (200, 200, 200, 200, 403, 403, 401)),
    ("GET", f"{C}/members/judy@acme.example/permissions", None, (200, 200, 200, 200, 403, 403, 401)),
    ("GET", f"{C}/who-can?permission=orders:read", None, (200, 200, 200, 200, 403, 403, 401)),
    ("PUT", f"{C}/members/judy@acme.example", {"groups": ["buyer", "helpers"]}, (200, 403, 200, 200, 403, 403, 401)),
    ("DELETE", f"{C}/members/judy@acme.example", None, (204, 403, 204, 204, 403, 403, 401)),
    ("GET", "/v1/audit?company=acme-south", None, (200, 200, 200, 200, 403, 403, 401)),
    ("GET", "/v1/keys", None, (200, 200, 403, 403, 403, 403, 401)),
    ("POST", "/v1/keys", {"name": "pos", "role": "checker"}, (201, 403, 403, 403, 403, 403, 401)),
    ("DELETE", "/v1/keys/storefront", None, (204, 403, 403, 403, 403, 403, 401)),
    ("GET", "/v1/roles", None, (200, 200, 403, 403, 403, 403, 401)),
    ("PUT", "/v1/roles/rita@seller.example", {"roles": ["seller-support"]}, (200, 403, 403, 403, 403, 403, 401)),
    # Sideways (a sibling), up (the parent) and elsewhere: company admins are
    # refused, and a company that does not exist looks the same to them.
    ("GET", "/v1/companies/acme-north/members", None, (200, 200, 403, 200, 403, 403, 401)),
    ("PUT", "/v1/companies/acme/members/x@acme.example", {"groups": []}, (200, 403, 403, 200, 403, 403, 401)),
    ("GET", "/v1/companies/initech/members", None, (200, 200, 403, 403, 403, 403, 401)),
    ("GET", "/v1/companies/nosuch/members", None, (404, 404, 403, 403, 403, 403, 401)),
    ("PUT", "/v1/companies/nosuch/members/x@acme.example", {"groups": []}, (404, 403, 403, 403, 403, 403, 401)),
    ("GET", "/v1/users/judy@acme.example/companies", None, (200, 200, 200, 200, 403, 403, 401)),
]  # fmt: skip


@pytest.fixture
def callers(client: TestClient) -> dict[str, dict[str, str]]:
    """Headers per caller; the demo plus a custom group ``helpers`` in acme-south
    (orders:read:own, which its admins hold) and a checker key ``storefront``."""
    client.post(
        f"{C}/groups",
        json={"id": "helpers", "name": "Helpers", "permissions": ["orders:read:own"]},
    ).raise_for_status()
    headers = {name: bearer(user_token(user)) for name, user in PEOPLE.items()}
    headers["checker"] = bearer(make_key(client, "storefront", "checker"))
    headers["anonymous"] = {"Authorization": ""}
    return headers


def call(
    client: TestClient, headers: dict[str, str], method: str, path: str, body: Any
) -> Any:
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status"),
    [
        pytest.param(who, method, path, body, statuses[i], id=f"{who} {method} {path}")
        for method, path, body, statuses in MATRIX
        for i, who in enumerate(CALLERS)
    ],
)
def test_caller_action_matrix(
    client: TestClient,
    callers: dict[str, dict[str, str]],
    who: str,
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    audit_before = client.get("/v1/audit", params={"limit": 1}).json()["items"]

    response = call(client, callers[who], method, path, body)

    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith(
            'Bearer realm="orgguard"'
        )
    if status in (401, 403):
        # A refused attempt changes nothing and is not an audit record.
        audit_after = client.get("/v1/audit", params={"limit": 1}).json()["items"]
        assert audit_after == audit_before
        assert response.json()["error"] in ("unauthenticated", "forbidden")
    if status == 403:
        assert response.json()["fields"], "a 403 names what the caller lacks"
    if status == 403 and "nosuch" in path:
        assert "does not exist" not in response.text


def test_company_admin_lists_only_the_companies_it_administers(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    def ids(who: str) -> list[str]:
        body = client.get("/v1/companies", headers=callers[who]).json()
        return [c["id"] for c in body["items"]]

    assert ids("company-admin") == ["acme-south"]
    assert ids("parent-admin") == ["acme", "acme-north", "acme-south", "globex"]
    assert len(ids("seller-support")) == 7


def test_user_companies_are_filtered_for_company_admins(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    def companies(who: str, user: str) -> list[str]:
        response = client.get(f"/v1/users/{user}/companies", headers=callers[who])
        return [c["company"] for c in response.json()["companies"]]

    # judy is in acme-south and initech; carol sees only acme-south.
    assert companies("company-admin", "judy@acme.example") == ["acme-south"]
    assert companies("seller-support", "judy@acme.example") == [
        "acme-south",
        "initech",
    ]
    # Everyone may read their own memberships.
    assert companies("member", "jonas@acme.example") == ["acme-south"]


def test_hierarchy_gives_parents_and_every_subsidiary(client: TestClient) -> None:
    client.post(
        "/v1/companies", json={"id": "south-depot", "name": "D", "parent": "acme-south"}
    ).raise_for_status()

    top = client.get("/v1/companies/acme/hierarchy").json()
    leaf = client.get("/v1/companies/south-depot/hierarchy").json()

    assert top["parents"] == []
    assert [c["id"] for c in top["subsidiaries"]] == [
        "acme-north",
        "acme-south",
        "south-depot",
    ]
    assert leaf["parents"] == ["acme-south", "acme"]
    assert leaf["subsidiaries"] == []


def test_without_inheritance_a_parent_admin_is_refused_below(
    settings: Any, callers: dict[str, dict[str, str]]
) -> None:
    from orgguard.api.app import create_app

    settings.admin_inherits = False
    headers = callers["parent-admin"]
    with TestClient(create_app(settings)) as other:
        below = other.get(f"{C}/members", headers=headers)
        own = other.get("/v1/companies/acme/members", headers=headers)

    assert below.status_code == 403
    assert own.status_code == 200


# -- no escalation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "missing"),
    [
        # carol (admin of acme-south) does not hold invoices:pay there
        ("company-admin", "POST", f"{C}/groups", {"id": "payers", "name": "P", "permissions": ["invoices:pay", "orders:read"]}, ["invoices:pay"]),
        ("company-admin", "PATCH", f"{C}/groups/helpers", {"permissions": ["invoices:read:own", "budgets:manage"]}, ["budgets:manage", "invoices:read:own"]),
        ("company-admin", "PUT", f"{C}/members/judy@acme.example", {"groups": ["requester", "finance"]}, ["invoices:pay", "invoices:read:own"]),
        ("company-admin", "PATCH", f"{C}/groups/finance", {"name": "Renamed"}, ["invoices:pay", "invoices:read:own"]),
        ("company-admin", "DELETE", f"{C}/groups/finance", None, ["invoices:pay", "invoices:read:own"]),
        # alice administers acme-south through acme, where she is admin only
        ("parent-admin", "POST", f"{C}/groups", {"id": "payers", "name": "P", "permissions": ["invoices:pay"]}, ["invoices:pay"]),
    ],
)  # fmt: skip
def test_company_admins_cannot_grant_what_they_do_not_hold(
    client: TestClient,
    callers: dict[str, dict[str, str]],
    who: str,
    method: str,
    path: str,
    body: Any,
    missing: list[str],
) -> None:
    before = client.get(f"{C}/members").json(), client.get(f"{C}/groups").json()

    response = call(client, callers[who], method, path, body)

    assert response.status_code == 403
    assert (
        sorted(f["message"].removeprefix("lacks ") for f in response.json()["fields"])
        == missing
    )
    assert all(m in response.json()["message"] for m in missing)
    after = client.get(f"{C}/members").json(), client.get(f"{C}/groups").json()
    assert after == before


def test_a_company_admin_grants_what_it_holds_and_the_predefined_groups(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    carol = callers["company-admin"]

    own_only = client.post(
        f"{C}/groups",
        headers=carol,
        json={"id": "readers", "name": "R", "permissions": ["orders:read:own"]},
    )
    # admin holds orders:read company-wide, which covers the own-only grant,
    # and every permission of buyer.
    moved = client.put(
        f"{C}/members/trent@acme.example",
        headers=carol,
        json={"groups": ["buyer", "readers"]},
    )

    assert own_only.status_code == 201
    assert moved.status_code == 200
    assert moved.json()["groups"] == ["buyer", "contact", "readers"]


def test_seller_admin_is_not_limited_by_its_own_memberships(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    response = client.post(
        f"{C}/groups",
        headers=callers["seller-admin"],
        json={"id": "payers", "name": "P", "permissions": ["invoices:pay"]},
    )
    assert response.status_code == 201


# -- the last admin -----------------------------------------------------------------


@pytest.mark.parametrize("who", ["company-admin", "parent-admin", "seller-admin"])
@pytest.mark.parametrize(
    ("method", "body"),
    [("PUT", {"groups": ["buyer"]}), ("PUT", {"groups": []}), ("DELETE", None)],
)
def test_the_last_admin_cannot_be_removed_or_demoted(
    client: TestClient,
    callers: dict[str, dict[str, str]],
    who: str,
    method: str,
    body: Any,
) -> None:
    path = f"{C}/members/carol@acme.example"

    refused = call(client, callers[who], method, path, body)

    assert refused.status_code == 409
    assert "last admin" in refused.json()["message"]
    assert client.get(path).json()["groups"] == ["admin", "contact"]

    # With a second admin, the first may go.
    promoted = call(
        client,
        callers[who],
        "PUT",
        f"{C}/members/jonas@acme.example",
        {"groups": ["admin"]},
    )
    assert promoted.status_code == 200
    assert call(client, callers[who], method, path, body).status_code in (200, 204)


def test_the_predefined_groups_cannot_be_edited_by_anyone(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    for who in ("company-admin", "seller-admin"):
        response = call(
            client, callers[who], "PATCH", f"{C}/groups/admin", {"name": "Bosses"}
        )
        assert response.status_code == 409


def test_members_write_through_a_custom_group_does_not_make_an_admin(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    carol = callers["company-admin"]
    judy = bearer(user_token("judy@acme.example"))  # a requester in acme-south
    delegates = {"id": "delegates", "name": "D",
                 "permissions": ["members:read", "members:write"]}  # fmt: skip
    assert client.post(f"{C}/groups", headers=carol, json=delegates).status_code == 201
    judy_groups = {"groups": ["requester", "delegates"]}
    given = client.put(
        f"{C}/members/judy@acme.example", headers=carol, json=judy_groups
    )
    assert given.status_code == 200

    promote = client.put(
        f"{C}/members/judy@acme.example",
        headers=judy,
        json={"groups": ["admin", "delegates"]},
    )
    # She may still hand out what she holds: contact, and delegates itself.
    peer = client.put(
        f"{C}/members/trent@acme.example",
        headers=judy,
        json={"groups": ["delegates"]},
    )

    assert promote.status_code == 403
    missing = {f["message"].removeprefix("lacks ") for f in promote.json()["fields"]}
    assert {"users:manage", "groups:write", "audit:read"} <= missing
    assert peer.status_code == 200
    assert client.get(f"{C}/members/judy@acme.example").json()["groups"] == [
        "requester", "contact", "delegates"
    ]  # fmt: skip


def test_a_refused_caller_learns_nothing_from_validation_of_the_state(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    # Two exclusive groups is a 409 for an admin, but a 403 for someone who
    # may not write members there at all (existing company or not).
    body = {"groups": ["admin", "buyer"]}
    for path in (f"{C}/members/x@acme.example", "/v1/companies/nosuch/members/x@a.b"):
        assert client.put(path, json=body, headers=callers["member"]).status_code == 403
    assert client.put(f"{C}/members/x@acme.example", json=body).status_code == 409


def test_two_authorization_headers_are_refused(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    good = callers["seller-admin"]["Authorization"]
    response = client.get(
        "/v1/companies",
        headers=[("Authorization", good), ("Authorization", "Bearer junk")],
    )
    assert response.status_code == 401
    assert "one Authorization header" in response.json()["message"]
