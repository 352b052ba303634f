"""Integrity of artifacts: their sha256, the check against a recorded one, and atomic writes.

Every artifact is addressed by a URI and the sha256 recorded when it was written; whatever reads
it (an artifact store, the bundle loader, the input resolver) checks it here, so a mismatch is
reported the same way everywhere. Files are written to a hidden temporary name beside their
final place and renamed into it (`atomic_path`), so a killed writer never leaves a file that
looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# A directory artifact (a model bundle) is identified by this file's sha256; it lists the sha256
# of every other file in the directory.
MANIFEST_FILE = "manifest.json"


class ArtifactIntegrityError(RuntimeError):
    """An artifact is missing or its bytes are not the ones recorded for it."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sha256_mismatch(
    actual: str, expected: str, *, what: str = "sha256", against: str = "recorded"
) -> str | None:
    """The one wording of a sha256 mismatch (``"sha256 <actual> does not match the recorded
    <expected>"``), or None when ``actual`` is ``expected``. ``against`` names where the
    expected value comes from ("recorded", "manifest's", "known")."""
    if actual == expected:
        return None
    return f"{what} {actual} does not match the {against} {expected}"


def require_sha256(
    actual: str,
    expected: str,
    where: str,
    *,
    what: str = "sha256",
    against: str = "recorded",
    detail: str | None = None,
) -> None:
    """Raise ArtifactIntegrityError unless ``actual`` is the recorded ``expected``; the message
    is ``"<where>: <mismatch>[; <detail>]"``."""
    mismatch = sha256_mismatch(actual, expected, what=what, against=against)
    if mismatch is not None:
        raise ArtifactIntegrityError(f"{where}: {mismatch}" + (f"; {detail}" if detail else ""))


def verified_bytes(data: bytes, expected: str, where: str) -> bytes:
    """``data``, once its sha256 is the recorded one."""
    require_sha256(sha256_bytes(data), expected, where)
    return data


def require_file(path: Path, where: str | None = None) -> Path:
    """``path``, once it is a file; ArtifactIntegrityError (naming ``where``) otherwise."""
    if not path.is_file():
        problem = "is not a file" if path.exists() else "is missing"
        raise ArtifactIntegrityError(f"{where or path}: recorded artifact {problem}")
    return path


def verified_file(path: Path, expected: str, where: str | None = None) -> Path:
    """``path``, once it exists and its sha256 is the recorded one."""
    where = where or str(path)
    require_file(path, where)
    require_sha256(sha256_file(path), expected, where)
    return path


def verified_manifest(directory: Path, expected: str, where: str | None = None) -> Path:
    """``directory`` of a directory artifact, once its manifest's sha256 is the recorded one."""
    where = where or str(directory)
    manifest = directory / MANIFEST_FILE
    if not manifest.is_file():
        raise ArtifactIntegrityError(f"{where}: directory artifact has no {MANIFEST_FILE}")
    require_sha256(sha256_file(manifest), expected, where, what="manifest sha256")
    return directory


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(
    target: Path, *, directory: bool = False, durable: bool = False, keep_existing: bool = False
) -> Iterator[Path]:
    """A temporary file (or, with ``directory``, a directory) beside ``target``, renamed onto it
    when the block completes and removed when it raises (the target is then left as it was).

    The temporary name is hidden (``.<name>.<random>.tmp``), so listings and readers never take
    it for the artifact. An existing target is replaced (a directory is removed first: a re-run
    of the same step replacing its own output); with ``keep_existing`` it is kept and the
    temporary discarded instead (for caches keyed by content, where whoever published first
    published the same bytes). ``durable`` fsyncs the file before the rename and its directory
    after it (for databases; artifacts are re-creatable and skip the cost).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    else:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if durable and not directory:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        if keep_existing and target.exists():
            return
        if directory and target.is_dir():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            # A directory published meanwhile by another process (os.replace refuses to replace
            # a non-empty directory); with keep_existing its copy is as good as ours.
            if not (keep_existing and target.exists()):
                raise
        if durable:
            _fsync_directory(target.parent)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
