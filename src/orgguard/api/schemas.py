"""Request and response bodies. Ids are validated here, before any route runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from orgguard.ids import (
    MAX_DISPLAY_NAME,
    NAME_ID_RULE,
    USER_ID_RULE,
    is_name_id,
    is_user_id,
)


def _name_id(value: str) -> str:
    if not is_name_id(value):
        raise ValueError(f"must be {NAME_ID_RULE}")
    return value


def _user_id(value: str) -> str:
    if not is_user_id(value):
        raise ValueError(f"must be {USER_ID_RULE}")
    return value


def _display_name(value: str) -> str:
    if not value.isprintable() or value != value.strip():
        raise ValueError("must be printable and not start or end with white space")
    return value


# The same rules as orgguard.ids, as patterns pydantic checks in Rust (a check
# request carries five ids; a batch, up to 5,000). "Not only dots" is "at
# least one character that is not a dot". tests/test_ids.py holds the two to
# the same answers.
NAME_ID_PATTERN = r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$"
USER_ID_PATTERN = r"^[A-Za-z0-9@._+-]*[A-Za-z0-9@_+-][A-Za-z0-9@._+-]*$"
PATTERN_RULES = {NAME_ID_PATTERN: NAME_ID_RULE, USER_ID_PATTERN: USER_ID_RULE}
NameId = Annotated[StrictStr, StringConstraints(max_length=64, pattern=NAME_ID_PATTERN)]
UserId = Annotated[
    StrictStr, StringConstraints(max_length=128, pattern=USER_ID_PATTERN)
]
DisplayName = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_DISPLAY_NAME),
    AfterValidator(_display_name),
]
PermissionText = Annotated[StrictStr, Field(min_length=3, max_length=140)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MinRevision = Annotated[
    StrictInt | None,
    Field(
        ge=0,
        le=2**63 - 1,
        description="answer from this revision or a later one (read-your-writes)",
    ),
]


class CheckItem(Strict):
    user: UserId
    company: NameId
    resource: NameId
    action: NameId
    owner: UserId | None = None


class CheckRequest(CheckItem):
    min_revision: MinRevision = None
    explain: StrictBool = Field(
        default=False,
        description="also return the whole path (needs members:read in the company)",
    )


class CheckResult(BaseModel):
    allowed: bool
    reason: str


class CheckResponse(CheckResult):
    revision: int


class BatchRequest(Strict):
    checks: list[CheckItem] = Field(max_length=1000)
    min_revision: MinRevision = None


class BatchResponse(BaseModel):
    results: list[CheckResult]
    revision: int


class CompanyCreate(Strict):
    id: NameId
    name: DisplayName
    parent: NameId | None = None


class GroupPublic(BaseModel):
    id: str
    name: str
    predefined: bool
    permissions: list[str]


class CompanyPublic(BaseModel):
    id: str
    name: str
    parent: str | None
    subsidiaries: list[str]
    groups: list[GroupPublic]
    revision: int


class CompanySummary(BaseModel):
    id: str
    name: str
    parent: str | None


class CompanyPage(BaseModel):
    items: list[CompanySummary]
    next: str | None = Field(description="pass as ?after= for the next page")
    revision: int


class GroupCreate(Strict):
    id: NameId
    name: DisplayName
    permissions: list[PermissionText] = Field(default_factory=list, max_length=200)


class GroupUpdate(Strict):
    name: DisplayName | None = None
    permissions: list[PermissionText] | None = Field(default=None, max_length=200)


class GroupResponse(GroupPublic):
    revision: int


class GroupList(BaseModel):
    items: list[GroupPublic]
    revision: int


class MemberSet(Strict):
    groups: list[NameId] = Field(max_length=50)


class MemberPublic(BaseModel):
    user: str
    company: str
    groups: list[str]


class MemberResponse(MemberPublic):
    revision: int


class MemberPage(BaseModel):
    items: list[MemberPublic]
    next: str | None
    revision: int


class PermissionGrant(BaseModel):
    permission: str = Field(description="resource:action, with :own if own-only")
    groups: list[str]


class MemberPermissions(BaseModel):
    user: str
    company: str
    permissions: list[PermissionGrant]
    revision: int


class MemberAccess(BaseModel):
    user: str
    groups: list[str]
    permissions: list[PermissionGrant]


class CompanyAccess(BaseModel):
    company: str
    at: datetime | None = Field(description="the time asked; null: now")
    revision: int = Field(description="the revision the answer describes")
    members: list[MemberAccess]


class UserCompany(BaseModel):
    company: str
    groups: list[str]


class UserCompanies(BaseModel):
    user: str
    companies: list[UserCompany]
    revision: int


class WhoCanEntry(BaseModel):
    user: str
    scope: str = Field(description="company, or own: only on the user's own resources")
    groups: list[str]


class WhoCan(BaseModel):
    company: str
    permission: str
    users: list[WhoCanEntry]
    revision: int


class ErrorField(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[ErrorField] = Field(default_factory=list)


class CompanyHierarchy(BaseModel):
    company: str
    parents: list[str] = Field(description="the parent first, the root last")
    subsidiaries: list[CompanySummary] = Field(description="at every depth")
    revision: int


class KeyCreate(Strict):
    name: NameId
    role: NameId


class KeyPublic(BaseModel):
    name: str
    id: str = Field(description="the key's public id, the part after ogk_")
    role: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="the bearer credential; shown this once only")
    revision: int


class KeyList(BaseModel):
    items: list[KeyPublic]


class RolesSet(Strict):
    roles: list[NameId] = Field(max_length=20)


class RoleHolder(BaseModel):
    subject: str = Field(description="a user id, or key:<name> for an API key")
    roles: list[str]


class RoleList(BaseModel):
    items: list[RoleHolder]
    revision: int


class RolesResponse(RoleHolder):
    revision: int


class AuditEntry(BaseModel):
    revision: int
    at: datetime
    actor: str
    action: str
    company: str | None
    request_id: str | None
    before: Any
    after: Any


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next: int | None = Field(description="pass as ?before= for the next page")


class AccessChangePublic(BaseModel):
    company: str
    user: str
    gains: list[str]
    loses: list[str]


class PolicyImportResult(BaseModel):
    dry_run: bool
    applied: bool = Field(description="false for a dry run or when nothing differs")
    revision: int
    companies: list[str] = Field(description="companies whose file changes")
    added: list[str] = Field(description="'<file>: + <line>'")
    removed: list[str] = Field(description="'<file>: - <line>'")
    access: list[AccessChangePublic]
