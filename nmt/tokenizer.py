"""Sentencepiece stage: train or load subword models; encode, decode and the special ids.

The vocabulary *is* the sentencepiece model (no separate vocab file that could disagree).
Models trained here reserve pad=0, unk=1, bos=2, eos=3; a loaded model without a pad piece
gets one extra id after its last piece.
"""

from __future__ import annotations

import collections
import functools
import io
import itertools
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
        self.proto, self.origin = model_proto, origin
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

    @functools.cached_property
    def model_type(self) -> str:
        """'unigram', 'bpe', 'word' or 'char' (from the model's trainer spec); 'unknown' if unreadable."""
        try:
            return _model_type(self.proto)
        except (ValueError, IndexError):  # sentencepiece loaded it, this small reader could not
            return "unknown"

    def sample(self, lines: list[str], alpha: float, nbest: int, seed: int) -> list[list[int]]:
        """Text lines -> one sampled segmentation each (subword regularization; no bos/eos), a
        function of the lines and `seed`: unigram sampling (`alpha` smoothing, `nbest` candidates,
        0 all) or BPE-dropout (`alpha` the drop probability; `nbest` unused).

        sentencepiece draws from one random generator per thread, seeded from its global seed
        when the thread first samples; so the draw runs in a new thread once the seed is set,
        and a resumed run draws the very same pieces.
        """
        out: list = []

        def draw() -> None:
            try:
                out.append(
                    self.sp.encode(lines, out_type=int, enable_sampling=True, alpha=alpha, nbest_size=nbest or -1, num_threads=1)
                )
            except BaseException as err:  # raised in the caller's thread below
                out.append(err)

        spm.set_random_generator_seed(seed)
        thread = threading.Thread(target=draw, name="nmt-sampling")
        thread.start()
        thread.join()
        if isinstance(out[0], BaseException):
            raise out[0]
        return out[0]

    @functools.cached_property
    def word_cache(self) -> WordCache | None:
        """The exact word-cache encoder where this model allows one (see WordCache)."""
        return WordCache.for_model(self.sp, self.proto)

    def encode_flat(self, lines: list[str], dtype) -> tuple[np.ndarray, np.ndarray]:
        """`encode` in the store's layout: int64 piece count per line, and all ids concatenated as `dtype`."""
        if self.word_cache is None:
            ids = self.encode(lines)  # sentencepiece encodes a batch on all cores
            counts = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flat = itertools.chain.from_iterable(ids)
        else:
            counts, flat = self.word_cache.encode(lines)
            counts = np.asarray(counts, dtype=np.int64)
        return counts, np.fromiter(flat, dtype=dtype, count=int(counts.sum()))

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

    def encode_corpus(self, chunks: Iterable[tuple[list[str], list[str]]], dtype) -> Iterator[tuple[int, list]]:
        """Per chunk of pairs, in order: its size and `encode_flat` of its source and target lines.

        The word cache is a Python loop on one core, so with it the chunks go to one worker
        process per core; without it sentencepiece's own threads use the cores.
        """
        workers = min(_cores(), _MAX_WORKERS)
        forks = "fork" in multiprocessing.get_all_start_methods()
        if workers > 1 and forks and self.src.word_cache is not None and self.tgt.word_cache is not None:
            yield from _encode_in_workers(self, chunks, dtype, workers)
            return
        for chunk in chunks:
            yield len(chunk[0]), [side.encode_flat(lines, dtype) for side, lines in zip((self.src, self.tgt), chunk)]

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


def _encode_in_workers(tokenizer: Tokenizer, chunks: Iterable, dtype, workers: int) -> Iterator[tuple[int, list]]:
    """`Tokenizer.encode_corpus` in worker processes. A chunk is two tasks (its sides): about one task a
    worker runs while one more chunk waits, so memory stays flat.

    Forked, not spawned: a spawned worker imports the parent's main script again (a script without
    a `__main__` guard would run again), and the workers inherit the tokenizer instead of loading it.
    """
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(tokenizer,))
    pool.submit(int)  # forks the workers now: the pages of a chunk read before would stay in their memory
    pending: collections.deque[tuple[int, list[Future]]] = collections.deque()
    try:
        for chunk in chunks:
            futures = [pool.submit(_encode_side, side, lines, dtype) for side, lines in zip(("src", "tgt"), chunk)]
            pending.append((len(chunk[0]), futures))
            if len(pending) > workers // 2:
                yield _done(*pending.popleft())
        while pending:
            yield _done(*pending.popleft())
    except BrokenProcessPool:
        raise DataError("a corpus encoding worker process died (out of memory?); nothing was stored; re-run") from None
    finally:
        pool.shutdown(cancel_futures=True)


def _cores() -> int:
    """The cores this process may run on (`taskset`, cgroup cpusets), where the OS says."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_MAX_WORKERS = 8  # more would wait for the one process that reads the corpus, each with its own cache
_WORKER: list[Tokenizer] = []  # the tokenizer of an encoding worker process


def _start_worker(tokenizer: Tokenizer) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool
    _WORKER.append(tokenizer)


def _encode_side(side: str, lines: list[str], dtype) -> tuple[np.ndarray, np.ndarray]:
    return getattr(_WORKER[0], side).encode_flat(lines, dtype)


def _done(pairs: int, futures: list[Future]) -> tuple[int, list]:
    return pairs, [future.result() for future in futures]


MARK = "\u2581"  # sentencepiece's whitespace marker
_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}  # TrainerSpec.model_type (unigram when unset)
_WORD_CACHE_SIZE = 1 << 18  # distinct words kept (tens of MB); the cache starts afresh when full
# A NormalizerSpec that changes nothing: name "identity", no character map, no dummy prefix, no
# whitespace removal or escaping (fields 1-5).
_IDENTITY_SPEC = b"\x0a\x08identity\x12\x00\x18\x00\x20\x00\x28\x00"


class WordCache:
    """`sp.encode`, id for id, for BPE models whose pieces hold the whitespace marker only first.

    Natural text repeats its words, so encoding each distinct word once and joining the cached
    ids is about twice as fast per core as sentencepiece on whole lines. Why the ids are the same
    (sentencepiece 0.2: sentencepiece_processor.cc, normalizer.cc, bpe_model.cc):
    - Encode normalizes the whole line, then runs the model on the normalized text. Here the
      whole line is normalized by sentencepiece itself, so everything that depends on context
      (rules that span spaces, NFKC turning a character into a space, removal of extra
      whitespace, the dummy prefix) is already done; the text is split before each marker.
    - BPE merges two neighbouring symbols only if their concatenation is a piece. No piece holds
      the marker after its first character, so no merge crosses the marker that starts a word:
      each word's merges are the same alone, in the same order (score, then position).
    - Each word is encoded by a copy of the model whose normalizer is the identity, so the model
      sees the very same bytes; ids, byte fallback and user-defined symbols are per piece.
    - Runs of unknown pieces are merged into one id; each word starts with the marker, a known
      piece, so no run spans two words. Unused pieces are refused: their resegmentation table is
      shared by the whole line.
    Unigram models are refused: their Viterbi adds float scores along the whole line, so a near
    tie inside a word can fall the other way after a long prefix (one line of Multi30k's 116,000
    does, with an 8k or a 16k model).
    """

    def __init__(self, sp: spm.SentencePieceProcessor, plain: spm.SentencePieceProcessor) -> None:
        self.normalize = sp.normalize
        self.plain = plain
        self.words: dict[str, tuple[int, ...]] = {}

    @classmethod
    def for_model(cls, sp: spm.SentencePieceProcessor, proto: bytes) -> WordCache | None:
        """The cache for this model, or None where whole lines must go to sentencepiece."""
        try:
            if not (_model_type(proto) == "bpe" and _marker_starts_pieces(sp)):
                return None
            plain = spm.SentencePieceProcessor()
            plain.LoadFromSerializedProto(_identity_normalizer(proto))
        except (ValueError, IndexError, RuntimeError, OSError):  # a proto this reader or sentencepiece cannot take
            return None
        return cls(sp, plain)

    def encode(self, lines: list[str]) -> tuple[list[int], list[int]]:
        """The piece count of each line, and all their ids concatenated."""
        counts: list[int] = []
        flat: list[int] = []
        words = self.words
        for line in lines:
            start = len(flat)
            head, *rest = self.normalize(line).split(MARK)
            if head:  # text before the first marker: no dummy prefix
                flat += self.plain.encode(head, out_type=int)
            for word in rest:
                ids = words.get(word)
                flat += self._add(word) if ids is None else ids
            counts.append(len(flat) - start)
        return counts, flat

    def _add(self, word: str) -> tuple[int, ...]:
        if len(self.words) >= _WORD_CACHE_SIZE:
            self.words.clear()
        ids = self.words[word] = tuple(self.plain.encode(MARK + word, out_type=int))
        return ids


def _marker_starts_pieces(sp: spm.SentencePieceProcessor) -> bool:
    """The marker is a known piece, no piece holds it after its first character, no piece is unused."""
    marker = sp.piece_to_id(MARK)
    if sp.id_to_piece(marker) != MARK or sp.is_control(marker) or sp.is_byte(marker):
        return False
    return not any(MARK in sp.id_to_piece(i)[1:] or sp.is_unused(i) for i in range(sp.get_piece_size()))


def _model_type(proto: bytes) -> str:
    # Repeated occurrences of a message field merge, and the last scalar wins, as protobuf parses.
    trainer = b"".join(value for field, value, _ in _proto_fields(proto) if field == 2)
    types = [value for field, value, _ in _proto_fields(trainer) if field == 3]
    return _MODEL_TYPES.get(types[-1] if types else 1, "unknown")


def _identity_normalizer(proto: bytes) -> bytes:
    """The model with an identity normalizer and no self-test (which expects normalization)."""
    kept = b"".join(raw for field, _, raw in _proto_fields(proto) if field not in (3, 4))
    return kept + bytes([3 << 3 | 2, len(_IDENTITY_SPEC)]) + _IDENTITY_SPEC


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes, bytes]]:
    """(field number, value, raw bytes) of each field of a serialized protobuf message."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            value, pos = buf[pos : pos + (8 if wire == 1 else 4)], pos + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("protobuf message cut short")
        yield key >> 3, value, buf[start:pos]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos
