"""Opening the service's state: database, schema, first-start policy load."""

from __future__ import annotations

import logging
import time

from orgguard.access import Caller
from orgguard.errors import Conflict
from orgguard.policy.files import read_policy_dir
from orgguard.service import Authorizer
from orgguard.settings import Settings
from orgguard.storage.database import make_engine
from orgguard.storage.store import PolicyStore

log = logging.getLogger(__name__)

FIRST_START = Caller("orgguard:first-start", "operator")


def open_authorizer(
    settings: Settings, *, first_start_load: bool = True, create: bool = True
) -> Authorizer:
    """Open the database; on an empty one, load ``settings.policy_dir`` first.
    ``create=False``: a database without orgguard's schema is NotFound."""
    store = PolicyStore(make_engine(settings.database_url))
    try:
        store.prepare_schema(create=create)
    except BaseException:
        store.close()
        raise
    inherits = settings.admin_inherits
    started = time.perf_counter()
    authorizer = Authorizer.open(store, admin_inherits=inherits)
    index = authorizer.index
    log.info(
        "policy at revision %d loaded in %.2f s: %d companies, %d members",
        index.revision,
        time.perf_counter() - started,
        len(index.companies),
        sum(len(members) for members in index.members.values()),
    )
    if first_start_load and authorizer.revision == 0:
        snapshot = read_policy_dir(settings.policy_dir)
        try:
            revision = authorizer.load_snapshot(FIRST_START, snapshot)
        except Conflict:
            # Another process loaded it first: take what it stored.
            return Authorizer.open(store, admin_inherits=inherits)
        log.info(
            "loaded %s into the empty database: %d companies, revision %d",
            settings.policy_dir,
            len(snapshot.companies),
            revision,
        )
    return authorizer
