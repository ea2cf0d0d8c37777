"""Platform roles of seller staff (seller-admin, seller-support, ...)."""

from __future__ import annotations

from fastapi import APIRouter

from orgguard.api.deps import AuthorizerDep, CallerDep, PlatformDep, UserPath
from orgguard.api.schemas import RoleHolder, RoleList, RolesResponse, RolesSet

router = APIRouter(prefix="/v1/roles", tags=["roles"])


@router.get("", response_model=RoleList)
def read_roles(
    platform: PlatformDep, authorizer: AuthorizerDep, caller: CallerDep
) -> RoleList:
    """Every holder of a platform role: people, and keys as key:<name>."""
    return RoleList(
        items=[
            RoleHolder(subject=subject, roles=roles)
            for subject, roles in platform.list_roles(caller)
        ],
        revision=authorizer.revision,
    )


@router.put("/{user}", response_model=RolesResponse)
def set_roles(
    user: UserPath, body: RolesSet, platform: PlatformDep, caller: CallerDep
) -> RolesResponse:
    """Set a person's platform roles in one step; [] removes them all."""
    revision = platform.set_roles(caller, user, body.roles)
    return RolesResponse(subject=user, roles=sorted(set(body.roles)), revision=revision)
