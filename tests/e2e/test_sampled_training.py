"""Subword regularization in training: reproducible, resumable bit for bit, and not a no-op."""

from __future__ import annotations

from pathlib import Path

import torch

from nmt.checkpoint import load_checkpoint
from nmt.config import load_config
from nmt.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
SAMPLING = ("tokenizer.sampling=true", "tokenizer.sampling_alpha=0.1")


def _fit(toy: Path, run_dir: Path, *extra: str):
    corpus = [f"data.{split}.{side}={toy}/{split}.{side}" for split in ("train", "valid") for side in ("src", "tgt")]
    overrides = [f"run_dir={run_dir}", *corpus, "train.eval_every_steps=1000", *extra]
    return Trainer(load_config(ROOT / "configs" / "tiny.yaml", overrides)).fit()


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def test_sampled_training_resumes_bit_identically_and_differs_from_plain_training(toy, tmp_path):
    _fit(toy, tmp_path / "straight", *SAMPLING, "train.max_steps=30")
    _fit(toy, tmp_path / "resumed", *SAMPLING, "train.max_steps=12")
    _fit(toy, tmp_path / "resumed", *SAMPLING, "train.max_steps=30")
    _fit(toy, tmp_path / "plain", "train.max_steps=30")
    straight, resumed, plain = (_weights(tmp_path / name) for name in ("straight", "resumed", "plain"))
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    assert not all(torch.equal(straight[name], plain[name]) for name in straight), "sampling changed nothing"
    (store,) = (tmp_path / "straight" / "store").iterdir()
    assert (store / "src.text").is_file() and (store / "tgt.text_offsets").is_file()
    assert "resuming from step 12" in (tmp_path / "resumed" / "train.log").read_text()
