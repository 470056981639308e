#!/usr/bin/env python3
"""Speed and peak extra memory of batching at WMT sizes: make_batches, filter_pairs, collate.

    python benchmarks/batching_speed.py                      # 0.45M, 4.5M and 18M pairs
    python benchmarks/batching_speed.py --sizes 450000 --reference-up-to 0

Costs are drawn like news-length sentencepiece pairs (source ~ lognormal around 25 pieces,
target = source x lognormal(0, 0.15), both 1..250; cost = longer side + 1) and batched as the
trainer does (`train.max_tokens` 4096, a shuffling generator). Each measurement runs in a fresh
child process; "peak extra" is the process's peak resident memory during the call above what it
held before it (Linux /proc: VmHWM after resetting it), so numpy, torch and Python objects all
count. "reference" is the list-based code that the numpy version replaced (a copy, kept in
tests/unit/test_batching.py as the definition of the batches) and the pair-by-pair filter loop
on length lists. Prints a Markdown table and the hardware and versions it ran on.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nmt.batching import collate, epoch_generator, make_batches  # noqa: E402
from nmt.data import _drop_reason, filter_pairs  # noqa: E402


def news_lengths(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Source and target lengths in pieces, drawn in chunks (little memory beside the result)."""
    rng = np.random.default_rng(seed)
    src, tgt = np.empty(n, dtype=np.uint16), np.empty(n, dtype=np.uint16)
    for lo in range(0, n, 1_000_000):
        m = min(n, lo + 1_000_000) - lo
        s = np.clip(np.rint(rng.lognormal(np.log(25), 0.6, m)), 1, 250)
        src[lo : lo + m] = s
        tgt[lo : lo + m] = np.clip(np.rint(s * rng.lognormal(0, 0.15, m)), 1, 250)
    return src, tgt


def _load_references():
    """The list-based make_batches and row-by-row collate the numpy versions replaced: the copies
    the tests keep as their definition."""
    spec = importlib.util.spec_from_file_location("test_batching", ROOT / "tests" / "unit" / "test_batching.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._reference_make_batches, module._reference_collate


reference_make_batches, reference_collate = _load_references()


def reference_filter(src_lens, tgt_lens, max_len, max_len_ratio):
    """The pair-by-pair filter loop (on lengths: cheaper than today's, which also takes len())."""
    keep = []
    for i, (s, t) in enumerate(zip(src_lens, tgt_lens)):
        if _drop_reason(s, t, max_len, max_len_ratio) is None:
            keep.append(i)
    return keep


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _measure(fn) -> dict:
    """Wall time of fn()'s first call in this process and the peak resident memory it added
    (MiB), then the best time of two more calls (as a trainer calls it again each epoch)."""
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    del result
    again = []
    for _ in range(2):
        start = time.perf_counter()
        result = fn()
        again.append(time.perf_counter() - start)
        del result
    return {"seconds": seconds, "again": min(again), "peak_mib": (peak - before) / 1024}


def child(what: str, n: int, max_tokens: int) -> dict:
    """One measurement, in this (fresh) process."""
    src, tgt = news_lengths(n)
    costs = np.maximum(src, tgt).astype(np.int64) + 1
    if what == "make_batches reference (list costs)":
        listed = costs.tolist()
        return _measure(lambda: reference_make_batches(listed, max_tokens, 0, epoch_generator(1, 1)))
    if what == "make_batches numpy (list costs)":
        listed = costs.tolist()
        return _measure(lambda: make_batches(listed, max_tokens, 0, epoch_generator(1, 1)))
    if what == "make_batches numpy (uint16 array)":
        narrow = costs.astype(np.uint16)
        return _measure(lambda: make_batches(narrow, max_tokens, 0, epoch_generator(1, 1)))
    if what == "filter reference (length lists)":
        s, t = src.tolist(), tgt.tolist()
        return _measure(lambda: reference_filter(s, t, 100, 2.0))
    if what == "filter_pairs numpy (uint16 arrays)":
        return _measure(lambda: filter_pairs(src, tgt, 100, 2.0))
    raise ValueError(what)


def collate_timings(repeats: int) -> list[tuple[str, float]]:
    """Median microseconds per collate of a 64-sentence batch of 64 x 64 = 4096 padded tokens."""
    rng = np.random.default_rng(0)
    src_lens = rng.integers(40, 64, size=64)
    tgt_lens = rng.integers(40, 64, size=64)
    src_lens[0] = tgt_lens[0] = 63  # + eos: 64 columns
    src = [rng.integers(4, 32000, size=k).tolist() for k in src_lens]
    tgt = [rng.integers(4, 32000, size=k).tolist() for k in tgt_lens]
    src_np = [np.asarray(s, dtype=np.uint16) for s in src]
    tgt_np = [np.asarray(t, dtype=np.uint16) for t in tgt]
    indices = list(range(64))
    rng.shuffle(indices)
    rows = {
        "collate reference, row by row (id lists)": lambda: reference_collate(indices, src, tgt, 0, 2, 3),
        "collate numpy fill (id lists)": lambda: collate(indices, src, tgt, 0, 2, 3),
        "collate numpy fill (uint16 rows, int32 indices)": lambda: collate(
            np.asarray(indices, dtype=np.int32), src_np, tgt_np, 0, 2, 3
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeats):  # alternate, so that a busy machine hurts all alike
        for name, fn in rows.items():
            start = time.perf_counter()
            for _ in range(20):
                fn()
            times[name].append((time.perf_counter() - start) / 20 * 1e6)
    return [(name, float(np.median(t))) for name, t in times.items()]


WHAT = (
    "make_batches reference (list costs)",
    "make_batches numpy (list costs)",
    "make_batches numpy (uint16 array)",
    "filter reference (length lists)",
    "filter_pairs numpy (uint16 arrays)",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[450_000, 4_500_000, 18_000_000])
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--reference-up-to", type=int, default=18_000_000, help="skip the reference code above this size")
    parser.add_argument("--collate-repeats", type=int, default=15)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, n = json.loads(args.child)
        print(json.dumps(child(what, n, args.max_tokens)))
        return

    print("| what | pairs | first call (s) | again (s) | peak extra memory (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for n in args.sizes:
        for what in WHAT:
            if "reference" in what and n > args.reference_up_to:
                continue
            command = [sys.executable, __file__, "--max-tokens", str(args.max_tokens), "--child", json.dumps([what, n])]
            out = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {what} | {n:,} | {row['seconds']:.3f} | {row['again']:.3f} | {row['peak_mib']:.0f} |", flush=True)
    print()
    print("| collate, 64 sentences x 64 columns (4096 padded tokens per side), source and target | µs per call (median) |")
    print("|---|---:|")
    for name, micros in collate_timings(args.collate_repeats):
        print(f"| {name} | {micros:.0f} |")
    print()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__}; max_tokens {args.max_tokens}, shuffling generator"
    )


if __name__ == "__main__":
    main()
