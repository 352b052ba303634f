"""An immutable, per-run artifact store with atomic publication.

Every materialization writes under ``<root>/<asset>/<run_id>/``: files are written to a hidden
temporary name next to their final place and renamed into it, so a killed run leaves nothing
that a later run would read. Readers go by the URI and sha256 recorded in the materialization.
``<root>`` is a local directory (``LocalArtifactStore``) or ``s3://bucket/prefix``
(``S3ArtifactStore``); callers that need files on disk use ``local_copy``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from abalone_platform.faults import fault_point
from abalone_platform.storage.integrity import (
    MANIFEST_FILE,
    ArtifactIntegrityError,
    sha256_bytes,
    sha256_file,
)
from abalone_platform.storage.s3 import S3Files, S3Location, parse_s3_uri

# The metadata contract every materialization of an artifact keeps: where it is and its sha256
# (URI_KEY, SHA256_KEY), and what it was made from (UPSTREAM_KEY: {asset: {run_id, sha256,
# uri}}). Steps read their inputs by it, lineage and the execution records follow it.
URI_KEY = "uri"
SHA256_KEY = "sha256"
UPSTREAM_KEY = "upstream"


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
        values = {
            k: getattr(metadata.get(k), "value", metadata.get(k)) for k in (URI_KEY, SHA256_KEY)
        }
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


class LocalArtifactStore:
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
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            writer(tmp_path)
            digest = sha256_file(tmp_path)
            fault_point(f"artifact.publish.{asset}")
            os.replace(tmp_path, target)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()
        return ArtifactRef(uri=_uri(target), sha256=digest)

    def write_directory(
        self, asset: str, run_id: str, name: str, writer: Callable[[Path], str]
    ) -> ArtifactRef:
        """Call ``writer`` with a temporary directory (it returns the directory's sha256), then
        rename the directory into place."""
        target = self.location(asset, run_id) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}.", suffix=".tmp"))
        try:
            digest = writer(tmp_dir)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp_dir, target)
        finally:
            if tmp_dir.exists():
                shutil.rmtree(tmp_dir)
        return ArtifactRef(uri=_uri(target), sha256=digest)

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        data = ref.path.read_bytes()
        if sha256_bytes(data) != ref.sha256:
            raise ArtifactIntegrityError(
                f"{ref.uri}: sha256 {sha256_bytes(data)} does not match the recorded {ref.sha256}"
            )
        return data

    def verified_path(self, ref: ArtifactRef) -> Path:
        if not ref.path.exists():
            raise ArtifactIntegrityError(f"{ref.uri}: recorded artifact is missing")
        actual = sha256_file(ref.path)
        if actual != ref.sha256:
            raise ArtifactIntegrityError(
                f"{ref.uri}: sha256 {actual} does not match the recorded {ref.sha256}"
            )
        return ref.path

    def local_copy(self, ref: ArtifactRef) -> Path:
        """A local, verified file (or, for a directory artifact such as a bundle, the directory
        whose manifest's sha256 is the recorded one)."""
        if ref.path.is_dir():
            _verify_manifest(ref, ref.path)
            return ref.path
        return self.verified_path(ref)


def _verify_manifest(ref: ArtifactRef, directory: Path) -> None:
    manifest = directory / MANIFEST_FILE
    if not manifest.exists():
        raise ArtifactIntegrityError(f"{ref.uri}: directory artifact has no {MANIFEST_FILE}")
    actual = sha256_file(manifest)
    if actual != ref.sha256:
        raise ArtifactIntegrityError(
            f"{ref.uri}: manifest sha256 {actual} does not match the recorded {ref.sha256}"
        )


class S3ArtifactStore:
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

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        data = self.files.get_bytes(parse_s3_uri(ref.uri))
        if sha256_bytes(data) != ref.sha256:
            raise ArtifactIntegrityError(
                f"{ref.uri}: sha256 {sha256_bytes(data)} does not match the recorded {ref.sha256}"
            )
        return data

    def verified_path(self, ref: ArtifactRef) -> Path:
        location = parse_s3_uri(ref.uri)
        target = self.cache_dir / "artifacts" / ref.sha256 / Path(location.key).name
        if not (target.exists() and sha256_file(target) == ref.sha256):
            self.files.download(location, target)
        actual = sha256_file(target)
        if actual != ref.sha256:
            target.unlink()
            raise ArtifactIntegrityError(
                f"{ref.uri}: sha256 {actual} does not match the recorded {ref.sha256}"
            )
        return target

    def local_copy(self, ref: ArtifactRef) -> Path:
        """A local, verified copy of a file or directory artifact (cached by sha256)."""
        location = parse_s3_uri(ref.uri)
        keys = self.files.list_keys(location)
        if not keys:
            return self.verified_path(ref)
        target = self.cache_dir / "artifacts" / ref.sha256 / Path(location.key).name
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".download-"))
            try:
                base = location.key.rstrip("/") + "/"
                for key in keys:
                    self.files.download(
                        S3Location(location.bucket, key), tmp / key.removeprefix(base)
                    )
                _verify_manifest(ref, tmp)
                try:
                    os.replace(tmp, target)
                except OSError:
                    # Another process cached the same sha256 first; its copy is as good.
                    if not target.is_dir():
                        raise
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp)
        _verify_manifest(ref, target)
        return target
