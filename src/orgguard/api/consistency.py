"""Read-your-writes: a caller that passes ``min_revision`` (a revision a write
returned) is answered from that revision or a later one.

A replica behind it catches up from the change log at once; if the revision
still has not arrived after ``ORGGUARD_MIN_REVISION_WAIT_SECONDS``, the answer
is 503 with ``Retry-After``. A revision the database has not reached yet
(nobody has written it) is the same case: the caller may retry.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool

from orgguard.errors import InvalidInput, Unavailable
from orgguard.service import Authorizer
from orgguard.storage.store import MAX_REVISION

FIELD = "min_revision"


async def reach(authorizer: Authorizer, revision: int | None, wait: float) -> None:
    """Return once the authorizer serves ``revision`` (None: any)."""
    if revision is None or authorizer.index.revision >= revision:
        return
    if not await run_in_threadpool(authorizer.reach, revision, wait):
        raise Unavailable(
            f"this replica serves revision {authorizer.revision}; revision "
            f"{revision} did not arrive within {wait:g} s (retry)",
            field=FIELD,
        )


def from_query(query_string: bytes) -> int | None:
    """``min_revision`` from a query string; InvalidInput if it is not a
    revision number."""
    values = [
        value
        for name, value in parse_qsl(
            query_string.decode("latin-1"), keep_blank_values=True
        )
        if name == FIELD
    ]
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput(f"{FIELD}: give it once", field=FIELD)
    text = values[0]
    if not text.isascii() or not text.isdigit() or int(text) > MAX_REVISION:
        raise InvalidInput(
            f"{FIELD}: must be a revision number, 0 to {MAX_REVISION}", field=FIELD
        )
    return int(text)
