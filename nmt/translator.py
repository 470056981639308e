"""Translator: raw lines -> tokenize -> length-sorted batches -> search -> detokenize -> input order.

The same object serves `nmt-translate`, `nmt-eval --model` and validation BLEU during training,
so all three decode and detokenize identically. It holds one model or an ensemble: several
models sharing their sentencepiece models, searched as one (see `_step`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from nmt.batching import make_batches, pad_source
from nmt.checkpoint import load_checkpoint, resolve_checkpoint
from nmt.config import Config, DecodeConfig, config_from_dict, validate
from nmt.decoder import AttentionDecoder
from nmt.errors import CheckpointError, ConfigError, brief
from nmt.int8 import int8_decoder
from nmt.model import Seq2Seq
from nmt.search import Hypothesis, beam_search, greedy_search
from nmt.tokenizer import Tokenizer


def check_precision(amp: str, device: torch.device) -> None:
    """Raise ConfigError if `device` cannot search in precision `amp` (decode.amp)."""
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"decode.amp (--amp) fp16 needs a CUDA device, this is {device}; use bf16, int8 or off")
    if amp == "int8" and device.type != "cpu":
        raise ConfigError(f"decode.amp (--amp) int8 is for CPUs, this is {device}; use fp16 or bf16 on a GPU")


@dataclass
class Translation:
    """One input line's result: the n-best hypotheses, best first, detokenized."""

    texts: list[str]  # empty for an empty input line
    hypotheses: list[Hypothesis]
    src_pieces: list[str]  # source pieces as the model saw them, eos included

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


class Translator:
    def __init__(self, model: Seq2Seq | Sequence[Seq2Seq], tokenizer: Tokenizer, config: Config, device: torch.device) -> None:
        """`model`: one model, or the models of an ensemble (all of them use `tokenizer`)."""
        self.models = [m.eval() for m in ([model] if isinstance(model, Seq2Seq) else model)]
        self.tokenizer = tokenizer
        self.config = config
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path | Sequence[str | Path], device: str | None = None) -> Translator:
        """Rebuild model, tokenizer and config from one checkpoint file, or an ensemble from several.

        An ensemble's checkpoints must hold the same source and target sentencepiece models: the
        source is encoded once for all of them and their outputs index one target vocabulary.
        The first checkpoint's config sets the decode defaults and data.max_len.
        """
        paths = [path] if isinstance(path, str | Path) else list(path)
        device_ = _device(device)
        models, configs, tokenizers = [], [], []
        for path_ in paths:
            ckpt = load_checkpoint(path_)
            configs.append(config_from_dict(ckpt["config"], f"{path_} (stored config)"))
            tokenizers.append(Tokenizer.from_protos(ckpt["tokenizer"], str(path_)))
            _check_same_tokenizer(tokenizers[-1], path_, tokenizers[0], paths[0])  # before a mismatch's weights load
            models.append(_load_model(ckpt, configs[-1], tokenizers[-1], path_).to(device_))
        return cls(models, tokenizers[0], configs[0], device_)

    @classmethod
    def from_run_dir(
        cls, run_dir: str | Path | Sequence[str | Path], which: str = "best", device: str | None = None
    ) -> Translator:
        """Load a run directory's best (or last) checkpoint; several run directories: an ensemble."""
        dirs = [run_dir] if isinstance(run_dir, str | Path) else run_dir
        return cls.from_checkpoint([resolve_checkpoint(d, which) for d in dirs], device)

    def decode_config(self, **overrides: Any) -> DecodeConfig:
        """The config's `decode` section with `overrides` (beam_size=..., nbest=...), validated."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(DecodeConfig)})
        if unknown:
            raise ConfigError(f"unknown decode option(s) {', '.join(unknown)}")
        decode = dataclasses.replace(self.config.decode, **{k: v for k, v in overrides.items() if v is not None})
        validate(dataclasses.replace(self.config, decode=decode), "decode options")
        return decode

    def translate(self, lines: list[str], **decode: Any) -> list[str]:
        """Raw lines -> best translation of each (empty line -> empty string)."""
        return [t.text for t in self.translate_detailed(lines, **decode)]

    def translate_detailed(
        self,
        lines: list[str],
        return_attention: bool = False,
        warn: Callable[[str], None] | None = None,
        progress: Callable[[int], None] | None = None,
        source: str = "input",
        first_line: int = 1,
        **decode: Any,
    ) -> list[Translation]:
        """Translate with n-best lists, scores and (optionally) attention; one result per line.

        A line longer than `data.max_len` pieces is truncated (with a warning naming `source` and
        the line, `lines[0]` being line `first_line` of it), not dropped.
        """
        options = self.decode_config(**decode)
        warn = warn or (lambda message: print(message, file=sys.stderr))
        src_ids = self.tokenizer.src.encode(lines)
        limit = self.config.data.max_len
        for number, ids in enumerate(src_ids, start=first_line):
            if len(ids) > limit:
                warn(
                    f"warning: {source}:{number}: {len(ids)} pieces, more than the model's data.max_len; "
                    f"translating its first {limit}"
                )
                src_ids[number - first_line] = ids[:limit]
        hyps = self.search_ids(src_ids, options, return_attention, progress)
        # One decode call for all lines: per line, sentencepiece's batch set-up cost more than the decoding.
        texts = iter(self.tokenizer.tgt.decode([h.tokens for line_hyps in hyps for h in line_hyps]))
        eos_piece = self.tokenizer.src.pieces([self.tokenizer.src.vocab.eos])
        results = []
        for ids, line_hyps in zip(src_ids, hyps):
            for hyp in line_hyps:
                if hyp.attention is not None:  # batch padding -> this sentence's own source length
                    hyp.attention = hyp.attention[:, : len(ids) + 1]
            line_texts = [next(texts) for _ in line_hyps]
            results.append(
                Translation(texts=line_texts, hypotheses=line_hyps, src_pieces=self.tokenizer.src.pieces(ids) + eos_piece)
            )
        return results

    # no_grad, not inference_mode: autocast caches its bf16/fp16 copies of the weights only outside
    # inference mode; inside it every decoder step re-cast every weight (14% of CPU bf16 beam time).
    @torch.no_grad()
    def search_ids(
        self,
        src_ids: list[list[int]],
        options: DecodeConfig,
        return_attention: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Hypothesis]]:
        """Search every source id list (no bos/eos); an empty source gets no hypotheses."""
        budget = max(1, options.max_tokens // options.beam_size)
        decoders = self._search_decoders(options)
        results: list[list[Hypothesis]] = [[] for _ in src_ids]
        todo = [i for i, ids in enumerate(src_ids) if ids]
        costs = [len(src_ids[i]) + 1 for i in todo]
        for batch in make_batches(costs, budget):
            indices = [todo[j] for j in batch]
            found = self._search_batch(decoders, [src_ids[i] for i in indices], options, return_attention)
            for index, hyps in zip(indices, found):
                results[index] = hyps
            if progress is not None:
                progress(len(indices))
        return results

    def _search_decoders(self, options: DecodeConfig) -> list[AttentionDecoder]:
        """The models' decoders, or for int8 search int8 copies of them (made per call: during
        training the weights change between validations). Checks the precision once per search."""
        check_precision(options.amp, self.device)
        return [int8_decoder(m.decoder) if options.amp == "int8" else m.decoder for m in self.models]

    def _search_batch(
        self, decoders: list[AttentionDecoder], seqs: list[list[int]], options: DecodeConfig, return_attention: bool
    ) -> list[list[Hypothesis]]:
        src_vocab, tgt_vocab = self.tokenizer.src.vocab, self.tokenizer.tgt.vocab
        src, src_lens = pad_source(seqs, src_vocab.pad, src_vocab.eos)  # [B, S], [B]
        src = src.to(self.device)
        with self._autocast(options):
            encoded = [model.encode(src, src_lens) for model in self.models]
        states = [(state, memory) for memory, state in encoded]  # per model, as `_step` reads them
        max_lens = (options.max_len_a * (src_lens - 1) + options.max_len_b).long().clamp(min=1).to(self.device)  # [B]
        common = {
            "bos": tgt_vocab.bos,
            "eos": tgt_vocab.eos,
            "max_lens": max_lens,
            "min_len": options.min_len,
            "forbid": () if options.allow_unk else (tgt_vocab.unk,),
            "return_attention": return_attention,
        }
        reorder = partial(_reorder_models, group=options.beam_size)
        step = partial(_step, decoders)
        with self._autocast(options):
            if options.beam_size == 1:
                return [[h] for h in greedy_search(step, reorder, states, **common)]
            return beam_search(
                step,
                reorder,
                states,
                beam_size=options.beam_size,
                nbest=options.nbest,
                alpha=options.length_penalty,
                **common,
            )

    def _autocast(self, options: DecodeConfig):
        """The search's precision: fp32, or autocast to bf16/fp16 (scores and softmax stay fp32);
        int8 search runs what is not int8 in bf16."""
        if options.amp == "off":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.float16 if options.amp == "fp16" else torch.bfloat16)


def _device(name: str | None) -> torch.device:
    """--device as a torch device (default: cuda if available); ConfigError for one this machine lacks."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: no such CUDA GPU on this machine ({torch.cuda.device_count()} found); use cpu")
    return device


def _load_model(ckpt: dict[str, Any], config: Config, tokenizer: Tokenizer, path: str | Path) -> Seq2Seq:
    """The model of a loaded checkpoint, built from its stored config and vocabularies."""
    model = Seq2Seq(config.model, tokenizer.src.vocab, tokenizer.tgt.vocab)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the stored config ({brief(err)})") from None
    return model


def _check_same_tokenizer(tokenizer: Tokenizer, path: str | Path, first: Tokenizer, first_path: str | Path) -> None:
    """CheckpointError unless an ensemble member's sentencepiece models are the first member's, byte for
    byte (a retrained model may cut the same text into other pieces or number them differently)."""
    for side, mine, theirs in (("target", tokenizer.tgt, first.tgt), ("source", tokenizer.src, first.src)):
        if mine.proto != theirs.proto:
            raise CheckpointError(
                f"{path}: its {side} sentencepiece model differs from that of {first_path}; the models of an "
                "ensemble must share theirs (train them all with the same tokenizer.model_file, or "
                "tokenizer.src_model_file and tgt_model_file)"
            )


def _step(decoders: list[AttentionDecoder], prev: torch.Tensor, states: list):
    """One step of each of the M models: prev [N] -> the log of their mean next-token probabilities
    [N, V] (fp32), their next states, and the first model's attention weights [N, S].

    The ensemble's distribution is the mixture (1/M) sum_m p_m, taken in log space as
    logsumexp_m(log p_m) - log M (fairseq's rule). Unlike the mean of the log-probs (a product of
    the models' distributions) it sums to one, so hypothesis scores stay log-probabilities, and a
    token one model rules out is not vetoed when another finds it likely.
    """
    outputs = [decoder.step(prev, dec_state, memory) for decoder, (dec_state, memory) in zip(decoders, states)]
    logits = [out[0] for out in outputs]  # M x [N, V]
    if len(logits) == 1:  # one model: its own log-probs, without the mixture's passes over [N, V]
        log_probs = torch.log_softmax(logits[0], dim=-1, dtype=torch.float32)  # fp32 without a cast pass
    else:
        log_probs = torch.log_softmax(torch.stack(logits), dim=-1, dtype=torch.float32)  # [M, N, V]
        log_probs = log_probs.logsumexp(dim=0) - math.log(len(logits))
    next_states = [(dec_state, memory) for (_, dec_state, _), (_, memory) in zip(outputs, states)]
    return log_probs, next_states, outputs[0][2]


def _reorder_models(states: list, rows: torch.Tensor, group: int) -> list:
    """Select rows [N'] of every model's state (see `_reorder`)."""
    return [_reorder(state, rows, group) for state in states]


def _reorder(state, rows: torch.Tensor, group: int):
    """Select decoder rows [N']; the memory keeps one row per sentence (see AttentionDecoder._attend).

    The search keeps the `group` rows of each sentence together (one in greedy search, the beam in
    beam search), so the first row of each group names its sentence; memory rows are copied only
    when that changes the set of sentences, not at every beam reordering.
    """
    dec_state, memory = state
    sentences = memory.states.size(0)
    if rows.numel() == group * sentences:
        return dec_state.select(rows), memory  # no sentence left (the search never reorders sentences)
    # Rows per sentence before this selection: 1, or `group` once a beam search has made its first step.
    per_sentence = dec_state.att_vec.size(0) // sentences
    return dec_state.select(rows), memory.select(rows[::group] // per_sentence)
