"""Token-budget batches with length bucketing, and padding them into tensors.

An epoch's batches are a pure function of (seed, epoch), so a resumed run rebuilds exactly the
batch list it was in and skips the batches it had already trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from nmt.data import Corpus
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


def make_batches(
    costs: list[int], max_tokens: int, max_sentences: int = 0, generator: torch.Generator | None = None
) -> list[list[int]]:
    """Group example indices into batches whose padded size stays within `max_tokens`.

    `costs[i]` is example i's padded length (its longest side). Examples are sorted by cost so
    that batch-mates have similar lengths (little padding); with a `generator`, ties are broken
    randomly and the batch order is shuffled, otherwise batches come in ascending length.
    Every index appears in exactly one batch. A batch's size (sentences x longest cost) never
    exceeds `max_tokens`, unless a single example alone is longer than the budget.
    """
    n = len(costs)
    if generator is not None:
        order = torch.randperm(n, generator=generator).tolist()
    else:
        order = list(range(n))
    order.sort(key=costs.__getitem__)  # stable: random order survives among equal lengths
    batches: list[list[int]] = []
    current: list[int] = []
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


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffler for one epoch: depends only on the seed and the epoch number."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def pad_source(seqs: list[list[int]], pad: int, eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source id lists -> ([B, S] ids + eos right-padded, [B] lengths)."""
    lens = torch.tensor([len(s) + 1 for s in seqs], dtype=torch.long)
    src = torch.full((len(seqs), int(lens.max())), pad, dtype=torch.long)
    for row, seq in enumerate(seqs):
        src[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        src[row, len(seq)] = eos
    return src, lens


def collate(
    indices: list[int],
    src_ids: list[list[int]],
    tgt_ids: list[list[int]] | None,
    pad: int,
    bos: int,
    eos: int,
    pin_memory: bool = False,
) -> Batch:
    """Pad the examples at `indices` into a `Batch` (targets optional, for translation)."""
    src, src_lens = pad_source([src_ids[i] for i in indices], pad, eos)
    tgt_in = tgt_out = None
    tgt_lens = torch.zeros(len(indices), dtype=torch.long)
    if tgt_ids is not None:
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
    if pin_memory:
        src = src.pin_memory()
        tgt_in = None if tgt_in is None else tgt_in.pin_memory()
        tgt_out = None if tgt_out is None else tgt_out.pin_memory()
    return Batch(src=src, src_lens=src_lens, tgt_in=tgt_in, tgt_out=tgt_out, tgt_lens=tgt_lens, indices=list(indices))


def corpus_batch(corpus: Corpus, indices: list[int], tokenizer: Tokenizer, device: torch.device) -> Batch:
    """The pairs of `corpus` at `indices`, padded, on `device` (through pinned memory to a GPU)."""
    src, tgt = tokenizer.src.vocab, tokenizer.tgt.vocab
    pin = device.type == "cuda"
    return collate(indices, corpus.src_ids, corpus.tgt_ids, src.pad, tgt.bos, tgt.eos, pin).to(device)
