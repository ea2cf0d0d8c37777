"""A company's members, their groups, and what they may do."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from orgguard.api.deps import (
    After,
    AuthorizerDep,
    CallerDep,
    CompanyPath,
    Limit,
    UserPath,
)
from orgguard.api.routes.companies import REVISION_HEADER
from orgguard.api.schemas import (
    CompanyAccess,
    MemberAccess,
    MemberPage,
    MemberPermissions,
    MemberPublic,
    MemberResponse,
    MemberSet,
    PermissionGrant,
    WhoCan,
    WhoCanEntry,
)
from orgguard.policy.index import EffectivePermission

router = APIRouter(prefix="/v1/companies/{company}", tags=["members"])


@router.get("/members", response_model=MemberPage)
def read_members(
    company: CompanyPath,
    authorizer: AuthorizerDep,
    caller: CallerDep,
    after: After = None,
    limit: Limit = 100,
) -> MemberPage:
    """Members by user id, with their groups, a page at a time."""
    page = authorizer.list_members(caller, company, after, limit)
    return MemberPage(
        items=[
            MemberPublic(user=user, company=company, groups=list(groups))
            for user, groups in page.items
        ],
        next=page.next,
        revision=authorizer.revision,
    )


@router.put("/members/{user}", response_model=MemberResponse)
def set_member(
    company: CompanyPath,
    user: UserPath,
    body: MemberSet,
    authorizer: AuthorizerDep,
    caller: CallerDep,
) -> MemberResponse:
    """Set the user's groups in this company in one step; contact is always kept.
    The last admin cannot be demoted (409)."""
    revision = authorizer.set_member(caller, company, user, body.groups)
    groups = authorizer.member_groups(company, user)
    return MemberResponse(
        user=user, company=company, groups=list(groups), revision=revision
    )


@router.get("/members/{user}", response_model=MemberResponse)
def read_member(
    company: CompanyPath, user: UserPath, authorizer: AuthorizerDep, caller: CallerDep
) -> MemberResponse:
    """The user's groups in this company."""
    groups = authorizer.get_member(caller, company, user)
    return MemberResponse(
        user=user, company=company, groups=list(groups), revision=authorizer.revision
    )


@router.delete("/members/{user}", status_code=status.HTTP_204_NO_CONTENT)
def delete_member(
    company: CompanyPath, user: UserPath, authorizer: AuthorizerDep, caller: CallerDep
) -> Response:
    """Remove the user from this company only; never its last admin (409)."""
    revision = authorizer.delete_member(caller, company, user)
    return Response(status_code=204, headers={REVISION_HEADER: str(revision)})


@router.get("/members/{user}/permissions", response_model=MemberPermissions)
def read_member_permissions(
    company: CompanyPath, user: UserPath, authorizer: AuthorizerDep, caller: CallerDep
) -> MemberPermissions:
    """Effective permissions: exactly what a check allows ('...:own': own only)."""
    effective = authorizer.member_permissions(caller, company, user)
    return MemberPermissions(
        user=user,
        company=company,
        permissions=_grants(effective),
        revision=authorizer.revision,
    )


@router.get("/access", response_model=CompanyAccess)
def read_access(
    company: CompanyPath,
    authorizer: AuthorizerDep,
    caller: CallerDep,
    at: Annotated[
        datetime | None,
        Query(description="a past time (ISO 8601; no zone: UTC); default now"),
    ] = None,
) -> CompanyAccess:
    """Who could do what in the company: now, or at a past time rebuilt from
    the audit trail (the change log)."""
    revision, members = authorizer.access_at(caller, company, at)
    return CompanyAccess(
        company=company,
        at=at,
        revision=revision,
        members=[
            MemberAccess(user=user, groups=list(groups), permissions=_grants(effective))
            for user, groups, effective in members
        ],
    )


def _grants(effective: list[EffectivePermission]) -> list[PermissionGrant]:
    return [
        PermissionGrant(permission=str(e.permission), groups=list(e.groups))
        for e in effective
    ]


@router.get("/who-can", response_model=WhoCan)
def read_who_can(
    company: CompanyPath, permission: str, authorizer: AuthorizerDep, caller: CallerDep
) -> WhoCan:
    """Users whom a check allows the permission ('resource:action')."""
    users = authorizer.who_can(caller, company, permission)
    return WhoCan(
        company=company,
        permission=permission,
        users=[
            WhoCanEntry(user=user, scope=scope.value, groups=list(groups))
            for user, scope, groups in users
        ],
        revision=authorizer.revision,
    )
