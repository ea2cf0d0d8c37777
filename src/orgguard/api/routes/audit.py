"""The audit trail: one record per write, newest first, read-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from orgguard.api.deps import CallerDep, Limit, PlatformDep
from orgguard.api.schemas import AuditEntry, AuditPage, _name_id

router = APIRouter(prefix="/v1/audit", tags=["audit"])

CompanyQuery = Annotated[
    str | None,
    Query(description="only this company's records"),
    AfterValidator(lambda value: None if value is None else _name_id(value)),
]


@router.get("", response_model=AuditPage)
def read_audit(
    platform: PlatformDep,
    caller: CallerDep,
    company: CompanyQuery = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="at or after")] = None,
    until: Annotated[datetime | None, Query(description="before")] = None,
    before: Annotated[int | None, Query(ge=1, description="revisions below")] = None,
    limit: Limit = 100,
) -> AuditPage:
    """Seller staff see every record; a company admin those of its companies."""
    records = platform.audit(caller, company, actor, since, until, before, limit)
    return AuditPage(
        items=[AuditEntry.model_validate(r, from_attributes=True) for r in records],
        next=records[-1].revision if len(records) == limit else None,
    )
