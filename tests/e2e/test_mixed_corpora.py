"""Training on several corpora mixed by weight: shares logged, one store per corpus, exact resume."""

from __future__ import annotations

from pathlib import Path

import torch

from nmt.checkpoint import load_checkpoint
from nmt.config import load_config
from nmt.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def _two_corpora(toy: Path, out: Path) -> list[str]:
    """Overrides for data.train = the toy corpus's first quarter (weight 3) and the rest (weight 1)."""
    overrides = []
    for side in ("src", "tgt"):
        lines = (toy / f"train.{side}").read_text().splitlines(keepends=True)
        cut = len(lines) // 4
        for index, part in enumerate((lines[:cut], lines[cut:])):
            (out / f"part{index}.{side}").write_text("".join(part))
            overrides.append(f"data.train.{index}.{side}={out / f'part{index}.{side}'}")
    return [*overrides, "data.train.0.weight=3", "data.train.1.weight=1"]


def _fit(toy: Path, run_dir: Path, corpora: list[str], *extra: str):
    valid = [f"data.valid.{side}={toy}/valid.{side}" for side in ("src", "tgt")]
    overrides = [f"run_dir={run_dir}", *corpora, *valid, "train.eval_every_steps=1000", *extra]
    return Trainer(load_config(ROOT / "configs" / "tiny.yaml", overrides)).fit()


def test_weighted_corpora_log_their_shares_and_a_run_stopped_mid_epoch_resumes_exactly(toy, tmp_path):
    corpora = _two_corpora(toy, tmp_path)
    straight = _fit(toy, tmp_path / "straight", corpora, "train.max_steps=0", "train.max_epochs=2")
    log = (tmp_path / "straight" / "train.log").read_text()
    assert "data.train.0: 750 pairs, none dropped" in log and "data.train.1: 2250 pairs, none dropped" in log
    assert "data.train.0: weight 3: 2,250 pairs an epoch (3.00 x its 750)" in log
    assert "data.train.1: weight 1: 750 pairs an epoch (0.33 x its 2,250)" in log
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "straight" / "store").iterdir()) == ["data.train.0", "data.train.1"]

    stopped = _fit(toy, tmp_path / "resumed", corpora, "train.max_steps=25")
    assert stopped.epoch == 1 and stopped.batch_in_epoch == 25  # mid-way through the first epoch
    resumed = _fit(toy, tmp_path / "resumed", corpora, "train.max_steps=0", "train.max_epochs=2")
    assert (resumed.step, resumed.epoch) == (straight.step, straight.epoch) and straight.step > 50
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[name], b[name]) for name in a)
