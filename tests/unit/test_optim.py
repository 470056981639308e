"""Tests for nmt.optim: optimizer choice, warm-up, inverse square root decay, plateau rule."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.config import TrainConfig
from nmt.optim import LRSchedule, build_optimizer


def schedule(**fields) -> LRSchedule:
    cfg = TrainConfig(**{"lr": 1e-3, "min_lr": 1e-6, **fields})
    params = [torch.nn.Parameter(torch.zeros(3))]
    return LRSchedule(build_optimizer(params, cfg), cfg)


@pytest.mark.parametrize(("name", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_build_optimizer(name, cls):
    cfg = TrainConfig(optimizer=name, lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.01 and group["betas"] == (0.8, 0.95) and group["weight_decay"] == 0.1


def test_constant_without_warmup():
    s = schedule()
    assert [s.lr_at(step) for step in (1, 10, 10_000)] == [1e-3] * 3


@pytest.mark.parametrize("kind", ["constant", "inverse_sqrt", "plateau", "linear"])
def test_warmup_ramps_linearly(kind):
    s = schedule(schedule=kind, warmup_steps=10)
    lrs = [s.lr_at(step) for step in range(1, 11)]
    for step, lr in enumerate(lrs, start=1):
        assert lr == pytest.approx(1e-3 * step / 10)
    diffs = [b - a for a, b in zip(lrs, lrs[1:])]
    assert all(d == pytest.approx(1e-4) for d in diffs)
    assert s.lr_at(10) == pytest.approx(1e-3), "peak reached at the end of warm-up"


def test_constant_after_warmup():
    s = schedule(warmup_steps=5)
    assert [s.lr_at(step) for step in (5, 6, 1000)] == [pytest.approx(1e-3)] * 3


def test_inverse_sqrt_decays():
    s = schedule(schedule="inverse_sqrt", warmup_steps=100)
    assert s.lr_at(100) == pytest.approx(1e-3)
    assert s.lr_at(400) == pytest.approx(1e-3 * 0.5)
    assert s.lr_at(10_000) == pytest.approx(1e-3 * math.sqrt(100 / 10_000))
    lrs = [s.lr_at(step) for step in range(100, 2000, 50)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_inverse_sqrt_without_warmup():
    s = schedule(schedule="inverse_sqrt")
    assert s.lr_at(1) == pytest.approx(1e-3)
    assert s.lr_at(4) == pytest.approx(5e-4)
    assert s.lr_at(100) == pytest.approx(1e-4)


def test_inverse_sqrt_respects_min_lr():
    s = schedule(schedule="inverse_sqrt", min_lr=5e-4)
    assert s.lr_at(1_000_000) == pytest.approx(5e-4)


def test_linear_follows_the_budget_used():
    s = schedule(schedule="linear", min_lr=0.0)
    assert [s.lr_at(7, p) for p in (0.0, 0.25, 0.9, 1.0)] == pytest.approx([1e-3, 7.5e-4, 1e-4, 0.0])
    assert s.lr_at(7, 1.5) == 0.0, "past the budget the rate stays at the floor"


def test_linear_respects_min_lr_and_warmup():
    s = schedule(schedule="linear", warmup_steps=10)
    assert s.lr_at(10_000, 1.0) == 1e-6
    assert s.lr_at(5, 0.5) == pytest.approx(1e-3 * 0.5 * 5 / 10), "warm-up scales the decayed rate"


def test_linear_decay_fraction_keeps_the_rate_until_the_final_share():
    s = schedule(schedule="linear", decay_fraction=0.2, min_lr=0.0)
    assert [s.lr_at(7, p) for p in (0.0, 0.5, 0.8)] == pytest.approx([1e-3] * 3)
    assert [s.lr_at(7, p) for p in (0.9, 0.95, 1.0)] == pytest.approx([5e-4, 2.5e-4, 0.0])


def test_early_stopping_starts_the_final_decay_while_the_rate_is_constant():
    s = schedule(schedule="linear", decay_fraction=0.2, min_lr=0.0, max_steps=1000)
    assert s.ends_with_decay
    s.set_step(400, 0.399)
    assert s.start_final_decay(400) == 100  # 0.2 / 0.8 of the 400 updates made
    assert s.start_final_decay(450) is None, "a running decay is not restarted"
    assert [s.lr_at(step, 0.4) for step in (401, 451, 500)] == pytest.approx([1e-3, 5e-4, 1e-5])
    assert s.lr_at(501, 0.5) == 0.0
    assert [s.final_decay_ended(step) for step in (499, 500)] == [False, True]
    restored = schedule(schedule="linear", decay_fraction=0.2, min_lr=0.0, max_steps=1000)
    restored.load_state_dict(s.state_dict())
    assert restored.lr_at(451, 0.45) == s.lr_at(451, 0.45) and restored.final_decay_ended(500)


def test_early_stopping_in_the_budget_decay_or_without_a_constant_phase_starts_nothing():
    s = schedule(schedule="linear", decay_fraction=0.2, max_steps=1000)
    s.set_step(850, 0.849)  # the budget's own decay runs: it goes on to the end of the budget
    assert s.start_final_decay(850) is None and not s.final_decay_ended(10**6)
    assert not schedule(schedule="linear").ends_with_decay  # decays from the start: early stopping stops
    assert not schedule(schedule="plateau", decay_fraction=0.2).ends_with_decay


def test_set_step_passes_progress():
    s = schedule(schedule="linear")
    assert s.set_step(3, 0.5) == pytest.approx(5e-4)
    assert s.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_set_step_writes_every_group():
    cfg = TrainConfig(lr=1e-3, schedule="inverse_sqrt", warmup_steps=4)
    optimizer = build_optimizer(
        [{"params": [torch.nn.Parameter(torch.zeros(1))]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}], cfg
    )
    s = LRSchedule(optimizer, cfg)
    assert s.set_step(2) == pytest.approx(5e-4)
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(5e-4)] * 2


@pytest.mark.parametrize("higher", [True, False])
def test_plateau_lowers_after_patience(higher):
    s = schedule(schedule="plateau", plateau_patience=2, plateau_factor=0.5)
    good, worse = (10.0, 9.0) if higher else (1.0, 2.0)
    assert s.observe(good, higher) is False
    assert s.lr_at(100) == pytest.approx(1e-3)
    assert s.observe(worse, higher) is False, "one bad validation is within patience"
    assert s.lr_at(100) == pytest.approx(1e-3)
    assert s.observe(good, higher) is True, "an equal score is not an improvement"
    assert s.lr_at(100) == pytest.approx(5e-4)
    assert s.observe(worse, higher) is False
    assert s.observe(worse, higher) is True
    assert s.lr_at(100) == pytest.approx(2.5e-4)


def test_plateau_improvement_resets_patience():
    s = schedule(schedule="plateau", plateau_patience=2)
    assert [s.observe(x, True) for x in (1.0, 0.5, 2.0, 1.5, 3.0, 2.5)] == [False] * 6
    assert s.lr_at(1) == pytest.approx(1e-3)


def test_plateau_never_below_min_lr():
    s = schedule(schedule="plateau", plateau_patience=1, plateau_factor=0.1, min_lr=1e-5)
    s.observe(1.0, True)
    for _ in range(10):
        s.observe(0.0, True)
    assert s.lr_at(50) == pytest.approx(1e-5)


def test_plateau_with_warmup_scales_the_ramp():
    s = schedule(schedule="plateau", plateau_patience=1, warmup_steps=10)
    s.observe(1.0, True)
    s.observe(0.0, True)
    assert s.lr_at(5) == pytest.approx(5e-4 * 0.5)


def test_observe_is_ignored_by_other_schedules():
    s = schedule(schedule="constant", plateau_patience=1)
    for score in (1.0, 0.0, 0.0, 0.0):
        assert s.observe(score, True) is False
    assert s.lr_at(1) == pytest.approx(1e-3)


def test_plateau_state_dict_round_trips():
    s = schedule(schedule="plateau", plateau_patience=3)
    for score in (5.0, 4.0, 3.0, 2.0, 1.0):  # one reduction, then one bad validation
        s.observe(score, True)
    state = s.state_dict()
    assert state == {"plateau_scale": 0.5, "plateau_best": 5.0, "plateau_bad": 1, "decay_start": None, "decay_steps": 0}
    restored = schedule(schedule="plateau", plateau_patience=3)
    restored.load_state_dict(state)
    assert restored.lr_at(7) == s.lr_at(7)
    # both continue identically: two more bad validations lower the rate again
    assert [restored.observe(0.0, True) for _ in range(2)] == [s.observe(0.0, True) for _ in range(2)] == [False, True]
    assert restored.state_dict() == s.state_dict()


def test_state_dict_survives_torch_save(tmp_path):
    s = schedule(schedule="plateau")
    s.observe(2.0, False)
    torch.save(s.state_dict(), tmp_path / "s.pt")
    restored = schedule(schedule="plateau")
    restored.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert restored.state_dict() == s.state_dict()
