#!/usr/bin/env python3
"""Write a toy parallel corpus: the target is the source's words in reverse order.

A model has clearly learned it when greedy decoding reproduces the reversed sentences; the
end-to-end test and `configs/tiny.yaml` use it. Usage: make_toy_corpus.py OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

WORDS = ["apple", "river", "stone", "cloud", "tiger", "lamp", "green", "quick", "seven", "house", "music", "bread"]
SPLITS = {"train": 3000, "valid": 100, "test": 100}


def reverse_pairs(count: int, rng: random.Random, min_words: int = 2, max_words: int = 5) -> list[tuple[str, str]]:
    """`count` (source, reversed source) pairs of random words."""
    pairs = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))]
        pairs.append((" ".join(words), " ".join(reversed(words))))
    return pairs


def write_corpus(out_dir: Path, seed: int = 0) -> None:
    """OUT_DIR/{train,valid,test}.{src,tgt}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, count in SPLITS.items():
        pairs = reverse_pairs(count, rng)
        (out_dir / f"{split}.src").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
        (out_dir / f"{split}.tgt").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_corpus(args.out_dir, args.seed)


if __name__ == "__main__":
    main()
