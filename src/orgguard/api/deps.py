"""Typed dependencies shared by the routes: the services and the caller.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in
a worker thread, and a thread hop per dependency is most of a check's cost.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPBearer
from pydantic import AfterValidator

from orgguard.access import Caller
from orgguard.api.schemas import _name_id, _user_id
from orgguard.platform_admin import PlatformAdmin
from orgguard.service import Authorizer

# Declares the scheme in OpenAPI (the "Authorize" button of /docs); the
# ``AuthenticateFirst`` middleware authenticates before any route runs.
_bearer = HTTPBearer(auto_error=False, description="an API key or a JWT")


async def get_authorizer(request: Request) -> Authorizer:
    authorizer: Authorizer = request.app.state.authorizer
    return authorizer


async def get_platform(request: Request) -> PlatformAdmin:
    platform: PlatformAdmin = request.app.state.platform
    return platform


async def get_caller(request: Request, _scheme: object = Depends(_bearer)) -> Caller:
    caller: Caller = request.state.caller
    return caller


AuthorizerDep = Annotated[Authorizer, Depends(get_authorizer)]
PlatformDep = Annotated[PlatformAdmin, Depends(get_platform)]
CallerDep = Annotated[Caller, Depends(get_caller)]
CompanyPath = Annotated[str, Path(description="company id"), AfterValidator(_name_id)]
GroupPath = Annotated[str, Path(description="group id"), AfterValidator(_name_id)]
UserPath = Annotated[str, Path(description="user id"), AfterValidator(_user_id)]
NamePath = Annotated[str, Path(description="key name"), AfterValidator(_name_id)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
After = Annotated[
    str | None,
    Query(description="the last id of the previous page"),
    # Cursors are company or user ids; the user alphabet contains the other.
    AfterValidator(lambda value: None if value is None else _user_id(value)),
]
