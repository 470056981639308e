#!/usr/bin/env python3
"""Corpus encoding speed: sentencepiece on whole lines against the word cache (nmt.tokenizer.WordCache).

    python benchmarks/encode_speed.py --spm RUN/spm.model CORPUS.de CORPUS.en     # a table, one process
    python benchmarks/encode_speed.py --spm RUN/spm.model --build CORPUS.de CORPUS.en  # one store build
    python benchmarks/encode_speed.py --many-types CORPUS.de CORPUS.en --out /tmp/many  # a harder corpus

The table times, per file and in this one process, `sp.encode` on chunks of 65,536 lines (all
cores, sentencepiece's threads) and the word cache (one core), checks that both give the same ids,
and counts distinct words and the cache's hit rate. `--build` encodes the pair into a fresh corpus
store as `nmt-train` does (worker processes included) and prints seconds and pairs/s: time it
whole, against a checkout of the code before the word cache, e.g. with `/usr/bin/time` or
`hyperfine`. `--many-types` writes a copy of a corpus in which a share of the words
(`--rate`) is misspelt or replaced by random strings of Latin, Cyrillic, Greek and CJK letters:
synthetic corpora built from a small corpus repeat few word types, which flatters a word cache.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import sentencepiece as spm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nmt.config import CorpusConfig  # noqa: E402
from nmt.store import ensure_store  # noqa: E402
from nmt.tokenizer import SideTokenizer, Tokenizer  # noqa: E402

CHUNK = 1 << 16
LETTERS = "abcdefghijklmnopqrstuvwxyzäöüßéèçñøåабвгдежзиклмнопрстуαβγδεζηθλμπσω的一是不了人我在有他这中大来上国"


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def timed_rate(encode, lines: list[str]) -> tuple[float, list]:
    started = time.perf_counter()
    out = [encode(lines[i : i + CHUNK]) for i in range(0, len(lines), CHUNK)]
    return len(lines) / (time.perf_counter() - started), out


def table(model: Path, paths: list[Path]) -> None:
    print(f"machine: {platform.machine()}, {platform.python_version()}, sentencepiece {spm.__version__}")
    print(
        "| file | lines | word types | cache hit rate | sp.encode lines/s (all cores) | word cache lines/s (1 core) | same ids |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        side = SideTokenizer(model.read_bytes(), str(model))
        if side.word_cache is None:
            print(f"| {path.name} | | | | | (model not decomposable: sentencepiece is used) | |")
            continue
        lines = read_lines(path)
        whole, ref = timed_rate(side.encode, lines)
        misses = 0

        def counted(word: str, add=side.word_cache._add) -> tuple[int, ...]:
            nonlocal misses
            misses += 1
            return add(word)

        side.word_cache._add = counted
        cached, got = timed_rate(side.word_cache.encode, lines)
        words = sum(len(line.split()) for line in lines)
        types = len({word for line in lines for word in line.split()})
        same = [list(itertools.chain.from_iterable(ids)) for ids in ref] == [flat for _, flat in got]
        print(f"| {path.name} | {len(lines):,} | {types:,} | {1 - misses / words:.3f} | {whole:,.0f} | {cached:,.0f} | {same} |")


def build(model: Path, src: Path, tgt: Path) -> None:
    side = SideTokenizer(model.read_bytes(), str(model))
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        path = ensure_store(CorpusConfig(src=str(src), tgt=str(tgt)), "bench", Tokenizer(side, side), Path(root), lambda _: None)
        seconds = time.perf_counter() - started
        pairs = sum(1 for _ in open(src, "rb"))
        print(f"{path.name}: {pairs:,} pairs in {seconds:.1f} s, {pairs / seconds:,.0f} pairs/s")


def perturb(word: str, rng: random.Random) -> str:
    """A misspelling of `word`, or a random string, so the corpus has many more word types."""
    if rng.random() < 0.5:
        at = rng.randrange(len(word) + 1)
        return word[:at] + rng.choice(LETTERS) + word[at + 1 :]
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 12)))


def many_types(paths: list[Path], out: Path, rate: float) -> None:
    rng = random.Random(0)
    for path in paths:
        target = out.with_name(f"{out.name}{path.suffix}")
        with open(path, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as dst:
            for line in src:
                dst.write(" ".join(perturb(w, rng) if rng.random() < rate else w for w in line.split()) + "\n")
        print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--spm", type=Path, help="sentencepiece model")
    parser.add_argument("--build", action="store_true", help="build a corpus store of the two files (src tgt)")
    parser.add_argument("--many-types", action="store_true", help="write perturbed copies of the files to --out")
    parser.add_argument("--out", type=Path, help="prefix of the --many-types copies (the files' suffixes are added)")
    parser.add_argument("--rate", type=float, default=0.1, help="share of words perturbed by --many-types")
    args = parser.parse_args()
    if args.many_types:
        many_types(args.files, args.out, args.rate)
    elif args.build:
        build(args.spm, *args.files)
    else:
        table(args.spm, args.files)


if __name__ == "__main__":
    main()
