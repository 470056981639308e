"""Which training pairs an epoch holds when `data.train` mixes corpora by weight.

Without weights an epoch holds every kept pair once (the corpora end to end). With weights it
holds as many pairs as all corpora together, split between them in proportion to their weights
(OpenNMT-py's corpus weights, as a ratio): a corpus given more than it holds repeats all its pairs
and adds a random rest, one given less contributes a random subset, a different one each epoch.
The draw depends only on the epoch's generator, seeded by (seed, epoch), so a resumed run rebuilds
its epoch exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def epoch_counts(sizes: Sequence[int], weights: Sequence[float]) -> np.ndarray:
    """[P] int64: pairs each corpus gives an epoch of sum(sizes) pairs, in proportion to `weights`.

    Largest remainders (ties to the earlier corpus), so the counts add up to the epoch exactly.
    """
    total = int(np.sum(sizes, dtype=np.int64))
    share = np.asarray(weights, dtype=np.float64)
    exact = total * (share / share.sum())
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    counts[np.argsort(counts - exact, kind="stable")[:short]] += 1  # largest fractional parts first
    return counts


def epoch_pairs(sizes: Sequence[int], weights: Sequence[float], generator: torch.Generator) -> np.ndarray:
    """[sum(sizes)] int64: the epoch's pairs as indices into the corpora end to end (corpus i's
    pairs start after those of corpora 0..i-1), corpus by corpus; a pair repeated k times appears
    k times. Every corpus needs at least one pair."""
    parts, start = [], 0
    for size, count in zip(sizes, epoch_counts(sizes, weights)):
        repeats, rest = divmod(int(count), int(size))
        drawn = torch.randperm(int(size), generator=generator)[:rest].numpy() if rest else np.zeros(0, dtype=np.int64)
        parts += [np.tile(np.arange(start, start + size, dtype=np.int64), repeats), start + np.sort(drawn)]
        start += int(size)
    return np.concatenate(parts)
