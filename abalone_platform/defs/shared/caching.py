"""Step caching in Dagster (SageMaker's CacheConfig): reuse an earlier materialization of a step
whose cache key (abalone_platform.step_cache) equals this run's.

The entries are the materializations themselves: every materialization of a cached step records
its ``cache_key``, so the event log (SQLite or a team's Postgres) is the cache index and no second
store can disagree with it. A hit is a real materialization in this run: the same ``uri`` and
``sha256`` as the run that computed it, plus ``cache_hit_of: <that run id>``; its ``upstream``
chain names this run's inputs (whose sha256 are the ones in the key), so lineage, the version
checks of later steps and the gate see exactly what they would have computed. Before reuse every
artifact of the entry is read back and checked against its recorded sha256 (``local_copy``); a
missing or corrupted entry is recomputed, never reused. Registration is never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from abalone_platform import step_cache
from abalone_platform.defs.shared.resources import PipelineParameters
from abalone_platform.defs.shared.upstream import StepContext, record_in_run
from abalone_platform.step_cache import CACHE_HIT_OF, CACHE_KEY, STEP_CODE_VERSION
from abalone_platform.storage.artifacts import (
    ArtifactRef,
    LocalArtifactStore,
    S3ArtifactStore,
    plain_metadata,
)
from abalone_platform.storage.integrity import ArtifactIntegrityError
from abalone_platform.storage.s3 import S3Error

# How many of a step's newest materializations a lookup reads before it gives up: a key last
# computed further back than that is computed again.
SCAN_LIMIT = 500
_PAGE = 100
# The time an entry's age is measured at (materialization timestamps are wall-clock seconds); a
# test moves it forward instead of waiting for an entry to expire.
clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class CacheHit:
    """An earlier computation of the step: the run that computed it and, per asset, the
    metadata of that materialization (Dagster's MetadataValues, kept as they were)."""

    run_id: str
    computed_at: float
    metadata: Mapping[dg.AssetKey, Mapping[str, dg.MetadataValue]]

    def reused(self, asset: str | dg.AssetKey, fresh: Mapping[str, object]) -> dict[str, object]:
        """The metadata of ``asset``'s reuse: the computation's, with this run's own entries
        (``fresh``: its input chain, the URIs it was given) over it."""
        return {**self.metadata[dg.AssetKey.from_coercible(asset)], **fresh}


class StepCache:
    """One step's cache key in one run, and the lookup of an entry with that key."""

    def __init__(
        self,
        context: StepContext,
        *,
        step: str,
        assets: Sequence[str],
        inputs: Mapping[str, str],
        affecting: Mapping[str, object],
        parameters: PipelineParameters,
        step_module: str,
    ):
        """``inputs``: each input's sha256 by name; ``affecting``: the values of the
        parameters that change the step's outputs; ``step_module``: the asset's ``__file__``."""
        self.context = context
        self.step = step
        self.assets = [dg.AssetKey(name) for name in assets]
        self.enabled = parameters.enable_caching
        # Validated with the run config; parsed again here for the duration.
        self.expire_after = step_cache.parse_expire_after(parameters.cache_expire_after)
        self.code_version = step_cache.step_code_version(str(Path(step_module).resolve()))
        self.key = step_cache.step_cache_key(step, self.code_version, inputs, affecting)

    def metadata(self, hit: CacheHit | None) -> dict[str, object]:
        """What every materialization of the step records: its key and code version, and the
        run it reuses when it is a hit."""
        return {
            CACHE_KEY: self.key,
            STEP_CODE_VERSION: self.code_version,
            **({CACHE_HIT_OF: hit.run_id} if hit else {}),
        }

    def lookup(self, store: LocalArtifactStore | S3ArtifactStore) -> CacheHit | None:
        """The newest entry with this key whose artifacts all read back with their recorded
        sha256 from ``store`` (an artifact store), unless caching is off or it has expired."""
        log = self.context.log
        if not self.enabled:
            log.info(f"{self.step}: enable_caching is false; computing")
            return None
        newest = self._newest_with_key()
        if newest is None:
            log.info(f"{self.step}: no cache entry for key {self.key[:12]}; computing")
            return None
        meta = plain_metadata(newest.asset_materialization.metadata)
        origin = str(meta.get(CACHE_HIT_OF) or newest.run_id)
        records = {key: record_in_run(self.context.instance, origin, key) for key in self.assets}
        found = {
            key: record
            for key, record in records.items()
            if record is not None
            and plain_metadata(record.asset_materialization.metadata).get(CACHE_KEY) == self.key
        }
        if len(found) != len(self.assets):
            log.warning(
                f"{self.step}: the cache entry of run {origin} is incomplete (it recorded "
                f"{len(found)} of {len(self.assets)} outputs with key {self.key[:12]}); computing"
            )
            return None
        computed_at = min(record.timestamp for record in found.values())
        age_s = clock() - computed_at
        if self.expire_after is not None and age_s > self.expire_after.total_seconds():
            log.info(
                f"{self.step}: the cache entry of run {origin} expired (computed {age_s:,.0f} s "
                f"ago; cache_expire_after {self.expire_after}); computing"
            )
            return None
        for key, record in found.items():
            ref = ArtifactRef.from_metadata(record.asset_materialization.metadata)
            try:
                if ref is None:
                    raise ArtifactIntegrityError("records no artifact uri/sha256")
                store.local_copy(ref)
            except (ArtifactIntegrityError, OSError, S3Error) as exc:
                log.warning(
                    f"{self.step}: not reusing run {origin}'s {key.to_user_string()}: {exc}; "
                    "computing"
                )
                return None
        log.info(
            f"{self.step}: cache hit: reusing run {origin} (key {self.key[:12]}, computed "
            f"{age_s:,.0f} s ago; artifacts' sha256 verified)"
        )
        return CacheHit(
            run_id=origin,
            computed_at=computed_at,
            metadata={key: dict(r.asset_materialization.metadata) for key, r in found.items()},
        )

    def _newest_with_key(self) -> dg.EventLogRecord | None:
        """The newest materialization of the step's first asset that records this key, among
        the newest SCAN_LIMIT."""
        instance = self.context.instance
        cursor = None
        for _ in range(SCAN_LIMIT // _PAGE):
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=self.assets[0]), limit=_PAGE, cursor=cursor
            )
            for record in page.records:
                metadata = record.asset_materialization.metadata
                if plain_metadata({CACHE_KEY: metadata.get(CACHE_KEY)})[CACHE_KEY] == self.key:
                    return record
            if not page.has_more:
                return None
            cursor = page.cursor
        return None
