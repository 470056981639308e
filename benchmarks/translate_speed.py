#!/usr/bin/env python3
"""Translation speed of a trained model: sentences/s and output tokens/s for each search setting.

    python benchmarks/translate_speed.py --model runs/multi30k_de_en_bahdanau --amp off bf16 \\
        --src data/multi30k/test_2016_flickr.de.gz --ref data/multi30k/test_2016_flickr.en.gz --beams 5 1

Prints a Markdown table (one row per beam size: decode time after model load, the whole
`nmt-translate`-equivalent time including model load, sentences/s, tokens/s, BLEU) and the
hardware and versions it ran on. Each setting is run `--repeats` times; the fastest counts.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from nmt.checkpoint import resolve_checkpoint
from nmt.data import read_lines
from nmt.metrics import score_corpus
from nmt.translator import Translator


def measure(
    model: str,
    lines: list[str],
    refs: list[str] | None,
    beam: int,
    amp: str,
    max_tokens: int | None,
    device: str | None,
    repeats: int,
) -> dict:
    """Best-of-`repeats` timings of loading the model and translating `lines` with beam `beam`."""
    best: dict | None = None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        translator = Translator.from_checkpoint(resolve_checkpoint(model), device)
        loaded = time.perf_counter()
        results = translator.translate_detailed(lines, beam_size=beam, nbest=1, amp=amp, max_tokens=max_tokens)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        done = time.perf_counter()
        run = {"load_s": loaded - start, "decode_s": done - loaded, "results": results}
        if best is None or run["decode_s"] < best["decode_s"]:
            best = run
    tokens = sum(len(r.hypotheses[0].tokens) + 1 for r in best["results"] if r.hypotheses)
    bleu = score_corpus([r.text for r in best["results"]], [refs])["bleu"].score if refs else float("nan")
    return {
        "beam": beam,
        "decode_s": best["decode_s"],
        "total_s": best["decode_s"] + best["load_s"],
        "sent_per_s": len(lines) / best["decode_s"],
        "tok_per_s": tokens / best["decode_s"],
        "bleu": bleu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run directory or checkpoint")
    parser.add_argument("--src", required=True, help="source file (plain or .gz)")
    parser.add_argument("--ref", help="reference file, for BLEU")
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 1])
    parser.add_argument(
        "--amp", nargs="+", default=["off"], choices=["off", "bf16", "fp16", "int8"], help="search precisions to time"
    )
    parser.add_argument("--max-tokens", type=int, help="source tokens per batch (default: the model config's)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = read_lines(args.src)
    refs = read_lines(args.ref) if args.ref else None
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    hardware = (
        torch.cuda.get_device_name()
        if device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(f"model {args.model}; {len(lines)} sentences from {args.src}")
    print(f"device {device} ({hardware}); torch {torch.__version__}; python {platform.python_version()}\n")
    print("| search | precision | decode s | with model load s | sentences/s | output tokens/s | BLEU |")
    print("|---|---|---|---|---|---|---|")
    for amp in args.amp:
        for beam in args.beams:
            row = measure(args.model, lines, refs, beam, amp, args.max_tokens, device, args.repeats)
            name = "greedy" if beam == 1 else f"beam {beam}"
            print(
                f"| {name} | {'fp32' if amp == 'off' else amp} | {row['decode_s']:.2f} | {row['total_s']:.2f} | "
                f"{row['sent_per_s']:.1f} | {row['tok_per_s']:.0f} | {row['bleu']:.2f} |"
            )


if __name__ == "__main__":
    main()
