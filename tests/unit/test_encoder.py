"""Tests for nmt.encoder: the CPU path (per-row reversal, unpacked) against packed sequences."""

from __future__ import annotations

import pytest
import torch

from nmt.encoder import RNNEncoder


def encoder_and_batch(rnn_type: str, layers: int):
    torch.manual_seed(3)
    enc = RNNEncoder(12, 7, layers, dropout=0.0, rnn_type=rnn_type)
    lens = torch.tensor([6, 2, 6, 1, 4])
    emb = torch.randn(5, 6, 12, requires_grad=True)
    return enc, emb, lens


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_reversed_path_equals_packed(rnn_type, layers):
    enc, emb, lens = encoder_and_batch(rnn_type, layers)
    packed, reversed_ = enc.forward_packed(emb, lens), enc.forward_reversed(emb, lens)
    assert torch.allclose(reversed_.states, packed.states, atol=1e-6)
    assert torch.allclose(reversed_.final, packed.final, atol=1e-6)
    assert reversed_.final.shape == (layers, 5, 14)
    params = [emb, *enc.parameters()]
    want = torch.autograd.grad(packed.states.sum() + packed.final.pow(2).sum(), params)
    got = torch.autograd.grad(reversed_.states.sum() + reversed_.final.pow(2).sum(), params)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-5)


def test_padding_is_never_read_and_stays_zero():
    enc, emb, lens = encoder_and_batch("lstm", 2)
    clean = enc.forward_reversed(emb, lens)
    noisy_emb = emb.detach().clone()
    for row, n in enumerate(lens.tolist()):
        noisy_emb[row, n:] = 100.0
    noisy = enc.forward_reversed(noisy_emb, lens)
    assert torch.equal(noisy.states, clean.states)
    assert torch.equal(noisy.final, clean.final)
    for row, n in enumerate(lens.tolist()):
        assert not noisy.states[row, n:].any()


def test_cpu_forward_takes_the_reversed_path(monkeypatch):
    enc, emb, lens = encoder_and_batch("lstm", 2)
    monkeypatch.setattr(enc, "forward_packed", lambda *a: pytest.fail("packed path on CPU"))
    assert enc(emb, lens).states.shape == (5, 6, 14)
