"""The loaded policy is millions of long-lived objects; keep the garbage
collector off them.

Python's collector walks every tracked object on a full collection, so with
the policy loaded a gen-2 pass can pause a request for a long time. While
loading, the collector is off (it would run over and over for nothing); after
loading, ``gc.freeze()`` moves what exists to the permanent generation, which
collections skip. Reference counting still frees those objects when the index
is replaced.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)


@contextmanager
def bulk_load() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@dataclass
class PauseWatch:
    """Times every collection; a long one is logged as it happens."""

    warn_ms: float = 20.0
    collections: int = 0
    longest_ms: float = 0.0
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._started) * 1000
        self.collections += 1
        self.longest_ms = max(self.longest_ms, pause_ms)
        if pause_ms > self.warn_ms:
            log.warning(
                "gc pause %.1f ms (generation %s)", pause_ms, info.get("generation")
            )

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
        log.info(
            "gc: %d collections, longest pause %.1f ms",
            self.collections,
            self.longest_ms,
        )
