"""A company's groups: predefined ones read-only, custom ones read and written."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from orgguard.api.deps import AuthorizerDep, CallerDep, CompanyPath, GroupPath
from orgguard.api.routes.companies import REVISION_HEADER, group_public
from orgguard.api.schemas import GroupCreate, GroupList, GroupResponse, GroupUpdate
from orgguard.service import Authorizer, GroupView

router = APIRouter(prefix="/v1/companies/{company}/groups", tags=["groups"])


def _response(authorizer: Authorizer, view: GroupView) -> GroupResponse:
    public = group_public(view)
    return GroupResponse(**public.model_dump(), revision=authorizer.revision)


@router.get("", response_model=GroupList)
def read_groups(
    company: CompanyPath, authorizer: AuthorizerDep, caller: CallerDep
) -> GroupList:
    """The predefined groups, then the custom ones, with their permissions."""
    groups = [group_public(g) for g in authorizer.list_groups(caller, company)]
    return GroupList(items=groups, revision=authorizer.revision)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GroupResponse)
def create_group(
    company: CompanyPath,
    body: GroupCreate,
    authorizer: AuthorizerDep,
    caller: CallerDep,
) -> GroupResponse:
    """Create a custom group; permissions are 'resource:action' or with ':own'.
    A company admin may grant only permissions it holds itself."""
    authorizer.create_group(caller, company, body.id, body.name, body.permissions)
    return _response(authorizer, authorizer.group(company, body.id))


@router.get("/{group}", response_model=GroupResponse)
def read_group(
    company: CompanyPath, group: GroupPath, authorizer: AuthorizerDep, caller: CallerDep
) -> GroupResponse:
    """One group with its permissions."""
    return _response(authorizer, authorizer.get_group(caller, company, group))


@router.patch("/{group}", response_model=GroupResponse)
def update_group(
    company: CompanyPath,
    group: GroupPath,
    body: GroupUpdate,
    authorizer: AuthorizerDep,
    caller: CallerDep,
) -> GroupResponse:
    """Rename a custom group or replace its permissions."""
    authorizer.update_group(caller, company, group, body.name, body.permissions)
    return _response(authorizer, authorizer.group(company, group))


@router.delete("/{group}", status_code=status.HTTP_204_NO_CONTENT)
def delete_group(
    company: CompanyPath, group: GroupPath, authorizer: AuthorizerDep, caller: CallerDep
) -> Response:
    """Delete a custom group; its members leave it and keep their other groups."""
    revision = authorizer.delete_group(caller, company, group)
    return Response(status_code=204, headers={REVISION_HEADER: str(revision)})
