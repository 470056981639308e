"""Tests for subword regularization (tokenizer.sampling): sentencepiece's sampling as nmt drives
it, reproducible from a seed, on the training side only, from the store's text."""

from __future__ import annotations

import io
import random
import re

import numpy as np
import pytest
import sentencepiece as spm
import torch

from nmt.batching import sampled_batch, sampling_seed
from nmt.config import DataConfig, TokenizerConfig, TrainCorpusConfig, config_from_dict, sampling_problem
from nmt.errors import ConfigError
from nmt.store import CorpusStore, TrainingCorpus, ensure_store
from nmt.tokenizer import SideTokenizer, build_tokenizer

WORDS = "the a dog cat runs over street quickly big small man woman child plays happily together".split()
LINES = [" ".join(random.Random(i).choice(WORDS) for _ in range(2 + i % 7)) for i in range(300)]


def tokenizer_of(model_type: str, vocab: int = 80):
    cfg = TokenizerConfig(type=model_type, vocab_size=vocab, max_train_sentences=1000)
    return build_tokenizer(cfg, LINES, LINES, lambda message: None)


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def side(request):
    return tokenizer_of(request.param).src


def test_a_sample_is_a_function_of_the_seed_and_keeps_the_text(side):
    lines = LINES[:100]
    first = side.sample(lines, 0.2, 0, seed=7)
    assert side.sample(lines, 0.2, 0, seed=7) == first
    assert side.sample(lines, 0.2, 0, seed=8) != first
    assert first != side.encode(lines), "sampling changes some segmentations"
    assert side.decode(first) == side.decode(side.encode(lines)) == lines


def test_bpe_dropout_makes_more_pieces_on_average():
    side = tokenizer_of("bpe").src
    sampled = sum(map(len, side.sample(LINES, 0.3, 0, seed=1)))
    assert sampled > sum(map(len, side.encode(LINES)))


def word_model() -> bytes:
    """A sentencepiece model of type word (nmt trains only bpe and unigram; a user may bring one)."""
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(LINES), model_writer=out, model_type="word", vocab_size=20, pad_id=0, unk_id=1, bos_id=2,
        eos_id=3, hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    return out.getvalue()


def test_model_types_are_read_from_the_model():
    assert [tokenizer_of(kind).src.model_type for kind in ("bpe", "unigram")] == ["bpe", "unigram"]
    assert SideTokenizer(word_model(), "word.model").model_type == "word"
    assert sampling_problem("word", 0) == (
        "tokenizer.sampling",
        "sentencepiece samples unigram and bpe models only, not a word model",
    )


def test_batch_seeds_differ_by_place_and_repeat_on_resume():
    seeds = {sampling_seed(1, epoch, position) for epoch in (1, 2) for position in range(500)}
    assert len(seeds) == 1000 and all(0 <= s and 2 * s + 1 < 2**32 for s in seeds)
    assert sampling_seed(1, 2, 3) == sampling_seed(1, 2, 3) != sampling_seed(2, 2, 3)


def test_the_store_keeps_the_text_for_sampling_and_a_batch_is_sampled_from_it(tmp_path):
    (tmp_path / "a.src").write_text("".join(line + "\n" for line in LINES))
    (tmp_path / "a.tgt").write_text("".join(line.upper() + "\n" for line in LINES))
    corpus = TrainCorpusConfig(src=str(tmp_path / "a.src"), tgt=str(tmp_path / "a.tgt"))
    tokenizer = tokenizer_of("bpe")
    plain = ensure_store(corpus, "data.train", tokenizer, tmp_path / "stores", print)
    with_text = ensure_store(corpus, "data.train", tokenizer, tmp_path / "stores", print, text=True)
    assert with_text != plain and not CorpusStore.open(plain).text
    store = CorpusStore.open(with_text)
    assert [store.line("src", i) for i in range(store.size)] == LINES
    assert store.line("tgt", 5) == LINES[5].upper()
    data, _ = TrainingCorpus.filtered([store], DataConfig(train=(corpus,)))
    indices = np.array([3, 10, 299])
    cfg = TokenizerConfig(sampling=True, sampling_alpha=0.3)
    batch = sampled_batch(data, indices, tokenizer, cfg, seed=11, device=torch.device("cpu"))
    again = sampled_batch(data, indices, tokenizer, cfg, seed=11, device=torch.device("cpu"))
    assert batch.src.equal(again.src) and batch.tgt_out.equal(again.tgt_out)
    rows = [row[row != tokenizer.src.vocab.pad].tolist()[:-1] for row in batch.src]  # without eos
    assert tokenizer.src.decode(rows) == [LINES[i] for i in indices]


@pytest.mark.parametrize(
    "tokenizer, expected",
    [
        ({"sampling": True, "sampling_nbest": 1}, "key 'tokenizer.sampling_nbest': must be 0 (all segmentations) or"),
        ({"sampling": True, "sampling_nbest": -1}, "key 'tokenizer.sampling_nbest': must be 0 (all segmentations) or"),
        ({"sampling": True, "sampling_nbest": 8}, "key 'tokenizer.sampling_nbest': a bpe model samples by BPE-dropout"),
        ({"sampling": True, "sampling_alpha": 0}, "key 'tokenizer.sampling_alpha': must be between 0 and 1"),
        ({"sampling": True, "sampling_alpha": 1.5}, "key 'tokenizer.sampling_alpha': must be between 0 and 1"),
    ],
)
def test_bad_sampling_options_name_the_key(tokenizer, expected):
    raw = {"data": {"train": {"src": "a", "tgt": "b"}}, "train": {"max_steps": 3}, "tokenizer": tokenizer}
    with pytest.raises(ConfigError, match=re.escape(expected)):
        config_from_dict(raw, "c.yaml")


def test_unigram_takes_an_nbest():
    raw = {"data": {"train": {"src": "a", "tgt": "b"}}, "train": {"max_steps": 3}}
    config = config_from_dict({**raw, "tokenizer": {"type": "unigram", "sampling": True, "sampling_nbest": 16}})
    assert config.tokenizer.sampling_nbest == 16
