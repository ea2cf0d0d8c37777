"""The errors orgguard raises on purpose.

Every error knows its HTTP status and its CLI exit code; the API maps them in one
handler and the CLI in one place. Third-party errors (SQLAlchemy, casbin) are
translated where they are caught, with ``raise ... from``.

    OrgguardError               500, exit 3
    ├── InvalidInput            422, exit 2   a value failed validation, by field
    ├── Unauthenticated         401, exit 7   no, or no valid, credential
    ├── Forbidden               403, exit 8   a valid caller without the right
    ├── PolicyFileError         422, exit 2   policy files with problems (file and line)
    ├── NotFound                404, exit 4   no such company, group or member
    ├── Conflict                409, exit 5   the write contradicts the current state
    └── Unavailable             503, exit 6   the database could not complete the write
"""

from __future__ import annotations


class OrgguardError(Exception):
    status = 500
    exit_code = 3
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(OrgguardError):
    status = 422
    exit_code = 2
    code = "invalid_input"


class PolicyFileError(OrgguardError):
    status = 422
    exit_code = 2
    code = "invalid_policy_files"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the policy files")
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join([self.message, *self.problems])


class Unauthenticated(OrgguardError):
    """The caller is unknown. The message says what was wrong with the credential
    (missing, malformed, expired, revoked) but never whose it was."""

    status = 401
    exit_code = 7
    code = "unauthenticated"


class Forbidden(OrgguardError):
    """The caller is known and lacks the right; ``missing`` names what it lacks."""

    status = 403
    exit_code = 8
    code = "forbidden"

    def __init__(
        self, message: str, missing: list[str], *, field: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.missing = missing


class NotFound(OrgguardError):
    status = 404
    exit_code = 4
    code = "not_found"


class Conflict(OrgguardError):
    status = 409
    exit_code = 5
    code = "conflict"


class Unavailable(OrgguardError):
    status = 503
    exit_code = 6
    code = "unavailable"
