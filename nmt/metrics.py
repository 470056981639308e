"""Corpus scores through sacrebleu (BLEU, chrF, TER), each with its reproducibility signature."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from nmt.errors import NmtError


@dataclass
class Score:
    name: str
    score: float
    signature: str
    text: str  # sacrebleu's own one-line rendering, e.g. "BLEU = 35.2 66.1/42.0/..."


def bleu_tokenizers() -> list[str]:
    """The BLEU tokenizer names of the installed sacrebleu, from its own table."""
    return list(BLEU.TOKENIZERS)


def check_bleu_tokenize(name: str, option: str = "--tokenize") -> None:
    """Refuse a BLEU tokenizer sacrebleu does not have, or cannot start here, in one line.

    Building the tokenizer is what finds a missing extra package (ja-mecab, ko-mecab) or a
    sentencepiece model that cannot be downloaded (spm, flores101, flores200, spBLEU-1K); that
    is cheap, and done before any file is read or any translation starts.
    """
    choices = bleu_tokenizers()
    if name not in choices:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise NmtError(f"{option} '{name}' is not a sacrebleu BLEU tokenizer; {hint}choices: {', '.join(choices)}")
    try:
        BLEU(tokenize=name)
    except (ImportError, RuntimeError) as err:  # sacrebleu's message for a missing extra holds the pip line
        install = re.search(r"pip install \S+", str(err))
        fix = install.group(0) if install else "install the packages sacrebleu names for it"
        raise NmtError(f"{option} {name}: sacrebleu cannot start this tokenizer without extra packages; {fix}") from None
    except (OSError, SystemExit) as err:  # a failed download (URLError is an OSError; an SSL error exits)
        reason = getattr(err, "reason", None) or err
        raise NmtError(
            f"{option} {name}: sacrebleu cannot download this tokenizer's sentencepiece model ({reason}); "
            "run once with network access (it is cached in ~/.sacrebleu) or choose another --tokenize"
        ) from None


def build_metric(name: str, bleu_tokenize: str = "13a", lowercase: bool = False) -> Metric:
    """A sacrebleu metric object: bleu, chrf or ter."""
    if name == "bleu":
        return BLEU(tokenize=bleu_tokenize, lowercase=lowercase)
    if name == "chrf":
        return CHRF(lowercase=lowercase)
    return TER(case_sensitive=not lowercase)


def score_corpus(
    hyps: list[str], refs: list[list[str]], metrics=("bleu",), bleu_tokenize: str = "13a", lowercase: bool = False
) -> dict[str, Score]:
    """Score hypotheses against one or more reference streams (each as long as `hyps`)."""
    scores = {}
    for name in metrics:
        metric = build_metric(name, bleu_tokenize, lowercase)
        result = metric.corpus_score(hyps, refs)
        scores[name] = Score(name=name, score=result.score, signature=str(metric.get_signature()), text=str(result))
    return scores


BUCKETS = ((1, 10), (11, 20), (21, 30), (31, 10**9))


@dataclass
class Report:
    """Everything nmt-eval prints: scores, BLEU by length bucket, an optional paired test."""

    scores: dict[str, Score]
    buckets: list[tuple[str, int, float]]  # (label, sentences, BLEU)
    bucket_by: str  # "source" or "reference" words
    comparison: list[tuple[str, float, float, float]] | None = None  # (metric, ours, theirs, p-value)
    compare_name: str = ""

    def to_text(self) -> str:
        lines = [f"{s.text}\n  signature: {s.signature}" for s in self.scores.values()]
        lines.append(
            f"BLEU by {self.bucket_by} length (words): "
            + ", ".join(f"{label}: {bleu:.2f} ({n} sent)" for label, n, bleu in self.buckets)
        )
        for metric, ours, theirs, p in self.comparison or []:
            lines.append(f"paired bootstrap vs {self.compare_name}: {metric} {ours:.2f} vs {theirs:.2f}, p = {p:.4f}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        rows = ["| metric | score | signature |", "|---|---|---|"]
        rows += [f"| {s.name} | {s.score:.2f} | `{_escape_pipes(s.signature)}` |" for s in self.scores.values()]
        rows += ["", f"| {self.bucket_by} words | sentences | BLEU |", "|---|---|---|"]
        rows += [f"| {label} | {n} | {bleu:.2f} |" for label, n, bleu in self.buckets]
        if self.comparison:
            rows += ["", f"| metric | this | {self.compare_name} | p-value (paired bootstrap) |", "|---|---|---|---|"]
            rows += [f"| {m} | {a:.2f} | {b:.2f} | {p:.4f} |" for m, a, b, p in self.comparison]
        return "\n".join(rows)

    def to_json(self) -> dict:
        report: dict = {name: {"score": s.score, "signature": s.signature} for name, s in self.scores.items()}
        report["buckets"] = {
            "by": self.bucket_by,
            "rows": [{"words": label, "sentences": n, "bleu": bleu} for label, n, bleu in self.buckets],
        }
        if self.comparison:
            report["paired_bootstrap"] = {
                "other": self.compare_name,
                "rows": [{"metric": m, "this": a, "other": b, "p_value": p} for m, a, b, p in self.comparison],
            }
        return report


def _escape_pipes(text: str) -> str:
    return text.replace("|", "\\|")  # a bare | would split the Markdown table cell


def evaluate(
    hyps: list[str],
    refs: list[list[str]],
    metrics=("bleu", "chrf", "ter"),
    bleu_tokenize: str = "13a",
    lowercase: bool = False,
    sources: list[str] | None = None,
    compare: tuple[str, list[str]] | None = None,
    bootstrap_samples: int = 1000,
) -> Report:
    """Scores with signatures, BLEU per length bucket, and a paired bootstrap test against `compare`."""
    scores = score_corpus(hyps, refs, metrics, bleu_tokenize, lowercase)
    lengths = [len(s.split()) for s in (sources if sources is not None else refs[0])]
    buckets = []
    for low, high in BUCKETS:
        picked = [i for i, n in enumerate(lengths) if low <= n <= high]
        if picked:
            label = f"{low}-{high}" if high < 10**9 else f"{low}+"
            bleu = score_corpus(
                [hyps[i] for i in picked], [[r[i] for i in picked] for r in refs], ("bleu",), bleu_tokenize, lowercase
            )
            buckets.append((label, len(picked), bleu["bleu"].score))
    report = Report(scores=scores, buckets=buckets, bucket_by="source" if sources is not None else "reference")
    if compare is not None:
        report.compare_name = compare[0]
        report.comparison = paired_bootstrap(hyps, compare[1], refs, metrics, bleu_tokenize, lowercase, bootstrap_samples)
    return report


def paired_bootstrap(
    hyps: list[str], other: list[str], refs: list[list[str]], metrics, bleu_tokenize: str, lowercase: bool, samples: int
) -> list[tuple[str, float, float, float]]:
    """sacrebleu's paired bootstrap resampling (Koehn 2004): p-value that `hyps` is not better than `other`."""
    from sacrebleu.significance import PairedTest

    chosen = {name: build_metric(name, bleu_tokenize, lowercase) for name in metrics}
    test = PairedTest([("other", other), ("this", hyps)], chosen, refs, test_type="bs", n_samples=samples)
    _, results = test()
    # sacrebleu keys its results by display name (BLEU, chrF2, TER), in the order of `metrics`.
    columns = [results[key] for key in results if key != "System"]
    return [(name, ours.score, baseline.score, ours.p_value) for name, (baseline, ours) in zip(metrics, columns)]
