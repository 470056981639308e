"""Tests for nmt.attention: every score type normalises over real source positions only."""

from __future__ import annotations

import pytest
import torch

from nmt.attention import AdditiveAttention, DotAttention, GeneralAttention, Memory, build_attention
from nmt.config import AttentionConfig

KEY = 8  # encoder state size (2H)
QUERY_SIZES = {"dot": KEY, "general": 6, "concat": 6, "bahdanau": 6}

VARIANTS = {
    "bahdanau": AttentionConfig(type="bahdanau", hidden_size=5),
    "luong-dot": AttentionConfig(type="luong", score="dot"),
    "luong-general": AttentionConfig(type="luong", score="general"),
    "luong-concat": AttentionConfig(type="luong", score="concat", hidden_size=5),
}
EXPECTED_CLASS = {
    "bahdanau": AdditiveAttention,
    "luong-dot": DotAttention,
    "luong-general": GeneralAttention,
    "luong-concat": AdditiveAttention,
}


def query_size(name: str) -> int:
    return QUERY_SIZES[name.split("-")[-1]]


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


def test_context_shape_and_value(variant):
    attention = make(variant)
    query, states, mask = inputs(variant)
    context, weights = attention(query, attention.memory(states, mask))
    assert context.shape == (4, 3, KEY)
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
    torch.testing.assert_close(context[2], states[2, 0].expand(3, KEY))


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
    assert torch.equal(picked.states, states[index])
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
