"""Training statistics between two log lines: summed on the device, read and reduced over ranks
only when logged, then written as TensorBoard scalars and one `train.log` line."""

from __future__ import annotations

import math
import time
from typing import Any

from nmt.distributed import Distributed


class StatsWindow:
    """Training statistics since the last log line; device values are read only when logged."""

    def __init__(self) -> None:
        self.loss = self.nll = self.grad_norm = self.overflows = 0.0
        self.tokens = self.updates = 0
        self.start = time.perf_counter()

    def add(self, stats: dict[str, Any]) -> None:
        self.loss = self.loss + stats["loss"]
        self.nll = self.nll + stats["nll"]
        self.grad_norm = self.grad_norm + stats["grad_norm"]
        self.overflows = self.overflows + stats["overflow"]
        self.tokens += stats["tokens"]
        self.updates += 1

    def postfix(self, lr: float) -> dict[str, str]:
        """The progress bar's numbers (this rank, no device sync beyond the token count)."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return {"lr": f"{lr:.1e}", "tok/s": f"{self.tokens / elapsed:.0f}"}

    def summary(self, dist: Distributed) -> dict[str, float]:
        """Loss and perplexity per target token and tokens/s over all ranks; tokens/s of this rank."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        loss, nll, tokens = dist.sum([float(self.loss), float(self.nll), float(self.tokens)])
        nll /= max(tokens, 1)
        return {
            "loss": loss / max(tokens, 1),
            "ppl": math.exp(min(nll, 100.0)),
            "grad_norm": float(self.grad_norm) / max(self.updates, 1),
            "tokens_per_s": tokens / elapsed,
            "rank_tokens_per_s": self.tokens / elapsed,
            "overflows": float(self.overflows),
        }


def train_scalars(stats: dict[str, float], lr: float) -> dict[str, float]:
    """TensorBoard tags of a window's summary."""
    return {
        "train/loss": stats["loss"],
        "train/ppl": stats["ppl"],
        "train/lr": lr,
        "train/grad_norm": stats["grad_norm"],
        "train/tgt_tokens_per_s": stats["tokens_per_s"],
    }


def train_line(stats: dict[str, float], step: int, epoch: int, lr: float, ranks: bool, peak_mib: float | None) -> str:
    """The `train.log` line of a window's summary; `ranks`: add rank 0's own tokens/s."""
    return (
        f"step {step} epoch {epoch}: loss {stats['loss']:.3f} ppl {stats['ppl']:.2f} "
        f"lr {lr:.2e} grad_norm {stats['grad_norm']:.2f} {stats['tokens_per_s']:.0f} tgt tok/s"
        + (f" ({stats['rank_tokens_per_s']:.0f} on rank 0)" if ranks else "")
        + (f", peak GPU memory {peak_mib:.0f} MiB" if peak_mib is not None else "")
        + (f"; {stats['overflows']:.0f} overflowing fp16 steps skipped by the GradScaler" if stats["overflows"] else "")
    )
