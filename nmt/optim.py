"""Optimizer and learning-rate schedule built from the `train` section."""

from __future__ import annotations

import math

import torch

from nmt.config import TrainConfig


def build_optimizer(params, cfg: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    """Adam or AdamW; `fused` uses the single-kernel CUDA implementation."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    extra = {"fused": True} if fused else {}
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **extra)


class LRSchedule:
    """Learning rate = lr x warm-up factor x schedule factor, set on the optimizer every update.

    constant: 1. inverse_sqrt: sqrt(warmup / step) after warm-up (Vaswani et al. 2017).
    linear: 1 over the first 1 - decay_fraction of the training budget, then down to 0 when it is
    used up (progress = the fraction used). decay_fraction 1 decays from the start (Li et al. 2020,
    "Budgeted training"); a short final decay after a constant phase is warmup-stable-decay
    (Hu et al. 2024, "MiniCPM"), and early stopping can start that decay early
    (`start_final_decay`): the stable phase may end whenever validation stalls.
    plateau: multiplied by `plateau_factor` after `plateau_patience` validations without
    improvement of the validation metric, never below `min_lr`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.plateau_scale = 1.0
        self.plateau_best: float | None = None
        self.plateau_bad = 0
        self.progress = 0.0  # budget fraction at the last `set_step`
        self.decay_start: int | None = None  # update after which early stopping began the final decay
        self.decay_steps = 0

    def lr_at(self, step: int, progress: float = 0.0) -> float:
        """Learning rate for update number `step` (1-based), `progress` in [0, 1] of the budget used."""
        cfg = self.cfg
        if cfg.schedule == "linear":
            factor = min(max(1.0 - progress, 0.0) / cfg.decay_fraction, 1.0)
            if self.decay_start is not None:
                factor = min(factor, max(1.0 - (step - 1 - self.decay_start) / self.decay_steps, 0.0))
        elif cfg.schedule == "inverse_sqrt":
            factor = math.sqrt(max(cfg.warmup_steps, 1) / max(step, cfg.warmup_steps, 1))
        elif cfg.schedule == "plateau":
            factor = self.plateau_scale
        else:
            factor = 1.0
        decayed = max(cfg.lr * factor, cfg.min_lr) if factor < 1.0 else cfg.lr
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return decayed * step / cfg.warmup_steps
        return decayed

    def set_step(self, step: int, progress: float = 0.0) -> float:
        self.progress = progress
        lr = self.lr_at(step, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def observe(self, score: float, higher_is_better: bool) -> bool:
        """Record a validation score; returns True when the plateau rule lowered the rate."""
        if self.cfg.schedule != "plateau":
            return False
        better = self.plateau_best is None or (score > self.plateau_best if higher_is_better else score < self.plateau_best)
        if better:
            self.plateau_best, self.plateau_bad = score, 0
            return False
        self.plateau_bad += 1
        if self.plateau_bad < self.cfg.plateau_patience:
            return False
        self.plateau_bad = 0
        self.plateau_scale *= self.cfg.plateau_factor
        return True

    @property
    def ends_with_decay(self) -> bool:
        """True for `linear` with a constant phase: early stopping then ends the run through its decay."""
        return self.cfg.schedule == "linear" and self.cfg.decay_fraction < 1.0

    def start_final_decay(self, step: int) -> int | None:
        """Begin the final decay after update `step`, if the rate is still constant; its length in updates.

        The decay takes decay_fraction of the updates then made (so step / (1 - decay_fraction)
        of them in all, as if the budget had been that long); None when a decay already runs.
        """
        fraction = self.cfg.decay_fraction
        if self.decay_start is not None or self.progress > 1.0 - fraction:
            return None
        self.decay_start, self.decay_steps = step, max(1, round(step * fraction / (1.0 - fraction)))
        return self.decay_steps

    def final_decay_ended(self, step: int) -> bool:
        """True once update `step` was the last of a decay that early stopping began."""
        return self.decay_start is not None and step >= self.decay_start + self.decay_steps

    def state_dict(self) -> dict:
        return {
            "plateau_scale": self.plateau_scale,
            "plateau_best": self.plateau_best,
            "plateau_bad": self.plateau_bad,
            "decay_start": self.decay_start,
            "decay_steps": self.decay_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = state["plateau_scale"]
        self.plateau_best = state["plateau_best"]
        self.plateau_bad = state["plateau_bad"]
        self.decay_start = state.get("decay_start")  # absent in checkpoints of earlier versions
        self.decay_steps = state.get("decay_steps", 0)
