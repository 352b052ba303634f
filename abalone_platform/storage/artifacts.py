"""An immutable, per-run artifact store with atomic publication.

Every materialization writes under ``<root>/<asset>/<run_id>/``: files are written to a hidden
temporary name next to their final place and renamed into it, so a killed run leaves nothing
that a later run would read. Readers go by the URI and sha256 recorded in the materialization.
``<root>`` is a local directory (``LocalArtifactStore``) or ``s3://bucket/prefix``
(``S3ArtifactStore``); callers that need files on disk use ``local_copy``. Both stores verify
what they read the same way (``_VerifyingStore``, through ``storage.integrity``); they differ
only in how they fetch it.
"""

from __future__ import annotations

import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from abalone_platform.faults import fault_point
from abalone_platform.storage.integrity import (
    MANIFEST_FILE,
    ArtifactIntegrityError,
    atomic_path,
    require_file,
    sha256_file,
    verified_bytes,
    verified_file,
    verified_manifest,
)
from abalone_platform.storage.s3 import S3Files, S3Location, parse_s3_uri

# The metadata contract every materialization of an artifact keeps: where it is and its sha256
# (URI_KEY, SHA256_KEY), and what it was made from (UPSTREAM_KEY: {asset: {run_id, sha256,
# uri}}). Steps read their inputs by it, lineage and the execution records follow it.
URI_KEY = "uri"
SHA256_KEY = "sha256"
UPSTREAM_KEY = "upstream"
# A few raw input rows (JSON records) on test_split: the registered model's input example.
INPUT_EXAMPLE_KEY = "input_example"


def plain_metadata(metadata: Mapping[str, object]) -> dict[str, object]:
    """Materialization (or check) metadata as plain values: Dagster wraps each value in a
    MetadataValue whose ``.value`` is the value; plain values pass through."""
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


@dataclass(frozen=True)
class ArtifactRef:
    """One artifact: its URI and the sha256 recorded when it was written."""

    uri: str
    sha256: str

    def as_metadata(self) -> dict[str, str]:
        """The materialization metadata entries that record this artifact."""
        return {URI_KEY: self.uri, SHA256_KEY: self.sha256}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> ArtifactRef | None:
        """The artifact a materialization's metadata records (plain values or Dagster
        MetadataValues), or None when it records none."""
        values = plain_metadata({k: metadata.get(k) for k in (URI_KEY, SHA256_KEY)})
        if not values[URI_KEY] or not values[SHA256_KEY]:
            return None
        return cls(uri=str(values[URI_KEY]), sha256=str(values[SHA256_KEY]))

    @property
    def path(self) -> Path:
        parsed = urllib.parse.urlparse(self.uri)
        if parsed.scheme not in ("", "file"):
            raise ValueError(f"{self.uri} is not a local artifact")
        return Path(urllib.parse.unquote(parsed.path))


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


class _VerifyingStore:
    """What both stores share: every read is checked against the recorded sha256 here, the same
    way and with the same messages; a store only says how it fetches the bytes (``_fetch_*``)."""

    def _fetch_bytes(self, ref: ArtifactRef) -> bytes:
        raise NotImplementedError

    def _fetch_file(self, ref: ArtifactRef) -> Path:
        """A local path holding the file artifact (not yet verified)."""
        raise NotImplementedError

    def _fetch_directory(self, ref: ArtifactRef) -> Path | None:
        """A local directory holding the directory artifact (its manifest not yet verified), or
        None when ``ref`` is a file artifact."""
        raise NotImplementedError

    def _discard(self, path: Path) -> None:
        """Called with a fetched file that failed verification."""

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        return verified_bytes(self._fetch_bytes(ref), ref.sha256, ref.uri)

    def verified_path(self, ref: ArtifactRef) -> Path:
        path = self._fetch_file(ref)
        try:
            return verified_file(path, ref.sha256, ref.uri)
        except ArtifactIntegrityError:
            self._discard(path)
            raise

    def local_copy(self, ref: ArtifactRef) -> Path:
        """A local, verified file (or, for a directory artifact such as a bundle, the directory
        whose manifest's sha256 is the recorded one)."""
        directory = self._fetch_directory(ref)
        if directory is None:
            return self.verified_path(ref)
        return verified_manifest(directory, ref.sha256, ref.uri)


class LocalArtifactStore(_VerifyingStore):
    def __init__(self, root: Path):
        self.root = Path(root)

    def location(self, asset: str, run_id: str) -> Path:
        return self.root / asset / run_id

    def write_bytes(self, asset: str, run_id: str, name: str, data: bytes) -> ArtifactRef:
        return self.write_with(asset, run_id, name, lambda path: path.write_bytes(data))

    def write_with(
        self, asset: str, run_id: str, name: str, writer: Callable[[Path], object]
    ) -> ArtifactRef:
        """Call ``writer`` with a temporary path, then publish it as ``name`` atomically."""
        target = self.location(asset, run_id) / name
        with atomic_path(target) as tmp:
            writer(tmp)
            digest = sha256_file(tmp)
            fault_point(f"artifact.publish.{asset}")
        return ArtifactRef(uri=_uri(target), sha256=digest)

    def write_directory(
        self, asset: str, run_id: str, name: str, writer: Callable[[Path], str]
    ) -> ArtifactRef:
        """Call ``writer`` with a temporary directory (it returns the directory's sha256), then
        rename the directory into place."""
        target = self.location(asset, run_id) / name
        with atomic_path(target, directory=True) as tmp:
            digest = writer(tmp)
            fault_point(f"artifact.publish.{asset}")
        return ArtifactRef(uri=_uri(target), sha256=digest)

    # The artifact is read where it lies; a tampered one is left in place (it is the evidence).
    def _fetch_bytes(self, ref: ArtifactRef) -> bytes:
        return require_file(ref.path, ref.uri).read_bytes()

    def _fetch_file(self, ref: ArtifactRef) -> Path:
        return ref.path

    def _fetch_directory(self, ref: ArtifactRef) -> Path | None:
        return ref.path if ref.path.is_dir() else None


class S3ArtifactStore(_VerifyingStore):
    """The same interface as ``LocalArtifactStore`` under ``s3://bucket/prefix``.

    Files are written locally first and uploaded once complete; an S3 PUT (or a completed
    multipart upload) is atomic, so no reader sees a partial object. A directory's files are
    uploaded before its manifest, and readers go through the manifest's recorded sha256, so a
    half-uploaded directory is never taken for a complete one. Reads are verified against the
    recorded sha256; local copies are cached under ``cache_dir`` by sha256.
    """

    def __init__(self, root: str, files: S3Files, cache_dir: Path):
        self.root = parse_s3_uri(root.rstrip("/"))
        self.files = files
        self.cache_dir = Path(cache_dir)

    def location(self, asset: str, run_id: str) -> S3Location:
        return self.root.child(f"{asset}/{run_id}")

    def _staging(self) -> Path:
        staging = self.cache_dir / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def write_bytes(self, asset: str, run_id: str, name: str, data: bytes) -> ArtifactRef:
        return self.write_with(asset, run_id, name, lambda path: path.write_bytes(data))

    def write_with(
        self, asset: str, run_id: str, name: str, writer: Callable[[Path], object]
    ) -> ArtifactRef:
        """Call ``writer`` with a local temporary path, then upload it as ``name``."""
        target = self.location(asset, run_id).child(name)
        with tempfile.TemporaryDirectory(dir=self._staging()) as tmp:
            # The writer sees the artifact's own file name (some name their outputs after it).
            path = Path(tmp) / name
            writer(path)
            digest = sha256_file(path)
            self.files.upload_file(path, target, sha256=digest)
        return ArtifactRef(uri=target.uri, sha256=digest)

    def write_directory(
        self, asset: str, run_id: str, name: str, writer: Callable[[Path], str]
    ) -> ArtifactRef:
        """Call ``writer`` with a local temporary directory (it returns the directory's sha256),
        then upload its files, the manifest last."""
        target = self.location(asset, run_id).child(name)
        with tempfile.TemporaryDirectory(dir=self._staging()) as tmp:
            directory = Path(tmp)
            digest = writer(directory)
            files = sorted(p for p in directory.rglob("*") if p.is_file())
            files.sort(key=lambda p: p.name == MANIFEST_FILE)
            for path in files:
                # Each file carries its own sha256 (the manifest's is the directory's).
                self.files.upload_file(
                    path,
                    target.child(path.relative_to(directory).as_posix()),
                    sha256=sha256_file(path),
                )
        return ArtifactRef(uri=target.uri, sha256=digest)

    def _cached(self, ref: ArtifactRef) -> Path:
        return self.cache_dir / "artifacts" / ref.sha256 / Path(parse_s3_uri(ref.uri).key).name

    def _fetch_bytes(self, ref: ArtifactRef) -> bytes:
        return self.files.get_bytes(parse_s3_uri(ref.uri))

    def _fetch_file(self, ref: ArtifactRef) -> Path:
        target = self._cached(ref)
        if not (target.is_file() and sha256_file(target) == ref.sha256):
            self.files.download(parse_s3_uri(ref.uri), target)
        return target

    def _discard(self, path: Path) -> None:
        path.unlink(missing_ok=True)  # a bad download is never left in the cache

    def _fetch_directory(self, ref: ArtifactRef) -> Path | None:
        """The directory artifact downloaded into the cache (once per sha256), or None when
        ``ref`` names a single object."""
        location = parse_s3_uri(ref.uri)
        keys = self.files.list_keys(location)
        if not keys:
            return None
        target = self._cached(ref)
        if not target.is_dir():
            # Another process may cache the same sha256 meanwhile; its copy is as good as ours.
            with atomic_path(target, directory=True, keep_existing=True) as tmp:
                base = location.key.rstrip("/") + "/"
                for key in keys:
                    self.files.download(
                        S3Location(location.bucket, key), tmp / key.removeprefix(base)
                    )
                # Only a complete, matching download is published into the cache.
                verified_manifest(tmp, ref.sha256, ref.uri)
        return target
