"""Sentencepiece stage: train or load subword models; encode, decode and the special ids.

The vocabulary *is* the sentencepiece model (no separate vocab file that could disagree).
Models trained here reserve pad=0, unk=1, bos=2, eos=3; a loaded model without a pad piece
gets one extra id after its last piece.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from nmt.config import TokenizerConfig
from nmt.errors import DataError, NmtError
from nmt.run_dir import write_file

JOINT_FILE = "spm.model"
SRC_FILE = "spm.src.model"
TGT_FILE = "spm.tgt.model"


def file_names(joint: bool) -> tuple[str, ...]:
    """The sentencepiece files of a run directory: one joint model, or one per side."""
    return (JOINT_FILE,) if joint else (SRC_FILE, TGT_FILE)


@dataclass(frozen=True)
class Vocab:
    """Special ids and size of one side's vocabulary."""

    size: int
    pad: int
    unk: int
    bos: int
    eos: int


class SideTokenizer:
    """One sentencepiece model: text <-> ids for one language side."""

    def __init__(self, model_proto: bytes, origin: str) -> None:
        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(model_proto)
        except (RuntimeError, OSError) as err:
            raise DataError(f"{origin}: not a valid sentencepiece model ({err}); retrain or fix tokenizer.*model_file") from None
        pieces = self.sp.get_piece_size()
        specials = {"unk": self.sp.unk_id(), "bos": self.sp.bos_id(), "eos": self.sp.eos_id()}
        missing = [name for name, idx in specials.items() if idx < 0]
        if missing:
            raise DataError(
                f"{origin}: sentencepiece model has no {'/'.join(missing)} piece; train it with --bos_id/--eos_id set"
            )
        pad = self.sp.pad_id()
        self.vocab = Vocab(
            size=pieces if pad >= 0 else pieces + 1,
            pad=pad if pad >= 0 else pieces,
            unk=specials["unk"],
            bos=specials["bos"],
            eos=specials["eos"],
        )

    def encode(self, lines: list[str]) -> list[list[int]]:
        """Text lines -> piece ids (no bos/eos added)."""
        return self.sp.encode(lines, out_type=int)

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Piece ids -> detokenized text; special ids are dropped."""
        specials = {self.vocab.pad, self.vocab.bos, self.vocab.eos}
        return self.sp.decode([[i for i in seq if i not in specials] for seq in ids])

    def pieces(self, ids: list[int]) -> list[str]:
        """Piece strings for display (attention plots)."""
        return [self.sp.id_to_piece(i) if i < self.sp.get_piece_size() else "<pad>" for i in ids]


class Tokenizer:
    """Source and target sides; for a joint model both are the same object."""

    def __init__(self, src: SideTokenizer, tgt: SideTokenizer) -> None:
        self.src = src
        self.tgt = tgt

    @property
    def joint(self) -> bool:
        return self.src is self.tgt

    def protos(self) -> dict[str, bytes]:
        """Serialized models, stored in every checkpoint so it rebuilds its own tokenizer."""
        if self.joint:
            return {"joint": self.src.proto}
        return {"src": self.src.proto, "tgt": self.tgt.proto}

    @classmethod
    def from_protos(cls, protos: dict[str, bytes], origin: str) -> Tokenizer:
        if "joint" in protos:
            side = SideTokenizer(protos["joint"], origin)
            return cls(side, side)
        return cls(SideTokenizer(protos["src"], origin), SideTokenizer(protos["tgt"], origin))

    def files(self) -> dict[str, bytes]:
        """The run directory's model files: name -> serialized model."""
        return dict(zip(file_names(self.joint), (self.src.proto,) if self.joint else (self.src.proto, self.tgt.proto)))

    def save(self, run_dir: Path) -> None:
        """Write the model files into the run directory (atomically; identical files are left alone)."""
        for name, proto in self.files().items():
            write_file(run_dir, name, proto)

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> Tokenizer | None:
        if (run_dir / JOINT_FILE).exists():
            side = _load_file(run_dir / JOINT_FILE)
            return cls(side, side)
        if (run_dir / SRC_FILE).exists() and (run_dir / TGT_FILE).exists():
            return cls(_load_file(run_dir / SRC_FILE), _load_file(run_dir / TGT_FILE))
        return None


def build_tokenizer(cfg: TokenizerConfig, src_lines: Iterable[str], tgt_lines: Iterable[str], log) -> Tokenizer:
    """A fresh run's tokenizer: the configured model files, or sentencepiece trained on the data.

    The lines may be streamed (each iterable is read once): sentencepiece keeps only its sample
    of `tokenizer.max_train_sentences` of them (reservoir sampling, in C++).

    Never reuses files left in the run directory by an earlier failed start: they may come from a
    different tokenizer config. (A resumed run takes the copy stored in its checkpoint.)
    """
    if cfg.model_file:
        side = _load_file(Path(cfg.model_file))
        tokenizer = Tokenizer(side, side)
    elif cfg.src_model_file and cfg.tgt_model_file:
        tokenizer = Tokenizer(_load_file(Path(cfg.src_model_file)), _load_file(Path(cfg.tgt_model_file)))
    elif cfg.joint:
        log(f"training joint sentencepiece {cfg.type} model, vocab {cfg.vocab_size}")
        side = SideTokenizer(train_sentencepiece(cfg, itertools.chain(src_lines, tgt_lines)), "trained joint model")
        tokenizer = Tokenizer(side, side)
    else:
        log(f"training source and target sentencepiece {cfg.type} models, vocab {cfg.vocab_size} each")
        tokenizer = Tokenizer(
            SideTokenizer(train_sentencepiece(cfg, src_lines), "trained source model"),
            SideTokenizer(train_sentencepiece(cfg, tgt_lines), "trained target model"),
        )
    return tokenizer


def train_sentencepiece(cfg: TokenizerConfig, lines: Iterable[str]) -> bytes:
    """Train a sentencepiece model in memory and return its serialized proto.

    An error raised while `lines` streams (a corpus that is not UTF-8, say) is raised as it is,
    not as sentencepiece's wrapping of it.
    """
    out = io.BytesIO()
    failed: list[NmtError] = []

    def guarded() -> Iterator[str]:
        try:
            yield from lines
        except NmtError as err:  # ends the input; raised below
            failed.append(err)

    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=guarded(),
            model_writer=out,
            model_type=cfg.type,
            vocab_size=cfg.vocab_size,
            character_coverage=cfg.character_coverage,
            byte_fallback=cfg.byte_fallback,
            input_sentence_size=cfg.max_train_sentences,
            shuffle_input_sentence=True,
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            # Small corpora cannot always fill the requested vocabulary; shrink instead of failing.
            hard_vocab_limit=False,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as err:
        if failed:
            raise failed[0] from None
        raise DataError(f"sentencepiece training failed: {err}; check tokenizer.vocab_size and the training data") from None
    if failed:
        raise failed[0]
    return out.getvalue()


def _load_file(path: Path) -> SideTokenizer:
    try:
        proto = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read sentencepiece model ({err.strerror}); check tokenizer.*model_file") from None
    return SideTokenizer(proto, str(path))
