"""Tests for nmt.loss: label-smoothed cross-entropy over non-padding tokens."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmt.loss import label_smoothed_nll

PAD = 0
V = 11


def example(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(3, 5, V, generator=gen)
    target = torch.randint(1, V, (3, 5), generator=gen)
    target[0, 3:] = PAD
    target[2, 1:] = PAD
    return logits, target


def torch_reference(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.cross_entropy(
        logits.reshape(-1, V), target.reshape(-1), ignore_index=PAD, reduction="sum", label_smoothing=smoothing
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_padding_logits_do_not_matter(smoothing):
    logits, target = example()
    changed = logits.clone()
    changed[target == PAD] = 1000.0 * torch.randn_like(changed[target == PAD])
    a = label_smoothed_nll(logits, target, PAD, smoothing)
    b = label_smoothed_nll(changed, target, PAD, smoothing)
    torch.testing.assert_close(a.loss, b.loss)
    torch.testing.assert_close(a.nll, b.nll)


def test_no_smoothing_equals_cross_entropy():
    logits, target = example(1)
    out = label_smoothed_nll(logits, target, PAD, 0.0)
    expected = torch_reference(logits, target, 0.0)
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.nll, expected)


@pytest.mark.parametrize("smoothing", [0.05, 0.1, 0.5, 0.9])
def test_smoothing_equals_torch_label_smoothing(smoothing):
    logits, target = example(2)
    out = label_smoothed_nll(logits, target, PAD, smoothing)
    torch.testing.assert_close(out.loss, torch_reference(logits, target, smoothing))


def test_nll_is_unsmoothed():
    logits, target = example(3)
    out = label_smoothed_nll(logits, target, PAD, 0.2)
    torch.testing.assert_close(out.nll, torch_reference(logits, target, 0.0))
    assert not out.nll.requires_grad


def test_gradient_is_zero_at_padding():
    logits, target = example(4)
    logits.requires_grad_(True)
    label_smoothed_nll(logits, target, PAD, 0.1).loss.backward()
    assert (logits.grad[target == PAD] == 0).all()
    assert (logits.grad[target != PAD].abs().sum(-1) > 0).all()


def test_loss_is_a_sum_over_tokens():
    logits, target = example(5)
    whole = label_smoothed_nll(logits, target, PAD, 0.1).loss
    parts = sum(label_smoothed_nll(logits[i : i + 1], target[i : i + 1], PAD, 0.1).loss for i in range(3))
    torch.testing.assert_close(whole, parts)


def test_half_precision_logits_are_computed_in_fp32():
    logits, target = example(6)
    out = label_smoothed_nll(logits.to(torch.bfloat16), target, PAD, 0.1)
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(out.loss, torch_reference(logits.to(torch.bfloat16).float(), target, 0.1))


def test_all_padding_gives_zero():
    logits, _ = example()
    target = torch.full((3, 5), PAD)
    out = label_smoothed_nll(logits, target, PAD, 0.1)
    assert out.loss.item() == 0.0 and out.nll.item() == 0.0


def test_confident_correct_prediction_has_low_loss():
    target = torch.tensor([[4, 5]])
    logits = torch.full((1, 2, V), -20.0)
    logits[0, 0, 4] = logits[0, 1, 5] = 20.0
    assert label_smoothed_nll(logits, target, PAD, 0.0).loss.item() < 1e-6
    # smoothing penalises over-confidence
    assert label_smoothed_nll(logits, target, PAD, 0.1).loss.item() > 1.0
