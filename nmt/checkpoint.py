"""Self-describing checkpoints, written atomically; last/best pointers; keep-N pruning.

A checkpoint holds the resolved config and the sentencepiece models besides the weights, so it
rebuilds its own model and tokenizer. `last.pt` and `best.pt` are hard links to a `step_N.pt`
file, replaced by rename only after that file is completely on disk.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from nmt.atomic import write_atomic
from nmt.errors import CheckpointError

FORMAT = "nmt-checkpoint-v1"
CKPT_DIR = "checkpoints"
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def save_checkpoint(run_dir: Path, state: dict[str, Any], step: int, is_best: bool, keep: int) -> Path:
    """Write `state` as checkpoints/step_N.pt, point last (and best) at it, prune old step files."""
    directory = Path(run_dir) / CKPT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:08d}.pt"
    state = {"format": FORMAT, **state}
    try:
        write_atomic(path, lambda handle: torch.save(state, handle))
        _point(directory / "last.pt", path)
        if is_best:
            _point(directory / "best.pt", path)
    except OSError as err:
        raise CheckpointError(
            f"{path}: cannot write checkpoint ({err.strerror or err}); the previous checkpoint is intact; "
            "free disk space or fix permissions, then re-run the same command to resume"
        ) from None
    _prune(directory, keep)
    return path


def _point(pointer: Path, target: Path) -> None:
    """Make `pointer` name the same file as `target`, atomically."""
    tmp = pointer.with_name(f".{pointer.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(target, tmp)
    except OSError:  # file systems without hard links: a full copy, still renamed into place
        shutil.copyfile(target, tmp)
    os.replace(tmp, pointer)


def step_files(directory: Path) -> list[Path]:
    """step_N.pt files, newest first."""
    found = [(int(m.group(1)), p) for p in directory.glob("step_*.pt") if (m := STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def _prune(directory: Path, keep: int) -> None:
    # last/best are hard links, so removing their step file leaves them readable.
    for old in step_files(directory)[keep:]:
        old.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without executing pickled code (weights_only); errors name the file."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as err:  # torch.load raises many types on junk (KeyError, IndexError, UnpicklingError, ...)
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: unreadable or truncated checkpoint ({first}); pass a complete checkpoint written by nmt-train"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nmt checkpoint (no '{FORMAT}' marker); pass a file written by nmt-train")
    return state


def find_latest(run_dir: Path, log) -> dict[str, Any] | None:
    """The newest readable checkpoint of a run (last.pt, else step files newest first), or None."""
    directory = Path(run_dir) / CKPT_DIR
    if not directory.is_dir():
        return None
    candidates = [directory / "last.pt", *step_files(directory)]
    for path in candidates:
        if not path.exists():
            continue
        try:
            return load_checkpoint(path)
        except CheckpointError as err:
            log(f"warning: {err}; trying an older checkpoint")
    return None


def resolve_checkpoint(model: str | Path, prefer: str = "best") -> Path:
    """A checkpoint file from a path that is a file, a run directory or its checkpoints/ folder."""
    path = Path(model)
    if path.is_file():
        return path
    for directory in (path / CKPT_DIR, path):
        for name in (f"{prefer}.pt", "last.pt", "best.pt"):
            if (directory / name).is_file():
                return directory / name
        steps = step_files(directory) if directory.is_dir() else []
        if steps:
            return steps[0]
    raise CheckpointError(f"{path}: no checkpoint found (expected a .pt file or a run directory with checkpoints/)")


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """Element-wise mean of the models in `paths` (same config); other fields from the first.

    Averaging the last few checkpoints of a run usually gains a little BLEU for free
    (Vaswani et al. 2017; Junczys-Dowmunt et al. 2016).
    """
    states = [load_checkpoint(p) for p in paths]
    first = states[0]
    for path, state in zip(paths[1:], states[1:]):
        if state["config"]["model"] != first["config"]["model"] or state["tokenizer"] != first["tokenizer"]:
            raise CheckpointError(f"{path}: a different model or tokenizer than {paths[0]}; average checkpoints of one run")
    averaged = {}
    for name, tensor in first["model"].items():
        if tensor.is_floating_point():
            averaged[name] = sum(s["model"][name].double() for s in states).div(len(states)).to(tensor.dtype)
        else:
            averaged[name] = tensor
    return {
        "format": FORMAT,
        "config": first["config"],
        "tokenizer": first["tokenizer"],
        "model": averaged,
        "averaged_from": [str(p) for p in paths],
        "state": first["state"],
        "scores": {},
    }


def select_checkpoints(run_dir: Path, count: int, by: str) -> list[Path]:
    """The `count` newest step files of a run (`by="last"`), or those with the best validation score."""
    directory = Path(run_dir) / CKPT_DIR
    if not directory.is_dir():
        raise CheckpointError(f"{run_dir}: no {CKPT_DIR}/ folder; pass the run directory of an nmt-train run")
    files = step_files(directory)
    if by == "best":
        ranked = []
        for path in files:
            scores = load_checkpoint(path).get("scores") or {}
            if "value" in scores:
                ranked.append((scores["value"] if scores["higher_is_better"] else -scores["value"], path))
        files = [path for _, path in sorted(ranked, key=lambda item: item[0], reverse=True)]
    if len(files) < count:
        raise CheckpointError(
            f"{run_dir}: only {len(files)} step checkpoints with scores (asked for {count}); raise train.keep_checkpoints for longer runs"
        )
    return files[:count]


def save_averaged(path: Path, state: dict[str, Any]) -> None:
    """Write an averaged checkpoint atomically; never over an existing file."""
    if Path(path).exists():
        raise CheckpointError(f"{path}: already exists; choose another --output")
    try:
        write_atomic(Path(path), lambda handle: torch.save(state, handle))
    except OSError as err:
        raise CheckpointError(
            f"{path}: cannot write ({err.strerror or err}); check the directory exists and is writable"
        ) from None
