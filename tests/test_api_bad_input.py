"""No request, however malformed, returns 500 or changes anything."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

GOOD = {
    "user": "alice@acme.example",
    "company": "acme",
    "resource": "orders",
    "action": "read",
}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"user": ""}, "user"),
        ({"user": " alice@acme.example"}, "user"),
        ({"user": "alice,bob"}, "user"),
        ({"user": "*"}, "user"),
        ({"user": "al\u00efce"}, "user"),
        ({"user": "a" * 129}, "user"),
        ({"user": 7}, "user"),
        ({"user": None}, "user"),
        ({"company": "*"}, "company"),
        ({"company": "acme\n"}, "company"),
        ({"company": "ac:me"}, "company"),
        ({"company": "'acme'"}, "company"),
        ({"company": ["acme"]}, "company"),
        ({"resource": "orders,read"}, "resource"),
        ({"action": "re(ad)"}, "action"),
        ({"owner": "x y"}, "owner"),
        ({"owner": ""}, "owner"),
        ({"extra": "field"}, "extra"),
    ],
)
def test_check_refuses_bad_field(
    client: TestClient, override: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/check", json={**GOOD, **override})

    assert response.status_code == 422
    assert field in [f["field"] for f in response.json()["fields"]]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"null",
        b"[]",
        b"42",
        b'"x"',
        b"{'user': 1}",
        b"\xff\xfe",
        b'{"user": "a", "user": 1}',
    ],
)
def test_check_refuses_malformed_json(client: TestClient, raw: bytes) -> None:
    response = client.post(
        "/v1/check", content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


def test_check_accepts_json_without_content_type(client: TestClient) -> None:
    import json

    response = client.post("/v1/check", content=json.dumps(GOOD))

    assert response.status_code == 200
    assert response.json()["allowed"] is True


def test_oversized_body_is_413(client: TestClient) -> None:
    body = b"[" + b" " * 3_000_000 + b"]"

    declared = client.post("/v1/check/batch", content=body)
    chunked = client.post("/v1/check/batch", content=iter([body[:1000], body[1000:]]))

    assert declared.status_code == chunked.status_code == 413
    assert declared.json()["error"] == "too_large"
    assert chunked.json()["fields"] == []


def test_form_body_gets_a_content_type_hint(client: TestClient) -> None:
    response = client.post(
        "/v1/check",
        content=b'{"user": "a"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 422
    assert "Content-Type: application/json" in response.json()["fields"][0]["message"]


def test_batch_names_the_bad_item(client: TestClient) -> None:
    checks = [GOOD, {**GOOD, "company": "a*"}]

    response = client.post("/v1/check/batch", json={"checks": checks})

    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "checks[1].company"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/companies/a%2Cb"),
        ("get", "/v1/companies/%2A"),
        ("get", "/v1/companies/acm%C3%A9"),
        ("get", "/v1/companies/acme%0A"),
        ("get", "/v1/companies/" + "x" * 65),
        ("get", "/v1/companies/acme/members/bob%20smith"),
        ("put", "/v1/companies/acme/members/%2A"),
        ("delete", "/v1/companies/acme/members/a%2Cb"),
        ("delete", "/v1/companies/ac%3Ame"),
        ("get", "/v1/users/%00/companies"),
        ("get", "/v1/companies?after=%2A"),
        ("get", "/v1/companies?limit=0"),
        ("get", "/v1/companies?limit=abc"),
        ("get", "/v1/companies/acme/who-can?permission=orders"),
        ("get", "/v1/companies/acme/who-can?permission=*:*"),
        ("get", "/v1/companies/acme/who-can"),
    ],
)
def test_bad_path_or_query_is_422(client: TestClient, method: str, path: str) -> None:
    before = client.get("/v1/companies/acme/members").json()

    response = client.request(method, path, json={"groups": []})

    assert response.status_code == 422, response.text
    assert response.json()["fields"]
    assert client.get("/v1/companies/acme/members").json() == before


@pytest.mark.parametrize(
    "body",
    [
        {"groups": "buyer"},
        {"groups": [1]},
        {"groups": ["bu yer"]},
        {"groups": ["buyer"], "role": "admin"},
        {},
        {"groups": ["x"] * 51},
    ],
)
def test_set_member_refuses_bad_body(client: TestClient, body: dict[str, Any]) -> None:
    response = client.put("/v1/companies/acme/members/new@x.example", json=body)

    assert response.status_code == 422
    assert client.get("/v1/companies/acme/members/new@x.example").status_code == 404
