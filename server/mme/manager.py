"""Lazy loading and LRU unloading of model archives, as a SageMaker multi-model endpoint does.

The first call for a target fetches the archive into a local cache, verifies
and extracts it, links its models into Triton's model repository and loads the
archive's default model (an ensemble brings its steps along). Concurrent first
calls share one load. When the next load would exceed the memory budget
(measured resident memory of Triton and its stub processes) or the cap on
loaded archives, least-recently-used archives are unloaded first; calls in
flight on an archive being unloaded finish before Triton unloads it.
Downloaded archives are kept in an LRU-bounded disk cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from .archive_extract import ArchiveError, Manifest, safe_extract
from .errors import EndpointError, model_error, validation_error
from .memory import tree_resident_bytes
from .metrics import EndpointMetrics
from .store import InvalidTarget, ModelStore, TargetNotFound, validate_target
from .triton_client import TritonClient, TritonRejected

DEFAULT_ARCHIVE_ESTIMATE = 200 << 20
"""Memory assumed for an archive before any load has been measured."""


@dataclass(frozen=True)
class ManagerSettings:
    """Limits of one endpoint; ``memory_budget_bytes=None`` means only ``max_loaded`` applies."""

    cache_dir: Path
    max_loaded: int = 50
    memory_budget_bytes: int | None = None
    archive_cache_bytes: int = 2 << 30
    max_unpacked_bytes: int = 1 << 30
    max_archive_files: int = 10_000

    @property
    def repository_dir(self) -> Path:
        """The model repository Triton watches for archive models (explicit control mode)."""
        return self.cache_dir / "repository"


@dataclass
class LoadedArchive:
    """An archive whose models are loaded in Triton."""

    target: str
    manifest: Manifest
    directory: Path
    memory_bytes: int
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()


def _key(target: str) -> str:
    """File-system name for a target (targets may contain '/')."""
    return hashlib.sha256(target.encode()).hexdigest()[:32]


class ModelManager:
    """Owns which archives are loaded; all methods run on the endpoint's event loop."""

    def __init__(
        self,
        store: ModelStore,
        triton: TritonClient,
        settings: ManagerSettings,
        metrics: EndpointMetrics,
        *,
        triton_pid: Callable[[], int | None],
    ) -> None:
        # Absolute, because the repository holds symlinks into the extraction folder.
        settings = replace(settings, cache_dir=settings.cache_dir.resolve())
        self.store, self.triton, self.settings, self.metrics = store, triton, settings, metrics
        self._triton_pid = triton_pid
        self._loaded: OrderedDict[str, LoadedArchive] = OrderedDict()
        self._loading: dict[str, asyncio.Future[LoadedArchive]] = {}
        self._unloading: dict[str, asyncio.Task[None]] = {}
        self._triton_lock = asyncio.Lock()
        for folder in ("archives", "extracted", "repository"):
            (settings.cache_dir / folder).mkdir(parents=True, exist_ok=True)
        metrics.watch_memory(self.resident_bytes, settings.memory_budget_bytes)

    # -- public surface ---------------------------------------------------------------------

    def resident_bytes(self) -> int:
        pid = self._triton_pid()
        return tree_resident_bytes(pid) if pid else 0

    def loaded(self) -> list[str]:
        """Loaded targets, least recently used first."""
        return list(self._loaded)

    def describe(self, target: str) -> dict[str, object]:
        archive = self._loaded[target]
        return {"target": target, "default_model": archive.manifest.default_model, "models": list(archive.manifest.models),
                "memory_bytes": archive.memory_bytes, "in_flight": archive.in_flight}

    @asynccontextmanager
    async def use(self, target: str) -> AsyncIterator[LoadedArchive]:
        """Hold ``target`` loaded for the duration of one invocation (loading it if needed)."""
        archive = await self.ensure_loaded(target)
        try:
            yield archive
        finally:
            archive.leave()

    async def ensure_loaded(self, target: str) -> LoadedArchive:
        """The loaded archive with one in-flight slot taken; the caller must ``leave()`` it."""
        try:
            validate_target(target)
        except InvalidTarget as exc:
            raise validation_error(str(exc)) from None
        archive = self._loaded.get(target)
        self.metrics.cache_hit.observe(1 if archive else 0)
        started = time.perf_counter()
        while archive is None:  # re-check: it may be evicted again before this call resumes
            future = self._loading.get(target)
            if future is None:
                future = asyncio.ensure_future(self._load(target))
                self._loading[target] = future
                future.add_done_callback(lambda _: self._loading.pop(target, None))
            await asyncio.shield(future)
            archive = self._loaded.get(target)
            self.metrics.loading_wait_time.observe(time.perf_counter() - started)
        self._loaded.move_to_end(target)
        archive.enter()
        return archive

    async def unload(self, target: str) -> bool:
        """Unload ``target`` if loaded (waits for its in-flight calls); True if it was loaded."""
        async with self._triton_lock:
            if target not in self._loaded:
                return False
            await self._evict(target)
            return True

    def forget_all(self) -> None:
        """Triton restarted empty: drop the bookkeeping (files are rebuilt on the next load)."""
        self._loaded.clear()
        self.metrics.loaded_model_count.set(0)
        shutil.rmtree(self.settings.repository_dir, ignore_errors=True)
        self.settings.repository_dir.mkdir(parents=True, exist_ok=True)

    # -- loading ----------------------------------------------------------------------------

    async def _load(self, target: str) -> LoadedArchive:
        pending_unload = self._unloading.get(target)
        if pending_unload is not None:
            await pending_unload
        started = time.perf_counter()
        archive_path = await asyncio.to_thread(self._fetch, target)
        self.metrics.downloading_time.observe(time.perf_counter() - started)
        started = time.perf_counter()
        directory = self.settings.cache_dir / "extracted" / _key(target)
        manifest = await asyncio.to_thread(self._extract, target, archive_path, directory)
        self.metrics.extracting_time.observe(time.perf_counter() - started)
        async with self._triton_lock:
            self._check_names(target, manifest)
            await self._make_room()
            started = time.perf_counter()
            archive = await self._load_into_triton(target, manifest, directory)
            self.metrics.loading_time.observe(time.perf_counter() - started)
        return archive

    def _fetch(self, target: str) -> Path:
        """The archive in the local cache (downloaded if absent), most recently used."""
        cached = self.settings.cache_dir / "archives" / f"{_key(target)}.tar.gz"
        if cached.is_file():
            cached.touch()
            return cached
        try:
            self.store.fetch(target, cached)
        except TargetNotFound:
            raise validation_error(f"Could not find model data for TargetModel {target!r} in {self.store.describe()}") from None
        self._trim_archive_cache(keep=cached)
        return cached

    def _trim_archive_cache(self, *, keep: Path) -> None:
        files = sorted((self.settings.cache_dir / "archives").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for old in files:
            if total <= self.settings.archive_cache_bytes:
                break
            if old != keep:
                total -= old.stat().st_size
                old.unlink(missing_ok=True)

    def _extract(self, target: str, archive_path: Path, directory: Path) -> Manifest:
        shutil.rmtree(directory, ignore_errors=True)
        try:
            return safe_extract(
                archive_path, directory,
                max_bytes=self.settings.max_unpacked_bytes, max_files=self.settings.max_archive_files,
            )
        except ArchiveError as exc:
            archive_path.unlink(missing_ok=True)  # a bad download must not stay cached
            raise validation_error(f"Model archive {target!r} is invalid: {exc.reason}") from None

    def _check_names(self, target: str, manifest: Manifest) -> None:
        for other in self._loaded.values():
            clash = set(manifest.models) & set(other.manifest.models)
            if clash:
                raise validation_error(
                    f"Model archive {target!r} contains models {sorted(clash)} already loaded from {other.target!r}; "
                    "package archives with distinct names or versions"
                )

    def _estimate(self) -> int:
        measured = [a.memory_bytes for a in self._loaded.values() if a.memory_bytes > 0]
        return max(measured) if measured else DEFAULT_ARCHIVE_ESTIMATE

    async def _make_room(self) -> None:
        budget = self.settings.memory_budget_bytes
        while self._loaded and (
            len(self._loaded) >= self.settings.max_loaded
            or (budget is not None and self.resident_bytes() + self._estimate() > budget)
        ):
            self.metrics.evictions.inc()
            await self._evict(next(iter(self._loaded)))

    async def _load_into_triton(self, target: str, manifest: Manifest, directory: Path) -> LoadedArchive:
        links = [self.settings.repository_dir / model for model in manifest.models]
        for link, model in zip(links, manifest.models):
            link.unlink(missing_ok=True)
            link.symlink_to(directory / model, target_is_directory=True)
        before = self.resident_bytes()
        try:
            await self.triton.load(manifest.default_model)
        except TritonRejected as exc:
            for link in links:
                link.unlink(missing_ok=True)
            raise model_error(f"Failed to load model archive {target!r}", exc.status, exc.message) from None
        archive = LoadedArchive(target, manifest, directory, max(0, self.resident_bytes() - before))
        self._loaded[target] = archive
        self.metrics.loaded_model_count.set(len(self._loaded))
        return archive

    # -- unloading --------------------------------------------------------------------------

    async def _evict(self, target: str) -> None:
        archive = self._loaded.pop(target)
        self.metrics.loaded_model_count.set(len(self._loaded))
        task = asyncio.ensure_future(self._unload(archive))
        self._unloading[target] = task
        try:
            await task
        finally:
            self._unloading.pop(target, None)

    async def _unload(self, archive: LoadedArchive) -> None:
        started = time.perf_counter()
        await archive.idle.wait()
        try:
            await self.triton.unload(archive.manifest.default_model)
        except TritonRejected as exc:
            raise EndpointError(500, "InternalFailure", f"Triton refused to unload {archive.target!r}: {exc.message}") from None
        for model in archive.manifest.models:
            (self.settings.repository_dir / model).unlink(missing_ok=True)
        shutil.rmtree(archive.directory, ignore_errors=True)
        self.metrics.unloading_time.observe(time.perf_counter() - started)
