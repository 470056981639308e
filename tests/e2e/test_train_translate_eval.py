"""End to end on CPU: train the tiny config on a toy reverse task, kill it, resume, translate, score.

The run is killed with SIGKILL after its first checkpoints (not stopped politely), the same
command resumes it, and the finished model must have clearly learned the task.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sacrebleu
import torch

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _toy_module():
    spec = importlib.util.spec_from_file_location("make_toy_corpus", ROOT / "scripts" / "make_toy_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> dict:
    """Train with a SIGKILL in the middle; returns paths and the resume log."""
    tmp = tmp_path_factory.mktemp("e2e")
    data = tmp / "toy"
    _toy_module().write_corpus(data, seed=0)
    run_dir = tmp / "run"
    command = [
        str(BIN / "nmt-train"),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        f"run_dir={run_dir}",
        f"data.train.src={data}/train.src",
        f"data.train.tgt={data}/train.tgt",
        f"data.valid.src={data}/valid.src",
        f"data.valid.tgt={data}/valid.tgt",
    ]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_after = _kill_after_checkpoint(first, run_dir / "checkpoints", min_step=200)
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    return {"data": data, "run_dir": run_dir, "killed_after": killed_after, "log": (run_dir / "train.log").read_text()}


def _kill_after_checkpoint(process: subprocess.Popen, ckpt_dir: Path, min_step: int) -> int:
    """SIGKILL `process` once a checkpoint of step >= min_step exists; returns that step."""
    deadline = time.time() + 300
    while time.time() < deadline:
        steps = [int(p.stem.split("_")[1]) for p in ckpt_dir.glob("step_*.pt")] if ckpt_dir.exists() else []
        if steps and max(steps) >= min_step:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return max(steps)
        if process.poll() is not None:
            pytest.fail(f"training exited before it could be killed: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("no checkpoint appeared within 300 s")


def test_resume_continues_from_checkpoint(trained_run):
    log = trained_run["log"]
    resumed = [line for line in log.splitlines() if "resuming from step" in line]
    assert len(resumed) == 1
    step = int(resumed[0].split("resuming from step ")[1].split()[0])
    assert step >= trained_run["killed_after"] and step % 100 == 0 and step < 800
    assert "training stopped at step 800" in log
    ckpt = torch.load(trained_run["run_dir"] / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["state"]["step"] == 800


def test_model_learned_the_task_and_scores_match_sacrebleu(trained_run, tmp_path):
    data, run_dir = trained_run["data"], trained_run["run_dir"]
    hyp = tmp_path / "test.hyp"
    translate = subprocess.run(
        [
            str(BIN / "nmt-translate"),
            "--model",
            str(run_dir),
            "--input",
            str(data / "test.src"),
            "--output",
            str(hyp),
            "--beam",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert translate.returncode == 0, translate.stderr
    hyps = hyp.read_text(encoding="utf-8").splitlines()
    refs = (data / "test.tgt").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == len(refs)
    exact = sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    assert exact >= 0.8, f"only {exact:.0%} of test sentences reversed exactly"

    evaluation = subprocess.run(
        [str(BIN / "nmt-eval"), "--hyp", str(hyp), "--ref", str(data / "test.tgt"), "--json", str(tmp_path / "scores.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluation.returncode == 0, evaluation.stderr
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score
    import json

    reported = json.loads((tmp_path / "scores.json").read_text())
    assert reported["bleu"]["score"] == pytest.approx(expected)
    assert reported["bleu"]["score"] > 80
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in reported["bleu"]["signature"]


def test_run_dir_has_logs_and_tensorboard(trained_run):
    run_dir = trained_run["run_dir"]
    assert (run_dir / "config.yaml").exists() and (run_dir / "spm.model").exists()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert "validation at step 800" in trained_run["log"]
