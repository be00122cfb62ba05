"""`ModelWatcher`: follows a registry alias (``models:/NAME@champion``) and hot-swaps the model.

Every `interval` seconds a background thread asks the registry which version the alias points
at. When it moved, the thread fetches that version's bundle, loads it and hands it to
`Service.swap_model`, which warms the new pipeline up and switches atomically — requests keep
being answered by the old model until then, and those in flight finish on it. Any failure
(registry unreachable, a broken bundle, a model that cannot answer) leaves the old model serving;
it is logged and shown in ``/health``, and a version that failed is tried again only after
`retry_failed_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


class ModelWatcher:
    """See the module docstring. `check()` runs one poll (the thread calls it; tests may too)."""

    def __init__(self, service: Any, registry: Any, ref: str, *, version: int | None, interval: float = 10.0,
                 retry_failed_s: float | None = None) -> None:
        self.service = service
        self.registry = registry
        self.ref = ref
        self.version = version
        self.interval = float(interval)
        self.retry_failed_s = max(60.0, 6 * self.interval) if retry_failed_s is None else float(retry_failed_s)
        self.swaps = 0
        self.last_check: float | None = None
        self.last_error: str | None = None
        self._failed: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """One poll; True when a new version was swapped in."""
        from tastemaker.models.base import Recommender

        with self._lock:
            self.last_check = time.time()
            try:
                mv = self.registry.resolve(self.ref)
            except Exception as exc:  # registry away: keep serving, try again next poll
                self._fail(f"cannot resolve {self.ref}: {type(exc).__name__}: {exc}")
                return False
            if mv.version == self.version:
                self.last_error = None
                return False
            failed_at = self._failed.get(mv.version)
            if failed_at is not None and time.time() - failed_at < self.retry_failed_s:
                return False
            try:
                t0 = time.perf_counter()
                model = Recommender.load(self.registry.fetch(mv))
                self.service.swap_model(model, mv.uri)
            except Exception as exc:  # a broken version never replaces a working one
                self._failed[mv.version] = time.time()
                self._fail(f"{mv.uri} ({self.ref}) could not be loaded; still serving "
                           f"{self.service.model_id}: {type(exc).__name__}: {exc}")
                return False
            log.info("%s moved from version %s to %s: swapped in %.2f s", self.ref, self.version, mv.version,
                     time.perf_counter() - t0)
            self.version = mv.version
            self.swaps += 1
            self.last_error = None
            return True

    def _fail(self, message: str) -> None:
        self.last_error = message
        log.warning("model watcher: %s", message)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def start(self) -> ModelWatcher:
        """Start polling in a daemon thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"model-watcher {self.ref}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (waits for a swap in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def status(self) -> dict[str, Any]:
        """For ``/health``: what is followed, the version served, swaps so far and the last error."""
        return {"follows": self.ref, "version": self.version, "interval_s": self.interval, "swaps": self.swaps,
                "last_check": self.last_check, "last_error": self.last_error}
