"""storage.integrity: the one sha256 check, the one atomic write, and both stores using them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abalone_platform.storage.artifacts import ArtifactRef, LocalArtifactStore
from abalone_platform.storage.integrity import (
    MANIFEST_FILE,
    ArtifactIntegrityError,
    atomic_path,
    require_sha256,
    sha256_bytes,
    sha256_file,
    sha256_mismatch,
    verified_bytes,
    verified_file,
    verified_manifest,
)
from abalone_platform_tests.support.s3_server import S3Server, s3_store


class Boom(Exception):
    pass


# --- atomic_path ---------------------------------------------------------------------------


def test_a_file_appears_only_when_the_block_completes(tmp_path: Path) -> None:
    target = tmp_path / "out" / "data.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".data.csv.")
        assert tmp.name.endswith(".tmp")
        tmp.write_text("a,b\n")
        assert not target.exists()
    assert target.read_text() == "a,b\n"
    assert [p.name for p in target.parent.iterdir()] == ["data.csv"]


def test_a_failing_block_leaves_no_temporary_and_no_target(tmp_path: Path) -> None:
    target = tmp_path / "data.csv"
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_or_kept_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "data.csv"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise Boom
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_path(target, durable=True) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_keep_existing_keeps_what_was_published_first(tmp_path: Path) -> None:
    for directory in (False, True):
        target = tmp_path / f"cached-{directory}"
        with atomic_path(target, directory=directory) as tmp:
            (tmp / "f").write_text("first") if directory else tmp.write_text("first")
        with atomic_path(target, directory=directory, keep_existing=True) as tmp:
            (tmp / "f").write_text("second") if directory else tmp.write_text("second")
        assert (target / "f" if directory else target).read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cached-False", "cached-True"]


def test_directories_are_published_whole(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    with atomic_path(target, directory=True) as tmp:
        assert tmp.is_dir() and tmp.name.startswith(".bundle.")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a").write_text("1")
        assert not target.exists()
    assert (target / "sub" / "a").read_text() == "1"

    with pytest.raises(Boom), atomic_path(target, directory=True) as tmp:
        (tmp / "b").write_text("2")
        raise Boom
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]
    assert (target / "sub" / "a").exists() and not (target / "b").exists()

    with atomic_path(target, directory=True, durable=True) as tmp:
        (tmp / "b").write_text("2")
    assert [p.name for p in target.iterdir()] == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


# --- the sha256 check ----------------------------------------------------------------------


def test_require_sha256_words_every_mismatch_the_same_way() -> None:
    require_sha256("abc", "abc", "anywhere")  # a match says nothing
    assert sha256_mismatch("abc", "abc") is None
    with pytest.raises(ArtifactIntegrityError) as caught:
        require_sha256("abc", "def", "s3://b/k")
    assert str(caught.value) == "s3://b/k: sha256 abc does not match the recorded def"
    with pytest.raises(ArtifactIntegrityError) as caught:
        require_sha256("abc", "def", "/m", what="manifest sha256", detail="refusing to load")
    assert (
        str(caught.value)
        == "/m: manifest sha256 abc does not match the recorded def; refusing to load"
    )
    assert sha256_mismatch("abc", "def", against="known") == (
        "sha256 abc does not match the known def"
    )


def test_verified_helpers(tmp_path: Path) -> None:
    data = b"payload"
    digest = sha256_bytes(data)
    assert verified_bytes(data, digest, "x") == data
    with pytest.raises(ArtifactIntegrityError, match="x: sha256 .* does not match the recorded"):
        verified_bytes(b"other", digest, "x")

    path = tmp_path / "f"
    with pytest.raises(ArtifactIntegrityError, match="recorded artifact is missing"):
        verified_file(path, digest)
    path.write_bytes(data)
    assert verified_file(path, digest) == path and sha256_file(path) == digest
    with pytest.raises(ArtifactIntegrityError, match="recorded artifact is not a file"):
        verified_file(tmp_path, digest)

    with pytest.raises(ArtifactIntegrityError, match=f"has no {MANIFEST_FILE}"):
        verified_manifest(tmp_path, digest, "bundle")
    (tmp_path / MANIFEST_FILE).write_bytes(b"{}")
    with pytest.raises(ArtifactIntegrityError, match="bundle: manifest sha256 .* recorded"):
        verified_manifest(tmp_path, digest, "bundle")
    assert verified_manifest(tmp_path, sha256_bytes(b"{}")) == tmp_path


# --- the local store -----------------------------------------------------------------------


def test_a_failing_writer_publishes_nothing(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)

    def writer(path: Path) -> str:
        (path / "x").write_text("partial") if path.is_dir() else path.write_text("partial")
        raise Boom

    with pytest.raises(Boom):
        store.write_with("a", "run", "f.csv", writer)
    with pytest.raises(Boom):
        store.write_directory("a", "run", "bundle", writer)
    assert list(store.location("a", "run").iterdir()) == []


# --- both stores verify the same way -------------------------------------------------------


def _directory_writer(directory: Path) -> str:
    (directory / "model.ubj").write_bytes(b"m")
    manifest = json.dumps({"files": {"model.ubj": sha256_bytes(b"m")}}).encode()
    (directory / MANIFEST_FILE).write_bytes(manifest)
    return sha256_bytes(manifest)


def _failure(call, ref: ArtifactRef) -> str:
    """The error's text with the artifact's URI (where it differs between stores) taken out."""
    with pytest.raises(ArtifactIntegrityError) as caught:
        call(ref)
    message = str(caught.value)
    assert message.startswith(f"{ref.uri}: ")
    return message.removeprefix(ref.uri)


def test_both_stores_refuse_a_tampered_artifact_with_the_same_words(
    bucket, aws_env: S3Server, tmp_path: Path
) -> None:
    local = LocalArtifactStore(tmp_path / "local")
    remote = s3_store(tmp_path, bucket)
    failures: dict[str, list[str]] = {}
    for name, store in (("local", local), ("s3", remote)):
        file_ref = store.write_bytes("a", "run", "f.csv", b"1,2\n")
        dir_ref = store.write_directory("a", "run", "bundle", _directory_writer)
        if store is local:
            file_ref.path.write_bytes(b"1,3\n")
            (dir_ref.path / MANIFEST_FILE).write_bytes(b"{}")
        else:
            client = aws_env.client()
            client.put_object(Bucket=bucket, Key="art/a/run/f.csv", Body=b"1,3\n")
            client.put_object(Bucket=bucket, Key=f"art/a/run/bundle/{MANIFEST_FILE}", Body=b"{}")
        failures[name] = [
            _failure(store.read_bytes, file_ref),
            _failure(store.verified_path, file_ref),
            _failure(store.local_copy, file_ref),
            _failure(store.local_copy, dir_ref),
        ]
    assert failures["local"] == failures["s3"]
    tampered, recorded = sha256_bytes(b"1,3\n"), sha256_bytes(b"1,2\n")
    assert failures["local"][0] == f": sha256 {tampered} does not match the recorded {recorded}"
    assert "manifest sha256" in failures["local"][3]
    # The S3 store never keeps a copy that failed verification in its cache.
    cached = tmp_path / "home" / "cache" / "s3" / "artifacts"
    assert [p for p in cached.rglob("*") if p.is_file() or p.name.endswith(".tmp")] == []
    # The local store leaves the tampered artifact where it is (it is the evidence).
    assert (tmp_path / "local" / "a" / "run" / "f.csv").read_bytes() == b"1,3\n"


def test_a_missing_local_artifact_is_named_as_such(tmp_path: Path) -> None:
    local = LocalArtifactStore(tmp_path / "local")
    ref = local.write_bytes("a", "run", "f.csv", b"1,2\n")
    ref.path.unlink()
    assert _failure(local.verified_path, ref) == ": recorded artifact is missing"
    assert _failure(local.read_bytes, ref) == ": recorded artifact is missing"
