"""The pages' cache: page data built once per publication, pipeline health rebuilt when a system table changes.

A watcher thread (started with the app) follows the gold repository: when the repository swaps in a new snapshot, it
aggregates that publication off to the side and then swaps the ``(snapshot, page data)`` pair in one assignment.
A page request takes the pair once, so everything on a page comes from one publication; while the next publication
is being aggregated, pages keep serving the previous pair (and say which version they show). Without the watcher
(an app used without its lifespan), the first request builds what is missing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from api.pages import render
from api.pages.data import PageData, PipelineData, build_page_data, build_pipeline, system_versions
from api.repository import GoldRepository, GoldSnapshot
from lakehouse.settings import Settings

log = logging.getLogger("lakehouse.api.pages")


@dataclass(frozen=True)
class Bundle:
    """One publication: the repository's snapshot and the pages' aggregates of the same manifest version."""

    gold: GoldSnapshot
    data: PageData

    @property
    def version(self) -> int:
        return self.gold.version


class PageStore:
    """Holds the current :class:`Bundle` and :class:`PipelineData`; a watcher thread keeps both fresh."""

    def __init__(self, settings: Settings, repository: GoldRepository, *, watch_interval_s: float = 0.2,
                 system_interval_s: float | None = None) -> None:
        self.settings = settings
        self.repository = repository
        self.watch_interval_s = watch_interval_s
        self.system_interval_s = system_interval_s if system_interval_s is not None else settings.api_poll_interval_s
        self._bundle: Bundle | None = None
        self._pipeline: PipelineData | None = None
        self._pipeline_checked = 0.0
        self._build_lock = threading.Lock()
        self._pipeline_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.builds = 0
        self.pipeline_builds = 0
        self.last_error: str | None = None
        self._failed: tuple[int, float] | None = None  # (publication version that failed to aggregate, when)
        self.retry_after_s = 60.0

    # -- publication data ----------------------------------------------------------------------------------------
    @property
    def bundle(self) -> Bundle | None:
        return self._bundle

    def _build(self, snapshot: GoldSnapshot) -> Bundle:
        with self._build_lock:
            current = self._bundle
            if current is not None and current.gold is snapshot:
                return current
            failed = self._failed
            if failed is not None and failed[0] == snapshot.version and time.monotonic() - failed[1] < self.retry_after_s:
                raise RuntimeError(f"aggregating publication v{snapshot.version} failed: {self.last_error}")
            t0 = time.perf_counter()
            try:
                data = build_page_data(self.settings, snapshot)
                data.charts = render.publication_charts(data)
            except Exception as exc:
                self._failed = (snapshot.version, time.monotonic())  # do not retry a large build on every tick
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                raise
            self._failed = None
            data.build_seconds = round(time.perf_counter() - t0, 3)
            bundle = Bundle(snapshot, data)
            if self._bundle is None or self._bundle.version <= bundle.version:
                self._bundle = bundle  # the swap: one reference assignment
            self.builds += 1
            log.info("pages: publication v%s aggregated in %.2fs", bundle.version, data.build_seconds)
            return bundle

    def current(self) -> Bundle | None:
        """The pair to serve: the latest built one; built now when there is none and nobody is building it (None while
        the watcher aggregates the first publication)."""
        snapshot = self.repository.snapshot
        bundle = self._bundle
        if snapshot is None:
            return bundle
        if bundle is not None and (bundle.gold is snapshot or self.watching):
            return bundle
        if bundle is None and self.watching and self._build_lock.locked():
            return None  # the watcher is aggregating the first publication: answer "preparing", do not queue up
        return self._build(snapshot)

    # -- pipeline health ------------------------------------------------------------------------------------------
    def pipeline(self) -> PipelineData:
        """Pipeline health; re-read when a system table has a new version (checked at most every interval)."""
        current = self._pipeline
        if current is not None and (self.watching or time.monotonic() - self._pipeline_checked < self.system_interval_s):
            return current
        return self._refresh_pipeline(force=current is None)

    def _refresh_pipeline(self, *, force: bool = False) -> PipelineData:
        with self._pipeline_lock:
            self._pipeline_checked = time.monotonic()
            versions = system_versions(self.settings)
            current = self._pipeline
            if current is not None and not force and current.versions == versions:
                return current
            data = build_pipeline(self.settings, versions)
            data.charts = render.pipeline_charts(data)
            self._pipeline = data
            self.pipeline_builds += 1
            return data

    # -- the watcher ----------------------------------------------------------------------------------------------
    @property
    def watching(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the watcher thread (idempotent)."""
        if self.watching:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="pages-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def _watch(self) -> None:
        next_system = 0.0
        while not self._stop.is_set():
            try:
                snapshot = self.repository.snapshot
                bundle = self._bundle
                failed = self._failed
                retry = (failed is None or snapshot is None or failed[0] != snapshot.version
                         or time.monotonic() - failed[1] >= self.retry_after_s)
                if snapshot is not None and (bundle is None or bundle.gold is not snapshot) and retry:
                    self._build(snapshot)
                    self.last_error = None
                if time.monotonic() >= next_system:
                    next_system = time.monotonic() + self.system_interval_s
                    self._refresh_pipeline()
            except Exception as exc:  # noqa: BLE001 - keep serving what was built; retry later
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.error("pages: aggregation failed, still serving v%s: %s",
                          None if self._bundle is None else self._bundle.version, self.last_error)
            self._stop.wait(self.watch_interval_s)


def get_store(app: Any) -> PageStore:
    """The app's page store (created on first use)."""
    store = getattr(app.state, "pages", None)
    if store is None:
        store = app.state.pages = PageStore(app.state.settings, app.state.repository)
    return store
