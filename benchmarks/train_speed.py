#!/usr/bin/env python3
"""Training throughput: target tokens/s and peak memory of `nmt-train` for one or more settings.

    python benchmarks/train_speed.py --config configs/multi30k_de_en_bahdanau.yaml --steps 150 --window 50 \\
        --variant fp32 train.amp=off --variant bf16 train.amp=bf16 --repeats 2

Each variant runs `nmt-train` in a fresh process (validation off, no early stopping) with the
config plus the variant's overrides; throughput is the mean of the logged windows after the first
(warm-up) one, as the trainer reports it (target tokens, padding excluded). Variants alternate
across repeats so that a busy machine hurts them alike; the table shows every repeat's figure and
the best. Peak memory: the largest process's resident set (CPU) or `torch.cuda.max_memory_allocated`
(GPU, as the trainer logs it). Pass `--spm FILE` to reuse a sentencepiece model instead of training one.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

WINDOW = re.compile(r"step (\d+) epoch \d+: .* (\d+) tgt tok/s")
GPU_MEM = re.compile(r"peak GPU memory (\d+) MiB")


def run_variant(config: str, overrides: list[str], steps: int, window: int, spm: str | None) -> dict:
    """One `nmt-train` process; returns tokens/s after warm-up and peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            f"run_dir={tmp}/run",
            f"train.max_steps={steps}",
            f"train.log_every_steps={window}",
            "data.valid=null",
            "train.early_stopping_patience=0",
            *([f"tokenizer.model_file={spm}"] if spm else []),
            *overrides,
        ]
        command = [sys.executable, "-c", "import sys; from nmt.cli import train_main; sys.exit(train_main())", "--config", config]
        with open(Path(tmp) / "stderr", "w+") as err:
            child = subprocess.Popen([*command, *args], stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
            child.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            if child.returncode != 0:
                raise SystemExit(f"nmt-train failed ({' '.join(overrides)}):\n{err.read()[-2000:]}")
        log = (Path(tmp) / "run" / "train.log").read_text()
    rates = [int(m.group(2)) for m in WINDOW.finditer(log)]
    if len(rates) < 2:
        raise SystemExit(f"need at least 2 logged windows (steps >= 2 x window); got {len(rates)}")
    gpu = [int(m.group(1)) for m in GPU_MEM.finditer(log)]
    return {
        "tok_per_s": sum(rates[1:]) / len(rates[1:]),
        "memory": f"{max(gpu)} MiB GPU allocated" if gpu else f"{usage.ru_maxrss / 1024:.0f} MiB RSS",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--window", type=int, default=50, help="updates per logged window; the first is warm-up")
    parser.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"), help="a named set of overrides")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--spm", help="existing sentencepiece model (tokenizer.model_file)")
    args = parser.parse_args()
    variants = args.variant or [["default"]]
    cuda = torch.cuda.is_available()
    hardware = (
        torch.cuda.get_device_name()
        if cuda
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(f"config {args.config}; {args.steps} updates, windows of {args.window}, first window = warm-up")
    print(f"{hardware}; torch {torch.__version__}; python {platform.python_version()}\n")
    results: dict[str, list[dict]] = {v[0]: [] for v in variants}
    for _ in range(args.repeats):
        for name, *overrides in variants:
            results[name].append(run_variant(args.config, overrides, args.steps, args.window, args.spm))
    print("| variant | overrides | target tokens/s (each repeat) | best | peak memory |")
    print("|---|---|---|---|---|")
    for name, *overrides in variants:
        runs = results[name]
        each = " / ".join(f"{r['tok_per_s']:,.0f}" for r in runs)
        print(
            f"| {name} | `{' '.join(overrides) or '-'}` | {each} | {max(r['tok_per_s'] for r in runs):,.0f} | {runs[-1]['memory']} |"
        )


if __name__ == "__main__":
    main()
