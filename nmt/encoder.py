"""Bidirectional recurrent encoder (LSTM or GRU) that never reads padding.

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
    """Stack of bidirectional RNN layers; padding is skipped by packing (CUDA) or by reversing (CPU).

    The weights live in one bidirectional `nn.LSTM`/`nn.GRU` (its parameter names are the
    checkpoint format) whichever path runs.
    """

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
        if emb.device.type == "cuda":
            return self.forward_packed(emb, lens)
        return self.forward_reversed(emb, lens)

    def forward_packed(self, emb: torch.Tensor, lens: torch.Tensor) -> EncoderOutput:
        """One call over a packed batch: cuDNN runs all layers and both directions at once."""
        packed = pack_padded_sequence(emb, lens.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=emb.size(1))  # [B, S, 2H]
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # [2L, B, H]
        batch = h.size(1)
        final = h.view(self.num_layers, 2, batch, self.hidden_size)  # [L, 2, B, H]
        final = torch.cat([final[:, 0], final[:, 1]], dim=-1)  # [L, B, 2H]
        return EncoderOutput(states=states, final=final)

    def forward_reversed(self, emb: torch.Tensor, lens: torch.Tensor) -> EncoderOutput:
        """Same result as `forward_packed`, from 2L unpacked single-direction calls.

        On CPU a packed batch runs PyTorch's generic step loop, while a padded one runs oneDNN's
        fused RNN (forward + backward of the M1 encoder 1.7x faster in bf16, 1.4x in fp32).
        Padding at the end of a row never reaches its real positions going forward; going
        backward, each row is reversed within its own length first (padding stays at the end),
        run forward, and reversed back.
        """
        length = emb.size(1)
        lens = lens.to(emb.device)
        steps = torch.arange(length, device=emb.device)
        real = steps < lens.unsqueeze(1)  # [B, S]
        flip = torch.where(real, lens.unsqueeze(1) - 1 - steps, steps)  # [B, S]: its own inverse
        last = (lens - 1).unsqueeze(1)  # [B, 1]
        x, finals = emb, []
        for layer in range(self.num_layers):
            if layer:  # nn.LSTM's dropout: between layers, on each layer's output
                x = nn.functional.dropout(x, self.rnn.dropout, self.training)
            fwd = self._run(x, layer, "")  # [B, S, H]
            bwd = self._run(_time_gather(x, flip), layer, "_reverse")  # [B, S, H], row-reversed time
            # Both finals sit at the last real position: the backward one has read the row's first token.
            finals.append(torch.cat([_time_gather(fwd, last), _time_gather(bwd, last)], dim=-1).squeeze(1))  # [B, 2H]
            x = torch.cat([fwd, _time_gather(bwd, flip)], dim=-1)  # [B, S, 2H]
        states = x.masked_fill(~real.unsqueeze(-1), 0.0)
        return EncoderOutput(states=states, final=torch.stack(finals))

    def _run(self, x: torch.Tensor, layer: int, direction: str) -> torch.Tensor:
        """x [B, S, in] -> outputs [B, S, H] of one layer and direction of `self.rnn`, from zero state."""
        params = [getattr(self.rnn, f"{name}_l{layer}{direction}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        zeros = x.new_zeros(1, x.size(0), self.hidden_size, dtype=params[0].dtype)
        if isinstance(self.rnn, nn.LSTM):
            return torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, self.training, False, True)[0]
        return torch.gru(x, zeros, params, True, 1, 0.0, self.training, False, True)[0]


def _time_gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, S, D], index [B, S'] of time positions -> x at those positions [B, S', D]."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))
