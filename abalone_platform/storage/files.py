"""Checks on a local input file before anything reads it: it exists, is a regular file (not a
FIFO or a device, which would block or never end) and may be opened; errors name the parameter."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from abalone_platform.errors import InputDataError

_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_readable(parameter: str, location: str, exc: OSError) -> InputDataError:
    if isinstance(exc, PermissionError):
        return InputDataError(parameter, location, "is not readable (permission denied)")
    return InputDataError(parameter, location, f"could not be read ({exc.strerror or exc})")


def stat_input_file(path: Path, parameter: str, location: str | None = None) -> os.stat_result:
    """``os.stat`` of an input that must be a regular file, refused clearly otherwise.

    Only stat, never open: opening a FIFO blocks until something writes to it, and a device
    reads as an endless or an empty stream; both must be refused before anything opens them.
    """
    location = location or str(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InputDataError(parameter, location, "file does not exist") from None
    except OSError as exc:  # e.g. a parent directory that may not be searched
        raise _not_readable(parameter, location, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        raise InputDataError(parameter, location, "is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "a special file")
        raise InputDataError(parameter, location, f"is not a regular file ({kind})")
    return info


def open_input_file(
    path: Path, parameter: str, location: str | None = None, *, text: bool = False
) -> IO:
    """Open a (stat-checked) input for reading; a permission error names the parameter.

    Text mode keeps undecodable bytes as surrogates (an error names their line) and leaves line
    ends alone, so \\r, \\n and \\r\\n all end a line, as they do for Arrow's parser.
    """
    try:
        if text:
            return open(path, encoding="utf-8", errors="surrogateescape", newline="")
        return open(path, "rb")
    except OSError as exc:
        raise _not_readable(parameter, location or str(path), exc) from exc


def check_input_file(path: Path, parameter: str, location: str | None = None) -> os.stat_result:
    """Refuse an input that is missing, not a regular file or not readable, before reading it."""
    info = stat_input_file(path, parameter, location)
    # Permission bits do not tell (root reads anything; ACLs, read-only mounts): try to open.
    open_input_file(path, parameter, location).close()
    return info
