"""Replicas on PostgreSQL hear about each other's writes at once.

Every write sends ``NOTIFY orgguard_changes, '<revision>'`` in its transaction,
so PostgreSQL delivers it when the write commits. A ``ChangeListener`` holds one
connection that LISTENs on that channel and calls ``on_change`` for every
notification; ``on_change`` replays the change log from the revision the
replica serves, so a notification only says "look now" and losing one costs
nothing but time.

A dropped connection (a restart of PostgreSQL, a network cut, an administrator's
``pg_terminate_backend``) is retried with a growing pause; after each
(re)connection ``on_change`` runs once, which catches up with whatever was
committed while nobody listened. The app's periodic refresh stays on as the
backstop.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import URL

from orgguard.storage.database import KEEPALIVES
from orgguard.storage.store import CHANNEL

log = logging.getLogger(__name__)


def application_name() -> str:
    """How the listening connection shows in pg_stat_activity: by process."""
    return f"orgguard-listener-{os.getpid()}"


class ChangeListener:
    """Two threads: one only reads notifications (it never runs a query on the
    listening connection, where a notification could be consumed unseen), the
    other catches up, once for any number of notifications heard meanwhile."""

    def __init__(
        self,
        url: URL,
        on_change: Callable[[int | None], object],
        *,
        poll_seconds: float = 0.25,
        max_pause: float = 5.0,
    ) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._on_change = on_change
        self._poll_seconds = poll_seconds
        self._max_pause = max_pause
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._heard = threading.Event()
        # The highest revision heard since the last catch-up; None: unknown
        # (after a (re)connection: catch up with whatever there is).
        self._latest: int | None = None
        self._threads = [
            threading.Thread(target=self._listen_forever, name="orgguard-listen"),
            threading.Thread(target=self._catch_up_forever, name="orgguard-catch-up"),
        ]
        self.connected = threading.Event()
        self.connections = 0  # made so far (a reconnect adds one)

    def start(self) -> None:
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._heard.set()
        for thread in self._threads:
            thread.join(timeout)

    def _listen_forever(self) -> None:
        pause = 0.1
        while not self._stopping.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                if self.connected.is_set():
                    log.warning("change listener lost its connection: %s", error)
                    pause = 0.1
                else:
                    log.warning("change listener cannot connect: %s", error)
            except Exception:
                log.exception("change listener failed; it starts again")
            self.connected.clear()
            self._stopping.wait(pause)
            pause = min(pause * 2, self._max_pause)

    def _listen(self) -> None:
        # A silent network cut is noticed in seconds (KEEPALIVES).
        conninfo = psycopg.conninfo.make_conninfo(
            self._conninfo, application_name=application_name(), **KEEPALIVES
        )
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            self.connections += 1
            self.connected.set()
            log.info("change listener connected (connection %d)", self.connections)
            self._hear(None)  # catch up with what was committed unheard
            while not self._stopping.is_set():
                for notification in connection.notifies(timeout=self._poll_seconds):
                    self._hear(_revision(notification.payload))

    def _hear(self, revision: int | None) -> None:
        with self._lock:
            if revision is None or not self._heard.is_set():
                self._latest = revision
            elif self._latest is not None:
                self._latest = max(self._latest, revision)
            self._heard.set()

    def _catch_up_forever(self) -> None:
        while True:
            self._heard.wait()
            if self._stopping.is_set():
                return
            with self._lock:
                self._heard.clear()
                latest, self._latest = self._latest, None
            try:
                self._on_change(latest)
            except Exception:
                log.exception("catching up after a notification failed")


def _revision(payload: str) -> int | None:
    return int(payload) if payload.isascii() and payload.isdigit() else None
