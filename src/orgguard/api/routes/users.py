"""A user across companies."""

from __future__ import annotations

from fastapi import APIRouter

from orgguard.api.deps import AuthorizerDep, UserPath
from orgguard.api.schemas import UserCompanies, UserCompany

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/{user}/companies", response_model=UserCompanies)
def read_user_companies(user: UserPath, authorizer: AuthorizerDep) -> UserCompanies:
    """The companies the user belongs to, with the user's groups in each."""
    return UserCompanies(
        user=user,
        companies=[
            UserCompany(company=company, groups=list(groups))
            for company, groups in authorizer.user_companies(user)
        ],
        revision=authorizer.revision,
    )
