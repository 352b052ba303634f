"""Watching a local folder or an s3:// prefix for new or changed data files.

Used by the sensors: `list_location` takes one listing; `plan_tick` turns it and the sensor's
cursor into the objects to process now. The rules:

* Only files directly in the folder / directly under the prefix whose names end in one of
  `suffixes` (default .csv and .data) are considered; names starting with "." or "_" are
  ignored (temporary files, `_SUCCESS`-style markers), so a writer that writes under such a
  name and renames when done is never seen half-written.
* An object's version is its signature: ETag + size in S3, size + mtime for local files.
* Half-written rule: an object is picked up only when its signature is the same on two
  consecutive ticks (stable size across one interval). S3 only lists an object once its upload
  completed, so there this merely costs one interval.
* Each version is processed once: the versions done are kept in the cursor (and the run_key is
  key + signature, which Dagster also deduplicates). A changed object is a new version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abalone_platform.storage.s3 import S3Location, describe_s3_error, parse_s3_uri

DEFAULT_SUFFIXES = (".csv", ".data")


@dataclass(frozen=True)
class WatchedObject:
    uri: str
    name: str
    signature: str
    size: int

    @property
    def run_key(self) -> str:
        return f"{self.uri}@{self.signature}"


class ListingError(RuntimeError):
    """The location could not be listed; the message names it (never credentials)."""


def _wanted(name: str, suffixes: Iterable[str]) -> bool:
    return not name.startswith((".", "_")) and name.lower().endswith(tuple(suffixes))


def list_location(
    location: str,
    s3_client: Callable[[], Any],
    suffixes: Iterable[str] = DEFAULT_SUFFIXES,
) -> list[WatchedObject]:
    """The data files at ``location`` (a folder or s3://bucket/prefix), sorted by URI."""
    suffixes = tuple(s.lower() for s in suffixes)
    if location.startswith("s3://"):
        return _list_s3(location, s3_client, suffixes)
    folder = Path(location.removeprefix("file://")).expanduser()
    if not folder.is_dir():
        raise ListingError(f"{location}: watched folder does not exist")
    found = []
    try:
        for entry in os.scandir(folder):
            if entry.is_file() and _wanted(entry.name, suffixes):
                stat = entry.stat()
                found.append(
                    WatchedObject(
                        uri=str(Path(entry.path).resolve()),
                        name=entry.name,
                        signature=f"{stat.st_size}-{stat.st_mtime_ns}",
                        size=stat.st_size,
                    )
                )
    except OSError as exc:
        raise ListingError(f"{location}: could not list ({exc})") from exc
    return sorted(found, key=lambda o: o.uri)


def _list_s3(
    location: str, s3_client: Callable[[], Any], suffixes: tuple[str, ...]
) -> list[WatchedObject]:
    try:
        prefix = parse_s3_uri(location)
    except ValueError as exc:
        raise ListingError(str(exc)) from exc
    base = prefix.key.rstrip("/") + "/" if prefix.key else ""
    found = []
    try:
        paginator = s3_client().get_paginator("list_objects_v2")
        # Delimiter: only the objects directly under the prefix, like a folder's files.
        for page in paginator.paginate(Bucket=prefix.bucket, Prefix=base, Delimiter="/"):
            for item in page.get("Contents", []):
                name = item["Key"][len(base) :]
                if name and _wanted(name, suffixes):
                    found.append(
                        WatchedObject(
                            uri=S3Location(prefix.bucket, item["Key"]).uri,
                            name=name,
                            signature=f"{item['ETag'].strip(chr(34))}-{item['Size']}",
                            size=int(item["Size"]),
                        )
                    )
    except Exception as exc:  # botocore's errors, a bad endpoint URL, ...
        raise ListingError(f"{location}: {describe_s3_error(exc, location)}") from exc
    return sorted(found, key=lambda o: o.uri)


@dataclass
class WatchState:
    """The cursor: versions already processed, and versions seen once (waiting to be stable)."""

    done: dict[str, str] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> WatchState:
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            return cls(done=dict(data.get("done", {})), seen=dict(data.get("seen", {})))
        except (ValueError, AttributeError, TypeError):
            # A cursor from an older format: start over; run keys still prevent duplicates.
            return cls()

    def to_cursor(self) -> str:
        return json.dumps({"done": self.done, "seen": self.seen}, sort_keys=True)


@dataclass(frozen=True)
class TickPlan:
    ready: list[WatchedObject]
    waiting: list[WatchedObject]
    state: WatchState

    def mark_done(self, objects: Iterable[WatchedObject]) -> WatchState:
        """The cursor after requesting runs for ``objects`` (the rest of ``ready`` stays
        waiting, ready again on the next tick)."""
        done = dict(self.state.done)
        seen = dict(self.state.seen)
        for obj in objects:
            done[obj.uri] = obj.signature
            seen.pop(obj.uri, None)
        return WatchState(done=done, seen=seen)


def plan_tick(state: WatchState, listing: list[WatchedObject]) -> TickPlan:
    """Which listed objects are new, stable versions to process now."""
    ready: list[WatchedObject] = []
    waiting: list[WatchedObject] = []
    seen: dict[str, str] = {}
    for obj in listing:
        if state.done.get(obj.uri) == obj.signature:
            continue
        if state.seen.get(obj.uri) == obj.signature:
            ready.append(obj)
        else:
            waiting.append(obj)
        seen[obj.uri] = obj.signature
    listed = {obj.uri for obj in listing}
    # Forget deleted objects so the cursor stays as small as the location.
    done = {uri: sig for uri, sig in state.done.items() if uri in listed}
    return TickPlan(ready=ready, waiting=waiting, state=WatchState(done=done, seen=seen))
