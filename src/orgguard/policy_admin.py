"""Policy as code: the stored policy to files, and files back to the policy.

Export writes what the database holds; diff and import read a policy directory
and compare it with the database (``orgguard.policy.diff``). An import is one
``Change``, committed in one transaction with one audit record; it merges by
company and never empties a table to fill it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from orgguard.access import Caller
from orgguard.policy.actions import POLICY_READ, POLICY_WRITE
from orgguard.policy.diff import PolicyDiff, diff_policy
from orgguard.policy.files import read_policy_dir, render_policy
from orgguard.policy.model import IMPORT_ACTION, Snapshot
from orgguard.service import Authorizer
from orgguard.storage.schema import changes, companies


@dataclass(frozen=True, slots=True)
class PolicyExport:
    files: dict[str, str]  # path relative to the policy directory -> text
    revision: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    diff: PolicyDiff
    revision: int  # after the import; the current one for a dry run or no change
    applied: bool


class PolicyAdmin:
    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def export(self, caller: Caller) -> PolicyExport:
        """The stored policy as canonical files."""
        self.authorizer.require(caller, POLICY_READ)
        stored = self._stored()
        return PolicyExport(
            render_policy(stored.snapshot, stored.revisions), stored.snapshot.revision
        )

    def diff(self, caller: Caller, directory: Path, *, prune: bool) -> PolicyDiff:
        """What importing ``directory`` would change; changes nothing."""
        self.authorizer.require(caller, POLICY_READ)
        return _diff(self._stored(), directory, prune)

    def import_policy(
        self, caller: Caller, directory: Path, *, prune: bool, dry_run: bool
    ) -> ImportResult:
        """Validate, compare and apply ``directory`` as one change (all or
        nothing); a dry run stops before the write."""
        authorizer = self.authorizer
        authorizer.require(caller, POLICY_READ if dry_run else POLICY_WRITE)
        # Read and compare before taking the write lock (a large policy takes
        # seconds, and writers would queue behind it) ...
        stored = self._stored()
        diff = _diff(stored, directory, prune)
        if dry_run:
            return ImportResult(diff, stored.snapshot.revision, False)
        with authorizer.writing():
            authorizer.require(caller, POLICY_WRITE)
            if authorizer.revision != stored.snapshot.revision:
                # ... and again under the lock if another write landed meanwhile,
                # so the change applies to exactly what is stored (and a file of
                # a company that write changed is refused as stale).
                diff = _diff(self._stored(), directory, prune)
            change = diff.change
            change.actor, change.request_id = caller.subject, caller.request_id
            change.after = {
                "companies": diff.companies,
                "prune": prune,
                "added": diff.added,
                "removed": diff.removed,
            }
            revision = authorizer.commit(change)
        return ImportResult(diff, revision, not diff.is_empty())

    def _stored(self) -> _Stored:
        """The stored policy and each company's last revision, read in one
        transaction."""
        store = self.authorizer.store
        with store.reading() as connection:
            snapshot = store.load(connection)
            return _Stored(snapshot, _company_revisions(connection))


@dataclass(frozen=True, slots=True)
class _Stored:
    snapshot: Snapshot
    revisions: dict[str, int]  # company -> the revision that last changed it


def _diff(stored: _Stored, directory: Path, prune: bool) -> PolicyDiff:
    current = stored.snapshot
    # Without --prune the stored companies stay, so they may be parents.
    others = () if prune else [company.id for company in current.companies]
    files = read_policy_dir(directory, other_companies=others)
    return diff_policy(
        current, files, prune=prune, source=directory, revisions=stored.revisions
    )


def _company_revisions(connection: Connection) -> dict[str, int]:
    """The revision that last changed each company's own file: its creation,
    its last write, or the last import that changed it (an import is one
    record for many companies; it lists them in ``after.companies``)."""
    found: dict[str, int] = {}

    def later(company: str, revision: int) -> None:
        found[company] = max(found.get(company, 0), int(revision))

    for row in connection.execute(select(companies.c.id, companies.c.revision)):
        later(row.id, row.revision)
    for company, revision in connection.execute(
        select(changes.c.company, func.max(changes.c.revision))
        .where(changes.c.company.is_not(None))
        .group_by(changes.c.company)
    ):
        later(company, revision)
    for row in connection.execute(
        select(changes.c.revision, changes.c.after).where(
            changes.c.action == IMPORT_ACTION
        )
    ):
        after: Any = row.after
        if isinstance(after, dict):
            for company in after.get("companies", ()):
                later(str(company), row.revision)
    return found
