"""An nn.LSTM stepped by hand for training, with each weight's gradient formed once per sequence.

With input feeding the decoder cannot give its LSTM a whole sequence, so nn.LSTM runs once per
target position. On CPU, oneDNN's backward then forms every step's weight gradient from one
batch of rows (a [4H, in] x 64 product: a third of the GEMM's peak speed) and autograd adds the
step gradients up one by one. Here a step does only the products that depend on it (the gates
forward, the input gradient backward); the weight gradient of the whole sequence is one GEMM
over all steps' rows, formed when backward reaches the first step, which it does last: each
step's recurrent input comes from the step before. Same numbers as nn.LSTM
(tests/unit/test_stepped_lstm.py); for one backward pass per forward (no retain_graph). The
int8 search (nmt.int8) steps the same cell with int8 gate products.
Shape legend: B batch, I layer input size, H hidden size, L layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class _Tape:
    """One weight's per-step inputs [B, I + H] and gate gradients [B, 4H], by step."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []
        self.grads: dict[int, torch.Tensor] = {}

    def weight_grad(self) -> torch.Tensor:
        """Sum over steps of grad^T input [4H, I + H]; a step that got no gradient adds nothing."""
        steps = sorted(self.grads)
        grad = torch.cat([self.grads[s] for s in steps]).t() @ torch.cat([self.inputs[s] for s in steps])
        self.inputs, self.grads = [], {}
        return grad


class _TapedLinear(torch.autograd.Function):
    """(x [B, I + H], weight [4H, I + H], tape) -> x weight^T [B, 4H]; the weight's gradient comes at step 0."""

    @staticmethod
    def forward(ctx, x, weight, tape):
        x_in = x.to(weight.dtype)
        ctx.save_for_backward(weight)
        ctx.tape, ctx.step, ctx.x_dtype = tape, len(tape.inputs), x.dtype
        tape.inputs.append(x_in)
        return x_in @ weight.t()

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        grad = grad.to(weight.dtype)
        ctx.tape.grads[ctx.step] = grad
        grad_weight = ctx.tape.weight_grad() if ctx.step == 0 else None
        return (grad @ weight).to(ctx.x_dtype), grad_weight, None


def lstm_layer_weights(rnn: nn.LSTM) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's [W_ih W_hh] [4H, I + H] and b_ih + b_hh [4H] (gate order i, f, g, o), fp32."""
    return [
        (
            torch.cat([getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")], dim=1),
            getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}"),
        )
        for layer in range(rnn.num_layers)
    ]


class _TapedGates:
    """A layer's gate pre-activations for training: [x; h] [B, I + H] -> [B, 4H] fp32, weight taped."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> None:
        self.weight, self.bias, self.tape = weight.to(dtype), bias.float(), _Tape()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _TapedLinear.apply(x, self.weight, self.tape).float() + self.bias


class SteppedLSTM:
    """The layers of `rnn` (an nn.LSTM: gate order i, f, g, o, dropout between layers), one step at a time.

    `gates[layer]` maps the layer's [x; h] [B, I + H] to its gate pre-activations [B, 4H] in fp32,
    bias included; the gate arithmetic runs in fp32. `taped` builds the training version; the
    int8 search builds one with int8 products (nmt.int8).
    """

    def __init__(self, rnn: nn.LSTM, gates: list[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.gates = gates
        self.dropout = rnn.dropout
        self.training = rnn.training

    @classmethod
    def taped(cls, rnn: nn.LSTM, dtype: torch.dtype) -> SteppedLSTM:
        """For one training sequence: weights cast once to `dtype` (the autocast dtype or fp32)."""
        return cls(rnn, [_TapedGates(weight, bias, dtype) for weight, bias in lstm_layer_weights(rnn)])

    def step(
        self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [B, I], hidden (h, c) [L, B, H] -> top-layer output [B, H], next (h, c) [L, B, H]."""
        h_prev, c_prev = hidden
        hs, cs = [], []
        for layer, gates_of in enumerate(self.gates):
            if layer:
                x = nn.functional.dropout(x, self.dropout, self.training)
            gates = gates_of(torch.cat([x, h_prev[layer].to(x.dtype)], dim=-1))
            size = gates.size(-1) // 4
            i, f, _, o = gates.sigmoid().chunk(4, dim=-1)  # one sigmoid call; the g quarter is unused
            c = f * c_prev[layer] + i * gates[:, 2 * size : 3 * size].tanh()
            x = o * c.tanh()
            hs.append(x)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))
