"""Attention over encoder states: additive (Bahdanau 2015) and multiplicative (Luong 2015).

Every type projects the encoder states into keys once per batch (`Memory`), then scores a
query against them at each decoder step. Shape legend: B batch, T query steps, S source
length, Q query size, K encoder state size (2H), A attention size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nmt.config import AttentionConfig


@dataclass
class Memory:
    """What the decoder attends to, prepared once per batch."""

    states: torch.Tensor  # [B, S, K] encoder states (the values)
    keys: torch.Tensor  # [B, S, A] states projected for scoring
    mask: torch.Tensor  # [B, S] True at real tokens, False at padding

    def select(self, index: torch.Tensor) -> Memory:
        """Rows `index` [B'] of the batch (beam expansion, dropping finished sentences)."""
        return Memory(self.states.index_select(0, index), self.keys.index_select(0, index), self.mask.index_select(0, index))


class Attention(nn.Module):
    """Shared part: mask padding, softmax in fp32, weighted sum of the values."""

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        """states [B, S, K] -> keys [B, S, A]."""
        raise NotImplementedError

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query [B, T, Q], keys [B, S, A] -> scores [B, T, S]."""
        raise NotImplementedError

    def memory(self, states: torch.Tensor, mask: torch.Tensor) -> Memory:
        return Memory(states=states, keys=self.project_keys(states), mask=mask)

    def forward(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """query [B, T, Q] -> context [B, T, K], weights [B, T, S] (rows sum to 1, 0 on padding)."""
        scores = self.score(query, memory.keys).float()  # [B, T, S]
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1).to(memory.states.dtype)
        context = torch.bmm(weights, memory.states)  # [B, T, K]
        return context, weights


class AdditiveAttention(Attention):
    """score(q, k) = v^T tanh(W_q q + W_k k): Bahdanau et al. 2015 (A.1.2), Luong's 'concat'.

    Computed as 2 v^T (sigmoid(2 W_q q + 2 W_k k) - 1/2), the same value (tanh(a) = 2 sigmoid(2a)
    - 1): PyTorch's CPU sigmoid is cheaper than its tanh, and this [B, T, S, A] pass is the
    costliest elementwise work of a decoder step (bf16 1.4-1.8x, fp32 3-4x faster). The keys are
    stored doubled, so the factor 2 costs nothing per step; centring before the dot product keeps
    a bf16 result free of the large constant sum(v) / 2.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, hidden_size, bias=False)
        self.query_layer = nn.Linear(query_size, hidden_size, bias=True)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return self.key_layer(states) * 2  # [B, S, A]: 2 W_k k

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = self.query_layer(query) * 2  # [B, T, A]
        hidden = (q.unsqueeze(2) + keys.unsqueeze(1)).sigmoid_()  # [B, T, S, A]; in place: the sum is not kept
        # In place unless autograd keeps the sigmoid's output (a fresh buffer this size costs more than the sigmoid).
        hidden = hidden - 0.5 if hidden.requires_grad else hidden.sub_(0.5)
        return self.v(hidden).squeeze(-1) * 2  # [B, T, S]


class DotAttention(Attention):
    """score(q, k) = q^T k: Luong et al. 2015 (Eq. 8, 'dot'); needs Q == K."""

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return states

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # [B, T, S]


class GeneralAttention(DotAttention):
    """score(q, k) = q^T W k: Luong et al. 2015 (Eq. 8, 'general'); W k is computed once."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, query_size, bias=False)

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return self.key_layer(states)  # [B, S, Q]


def build_attention(cfg: AttentionConfig, query_size: int, key_size: int) -> Attention:
    """The attention module a config names (`bahdanau`, or `luong` with a score)."""
    score = "additive" if cfg.type == "bahdanau" or cfg.score == "concat" else cfg.score
    builders = {
        "additive": lambda: AdditiveAttention(query_size, key_size, cfg.hidden_size),
        "dot": lambda: DotAttention(),
        "general": lambda: GeneralAttention(query_size, key_size),
    }
    return builders[score]()
