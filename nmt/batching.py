"""Token-budget batches with length bucketing, and padding them into tensors.

An epoch's batches are a pure function of (seed, epoch), so a resumed run rebuilds exactly the
batch list it was in and skips the batches it had already trained on.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from nmt.config import TokenizerConfig
    from nmt.data import Corpus
    from nmt.store import TrainingCorpus
    from nmt.tokenizer import Tokenizer


@dataclass
class Batch:
    """A padded batch. Shapes: B sentences, S source length, T target length."""

    src: torch.Tensor  # [B, S] piece ids + eos, right-padded
    src_lens: torch.Tensor  # [B] on CPU (pack_padded_sequence wants CPU lengths)
    tgt_in: torch.Tensor | None  # [B, T] bos + piece ids, right-padded
    tgt_out: torch.Tensor | None  # [B, T] piece ids + eos, right-padded
    tgt_lens: torch.Tensor  # [B] on CPU; zeros when there are no targets
    indices: list[int]  # positions of the sentences in the corpus

    @property
    def size(self) -> int:
        return self.src.size(0)

    @property
    def num_tgt_tokens(self) -> int:
        return int(self.tgt_lens.sum())

    def to(self, device: torch.device) -> Batch:
        """Copy to `device`; non-blocking from pinned memory on CUDA."""
        if device.type == "cpu":
            return self
        nb = device.type == "cuda"
        moved = Batch(
            src=self.src.to(device, non_blocking=nb),
            src_lens=self.src_lens,
            tgt_in=None if self.tgt_in is None else self.tgt_in.to(device, non_blocking=nb),
            tgt_out=None if self.tgt_out is None else self.tgt_out.to(device, non_blocking=nb),
            tgt_lens=self.tgt_lens,
            indices=self.indices,
        )
        return moved


class BatchList(Sequence):
    """An epoch's batches as two numpy arrays: `order` (example indices, batch after batch) and
    `bounds` (batch k is `order[bounds[k] : bounds[k + 1]]`).

    It behaves like the list of index lists it replaces: `batches[k]` is batch k's indices (a
    numpy int array, a view), `len(batches)` the number of batches, `batches[a:b]` a `BatchList`
    of those batches (views, no copy), iteration yields the batches in order, and it compares
    equal to a `BatchList` or a list of index lists with the same batches in the same order.
    """

    __slots__ = ("order", "bounds")

    def __init__(self, order: np.ndarray, bounds: np.ndarray):
        self.order = order  # [n] example indices
        self.bounds = bounds  # [num_batches + 1] ascending offsets into `order`, from 0 to n

    @classmethod
    def from_lists(cls, batches: Iterable[Sequence[int]]) -> BatchList:
        """A `BatchList` of index lists (for tests and small callers)."""
        batches = [np.asarray(b, dtype=np.int64).reshape(-1) for b in batches]
        bounds = np.zeros(len(batches) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in batches], out=bounds[1:])
        order = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        return cls(order.astype(_index_dtype(len(order)), copy=False), bounds)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                stop = max(start, stop)
                lo, hi = self.bounds[start], self.bounds[stop]
                return BatchList(self.order[lo:hi], self.bounds[start : stop + 1] - lo)
            return BatchList.from_lists([self[k] for k in range(start, stop, step)])
        k = operator.index(key)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError("batch index out of range")
        return self.order[self.bounds[k] : self.bounds[k + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        order, bounds = self.order, self.bounds.tolist()
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            yield order[lo:hi]

    def __contains__(self, item) -> bool:
        item = np.asarray(item).reshape(-1)
        return any(len(b) == len(item) and np.array_equal(b, item) for b in self)

    def __eq__(self, other) -> bool:
        if isinstance(other, BatchList):
            return np.array_equal(self.bounds, other.bounds) and np.array_equal(self.order, other.order)
        try:
            if len(other) != len(self):
                return False
            return all(len(a) == len(b) and np.array_equal(a, np.asarray(b)) for a, b in zip(self, other))
        except TypeError:
            return NotImplemented

    __hash__ = None  # mutable arrays, like the list it replaces

    def sizes(self) -> np.ndarray:
        """Sentences per batch."""
        return np.diff(self.bounds)

    def tolist(self) -> list[list[int]]:
        """The batches as lists of Python ints."""
        order = self.order.tolist()
        bounds = self.bounds.tolist()
        return [order[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]

    def __repr__(self) -> str:
        return f"BatchList({len(self)} batches, {len(self.order)} examples)"


def _index_dtype(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64


def _sort_key(costs: np.ndarray) -> np.ndarray:
    """`costs` in the narrowest dtype that holds them: numpy's stable sort is a radix sort for
    16-bit keys (linear time) and a timsort otherwise; both are stable, so the order is the same."""
    if len(costs) and costs.dtype.itemsize > 2:
        low, high = int(costs.min()), int(costs.max())
        if 0 <= low and high < 2**16:
            return costs.astype(np.uint16)
        if -(2**15) <= low and high < 2**15:
            return costs.astype(np.int16)
    return costs


def _pack(costs: np.ndarray, max_tokens: int, max_sentences: int) -> np.ndarray:
    """Batch starts of the greedy packing of ascending `costs`, plus len(costs) at the end.

    The greedy rule: a batch takes the next example unless it already has `max_sentences`, or
    (size + 1) x max(longest, cost) would exceed `max_tokens`; the first example always goes in.
    Ascending costs make the batch's longest its newest example, so a batch of k examples from
    s is within budget iff k * costs[s + k - 1] <= max_tokens, which only gets harder as k grows:
    each batch is found by a search, not by walking its examples, and a run of equal costs is
    cut into equal batches at once: the loop runs at most once per batch, and on a large corpus
    (long runs) about twice per distinct cost.
    """
    n = len(costs)
    cap_sentences = max(max_sentences, 1) if max_sentences else n
    run_ends = np.flatnonzero(costs[1:] != costs[:-1]) + 1  # where each run of equal costs ends
    run_ends = np.append(run_ends, n).tolist()
    run = 0
    starts: list[np.ndarray] = []
    s = 0
    while s < n:
        v = int(costs[s])  # the smallest cost left: no batch from s can hold more than budget / v
        k = min(n - s, cap_sentences)
        if v > 0:
            k = min(k, max(max_tokens // v, 1))
        while run_ends[run] <= s:
            run += 1
        run_end = run_ends[run]
        if s + k <= run_end and (k == 1 or k * v <= max_tokens):
            count = (run_end - s) // k  # equal batches of k while the run of cost v lasts
            starts.append(np.arange(s, s + count * k, k, dtype=np.int64))
            s += count * k
            continue
        # The batch reaches past the run: the largest k' <= k with k' * costs[s + k' - 1] in budget.
        sizes = np.arange(1, k + 1, dtype=np.int64)
        fits = sizes * costs[s : s + k].astype(np.int64) <= max_tokens  # True, ..., True, False, ...
        fits[0] = True
        starts.append(np.array([s], dtype=np.int64))
        s += int(np.count_nonzero(fits))
    starts.append(np.array([n], dtype=np.int64))
    return np.concatenate(starts)


def make_batches(
    costs: Sequence[int] | np.ndarray,
    max_tokens: int,
    max_sentences: int = 0,
    generator: torch.Generator | None = None,
) -> BatchList:
    """Group example indices into batches whose padded size stays within `max_tokens`.

    `costs[i]` is example i's padded length (its longest side): a list or a numpy integer array.
    Examples are sorted by cost so that batch-mates have similar lengths (little padding); with a
    `generator`, ties are broken randomly and the batch order is shuffled, otherwise batches come
    in ascending length. Every index appears in exactly one batch. A batch's size (sentences x
    longest cost) never exceeds `max_tokens`, unless a single example alone is longer than the
    budget. The result is a pure function of (costs, budgets, generator state): the same batches
    as the list-based version this replaced, so a resumed run rebuilds its epoch exactly.
    """
    costs = np.asarray(costs)
    if costs.ndim != 1:
        costs = costs.reshape(-1)
    n = len(costs)
    if n == 0:
        costs = costs.astype(np.int64)
    elif not np.issubdtype(costs.dtype, np.integer):
        raise TypeError(f"make_batches: costs must be integers, not {costs.dtype}")
    index_dtype = _index_dtype(n)
    key = _sort_key(costs)
    if generator is not None:
        perm = torch.randperm(n, generator=generator).numpy().astype(index_dtype)
        order = perm[np.argsort(key[perm], kind="stable")]  # stable: random order survives among equal costs
        del perm
    else:
        order = np.argsort(key, kind="stable").astype(index_dtype)
    if key.dtype == np.uint16:  # the sorted costs without a random gather: each value, as often as it occurs
        sorted_costs = np.repeat(np.arange(int(key.max()) + 1, dtype=np.uint16), np.bincount(key))
    else:
        sorted_costs = np.maximum(key[order], 0)  # the greedy rule's running longest starts at 0
    del key
    bounds = _pack(sorted_costs, math.floor(max_tokens), int(max_sentences))
    del sorted_costs
    if generator is not None:
        shuffled = torch.randperm(len(bounds) - 1, generator=generator).numpy()
        sizes = np.diff(bounds).astype(index_dtype)[shuffled]
        new_bounds = np.zeros_like(bounds)
        np.cumsum(sizes, out=new_bounds[1:])
        # position p of new batch j is old position bounds[shuffled[j]] + (p - new_bounds[j])
        source = np.repeat((bounds[:-1][shuffled] - new_bounds[:-1]).astype(index_dtype), sizes)
        source += np.arange(n, dtype=index_dtype)
        order = order[source]
        del source
        bounds = new_bounds
    return BatchList(order, bounds)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffler for one epoch: depends only on the seed and the epoch number."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _flatten(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Id sequences (lists, or numpy rows of a memory-mapped store) -> (all ids end to end, lengths)."""
    lens = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    total = int(lens.sum())
    if seqs and isinstance(seqs[0], np.ndarray):
        flat = np.concatenate(seqs).astype(np.int64, copy=False) if total else np.zeros(0, dtype=np.int64)
    else:
        flat = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64, count=total)
    return flat, lens


def _fill(flat: np.ndarray, lens: np.ndarray, width: int, pad: int, offset: int) -> np.ndarray:
    """[B, width] `pad`, with row r's ids (`lens[r]` of `flat`, in order) from column `offset`."""
    out = np.full((len(lens), width), pad, dtype=np.int64)
    columns = np.arange(width - offset)
    out[:, offset:][columns < lens[:, None]] = flat  # a boolean mask fills row after row
    return out


def pad_source(seqs: Sequence[Sequence[int]], pad: int, eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source id sequences (lists or numpy int arrays) -> ([B, S] ids + eos right-padded, [B] lengths)."""
    flat, lens = _flatten(seqs)
    width = int(lens.max()) + 1 if len(lens) else 0
    src = _fill(flat, lens, width, pad, 0)
    src[np.arange(len(lens)), lens] = eos
    return torch.from_numpy(src), torch.from_numpy(lens + 1)


def collate(
    indices: Sequence[int],
    src_ids: Sequence[Sequence[int]],
    tgt_ids: Sequence[Sequence[int]] | None,
    pad: int,
    bos: int,
    eos: int,
    pin_memory: bool = False,
) -> Batch:
    """Pad the examples at `indices` into a `Batch` (targets optional, for translation).

    `indices` is a list or a numpy int array; `src_ids[i]` / `tgt_ids[i]` are lists of ids or
    numpy int arrays (any integer dtype). Both give the same tensors.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1).tolist()
    src, src_lens = pad_source([src_ids[i] for i in indices], pad, eos)
    tgt_in = tgt_out = None
    tgt_lens = torch.zeros(len(indices), dtype=torch.long)
    if tgt_ids is not None:
        flat, lens = _flatten([tgt_ids[i] for i in indices])
        width = int(lens.max()) + 1 if len(lens) else 0
        rows = np.arange(len(lens))
        out = _fill(flat, lens, width, pad, 0)
        out[rows, lens] = eos
        inp = _fill(flat, lens, width, pad, 1)
        inp[:, 0] = bos
        tgt_in, tgt_out, tgt_lens = torch.from_numpy(inp), torch.from_numpy(out), torch.from_numpy(lens + 1)
    if pin_memory:
        src = src.pin_memory()
        tgt_in = None if tgt_in is None else tgt_in.pin_memory()
        tgt_out = None if tgt_out is None else tgt_out.pin_memory()
    return Batch(src=src, src_lens=src_lens, tgt_in=tgt_in, tgt_out=tgt_out, tgt_lens=tgt_lens, indices=indices)


def corpus_batch(corpus: Corpus, indices: Sequence[int], tokenizer: Tokenizer, device: torch.device) -> Batch:
    """The pairs of `corpus` at `indices`, padded, on `device` (through pinned memory to a GPU)."""
    src, tgt = tokenizer.src.vocab, tokenizer.tgt.vocab
    pin = device.type == "cuda"
    return collate(indices, corpus.src_ids, corpus.tgt_ids, src.pad, tgt.bos, tgt.eos, pin).to(device)


def sampled_batch(
    corpus: TrainingCorpus, indices: Sequence[int], tokenizer: Tokenizer, cfg: TokenizerConfig, seed: int, device: torch.device
) -> Batch:
    """The pairs at `indices` segmented afresh by sentencepiece's sampling (`tokenizer.sampling`),
    padded, on `device`; `seed` (see `sampling_seed`) fixes the draw. The batch's `indices` are
    its own rows, 0..B-1."""
    alpha, nbest = cfg.sampling_alpha, cfg.sampling_nbest
    src = tokenizer.src.sample(corpus.lines("src", indices), alpha, nbest, 2 * seed)
    tgt = tokenizer.tgt.sample(corpus.lines("tgt", indices), alpha, nbest, 2 * seed + 1)
    pin = device.type == "cuda"
    vocab = tokenizer.tgt.vocab
    return collate(range(len(src)), src, tgt, tokenizer.src.vocab.pad, vocab.bos, vocab.eos, pin).to(device)


def sampling_seed(seed: int, epoch: int, position: int) -> int:
    """The sentencepiece seed of the batch at `position` of `epoch`: the same on every rank and on resume."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0] >> 1)  # 2 * seed + 1 < 2**32
