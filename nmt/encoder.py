"""Bidirectional recurrent encoder (LSTM or GRU) over packed sequences.

Shape legend: B batch, S source length, E embedding, H hidden per direction, L layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class EncoderOutput:
    states: torch.Tensor  # [B, S, 2H], zeros at padded positions
    final: torch.Tensor  # [L, B, 2H] last hidden state per layer, both directions concatenated


class RNNEncoder(nn.Module):
    """Stack of bidirectional RNN layers; padding is skipped through packing (cuDNN-friendly)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float, rnn_type: str = "lstm") -> None:
        super().__init__()
        self.rnn = RNN_TYPES[rnn_type](
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.num_layers = num_layers
        self.hidden_size = hidden_size

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size

    def forward(self, emb: torch.Tensor, lens: torch.Tensor) -> EncoderOutput:
        """emb [B, S, E], lens [B] (CPU) -> states [B, S, 2H], final [L, B, 2H]."""
        packed = pack_padded_sequence(emb, lens.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=emb.size(1))  # [B, S, 2H]
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # [2L, B, H]
        batch = h.size(1)
        final = h.view(self.num_layers, 2, batch, self.hidden_size)  # [L, 2, B, H]
        final = torch.cat([final[:, 0], final[:, 1]], dim=-1)  # [L, B, 2H]
        return EncoderOutput(states=states, final=final)
