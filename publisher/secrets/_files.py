"""Small file primitives the vault needs to survive a crash at any instant.

Every write goes to a private temporary file in the same directory, is flushed to disk, then
replaces (or, for files that must never be overwritten, is hard-linked onto) its final name,
and the directory entry is flushed too. A process killed at any point leaves either the old
file or the new one, never a mixture. Temporary files are created 0600 (``mkstemp``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (a rename or a new link) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes) -> Path:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600), atomically and durably."""
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data`` (mode 0600), atomically and durably.

    :raises FileExistsError: ``path`` already exists; it is left untouched.
    """
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def replace_durably(source: Path, target: Path) -> None:
    """Rename ``source`` over ``target`` and flush the directory."""
    os.replace(source, target)
    fsync_dir(target.parent)


def remove_durably(path: Path) -> None:
    """Remove ``path`` (if present) and flush the directory."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created 0600) for the block.

    The kernel releases it if the process dies, so a killed writer never leaves the vault locked.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
