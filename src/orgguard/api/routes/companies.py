"""Companies: create, read, list, delete (with their subsidiaries on request)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from orgguard.api.deps import After, AuthorizerDep, CompanyPath, Limit
from orgguard.api.schemas import (
    CompanyCreate,
    CompanyPage,
    CompanyPublic,
    CompanySummary,
    GroupPublic,
)
from orgguard.service import Authorizer, GroupView

router = APIRouter(prefix="/v1/companies", tags=["companies"])

REVISION_HEADER = "Orgguard-Revision"


def company_public(authorizer: Authorizer, company_id: str) -> CompanyPublic:
    company = authorizer.get_company(company_id)
    return CompanyPublic(
        id=company.id,
        name=company.name,
        parent=company.parent,
        subsidiaries=authorizer.subsidiaries(company.id),
        groups=[group_public(g) for g in authorizer.list_groups(company.id)],
        revision=authorizer.revision,
    )


def group_public(group: GroupView) -> GroupPublic:
    return GroupPublic(
        id=group.id,
        name=group.name,
        predefined=group.predefined,
        permissions=[str(p) for p in group.permissions],
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CompanyPublic)
def create_company(body: CompanyCreate, authorizer: AuthorizerDep) -> CompanyPublic:
    """Create a company with its four predefined groups."""
    authorizer.create_company(body.id, body.name, body.parent)
    return company_public(authorizer, body.id)


@router.get("", response_model=CompanyPage)
def read_companies(
    authorizer: AuthorizerDep, after: After = None, limit: Limit = 100
) -> CompanyPage:
    """List companies by id, a page at a time."""
    page = authorizer.list_companies(after, limit)
    return CompanyPage(
        items=[
            CompanySummary(id=c.id, name=c.name, parent=c.parent) for c in page.items
        ],
        next=page.next,
        revision=authorizer.revision,
    )


@router.get("/{company}", response_model=CompanyPublic)
def read_company(company: CompanyPath, authorizer: AuthorizerDep) -> CompanyPublic:
    """A company with its groups and subsidiaries."""
    return company_public(authorizer, company)


@router.delete("/{company}", status_code=status.HTTP_204_NO_CONTENT)
def delete_company(
    company: CompanyPath,
    authorizer: AuthorizerDep,
    cascade: bool = Query(False, description="also delete all subsidiaries"),
) -> Response:
    """Delete a company with its groups, rules and memberships, nothing else."""
    revision = authorizer.delete_company(company, cascade)
    return Response(status_code=204, headers={REVISION_HEADER: str(revision)})
