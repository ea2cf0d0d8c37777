"""Companies: create, read, list, delete (with their subsidiaries on request)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from orgguard.api.deps import After, AuthorizerDep, CallerDep, CompanyPath, Limit
from orgguard.api.schemas import (
    CompanyCreate,
    CompanyHierarchy,
    CompanyPage,
    CompanyPublic,
    CompanySummary,
    GroupPublic,
)
from orgguard.policy.model import Company
from orgguard.service import Authorizer, GroupView

router = APIRouter(prefix="/v1/companies", tags=["companies"])

REVISION_HEADER = "Orgguard-Revision"


def company_public(authorizer: Authorizer, company: Company) -> CompanyPublic:
    return CompanyPublic(
        id=company.id,
        name=company.name,
        parent=company.parent,
        subsidiaries=authorizer.subsidiaries(company.id),
        groups=[group_public(g) for g in authorizer.groups(company.id)],
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
def create_company(
    body: CompanyCreate, authorizer: AuthorizerDep, caller: CallerDep
) -> CompanyPublic:
    """Create a company with its four predefined groups (platform only)."""
    authorizer.create_company(caller, body.id, body.name, body.parent)
    return company_public(authorizer, authorizer.company(body.id))


@router.get("", response_model=CompanyPage)
def read_companies(
    authorizer: AuthorizerDep,
    caller: CallerDep,
    after: After = None,
    limit: Limit = 100,
) -> CompanyPage:
    """Companies by id, a page at a time: all of them for seller staff, the ones
    a company admin administers otherwise."""
    page = authorizer.list_companies(caller, after, limit)
    return CompanyPage(
        items=[
            CompanySummary(id=c.id, name=c.name, parent=c.parent) for c in page.items
        ],
        next=page.next,
        revision=authorizer.revision,
    )


@router.get("/{company}", response_model=CompanyPublic)
def read_company(
    company: CompanyPath, authorizer: AuthorizerDep, caller: CallerDep
) -> CompanyPublic:
    """A company with its groups and subsidiaries."""
    return company_public(authorizer, authorizer.get_company(caller, company))


@router.get("/{company}/hierarchy", response_model=CompanyHierarchy)
def read_hierarchy(
    company: CompanyPath, authorizer: AuthorizerDep, caller: CallerDep
) -> CompanyHierarchy:
    """The chain of parents (nearest first) and every subsidiary below."""
    found = authorizer.hierarchy(caller, company)
    return CompanyHierarchy(
        company=found.company,
        parents=found.parents,
        subsidiaries=[
            CompanySummary(id=c.id, name=c.name, parent=c.parent)
            for c in found.subsidiaries
        ],
        revision=authorizer.revision,
    )


@router.delete("/{company}", status_code=status.HTTP_204_NO_CONTENT)
def delete_company(
    company: CompanyPath,
    authorizer: AuthorizerDep,
    caller: CallerDep,
    cascade: bool = Query(False, description="also delete all subsidiaries"),
) -> Response:
    """Delete a company with its groups, rules and memberships, nothing else."""
    revision = authorizer.delete_company(caller, company, cascade)
    return Response(status_code=204, headers={REVISION_HEADER: str(revision)})
