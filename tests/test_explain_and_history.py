"""Explain (the whole path of a check) and access at a past time, rebuilt from
the change log."""

from __future__ import annotations

import io
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from orgguard.policy.explain import explain
from orgguard.service import Authorizer
from orgguard.storage.schema import changes
from tests.conftest import bearer, make_key, user_token

KIM_PATH = "/v1/companies/acme/members/kim@acme.example"
CAROL = bearer(user_token("carol@acme.example"))  # admin of acme-south only
KIM = {"user": "kim@acme.example", "company": "acme", "resource": "orders",
       "action": "read", "explain": True}  # fmt: skip


def test_explain_reaches_the_verdict_check_reaches(authorizer: Authorizer) -> None:
    index = authorizer.index
    users = [*sorted(index.user_companies), "ghost@x.example"]
    permissions = sorted(index.catalogue)
    compared = allowed = 0
    for user in users:
        for company in [*sorted(index.companies), "nowhere"]:
            for permission in permissions:
                for owner in (None, user, "other@x.example"):
                    found = explain(index, user, company, *permission, owner)
                    decision = index.decide(user, company, *permission, owner)
                    assert found.decision == decision
                    # Allowed exactly when a named rule applies.
                    assert decision.allowed == any(r.applies for r in found.rules)
                    compared += 1
                    allowed += decision.allowed
    assert compared > 1000 and 100 < allowed < compared - 100


def test_explain_names_memberships_rules_and_near_misses(client: TestClient) -> None:
    written = client.put(
        "/v1/companies/acme/members/kim@acme.example", json={"groups": ["buyer"]}
    ).json()

    denied = client.post("/v1/check", json=KIM).json()
    allowed = client.post("/v1/check", json={**KIM, "owner": KIM["user"]}).json()

    assert denied["allowed"] is False
    path = denied["explanation"]
    assert [(m["group"], m["since"]["revision"]) for m in path["memberships"]] == [
        ("buyer", written["revision"]),
        ("contact", written["revision"]),
    ]
    assert path["memberships"][0]["since"]["action"] == "member.set"
    [rule] = path["rules"]
    assert rule["rule"] == "p, group:buyer, *, orders, read, own"
    assert rule["source"] == "templates.csv" and rule["applies"] is False
    assert isinstance(rule["rule_id"], int)
    assert path["near_misses"][0].startswith(
        "group 'buyer' grants orders:read only on resources"
    )
    assert "group 'admin' in 'acme' grants orders:read; 'kim@acme.example' is " \
        "not in it" in path["near_misses"]  # fmt: skip
    assert allowed["allowed"] is True
    assert allowed["explanation"]["rules"][0]["applies"] is True
    assert allowed["explanation"]["near_misses"] == []


def test_explain_gives_the_line_an_export_holds_the_rule_at(
    client: TestClient, tmp_path: Path
) -> None:
    """The rule and the line an explanation names are those of the files
    ``orgguard policy export`` writes now."""
    bodies = [
        {**KIM, "user": "chen@acme.example", "company": "acme-south",
         "resource": "invoices", "action": "pay"},
        {**KIM, "user": "alice@acme.example"},
    ]  # fmt: skip
    archive = client.get("/v1/policy/export", params={"format": "tar.gz"})
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        tar.extractall(tmp_path, filter="data")

    named = 0
    for body in bodies:
        for rule in client.post("/v1/check", json=body).json()["explanation"]["rules"]:
            lines = (tmp_path / rule["source"]).read_text().splitlines()
            assert lines[rule["line"] - 1] == rule["rule"]
            named += 1
    assert named >= 2


def test_explain_names_company_rules_and_other_companies(client: TestClient) -> None:
    body = {"user": "chen@acme.example", "company": "acme-south",
            "resource": "invoices", "action": "pay", "explain": True}  # fmt: skip
    other = {**body, "company": "acme"}

    here = client.post("/v1/check", json=body).json()
    there = client.post("/v1/check", json=other).json()

    assert here["allowed"] is True
    sources = {r["source"] for r in here["explanation"]["rules"]}
    assert "companies/acme-south.csv" in sources
    assert there["allowed"] is False
    assert any(
        "holds invoices:pay in 'acme-south'" in miss
        for miss in there["explanation"]["near_misses"]
    )


@pytest.mark.parametrize(
    ("who", "company", "status"),
    [("checker", "acme", 403), ("carol", "acme", 403), ("carol", "acme-south", 200)],
)
def test_explain_needs_members_read_in_the_company(
    anonymous: TestClient, who: str, company: str, status: int
) -> None:
    headers = CAROL if who == "carol" else bearer(make_key(anonymous, "c", "checker"))
    body = {**KIM, "company": company}

    response = anonymous.post("/v1/check", json=body, headers=headers)
    plain = anonymous.post("/v1/check", json={**body, "explain": False},
                           headers=headers)  # fmt: skip

    assert response.status_code == status
    if who == "checker":  # a checker still gets plain answers
        assert plain.status_code == 200


def test_explain_is_not_a_batch_field(client: TestClient) -> None:
    response = client.post("/v1/check/batch", json={"checks": [KIM]})

    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "checks[0].explain"


def access(client: TestClient, at: datetime | None = None, **kw: Any) -> Any:
    params = {} if at is None else {"at": at.isoformat()}
    return client.get("/v1/companies/acme/access", params=params, **kw)


def moment() -> datetime:
    """Now, with the clock moved on a little on each side."""
    time.sleep(0.01)
    now = datetime.now(UTC)
    time.sleep(0.01)
    return now


def holds(answer: Any, user: str) -> list[str] | None:
    for member in answer["members"]:
        if member["user"] == user:
            return [p["permission"] for p in member["permissions"]]
    return None


def test_access_at_a_past_time_follows_membership_changes(client: TestClient) -> None:
    before = moment()
    client.put(f"{KIM_PATH}", json={"groups": ["buyer"]})
    as_buyer = moment()
    client.put("/v1/companies/acme/members/kim@acme.example",
               json={"groups": ["requester"]})  # fmt: skip
    as_requester = moment()
    client.delete("/v1/companies/acme/members/kim@acme.example")

    then = [access(client, at).json() for at in (before, as_buyer, as_requester)]
    now = access(client).json()

    assert holds(then[0], "kim@acme.example") is None
    assert "orders:checkout" in (holds(then[1], "kim@acme.example") or [])
    assert "orders:checkout" not in (holds(then[2], "kim@acme.example") or [])
    assert holds(then[2], "kim@acme.example") is not None
    assert holds(now, "kim@acme.example") is None
    assert then[0]["revision"] < then[1]["revision"] < then[2]["revision"]


def test_access_rebuilt_now_equals_the_live_permissions(client: TestClient) -> None:
    client.put(f"{KIM_PATH}", json={"groups": ["buyer"]})
    client.post("/v1/companies/acme/groups", json={"id": "ap", "name": "AP",
                "permissions": ["invoices:pay"]})  # fmt: skip
    client.put("/v1/companies/acme/members/kim@acme.example",
               json={"groups": ["buyer", "ap"]})  # fmt: skip

    live = access(client).json()
    rebuilt = access(client, datetime.now(UTC) + timedelta(seconds=1)).json()

    assert rebuilt["members"] == live["members"]
    assert rebuilt["revision"] == live["revision"]
    for member in live["members"]:
        one = client.get(f"/v1/companies/acme/members/{member['user']}/permissions")
        assert one.json()["permissions"] == member["permissions"]


def test_access_before_a_company_existed_is_404(client: TestClient) -> None:
    before = moment()
    client.post("/v1/companies", json={"id": "newco", "name": "New Co"})

    response = client.get("/v1/companies/newco/access",
                          params={"at": before.isoformat()})  # fmt: skip

    assert response.status_code == 404
    assert response.json()["fields"][0]["field"] == "at"


def test_a_company_admin_does_not_see_a_predecessor_with_the_same_id(
    client: TestClient,
) -> None:
    client.post("/v1/companies", json={"id": "reused", "name": "First"})
    client.put("/v1/companies/reused/members/old@x.example", json={"groups": ["admin"]})
    first_life = moment()
    client.delete("/v1/companies/reused")
    client.post("/v1/companies", json={"id": "reused", "name": "Second"})
    client.put("/v1/companies/reused/members/new@x.example", json={"groups": ["admin"]})
    new_admin = bearer(user_token("new@x.example"))
    params = {"at": first_life.isoformat()}

    seller = client.get("/v1/companies/reused/access", params=params)
    admin = client.get("/v1/companies/reused/access", params=params,
                       headers=new_admin)  # fmt: skip

    assert seller.status_code == 200
    assert [m["user"] for m in seller.json()["members"]] == ["old@x.example"]
    assert admin.status_code == 404


@pytest.mark.parametrize("at", ["yesterday", "2026-13-01T00:00:00", ""])
def test_a_bad_time_is_422_naming_it(client: TestClient, at: str) -> None:
    response = client.get("/v1/companies/acme/access", params={"at": at})

    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "query.at"


def test_a_change_logged_without_rows_is_worked_around_by_undoing(
    client: TestClient,
) -> None:
    """A first load of more than 20,000 rows is logged without its rows: a
    past time is then rebuilt from the policy now with every later change
    undone, and gives the same answers; only a time with such a change on
    both sides cannot be rebuilt (409)."""
    client.put(KIM_PATH, json={"groups": ["buyer"]})
    as_buyer = moment()
    client.put(KIM_PATH, json={"groups": ["requester"]})
    as_requester = moment()
    client.post("/v1/companies", json={"id": "newco", "name": "New Co"})
    client.delete("/v1/companies/newco")
    client.delete(KIM_PATH)
    times = (as_buyer, as_requester)
    replayed = [access(client, at).json() for at in times]
    engine = client.app.state.authorizer.store.engine  # type: ignore[attr-defined]

    def drop_rows(revision: int) -> None:
        with engine.begin() as connection:
            connection.execute(
                update(changes).where(changes.c.revision == revision).values(ops=None)
            )

    drop_rows(1)  # the first load
    undone = [access(client, at).json() for at in times]
    drop_rows(replayed[1]["revision"])  # kim's move to requester
    blocked = access(client, as_buyer)
    still = access(client, as_requester)

    assert undone == replayed
    assert holds(undone[0], "kim@acme.example") is not None
    assert blocked.status_code == 409
    assert blocked.json()["fields"][0]["field"] == "at"
    assert still.status_code == 200 and still.json() == replayed[1]


def test_near_misses_name_no_company_the_asker_may_not_read(
    client: TestClient,
) -> None:
    body = {"user": "hana@acme.example", "company": "initech",
            "resource": "invoices", "action": "read", "explain": True}  # fmt: skip
    bob = bearer(user_token("bob@acme.example"))  # admin of initech only

    as_bob = client.post("/v1/check", json=body, headers=bob).json()
    as_seller = client.post("/v1/check", json=body).json()

    mention = "holds invoices:read in 'acme'"
    assert not any(mention in m for m in as_bob["explanation"]["near_misses"])
    assert any(mention in m for m in as_seller["explanation"]["near_misses"])
