"""Resolving input_data / batch_data URIs to local files.

Accepted: a local path, file://, https:// (downloaded once into a cache) and s3:// (through
dagster-aws' S3 client, streamed to the cache, re-fetched when its ETag changes). The UCI
abalone file is checked against its known size and sha256 wherever it comes from; anything that
is plainly not CSV text is refused with an error naming its URI.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from abalone_platform.errors import InputDataError
from abalone_platform.storage.files import check_input_file
from abalone_platform.storage.integrity import atomic_path, sha256_file, sha256_mismatch

UCI_ABALONE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/abalone/abalone.data"
UCI_ABALONE_SHA256 = "de37cdcdcaaa50c309d514f248f7c2302a5f1f88c168905eba23fe2fbc78449f"
UCI_ABALONE_BYTES = 191_873
KNOWN_CHECKSUMS = {UCI_ABALONE_URL: (UCI_ABALONE_SHA256, UCI_ABALONE_BYTES)}
DOWNLOAD_TIMEOUT_S = 30
# How much of an input is sniffed to tell a CSV from something else before parsing.
SNIFF_BYTES = 64 << 10


@dataclass(frozen=True)
class ResolvedInput:
    uri: str
    path: Path
    sha256: str
    size: int


def _local_path(uri: str) -> Path | None:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri).expanduser()
    return None


def _cache_path(cache_dir: Path, uri: str) -> Path:
    name = Path(urllib.parse.urlparse(uri).path).name or "data"
    return cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16] / name


def _download_https(uri: str, target: Path, parameter: str, env_hint: str) -> None:
    try:
        with (
            atomic_path(target) as tmp,
            open(tmp, "wb") as out,
            urllib.request.urlopen(uri, timeout=DOWNLOAD_TIMEOUT_S) as response,
        ):
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise InputDataError(
            parameter,
            uri,
            f"could not download ({exc}); without network access, set {env_hint} to a local "
            "copy of the file",
        ) from exc


def _verify_known(uri: str, path: Path, parameter: str) -> None:
    expected_sha, expected_size = KNOWN_CHECKSUMS[uri]
    # The same sha256 means the same size; the sizes are reported as a hint (a truncated copy).
    mismatch = sha256_mismatch(sha256_file(path), expected_sha, against="known")
    if mismatch is not None:
        size = path.stat().st_size
        path.unlink()
        raise InputDataError(
            parameter,
            f"{path} (downloaded from {uri})",
            f"checksum mismatch: {mismatch} ({size:,} bytes, expected {expected_size:,}); the "
            "corrupt copy was removed, run again to re-download",
        )


def sniff_csv(path: Path, uri: str, parameter: str) -> None:
    """Refuse an object that is plainly not CSV text, naming its URI (not the cache path)."""
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if b"\x00" in head:
        raise InputDataError(parameter, uri, "is not a CSV text file (binary content)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is fine; anything earlier is not.
        if exc.start < len(head) - 4:
            raise InputDataError(parameter, uri, "is not a CSV text file (not UTF-8 text)") from exc
        text = head[: exc.start].decode("utf-8")
    line = next((line for line in text.splitlines() if line.strip()), "")
    if line and "," not in line:
        raise InputDataError(
            parameter, uri, f"is not a comma-separated file (first line: {line[:60]!r})"
        )


def resolve_input(
    uri: str,
    parameter: str,
    cache_dir: Path,
    *,
    env_hint: str,
    s3_download: Callable[[str, Path], Path] | None = None,
) -> ResolvedInput:
    """Return a local, readable file for ``uri`` with its sha256; errors name the parameter.

    A local path must be a readable regular file: a directory, FIFO, device or a file without
    read permission is refused with an InputDataError saying which.

    ``s3_download(uri, cache_dir)`` streams an s3:// object into the cache and returns where it
    put it (the cache key includes the object's ETag, so the caller cannot precompute it)."""
    if not uri:
        raise InputDataError(parameter, "<empty>", f"no location given; set {env_hint}")
    local = _local_path(uri)
    scheme = urllib.parse.urlparse(uri).scheme
    if local is not None:
        # Missing, a directory, a FIFO or device (refused from stat alone: opening a FIFO would
        # block), or not readable: each refused by name before anything reads the file.
        check_input_file(local, parameter)
        path = local
    elif scheme in ("http", "https"):
        path = _cache_path(cache_dir, uri)
        if not path.exists():
            _download_https(uri, path, parameter, env_hint)
    elif scheme == "s3":
        if s3_download is None:
            raise InputDataError(parameter, uri, "s3:// URIs need the S3 resource")
        path = s3_download(uri, _cache_path(cache_dir, uri).parent)
    else:
        raise InputDataError(
            parameter,
            uri,
            f"unsupported URI scheme {scheme!r} (use a path, file://, https://, s3://)",
        )
    if uri in KNOWN_CHECKSUMS:
        _verify_known(uri, path, parameter)
    size = path.stat().st_size
    if size == 0:
        raise InputDataError(parameter, str(path) if local else uri, "file is empty")
    sniff_csv(path, uri, parameter)
    return ResolvedInput(uri=uri, path=path, sha256=sha256_file(path), size=size)


def is_local_uri(uri: str) -> bool:
    return _local_path(uri) is not None


def local_input_path(uri: str) -> Path | None:
    """The file a path or file:// URI names (None for https://, s3://), without reading it."""
    return _local_path(uri)


def named_by_uri(error: InputDataError, uri: str) -> InputDataError:
    """Parse errors name the local cached copy of a remote input; a user knows it by its URI."""
    if is_local_uri(uri) or error.location == uri:
        return error
    return InputDataError(
        error.parameter, f"{uri} (cached at {error.location})", error.problem, error.line
    )
