"""Tests for nmt.attention: every score type normalises over real source positions only."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.attention import (
    AdditiveAttention,
    AdditiveHeads,
    DotAttention,
    GeneralAttention,
    Memory,
    MultiHeadAttention,
    ScaledDotAttention,
    ScaledDotHeads,
    build_attention,
)
from nmt.config import AttentionConfig

KEY = 8  # encoder state size (2H)

VARIANTS = {
    "bahdanau": AttentionConfig(type="bahdanau", hidden_size=5),
    "luong-dot": AttentionConfig(type="luong", score="dot"),
    "luong-scaled_dot": AttentionConfig(type="luong", score="scaled_dot"),
    "luong-general": AttentionConfig(type="luong", score="general"),
    "luong-concat": AttentionConfig(type="luong", score="concat", hidden_size=5),
    "multihead-additive": AttentionConfig(type="multihead", head_score="additive", heads=2, hidden_size=6),
    "multihead-scaled_dot": AttentionConfig(type="multihead", head_score="scaled_dot", heads=3, hidden_size=9),
}
EXPECTED_CLASS = {
    "bahdanau": AdditiveAttention,
    "luong-dot": DotAttention,
    "luong-scaled_dot": ScaledDotAttention,
    "luong-general": GeneralAttention,
    "luong-concat": AdditiveAttention,
    "multihead-additive": AdditiveHeads,
    "multihead-scaled_dot": ScaledDotHeads,
}


def query_size(name: str) -> int:
    return KEY if name in ("luong-dot", "luong-scaled_dot") else 6  # the dot scores need Q == K


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_attention(VARIANTS[name], query_size(name), KEY)


def inputs(name: str, steps: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """query [B, T, Q], states [B, S, K] (non-zero everywhere, padding included), mask [B, S]."""
    gen = torch.Generator().manual_seed(1)
    lens = torch.tensor([5, 2, 1, 4])
    states = torch.randn(4, 5, KEY, generator=gen)
    mask = torch.arange(5).unsqueeze(0) < lens.unsqueeze(1)
    query = torch.randn(4, steps, query_size(name), generator=gen)
    return query, states, mask


@pytest.fixture(params=list(VARIANTS))
def variant(request) -> str:
    return request.param


def test_build_attention_picks_class(variant):
    assert type(make(variant)) is EXPECTED_CLASS[variant]


def test_weights_sum_to_one_and_zero_at_padding(variant):
    attention = make(variant)
    query, states, mask = inputs(variant)
    context, weights = attention(query, attention.memory(states, mask))
    assert weights.shape == (4, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 3))
    padded = ~mask.unsqueeze(1).expand_as(weights)
    assert (weights[padded] == 0).all(), "exactly zero on padding"
    assert (weights[~padded] > 0).all()


def values(attention: torch.nn.Module, states: torch.Tensor) -> torch.Tensor:
    """What the context averages, states [B, S, K] -> [B, S, C]: the states, or all heads' values side by side."""
    return attention.value_layer(states) if isinstance(attention, MultiHeadAttention) else states


def test_context_shape_and_value(variant):
    attention = make(variant)
    query, states, mask = inputs(variant)
    context, weights = attention(query, attention.memory(states, mask))
    width = VARIANTS[variant].context_size(KEY)
    assert context.shape == (4, 3, width)
    if isinstance(attention, MultiHeadAttention):
        weights = attention.head_weights(query, attention.memory(states, mask))  # [B, N, T, S]: head n reads its own D columns
        weights = weights.repeat_interleave(width // attention.heads, dim=1).permute(0, 2, 3, 1)  # [B, T, S, C]
        torch.testing.assert_close(context, torch.einsum("btsc,bsc->btc", weights, values(attention, states)))
    else:
        torch.testing.assert_close(context, torch.einsum("bts,bsk->btk", weights, states))


def test_padded_states_do_not_matter(variant):
    attention = make(variant)
    query, states, mask = inputs(variant)
    context, weights = attention(query, attention.memory(states, mask))
    noisy = torch.where(mask.unsqueeze(-1), states, 100.0 * torch.randn_like(states))
    context2, weights2 = attention(query, attention.memory(noisy, mask))
    torch.testing.assert_close(context2, context)
    torch.testing.assert_close(weights2, weights)


def test_single_real_position_gets_all_weight(variant):
    attention = make(variant)
    query, states, mask = inputs(variant)
    context, weights = attention(query, attention.memory(states, mask))
    # row 2 has one real token
    torch.testing.assert_close(weights[2, :, 0], torch.ones(3))
    first = values(attention, states)[2, 0]
    torch.testing.assert_close(context[2], first.expand(3, first.numel()))


def test_rows_are_independent(variant):
    attention = make(variant)
    query, states, mask = inputs(variant)
    context, weights = attention(query, attention.memory(states, mask))
    alone, alone_weights = attention(query[1:2, :, :], attention.memory(states[1:2, :2], mask[1:2, :2]))
    torch.testing.assert_close(alone, context[1:2])
    torch.testing.assert_close(alone_weights, weights[1:2, :, :2])


def test_step_by_step_equals_all_steps(variant):
    attention = make(variant)
    query, states, mask = inputs(variant, steps=4)
    memory = attention.memory(states, mask)
    context, weights = attention(query, memory)
    for t in range(4):
        c_t, w_t = attention(query[:, t : t + 1], memory)
        torch.testing.assert_close(c_t[:, 0], context[:, t])
        torch.testing.assert_close(w_t[:, 0], weights[:, t])


def test_scores_follow_their_formulas():
    torch.manual_seed(0)
    q = torch.randn(2, 3, KEY)
    states = torch.randn(2, 4, KEY)
    dot = DotAttention()
    torch.testing.assert_close(dot.score(q, dot.project_keys(states)), q @ states.transpose(1, 2))
    scaled = ScaledDotAttention()
    torch.testing.assert_close(scaled.score(q, scaled.project_keys(states)), q @ states.transpose(1, 2) / math.sqrt(KEY))
    general = GeneralAttention(KEY, KEY)
    w = general.key_layer.weight  # [Q, K]
    torch.testing.assert_close(general.score(q, general.project_keys(states)), q @ w @ states.transpose(1, 2))
    additive = AdditiveAttention(KEY, KEY, 5)
    expected = torch.empty(2, 3, 4)
    for b in range(2):
        for t in range(3):
            for s in range(4):
                hidden = torch.tanh(additive.query_layer(q[b, t]) + additive.key_layer(states[b, s]))
                expected[b, t, s] = additive.v(hidden).squeeze()
    torch.testing.assert_close(additive.score(q, additive.project_keys(states)), expected)


def test_additive_score_gradients_equal_the_tanh_formula():
    # The score is computed through a sigmoid (see AdditiveAttention); training must see the
    # gradients of v^T tanh(W_q q + W_k k) itself.
    torch.manual_seed(1)
    additive = AdditiveAttention(KEY, KEY, 5)
    q = torch.randn(2, 3, KEY, requires_grad=True)
    states = torch.randn(2, 4, KEY, requires_grad=True)
    weight = torch.randn(2, 3, 4)
    params = [q, states, *additive.parameters()]
    fast = torch.autograd.grad((additive.score(q, additive.project_keys(states)) * weight).sum(), params)
    hidden = torch.tanh(additive.query_layer(q).unsqueeze(2) + additive.key_layer(states).unsqueeze(1))
    plain = torch.autograd.grad((additive.v(hidden).squeeze(-1) * weight).sum(), params)
    for got, want in zip(fast, plain):
        torch.testing.assert_close(got, want)


def test_memory_select(variant):
    attention = make(variant)
    _, states, mask = inputs(variant)
    memory = attention.memory(states, mask)
    index = torch.tensor([3, 3, 0])
    picked = memory.select(index)
    assert isinstance(picked, Memory)
    assert torch.equal(picked.states, memory.states[index])
    assert torch.equal(picked.keys, memory.keys[index])
    assert torch.equal(picked.mask, mask[index])


def test_select_then_attend_equals_attend_then_select(variant):
    attention = make(variant)
    query, states, mask = inputs(variant)
    memory = attention.memory(states, mask)
    index = torch.tensor([2, 0, 0, 3])
    context, weights = attention(query[index], memory.select(index))
    full_context, full_weights = attention(query, memory)
    torch.testing.assert_close(context, full_context[index])
    torch.testing.assert_close(weights, full_weights[index])


# ---------------------------------------------------------------------------------------------
# multi-head attention against a plain loop over its heads


MULTIHEAD = ["multihead-additive", "multihead-scaled_dot"]


def plain_multihead(attention: MultiHeadAttention, query, states, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook computation, one head and one position at a time: context [B, T, A], weights [B, N, T, S]."""
    size = attention.head_size
    batch, steps, _ = query.shape
    contexts, all_weights = [], []
    for n in range(attention.heads):
        cols = slice(n * size, (n + 1) * size)
        w_q, b_q = attention.query_layer.weight[cols], attention.query_layer.bias[cols]
        w_k, w_v = attention.key_layer.weight[cols], attention.value_layer.weight[cols]
        scores = torch.empty(batch, steps, states.size(1))
        for b in range(batch):
            for t in range(steps):
                for s in range(states.size(1)):
                    q, k = w_q @ query[b, t] + b_q, w_k @ states[b, s]
                    if isinstance(attention, AdditiveHeads):
                        scores[b, t, s] = attention.v[n] @ torch.tanh(q + k)
                    else:
                        scores[b, t, s] = q @ k / math.sqrt(size)
        weights = torch.softmax(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
        contexts.append(weights @ (states @ w_v.t()))
        all_weights.append(weights)
    return torch.cat(contexts, dim=-1), torch.stack(all_weights, dim=1)


@pytest.mark.parametrize("name", MULTIHEAD)
def test_multihead_equals_a_plain_loop_over_heads(name):
    attention = make(name)
    query, states, mask = inputs(name)
    memory = attention.memory(states, mask)
    with torch.no_grad():
        context, weights = attention(query, memory)
        want_context, want_weights = plain_multihead(attention, query, states, mask)
        torch.testing.assert_close(attention.head_weights(query, memory), want_weights)
    torch.testing.assert_close(context, want_context)
    torch.testing.assert_close(weights, want_weights.mean(1))  # plots and alignments get the heads' mean


def test_scaled_dot_heads_equal_torch_scaled_dot_product_attention():
    attention = make("multihead-scaled_dot")
    query, states, mask = inputs("multihead-scaled_dot")
    with torch.no_grad():
        context, _ = attention(query, attention.memory(states, mask))
        split = attention.split
        want = torch.nn.functional.scaled_dot_product_attention(
            split(attention.query_layer(query)),
            split(attention.key_layer(states)),
            split(attention.value_layer(states)),
            attn_mask=mask[:, None, None, :],
        )  # [B, N, T, D]
    torch.testing.assert_close(context, want.transpose(1, 2).flatten(2))


@pytest.mark.parametrize("name", MULTIHEAD)
def test_each_head_normalises_over_real_positions_and_heads_differ(name):
    attention = make(name)
    query, states, mask = inputs(name)
    memory = attention.memory(states, mask)
    heads = VARIANTS[name].heads
    assert memory.keys.shape == memory.states.shape == (4, heads, 5, attention.head_size)
    weights = attention.head_weights(query, memory)
    assert weights.shape == (4, heads, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, heads, 3))
    assert (weights[~mask[:, None, None, :].expand_as(weights)] == 0).all()
    assert not torch.allclose(weights[:, 0], weights[:, 1])


def test_additive_heads_gradients_equal_the_tanh_formula():
    # As for AdditiveAttention: the sigmoid form must train like v_n^T tanh(W_q,n q + W_k,n k).
    attention = make("multihead-additive")
    query, states, _ = inputs("multihead-additive")
    query.requires_grad_(True)
    states.requires_grad_(True)
    weight = torch.randn(4, 2, 3, 5)
    params = [query, states, *attention.query_layer.parameters(), attention.key_layer.weight, attention.v]
    fast = torch.autograd.grad((attention.score(query, attention.project_keys(states)) * weight).sum(), params)
    split = attention.split
    hidden = torch.tanh(split(attention.query_layer(query)).unsqueeze(-2) + split(attention.key_layer(states)).unsqueeze(-3))
    plain = torch.autograd.grad((torch.einsum("bntsd,nd->bnts", hidden, attention.v) * weight).sum(), params)
    for got, want in zip(fast, plain):
        torch.testing.assert_close(got, want)


def test_heads_must_divide_the_attention_size():
    with pytest.raises(ValueError, match="4 heads do not divide the attention size 6"):
        AdditiveHeads(6, KEY, 6, 4)
