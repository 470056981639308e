"""Tests for nmt.mixing: an epoch's mix of weighted corpora, against a plain reference."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
import torch

from nmt.mixing import epoch_counts, epoch_pairs


def reference_counts(sizes: list[int], weights: list[float]) -> list[int]:
    """Largest remainder apportionment of sum(sizes), written out with fractions of Python floats."""
    total = sum(sizes)
    exact = [total * w / sum(weights) for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


@pytest.mark.parametrize("seed", range(20))
def test_counts_add_up_to_the_epoch_in_proportion_to_the_weights(seed):
    rng = random.Random(seed)
    sizes = [rng.randint(1, 5000) for _ in range(rng.randint(1, 5))]
    weights = [rng.choice([1, 2, 0.5, 3, rng.uniform(0.01, 10)]) for _ in sizes]
    counts = epoch_counts(sizes, weights)
    assert counts.tolist() == reference_counts(sizes, weights)
    assert counts.sum() == sum(sizes)
    for count, weight in zip(counts, weights):
        assert abs(count - sum(sizes) * weight / sum(weights)) < 1


def test_equal_weights_give_equal_shares_whatever_the_sizes():
    assert epoch_counts([1000, 10], [1, 1]).tolist() == [505, 505]
    assert epoch_counts([7], [0.3]).tolist() == [7]


@pytest.mark.parametrize("sizes, weights", [([100, 10], [1, 1]), ([30, 50, 7], [1, 0.2, 5]), ([40], [2.0])])
def test_an_epoch_repeats_each_pair_evenly_and_draws_the_rest_without_replacement(sizes, weights):
    pairs = epoch_pairs(sizes, weights, torch.Generator().manual_seed(3))
    starts = np.cumsum([0, *sizes])
    counts = epoch_counts(sizes, weights)
    seen = Counter(pairs.tolist())
    for i, (size, count) in enumerate(zip(sizes, counts)):
        mine = [seen[k] for k in range(starts[i], starts[i + 1])]
        repeats, rest = divmod(int(count), size)
        assert sum(mine) == count
        assert sorted(mine) == [repeats] * (size - rest) + [repeats + 1] * rest  # no pair drawn twice more
    assert len(pairs) == sum(sizes) and set(seen) <= set(range(sum(sizes)))


def test_the_draw_is_a_function_of_the_generator_and_changes_between_epochs():
    def draw(seed):
        return epoch_pairs([1000, 50], [1, 4], torch.Generator().manual_seed(seed)).tolist()

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)  # corpus 0 gives 210 of its 1000 pairs: another subset each epoch
