"""The benchmark's data set: N companies as the issue describes, built in
memory as a ``Snapshot`` (so it goes through the same validation and load path
as real data), plus the requests to time.

    users per company   50, or 10 from 100,000 companies up
    groups              the four predefined ones and two custom groups with
                        5 to 10 rules each
    memberships         one of admin/buyer/requester/contact-only, contact, and
                        for some users a custom group; 10% of the users also in
                        a second company
    tree                company i > 0 is a subsidiary of company (i - 1) // 8
    requests            80% allowed and 20% denied, over every company,
                        owner-scoped ones included
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from orgguard.policy import casbin_rules
from orgguard.policy.files import read_policy_dir
from orgguard.policy.index import PolicyIndex
from orgguard.policy.model import (
    Company,
    CustomGroup,
    Grant,
    Membership,
    Scope,
    Snapshot,
)

REPO = Path(__file__).resolve().parent.parent
ROLES = ("admin", "buyer", "buyer", "requester", "requester", "contact")

Request = tuple[str, str, str, str, str | None]


@dataclass
class DataSet:
    snapshot: Snapshot
    allowed: list[Request]
    denied: list[Request]

    @property
    def memberships(self) -> int:
        return len(self.snapshot.members)

    def requests(self, count: int, seed: int = 7) -> list[Request]:
        """``count`` requests, 80% allowed and 20% denied, shuffled."""
        rng = random.Random(seed)
        allowed = count * 4 // 5
        chosen = [rng.choice(self.allowed) for _ in range(allowed)]
        chosen += [rng.choice(self.denied) for _ in range(count - allowed)]
        rng.shuffle(chosen)
        return chosen


def company_id(number: int) -> str:
    return f"c{number:06d}"


def build(companies: int, seed: int = 1) -> DataSet:
    rng = random.Random(seed)
    base = read_policy_dir(REPO / "policies")
    snapshot = Snapshot(
        catalogue=base.catalogue,
        grants=[g for g in base.grants if g.company is None],
        platform=base.platform,
        roles=base.roles,
    )
    users_each = 10 if companies >= 100_000 else 50
    catalogue = [entry for entry in base.catalogue]

    for number in range(companies):
        company = company_id(number)
        parent = company_id((number - 1) // 8) if number else None
        snapshot.companies.append(Company(company, f"Company {number}", parent))
        for custom in ("team-a", "team-b"):
            snapshot.groups.append(CustomGroup(company, custom, custom.title()))
            for entry in rng.sample(catalogue, rng.randint(5, 10)):
                own = entry.ownable and rng.random() < 0.5
                scope = Scope.OWN if own else Scope.COMPANY
                snapshot.grants.append(Grant(company, custom, entry.permission, scope))
        for slot in range(users_each):
            user = f"u{slot}@c{number}.example"
            _join(snapshot, company, user, slot, rng)
            if rng.random() < 0.1 and companies > 1:
                other = rng.randrange(companies - 1)
                other += other >= number
                _join(snapshot, company_id(other), user, rng.randrange(1, 6), rng)

    return _with_requests(snapshot, rng)


def _join(
    snapshot: Snapshot, company: str, user: str, slot: int, rng: random.Random
) -> None:
    groups = {"contact", ROLES[slot % len(ROLES)]}
    if rng.random() < 0.3:
        groups.add(rng.choice(("team-a", "team-b")))
    snapshot.members.extend(Membership(company, user, g) for g in sorted(groups))


def _with_requests(snapshot: Snapshot, rng: random.Random) -> DataSet:
    """Candidate requests, sorted into allowed and denied by the index (the
    parity and property tests hold the index to pycasbin's answers)."""
    index = PolicyIndex.from_snapshot(snapshot)
    permissions = [entry.permission for entry in snapshot.catalogue]
    allowed: list[Request] = []
    denied: list[Request] = []
    members = snapshot.members
    for _ in range(min(200_000, 4 * len(members))):
        member = rng.choice(members)
        permission = rng.choice(permissions)
        owner = rng.choice((None, member.user, "someone@else.example"))
        company = member.company if rng.random() < 0.97 else "no-such-company"
        request = (member.user, company, permission.resource, permission.action, owner)
        (allowed if index.decide(*request).allowed else denied).append(request)
    return DataSet(snapshot, allowed, denied)


def write_casbin_csv(snapshot: Snapshot, path: Path) -> None:
    """The whole policy as one Casbin policy CSV, for plain pycasbin."""
    rules: list[casbin_rules.Rule] = [
        *snapshot.catalogue,
        *snapshot.grants,
        *snapshot.members,
    ]
    with path.open("w", encoding="utf-8") as out:
        for rule in rules:
            out.write(casbin_rules.format_row(casbin_rules.to_row(rule)) + "\n")
