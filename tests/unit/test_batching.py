"""Tests for nmt.batching: token-budget batches, deterministic shuffling, and padding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nmt.batching import Batch, BatchList, collate, epoch_generator, make_batches, pad_source

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
        assert len(batch) > 0, "no empty batch"
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
        if batch.tolist() != [1]:
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
# the numpy make_batches gives exactly the batches of the list-based code it replaced


def _reference_make_batches(costs, max_tokens, max_sentences=0, generator=None):
    """The list-based make_batches as it was before the numpy version: the definition of the
    batches (a resumed run rebuilds its epoch's batch list and must get this one exactly)."""
    n = len(costs)
    if generator is not None:
        order = torch.randperm(n, generator=generator).tolist()
    else:
        order = list(range(n))
    order.sort(key=costs.__getitem__)  # stable: random order survives among equal lengths
    batches = []
    current = []
    longest = 0
    for index in order:
        cost = costs[index]
        full = max_sentences and len(current) >= max_sentences
        if current and (full or (len(current) + 1) * max(longest, cost) > max_tokens):
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, cost)
    if current:
        batches.append(current)
    if generator is not None:
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
    return batches


def assert_same_as_reference(costs, max_tokens, max_sentences, seed):
    """Same batches, same order, and the generator left in the same state."""
    generators = [None, None] if seed is None else [torch.Generator().manual_seed(seed) for _ in range(2)]
    expected = _reference_make_batches(list(costs), max_tokens, max_sentences, generators[0])
    got = make_batches(costs, max_tokens, max_sentences, generators[1])
    assert isinstance(got, BatchList)
    assert got.tolist() == expected
    assert len(got) == len(expected)
    assert all(got[k].tolist() == expected[k] for k in range(len(expected)))
    if seed is not None:
        assert torch.equal(generators[0].get_state(), generators[1].get_state())


@pytest.mark.parametrize("trial", range(40))
def test_same_batches_as_reference_on_random_costs(trial):
    rng = random.Random(trial)
    n = rng.choice([1, 2, 3, 10, 57, 300, 2000])
    low = rng.choice([1, 1, 2, 5, 30])
    high = low + rng.choice([0, 1, 3, 20, 99, 400])
    costs = [rng.randint(low, high) for _ in range(n)]
    for max_tokens in (1, low, 60, 257, 1000, 4096, 50000):
        for max_sentences in (0, 1, 3, 64):
            for seed in (None, trial, 1000 + trial):
                assert_same_as_reference(costs, max_tokens, max_sentences, seed)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16, np.uint32, np.int16, np.uint8])
def test_same_batches_from_numpy_costs(dtype):
    rng = np.random.default_rng(7)
    costs = rng.integers(1, 120, size=3000).astype(dtype)
    for seed in (None, 3):
        expected = _reference_make_batches(costs.tolist(), 500, 0, None if seed is None else torch.Generator().manual_seed(seed))
        got = make_batches(costs, 500, 0, None if seed is None else torch.Generator().manual_seed(seed))
        assert got == expected


def test_same_batches_on_news_like_lengths():
    # Long runs of equal costs, a long tail, a budget that does not divide them: the shortcuts
    # for runs of equal costs and for batches that straddle two runs are both taken many times.
    rng = np.random.default_rng(0)
    src = np.clip(np.rint(rng.lognormal(np.log(25), 0.6, 50_000)), 1, 250)
    tgt = np.clip(np.rint(src * rng.lognormal(0, 0.15, 50_000)), 1, 250)
    costs = (np.maximum(src, tgt) + 1).astype(np.int64)
    for max_tokens, max_sentences in ((4096, 0), (2000, 64), (999, 0)):
        assert_same_as_reference(costs, max_tokens, max_sentences, 11)
    assert_same_as_reference(costs, 4096, 0, None)


@pytest.mark.parametrize(
    ("costs", "max_tokens", "max_sentences"),
    [
        ([], 100, 0),
        ([5], 100, 0),
        ([500], 100, 0),  # one example longer than the budget alone
        ([5, 500, 5, 5, 500, 7], 20, 0),
        ([7] * 60, 70, 0),  # all equal: exactly 10 per batch
        ([7] * 61, 70, 0),
        ([7] * 60, 70, 4),
        ([3] * 50, 1, 0),  # every example alone over the budget
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 7, 30, 0),
        ([0, 0, 0, 3, 3], 6, 0),  # zero costs are never over the budget
        ([0, 0, 0], 0, 0),
        ([0, 0, 0], -1, 0),
        ([-2, 5, -1, 3, -2], 6, 0),  # negative costs sort below zero but count as 0
        ([4, 4, 4], 12, -1),  # a negative max_sentences caps every batch at one, as before
        ([2**16 + 5, 2**16 + 5, 3], 2**18, 0),  # costs beyond 16 bits (no radix sort)
    ],
)
def test_same_batches_as_reference_edge_cases(costs, max_tokens, max_sentences):
    for seed in (None, 0, 1):
        assert_same_as_reference(costs, max_tokens, max_sentences, seed)
        assert_same_as_reference(np.array(costs, dtype=np.int64), max_tokens, max_sentences, seed)


def test_rejects_non_integer_costs():
    with pytest.raises(TypeError):
        make_batches(np.array([1.5, 2.0]), 100)


def test_epoch_batches_are_reproducible_after_resume():
    # What the trainer does: rebuild the epoch from (seed, epoch), skip the batches already done.
    costs = np.random.default_rng(1).integers(2, 80, size=5000)
    first = make_batches(costs, 1000, 0, epoch_generator(42, 3))
    again = make_batches(costs, 1000, 0, epoch_generator(42, 3))
    assert first == again
    done, per_update = 17, 4
    group = again[done : done + per_update]
    assert group.tolist() == first.tolist()[done : done + per_update]


# ---------------------------------------------------------------------------------------------
# BatchList behaves like the list of index lists it replaces


def test_batch_list_indexing_and_slicing():
    lists = [[4, 1], [0], [2, 3, 5], [6, 8, 7, 9]]
    batches = BatchList.from_lists(lists)
    assert len(batches) == 4 and bool(batches)
    assert batches[0].tolist() == [4, 1] and batches[-1].tolist() == [6, 8, 7, 9]
    assert isinstance(batches[2], np.ndarray) and batches[2].dtype.kind == "i"
    with pytest.raises(IndexError):
        batches[4]
    with pytest.raises(IndexError):
        batches[-5]
    for a in range(-5, 6):
        for b in range(-5, 6):
            assert batches[a:b].tolist() == lists[a:b]
            assert batches[a:b] == lists[a:b]
            assert len(batches[a:b]) == len(lists[a:b])
    assert batches[::2].tolist() == lists[::2] and batches[::-1].tolist() == lists[::-1]
    # the trainer's slicing of a group, and the empty group of a short last update
    group = batches[1:4]
    assert group[1:3].tolist() == lists[2:4]
    assert group[:1].tolist() == [[0]]
    empty = group[5:7]
    assert len(empty) == 0 and not empty and list(empty) == []
    assert [len(b) for b in group] == [1, 3, 4]
    assert sum(len(b) for b in group) == 8


def test_batch_list_items_index_python_lists():
    # translator.py and validation.py index Python lists with the items, element by element.
    names = [f"s{i}" for i in range(10)]
    batches = make_batches([3, 1, 4, 1, 5, 9, 2, 6, 5, 3], 12)
    picked = [[names[i] for i in indices] for indices in batches]
    assert sorted(x for p in picked for x in p) == sorted(names)
    assert all(isinstance(i, int) for i in batches.tolist()[0])


def test_batch_list_equality_and_membership():
    batches = BatchList.from_lists([[1, 2], [0]])
    assert batches == [[1, 2], [0]]
    assert batches == BatchList.from_lists([[1, 2], [0]])
    assert batches != [[1, 2]]
    assert batches != [[2, 1], [0]]
    assert batches != BatchList.from_lists([[1], [2, 0]])
    assert [0] in batches and [1, 2] in batches
    assert [2] not in batches and [2, 1] not in batches
    assert BatchList.from_lists([]) == []
    assert make_batches([], 10).tolist() == []


def test_batch_list_is_compact():
    costs = np.random.default_rng(2).integers(2, 80, size=10_000).astype(np.uint16)
    batches = make_batches(costs, 1000, 0, epoch_generator(0, 1))
    assert batches.order.dtype == np.int32
    assert batches.order.shape == (10_000,)
    assert batches.bounds[0] == 0 and batches.bounds[-1] == 10_000
    assert np.all(np.diff(batches.bounds) > 0)
    assert np.array_equal(np.sort(batches.order), np.arange(10_000))


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


# ---------------------------------------------------------------------------------------------
# numpy id rows (a memory-mapped store) give the same tensors as lists


def _as_rows(seqs, dtype):
    return [np.asarray(s, dtype=dtype) for s in seqs]


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.int64])
def test_pad_source_numpy_rows_match_lists(dtype):
    rng = random.Random(1)
    seqs = [[rng.randint(4, 60000) for _ in range(rng.randint(0, 12))] for _ in range(30)]
    seqs[3] = []  # an empty row pads to eos alone
    want_src, want_lens = pad_source(seqs, PAD, EOS)
    got_src, got_lens = pad_source(_as_rows(seqs, dtype), PAD, EOS)
    assert torch.equal(want_src, got_src) and torch.equal(want_lens, got_lens)
    assert got_src.dtype == got_lens.dtype == torch.long


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int64])
@pytest.mark.parametrize("with_targets", [True, False])
def test_collate_numpy_rows_and_indices_match_lists(dtype, with_targets):
    rng = random.Random(2)
    src = [[rng.randint(4, 30000) for _ in range(rng.randint(0, 15))] for _ in range(40)]
    tgt = [[rng.randint(4, 30000) for _ in range(rng.randint(0, 15))] for _ in range(40)]
    indices = [rng.randrange(40) for _ in range(17)]
    want = collate(indices, src, tgt if with_targets else None, PAD, BOS, EOS)
    got = collate(
        np.array(indices, dtype=np.int32), _as_rows(src, dtype), _as_rows(tgt, dtype) if with_targets else None, PAD, BOS, EOS
    )
    for name in ("src", "src_lens", "tgt_in", "tgt_out", "tgt_lens"):
        a, b = getattr(want, name), getattr(got, name)
        assert (a is None and b is None) or (torch.equal(a, b) and a.dtype == b.dtype == torch.long), name
    assert got.indices == want.indices == indices
    assert all(type(i) is int for i in got.indices)


def _reference_collate(indices, src_ids, tgt_ids, pad, bos, eos):
    """The row-by-row padding as it was before the vectorized fill."""
    seqs = [src_ids[i] for i in indices]
    src_lens = torch.tensor([len(s) + 1 for s in seqs], dtype=torch.long)
    src = torch.full((len(seqs), int(src_lens.max())), pad, dtype=torch.long)
    for row, seq in enumerate(seqs):
        src[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        src[row, len(seq)] = eos
    tgts = [tgt_ids[i] for i in indices]
    tgt_lens = torch.tensor([len(t) + 1 for t in tgts], dtype=torch.long)
    width = int(tgt_lens.max())
    tgt_in = torch.full((len(tgts), width), pad, dtype=torch.long)
    tgt_out = torch.full((len(tgts), width), pad, dtype=torch.long)
    for row, seq in enumerate(tgts):
        ids = torch.tensor(seq, dtype=torch.long)
        tgt_in[row, 0] = bos
        tgt_in[row, 1 : len(seq) + 1] = ids
        tgt_out[row, : len(seq)] = ids
        tgt_out[row, len(seq)] = eos
    return src, src_lens, tgt_in, tgt_out, tgt_lens


@pytest.mark.parametrize("seed", range(5))
def test_collate_matches_row_by_row_reference(seed):
    rng = random.Random(seed)
    src = [[rng.randint(4, 100) for _ in range(rng.randint(0, 70))] for _ in range(64)]
    tgt = [[rng.randint(4, 100) for _ in range(rng.randint(0, 70))] for _ in range(64)]
    indices = list(range(64))
    rng.shuffle(indices)
    batch = collate(indices, src, tgt, PAD, BOS, EOS)
    got = (batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out, batch.tgt_lens)
    for a, b in zip(_reference_collate(indices, src, tgt, PAD, BOS, EOS), got):
        assert torch.equal(a, b)
