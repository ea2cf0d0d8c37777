"""A user across companies."""

from __future__ import annotations

from fastapi import APIRouter

from orgguard.api.deps import AuthorizerDep, CallerDep, UserPath
from orgguard.api.schemas import UserCompanies, UserCompany

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/{user}/companies", response_model=UserCompanies)
def read_user_companies(
    user: UserPath, authorizer: AuthorizerDep, caller: CallerDep
) -> UserCompanies:
    """The companies the user belongs to, with the user's groups in each: all of
    them for seller staff and for the user itself, those a company admin
    administers otherwise."""
    return UserCompanies(
        user=user,
        companies=[
            UserCompany(company=company, groups=list(groups))
            for company, groups in authorizer.user_companies(caller, user)
        ],
        revision=authorizer.revision,
    )
