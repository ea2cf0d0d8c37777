"""Random policies and random writes: the service decides as plain pycasbin does.

Hypothesis generates companies, custom groups with random rules, memberships and
a sequence of writes; after them, every decision over the generated users,
companies, permissions and owners is compared with ``casbin.Enforcer`` loaded
from the same database through the SQLAlchemy adapter, and a restarted service
must hold the same state.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import casbin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy_adapter import Adapter

from orgguard.bootstrap import open_authorizer
from orgguard.errors import OrgguardError
from orgguard.settings import Settings
from tests.conftest import MODEL, OPERATOR, POLICIES
from tests.test_durability import state

COMPANIES = ["c1", "c2", "c3", "acme"]
USERS = ["u1", "u2", "u3", "buyer", "admin@x"]  # ids that look like groups, too
GROUPS = ["admin", "buyer", "requester", "contact", "g1", "g2"]
PERMISSIONS = [
    "orders:read",
    "orders:read:own",
    "invoices:read:own",
    "reports:read",
    "users:manage",
    "quotes:read:own",
    "company:read",
]

company = st.sampled_from(COMPANIES)
operation = st.one_of(
    st.tuples(st.just("create_company"), company, st.sampled_from([None, *COMPANIES])),
    st.tuples(st.just("delete_company"), company, st.booleans()),
    st.tuples(
        st.just("create_group"),
        company,
        st.sampled_from(["g1", "g2"]),
        st.lists(st.sampled_from(PERMISSIONS), max_size=4),
    ),
    st.tuples(
        st.just("update_group"),
        company,
        st.sampled_from(["g1", "g2"]),
        st.lists(st.sampled_from(PERMISSIONS), max_size=4),
    ),
    st.tuples(st.just("delete_group"), company, st.sampled_from(["g1", "g2"])),
    st.tuples(
        st.just("set_member"),
        company,
        st.sampled_from(USERS),
        st.lists(st.sampled_from(GROUPS), max_size=3),
    ),
    st.tuples(st.just("delete_member"), company, st.sampled_from(USERS)),
)


def run(authorizer: Any, op: tuple[Any, ...]) -> None:
    name, *args = op
    try:
        if name == "create_company":
            authorizer.create_company(OPERATOR, args[0], args[0].upper(), args[1])
        elif name == "delete_company":
            authorizer.delete_company(OPERATOR, args[0], args[1])
        elif name == "create_group":
            authorizer.create_group(OPERATOR, args[0], args[1], "Group", args[2])
        elif name == "update_group":
            authorizer.update_group(OPERATOR, args[0], args[1], None, args[2])
        else:
            getattr(authorizer, name)(OPERATOR, *args)
    except OrgguardError:
        pass  # refused writes are part of the test: they must change nothing


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(operation, min_size=1, max_size=25))
def test_random_writes_decide_as_pycasbin(operations: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'p.db'}"
        config = Settings(database_url=url, policy_dir=POLICIES)
        authorizer = open_authorizer(config)
        for op in operations:
            run(authorizer, op)

        enforcer = casbin.Enforcer(str(MODEL), Adapter(url))
        for user in USERS:
            for company_id in COMPANIES:
                for text in PERMISSIONS:
                    resource, action = text.split(":")[:2]
                    for owner in (None, user, "u9"):
                        ours = authorizer.check(
                            user, company_id, resource, action, owner
                        )
                        theirs = enforcer.enforce(
                            user, company_id, resource, action, owner or ""
                        )
                        assert ours.allowed == theirs, (user, company_id, text, owner)

        restarted = open_authorizer(config, first_start_load=False)
        assert state(restarted) == state(authorizer)
        authorizer.store.engine.dispose()
        restarted.store.engine.dispose()
