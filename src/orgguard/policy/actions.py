"""The admin actions: everything the API does besides answering checks.

Each action is a permission, decided by the same Casbin model as every other:
platform roles hold them through ``p3`` rules (``policies/platform.csv``), and
the company-scoped ones can be held in a company like any permission, which is
how a company's ``admin`` group administers its own company
(``policies/templates.csv``).
"""

from __future__ import annotations

from typing import Final

from orgguard.policy.model import Permission

DECISIONS_CHECK: Final = Permission("decisions", "check")
COMPANIES_READ: Final = Permission("companies", "read")
COMPANIES_WRITE: Final = Permission("companies", "write")
GROUPS_READ: Final = Permission("groups", "read")
GROUPS_WRITE: Final = Permission("groups", "write")
MEMBERS_READ: Final = Permission("members", "read")
MEMBERS_WRITE: Final = Permission("members", "write")
AUDIT_READ: Final = Permission("audit", "read")
KEYS_READ: Final = Permission("keys", "read")
KEYS_WRITE: Final = Permission("keys", "write")
ROLES_READ: Final = Permission("roles", "read")
ROLES_WRITE: Final = Permission("roles", "write")
# The whole policy as files: export and diff (read), import (write).
POLICY_READ: Final = Permission("policy", "read")
POLICY_WRITE: Final = Permission("policy", "write")

# Actions inside one company: a platform role or the company's own policy
# (with inheritance, a parent company's) may allow them.
COMPANY_ACTIONS: Final = frozenset(
    {GROUPS_READ, GROUPS_WRITE, MEMBERS_READ, MEMBERS_WRITE, AUDIT_READ}
)
# Actions over the whole platform: only a platform role allows them.
PLATFORM_ACTIONS: Final = frozenset(
    {
        DECISIONS_CHECK,
        COMPANIES_READ,
        COMPANIES_WRITE,
        KEYS_READ,
        KEYS_WRITE,
        ROLES_READ,
        ROLES_WRITE,
        POLICY_READ,
        POLICY_WRITE,
    }
)
ADMIN_ACTIONS: Final = COMPANY_ACTIONS | PLATFORM_ACTIONS
