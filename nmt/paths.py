"""The files a command reads and writes, checked before it starts: no output may replace an input.

Every path is resolved the way the operating system will open it: symlinks, `./` and `..` are
followed, and a hard link is the same file as its other names (same device and inode). An output
naming an input of the same command, or two outputs naming one file, is refused with one line
naming both options, before any model loads and before anything is written. So are outputs that
could never be written (an existing directory, a missing or read-only parent directory), which
would otherwise fail only after the work is done.

Not checked, since writing through them replaces nothing: '-' (stdout, which only one output
may name), existing files that are not regular files (/dev/null, a FIFO, a terminal) and the
descriptor links /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N (`write_through` says
which outputs those are). An empty path and an output ending in '/' are refused.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from nmt.errors import NmtError

STDIO = "-"
_DESCRIPTOR = re.compile(r"^/(dev/(stdout|stderr|fd/\d+)|proc/(self|\d+)/fd/\d+)$")

Paths = Mapping[str, "str | Path | Sequence[str | Path] | None"]


def is_descriptor_link(path: str | Path) -> bool:
    """/dev/stdout, /dev/stderr, /dev/fd/N or /proc/self/fd/N: an open descriptor, not a file name."""
    return bool(_DESCRIPTOR.match(os.path.abspath(path)))


def write_through(path: str | Path) -> bool:
    """Whether an output is written into as it is (a device, FIFO, descriptor link), not replaced."""
    if is_descriptor_link(path):
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # missing (a new file) or unreachable: the atomic write reports it
        return False


def checkpoint_files(model: str | Path) -> list[Path]:
    """The checkpoint files `--model` may load, found without torch: the file, or a run
    directory's (or checkpoints/ folder's) .pt files."""
    path = Path(model)
    if path.is_file():
        return [path]
    found = []
    for directory in (path / "checkpoints", path):
        if directory.is_dir():
            found += sorted(p for p in directory.glob("*.pt") if p.is_file())
    return found


def check_paths(inputs: Paths, outputs: Paths) -> None:
    """Refuse (NmtError) an output that names an input or another output, or cannot be written.

    `inputs` and `outputs` map an option ('--input') to its path, a list of paths or None (not
    given); the input '-' is stdin, checked through the file it was redirected from.
    """
    seen: list[tuple[tuple, str, str, bool]] = []  # (identity, option, path as given, is output)
    for option, path in _entries(inputs) + _entries(outputs):
        if not path:
            raise NmtError(f"{option} is an empty path; give a file")
    stdout_option = None
    for option, path in _entries(inputs):
        identity = _stdin_identity() if path == STDIO else _identity(path)
        if identity is not None and identity[0] != "new":  # a missing input: its reader says so
            seen.append((identity, option, path, False))
    for option, path in _entries(outputs):
        if path == STDIO:
            if stdout_option is not None:
                raise NmtError(f"{option} - and {stdout_option} - both write to standard output; give one of them a file")
            stdout_option = option
            continue
        if is_descriptor_link(path):
            continue
        if path.endswith(("/", os.sep)):
            raise NmtError(f"{option} {path} ends in '/', so it names a directory; give the path of a file to write")
        _check_writable(option, path)
        identity = _identity(path)
        if identity is None:
            continue
        same = [entry for entry in seen if entry[0] == identity]
        if same:  # name the entry spelled like this output if there is one (hard links have several names)
            real = os.path.realpath(path)
            _, other_option, other_path, other_is_output = next(
                (entry for entry in same if entry[2] != STDIO and os.path.realpath(entry[2]) == real), same[0]
            )
            shown = "standard input (--input -)" if other_path == STDIO else f"{other_option} {other_path}"
            what = "give each output its own file" if other_is_output else "write to another file"
            raise NmtError(f"{option} {path} is the same file as {shown}; {what}")
        seen.append((identity, option, path, True))


def _entries(paths: Paths) -> list[tuple[str, str]]:
    entries = []
    for option, value in paths.items():
        if value is None:
            continue
        for path in [value] if isinstance(value, str | Path) else value:
            entries.append((option, str(path)))
    return entries


def _identity(path: str) -> tuple | None:
    """What makes two names one file: (device, inode) of an existing regular file, the real path
    of one not yet there; None for what writing cannot replace (a device, FIFO, directory)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return ("new", os.path.realpath(path))
    except OSError:  # a parent that is a file, no permission: the reader or writer says so
        return None
    return ("file", info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def _stdin_identity() -> tuple | None:
    try:
        info = os.fstat(0)
    except OSError:  # no stdin at all
        return None
    return ("file", info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def _check_writable(option: str, path: str) -> None:
    real = Path(os.path.realpath(path))  # a symlinked output replaces the file it points to
    if real.is_dir():
        raise NmtError(f"{option} {path} is a directory; give the path of a file to write")
    parent = real.parent
    if not parent.exists():
        problem = "does not exist"
    elif not parent.is_dir():
        problem = "is not a directory"
    elif not os.access(parent, os.W_OK | os.X_OK):
        problem = "is not writable"
    else:
        return
    given = os.path.dirname(path) or "."
    shown = given if Path(os.path.realpath(given)) == parent else str(parent)  # a symlink's target's directory
    raise NmtError(f"{option} {path}: cannot write (directory {shown} {problem}); check the directory exists and is writable")
