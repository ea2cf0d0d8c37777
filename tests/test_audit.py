"""The audit trail: one record per write, in the write's transaction, kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from orgguard.settings import Settings
from orgguard.storage.store import AuditQuery
from tests.conftest import bearer, reopen, user_token

CAROL = bearer(user_token("carol@acme.example"))  # admin of acme-south only
C = "/v1/companies/acme-south"

# Every kind of write: (method, path, body, action, company, before, after).
WRITES: list[tuple[str, str, Any, str, str | None, Any, Any]] = [
    ("POST", "/v1/companies", {"id": "newco", "name": "New", "parent": "acme"},
     "company.create", "newco", None, {"id": "newco", "name": "New", "parent": "acme"}),
    ("POST", f"{C}/groups", {"id": "pickers", "name": "Pickers", "permissions": ["orders:read:own"]},
     "group.create", "acme-south", None, {"id": "pickers", "name": "Pickers", "permissions": ["orders:read:own"]}),
    ("PATCH", f"{C}/groups/pickers", {"name": "Pick", "permissions": ["orders:read"]},
     "group.update", "acme-south", {"id": "pickers", "name": "Pickers", "permissions": ["orders:read:own"]},
     {"id": "pickers", "name": "Pick", "permissions": ["orders:read"]}),
    ("PUT", f"{C}/members/judy@acme.example", {"groups": ["buyer", "pickers"]},
     "member.set", "acme-south", {"user": "judy@acme.example", "groups": ["contact", "requester"]},
     {"user": "judy@acme.example", "groups": ["buyer", "contact", "pickers"]}),
    ("DELETE", f"{C}/groups/pickers", None, "group.delete", "acme-south",
     {"id": "pickers", "name": "Pick", "permissions": ["orders:read"], "members": ["judy@acme.example"]}, None),
    ("DELETE", f"{C}/members/judy@acme.example", None, "member.delete", "acme-south",
     {"user": "judy@acme.example", "groups": ["buyer", "contact"]}, None),
    ("PUT", "/v1/roles/rita@seller.example", {"roles": ["seller-support"]}, "roles.set", None,
     None, {"user": "rita@seller.example", "roles": ["seller-support"]}),
    ("POST", "/v1/keys", {"name": "pos", "role": "checker"}, "key.create", None, None, "key"),
    ("DELETE", "/v1/keys/pos", None, "key.revoke", None, "key", None),
    ("DELETE", "/v1/companies/newco", None, "company.delete", "newco",
     {"companies": [{"id": "newco", "name": "New", "parent": "acme"}], "members": {"newco": {}}}, None),
]  # fmt: skip


def test_every_write_is_one_record_kept_across_a_restart(
    client: TestClient, settings: Settings
) -> None:
    start = client.get("/v1/audit", params={"limit": 1}).json()["items"][0]
    for number, (method, path, body, *_) in enumerate(WRITES):
        response = client.request(
            method, path, json=body, headers={"X-Request-ID": f"req-{number}"}
        )
        assert response.status_code < 300, response.text
        assert response.headers["X-Request-ID"] == f"req-{number}"

    records = client.get("/v1/audit", params={"limit": 1000}).json()["items"]
    new = list(reversed(records[: len(WRITES)]))
    assert records[len(WRITES)] == start  # nothing else was written

    for number, record in enumerate(new):
        _, _, _, action, company, before, after = WRITES[number]
        assert record["revision"] == start["revision"] + number + 1
        assert (record["action"], record["company"]) == (action, company)
        assert record["actor"] == "key:tests-admin"
        assert record["request_id"] == f"req-{number}"
        if before == "key" or after == "key":
            state = record["before"] or record["after"]
            assert state["name"] == "pos" and state["role"] == "checker"
            assert "digest" not in state and "salt" not in state
        else:
            assert (record["before"], record["after"]) == (before, after)

    # A new process reads the same records from the database.
    restarted = reopen(settings).store.audit(AuditQuery(limit=1000))
    assert [r.revision for r in restarted] == [r["revision"] for r in records]
    assert [(r.actor, r.action, r.before, r.after) for r in restarted] == [
        (r["actor"], r["action"], r["before"], r["after"]) for r in records
    ]


def test_refused_and_failed_writes_leave_no_record(client: TestClient) -> None:
    before = client.get("/v1/audit").json()

    forbidden = client.post(
        "/v1/companies", json={"id": "x", "name": "X"}, headers=CAROL
    )
    conflict = client.post("/v1/companies", json={"id": "acme", "name": "Again"})
    last_admin = client.delete(f"{C}/members/carol@acme.example")
    invalid = client.put(f"{C}/members/judy@acme.example", json={"groups": ["nope"]})

    assert [r.status_code for r in (forbidden, conflict, last_admin, invalid)] == [
        403,
        409,
        409,
        422,
    ]
    assert client.get("/v1/audit").json() == before


def test_a_company_admin_reads_only_its_companies_records(client: TestClient) -> None:
    client.put(f"{C}/members/x@acme.example", json={"groups": []})
    client.put("/v1/companies/globex/members/x@acme.example", json={"groups": []})

    own = client.get("/v1/audit", headers=CAROL).json()["items"]
    elsewhere = client.get("/v1/audit", params={"company": "globex"}, headers=CAROL)

    assert {r["company"] for r in own} == {"acme-south"}
    assert own[0]["after"] == {"user": "x@acme.example", "groups": ["contact"]}
    assert elsewhere.status_code == 403
    # A member without audit:read anywhere is refused outright.
    jonas = bearer(user_token("jonas@acme.example"))
    assert client.get("/v1/audit", headers=jonas).status_code == 403


def test_filters_and_pages(client: TestClient) -> None:
    for n in range(5):
        client.put(f"{C}/members/p{n}@acme.example", json={"groups": []})
    client.put(f"{C}/members/by-carol@acme.example", json={"groups": []},
               headers=CAROL)  # fmt: skip
    now = datetime.now(UTC)

    def items(**params: Any) -> list[dict[str, Any]]:
        response = client.get("/v1/audit", params=params)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["items"]
        return result

    assert [r["actor"] for r in items(actor="carol@acme.example")] == [
        "carol@acme.example"
    ]
    assert items(since=(now + timedelta(minutes=1)).isoformat()) == []
    # The first-start load, the tests-admin key, then the six writes.
    assert len(items(since=(now - timedelta(minutes=1)).isoformat())) == 8
    assert items(until=(now - timedelta(days=1)).isoformat()) == []
    # A time without a zone is UTC.
    naive = (now - timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert len(items(since=naive)) == 8

    first = client.get("/v1/audit", params={"limit": 4}).json()
    second = client.get("/v1/audit", params={"limit": 4, "before": first["next"]})
    revisions = [r["revision"] for r in first["items"] + second.json()["items"]]
    assert revisions == sorted(revisions, reverse=True)
    assert len(set(revisions)) == 8

    bad = client.get("/v1/audit", params={"since": "yesterday", "before": 0})
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["fields"]} == {"query.since", "query.before"}


def test_request_ids_are_echoed_or_made(client: TestClient) -> None:
    mine = client.get("/v1/companies", headers={"X-Request-ID": "abc-123"})
    made = client.get("/v1/companies")
    hostile = client.get(
        "/v1/companies", headers={"X-Request-ID": "a b\tc" + "x" * 500}
    )

    assert mine.headers["X-Request-ID"] == "abc-123"
    assert len(made.headers["X-Request-ID"]) == 32
    assert hostile.headers["X-Request-ID"] not in ("", "a b\tc" + "x" * 500)


def test_a_reused_company_id_does_not_show_its_predecessor_to_new_admins(
    client: TestClient,
) -> None:
    client.post("/v1/companies", json={"id": "reuse", "name": "Old customer"})
    client.put(
        "/v1/companies/reuse/members/old@old.example", json={"groups": ["admin"]}
    )
    client.delete("/v1/companies/reuse")
    client.post("/v1/companies", json={"id": "reuse", "name": "New customer"})
    client.put(
        "/v1/companies/reuse/members/new@new.example", json={"groups": ["admin"]}
    )
    new_admin = bearer(user_token("new@new.example"))

    theirs = client.get("/v1/audit", params={"company": "reuse"}, headers=new_admin)
    unfiltered = client.get("/v1/audit", headers=new_admin)
    seller = client.get("/v1/audit", params={"company": "reuse"})

    assert [r["action"] for r in theirs.json()["items"]] == [
        "member.set",
        "company.create",
    ]
    assert unfiltered.json()["items"] == theirs.json()["items"]
    assert "old@old.example" not in theirs.text
    assert len(seller.json()["items"]) == 5  # the seller sees both lives


def test_out_of_range_times_and_revisions_are_422(client: TestClient) -> None:
    for params in (
        {"since": "9999-12-31T23:59:59-05:00"},
        {"until": "0001-01-01T00:00:00+14:00"},
        {"before": str(2**63)},
        {"before": "99999999999999999999999"},
    ):
        response = client.get("/v1/audit", params=params)
        assert response.status_code == 422, params
        field = next(iter(params))
        assert field in response.json()["fields"][0]["field"]
