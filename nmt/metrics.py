"""Corpus scores through sacrebleu (BLEU, chrF, TER), each with its reproducibility signature."""

from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF, TER


@dataclass
class Score:
    name: str
    score: float
    signature: str
    text: str  # sacrebleu's own one-line rendering, e.g. "BLEU = 35.2 66.1/42.0/..."


def score_corpus(
    hyps: list[str], refs: list[list[str]], metrics=("bleu",), bleu_tokenize: str = "13a", lowercase: bool = False
) -> dict[str, Score]:
    """Score hypotheses against one or more reference streams (each as long as `hyps`)."""
    builders = {
        "bleu": lambda: BLEU(tokenize=bleu_tokenize, lowercase=lowercase),
        "chrf": lambda: CHRF(lowercase=lowercase),
        "ter": lambda: TER(case_sensitive=not lowercase),
    }
    scores = {}
    for name in metrics:
        metric = builders[name]()
        result = metric.corpus_score(hyps, refs)
        scores[name] = Score(name=name, score=result.score, signature=str(metric.get_signature()), text=str(result))
    return scores
