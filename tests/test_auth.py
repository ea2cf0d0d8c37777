"""Authentication: API keys and people's JWTs, every way a credential can fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from orgguard.api.app import create_app
from orgguard.settings import Settings
from orgguard.storage.schema import api_keys
from tests.conftest import JWT_SECRET, bearer, make_key, user_token

SELLER = "olga@seller.example"
OTHER_SECRET = "another-secret-of-32-bytes-or-more!"
CHECK = {"user": "alice@acme.example", "company": "acme", "resource": "orders",
         "action": "read"}  # fmt: skip


def status(client: TestClient, headers: dict[str, str]) -> int:
    return client.post("/v1/check", json=CHECK, headers=headers).status_code


# -- JWT (HS256 from the settings fixture) ---------------------------------------


def _none_token() -> str:
    head = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(
        json.dumps({"sub": SELLER, "exp": 4102444800}).encode()
    ).decode()
    return f"{head}.{body}."


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "send Authorization"),
        ("", "send Authorization"),
        ("Basic b2xnYTpwdw==", "must be 'Bearer"),
        ("Bearer", "must be 'Bearer"),
        ("Bearer not-a-token", "invalid token"),
        ("Bearer " + user_token(SELLER, expires_in=timedelta(seconds=-1)), "expired"),
        ("Bearer " + user_token(SELLER, secret=OTHER_SECRET), "invalid token"),
        ("Bearer " + jwt.encode({"sub": SELLER}, JWT_SECRET, "HS256"), "invalid token"),
        ("Bearer " + user_token("not a user id"), "not a valid user id"),
        ("Bearer " + user_token("key:tests-admin"), "not a valid user id"),
        ("Bearer " + _none_token(), "invalid token"),
        ("Bearer ogk_0123456789abcdef_wrong", "unknown API key"),
        ("Bearer ogk_" + "x" * 5000, "unknown API key"),
        ("Bearer ogk_'; drop table api_keys; --_x", "unknown API key"),
    ],
)  # fmt: skip
def test_a_bad_credential_is_401_with_a_challenge(
    anonymous: TestClient, authorization: str | None, reason: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = anonymous.post("/v1/check", json=CHECK, headers=headers)

    assert response.status_code == 401
    assert reason in response.json()["message"]
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="orgguard"')
    assert ('error="invalid_token"' in challenge) == bool(authorization)


def test_a_valid_token_is_a_person_with_its_roles(anonymous: TestClient) -> None:
    assert status(anonymous, bearer(user_token(SELLER))) == 200
    # A valid person without a platform role is known, but may not check.
    assert status(anonymous, bearer(user_token("jonas@acme.example"))) == 403
    # The scheme name is case-insensitive (RFC 7235).
    assert status(anonymous, {"Authorization": f"bearer {user_token(SELLER)}"}) == 200


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(**jwt_settings: Any) -> TestClient:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            policy_dir=Path(__file__).resolve().parent.parent / "policies",
            **jwt_settings,
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_issuer_and_audience_are_checked_when_set(make_app: Any) -> None:
    client = make_app(
        jwt_secret=JWT_SECRET, jwt_issuer="https://idp.example", jwt_audience="orgguard"
    )
    good = {"iss": "https://idp.example", "aud": "orgguard"}

    assert status(client, bearer(user_token(SELLER, **good))) == 200
    for wrong in (
        {**good, "iss": "https://evil.example"},
        {**good, "aud": "another-service"},
        {"aud": "orgguard"},
        {"iss": "https://idp.example"},
    ):
        assert status(client, bearer(user_token(SELLER, **wrong))) == 401, wrong


def _pem(private: Any) -> bytes:
    return bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )


@pytest.mark.parametrize(
    ("private", "algorithm"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ],
)
def test_a_public_key_verifies_tokens_signed_by_its_private_key(
    make_app: Any, tmp_path: Path, private: Any, algorithm: str
) -> None:
    pem = tmp_path / "idp.pem"
    pem.write_bytes(_pem(private))
    client = make_app(jwt_public_key=pem)
    claims = {"sub": SELLER, "exp": 4102444800}

    signed = jwt.encode(claims, private, algorithm)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, "RS256")
    # The classic confusion: HS256 signed with the public key's bytes as secret.
    confused = jwt.encode(claims, JWT_SECRET, "HS256")

    assert status(client, bearer(signed)) == 200
    assert status(client, bearer(forged)) == 401
    assert status(client, bearer(confused)) == 401


def test_a_jwks_file_picks_the_key_by_kid(make_app: Any, tmp_path: Path) -> None:
    first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    second = ec.generate_private_key(ec.SECP256R1())
    algorithms = jwt.algorithms.get_default_algorithms()
    keys = [
        {
            **json.loads(algorithms[algorithm].to_jwk(private.public_key())),
            "kid": kid,
            "alg": algorithm,
            "use": "sig",
        }
        for kid, private, algorithm in (("k1", first, "RS256"), ("k2", second, "ES256"))
    ]
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": keys}))
    client = make_app(jwt_jwks_file=tmp_path / "jwks.json")
    claims = {"sub": SELLER, "exp": 4102444800}

    def token(private: Any, algorithm: str, kid: str | None) -> str:
        headers = {} if kid is None else {"kid": kid}
        return jwt.encode(claims, private, algorithm, headers=headers)

    assert status(client, bearer(token(first, "RS256", "k1"))) == 200
    assert status(client, bearer(token(second, "ES256", "k2"))) == 200
    assert status(client, bearer(token(first, "RS256", "k2"))) == 401  # wrong key
    assert status(client, bearer(token(first, "RS256", "k9"))) == 401  # unknown kid
    assert status(client, bearer(token(first, "RS256", None))) == 401  # no kid


def test_two_jwt_key_sources_are_refused_at_start(
    make_app: Any, tmp_path: Path
) -> None:
    pem = tmp_path / "idp.pem"
    pem.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(Exception, match="set only one of"):
        make_app(jwt_secret=JWT_SECRET, jwt_public_key=pem)


def test_without_a_jwt_key_tokens_are_unknown(make_app: Any) -> None:
    client = make_app()
    response = client.post("/v1/check", json=CHECK, headers=bearer(user_token(SELLER)))
    assert response.status_code == 401
    assert "no JWT key is configured" in response.json()["message"]


# -- API keys ---------------------------------------------------------------------


def test_key_lifecycle_create_use_list_revoke(client: TestClient) -> None:
    created = client.post("/v1/keys", json={"name": "storefront", "role": "checker"})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("ogk_")
    checker = bearer(key)

    assert status(client, checker) == 200
    assert client.get("/v1/companies", headers=checker).status_code == 403

    listed = client.get("/v1/keys").json()["items"]
    row = next(k for k in listed if k["name"] == "storefront")
    assert row["role"] == "checker" and row["revoked_at"] is None
    assert key not in json.dumps(listed) and "digest" not in row

    # One active key per name.
    again = client.post("/v1/keys", json={"name": "storefront", "role": "checker"})
    assert again.status_code == 409

    assert client.delete("/v1/keys/storefront").status_code == 204
    refused = client.post("/v1/check", json=CHECK, headers=checker)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["message"]
    assert client.delete("/v1/keys/storefront").status_code == 404

    # The name is free again; the old key stays revoked.
    renewed = client.post("/v1/keys", json={"name": "storefront", "role": "checker"})
    assert renewed.status_code == 201
    assert status(client, bearer(renewed.json()["key"])) == 200
    assert status(client, checker) == 401


def test_only_a_salted_hash_of_a_key_is_stored(client: TestClient) -> None:
    key = make_key(client, "pos", "checker")
    secret = key.split("_", 2)[2]
    engine = client.app.state.authorizer.store.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(api_keys.select()).mappings().all()

    stored = json.dumps([dict(r) for r in rows], default=str)
    assert secret not in stored
    salts = [r["salt"] for r in rows]
    assert len(set(salts)) == len(salts) == 2  # tests-admin and pos


@pytest.mark.parametrize(
    ("body", "status_code", "field"),
    [
        ({"name": "x", "role": "emperor"}, 422, "role"),
        ({"name": "a b", "role": "checker"}, 422, "name"),
        ({"name": "x"}, 422, "role"),
        ({"name": "x", "role": "checker", "secret": "mine"}, 422, "secret"),
    ],
)
def test_bad_key_requests_name_the_field(
    client: TestClient, body: dict[str, str], status_code: int, field: str
) -> None:
    response = client.post("/v1/keys", json=body)
    assert response.status_code == status_code
    assert field in [f["field"] for f in response.json()["fields"]]
    assert [k["name"] for k in client.get("/v1/keys").json()["items"]] == [
        "tests-admin"
    ]


def test_a_role_cannot_hand_out_more_than_it_holds(client: TestClient) -> None:
    # A role that may write keys but lacks the rest of seller-admin must not
    # mint a seller-admin key: give a person keys:write only, through a role
    # defined for the test.
    from orgguard.policy.model import Change, Permission, PlatformGrant

    authorizer = client.app.state.authorizer  # type: ignore[attr-defined]
    change = Change("test.role")
    change.add_platform.append(PlatformGrant("key-clerk", Permission("keys", "write")))
    with authorizer.writing():
        authorizer.commit(change)
    client.put("/v1/roles/kim@seller.example", json={"roles": ["key-clerk"]})
    clerk = bearer(user_token("kim@seller.example"))

    refused = client.post(
        "/v1/keys", json={"name": "x", "role": "seller-admin"}, headers=clerk
    )
    allowed = client.post(
        "/v1/keys", json={"name": "y", "role": "key-clerk"}, headers=clerk
    )

    assert refused.status_code == 403
    assert "companies:write" in refused.json()["message"]
    assert allowed.status_code == 201


def test_platform_roles_are_set_listed_and_take_effect(client: TestClient) -> None:
    rita = bearer(user_token("rita@seller.example"))
    assert client.get("/v1/companies", headers=rita).status_code == 403

    response = client.put(
        "/v1/roles/rita@seller.example", json={"roles": ["seller-support"]}
    )
    assert response.status_code == 200
    assert client.get("/v1/companies", headers=rita).status_code == 200
    assert client.post("/v1/companies", json={"id": "x", "name": "X"},
                       headers=rita).status_code == 403  # fmt: skip
    holders = {
        h["subject"]: h["roles"] for h in client.get("/v1/roles").json()["items"]
    }
    assert holders["rita@seller.example"] == ["seller-support"]
    assert holders["key:tests-admin"] == ["seller-admin"]

    client.put("/v1/roles/rita@seller.example", json={"roles": []})
    assert client.get("/v1/companies", headers=rita).status_code == 403
    unknown = client.put("/v1/roles/rita@seller.example", json={"roles": ["god"]})
    assert unknown.status_code == 422
    assert unknown.json()["fields"][0]["field"] == "roles[0]"


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("POST", "/v1/companies", b"{not json"),
        ("POST", "/v1/check", b'{"user": 1}'),
        ("GET", "/v1/companies/no%20such/members", None),
        ("GET", "/v1/no-such-endpoint", None),
    ],
)
def test_authentication_comes_before_reading_the_request(
    anonymous: TestClient, method: str, path: str, content: bytes | None
) -> None:
    response = anonymous.request(
        method, path, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
