"""Authentication: who is calling, from ``Authorization: Bearer <credential>``.

- ``ogk_...``: an API key, checked against the database on every request, so a
  revocation by any process (API or CLI) counts at once.
- anything else: a JWT from the seller's identity provider, verified with the
  one key source configured (an HS256 secret, an RS256/ES256 public key PEM, or
  a JWKS file); ``exp`` and ``sub`` are required, ``iss`` and ``aud`` checked
  when configured. ``sub`` is the user id.

Every failure is ``Unauthenticated`` with a short reason that names no user.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from orgguard.access import Caller
from orgguard.errors import InvalidInput, Unauthenticated
from orgguard.ids import is_user_id
from orgguard.platform_admin import KEY_PREFIX, PlatformAdmin
from orgguard.settings import Settings

log = logging.getLogger(__name__)

_ASYMMETRIC = ("RS256", "ES256")


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        sources = [
            name
            for name, value in (
                ("ORGGUARD_JWT_SECRET", settings.jwt_secret),
                ("ORGGUARD_JWT_PUBLIC_KEY", settings.jwt_public_key),
                ("ORGGUARD_JWT_JWKS_FILE", settings.jwt_jwks_file),
            )
            if value
        ]
        if len(sources) > 1:
            raise InvalidInput(f"set only one of {', '.join(sources)}")
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self._key: Any = None
        self._algorithms: list[str] = []
        self._jwks: jwt.PyJWKSet | None = None
        if settings.jwt_secret:
            self._key = settings.jwt_secret.get_secret_value()
            self._algorithms = ["HS256"]
        elif settings.jwt_public_key:
            self._key, algorithm = _public_key(settings.jwt_public_key)
            self._algorithms = [algorithm]
        elif settings.jwt_jwks_file:
            self._jwks = _jwks(settings.jwt_jwks_file)

    @property
    def configured(self) -> bool:
        return bool(self._algorithms) or self._jwks is not None

    def verify(self, token: str) -> str:
        """The token's user id; Unauthenticated for any fault."""
        if not self.configured:
            raise Unauthenticated("unknown credential (no JWT key is configured)")
        key, algorithms = self._key, self._algorithms
        try:
            if self._jwks is not None:
                kid = jwt.get_unverified_header(token).get("kid")
                jwk = self._jwks[kid] if isinstance(kid, str) else None
                if jwk is None:
                    raise Unauthenticated("the token's kid is not in the JWKS")
                key, algorithms = jwk, [jwk.algorithm_name]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self.issuer,
                audience=self.audience,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except KeyError as error:
            raise Unauthenticated("the token's kid is not in the JWKS") from error
        except jwt.ExpiredSignatureError as error:
            raise Unauthenticated("the token has expired") from error
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from error
        subject = claims["sub"]
        if not is_user_id(subject):
            raise Unauthenticated("the token's sub is not a valid user id")
        return str(subject)


def _public_key(path: Path) -> tuple[Any, str]:
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise InvalidInput(
            f"ORGGUARD_JWT_PUBLIC_KEY: cannot read a PEM public key from {path}: "
            f"{error}",
            field="jwt_public_key",
        ) from error
    if isinstance(key, rsa.RSAPublicKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return key, "ES256"
    raise InvalidInput(
        f"ORGGUARD_JWT_PUBLIC_KEY: {path} is not an RSA or P-256 EC key "
        f"(accepted: {', '.join(_ASYMMETRIC)})",
        field="jwt_public_key",
    )


def _jwks(path: Path) -> jwt.PyJWKSet:
    try:
        jwks = jwt.PyJWKSet.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, jwt.PyJWTError) as error:
        raise InvalidInput(
            f"ORGGUARD_JWT_JWKS_FILE: cannot read a JWKS from {path}: {error}",
            field="jwt_jwks_file",
        ) from error
    for jwk in jwks.keys:
        if jwk.algorithm_name not in _ASYMMETRIC:
            raise InvalidInput(
                f"ORGGUARD_JWT_JWKS_FILE: key {jwk.key_id} uses "
                f"{jwk.algorithm_name}; accepted: {', '.join(_ASYMMETRIC)}",
                field="jwt_jwks_file",
            )
    return jwks


class Authenticator:
    def __init__(self, settings: Settings, platform: PlatformAdmin) -> None:
        self.jwt = JwtVerifier(settings)
        self.platform = platform

    def blocks(self, authorization: str | None) -> bool:
        """Whether authenticating this header may wait on the database (then
        run it in a thread): only an API key not seen since the revision moved,
        on a database across the network. A token, a bad header, a key already
        seen never wait, so checks go on while the database is slow or away."""
        if not self.platform.authorizer.store.key_lookup_blocks or not authorization:
            return False
        credential = authorization.strip().partition(" ")[2].strip()
        if not credential.startswith(KEY_PREFIX):
            return False
        return not self.platform.authenticates_at_once(credential)

    def authenticate(self, authorization: str | None, request_id: str | None) -> Caller:
        if not authorization:
            raise Unauthenticated("send Authorization: Bearer <API key or token>")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated(
                "the Authorization header must be 'Bearer <credential>'"
            )
        if credential.startswith(KEY_PREFIX):
            return self.platform.authenticate_key(credential, request_id)
        return Caller(self.jwt.verify(credential), "user", request_id)
