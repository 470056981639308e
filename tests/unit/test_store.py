"""Tests for nmt.store: the encoded corpus store equals direct encoding, is rebuilt exactly when its
inputs change, is never read half-built, and serves the trainer's filtered pairs."""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
import random
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

import nmt.tokenizer
from nmt.batching import epoch_generator, make_batches
from nmt.config import CorpusConfig, DataConfig, TokenizerConfig, TrainCorpusConfig
from nmt.data import filter_pairs, iter_corpus, iter_side, read_corpus
from nmt.errors import DataError
from nmt.store import CorpusStore, TrainingCorpus, ensure_store, find_store
from nmt.tokenizer import build_tokenizer

WORDS = "apple river stone cloud tiger lamp green quick seven house music bread".split()


def write_corpus(directory: Path, pairs: int, seed: int = 0, name: str = "train") -> CorpusConfig:
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(pairs):
        words = [rng.choice(WORDS) for _ in range(rng.randint(0, 9))]  # some empty lines too
        src.append(" ".join(words))
        tgt.append(" ".join(reversed(words)))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.src").write_text("".join(line + "\n" for line in src))
    (directory / f"{name}.tgt").write_text("".join(line + "\n" for line in tgt))
    return CorpusConfig(src=str(directory / f"{name}.src"), tgt=str(directory / f"{name}.tgt"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> CorpusConfig:
    return write_corpus(tmp_path_factory.mktemp("corpus"), 3000)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    sides = [iter_side(corpus, "data.train", side) for side in ("src", "tgt")]
    return build_tokenizer(TokenizerConfig(vocab_size=40), *sides, lambda message: None)


def build(corpus, tokenizer, root: Path) -> tuple[Path, list[str]]:
    messages: list[str] = []
    return ensure_store(corpus, "data.train", tokenizer, root, messages.append), messages


def test_store_round_trip_equals_direct_encoding(corpus, tokenizer, tmp_path):
    path, _ = build(corpus, tokenizer, tmp_path)
    store = CorpusStore.open(path)
    src, tgt = read_corpus(corpus, "data.train")
    assert store.size == len(src) == 3000
    for side, lines, tok in (("src", src, tokenizer.src), ("tgt", tgt, tokenizer.tgt)):
        expected = tok.encode(lines)
        assert [store.ids(side, i).tolist() for i in range(store.size)] == expected
        assert store.lengths(side).tolist() == [len(ids) for ids in expected]
        assert store.data[side].dtype == np.uint16


def test_an_unchanged_corpus_reuses_its_store_and_a_changed_one_is_rebuilt_with_the_reason(corpus, tokenizer, tmp_path):
    first, messages = build(corpus, tokenizer, tmp_path)
    assert "no encoded store yet" in messages[0]
    again, messages = build(corpus, tokenizer, tmp_path)
    assert again == first and messages == [f"data.train: using the encoded corpus store {first}"]

    copy = write_corpus(tmp_path / "copy", 3000)  # the same text at another path
    moved, messages = build(copy, tokenizer, tmp_path)
    assert moved != first and "changed since the store" in messages[0]

    tgt = Path(copy.tgt)
    info = tgt.stat()
    text = tgt.read_text()
    tgt.write_text(text.replace("apple", "lamps", 1))  # same size, other content
    os.utime(tgt, ns=(info.st_atime_ns, info.st_mtime_ns))  # and the same modification time
    assert tgt.stat().st_size == info.st_size
    edited, messages = build(copy, tokenizer, tmp_path)
    assert edited != moved and f"{os.path.realpath(tgt)} changed since the store" in messages[0]

    os.utime(tgt, ns=(1, 1))  # only the modification time
    touched, messages = build(copy, tokenizer, tmp_path)
    assert touched != edited and f"{os.path.realpath(tgt)} changed since the store" in messages[0]


def test_another_tokenizer_gets_its_own_store(corpus, tokenizer, tmp_path):
    first, _ = build(corpus, tokenizer, tmp_path)
    other = build_tokenizer(
        TokenizerConfig(vocab_size=30), *[iter_side(corpus, "x", side) for side in ("src", "tgt")], lambda message: None
    )
    second, messages = build(corpus, other, tmp_path)
    assert second != first and "the tokenizer differs" in messages[0]


def test_a_build_killed_halfway_is_never_read_and_is_rebuilt(corpus, tokenizer, tmp_path, monkeypatch):
    import nmt.store

    def interrupted(*args, **kwargs):  # Ctrl-C after three chunks: the first is on disk by then
        yield from iter_corpus(*args, chunk=1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(nmt.store, "iter_corpus", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(corpus, tokenizer, tmp_path)
    assert list(tmp_path.iterdir()) == [], "the temporary build directory is removed"
    assert multiprocessing.active_children() == [], "the encoding workers are stopped"
    monkeypatch.setattr(nmt.store, "iter_corpus", iter_corpus)
    path, messages = build(corpus, tokenizer, tmp_path)
    assert "no encoded store yet" in messages[0] and CorpusStore.open(path).size == 3000


def test_a_store_encoded_in_many_chunks_equals_one_encoded_in_one(corpus, tokenizer, tmp_path, monkeypatch):
    import nmt.store

    whole = CorpusStore.open(build(corpus, tokenizer, tmp_path / "whole")[0])
    monkeypatch.setattr(nmt.store, "iter_corpus", functools.partial(iter_corpus, chunk=700))
    chunked = CorpusStore.open(build(corpus, tokenizer, tmp_path / "chunked")[0])
    for side in ("src", "tgt"):
        assert chunked.offsets[side].tolist() == whole.offsets[side].tolist()
        assert chunked.data[side].tolist() == whole.data[side].tolist()


@pytest.mark.skipif(nmt.tokenizer._cores() == 1, reason="one core: no worker processes")
def test_a_worker_that_dies_is_one_error_not_a_hang(corpus, tokenizer, tmp_path, monkeypatch):
    import nmt.store
    from nmt.tokenizer import SideTokenizer

    monkeypatch.setattr(nmt.store, "iter_corpus", functools.partial(iter_corpus, chunk=700))
    monkeypatch.setattr(SideTokenizer, "encode_flat", lambda *args: os._exit(3))  # in the forked workers
    with pytest.raises(DataError, match="a corpus encoding worker process died"):
        build(corpus, tokenizer, tmp_path)
    assert list(tmp_path.iterdir()) == [] and multiprocessing.active_children() == []


def test_a_store_left_by_a_killed_process_is_removed_and_rebuilt(corpus, tokenizer, tmp_path):
    path, _ = build(corpus, tokenizer, tmp_path)
    stale = tmp_path / f".{path.name}.tmp-{socket.gethostname()}-999999999"  # SIGKILLed: no handler ran, no such process
    os.rename(path, stale)
    (stale / "meta.json").unlink()
    elsewhere = tmp_path / f".{path.name}.tmp-othernode-999999999"  # another node's build (shared store_dir)
    shutil.copytree(stale, elsewhere)
    rebuilt, messages = build(corpus, tokenizer, tmp_path)
    assert rebuilt == path and not stale.exists()
    assert elsewhere.exists(), "a build of another host is not this host's to remove: its pid means nothing here"


def test_a_store_another_builder_completed_first_is_kept_and_the_late_copy_dropped(corpus, tokenizer, tmp_path):
    import nmt.store

    path, _ = build(corpus, tokenizer, tmp_path)
    before = (path / "meta.json").read_bytes()
    late = tmp_path / ".late-build"
    shutil.copytree(path, late)
    nmt.store._publish(late, path)  # a second node finishing the same store a moment later
    assert not late.exists() and (path / "meta.json").read_bytes() == before
    assert find_store(corpus, "data.train", tokenizer, tmp_path) == path
    with pytest.raises(DataError, match="not there; its node's first rank builds it"):
        find_store(corpus, "data.train", tokenizer, tmp_path / "elsewhere")


def test_an_incomplete_store_directory_is_not_opened(tmp_path):
    (tmp_path / "data.train-0123").mkdir()
    with pytest.raises(DataError, match="not a complete corpus store"):
        CorpusStore.open(tmp_path / "data.train-0123")


def test_a_line_count_mismatch_found_while_streaming_names_both_files_and_counts(tokenizer, tmp_path):
    bad = write_corpus(tmp_path / "c", 70_000)  # more than one chunk
    lines = Path(bad.tgt).read_text().splitlines()
    Path(bad.tgt).write_text("".join(line + "\n" for line in lines[:-3]))
    with pytest.raises(DataError) as info:
        build(bad, tokenizer, tmp_path / "store")
    assert f"{bad.src} has 70000 lines but {bad.tgt} has 69997" in str(info.value)
    assert not list((tmp_path / "store").iterdir())


def test_an_unwritable_store_directory_is_one_line_and_leaves_nothing(corpus, tokenizer, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(DataError, match="cannot write the encoded corpus store .*set data.store_dir"):
        build(corpus, tokenizer, tmp_path / "file" / "store")


def test_a_vocabulary_beyond_uint16_is_stored_in_uint32(corpus, tokenizer, tmp_path, monkeypatch):
    from nmt.tokenizer import Vocab

    monkeypatch.setattr(tokenizer.src, "vocab", Vocab(size=70_000, pad=0, unk=1, bos=2, eos=3))
    path, _ = build(corpus, tokenizer, tmp_path)
    store = CorpusStore.open(path)
    assert store.data["src"].dtype == np.uint32 and json.loads((path / "meta.json").read_text())["dtype"] == "uint32"
    assert store.ids("src", 5).tolist() == tokenizer.src.encode([read_corpus(corpus, "x")[0][5]])[0]


def test_training_corpus_keeps_what_the_filters_keep(corpus, tokenizer, tmp_path):
    store = CorpusStore.open(build(corpus, tokenizer, tmp_path)[0])
    data = DataConfig(max_len=12, max_len_ratio=1.5)
    kept, (report,) = TrainingCorpus.filtered([store], data)
    src, tgt = read_corpus(corpus, "x")
    src_ids, tgt_ids = tokenizer.src.encode(src), tokenizer.tgt.encode(tgt)
    expected, expected_report = filter_pairs(list(map(len, src_ids)), list(map(len, tgt_ids)), 12, 1.5)
    assert kept.rows.tolist() == list(expected) and report.summary("x") == expected_report.summary("x")
    assert report.dropped["empty"] > 0
    k = kept.size // 2
    assert kept.src_ids[k].tolist() == src_ids[expected[k]] and kept.tgt_ids[k].tolist() == tgt_ids[expected[k]]
    lens = [(len(src_ids[i]), len(tgt_ids[i])) for i in expected]
    assert kept.costs().tolist() == [max(a, b) + 1 for a, b in lens]


def test_a_damaged_store_is_rebuilt_with_the_reason(corpus, tokenizer, tmp_path):
    path, _ = build(corpus, tokenizer, tmp_path)
    ids = path / "tgt.ids"
    ids.write_bytes(ids.read_bytes()[:-10])  # cut short after it was built (a full disk, a bad copy)
    again, messages = build(corpus, tokenizer, tmp_path)
    assert again == path and "the store there is damaged (tgt.ids has" in messages[0]
    store = CorpusStore.open(path)
    assert store.ids("tgt", store.size - 1).tolist() == tokenizer.tgt.encode([read_corpus(corpus, "x")[1][-1]])[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_training_corpus_over_several_stores_reads_each_pair_from_its_own_store(corpus, tokenizer, tmp_path):
    other = write_corpus(tmp_path / "other", 500, seed=7, name="other")
    paths = [build(c, tokenizer, tmp_path / "stores")[0] for c in (corpus, other)]
    stores = [CorpusStore.open(path) for path in paths]
    data = DataConfig(train=(TrainCorpusConfig(src=corpus.src, tgt=corpus.tgt), TrainCorpusConfig(src=other.src, tgt=other.tgt)))
    kept, reports = TrainingCorpus.filtered(stores, data)
    singles = [TrainingCorpus.filtered([store], data)[0] for store in stores]
    assert kept.sizes() == [single.size for single in singles] and len(reports) == 2
    assert kept.weights is None and kept.epoch_batches(5, 1, 300, 0) == make_batches(kept.costs(), 300, 0, epoch_generator(5, 1))
    assert kept.costs().tolist() == singles[0].costs().tolist() + singles[1].costs().tolist()
    first = singles[0].size
    for k in (0, first - 1, first, kept.size - 1):  # either side of the boundary between the corpora
        single, j = (singles[0], k) if k < first else (singles[1], k - first)
        assert kept.src_ids[k].tolist() == single.src_ids[j].tolist()
        assert kept.tgt_ids[k].tolist() == single.tgt_ids[j].tolist()
    weighted = dataclasses.replace(data, train=tuple(dataclasses.replace(c, weight=w) for c, w in zip(data.train, (1, 3))))
    mixed, _ = TrainingCorpus.filtered(stores, weighted)
    pairs = mixed.epoch_batches(5, 1, 300, 0).order
    assert len(pairs) == kept.size and mixed.weights == (1, 3)
    assert abs((pairs >= first).sum() - kept.size * 3 / 4) <= 0.5  # the second corpus's share
