"""Identifier rules, checked at every boundary (API, CLI, policy files).

An id that passes here can never act as a wildcard, split a Casbin rule line or
match another company: the alphabets exclude ``*``, ``,``, ``:``, quotes,
brackets, white space and control characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from orgguard.errors import InvalidInput

_NAME_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_USER_ID: Final = re.compile(r"[A-Za-z0-9@._+-]{1,128}")

NAME_ID_RULE: Final = (
    "1 to 64 characters of ASCII letters, digits, '.', '_' or '-', not only dots"
)
USER_ID_RULE: Final = (
    "1 to 128 characters of ASCII letters, digits, '@', '.', '_', '-' or '+', "
    "not only dots"
)
MAX_DISPLAY_NAME: Final = 200


def is_name_id(value: object) -> bool:
    """Company, group, resource and action ids."""
    return (
        isinstance(value, str)
        and _NAME_ID.fullmatch(value) is not None
        and not _only_dots(value)
    )


def is_user_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and _USER_ID.fullmatch(value) is not None
        and not _only_dots(value)
    )


def _only_dots(value: str) -> bool:
    # "." and ".." are path segments: URLs and file names would not keep them.
    return value.strip(".") == ""


def check_name_id(value: str, field: str) -> str:
    if not is_name_id(value):
        raise InvalidInput(f"{field} must be {NAME_ID_RULE}", field=field)
    return value


def check_user_id(value: str, field: str) -> str:
    if not is_user_id(value):
        raise InvalidInput(f"{field} must be {USER_ID_RULE}", field=field)
    return value


def check_display_name(value: str, field: str) -> str:
    """Names may be any printable unicode, 1 to 200 characters, not padded."""
    if not value or len(value) > MAX_DISPLAY_NAME:
        raise InvalidInput(
            f"{field} must be 1 to {MAX_DISPLAY_NAME} characters", field=field
        )
    if not value.isprintable() or value != value.strip():
        raise InvalidInput(
            f"{field} must be printable and not start or end with white space",
            field=field,
        )
    return value


def case_twin(company_id: str, existing: Iterable[str]) -> str | None:
    """An existing company whose id differs from ``company_id`` only in case."""
    folded = company_id.casefold()
    return next(
        (
            other
            for other in existing
            if other != company_id and other.casefold() == folded
        ),
        None,
    )
