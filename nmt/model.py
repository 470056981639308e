"""Seq2Seq: source embeddings + bidirectional encoder + bridge + attention decoder.

Shape legend: B batch, S source length, T target length, E embedding, H decoder hidden,
K encoder state size (2 x encoder hidden), L decoder layers, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from nmt.attention import Memory, build_attention
from nmt.config import ModelConfig
from nmt.decoder import AttentionDecoder, DecoderState
from nmt.encoder import EncoderOutput, RNNEncoder
from nmt.loss import LossOutput
from nmt.tokenizer import Vocab


class Bridge(nn.Module):
    """Decoder initial state from the encoder's final top-layer state: tanh(W [fwd; bwd]), or zeros."""

    def __init__(self, kind: str, key_size: int, hidden_size: int, num_layers: int, is_lstm: bool) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.num_states = 2 if is_lstm else 1
        self.proj = nn.Linear(key_size, self.num_states * num_layers * hidden_size) if kind == "linear" else None

    def forward(self, enc: EncoderOutput) -> DecoderState:
        top = enc.final[-1]  # [B, K]
        batch = top.size(0)
        if self.proj is None:
            states = top.new_zeros(self.num_states, self.num_layers, batch, self.hidden_size)
        else:
            states = torch.tanh(self.proj(top))  # [B, n * L * H]
            states = states.view(batch, self.num_states, self.num_layers, self.hidden_size).permute(1, 2, 0, 3)
        states = states.contiguous()  # [n, L, B, H]
        hidden = (states[0], states[1]) if self.num_states == 2 else states[0]
        return DecoderState(hidden=hidden, att_vec=top.new_zeros(batch, self.hidden_size))


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab: Vocab, tgt_vocab: Vocab) -> None:
        super().__init__()
        enc_cfg, dec_cfg = cfg.encoder, cfg.decoder
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.src_embed = nn.Embedding(src_vocab.size, cfg.embedding_dim, padding_idx=src_vocab.pad)
        self.src_dropout = nn.Dropout(cfg.embedding_dropout)
        self.encoder = RNNEncoder(cfg.embedding_dim, enc_cfg.hidden_size, enc_cfg.num_layers, enc_cfg.dropout, enc_cfg.rnn_type)
        key_size = self.encoder.output_size
        self.bridge = Bridge(dec_cfg.bridge, key_size, dec_cfg.hidden_size, dec_cfg.num_layers, dec_cfg.rnn_type == "lstm")
        self.decoder = AttentionDecoder(
            vocab_size=tgt_vocab.size,
            pad=tgt_vocab.pad,
            embedding_dim=cfg.embedding_dim,
            hidden_size=dec_cfg.hidden_size,
            num_layers=dec_cfg.num_layers,
            dropout=dec_cfg.dropout,
            attention=build_attention(cfg.attention, dec_cfg.hidden_size, key_size),
            context_size=cfg.attention.context_size(key_size),
            rnn_type=dec_cfg.rnn_type,
            input_feeding=dec_cfg.input_feeding,
            combine=dec_cfg.combine,
            embedding_dropout=cfg.embedding_dropout,
            hidden_dropout=dec_cfg.hidden_dropout,
        )
        self._init_weights(cfg.init, cfg.init_scale)
        if cfg.tie_source_target_embeddings:
            self.decoder.embed.weight = self.src_embed.weight
        if cfg.tie_target_embeddings:
            self.decoder.output.weight = self.decoder.embed.weight

    def _init_weights(self, kind: str, scale: float) -> None:
        # U(-0.1, 0.1) everywhere is what OpenNMT-py and the peer baselines use; it learns fast here.
        for param in self.parameters():
            if kind == "uniform" or param.dim() < 2:
                nn.init.uniform_(param, -scale, scale)
            else:
                nn.init.xavier_uniform_(param)
        with torch.no_grad():
            self.src_embed.weight[self.src_vocab.pad].zero_()
            self.decoder.embed.weight[self.tgt_vocab.pad].zero_()

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[Memory, DecoderState]:
        """src [B, S], src_lens [B] -> attention memory over [B, S, K] and the decoder's first state."""
        enc = self.encoder(self.src_dropout(self.src_embed(src)), src_lens)
        mask = src != self.src_vocab.pad  # [B, S]
        return self.decoder.attention.memory(enc.states, mask), self.bridge(enc)

    def forward(
        self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor, teacher_forcing_ratio: float = 1.0
    ) -> torch.Tensor:
        """Teacher-forced attentional vectors [B, T, H] for tgt_in [B, T]: the input of `logits` and `loss`."""
        memory, state = self.encode(src, src_lens)
        att_vecs, _ = self.decoder(tgt_in, state, memory, teacher_forcing_ratio)
        return att_vecs

    def logits(self, att_vecs: torch.Tensor) -> torch.Tensor:
        """att_vecs [B, T, H] -> logits [B, T, V]."""
        return self.decoder.logits(att_vecs)

    def loss(self, att_vecs: torch.Tensor, tgt_out: torch.Tensor, smoothing: float = 0.0) -> LossOutput:
        """Label-smoothed cross-entropy of `logits(att_vecs)` against tgt_out [B, T], summed over non-padding tokens."""
        return self.decoder.loss(att_vecs, tgt_out, smoothing)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
