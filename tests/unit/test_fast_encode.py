"""Tests for nmt.tokenizer.WordCache: the store's word-by-word encoding gives sentencepiece's ids,
id for id, for every model spec (or the spec falls back to sentencepiece on whole lines)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

import nmt.tokenizer
from nmt.tokenizer import MARK, SideTokenizer

REPO_ROOT = Path(__file__).resolve().parents[2]
MULTI30K = next(
    (p for p in (Path("/work/shared/data/multi30k"), REPO_ROOT.parent / "shared" / "data" / "multi30k") if p.is_dir()), None
)
LANGS = ("de", "en", "fr", "cs")
# fmt: off
ADVERSARIAL = [
    "", " ", "   ", "\t", "\n", "a\tb", "  leading", "trailing  ", "runs   of    spaces", " \t mixed \t ",
    "nbsp\u00a0here", "ideographic\u3000space", "acute\u00b4accent", "space then \u0301combining", "a \u0301",
    "\u0301", "zero\u200bwidth", "\x1c\x1d\x1e\x1f separators", "next\x85line", "line\u2028sep\u2029par",
    "ctrl\x01\x02\x7f\x1b[0m", "form\x0cfeed\x0bvtab", "\ufeffbom", "日本語の文章にはスペースがありません。",
    "中文 混合 English 文本", "emoji 😀👍🏽 family 👨\u200d👩\u200d👧 flag 🇩🇪", "x" * 3000, "Donau" * 400 + " ok",
    "▁literal marker", "▁▁", "a▁b ▁ c", "\u2581\u00a0\u2581", "ﬁ ligature ＦＵＬＬ ｗｉｄｔｈ ①② ㍿", "e\u0301 vs é",
    "Straße STRASSE", "abcабв123٣४ αβγ", "<s> </s> <unk> <pad> <0x41> <sep>", "A B ab ~tilde~ A  B",
    "ǅ ǈ ß ẞ İ ı", "\U0001d400\U0001d401 math bold", "\uffff\ufffd replacement", "tab\tat\tend\t",
]
# fmt: on


def multi30k_lines(count: int) -> list[str]:
    lines = []
    for lang in LANGS:
        with gzip.open(MULTI30K / f"train.{lang}.gz", "rt", encoding="utf-8") as handle:
            lines += [line.rstrip("\n") for _, line in zip(range(count), handle)]
    return lines


pytestmark = pytest.mark.skipif(
    MULTI30K is None, reason="Multi30k not found at /work/shared/data/multi30k or ../shared/data/multi30k"
)
RULES = "41 20 42\t43\n61 62\t78 20 79\n7E\t20\n"  # "A B" -> "C", "ab" -> "x y", "~" -> " " (TSV of code points)
# spec -> (trainer options, whether the word cache applies: True, False, or None where the trained pieces decide)
SPECS = {
    "bpe": ({}, True),
    "bpe-byte-fallback": ({"byte_fallback": True, "character_coverage": 0.98}, True),
    "bpe-user-symbols": ({"user_defined_symbols": ["<sep>", "@@", "▁Ein", "中文"]}, True),
    "bpe-nfkc-cf": ({"normalization_rule_name": "nfkc_cf"}, True),
    "bpe-identity-keep-spaces": (
        {"normalization_rule_name": "identity", "remove_extra_whitespaces": False, "add_dummy_prefix": False},
        True,
    ),
    "bpe-custom-rules": ({"normalization_rule_tsv": "RULES"}, True),
    "bpe-no-split-by-whitespace": ({"split_by_whitespace": False}, None),
    "bpe-whitespace-pieces": ({"allow_whitespace_only_pieces": True, "remove_extra_whitespaces": False}, None),
    "bpe-suffix": ({"treat_whitespace_as_suffix": True}, False),
    "bpe-user-symbol-with-space": ({"user_defined_symbols": ["a▁b"]}, False),
    "unigram": ({"model_type": "unigram"}, False),
    "char": ({"model_type": "char"}, False),
    "word": ({"model_type": "word"}, False),
}


@pytest.fixture(scope="module")
def sample() -> list[str]:
    return multi30k_lines(1000)


@pytest.fixture(scope="module")
def models(sample, tmp_path_factory) -> dict[str, SideTokenizer]:
    rules = tmp_path_factory.mktemp("rules") / "rules.tsv"
    rules.write_text(RULES)
    built = {}
    for name, (options, _) in SPECS.items():
        options = {key: str(rules) if value == "RULES" else value for key, value in options.items()}
        out = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sample), model_writer=out, vocab_size=600, hard_vocab_limit=False,
            **{"model_type": "bpe", **options}, pad_id=0, unk_id=1, bos_id=2, eos_id=3, minloglevel=2,
        )  # fmt: skip
        built[name] = SideTokenizer(out.getvalue(), name)
    return built


def assert_same_ids(side: SideTokenizer, lines: list[str]) -> None:
    counts, ids = side.encode_flat(lines, np.uint32)
    got = [part.tolist() for part in np.split(ids, np.cumsum(counts)[:-1])] if len(lines) else []
    expected = side.sp.encode(lines, out_type=int)
    for line, mine, theirs in zip(lines, got, expected):
        assert mine == theirs, f"{line!r}: {side.pieces(mine)} != {side.pieces(theirs)}"
    assert len(got) == len(expected) == len(counts)


@pytest.mark.parametrize("name", SPECS)
def test_same_ids_as_sentencepiece_on_real_and_adversarial_lines(models, sample, name):
    side = models[name]
    expect_cache = SPECS[name][1]
    inner_marker = any(MARK in side.sp.id_to_piece(i)[1:] for i in range(side.sp.get_piece_size()))
    assert (side.word_cache is not None) == (expect_cache if expect_cache is not None else not inner_marker)
    assert_same_ids(side, sample + ADVERSARIAL)
    for line in ADVERSARIAL:  # alone too: a line's start and end are contexts of their own
        assert_same_ids(side, [line])


def test_the_word_cache_starts_afresh_when_full_and_still_gives_the_same_ids(models, sample, monkeypatch):
    monkeypatch.setattr(nmt.tokenizer, "_WORD_CACHE_SIZE", 7)
    side = SideTokenizer(models["bpe"].proto, "bpe")
    assert_same_ids(side, sample[:500])
    assert len(side.word_cache.words) <= 7


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads under 128 bytes)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_the_unnormalized_copy_changes_nothing_but_the_normalizer_and_drops_the_self_test(models, sample):
    bpe = models["bpe"]
    text = "Ein  Hund\u00a0läuft"
    sample_field = field(1, field(1, text.encode()) + field(2, " ".join(bpe.sp.encode(text, out_type=str)).encode()))
    side = SideTokenizer(bpe.proto + field(4, sample_field), "with a self-test")
    assert side.word_cache is not None  # sentencepiece versions that run the self-test at load would fail it unnormalized
    assert_same_ids(side, sample[:200] + ADVERSARIAL)
    for line in ADVERSARIAL:
        assert side.word_cache.plain.normalize(line) == line
    pb = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")
    original, plain = pb.ModelProto(), pb.ModelProto()
    original.ParseFromString(side.proto)
    plain.ParseFromString(nmt.tokenizer._identity_normalizer(side.proto))
    spec = plain.normalizer_spec
    assert (spec.name, spec.precompiled_charsmap, spec.add_dummy_prefix) == ("identity", b"", False)
    assert (spec.remove_extra_whitespaces, spec.escape_whitespaces) == (False, False)
    assert plain.pieces == original.pieces and plain.trainer_spec == original.trainer_spec
    assert 4 not in {number for number, _, _ in nmt.tokenizer._proto_fields(plain.SerializeToString())}


def test_a_model_that_is_not_a_valid_proto_for_the_cache_falls_back(models):
    side = models["bpe"]
    assert nmt.tokenizer.WordCache.for_model(side.sp, side.proto[:-3] + b"\x0f") is None  # wire type 7
