#!/usr/bin/env python3
"""Pick the beam size and GNMT length penalty on validation data (never on the test set).

    python scripts/tune_decoding.py --model runs/multi30k_de_en_best/averaged.pt \\
        --src data/multi30k/val.de.gz --ref data/multi30k/val.en.gz --beams 5 10 --alphas 0 0.6 1.0

Translates the source once per (beam, alpha), prints a Markdown table of BLEU (sacreBLEU, the
model config's tokenizer and casing) and speed, then the best setting as `nmt-translate` flags.
Several --model paths tune an ensemble of them (as `nmt-translate --model A B`).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from nmt.checkpoint import resolve_checkpoint
from nmt.config import check_option
from nmt.data import ReadReport, line_count_hint, read_lines
from nmt.errors import NmtError
from nmt.metrics import score_corpus
from nmt.translator import Translator


def tune(translator: Translator, src: list[str], ref: list[str], beams: list[int], alphas: list[float], amp: str) -> list[dict]:
    """One row per (beam, alpha): BLEU on `ref` and sentences/s, in grid order."""
    evals = translator.config.eval
    rows = []
    for beam, alpha in itertools.product(beams, alphas):
        start = time.perf_counter()
        hyps = translator.translate(src, beam_size=beam, length_penalty=alpha, nbest=1, amp=amp)
        seconds = time.perf_counter() - start
        bleu = score_corpus(hyps, [ref], ("bleu",), evals.bleu_tokenize, evals.lowercase)["bleu"]
        rows.append(
            {"beam": beam, "alpha": alpha, "bleu": bleu.score, "sent_per_s": len(src) / seconds, "signature": bleu.signature}
        )
        print(f"beam {beam} alpha {alpha:g}: BLEU {bleu.score:.2f}", file=sys.stderr, flush=True)
    return rows


def read_text(path: str, option: str) -> tuple[list[str], ReadReport]:
    """Lines of a file named on the command line, and what they hold (bare CRs, NUL bytes)."""
    if not Path(path).exists():
        raise NmtError(f"{path}: file not found; check the {option} path")
    report = ReadReport()
    return read_lines(path, report), report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, nargs="+", help="run directory (its best checkpoint) or checkpoint file; several: an ensemble"
    )
    parser.add_argument("--src", required=True, help="validation source (plain or .gz)")
    parser.add_argument("--ref", required=True, help="validation reference")
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.6, 1.0])
    parser.add_argument(
        "--amp", choices=["off", "bf16", "fp16", "int8"], default="off", help="search precision (as nmt-translate --amp)"
    )
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    args = parser.parse_args()
    try:
        for beam in args.beams:  # the rules of the decode.* keys, before anything loads
            check_option("--beams", "decode.beam_size", beam)
        for alpha in args.alphas:
            check_option("--alphas", "decode.length_penalty", alpha)
        (src, src_report), (ref, ref_report) = read_text(args.src, "--src"), read_text(args.ref, "--ref")
        if len(src) != len(ref):
            hint = line_count_hint((args.src, src_report), (args.ref, ref_report))
            raise NmtError(f"{args.src} has {len(src)} lines but {args.ref} has {len(ref)}; they must match line by line{hint}")
        for warning in src_report.warnings(args.src) + ref_report.warnings(args.ref):
            print(warning, file=sys.stderr)
        translator = Translator.from_checkpoint([resolve_checkpoint(m) for m in args.model], args.device)
        rows = tune(translator, src, ref, args.beams, args.alphas, args.amp)
    except NmtError as err:
        print(f"tune_decoding: error: {err}", file=sys.stderr)
        return 2
    print("| beam | length penalty | BLEU | sentences/s |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['beam']} | {row['alpha']:g} | {row['bleu']:.2f} | {row['sent_per_s']:.1f} |")
    best = max(rows, key=lambda row: row["bleu"])
    print(f"\nbest on {args.src}: BLEU {best['bleu']:.2f} ({best['signature']})")
    amp = "" if args.amp == "off" else f" --amp {args.amp}"  # the flags must reproduce the tuned search
    print(f"nmt-translate --model {' '.join(args.model)} --beam {best['beam']} --length-penalty {best['alpha']:g}{amp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
