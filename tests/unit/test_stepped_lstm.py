"""Tests for nmt.stepped_lstm: the hand-stepped LSTM against nn.LSTM, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt.stepped_lstm import SteppedLSTM

EMB, HIDDEN, LAYERS, BATCH, STEPS = 5, 6, 2, 3, 4


def run(rnn: nn.LSTM, feed: nn.Linear, emb: torch.Tensor, stepped: bool, dtype=torch.float32) -> torch.Tensor:
    """Input feeding in miniature: step t reads [emb_t; tanh(feed(output_{t-1}))], so every step
    depends on the one before through its input as well as its state. Returns outputs [B, T, H]."""
    hidden = (torch.zeros(LAYERS, BATCH, HIDDEN), torch.zeros(LAYERS, BATCH, HIDDEN))
    cell = SteppedLSTM.taped(rnn, dtype) if stepped else None
    fed = torch.zeros(BATCH, HIDDEN)
    outputs = []
    for step_emb in emb.unbind(1):
        x = torch.cat([step_emb, fed.to(step_emb.dtype)], dim=-1)
        if cell is None:
            out, hidden = rnn(x.unsqueeze(1), hidden)
            out = out.squeeze(1)
        else:
            out, hidden = cell.step(x, hidden)
        fed = torch.tanh(feed(out))
        outputs.append(out)
    return torch.stack(outputs, dim=1)


def setup():
    torch.manual_seed(0)
    rnn = nn.LSTM(EMB + HIDDEN, HIDDEN, LAYERS, batch_first=True, dropout=0.0)
    feed = nn.Linear(HIDDEN, HIDDEN)
    emb = torch.randn(BATCH, STEPS, EMB, requires_grad=True)
    return rnn, feed, emb


@pytest.mark.parametrize("unused_last", [False, True])
def test_values_and_gradients_equal_nn_lstm(unused_last):
    rnn, feed, emb = setup()
    params = [emb, *rnn.parameters(), *feed.parameters()]
    grads = []
    for stepped in (False, True):
        out = run(rnn, feed, emb, stepped)
        used = out[:, :-1] if unused_last else out  # a step whose output reaches no loss
        grads.append((out.detach(), torch.autograd.grad((used * torch.linspace(-1, 1, HIDDEN)).sum(), params)))
    (want_out, want), (got_out, got) = grads
    assert torch.allclose(got_out, want_out, atol=1e-6)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-6)


def test_bf16_close_to_nn_lstm_under_autocast():
    rnn, feed, emb = setup()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = run(rnn, feed, emb, stepped=False).float()
        got = run(rnn, feed, emb, stepped=True, dtype=torch.bfloat16).float()
    assert torch.allclose(got, want, atol=2e-2)
    got.sum().backward()
    assert rnn.weight_ih_l0.grad.dtype == torch.float32 and torch.isfinite(rnn.weight_ih_l0.grad).all()


def test_dropout_between_layers_only_in_training():
    rnn, feed, emb = setup()
    rnn.dropout = 0.5
    cell = SteppedLSTM.taped(rnn.eval(), torch.float32)
    x = torch.randn(BATCH, EMB + HIDDEN)
    zeros = (torch.zeros(LAYERS, BATCH, HIDDEN), torch.zeros(LAYERS, BATCH, HIDDEN))
    assert torch.equal(cell.step(x, zeros)[0], cell.step(x, zeros)[0])
    cell = SteppedLSTM.taped(rnn.train(), torch.float32)
    assert not torch.equal(cell.step(x, zeros)[0], cell.step(x, zeros)[0])
