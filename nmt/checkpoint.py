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
from nmt.errors import CheckpointError, brief

FORMAT_FAMILY = "nmt-checkpoint-"
FORMAT = f"{FORMAT_FAMILY}v1"
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


class UnusableCheckpoint(CheckpointError):
    """A checkpoint file nmt cannot use; `kind` says why in a few words (for a run's summary)."""

    def __init__(self, path: Path, kind: str, detail: str, advice: str) -> None:
        super().__init__(f"{path}: {kind}{detail}; {advice}")
        self.path = path
        self.kind = kind


# The checkpoint schema: what every checkpoint holds, and what a training checkpoint adds so that
# a run can resume from it (an averaged checkpoint has only the first part).
FIELDS = {"config": dict, "tokenizer": dict, "model": dict, "state": dict, "scores": dict}
TRAINING_FIELDS = {"optimizer": dict, "schedule": dict, "scaler": dict, "rng": list}
_PASS_ANOTHER = "pass a complete checkpoint written by nmt-train (e.g. another step_N.pt of the run)"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without executing pickled code (weights_only) and check its schema once.

    Every failure is an `UnusableCheckpoint` naming the file: unreadable, not an nmt checkpoint,
    another format version, or fields missing or of the wrong type.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file; pass a .pt file or a run directory") from None
    except Exception as err:  # torch.load raises many types on junk (KeyError, IndexError, UnpicklingError, ...)
        raise UnusableCheckpoint(path, "unreadable or truncated checkpoint", f" ({brief(err)})", _PASS_ANOTHER) from None
    marker = state.get("format") if isinstance(state, dict) else None
    if isinstance(marker, str) and marker.startswith(FORMAT_FAMILY) and marker != FORMAT:
        raise UnusableCheckpoint(
            path,
            f"checkpoint format '{marker}'",
            f" (written by another nmt version; this one reads '{FORMAT}')",
            "use the nmt version that wrote it",
        )
    if marker != FORMAT:
        raise UnusableCheckpoint(path, "not an nmt checkpoint", f" (no '{FORMAT}' marker)", "pass a file written by nmt-train")
    problems = _schema_problems(state, FIELDS)
    if problems:
        raise UnusableCheckpoint(path, "incomplete nmt checkpoint", f" ({problems})", _PASS_ANOTHER)
    return state


def check_resumable(state: dict[str, Any], path: Path) -> None:
    """Raise `UnusableCheckpoint` unless `state` holds what resuming training needs."""
    if "averaged_from" in state:
        raise UnusableCheckpoint(
            path,
            "an averaged checkpoint",
            " (no optimizer or RNG state): training cannot resume from it",
            "translate with it, and keep it outside the run's checkpoints/ folder",
        )
    problems = _schema_problems(state, TRAINING_FIELDS)
    if problems:
        raise UnusableCheckpoint(
            path, "not a training checkpoint", f" ({problems}): training cannot resume from it", _PASS_ANOTHER
        )


def _schema_problems(state: dict[str, Any], fields: dict[str, type]) -> str:
    """'' if `state` has every field of `fields` with its type, else what is missing or wrong."""
    missing = [name for name in fields if name not in state]
    wrong = [f"'{n}' is {type(state[n]).__name__}" for n, kind in fields.items() if n in state and not isinstance(state[n], kind)]
    if fields is FIELDS and not missing and not wrong:
        wrong += _tokenizer_problems(state["tokenizer"]) + _counter_problems(state["state"]) + _score_problems(state["scores"])
    parts = ([f"no {', '.join(repr(m) for m in missing)}"] if missing else []) + wrong
    return "; ".join(parts)


def _tokenizer_problems(protos: dict[str, Any]) -> list[str]:
    sides = ("joint",) if "joint" in protos else ("src", "tgt")
    bad = [side for side in sides if not isinstance(protos.get(side), bytes)]
    return [f"tokenizer has no {'/'.join(bad)} sentencepiece model"] if bad else []


def _counter_problems(counters: dict[str, Any]) -> list[str]:
    step = counters.get("step")
    return [] if isinstance(step, int) and step >= 0 else [f"state.step is {step!r}"]


def _score_problems(scores: dict[str, Any]) -> list[str]:
    """A validation score, where there is one, is a number with its direction (checkpoint selection reads both)."""
    if not scores:
        return []
    if isinstance(scores.get("value"), (int, float)) and isinstance(scores.get("higher_is_better"), bool):
        return []
    return ["scores lack a numeric 'value' with 'higher_is_better'"]


def find_latest(run_dir: Path, log) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint a run can resume from, with its path; None if the run has none.

    Looks at last.pt, the step files newest first, then best.pt, and falls back past files it
    cannot use (logging why). A checkpoints/ folder whose every file is unusable raises
    `CheckpointError` naming what was found: starting over would write over those files.
    """
    directory = Path(run_dir) / CKPT_DIR
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory}: is a file, where nmt keeps a run's checkpoints; move it away or set another run_dir")
    if not directory.is_dir():
        return None
    candidates = [p for p in (directory / "last.pt", *step_files(directory), directory / "best.pt") if p.exists()]
    unusable: dict[str, list[str]] = {}  # kind -> file names
    tried: dict[tuple[int, int], UnusableCheckpoint] = {}  # last/best are hard links: read each file once
    for path in candidates:
        info = path.stat()
        err = tried.get((info.st_dev, info.st_ino))
        if err is None:
            try:
                state = load_checkpoint(path)
                check_resumable(state, path)
                return path, state
            except UnusableCheckpoint as found:
                err = tried[(info.st_dev, info.st_ino)] = found
                log(f"warning: {err}; trying an older checkpoint")
        unusable.setdefault(err.kind, []).append(path.name)
    if not unusable:
        return None
    found = "; ".join(f"{', '.join(names)}: {kind}" for kind, names in unusable.items())
    raise CheckpointError(
        f"{directory}: no checkpoint there can be resumed ({found}); nothing was changed; "
        f"to start over set a new run_dir, or move {directory} away"
    )


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
        if state["config"].get("model") != first["config"].get("model") or state["tokenizer"] != first["tokenizer"]:
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
            scores = load_checkpoint(path)["scores"]
            if scores:
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
