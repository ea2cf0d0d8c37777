"""How far the database is, asked without ever holding up the service.

``/readyz`` and ``/metrics`` need the database's revision. A database that
stops answering must not pile up waiting requests (each would hold a worker
thread, and checks need those threads too): one probe runs at a time, in a
thread of its own, and a request waits for it at most ``wait`` seconds. A
probe still running is joined, never started twice.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor

from orgguard.errors import Unavailable
from orgguard.storage.store import PolicyStore


class DatabaseProbe:
    def __init__(self, store: PolicyStore, wait: float = 1.0) -> None:
        self._store = store
        self._wait = wait
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="orgguard-probe")
        self._running: Future[int] | None = None
        # The last answer: the database's revision, or None (it failed).
        self.stored: int | None = None

    async def revision(self) -> int:
        """The database's revision; Unavailable if it fails or is slow."""
        if self._running is None or self._running.done():
            self._running = self._executor.submit(self._store.revision)
        running = asyncio.wrap_future(self._running)
        try:
            stored = await asyncio.wait_for(asyncio.shield(running), self._wait)
        except TimeoutError:
            self.stored = None
            raise Unavailable(
                f"the database did not answer within {self._wait:g} s"
            ) from None
        except Unavailable:
            self.stored = None
            raise
        self.stored = stored
        return stored

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
