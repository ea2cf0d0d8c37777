"""POST /v1/check and /v1/check/batch over the demo policy."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

ALICE = "alice@acme.example"  # admin of acme, acme-north, globex
CAROL = "carol@acme.example"  # buyer and finance in acme, admin in acme-south
HANA = "hana@acme.example"  # requester and auditors in acme


@pytest.mark.parametrize(
    ("user", "company", "resource", "action", "owner", "allowed", "reason"),
    [
        (ALICE, "acme", "orders", "read", None, True, "group 'admin'"),
        (ALICE, "acme", "users", "manage", None, True, "group 'admin'"),
        (ALICE, "globex", "orders", "read", None, True, "group 'admin'"),
        (ALICE, "acme-south", "orders", "read", None, False, "not a member"),
        (ALICE, "nowhere", "orders", "read", None, False, "unknown company"),
        (CAROL, "acme", "orders", "read", None, False, "no owner was given"),
        (CAROL, "acme", "orders", "read", CAROL, True, "own resource"),
        (CAROL, "acme", "orders", "read", ALICE, False, "the owner is"),
        (CAROL, "acme", "invoices", "pay", None, True, "group 'finance'"),
        (CAROL, "acme", "users", "manage", None, False, "no group of"),
        (CAROL, "acme-south", "users", "manage", None, True, "group 'admin'"),
        (HANA, "acme", "orders", "read", None, True, "group 'auditors'"),
        (HANA, "acme", "orders", "checkout", None, False, "no group of"),
        (ALICE, "acme", "orders", "delete", None, False, "unknown permission"),
        ("nobody@x.example", "acme", "company", "read", None, False, "not a member"),
    ],
)
def test_check_demo(
    client: TestClient,
    user: str,
    company: str,
    resource: str,
    action: str,
    owner: str | None,
    allowed: bool,
    reason: str,
) -> None:
    body = {"user": user, "company": company, "resource": resource, "action": action}
    if owner is not None:
        body["owner"] = owner

    response = client.post("/v1/check", json=body)

    assert response.status_code == 200
    result = response.json()
    assert result["allowed"] is allowed
    assert reason in result["reason"]
    assert result["revision"] >= 1


def test_check_custom_group_id_does_not_leak_between_companies(
    client: TestClient,
) -> None:
    # 'finance' exists in acme (company-wide invoices:read) and acme-south (own).
    for company, groups in (("acme", ["finance"]), ("acme-south", [])):
        client.put(
            f"/v1/companies/{company}/members/x@x.example", json={"groups": groups}
        )

    def allowed(company: str) -> bool:
        body = {
            "user": "x@x.example",
            "company": company,
            "resource": "invoices",
            "action": "read",
        }
        result: bool = client.post("/v1/check", json=body).json()["allowed"]
        return result

    assert allowed("acme") is True
    assert allowed("acme-south") is False


def test_check_batch_answers_in_request_order(client: TestClient) -> None:
    checks = [
        {"user": ALICE, "company": "acme", "resource": "orders", "action": "read"},
        {"user": ALICE, "company": "umbrella", "resource": "orders", "action": "read"},
        {
            "user": CAROL,
            "company": "acme",
            "resource": "orders",
            "action": "read",
            "owner": CAROL,
        },
    ] * 300

    response = client.post("/v1/check/batch", json={"checks": checks})

    assert response.status_code == 200
    body = response.json()
    assert [r["allowed"] for r in body["results"]] == [True, False, True] * 300
    assert body["revision"] >= 1


def test_check_batch_refuses_more_than_1000(client: TestClient) -> None:
    check = {"user": ALICE, "company": "acme", "resource": "orders", "action": "read"}

    response = client.post("/v1/check/batch", json={"checks": [check] * 1001})

    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "checks"


def test_check_internal_error_is_a_deny_with_a_reason(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index = client.app.state.authorizer.index  # type: ignore[attr-defined]

    def broken(*_args: object) -> None:
        raise RuntimeError("index corrupted")

    monkeypatch.setattr(index, "decide", broken)
    body = {"user": ALICE, "company": "acme", "resource": "orders", "action": "read"}

    response = client.post("/v1/check", json=body)

    assert response.status_code == 200
    assert response.json()["allowed"] is False
    assert "internal error" in response.json()["reason"]
    assert "index corrupted" in caplog.text
