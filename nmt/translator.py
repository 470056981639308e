"""Translator: raw lines -> tokenize -> length-sorted batches -> search -> detokenize -> input order.

The same object serves `nmt-translate`, `nmt-eval --model` and validation BLEU during training,
so all three decode and detokenize identically.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.batching import make_batches, pad_source
from nmt.checkpoint import load_checkpoint, resolve_checkpoint
from nmt.config import Config, config_from_dict
from nmt.model import Seq2Seq
from nmt.search import Hypothesis, beam_search, greedy_search
from nmt.tokenizer import Tokenizer


@dataclass
class Translation:
    """One input line's result: the n-best hypotheses, best first, detokenized."""

    texts: list[str]
    hypotheses: list[Hypothesis]  # empty for an empty input line
    src_pieces: list[str]


class Translator:
    def __init__(self, model: Seq2Seq, tokenizer: Tokenizer, config: Config, device: torch.device) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None) -> Translator:
        """Rebuild model, tokenizer and config from one checkpoint file."""
        device_ = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        ckpt = load_checkpoint(path)
        config = config_from_dict(ckpt["config"], f"{path} (stored config)")
        tokenizer = Tokenizer.from_protos(ckpt["tokenizer"], str(path))
        model = Seq2Seq(config.model, tokenizer.src.vocab, tokenizer.tgt.vocab)
        model.load_state_dict(ckpt["model"])
        return cls(model.to(device_), tokenizer, config, device_)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, which: str = "best", device: str | None = None) -> Translator:
        """Load a run directory's best (or last) checkpoint."""
        return cls.from_checkpoint(resolve_checkpoint(run_dir, which), device)

    def translate(self, lines: list[str], beam_size: int | None = None, nbest: int = 1, **options) -> list[str]:
        """Raw lines -> best translation of each (empty line -> empty string)."""
        return [t.texts[0] if t.texts else "" for t in self.translate_detailed(lines, beam_size, nbest, **options)]

    def translate_detailed(
        self,
        lines: list[str],
        beam_size: int | None = None,
        nbest: int = 1,
        return_attention: bool = False,
        max_tokens: int | None = None,
        warn: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Translation]:
        """Translate with n-best lists, scores and (optionally) attention; one result per line."""
        warn = warn or (lambda message: print(message, file=sys.stderr))
        src_ids = self.tokenizer.src.encode(lines)
        limit = self.config.data.max_len
        for number, ids in enumerate(src_ids, start=1):
            if len(ids) > limit:
                warn(f"warning: input line {number} has {len(ids)} pieces; translating its first {limit}")
                src_ids[number - 1] = ids[:limit]
        hyps = self.search_ids(src_ids, beam_size, nbest, return_attention, max_tokens, progress)
        results = []
        for ids, line_hyps in zip(src_ids, hyps):
            texts = self.tokenizer.tgt.decode([h.tokens for h in line_hyps])
            results.append(Translation(texts=texts, hypotheses=line_hyps, src_pieces=self.tokenizer.src.pieces(ids)))
        return results

    @torch.inference_mode()
    def search_ids(
        self,
        src_ids: list[list[int]],
        beam_size: int | None = None,
        nbest: int = 1,
        return_attention: bool = False,
        max_tokens: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Hypothesis]]:
        """Search every source id list (no bos/eos); empty sources give no hypotheses."""
        decode = self.config.decode
        beam = beam_size or decode.beam_size
        budget = max(1, (max_tokens or decode.max_tokens) // beam)
        results: list[list[Hypothesis]] = [[] for _ in src_ids]
        todo = [i for i, ids in enumerate(src_ids) if ids]
        costs = [len(src_ids[i]) + 1 for i in todo]
        for batch in make_batches(costs, budget):
            indices = [todo[j] for j in batch]
            for index, hyps in zip(indices, self._search_batch([src_ids[i] for i in indices], beam, nbest, return_attention)):
                results[index] = hyps
            if progress is not None:
                progress(len(indices))
        return results

    def _search_batch(self, seqs: list[list[int]], beam: int, nbest: int, return_attention: bool) -> list[list[Hypothesis]]:
        vocab, decode = self.tokenizer.src.vocab, self.config.decode
        src, src_lens = pad_source(seqs, vocab.pad, vocab.eos)  # [B, S], [B]
        memory, state = self.model.encode(src.to(self.device), src_lens)
        max_lens = (decode.max_len_a * (src_lens - 1) + decode.max_len_b).long().clamp(min=1).to(self.device)  # [B]
        tgt = self.tokenizer.tgt.vocab
        if beam == 1:
            found = greedy_search(
                self._step, _reorder, (state, memory), tgt.bos, tgt.eos, max_lens, return_attention=return_attention
            )
            return [[h] for h in found]
        return beam_search(
            self._step,
            _reorder,
            (state, memory),
            tgt.bos,
            tgt.eos,
            max_lens,
            beam_size=beam,
            nbest=nbest,
            alpha=decode.length_penalty,
            return_attention=return_attention,
        )

    def _step(self, prev: torch.Tensor, state):
        dec_state, memory = state
        logits, dec_state, attn = self.model.decoder.step(prev, dec_state, memory)  # [N, V], [N, S]
        return torch.log_softmax(logits.float(), dim=-1), (dec_state, memory), attn


def _reorder(state, rows: torch.Tensor):
    dec_state, memory = state
    return dec_state.select(rows), memory.select(rows)
