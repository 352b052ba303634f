"""The model an endpoint serves, and the holder that follows the registry.

A `ServedModel` is one loaded version (its bundle in memory) and never changes. The holder
keeps a reference to the current one; a request reads that reference once and uses that
version for everything (predictions and the X-Model-Version header), so a switch, which
replaces the reference in one assignment after the new version is fully loaded beside the old
one, never fails a request or mixes two versions in one response.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from abalone_platform.ml.bundle import ModelBundle, predict_columns
from abalone_platform.ml.data import AbaloneColumns
from abalone_platform.ml.mlflow_format import read_model_dir
from abalone_platform.registry import (
    APPROVAL_TAG,
    APPROVED_ALIAS,
    BUNDLE_SHA256_TAG,
    REJECTED,
    Registry,
    approved_version,
    get_version,
    is_complete,
)

log = logging.getLogger("abalone_platform.serve")


@dataclass(frozen=True)
class ServedModel:
    version: int
    bundle: ModelBundle

    def predict(self, columns: AbaloneColumns) -> np.ndarray:
        return predict_columns(self.bundle, columns)


def load_version(registry: Registry, version: int) -> ServedModel:
    """Download version ``version``'s files and load them, every file checked against its
    recorded sha256 (an MLflow model's bundle, or a legacy version's bare bundle)."""
    mv = get_version(registry, version)
    with tempfile.TemporaryDirectory(prefix=f"abalone-serve-v{version}-") as target:
        local = registry.client.download_artifacts(mv.run_id, "model", target)
        bundle = read_model_dir(Path(local), mv.tags.get(BUNDLE_SHA256_TAG))
    # One thread per prediction: requests are small, and OpenMP's pool costs more than it
    # gives for them (and spins against the server's own threads on a shared machine).
    bundle.booster.set_param({"nthread": 1})
    return ServedModel(version=version, bundle=bundle)


@dataclass(frozen=True)
class Serving:
    """What the endpoint serves now: a model, or none and why. Replaced whole, never changed:
    a request reads it once."""

    model: ServedModel | None
    reason: str = ""


# A version that failed to load is tried again after this long, not at every poll (each try
# downloads it again).
RETRY_FAILED_LOAD_S = 30.0


class ModelHolder:
    """The version to serve: the `approved` alias (``pinned`` None) or a pinned version, checked
    every ``poll_interval_s`` seconds by a background thread."""

    def __init__(
        self,
        open_registry: Callable[[], Registry],
        *,
        pinned: int | None = None,
        poll_interval_s: float = 2.0,
        on_switch: Callable[[ServedModel | None], None] | None = None,
        on_load_failure: Callable[[int, Exception], None] | None = None,
    ) -> None:
        self._open_registry = open_registry
        self._registry: Registry | None = None
        self.pinned = pinned
        self.poll_interval_s = poll_interval_s
        self.on_switch = on_switch
        self.on_load_failure = on_load_failure
        self.state = Serving(None, "no model loaded yet")
        self._failed: tuple[int, float] | None = None  # (version, when) of the last failed load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> ServedModel | None:
        return self.state.model

    def _target(self, registry: Registry) -> tuple[int | None, str]:
        """The version that should be served now, or None and why not."""
        if self.pinned is None:
            version = approved_version(registry)
            if version is None:
                return None, f"{registry.name} has no Approved version (alias {APPROVED_ALIAS!r})"
            return version, ""
        mv = get_version(registry, self.pinned)
        if mv.tags.get(APPROVAL_TAG) == REJECTED:
            return None, f"{registry.name} version {self.pinned} is Rejected"
        if not is_complete(mv):
            return None, f"{registry.name} version {self.pinned}'s registration did not complete"
        return self.pinned, ""

    def refresh(self) -> None:
        """Load and switch to the version that should be served, if it changed."""
        if self._registry is None:
            self._registry = self._open_registry()
        target, reason = self._target(self._registry)
        current = self.state.model
        if target is None:
            if current is None and self.state.reason == reason:
                return
            if current is not None:
                log.warning("stopped serving version %s: %s", current.version, reason)
            self.state = Serving(None, reason)
        elif current is None or current.version != target:
            if self._failed and self._failed[0] == target:
                if time.monotonic() - self._failed[1] < RETRY_FAILED_LOAD_S:
                    return
            try:
                loaded = load_version(self._registry, target)  # beside the old one
            except Exception as exc:
                self._failed = (target, time.monotonic())
                log.error(
                    "could not load version %s (%s); %s", target, exc,
                    f"still serving version {current.version}" if current else "serving none",
                )  # fmt: skip
                if self.on_load_failure is not None:
                    self.on_load_failure(target, exc)
                if current is None:
                    self.state = Serving(None, f"could not load version {target}: {exc}")
                return
            self._failed = None
            self.state = Serving(loaded)  # the switch: one assignment
            log.info(
                "serving %s version %s (%s)",
                self._registry.name,
                target,
                f"was {current.version}" if current else "first load",
            )
        else:
            return
        if self.on_switch is not None and (current is not None or self.state.model is not None):
            self.on_switch(self.state.model)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh()
            except Exception as exc:  # the registry is unreachable: keep serving what we have
                log.warning("could not check the registry (still serving what was loaded): %s", exc)

    def start(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the registry is unreachable: answer 503 and keep trying
            self.state = Serving(None, f"could not read the registry: {exc}")
            log.error("%s", self.state.reason)
        self._thread = threading.Thread(target=self._poll, name="model-holder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
