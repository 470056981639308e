"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, write: Callable[[BinaryIO], None], follow_symlinks: bool = False) -> None:
    """Write through `write(handle)` into a temporary file beside `path`, fsync, then rename.

    On any failure (a full disk, a kill signal turned exception) the temporary file is removed
    and `path` keeps its previous content. A symlink at `path` is replaced by the new file,
    unless `follow_symlinks`: then the file it points to is replaced (the temporary file beside
    that one, on its file system) and the link is kept, as a user who named the link expects.
    """
    path = Path(os.path.realpath(path) if follow_symlinks else path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes, follow_symlinks: bool = False) -> None:
    write_atomic(path, lambda handle: handle.write(data), follow_symlinks)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
