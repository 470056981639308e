#!/usr/bin/env python3
"""Check that the word cache (nmt.tokenizer.WordCache) gives sentencepiece's ids on every Multi30k
train line of de, en, fr and cs, for the models nmt trains (bpe and unigram, byte fallback on and
off, character coverage below 1), each trained jointly on all four languages.

    python scripts/check_word_cache.py [--data ../shared/data/multi30k] [--vocab 8000]

Prints one line per model and language (PASS, FAIL with the first differing line, or the model's
fallback to sentencepiece) and exits 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nmt.config import TokenizerConfig  # noqa: E402
from nmt.tokenizer import SideTokenizer, train_sentencepiece  # noqa: E402

LANGS = ("de", "en", "fr", "cs")
MODELS = {
    "bpe": {},
    "bpe, byte fallback, coverage 0.9995": {"byte_fallback": True, "character_coverage": 0.9995},
    "bpe, coverage 0.98": {"character_coverage": 0.98},
    "unigram": {"type": "unigram"},
}


def check(side: SideTokenizer, lines: list[str]) -> str:
    if side.word_cache is None:
        return "falls back to sentencepiece (not decomposable)"
    counts, flat = side.word_cache.encode(lines)
    expected = side.sp.encode(lines, out_type=int)
    start = 0
    for line, count, ids in zip(lines, counts, expected):
        if flat[start : start + count] != ids:
            return f"FAIL at {line!r}"
        start += count
    same = len(counts) == len(expected) and start == len(flat)
    return f"PASS ({len(lines):,} lines, {len(flat):,} ids)" if same else "FAIL (line counts differ)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--vocab", type=int, default=8000)
    args = parser.parse_args()
    corpus = {}
    for lang in LANGS:
        with gzip.open(args.data / f"train.{lang}.gz", "rt", encoding="utf-8") as handle:
            corpus[lang] = [line.rstrip("\n") for line in handle]
    failed = False
    for name, options in MODELS.items():
        cfg = TokenizerConfig(vocab_size=args.vocab, **options)
        side = SideTokenizer(train_sentencepiece(cfg, (line for lines in corpus.values() for line in lines)), name)
        for lang, lines in corpus.items():
            result = check(side, lines)
            failed |= result.startswith("FAIL")
            print(f"{name:40} {lang}: {result}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
