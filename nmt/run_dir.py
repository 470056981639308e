"""The run directory: what nmt-train writes there, and the files it never overwrites.

nmt-train writes only these names in `run_dir`: `config.resolved.yaml`, the sentencepiece model
files, `train.log`, `tensorboard/`, `checkpoints/`, `store/` and `nmt-run.json`, the list of the names it has
written there. A fresh run refuses to start, before it writes anything, when one of those names
is taken by a file nmt did not write (not listed in `nmt-run.json`, and no resumable checkpoint
shows the directory to be an nmt run's), unless that file already holds exactly what nmt would
write (the run's own `tokenizer.model_file`, say). Everything else in the directory, a config
kept there for instance, is never touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nmt.atomic import write_bytes_atomic
from nmt.errors import CheckpointError

MANIFEST = "nmt-run.json"
CONFIG_FILE = "config.resolved.yaml"
LOG_FILE = "train.log"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
STORE = "store"  # the encoded training corpus (nmt.store), unless data.store_dir puts it elsewhere


def prepare(run_dir: Path) -> None:
    """Create `run_dir` (and parents) and check that it is writable; nothing is left behind."""
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: run_dir is an existing file; set run_dir to a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".{MANIFEST}.probe{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CheckpointError(
            f"{run_dir}: run directory is not writable ({err.strerror}); set run_dir to a writable path"
        ) from None


def check_free(run_dir: Path, files: dict[str, bytes | None], resumed: bool) -> None:
    """Refuse to start if a file nmt is about to write in `run_dir` is someone else's.

    `files` maps each name nmt will write to its content where known now (None: not known yet).
    A name counts as nmt's when `nmt-run.json` lists it, or when the run resumes (the directory is
    an nmt run's, possibly from before `nmt-run.json` existed).
    """
    owned = set(files) if resumed else _listed(run_dir)
    foreign = [
        name
        for name, content in files.items()
        if (run_dir / name).exists() and name not in owned and not _holds(run_dir / name, content)
    ]
    if foreign:
        names = ", ".join(foreign)
        raise CheckpointError(
            f"{run_dir}: {names} {'is' if len(foreign) == 1 else 'are'} not nmt-train's, and a new run writes its own "
            f"{names} there; nothing was changed: move {'it' if len(foreign) == 1 else 'them'} out of the run directory "
            "or set another run_dir"
        )


def record(run_dir: Path, names: list[str]) -> None:
    """Add `names` to the run's `nmt-run.json` (before they are written)."""
    listed = _listed(run_dir)
    if listed >= set(names):
        return
    text = json.dumps({"written_by_nmt": sorted(listed | set(names))}, indent=1) + "\n"
    write_bytes_atomic(run_dir / MANIFEST, text.encode())


def write_file(run_dir: Path, name: str, content: bytes) -> None:
    """Write one of nmt's files atomically; a file that already holds `content` is left as it is."""
    if not _holds(run_dir / name, content):
        write_bytes_atomic(run_dir / name, content)


def _listed(run_dir: Path) -> set[str]:
    try:
        names = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))["written_by_nmt"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()  # none yet, or unreadable: claim nothing, so nothing is overwritten by mistake
    return {name for name in names if isinstance(name, str)}


def _holds(path: Path, content: bytes | None) -> bool:
    if content is None or not path.is_file():
        return False
    try:
        return path.stat().st_size == len(content) and path.read_bytes() == content
    except OSError:
        return False
