"""train.loss_normalization: the update's summed loss divided by target tokens or by sentences."""

from __future__ import annotations

from pathlib import Path

import torch

from nmt.checkpoint import load_checkpoint
from nmt.config import load_config
from nmt.tokenizer import Tokenizer
from nmt.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def _first_moments(toy: Path, run_dir: Path, *extra: str) -> tuple[list[torch.Tensor], dict]:
    """Adam's first moments after one update over the whole toy corpus (one batch), clipping off."""
    corpus = [f"data.{split}.{side}={toy}/{split}.{side}" for split in ("train", "valid") for side in ("src", "tgt")]
    overrides = [f"run_dir={run_dir}", *corpus, "train.max_steps=1", "train.clip_grad_norm=0", "train.max_tokens=1000000"]
    Trainer(load_config(ROOT / "configs" / "tiny.yaml", [*overrides, *extra])).fit()
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    return [s["exp_avg"] for s in ckpt["optimizer"]["state"].values()], ckpt


def test_per_sentence_gradients_are_tokens_per_sentence_times_the_per_token_ones(toy, tmp_path):
    # After one Adam step exp_avg = (1 - beta1) * gradient: the gradients themselves, rescaled.
    per_token, ckpt = _first_moments(toy, tmp_path / "tokens")
    shared_spm = f"tokenizer.model_file={tmp_path / 'tokens' / 'spm.model'}"
    per_sentence, _ = _first_moments(toy, tmp_path / "sentences", shared_spm, "train.loss_normalization=sentences")
    tokenizer = Tokenizer.from_protos(ckpt["tokenizer"], "checkpoint")
    targets = tokenizer.tgt.encode((toy / "train.tgt").read_text(encoding="utf-8").splitlines())
    tokens_per_sentence = sum(len(ids) + 1 for ids in targets) / len(targets)  # eos included
    assert tokens_per_sentence > 5
    assert len(per_token) == len(per_sentence) > 0
    for a, b in zip(per_token, per_sentence):
        assert torch.allclose(b, a * tokens_per_sentence, rtol=1e-4, atol=1e-9)
