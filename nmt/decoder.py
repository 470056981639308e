"""Recurrent decoder with attention and input feeding (Luong et al. 2015, Sec. 3.3).

One step: the RNN reads [embedding of the previous token; previous attentional vector], its
top state queries the attention, and the attentional vector tanh(W_c [h_t; ctx]) (or, with
`combine="linear"`, W_c [h_t; ctx] + b as in OpenNMT-py's additive attention) feeds the output
layer and the next step. The attention (additive, multiplicative or multi-head) is pluggable.
Shape legend: B batch, T target length, S source length, E embedding, H decoder hidden,
C context size (the encoder state size, or a multi-head attention's size), L layers, V target
vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nmt.attention import Attention, Memory
from nmt.encoder import RNN_TYPES
from nmt.loss import LossOutput, output_loss
from nmt.stepped_lstm import SteppedLSTM


@dataclass
class DecoderState:
    """Everything one step passes to the next; `select` reorders it along the batch."""

    hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # [L, B, H] (h, c for LSTM)
    att_vec: torch.Tensor  # [B, H] previous attentional vector (zeros before the first step)

    def select(self, index: torch.Tensor) -> DecoderState:
        """Rows `index` [B'] of the batch."""
        if isinstance(self.hidden, tuple):
            hidden = tuple(h.index_select(1, index) for h in self.hidden)
        else:
            hidden = self.hidden.index_select(1, index)
        return DecoderState(hidden=hidden, att_vec=self.att_vec.index_select(0, index))


class AttentionDecoder(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        pad: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        attention: Attention,
        context_size: int,
        rnn_type: str = "lstm",
        input_feeding: bool = True,
        combine: str = "tanh",
        embedding_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.input_feeding = input_feeding
        rnn_input = embedding_dim + (hidden_size if input_feeding else 0)
        self.rnn = RNN_TYPES[rnn_type](
            rnn_input, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.attention = attention
        self.combine = nn.Linear(hidden_size + context_size, hidden_size, bias=combine == "linear")
        self.combine_tanh = combine == "tanh"
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.output = nn.Linear(hidden_size, vocab_size)
        self.hidden_size = hidden_size

    def step(self, prev: torch.Tensor, state: DecoderState, memory: Memory) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """prev [B] token ids -> logits [B, V], next state, attention weights [B, S]."""
        att_vec, state, weights = self._advance(self.embed(prev.unsqueeze(1)), state, memory)  # [B, 1, H]
        return self.logits(att_vec).squeeze(1), state, weights.squeeze(1)

    def forward(
        self, tgt_in: torch.Tensor, state: DecoderState, memory: Memory, teacher_forcing_ratio: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced decoding: tgt_in [B, T] -> attentional vectors [B, T, H], attention [B, T, S].

        The vectors are what the output layer reads (`logits`, or the fused `loss` of the model).
        With `teacher_forcing_ratio` < 1 each step feeds, per sentence, the model's own argmax
        instead of the reference token with probability 1 - ratio (scheduled sampling).
        """
        if teacher_forcing_ratio < 1.0:
            return self._forward_sampled(tgt_in, state, memory, teacher_forcing_ratio)
        emb = self.embed(tgt_in)  # [B, T, E]
        if not self.input_feeding:
            # Without input feeding no step waits for the previous attention: one fused RNN call.
            att_vecs, _, weights = self._advance(emb, state, memory)
            return att_vecs, weights
        outputs, all_weights = [], []
        stepped = self._stepped_lstm(emb)
        for step_emb in emb.unbind(1):  # unbind, not slicing: its backward is one stack, not T zero-filled copies
            att_vec, state, weights = self._advance(step_emb.unsqueeze(1), state, memory, stepped)
            outputs.append(att_vec)
            all_weights.append(weights)
        return torch.cat(outputs, dim=1), torch.cat(all_weights, dim=1)

    def _forward_sampled(
        self, tgt_in: torch.Tensor, state: DecoderState, memory: Memory, ratio: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, all_weights = [], []
        prev = tgt_in[:, 0]
        stepped = self._stepped_lstm(memory.states)
        for t in range(tgt_in.size(1)):
            if t > 0:
                use_gold = torch.rand(prev.shape, device=prev.device) < ratio
                prev = torch.where(use_gold, tgt_in[:, t], self.logits(outputs[-1]).squeeze(1).argmax(-1))
            att_vec, state, weights = self._advance(self.embed(prev.unsqueeze(1)), state, memory, stepped)
            outputs.append(att_vec)
            all_weights.append(weights)
        return torch.cat(outputs, dim=1), torch.cat(all_weights, dim=1)

    def _stepped_lstm(self, like: torch.Tensor) -> SteppedLSTM | None:
        """The hand-stepped LSTM (nmt.stepped_lstm) when training on CPU, else None: nn.LSTM per step.

        On CUDA the per-step cuDNN call stays: the stepped cell's dozen small kernels per layer
        and step have not been measured against it there.
        """
        if not (self.training and torch.is_grad_enabled() and like.device.type == "cpu" and isinstance(self.rnn, nn.LSTM)):
            return None
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32
        return SteppedLSTM.taped(self.rnn, dtype)

    def _advance(
        self, emb: torch.Tensor, state: DecoderState, memory: Memory, stepped: SteppedLSTM | None = None
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """emb [B, T, E] (T = 1 with input feeding) -> attentional vectors [B, T, H], state, weights [B, T, S]."""
        rnn_in = self.embedding_dropout(emb)
        if self.input_feeding:
            rnn_in = torch.cat([rnn_in, state.att_vec.unsqueeze(1).to(rnn_in.dtype)], dim=-1)  # [B, 1, E + H]
        if stepped is None:
            out, hidden = self.rnn(rnn_in, state.hidden)  # [B, T, H]
        else:
            top, hidden = stepped.step(rnn_in.squeeze(1), state.hidden)
            out = top.unsqueeze(1)  # [B, 1, H]
        context, weights = self._attend(out, memory)  # [B, T, C], [B, T, S]
        att_vec = self.combine(torch.cat([out, context], dim=-1))  # [B, T, H]
        if self.combine_tanh:
            att_vec = torch.tanh(att_vec)
        return att_vec, DecoderState(hidden=hidden, att_vec=att_vec[:, -1]), weights

    def _attend(self, out: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """out [B * G, T, H] -> context [B * G, T, C], weights [B * G, T, S] for memory of B sentences.

        In beam search the G = beam rows of a sentence are consecutive and share its memory: they
        query it as G x T steps of one row, so the memory is never copied per beam.
        """
        rows, steps, _ = out.shape
        sentences = memory.states.size(0)
        context, weights = self.attention(out.reshape(sentences, rows // sentences * steps, -1), memory)
        return context.reshape(rows, steps, -1), weights.reshape(rows, steps, -1)

    def logits(self, att_vec: torch.Tensor) -> torch.Tensor:
        """att_vec [B, T, H] -> logits [B, T, V]."""
        return self.output(self.hidden_dropout(att_vec))

    def loss(self, att_vecs: torch.Tensor, target: torch.Tensor, smoothing: float) -> LossOutput:
        """att_vecs [B, T, H], target [B, T] -> label-smoothed loss of `logits(att_vecs)`, fused (nmt.loss)."""
        return output_loss(self.hidden_dropout(att_vecs), target, self.output, self.embed.padding_idx, smoothing)
