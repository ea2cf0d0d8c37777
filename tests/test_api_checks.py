"""POST /v1/check and /v1/check/batch over the demo policy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orgguard.settings import Settings
from tests.conftest import bearer, make_key, user_token

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


def test_the_fast_path_answers_exactly_as_the_route(settings: Settings) -> None:
    """``FastCheck`` answers well-formed checks itself and hands everything
    else to the FastAPI route: both must give the same bytes."""
    from orgguard.api.app import create_app

    bodies: list[Any] = [
        {"user": ALICE, "company": "acme", "resource": "orders", "action": "read"},
        {"user": HANA, "company": "acme", "resource": "orders", "action": "checkout"},
        {"user": "carol@acme.example", "company": "acme", "resource": "orders",
         "action": "read", "owner": "carol@acme.example"},
        {"user": "carol@acme.example", "company": "acme", "resource": "orders",
         "action": "read", "owner": None},
        {"user": ALICE, "company": "nosuch", "resource": "orders", "action": "read"},
        {"user": ALICE, "company": "acme", "resource": "orders"},
        {"user": ALICE, "company": "a,b", "resource": "orders", "action": "read"},
        {"user": ALICE, "company": "acme", "resource": "x", "action": "y", "z": 1},
        [],
        "{not json",
    ]  # fmt: skip
    good = [b for b in bodies if isinstance(b, dict) and "action" in b][:5]
    batches: list[Any] = [
        {"checks": good * 20},
        {"checks": [*good, bodies[5]]},
        {"checks": [good[0]] * 1001},
        {"checks": []},
    ]
    answers = []
    for fast in (True, False):
        with TestClient(create_app(settings, fast_check=fast)) as client:
            revision = client.app.state.authorizer.revision  # type: ignore[attr-defined]
            key = bearer(make_key(client, f"k{fast}", "checker"))
            user = bearer(user_token("jonas@acme.example"))  # may not check
            seen = []
            calls = [("/v1/check", b) for b in bodies]
            calls += [("/v1/check/batch", b) for b in batches]
            for path, body in calls:
                raw = body if isinstance(body, str) else json.dumps(body)
                for headers in (key, user):
                    response = client.post(path, content=raw, headers=headers)
                    # The same with a Content-Type that is not JSON: a 422
                    # with a hint from both routes, not a 200 from one path.
                    other = client.post(
                        path,
                        content=raw,
                        headers={**headers, "Content-Type": "text/plain"},
                    )
                    # (The batch route validates its body before it asks the
                    # gate, so a refused caller may see the 422 first.)
                    expected = {422} if headers is key else {403, 422}
                    assert other.status_code in expected, (path, raw, fast)
                    seen.append((other.status_code, other.json()["error"]))
                    # The revision differs by the key each run made.
                    text = response.text.replace(
                        f'"revision":{revision + 1}', '"revision":R'
                    )
                    seen.append((response.status_code, text))
            answers.append(seen)

    assert answers[0] == answers[1]
    statuses = {status for status, _ in answers[0]}
    assert statuses == {200, 403, 422}
    assert sum('"revision":R' in text for _, text in answers[0]) == 7


@pytest.mark.parametrize("path", ["/v1/check", "/v1/check/batch"])
def test_a_chunked_body_over_the_limit_is_413_even_when_it_ends_valid(
    client: TestClient, path: str
) -> None:
    """The last chunk crosses the limit: it must still be counted."""
    valid = json.dumps(
        {"user": ALICE, "company": "acme", "resource": "orders", "action": "read"}
    )
    if path.endswith("batch"):
        valid = json.dumps({"checks": [json.loads(valid)]})
    limit = 2 * 1024 * 1024
    padding = b" " * (limit - 10)
    chunks = [padding[i : i + 65536] for i in range(0, len(padding), 65536)]
    chunks.append(valid.encode())  # the body is valid JSON, padded in front

    response = client.post(path, content=iter(chunks))

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
