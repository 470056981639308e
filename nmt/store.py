"""The encoded corpus store: a training corpus tokenized once into memory-mapped id arrays.

One directory per (corpus, tokenizer) fingerprint, under `data.store_dir` (default RUN_DIR/store):

    meta.json                   format, fingerprint, what it was built from, pairs, id width
    src.ids, tgt.ids            every pair's piece ids, concatenated (uint16 while the vocabulary fits)
    src.offsets, tgt.offsets    int64 [N+1]: pair i's ids are ids[offsets[i]:offsets[i+1]]
    src.text, src.text_offsets  (with tokenizer.sampling only) the UTF-8 text of every line, and
    tgt.text, tgt.text_offsets  its offsets: sampling encodes each batch again from its text

Plain numpy files, memory-mapped when training opens them: the pages are page cache the kernel
can drop and share between ranks and runs, not process memory, and opening takes milliseconds.
The store holds every pair of the corpus (filters run on its length arrays at load), so changing
`data.max_len` does not rebuild it. A store is built into a temporary directory beside its final
name and renamed into place once complete and fsynced: a build killed at any point is never read,
and the next start rebuilds it.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from nmt.batching import BatchList, epoch_generator, make_batches
from nmt.config import CorpusConfig, DataConfig
from nmt.data import FilterReport, filter_pairs, iter_corpus, load_hf
from nmt.errors import DataError
from nmt.mixing import epoch_pairs

if TYPE_CHECKING:
    from nmt.tokenizer import Tokenizer

STORE_FORMAT = "nmt-store-v1"
SIDES = ("src", "tgt")
META = "meta.json"
_SAMPLE = 1 << 20  # bytes hashed at each end of a corpus file


@dataclass(frozen=True)
class CorpusStore:
    """An opened store: `ids(side, i)` reads pair i's ids of one side ('src', 'tgt') from the mapped file."""

    path: Path
    size: int  # pairs
    offsets: dict[str, np.ndarray]  # side -> int64 [N+1], memory-mapped
    data: dict[str, np.ndarray]  # side -> uint16/uint32 [total ids], memory-mapped
    text_offsets: dict[str, np.ndarray]  # side -> int64 [N+1] into `text`; empty without the text
    text: dict[str, np.ndarray]  # side -> uint8 [total bytes] UTF-8 lines, memory-mapped

    @classmethod
    def open(cls, path: Path) -> CorpusStore:
        meta = _read_meta(path)
        if meta is None:
            raise DataError(f"{path}: not a complete corpus store; delete it and re-run to rebuild it")
        dtype = np.dtype(meta["dtype"])
        offsets = {side: _map(path / f"{side}.offsets", np.int64) for side in SIDES}
        data = {side: _map(path / f"{side}.ids", dtype) for side in SIDES}
        sides = SIDES if meta.get("text") else ()
        text_offsets = {side: _map(path / f"{side}.text_offsets", np.int64) for side in sides}
        text = {side: _map(path / f"{side}.text", np.uint8) for side in sides}
        return cls(path=path, size=meta["pairs"], offsets=offsets, data=data, text_offsets=text_offsets, text=text)

    def lengths(self, side: str) -> np.ndarray:
        """[N] int32 piece counts of one side (held in memory: 4 bytes a pair)."""
        return np.diff(self.offsets[side]).astype(np.int32)

    def ids(self, side: str, index: int) -> np.ndarray:
        """Pair `index`'s piece ids of one side (no bos/eos), a view of the mapped file."""
        start, end = self.offsets[side][index : index + 2]
        return self.data[side][start:end]

    def line(self, side: str, index: int) -> str:
        """Pair `index`'s text of one side (a store built with its text)."""
        start, end = self.text_offsets[side][index : index + 2]
        return self.text[side][start:end].tobytes().decode("utf-8")


@dataclass(frozen=True)
class TrainingCorpus:
    """The training pairs the length filters keep, over the stores of the `data.train` corpora.

    Pair k is row `rows[k]` of the store of corpus i, where starts[i] <= k < starts[i + 1] (the
    corpora end to end). Held in memory: three small arrays (about 16 bytes a pair); the ids stay in
    the mapped stores. `src_ids[k]` / `tgt_ids[k]` read pair k's ids, as `Corpus` lists do.
    """

    stores: tuple[CorpusStore, ...]
    starts: tuple[int, ...]  # [P + 1] each corpus's first pair, then the total
    rows: np.ndarray  # [N] int64 store rows
    src_lens: np.ndarray  # [N] int32 pieces
    tgt_lens: np.ndarray  # [N] int32 pieces
    weights: tuple[float, ...] | None  # each corpus's share of an epoch (nmt.mixing); None: every pair once

    @classmethod
    def filtered(cls, stores: Sequence[CorpusStore], data: DataConfig) -> tuple[TrainingCorpus, list[FilterReport]]:
        """The pairs of each store that `data.max_len` / `max_len_ratio` keep; one report per corpus."""
        kept, reports = [], []
        for store in stores:
            src, tgt = store.lengths("src"), store.lengths("tgt")
            rows, report = filter_pairs(src, tgt, data.max_len, data.max_len_ratio)
            kept.append((np.asarray(rows, dtype=np.int64), src[rows], tgt[rows]))
            reports.append(report)
        starts = tuple(int(x) for x in np.cumsum([0] + [len(rows) for rows, _, _ in kept]))
        rows, src_lens, tgt_lens = (np.concatenate(arrays) for arrays in zip(*kept))
        given = [corpus.weight for corpus in data.train]
        weights = None if given[0] is None else tuple(given)
        return cls(tuple(stores), starts, rows, src_lens, tgt_lens, weights), reports

    @property
    def size(self) -> int:
        return len(self.rows)

    def sizes(self) -> list[int]:
        """Kept pairs of each corpus."""
        return [end - start for start, end in zip(self.starts, self.starts[1:])]

    def costs(self) -> np.ndarray:
        """[N] padded batch cost of each pair: its longer side plus eos (bos)."""
        return np.maximum(self.src_lens, self.tgt_lens) + 1

    def epoch_batches(self, seed: int, epoch: int, max_tokens: int, max_sentences: int) -> BatchList:
        """The epoch's batches of pairs (indices k of this corpus): a function of (seed, epoch) alone,
        so a resumed run rebuilds them exactly. Mixed by weight, the epoch holds the draw of
        nmt.mixing (a pair may come more than once); otherwise every pair once."""
        generator = epoch_generator(seed, epoch)
        if self.weights is None:
            return make_batches(self.costs(), max_tokens, max_sentences, generator)
        pairs = epoch_pairs(self.sizes(), self.weights, generator)
        batches = make_batches(self.costs()[pairs], max_tokens, max_sentences, generator)
        return BatchList(pairs[batches.order], batches.bounds)

    def store_of(self, index: int) -> CorpusStore:
        """The store pair `index` is in."""
        return self.stores[bisect.bisect_right(self.starts, index) - 1]

    def lines(self, side: str, indices: Sequence[int]) -> list[str]:
        """The text of one side of the pairs at `indices` (stores built with their text)."""
        return [self.store_of(int(k)).line(side, int(self.rows[k])) for k in indices]

    @property
    def src_ids(self) -> _Side:
        return _Side(self, "src")

    @property
    def tgt_ids(self) -> _Side:
        return _Side(self, "tgt")


@dataclass(frozen=True)
class _Side:
    corpus: TrainingCorpus
    side: str

    def __getitem__(self, index: int) -> np.ndarray:
        return self.corpus.store_of(index).ids(self.side, int(self.corpus.rows[index]))

    def __len__(self) -> int:
        return self.corpus.size


def _map(path: Path, dtype: np.dtype) -> np.ndarray:
    if path.stat().st_size == 0:  # np.memmap cannot map an empty file
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def ensure_store(corpus: CorpusConfig, name: str, tokenizer: Tokenizer, root: Path, log, text: bool = False) -> Path:
    """The store of `corpus` encoded with `tokenizer` under `root`: found, or built now (rank 0 only).

    Its name holds the fingerprint of the corpus (each file's path, size, modification time and a
    hash of its first and last MiB; a dataset's own fingerprint) and of the tokenizer, so a changed
    corpus or tokenizer gets a new store (the log says why) and an unchanged one is reused.
    With `text` the store also keeps every line's text (for tokenizer.sampling): another store.
    """
    sources, key, path = _locate(corpus, name, tokenizer, root, text)
    meta = _read_meta(path)
    damage = _damage(path, meta) if meta is not None else None
    if meta is not None and damage is None:
        log(f"{name}: using the encoded corpus store {path}")
        return path
    why = f"the store there is damaged ({damage})" if damage else _why_build(root, name, sources, key)
    log(f"{name}: {why}: encoding it into {path}")
    _remove_stale_builds(root, path)
    if path.exists():  # damaged, or a directory of that name that is not a store
        _discard(path)
    meta = {"format": STORE_FORMAT, "fingerprint": key, "sources": sources, "text": text}
    _build(corpus, name, tokenizer, path, meta, log)
    return path


def find_store(corpus: CorpusConfig, name: str, tokenizer: Tokenizer, root: Path, text: bool = False) -> Path:
    """The store `ensure_store` made for this corpus and tokenizer (on ranks that wait for it to be built)."""
    path = _locate(corpus, name, tokenizer, root, text)[2]
    if _read_meta(path) is None:
        raise DataError(
            f"{path}: the encoded store of {name} is not there; its node's first rank builds it: "
            "give every rank of a node the same data.store_dir"
        )
    return path


def _locate(corpus: CorpusConfig, name: str, tokenizer: Tokenizer, root: Path, text: bool) -> tuple[list[dict], str, Path]:
    """What the store is built from, its fingerprint and its directory."""
    sources = _sources(corpus, name)
    key = _fingerprint(sources, tokenizer, text)
    return sources, key, root / f"{name}-{key[:16]}"


def return_freed_memory() -> None:
    """Hand the heap freed by sentencepiece training and encoding back to the OS.

    glibc keeps freed memory in its arenas (sentencepiece's threads have their own) for reuse;
    after a large corpus that is hundreds of MB the training process would otherwise hold for
    the whole run. A no-op where the C library has no malloc_trim.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _sources(corpus: CorpusConfig, name: str) -> list[dict]:
    """What the store is built from: each file's identity, or the dataset's fingerprint."""
    if corpus.dataset is not None:
        ds = load_hf(corpus, name)
        fields = [corpus.src_field, corpus.tgt_field]
        return [{"dataset": corpus.dataset, "config": corpus.dataset_config, "split": corpus.split, "fields": fields,
                 "fingerprint": getattr(ds, "_fingerprint", None), "rows": len(ds)}]  # fmt: skip
    return [_file_identity(Path(path), name) for path in (corpus.src, corpus.tgt)]


def _file_identity(path: Path, name: str) -> dict:
    try:
        info = path.stat()
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            digest.update(handle.read(_SAMPLE))
            if info.st_size > 2 * _SAMPLE:
                handle.seek(-_SAMPLE, os.SEEK_END)
            digest.update(handle.read(_SAMPLE))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the data paths in the config (or run `make data`)") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror}); check {name}.src/tgt") from None
    return {"path": os.path.realpath(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns, "sample": digest.hexdigest()}


def _fingerprint(sources: list[dict], tokenizer: Tokenizer, text: bool) -> str:
    # without the text: the same key as before the text existed, so older stores stay valid
    digest = hashlib.sha256(json.dumps([STORE_FORMAT, sources, *(["text"] if text else [])], sort_keys=True).encode())
    for side, proto in sorted(tokenizer.protos().items()):
        digest.update(side.encode() + hashlib.sha256(proto).digest())
    return digest.hexdigest()


def _why_build(root: Path, name: str, sources: list[dict], key: str) -> str:
    """For the log: why there is no usable store (first build, or what changed since the last one)."""
    others = [meta for p in sorted(root.glob(f"{name}-*")) if (meta := _read_meta(p)) is not None]
    if not others:
        return "no encoded store yet"
    newest = max(others, key=lambda meta: meta.get("built", 0))
    changed = [new.get("path", new.get("dataset")) for old, new in zip(newest["sources"], sources) if old != new]
    if changed:
        return f"{', '.join(map(str, changed))} changed since the store {newest['fingerprint'][:16]} was built"
    return f"the tokenizer differs from the one store {newest['fingerprint'][:16]} was encoded with"


def _build_dir(path: Path) -> Path:
    """Where this process builds `path`: named by host and pid, so that the builders of several
    nodes sharing one data.store_dir never take each other's directory for a killed build's."""
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def _remove_stale_builds(root: Path, path: Path) -> None:
    """Temporary directories of this host's builds that were killed (their process is gone) are removed."""
    mine = _build_dir(path).name.rsplit("-", 1)[0] + "-"
    for tmp in root.glob(f"{mine}*"):
        pid = tmp.name[len(mine) :]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            shutil.rmtree(tmp, ignore_errors=True)


def _build(corpus: CorpusConfig, name: str, tokenizer: Tokenizer, path: Path, meta: dict, log) -> None:
    tmp = _build_dir(path)
    sides = {"src": tokenizer.src, "tgt": tokenizer.tgt}
    dtype = np.uint16 if max(side.vocab.size for side in sides.values()) <= 1 << 16 else np.uint32
    started = time.monotonic()
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        lengths: dict[str, list[np.ndarray]] = {side: [] for side in sides}
        text_lengths: dict[str, list[np.ndarray]] = {side: [] for side in sides}
        names = [f"{side}.ids" for side in sides] + ([f"{side}.text" for side in sides] if meta["text"] else [])
        handles = {name: open(tmp / name, "wb") for name in names}
        try:
            chunks = iter_corpus(corpus, name, log)
            if meta["text"]:
                chunks = _with_text_written(chunks, handles, text_lengths)
            with tqdm(desc=f"encoding {name}", unit=" pairs", unit_scale=True, mininterval=1.0, disable=None) as bar:
                for pairs, encoded in tokenizer.encode_corpus(chunks, dtype):
                    for side, (counts, ids) in zip(sides, encoded):
                        ids.tofile(handles[f"{side}.ids"])
                        lengths[side].append(counts)
                    bar.update(pairs)
            for handle in handles.values():
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            for handle in handles.values():
                handle.close()
        pairs = sum(map(len, lengths["src"]))  # the same for both sides: iter_corpus checked it
        for side in sides:
            _write_offsets(tmp / f"{side}.offsets", lengths[side], pairs)
            if meta["text"]:
                _write_offsets(tmp / f"{side}.text_offsets", text_lengths[side], pairs)
        meta = {**meta, "pairs": pairs, "dtype": np.dtype(dtype).name, "built": time.time()}
        (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
        _publish(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{tmp}: cannot write the encoded corpus store ({err.strerror or err}); free disk space or set "
            "data.store_dir to a writable directory; nothing else was changed"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.monotonic() - started
    log(
        f"{name}: encoded {pairs:,} pairs in {seconds:.0f} s ({pairs / max(seconds, 1e-9):,.0f} pairs/s), {np.dtype(dtype).name} ids"
    )


def _publish(tmp: Path, path: Path) -> None:
    """Rename the finished build into place; if another node's builder got there first (a shared
    data.store_dir), its complete store is as good: keep it and drop this copy."""
    try:
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or _read_meta(path) is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _with_text_written(chunks, handles: dict, lengths: dict[str, list[np.ndarray]]):
    """The chunks of (source lines, target lines), unchanged, each side's UTF-8 text written on the way."""
    for chunk in chunks:
        for side, lines in zip(SIDES, chunk):
            data = [line.encode("utf-8") for line in lines]
            handles[f"{side}.text"].write(b"".join(data))
            lengths[side].append(np.fromiter(map(len, data), dtype=np.int64, count=len(data)))
        yield chunk


def _write_offsets(path: Path, lengths: list[np.ndarray], pairs: int) -> None:
    """int64 [pairs + 1]: 0, then the running sum of the lengths."""
    offsets = np.zeros(pairs + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    _write_array(path, offsets)


def _write_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        array.tofile(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _damage(path: Path, meta: dict) -> str | None:
    """What is wrong with a store whose meta.json is complete (files cut short, say), or None."""
    width = np.dtype(meta.get("dtype", "uint16")).itemsize
    arrays = [(f"{side}.offsets", f"{side}.ids", width) for side in SIDES]
    if meta.get("text"):
        arrays += [(f"{side}.text_offsets", f"{side}.text", 1) for side in SIDES]
    for offsets_name, data_name, item_size in arrays:
        offsets, data = path / offsets_name, path / data_name
        try:
            if offsets.stat().st_size != (meta["pairs"] + 1) * 8:
                return f"{offsets.name} has {offsets.stat().st_size} bytes, not {(meta['pairs'] + 1) * 8}"
            with open(offsets, "rb") as handle:
                handle.seek(-8, os.SEEK_END)
                total = int(np.frombuffer(handle.read(8), dtype=np.int64)[0])
            if data.stat().st_size != total * item_size:
                return f"{data.name} has {data.stat().st_size} bytes, not {total * item_size}"
        except (OSError, KeyError, TypeError) as err:
            return str(getattr(err, "strerror", None) or err)
    return None


def _discard(path: Path) -> None:
    """Move a store directory out of the way (atomically), then delete it."""
    aside = path.with_name(f".{path.name}.discarded{os.getpid()}")
    try:
        os.replace(path, aside)
    except OSError as err:
        raise DataError(f"{path}: cannot replace this damaged store ({err.strerror}); delete it and re-run") from None
    shutil.rmtree(aside, ignore_errors=True)


def _read_meta(path: Path) -> dict | None:
    """A complete store's meta.json (None if absent or unreadable: not a usable store)."""
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == STORE_FORMAT else None
