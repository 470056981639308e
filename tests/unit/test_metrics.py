"""Tests for nmt.metrics: scores equal sacrebleu's own corpus functions on the same strings."""

from __future__ import annotations

import pytest
import sacrebleu
from sacrebleu.metrics import CHRF

from nmt.metrics import score_corpus

HYPS = [
    "The cat sat on the mat.",
    "A dog runs across the street quickly .",
    "two men are playing football",
    "",
    "Ein Mann fährt Fahrrad.",
]
REFS_A = [
    "The cat is sitting on the mat.",
    "A dog is running across the street.",
    "Two men play soccer.",
    "Nothing here.",
    "Ein Mann fährt ein Fahrrad.",
]
REFS_B = [
    "There is a cat on the mat.",
    "A dog quickly runs over the road.",
    "two men are playing football",
    "Empty.",
    "Ein Mann radelt.",
]
# nmt scores case-sensitively unless eval.lowercase is set, for every metric; sacrebleu's
# corpus_ter alone defaults to case-insensitive, so it is asked for case_sensitive=True here.
REFERENCE = {
    "bleu": sacrebleu.corpus_bleu,
    "chrf": sacrebleu.corpus_chrf,
    "ter": lambda hyps, refs: sacrebleu.corpus_ter(hyps, refs, case_sensitive=True),
}


@pytest.mark.parametrize("refs", [[REFS_A], [REFS_A, REFS_B]], ids=["one-ref", "two-refs"])
def test_scores_equal_sacrebleu(refs):
    scores = score_corpus(HYPS, refs, ("bleu", "chrf", "ter"))
    assert set(scores) == {"bleu", "chrf", "ter"}
    for name, function in REFERENCE.items():
        assert scores[name].name == name
        assert scores[name].score == pytest.approx(function(HYPS, refs).score, abs=1e-9)
        assert scores[name].signature
        assert scores[name].text


def test_signatures_describe_the_metric():
    scores = score_corpus(HYPS, [REFS_A], ("bleu", "chrf", "ter"))
    assert "tok:13a" in scores["bleu"].signature
    assert "case:mixed" in scores["bleu"].signature
    assert scores["chrf"].signature.startswith("nrefs:1")
    assert "case:mixed" in scores["ter"].signature


def test_bleu_tokenizer_and_lowercase_are_passed_on():
    hyps = ["THE CAT SAT ON THE MAT TODAY", "a dog runs over the green field"]
    refs = [["the cat sat on the mat today", "A dog runs over the big green field"]]
    lower = score_corpus(hyps, refs, ("bleu",), bleu_tokenize="intl", lowercase=True)["bleu"]
    assert lower.score == pytest.approx(sacrebleu.corpus_bleu(hyps, refs, tokenize="intl", lowercase=True).score)
    assert "tok:intl" in lower.signature and "case:lc" in lower.signature
    cased = score_corpus(hyps, refs, ("bleu",))["bleu"]
    assert cased.score < lower.score


def test_lowercase_chrf_and_ter():
    hyps = ["THE CAT SAT ON THE MAT"]
    refs = [["the cat sat on the mat"]]
    scores = score_corpus(hyps, refs, ("chrf", "ter"), lowercase=True)
    assert scores["chrf"].score == pytest.approx(CHRF(lowercase=True).corpus_score(hyps, refs).score)
    assert scores["chrf"].score == pytest.approx(100.0)
    assert scores["ter"].score == pytest.approx(sacrebleu.corpus_ter(hyps, refs, case_sensitive=False).score)
    assert scores["ter"].score == pytest.approx(0.0)


def test_perfect_and_disjoint():
    refs = [["a b c d e f", "g h i j k l"]]
    perfect = score_corpus(["a b c d e f", "g h i j k l"], refs, ("bleu", "chrf", "ter"))
    assert perfect["bleu"].score == pytest.approx(100.0)
    assert perfect["chrf"].score == pytest.approx(100.0)
    assert perfect["ter"].score == pytest.approx(0.0)
    disjoint = score_corpus(["x y z", "u v w"], refs, ("bleu",))
    assert disjoint["bleu"].score == pytest.approx(0.0)


def test_only_requested_metrics():
    assert list(score_corpus(HYPS, [REFS_A], ("chrf",))) == ["chrf"]
    assert list(score_corpus(HYPS, [REFS_A])) == ["bleu"]


def test_ter_case_follows_lowercase_option():
    hyps = ["The Cat sat on the Mat ."]
    refs = [["the cat sat on the mat ."]]
    cased = score_corpus(hyps, refs, ("ter",))["ter"]
    assert cased.score > 0 and "case:mixed" in cased.signature
    uncased = score_corpus(hyps, refs, ("ter",), lowercase=True)["ter"]
    assert uncased.score == pytest.approx(sacrebleu.corpus_ter(hyps, refs).score) == pytest.approx(0.0)
    assert "case:lc" in uncased.signature
