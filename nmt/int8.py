"""int8 search on CPU: the decoder's per-step matrix products in int8, with int32 accumulation.

A beam step on a CPU spends two thirds of its time in the LSTM, output-layer, attention-query
and combine products, at the bf16 GEMM peak; int8 products (AVX512-VNNI) run about twice as
fast. Weights are quantized once, symmetrically per output channel; activations per row at each
call (dynamic quantization), so no calibration data is needed. Everything else (encoder,
attention scores, softmax, search) runs as in bf16 search. Shape legend: M rows, I input size,
O output size, B batch, H hidden size, L layers.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nmt.decoder import AttentionDecoder
from nmt.stepped_lstm import SteppedLSTM, lstm_layer_weights

_TINY = torch.finfo(torch.float32).tiny  # scale of an all-zero row or channel: quantizes it to zeros
_BLOCK_BYTES = 1 << 20


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, I] -> int8 [M, I] and fp32 scales [M, 1], x ~ int8 * scale (each row's largest |value| -> 127)."""
    x = x.float()
    scale = x.abs().amax(dim=-1, keepdim=True).clamp_(min=_TINY) / 127.0
    return (x / scale).round_().to(torch.int8), scale


class Int8Linear(nn.Module):
    """y = x W^T + b with W int8 per output channel and x int8 per row: [..., I] -> [..., O] in `out_dtype`."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, out_dtype: torch.dtype) -> None:
        super().__init__()
        q_weight, scale = quantize_rows(weight.detach())  # [O, I], [O, 1]
        self.register_buffer("q_weight", q_weight)
        self.register_buffer("scale", scale.squeeze(1))  # [O]
        self.register_buffer("bias", None if bias is None else bias.detach().float())
        self.out_dtype = out_dtype

    @classmethod
    def from_linear(cls, linear: nn.Linear, out_dtype: torch.dtype) -> Int8Linear:
        return cls(linear.weight, linear.bias, out_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q_x, row_scale = quantize_rows(x.reshape(-1, x.size(-1)))  # [M, I], [M, 1]
        rows, size = q_x.shape[0], self.q_weight.shape[0]
        out = torch.empty(rows, size, device=x.device)  # [M, O] fp32
        # Blocks of columns with about 1 MiB of int32 sums, each rescaled while still in cache: one
        # pass over [M, O] instead of three (the output layer at 550 rows: 12 ms, not 20-30).
        block = max(64, _BLOCK_BYTES // (4 * rows) // 64 * 64)
        for start in range(0, size, block):
            cols = slice(start, start + block)
            part = torch.mul(torch._int_mm(q_x, self.q_weight[cols].t()), row_scale, out=out[:, cols])
            part.mul_(self.scale[cols])
            if self.bias is not None:
                part.add_(self.bias[cols])
        return out.to(self.out_dtype).view(*x.shape[:-1], size)


class Int8LSTM(nn.Module):
    """nn.LSTM's one-step call, rnn(x [B, 1, I], (h, c) [L, B, H]) -> (out [B, 1, H], (h, c)), int8 gates."""

    def __init__(self, rnn: nn.LSTM) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Int8Linear(weight, bias, torch.float32) for weight, bias in lstm_layer_weights(rnn))
        self.cell = SteppedLSTM(rnn.eval(), list(self.layers))

    def forward(
        self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if x.size(1) != 1:
            raise ValueError(f"Int8LSTM steps one position at a time, got {x.size(1)}")
        out, hidden = self.cell.step(x.squeeze(1), hidden)
        return out.unsqueeze(1), hidden


def int8_decoder(decoder: AttentionDecoder) -> AttentionDecoder:
    """A copy of `decoder` for search whose per-step products are int8 (an LSTM's gates, the
    attention query, all heads' at once for multihead, the combine layer, the output layer);
    their outputs are bf16 like the rest of the search, except the logits (fp32, read by the
    log-softmax). A GRU stays as it is; so do the attention's key and value projections, run once
    per batch by the model's encode, and the additive scores' v, part of their elementwise pass."""
    decoder = copy.deepcopy(decoder).eval()
    if isinstance(decoder.rnn, nn.LSTM):
        decoder.rnn = Int8LSTM(decoder.rnn)
    if isinstance(getattr(decoder.attention, "query_layer", None), nn.Linear):
        decoder.attention.query_layer = Int8Linear.from_linear(decoder.attention.query_layer, torch.bfloat16)
    decoder.combine = Int8Linear.from_linear(decoder.combine, torch.bfloat16)
    decoder.output = Int8Linear.from_linear(decoder.output, torch.float32)
    return decoder
