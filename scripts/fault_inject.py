#!/usr/bin/env python3
"""Kill a training run at random moments (some during checkpoint writes), resume it each time, and
check that its final parameters are bit-identical to an uninterrupted run with the same seed.

    python scripts/fault_inject.py --workdir /tmp/faults --kills 6 --steps 300

Trains configs/tiny.yaml on a generated toy corpus on CPU with dropout and scheduled sampling on
(so every random stream matters) and `train.deterministic: true`. Exit code 0 when the parameters
match; 1 when they differ. tests/e2e/test_reliability.py runs a short version in CI.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Randomness everywhere: dropout streams, scheduled sampling, frequent checkpoints to be killed in.
STRESS = [
    "model.embedding_dropout=0.2",
    "model.decoder.hidden_dropout=0.2",
    "train.teacher_forcing_ratio=0.8",
    "train.deterministic=true",
    "train.eval_every_steps=50",
    "train.save_every_steps=7",
    "train.log_every_steps=10",
]


def train_command(run_dir: Path, data: Path, steps: int) -> list[str]:
    corpus = [f"data.{split}.{side}={data}/{split}.{side}" for split in ("train", "valid") for side in ("src", "tgt")]
    return [
        str(BIN / "nmt-train"),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        f"run_dir={run_dir}",
        f"train.max_steps={steps}",
        *corpus,
        *STRESS,
    ]


def kill_during_write(process: subprocess.Popen, ckpt_dir: Path, timeout: float) -> bool:
    """SIGKILL as soon as a checkpoint temp file exists; True if one was caught mid-write."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if ckpt_dir.is_dir() and any(".tmp" in p.name for p in ckpt_dir.iterdir()):
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.0005)
    return False


def kill_after(process: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL after `seconds`; True if the process was still running then."""
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        return True


def run_with_faults(workdir: Path, kills: int, steps: int, seed: int, log=print) -> bool:
    """Reference run, then a run killed `kills` times; True when final parameters are identical."""
    toy_spec = importlib.util.spec_from_file_location("make_toy_corpus", ROOT / "scripts" / "make_toy_corpus.py")
    toy = importlib.util.module_from_spec(toy_spec)
    toy_spec.loader.exec_module(toy)
    data = workdir / "toy"
    toy.write_corpus(data, seed=seed)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    reference = workdir / "reference"
    start = time.time()
    subprocess.run(train_command(reference, data, steps), check=True, **quiet)
    budget = time.time() - start
    log(f"reference run: {budget:.1f} s")
    faulty = workdir / "faulty"
    rng = random.Random(seed)
    done_kills = 0
    for attempt in range(kills):
        process = subprocess.Popen(train_command(faulty, data, steps), **quiet)
        if attempt % 2 == 0:
            killed = kill_during_write(process, faulty / "checkpoints", timeout=budget * 2)
            how = "during a checkpoint write"
        else:
            delay = rng.uniform(1.0, max(1.5, 0.6 * budget))
            killed = kill_after(process, delay)
            how = f"after {delay:.1f} s"
        done_kills += killed
        log(f"attempt {attempt + 1}: {'killed ' + how if killed else 'finished before the kill'}")
    subprocess.run(train_command(faulty, data, steps), check=True, **quiet)
    return compare(reference, faulty, log) and done_kills > 0


def compare(reference: Path, faulty: Path, log=print) -> bool:
    ref = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    got = torch.load(faulty / "checkpoints" / "last.pt", weights_only=True)
    if ref["state"]["step"] != got["state"]["step"]:
        log(f"final steps differ: {ref['state']['step']} vs {got['state']['step']}")
        return False
    differing = [name for name, tensor in ref["model"].items() if not torch.equal(tensor, got["model"][name])]
    resumed = (faulty / "train.log").read_text().count("resuming from step")
    log(f"final step {got['state']['step']}; resumed {resumed} times; parameters differing: {len(differing)}")
    for name in differing[:5]:
        log(f"  {name}: max abs diff {(ref['model'][name] - got['model'][name]).abs().max().item():.3g}")
    return not differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="empty or new directory for the two runs")
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.workdir.exists() and any(args.workdir.iterdir()):
        print(f"fault_inject: error: {args.workdir} is not empty; give a new --workdir", file=sys.stderr)
        return 2
    identical = run_with_faults(args.workdir, args.kills, args.steps, args.seed)
    print("PASS: bit-identical to the uninterrupted run" if identical else "FAIL: parameters differ")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
