"""Typed dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from pydantic import AfterValidator

from orgguard.api.schemas import _name_id, _user_id
from orgguard.service import Authorizer


def get_authorizer(request: Request) -> Authorizer:
    authorizer: Authorizer = request.app.state.authorizer
    return authorizer


AuthorizerDep = Annotated[Authorizer, Depends(get_authorizer)]
CompanyPath = Annotated[str, Path(description="company id"), AfterValidator(_name_id)]
GroupPath = Annotated[str, Path(description="group id"), AfterValidator(_name_id)]
UserPath = Annotated[str, Path(description="user id"), AfterValidator(_user_id)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
After = Annotated[
    str | None,
    Query(description="the last id of the previous page"),
    # Cursors are company or user ids; the user alphabet contains the other.
    AfterValidator(lambda value: None if value is None else _user_id(value)),
]
