"""Tests for nmt.loss: the fused, chunked output layer + label-smoothed loss equals the textbook path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nmt.loss
from nmt.loss import output_loss

PAD = 0
V = 11
H = 6


def example(seed: int = 0, bias: bool = True) -> tuple[torch.Tensor, torch.Tensor, nn.Linear]:
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(3, 5, H, generator=gen)
    target = torch.randint(1, V, (3, 5), generator=gen)
    target[0, 3:] = PAD
    target[2, 1:] = PAD
    torch.manual_seed(seed)
    output = nn.Linear(H, V, bias=bias)
    with torch.no_grad():
        output.weight.mul_(4.0)  # confident, unequal logits
    return features, target, output


def textbook(features: torch.Tensor, target: torch.Tensor, output: nn.Linear, smoothing: float) -> torch.Tensor:
    """The straightforward path: whole-batch logits, then torch's own label-smoothed cross-entropy."""
    logits = output(features)  # [B, T, V]
    return F.cross_entropy(
        logits.reshape(-1, V), target.reshape(-1), ignore_index=PAD, reduction="sum", label_smoothing=smoothing
    )


def grads_of(loss: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(loss, tensors)


@pytest.fixture(params=[1, 2, 1 << 22], ids=["chunk1row", "chunk2rows", "onechunk"])
def chunk_rows(request, monkeypatch) -> int:
    """Chunks of 1 row, 2 rows (a ragged last chunk) and everything at once must agree."""
    monkeypatch.setattr(nmt.loss, "CHUNK_VALUES", request.param * V)
    return request.param


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_loss_and_gradients_equal_the_textbook_path(chunk_rows, smoothing):
    features, target, output = example(1)
    features.requires_grad_(True)
    fused = output_loss(features, target, output, PAD, smoothing)
    expected = textbook(features, target, output, smoothing)
    torch.testing.assert_close(fused.loss, expected)
    params = (features, output.weight, output.bias)
    for got, want in zip(grads_of(3.0 * fused.loss, *params), grads_of(3.0 * expected, *params)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_nll_is_unsmoothed_and_detached():
    features, target, output = example(3)
    out = output_loss(features, target, output, PAD, 0.2)
    torch.testing.assert_close(out.nll, textbook(features, target, output, 0.0))
    assert out.loss.requires_grad and not out.nll.requires_grad


def test_without_grad_gives_the_same_numbers():
    features, target, output = example(4)
    with_grad = output_loss(features, target, output, PAD, 0.1)
    with torch.no_grad():
        without = output_loss(features, target, output, PAD, 0.1)
    assert not without.loss.requires_grad
    torch.testing.assert_close(without.loss, with_grad.loss.detach())


def test_output_layer_without_bias():
    features, target, output = example(5, bias=False)
    features.requires_grad_(True)
    fused = output_loss(features, target, output, PAD, 0.1)
    expected = textbook(features, target, output, 0.1)
    torch.testing.assert_close(fused.loss, expected)
    for got, want in zip(grads_of(fused.loss, features, output.weight), grads_of(expected, features, output.weight)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_padding_features_get_no_gradient():
    features, target, output = example(6)
    features.requires_grad_(True)
    output_loss(features, target, output, PAD, 0.1).loss.backward()
    assert (features.grad[target == PAD] == 0).all()
    assert (features.grad[target != PAD].abs().sum(-1) > 0).all()


def test_padding_features_do_not_matter():
    features, target, output = example(7)
    changed = features.clone()
    changed[target == PAD] = 1000.0
    torch.testing.assert_close(
        output_loss(features, target, output, PAD, 0.1).loss, output_loss(changed, target, output, PAD, 0.1).loss
    )


def test_gradients_accumulate_into_existing_ones():
    """Gradient accumulation (and weights shared with an embedding) add to .grad like any other op."""
    features, target, output = example(8)
    output_loss(features, target, output, PAD, 0.1).loss.backward()
    once = output.weight.grad.clone()
    output_loss(features, target, output, PAD, 0.1).loss.backward()
    torch.testing.assert_close(output.weight.grad, 2 * once)


def test_bf16_autocast_stays_close_and_returns_fp32():
    features, target, output = example(9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = output_loss(features, target, output, PAD, 0.1)
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(out.loss, textbook(features, target, output, 0.1), rtol=2e-2, atol=0)


def test_all_padding_gives_zero():
    features, _, output = example()
    out = output_loss(features, torch.full((3, 5), PAD), output, PAD, 0.1)
    assert out.loss.item() == 0.0 and out.nll.item() == 0.0


def test_confident_correct_prediction_has_low_loss():
    output = nn.Linear(2, V, bias=False)
    with torch.no_grad():
        output.weight.zero_()
        output.weight[4, 0] = output.weight[5, 1] = 40.0
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    target = torch.tensor([[4, 5]])
    assert output_loss(features, target, output, PAD, 0.0).loss.item() < 1e-6
    # smoothing penalises over-confidence
    assert output_loss(features, target, output, PAD, 0.1).loss.item() > 1.0
