"""Policy tests: YAML files of checks and the decisions they expect.

A file holds a list of cases under ``cases``. Each case names a company, a
resource and an action, an optional ``owner`` of the resource, and either

- one ``user`` (or a list of ``users``) and ``expect: allow`` or ``deny``; or
- a table of users by expected decision::

      expect:
        allow: [alice@acme.example, ivan@acme.example]
        deny: [carol@acme.example]

``owner: $user`` stands for the asking user, so one case can say "each of
these users may read their own orders". Every case expands to one check per
user; a failure prints the decision's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from orgguard.errors import InvalidInput, PolicyFileError
from orgguard.ids import check_name_id, check_user_id
from orgguard.policy.index import Decision

SELF: Final = "$user"
_KEYS: Final = frozenset(
    {"name", "user", "users", "company", "resource", "action", "owner", "expect"}
)
_VERDICTS: Final = {"allow": True, "deny": False}

Decide = Callable[[str, str, str, str, str | None], Decision]


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """One expanded case: a check and the decision it must get."""

    where: str  # file:line of the case
    name: str
    user: str
    company: str
    resource: str
    action: str
    owner: str | None
    allowed: bool

    def describe(self) -> str:
        owner = "" if self.owner is None else f" owner={self.owner}"
        return f"{self.user} {self.resource}:{self.action} in {self.company}{owner}"


@dataclass(frozen=True, slots=True)
class Outcome:
    check: PolicyCheck
    decision: Decision

    @property
    def passed(self) -> bool:
        return self.decision.allowed == self.check.allowed

    def report(self) -> str:
        expected = "allow" if self.check.allowed else "deny"
        got = "allowed" if self.decision.allowed else "denied"
        return (
            f"FAIL {self.check.where} {self.check.name}: {self.check.describe()}: "
            f"expected {expected}, {got}: {self.decision.reason}"
        )


def read_tests(paths: Iterable[Path]) -> list[PolicyCheck]:
    """Every case of every file, expanded; PolicyFileError lists each problem
    with its file and line."""
    checks: list[PolicyCheck] = []
    problems: list[str] = []
    for path in paths:
        _read_file(path, checks, problems)
    if problems:
        raise PolicyFileError(problems)
    return checks


def run_tests(decide: Decide, checks: Iterable[PolicyCheck]) -> list[Outcome]:
    return [
        Outcome(
            check,
            decide(
                check.user, check.company, check.resource, check.action, check.owner
            ),
        )
        for check in checks
    ]


def _read_file(path: Path, checks: list[PolicyCheck], problems: list[str]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"{path}: cannot read: {error}")
        return
    except yaml.YAMLError as error:
        problems.append(f"{path}: not valid YAML: {error}")
        return
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        problems.append(f"{path}: a test file is a mapping with a list of 'cases'")
        return
    nodes = [
        value
        for key, value in getattr(root, "value", ())
        if isinstance(key, yaml.ScalarNode) and key.value == "cases"
    ]
    if len(nodes) != 1 or not isinstance(nodes[0], yaml.SequenceNode):
        problems.append(f"{path}: give 'cases' once, as a plain list")
        return
    lines = [item.start_mark.line + 1 for item in nodes[0].value]
    if len(lines) != len(data["cases"]):
        problems.append(f"{path}: give 'cases' once, as a plain list")
        return
    for line, case in zip(lines, data["cases"], strict=True):
        where = f"{path}:{line}"
        try:
            checks.extend(_expand(where, case))
        except InvalidInput as error:
            problems.append(f"{where}: {error.message}")


def _expand(where: str, case: Any) -> list[PolicyCheck]:
    if not isinstance(case, dict):
        raise InvalidInput("a case is a mapping of user, company, resource, ...")
    unknown = sorted(str(key) for key in case if key not in _KEYS)
    if unknown:
        raise InvalidInput(
            f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})"
        )
    company = check_name_id(_text(case, "company"), "company")
    resource = check_name_id(_text(case, "resource"), "resource")
    action = check_name_id(_text(case, "action"), "action")
    owner = case.get("owner")
    if owner is not None and owner != SELF:
        check_user_id(_text(case, "owner"), "owner")
    expect = case.get("expect")
    expected: list[tuple[str, bool]]
    if isinstance(expect, dict):
        if "user" in case or "users" in case:
            raise InvalidInput("give the users in the expect table, not also as user")
        if not expect or set(expect) - set(_VERDICTS):
            raise InvalidInput("an expect table has the keys allow and/or deny")
        expected = [
            (user, _VERDICTS[verdict])
            for verdict, users in expect.items()
            for user in _users(users, f"expect.{verdict}")
        ]
    else:
        if not isinstance(expect, str) or expect not in _VERDICTS:
            raise InvalidInput("expect must be allow, deny or a table of users")
        if ("user" in case) == ("users" in case):
            raise InvalidInput("give one of user or users")
        users = [case["user"]] if "user" in case else case["users"]
        field = "user" if "user" in case else "users"
        expected = [(user, _VERDICTS[expect]) for user in _users(users, field)]
    name = str(case.get("name") or f"{resource}:{action} in {company}")
    return [
        PolicyCheck(
            where,
            name,
            user,
            company,
            resource,
            action,
            user if owner == SELF else owner,
            allowed,
        )
        for user, allowed in expected
    ]


def _text(case: dict[str, Any], key: str) -> str:
    value = case.get(key)
    if not isinstance(value, str):
        raise InvalidInput(f"{key} is required and must be text")
    return value


def _users(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not value:
        value = [value]
    users = []
    for position, user in enumerate(value):
        if not isinstance(user, str):
            raise InvalidInput(f"{field}[{position}] must be a user id")
        users.append(check_user_id(user, f"{field}[{position}]"))
    return users
