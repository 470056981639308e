"""Attention over encoder states: additive (Bahdanau 2015), multiplicative (Luong 2015) and
multi-head (RNMT+, Chen et al. 2018).

Every type projects the encoder states into keys once per batch (`Memory`), then scores a
query against them at each decoder step. Shape legend: B batch, T query steps, S source
length, Q query size, K encoder state size (2H), A attention size, N heads, D = A / N head size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from nmt.config import AttentionConfig


@dataclass
class Memory:
    """What the decoder attends to, prepared once per batch."""

    states: torch.Tensor  # the values: [B, S, K] encoder states; multihead: [B, N, S, D], their per-head projections
    keys: torch.Tensor  # [B, S, A] states projected for scoring; multihead: [B, N, S, D]
    mask: torch.Tensor  # [B, S] True at real tokens, False at padding

    def select(self, index: torch.Tensor) -> Memory:
        """Rows `index` [B'] of the batch (beam expansion, dropping finished sentences)."""
        return Memory(self.states.index_select(0, index), self.keys.index_select(0, index), self.mask.index_select(0, index))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """scores [B, ..., S], mask [B, S] -> weights [B, ..., S] in `dtype`: softmax in fp32, exactly 0 on padding."""
    mask = mask.view(mask.size(0), *[1] * (scores.dim() - 2), mask.size(1))
    scores = scores.float().masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).to(dtype)


def half_tanh(q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """q [..., T, A] = 2 W_q q, keys [..., S, A] = 2 W_k k -> tanh(W_q q + W_k k) / 2 [..., T, S, A].

    Computed as sigmoid(q + keys) - 1/2, the same value (tanh(a) = 2 sigmoid(2a) - 1): PyTorch's
    CPU sigmoid is cheaper than its tanh, and this [..., T, S, A] pass is the costliest
    elementwise work of a decoder step (bf16 1.4-1.8x, fp32 3-4x faster). The callers store the
    keys doubled, so the factor 2 costs nothing per step; centring before their dot product with
    v keeps a bf16 result free of the large constant sum(v) / 2.
    """
    hidden = (q.unsqueeze(-2) + keys.unsqueeze(-3)).sigmoid_()  # in place: the sum is not kept
    # In place unless autograd keeps the sigmoid's output (a fresh buffer this size costs more than the sigmoid).
    return hidden - 0.5 if hidden.requires_grad else hidden.sub_(0.5)


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
        weights = masked_softmax(self.score(query, memory.keys), memory.mask, memory.states.dtype)  # [B, T, S]
        context = torch.bmm(weights, memory.states)  # [B, T, K]
        return context, weights


class AdditiveAttention(Attention):
    """score(q, k) = v^T tanh(W_q q + W_k k): Bahdanau et al. 2015 (A.1.2), Luong's 'concat'.

    The tanh is `half_tanh`'s sigmoid form: 2 v^T (sigmoid(2 W_q q + 2 W_k k) - 1/2).
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, hidden_size, bias=False)
        self.query_layer = nn.Linear(query_size, hidden_size, bias=True)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return self.key_layer(states) * 2  # [B, S, A]: 2 W_k k

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        hidden = half_tanh(self.query_layer(query) * 2, keys)  # [B, T, S, A]
        return self.v(hidden).squeeze(-1) * 2  # [B, T, S]


class DotAttention(Attention):
    """score(q, k) = q^T k: Luong et al. 2015 (Eq. 8, 'dot'); needs Q == K."""

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return states

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # [B, T, S]


class ScaledDotAttention(DotAttention):
    """score(q, k) = q^T k / sqrt(K): Luong's 'dot' scaled as in Vaswani et al. 2017 (Sec. 3.2.1).

    The scale keeps the scores' spread independent of the state size, so a wide encoder does not
    start training with a saturated softmax. Needs Q == K, like 'dot'. The keys are the states
    scaled once per batch, so a decoder step costs what 'dot' costs.
    """

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return states / math.sqrt(states.size(-1))  # [B, S, K]


class GeneralAttention(DotAttention):
    """score(q, k) = q^T W k: Luong et al. 2015 (Eq. 8, 'general'); W k is computed once."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, query_size, bias=False)

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return self.key_layer(states)  # [B, S, Q]


class MultiHeadAttention(Attention):
    """N heads over the encoder states, as in RNMT+ (Chen et al. 2018; there the bottom decoder
    layer queries, here the top one, as for every type): each head scores its own D-wide
    projections of the query and the states (the subclass's score), takes its own softmax, and
    averages its own D-wide projection of the states (the values); the N contexts, side by side,
    are the context [B, T, A].

    `hidden_size` A is the width of all heads together (each D = A / N), so the head count changes
    no parameter count, and a step's elementwise work is that of one head A wide. There is no output
    projection W_o: the decoder's combine layer W_c [h; ctx] that follows is linear in ctx, so
    W_c W_o would be one matrix of no more use than W_c alone, at an extra product per step.

    The keys and values are stored split into heads, [B, N, S, D], once per batch; a step splits
    only its query. The weights this returns for plots and alignments are the heads' mean
    [B, T, S] (still rows summing to 1, 0 on padding); `head_weights` gives each head's.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int, heads: int) -> None:
        super().__init__()
        if hidden_size % heads:
            raise ValueError(f"{heads} heads do not divide the attention size {hidden_size}")
        self.heads, self.head_size = heads, hidden_size // heads
        self.query_layer = nn.Linear(query_size, hidden_size, bias=True)  # a key bias would shift no softmax
        self.key_layer = nn.Linear(key_size, hidden_size, bias=False)
        self.value_layer = nn.Linear(key_size, hidden_size, bias=False)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, L, A] -> [B, N, L, D], head n holding columns n * D to (n + 1) * D."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def memory(self, states: torch.Tensor, mask: torch.Tensor) -> Memory:
        values = self.split(self.value_layer(states)).contiguous()  # [B, N, S, D]
        return Memory(states=values, keys=self.project_keys(states).contiguous(), mask=mask)

    def head_weights(self, query: torch.Tensor, memory: Memory) -> torch.Tensor:
        """query [B, T, Q] -> each head's weights [B, N, T, S] (rows sum to 1, 0 on padding)."""
        return masked_softmax(self.score(query, memory.keys), memory.mask, memory.states.dtype)

    def forward(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """query [B, T, Q] -> context [B, T, A] (the heads' contexts side by side), weights [B, T, S] (the heads' mean)."""
        weights = self.head_weights(query, memory)  # [B, N, T, S]
        context = torch.matmul(weights, memory.states)  # [B, N, T, D]
        return context.transpose(1, 2).flatten(2), weights.mean(1)


class AdditiveHeads(MultiHeadAttention):
    """Head n: v_n^T tanh(W_q,n q + W_k,n k), RNMT+'s multi-head additive attention, in `half_tanh`'s sigmoid form."""

    def __init__(self, query_size: int, key_size: int, hidden_size: int, heads: int) -> None:
        super().__init__(query_size, key_size, hidden_size, heads)
        bound = self.head_size**-0.5  # nn.Linear's default initialisation
        self.v = nn.Parameter(torch.empty(heads, self.head_size).uniform_(-bound, bound))  # [N, D]

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return self.split(self.key_layer(states) * 2)  # [B, N, S, D]: 2 W_k k

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query [B, T, Q], keys [B, N, S, D] -> scores [B, N, T, S]."""
        # The query made contiguous (it is small): the [B, N, T, S, D] sum takes its layout, and
        # the product below needs that buffer contiguous to read it without a copy.
        hidden = half_tanh(self.split(self.query_layer(query) * 2).contiguous(), keys)  # [B, N, T, S, D]
        # Per head one [T * S, D] x [D] product: no second [B, N, T, S, D] buffer, as v's
        # elementwise product and a sum would need (measured 1.2-3x slower).
        scores = torch.matmul(hidden.flatten(2, 3), self.v.unsqueeze(-1))  # [B, N, T * S, 1]
        return scores.view(hidden.shape[:-1]) * 2


class ScaledDotHeads(MultiHeadAttention):
    """Head n: (W_q,n q)^T (W_k,n k) / sqrt(D), Vaswani et al. 2017's scaled dot product; the keys are stored scaled."""

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        return self.split(self.key_layer(states) / math.sqrt(self.head_size))  # [B, N, S, D]

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query [B, T, Q], keys [B, N, S, D] -> scores [B, N, T, S]."""
        return torch.matmul(self.split(self.query_layer(query)), keys.transpose(-1, -2))


def build_attention(cfg: AttentionConfig, query_size: int, key_size: int) -> Attention:
    """The attention module a config names (`bahdanau`, `luong` with a score, or `multihead` with a head score)."""
    if cfg.type == "multihead":
        heads = {"additive": AdditiveHeads, "scaled_dot": ScaledDotHeads}[cfg.head_score]
        return heads(query_size, key_size, cfg.hidden_size, cfg.heads)
    score = "additive" if cfg.type == "bahdanau" or cfg.score == "concat" else cfg.score
    builders = {
        "additive": lambda: AdditiveAttention(query_size, key_size, cfg.hidden_size),
        "dot": lambda: DotAttention(),
        "scaled_dot": lambda: ScaledDotAttention(),
        "general": lambda: GeneralAttention(query_size, key_size),
    }
    return builders[score]()
