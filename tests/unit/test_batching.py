"""Tests for nmt.batching: token-budget batches, deterministic shuffling, and padding."""

from __future__ import annotations

import random

import pytest
import torch

from nmt.batching import Batch, collate, epoch_generator, make_batches, pad_source

PAD, BOS, EOS = 0, 2, 3


def random_costs(seed: int, n: int = 300, low: int = 1, high: int = 40) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("max_tokens", "max_sentences"), [(40, 0), (100, 0), (257, 0), (1000, 0), (1000, 7), (60, 1)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_partition_and_budget(seed, max_tokens, max_sentences, shuffle):
    costs = random_costs(seed)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    batches = make_batches(costs, max_tokens, max_sentences, generator)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(costs))), "every index in exactly one batch"
    for batch in batches:
        assert batch, "no empty batch"
        assert len(batch) * max(costs[i] for i in batch) <= max_tokens
        if max_sentences:
            assert len(batch) <= max_sentences


def test_batches_are_not_needlessly_small():
    # Sorted by length and greedily filled: equal lengths pack exactly to the budget.
    batches = make_batches([10] * 100, max_tokens=100)
    assert [len(b) for b in batches] == [10] * 10


def test_oversized_example_gets_its_own_batch():
    costs = [5, 50, 5, 5]
    batches = make_batches(costs, max_tokens=20)
    assert [1] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
    for batch in batches:
        if batch != [1]:
            assert len(batch) * max(costs[i] for i in batch) <= 20


def test_without_generator_batches_ascend_in_length():
    costs = random_costs(5, n=100)
    batches = make_batches(costs, max_tokens=120)
    longest = [max(costs[i] for i in b) for b in batches]
    assert longest == sorted(longest)
    assert make_batches(costs, max_tokens=120) == batches


def test_batches_group_similar_lengths():
    costs = [1, 30, 2, 29, 1, 30, 2, 29]
    batches = make_batches(costs, max_tokens=60)
    for batch in batches:
        lengths = {costs[i] for i in batch}
        assert max(lengths) - min(lengths) <= 1


def test_same_seed_same_batches():
    costs = random_costs(3)
    first = make_batches(costs, 200, 0, epoch_generator(42, 1))
    second = make_batches(costs, 200, 0, epoch_generator(42, 1))
    assert first == second


def test_different_epoch_different_order():
    costs = random_costs(3)
    one = make_batches(costs, 200, 0, epoch_generator(42, 1))
    two = make_batches(costs, 200, 0, epoch_generator(42, 2))
    assert one != two
    assert sorted(i for b in one for i in b) == sorted(i for b in two for i in b)


def test_different_seed_different_order():
    costs = random_costs(3)
    assert make_batches(costs, 200, 0, epoch_generator(1, 1)) != make_batches(costs, 200, 0, epoch_generator(2, 1))


def test_shuffling_breaks_ties_randomly():
    # All equal lengths: the only difference between epochs is which sentences share a batch.
    costs = [7] * 60
    one = make_batches(costs, 70, 0, epoch_generator(0, 1))
    two = make_batches(costs, 70, 0, epoch_generator(0, 2))
    assert {frozenset(b) for b in one} != {frozenset(b) for b in two}


def test_epoch_generator_is_pure():
    a = torch.randperm(50, generator=epoch_generator(7, 3))
    torch.manual_seed(123)  # the global RNG must not matter
    b = torch.randperm(50, generator=epoch_generator(7, 3))
    assert torch.equal(a, b)


def test_empty_input():
    assert make_batches([], 100) == []
    assert make_batches([], 100, 0, epoch_generator(0, 1)) == []


# ---------------------------------------------------------------------------------------------
# padding


SRC = [[10, 11, 12], [13], [14, 15, 16, 17, 18]]
TGT = [[20, 21], [22, 23, 24, 25], [26]]


def test_pad_source():
    src, lens = pad_source(SRC, PAD, EOS)
    assert src.shape == (3, 6)
    assert lens.tolist() == [4, 2, 6]
    assert src[0].tolist() == [10, 11, 12, EOS, PAD, PAD]
    assert src[1].tolist() == [13, EOS, PAD, PAD, PAD, PAD]
    assert src[2].tolist() == [14, 15, 16, 17, 18, EOS]


def test_collate_shapes_and_contents():
    batch = collate([2, 0], SRC, TGT, PAD, BOS, EOS)
    assert isinstance(batch, Batch)
    assert batch.indices == [2, 0]
    assert batch.size == 2
    assert batch.src.shape == (2, 6)
    assert batch.src_lens.tolist() == [6, 4]
    assert batch.src[1].tolist() == [10, 11, 12, EOS, PAD, PAD]
    assert batch.tgt_in.shape == batch.tgt_out.shape == (2, 3)
    assert batch.tgt_lens.tolist() == [2, 3]
    assert batch.tgt_in[0].tolist() == [BOS, 26, PAD]
    assert batch.tgt_out[0].tolist() == [26, EOS, PAD]
    assert batch.tgt_in[1].tolist() == [BOS, 20, 21]
    assert batch.tgt_out[1].tolist() == [20, 21, EOS]
    assert batch.num_tgt_tokens == 5


def test_collate_invariants_on_random_data():
    rng = random.Random(0)
    src = [[rng.randint(4, 30) for _ in range(rng.randint(0, 9))] for _ in range(20)]
    tgt = [[rng.randint(4, 30) for _ in range(rng.randint(0, 9))] for _ in range(20)]
    indices = list(range(0, 20, 2))
    batch = collate(indices, src, tgt, PAD, BOS, EOS)
    for row, i in enumerate(indices):
        n, m = len(src[i]), len(tgt[i])
        assert batch.src_lens[row] == n + 1
        assert batch.src[row, :n].tolist() == src[i]
        assert batch.src[row, n] == EOS
        assert (batch.src[row, n + 1 :] == PAD).all()
        assert batch.tgt_lens[row] == m + 1
        assert batch.tgt_in[row, 0] == BOS
        assert batch.tgt_in[row, 1 : m + 1].tolist() == tgt[i]
        assert batch.tgt_out[row, :m].tolist() == tgt[i]
        assert batch.tgt_out[row, m] == EOS
        assert (batch.tgt_in[row, m + 1 :] == PAD).all()
        assert (batch.tgt_out[row, m + 1 :] == PAD).all()
        # teacher forcing: the input is the output shifted right by one
        assert batch.tgt_in[row, 1 : m + 1].tolist() == batch.tgt_out[row, :m].tolist()
    assert batch.num_tgt_tokens == int((batch.tgt_out != PAD).sum())
    assert batch.src.size(1) == int(batch.src_lens.max())
    assert batch.tgt_out.size(1) == int(batch.tgt_lens.max())


def test_collate_without_targets():
    batch = collate([0, 1], SRC, None, PAD, BOS, EOS)
    assert batch.tgt_in is None and batch.tgt_out is None
    assert batch.tgt_lens.tolist() == [0, 0]
    assert batch.num_tgt_tokens == 0


def test_collate_dtypes_and_device():
    batch = collate([0], SRC, TGT, PAD, BOS, EOS)
    for tensor in (batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out, batch.tgt_lens):
        assert tensor.dtype == torch.long
    assert batch.to(torch.device("cpu")) is batch
