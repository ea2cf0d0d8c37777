"""API keys for calling services: create (the key is shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from orgguard.api.deps import CallerDep, NamePath, PlatformDep
from orgguard.api.routes.companies import REVISION_HEADER
from orgguard.api.schemas import KeyCreate, KeyCreated, KeyList, KeyPublic
from orgguard.policy.model import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def key_public(key: ApiKey) -> KeyPublic:
    """The key's record without its salt and digest."""
    return KeyPublic.model_validate(key, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyCreate, platform: PlatformDep, caller: CallerDep) -> KeyCreated:
    """Create a key with a platform role; only a salted hash is stored."""
    created = platform.create_key(caller, body.name, body.role)
    return KeyCreated(
        **key_public(created.key).model_dump(),
        key=created.secret,
        revision=created.revision,
    )


@router.get("", response_model=KeyList)
def read_keys(platform: PlatformDep, caller: CallerDep) -> KeyList:
    """Every key, revoked ones included; never a secret."""
    return KeyList(items=[key_public(k) for k in platform.list_keys(caller)])


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(name: NamePath, platform: PlatformDep, caller: CallerDep) -> Response:
    """Revoke the active key of that name; it fails at once."""
    revision = platform.revoke_key(caller, name)
    return Response(status_code=204, headers={REVISION_HEADER: str(revision)})
