"""The served manifest and its hot reload.

``ManifestStore.current`` is one immutable :class:`Loaded` (manifest, dispatcher, hash);
a reload builds a complete new one off to the side and swaps the reference in one
assignment, so a request sees the old or the new manifest, never a mix. A manifest that
fails to parse or validate is logged and remembered (so the poller does not log it every
interval) and the old one keeps serving.

Change detection is cheap first (``stat``: mtime and size), then exact (sha256 of the
bytes): a ``touch`` without a content change is not a reload, and an edit that keeps the
size and mtime granularity is still caught by SIGHUP, which always re-hashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mobile_pipeline.manifest.schema import Manifest, ManifestInvalid
from mobile_pipeline.serve.dispatch import Dispatcher
from mobile_pipeline.utils.validation import field_messages

_log = logging.getLogger("mobile_pipeline.serve")

ReloadOutcome = Literal["unchanged", "reloaded", "rejected"]


@dataclass(frozen=True)
class Loaded:
    """One manifest as served: everything a request needs, built before the swap."""

    manifest: Manifest
    dispatcher: Dispatcher
    sha256: str
    loaded_at: float


def _read(path: Path) -> tuple[bytes, tuple[int, int]]:
    # stat first: if the file is replaced between the two calls, the next poll sees a newer
    # stat and reads again (the other order could pair old bytes with the new file's stat).
    st = path.stat()
    data = path.read_bytes()
    return data, (st.st_mtime_ns, st.st_size)


def _parse(path: Path, data: bytes) -> Loaded:
    from pydantic import ValidationError

    try:
        manifest = Manifest.model_validate_json(data)
    except ValidationError as err:
        fields = "; ".join(field_messages(err, limit=5))
        raise ManifestInvalid(f"invalid manifest {path}: {fields}") from None
    return Loaded(manifest, Dispatcher(manifest), hashlib.sha256(data).hexdigest(), time.time())


class ManifestStore:
    """Holds the current manifest; thread-safe reloads, lock-free reads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.reloads = 0
        self.rejected = 0
        self.last_error: str | None = None
        self._rejected_sha: str | None = None
        try:
            data, self._stat = _read(self.path)
        except OSError as err:
            raise ManifestInvalid(f"cannot read manifest {self.path}: {err.strerror or err}") from None
        self.current: Loaded = _parse(self.path, data)

    def check(self, force: bool = False) -> ReloadOutcome:
        """Reload if the file changed (``force``: re-hash even if ``stat`` looks the same)."""
        with self._lock:
            try:
                st = self.path.stat()
            except OSError as err:
                return self._reject(f"cannot stat manifest {self.path}: {err.strerror or err}", None)
            if not force and (st.st_mtime_ns, st.st_size) == self._stat:
                return "unchanged"
            try:
                data, stat = _read(self.path)
            except OSError as err:
                return self._reject(f"cannot read manifest {self.path}: {err.strerror or err}", None)
            sha = hashlib.sha256(data).hexdigest()
            if sha == self.current.sha256:
                self._stat = stat
                return "unchanged"
            if sha == self._rejected_sha:
                self._stat = stat
                return "rejected"
            try:
                loaded = _parse(self.path, data)
            except ManifestInvalid as err:
                self._stat = stat
                return self._reject(str(err), sha)
            except Exception as err:  # a manifest must never take the server down
                self._stat = stat
                return self._reject(f"manifest {self.path} could not be indexed: {type(err).__name__}: {err}", sha)
            self._stat = stat
            self.current = loaded  # the atomic swap: one reference assignment
            self.reloads += 1
            self.last_error = None
            self._rejected_sha = None
            _log.info("manifest reloaded: release %s (sha256 %s)", loaded.manifest.release_id, sha[:12])
            return "reloaded"

    def _reject(self, message: str, sha: str | None) -> ReloadOutcome:
        if message == self.last_error:
            return "rejected"  # the same problem as at the last poll (e.g. file still missing): say it once
        self.rejected += 1
        self.last_error = message
        self._rejected_sha = sha
        _log.error("%s -- still serving release %s", message, self.current.manifest.release_id)
        return "rejected"


class Reloader:
    """Polls the store every ``interval_s`` and reloads on SIGHUP, on the server's event loop."""

    def __init__(self, store: ManifestStore, interval_s: float, handle_sighup: bool = True) -> None:
        self.store = store
        self.interval_s = interval_s
        self.handle_sighup = handle_sighup
        self._task: asyncio.Task | None = None
        self._sighup_installed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.store.check)
            except Exception:  # keep polling whatever happens
                _log.exception("manifest poll failed")

    def _on_sighup(self) -> None:
        _log.info("SIGHUP: re-reading %s", self.store.path)
        assert self._loop is not None
        self._loop.create_task(asyncio.to_thread(self.store.check, True))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._poll())
        if self.handle_sighup and hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            try:
                self._loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
                self._sighup_installed = True
            except (NotImplementedError, RuntimeError, ValueError) as err:
                _log.warning("SIGHUP reload unavailable: %s", err)

    async def stop(self) -> None:
        if self._sighup_installed and self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGHUP)
            self._sighup_installed = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
