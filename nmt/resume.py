"""What a resumed run restores (every RNG stream) and what it must not change (config, tokenizer).

With `train.deterministic` and the same thread count, a run killed at any point and resumed from
its last checkpoint ends with bit-identical parameters on CPU: the data order is a function of
(seed, epoch) and the position in the epoch, and every random stream is saved and restored.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmt.config import Config, config_from_dict
from nmt.errors import CheckpointError, ConfigError
from nmt.tokenizer import Tokenizer

# Keys that fix the model or the data order: a resumed run must not change them.
RESUME_FIXED = (
    "seed",
    "model",
    "tokenizer",
    "data.train",
    "data.max_len",
    "data.max_len_ratio",
    "train.max_tokens",
    "train.max_sentences",
    "train.accumulate_steps",
)
# ... but these may change: they shape the training data of the updates to come, not the model
RESUME_FREE = ("tokenizer.sampling",)


def check_ranks_agree(run_dir: Path, steps: list[int | None]) -> None:
    """Every rank must resume from the same step (`steps`: the newest checkpoint each rank found).

    Each rank reads run_dir itself, so node-local run directories would let some ranks resume
    while others start fresh and silently train different models.
    """
    if len(set(steps)) > 1:
        found = ", ".join(f"rank {rank}: {'none' if step is None else f'step {step}'}" for rank, step in enumerate(steps))
        raise CheckpointError(f"{run_dir}: ranks see different checkpoints ({found}); put run_dir on storage every node can read")


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; optionally ask for deterministic kernels (cuDNN, cuBLAS)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it before its first call
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    """Every random stream training draws from (dropout, scheduled sampling, shuffling helpers)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), state["numpy"]["pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resume_config(stored: dict[str, Any], config: Config, source: str, stored_source: str, log) -> None:
    """Refuse a resume that would change the model or the data order; log harmless changes."""
    old = _flatten(config_from_dict(stored, stored_source).to_dict())
    new = _flatten(config.to_dict())
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        free = key.startswith(RESUME_FREE)
        if not free and any(key == fixed or key.startswith(fixed + ".") for fixed in RESUME_FIXED):
            raise ConfigError(
                f"{source}: key '{key}' is {new.get(key)!r} but run_dir {config.run_dir} was trained with "
                f"{old.get(key)!r}; restore it or use a new run_dir"
            )
        log(f"config change on resume: {key}: {old.get(key)!r} -> {new.get(key)!r}")


def check_resume_tokenizer(stored: Tokenizer, run_dir: Path) -> None:
    """The sentencepiece files in the run directory must be the ones the checkpoint was trained with."""
    on_disk = Tokenizer.from_run_dir(run_dir)
    if on_disk is not None and on_disk.protos() != stored.protos():
        names = ", ".join(f"spm.{side}.model" if side != "joint" else "spm.model" for side in on_disk.protos())
        raise CheckpointError(
            f"{run_dir}: {names} differs from the tokenizer stored in the checkpoint; restore the run's own "
            "sentencepiece files (or delete them: the checkpoint's copy is used) or start a new run_dir"
        )


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
