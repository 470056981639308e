"""Tests for nmt.decoder and nmt.model: teacher forcing equals stepping, padding invariance, tying."""

from __future__ import annotations

import pytest
import torch

from nmt.batching import collate
from nmt.config import AttentionConfig, DecoderConfig, EncoderConfig, ModelConfig
from nmt.model import Seq2Seq
from nmt.tokenizer import Vocab

VOCAB = Vocab(size=20, pad=0, unk=1, bos=2, eos=3)
ATTENTIONS = {
    "bahdanau": AttentionConfig(type="bahdanau", hidden_size=7),
    "luong-dot": AttentionConfig(type="luong", score="dot"),
    "luong-scaled_dot": AttentionConfig(type="luong", score="scaled_dot"),
    "luong-general": AttentionConfig(type="luong", score="general"),
    "luong-concat": AttentionConfig(type="luong", score="concat", hidden_size=7),
    "multihead-additive": AttentionConfig(type="multihead", head_score="additive", heads=2, hidden_size=8),
    "multihead-scaled_dot": AttentionConfig(type="multihead", head_score="scaled_dot", heads=3, hidden_size=9),
}
ATOL = 1e-5


def model_config(attention: str = "bahdanau", input_feeding: bool = True, rnn_type: str = "lstm", **extra) -> ModelConfig:
    fields = {
        "embedding_dim": 8,
        "embedding_dropout": 0.3,
        "encoder": EncoderConfig(rnn_type=rnn_type, hidden_size=6, num_layers=2, dropout=0.3),
        "attention": ATTENTIONS[attention],
        "decoder": DecoderConfig(
            rnn_type=rnn_type, hidden_size=12, num_layers=2, dropout=0.3, input_feeding=input_feeding, hidden_dropout=0.3
        ),
    }
    fields.update(extra)
    return ModelConfig(**fields)


def build(cfg: ModelConfig, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(cfg, VOCAB, VOCAB).eval()


def with_decoder(cfg: ModelConfig, **changes) -> ModelConfig:
    return ModelConfig(**{**cfg.__dict__, "decoder": DecoderConfig(**{**cfg.decoder.__dict__, **changes})})


SRC = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [15], [4, 16, 17, 18, 19]]
TGT = [[6, 7], [9, 10, 11, 12, 13, 14], [4, 5, 6, 7], [19]]


def batch(indices: list[int]):
    return collate(indices, SRC, TGT, VOCAB.pad, VOCAB.bos, VOCAB.eos)


@pytest.fixture(
    params=[(a, f, r) for a in ATTENTIONS for f in (True, False) for r in ("lstm", "gru")], ids=lambda p: "-".join(map(str, p))
)
def model(request) -> Seq2Seq:
    attention, feeding, rnn = request.param
    return build(model_config(attention, feeding, rnn))


def step_loop(model: Seq2Seq, b) -> tuple[torch.Tensor, torch.Tensor]:
    memory, state = model.encode(b.src, b.src_lens)
    logits, weights = [], []
    for t in range(b.tgt_in.size(1)):
        step_logits, state, step_weights = model.decoder.step(b.tgt_in[:, t], state, memory)
        logits.append(step_logits)
        weights.append(step_weights)
    return torch.stack(logits, dim=1), torch.stack(weights, dim=1)


def test_forward_equals_step_loop(model):
    b = batch([0, 1, 2, 3])
    with torch.no_grad():
        forced = model.logits(model(b.src, b.src_lens, b.tgt_in))
        stepped, _ = step_loop(model, b)
    assert forced.shape == (4, b.tgt_in.size(1), VOCAB.size)
    torch.testing.assert_close(forced, stepped, atol=ATOL, rtol=0)


def test_decoder_forward_weights_equal_step_weights(model):
    b = batch([1, 2])
    with torch.no_grad():
        memory, state = model.encode(b.src, b.src_lens)
        _, weights = model.decoder(b.tgt_in, state, memory)
        _, stepped = step_loop(model, b)
    torch.testing.assert_close(weights, stepped, atol=ATOL, rtol=0)
    pad = (b.src == VOCAB.pad).unsqueeze(1).expand_as(weights)
    assert (weights[pad] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))


@pytest.mark.parametrize("order", ["short-first", "short-last"])
def test_source_padding_does_not_change_result(model, order):
    # Sentence 0 alone vs. padded next to the longer sentence 1 (source and target both padded).
    alone = batch([0])
    together = batch([0, 1] if order == "short-first" else [1, 0])
    row = 0 if order == "short-first" else 1
    assert together.src.size(1) > alone.src.size(1)
    steps = alone.tgt_in.size(1)
    with torch.no_grad():
        expected = model.logits(model(alone.src, alone.src_lens, alone.tgt_in))[0]
        padded = model.logits(model(together.src, together.src_lens, together.tgt_in))[row, :steps]
    torch.testing.assert_close(padded, expected, atol=ATOL, rtol=0)


def test_encoder_states_zero_at_padding_and_final_matches_unpadded(model):
    together = batch([0, 1])
    alone = batch([0])
    with torch.no_grad():
        emb = model.src_embed(together.src)
        enc = model.encoder(emb, together.src_lens)
        enc_alone = model.encoder(model.src_embed(alone.src), alone.src_lens)
    n = int(together.src_lens[0])
    assert enc.states.shape == (2, together.src.size(1), 12)
    assert (enc.states[0, n:] == 0).all()
    torch.testing.assert_close(enc.states[0, :n], enc_alone.states[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(enc.final[:, 0], enc_alone.final[:, 0], atol=ATOL, rtol=0)
    assert enc.final.shape == (2, 2, 12)


def test_encoder_final_is_last_forward_and_first_backward_state(model):
    b = batch([0, 1])
    with torch.no_grad():
        enc = model.encoder(model.src_embed(b.src), b.src_lens)
    for row in range(2):
        n = int(b.src_lens[row])
        top = enc.final[-1, row]
        torch.testing.assert_close(top[:6], enc.states[row, n - 1, :6])  # forward direction ends at the last token
        torch.testing.assert_close(top[6:], enc.states[row, 0, 6:])  # backward direction ends at the first


def test_eval_mode_is_deterministic(model):
    b = batch([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(model(b.src, b.src_lens, b.tgt_in), model(b.src, b.src_lens, b.tgt_in))


def test_decoder_state_select(model):
    b = batch([0, 1, 2])
    with torch.no_grad():
        memory, state = model.encode(b.src, b.src_lens)
        index = torch.tensor([2, 0])
        logits_sel, _, _ = model.decoder.step(b.tgt_in[index, 0], state.select(index), memory.select(index))
        logits_all, _, _ = model.decoder.step(b.tgt_in[:, 0], state, memory)
    torch.testing.assert_close(logits_sel, logits_all[index], atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------
# scheduled sampling


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_teacher_forcing_ratio_zero_feeds_own_argmax(attention):
    model = build(model_config(attention))
    b = batch([0, 1, 2, 3])
    with torch.no_grad():
        sampled = model.logits(model(b.src, b.src_lens, b.tgt_in, teacher_forcing_ratio=0.0))
        memory, state = model.encode(b.src, b.src_lens)
        prev = b.tgt_in[:, 0]
        expected = []
        for _ in range(b.tgt_in.size(1)):
            logits, state, _ = model.decoder.step(prev, state, memory)
            expected.append(logits)
            prev = logits.argmax(-1)
    assert sampled.shape == (4, b.tgt_in.size(1), VOCAB.size)
    torch.testing.assert_close(sampled, torch.stack(expected, dim=1), atol=ATOL, rtol=0)


def test_teacher_forcing_ratio_zero_trains():
    model = build(model_config()).train()
    b = batch([0, 1, 2, 3])
    logits = model.logits(model(b.src, b.src_lens, b.tgt_in, teacher_forcing_ratio=0.0))
    assert logits.shape == (4, b.tgt_in.size(1), VOCAB.size)
    logits.sum().backward()
    assert model.src_embed.weight.grad is not None
    assert model.encoder.rnn.weight_ih_l0.grad.abs().sum() > 0


def test_teacher_forcing_ratio_one_is_plain_teacher_forcing():
    model = build(model_config())
    b = batch([0, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(b.src, b.src_lens, b.tgt_in, 1.0), model(b.src, b.src_lens, b.tgt_in))


# ---------------------------------------------------------------------------------------------
# embeddings, initial state


def test_tie_target_embeddings_shares_parameter():
    cfg = model_config(embedding_dim=12, tie_target_embeddings=True)
    model = build(cfg)
    assert model.decoder.output.weight is model.decoder.embed.weight
    untied = build(model_config(embedding_dim=12))
    assert model.num_parameters() == untied.num_parameters() - VOCAB.size * 12


def test_tie_source_target_embeddings_shares_parameter():
    model = build(model_config(tie_source_target_embeddings=True))
    assert model.decoder.embed.weight is model.src_embed.weight
    assert model.num_parameters() == build(model_config()).num_parameters() - VOCAB.size * 8


def test_tie_all_three():
    model = build(model_config(embedding_dim=12, tie_target_embeddings=True, tie_source_target_embeddings=True))
    assert model.src_embed.weight is model.decoder.embed.weight is model.decoder.output.weight


def test_tied_parameter_stays_shared_after_update_and_reload():
    model = build(model_config(embedding_dim=12, tie_target_embeddings=True, tie_source_target_embeddings=True)).train()
    b = batch([0, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.logits(model(b.src, b.src_lens, b.tgt_in)).sum().backward()
    optimizer.step()
    assert model.src_embed.weight is model.decoder.output.weight
    fresh = build(model_config(embedding_dim=12, tie_target_embeddings=True, tie_source_target_embeddings=True), seed=5)
    fresh.load_state_dict(model.state_dict())
    assert fresh.src_embed.weight is fresh.decoder.output.weight
    torch.testing.assert_close(fresh.decoder.output.weight, model.decoder.output.weight)


def test_pad_embeddings_start_at_zero():
    model = build(model_config(init="xavier"))
    assert (model.src_embed.weight[VOCAB.pad] == 0).all()
    assert (model.decoder.embed.weight[VOCAB.pad] == 0).all()


def test_uniform_init_respects_scale():
    model = build(model_config(init_scale=0.05))
    for param in model.parameters():
        assert param.abs().max() <= 0.05


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_zero_bridge_starts_from_zeros(rnn_type):
    model = build(with_decoder(model_config(rnn_type=rnn_type), bridge="zero"))
    b = batch([0, 1])
    _, state = model.encode(b.src, b.src_lens)
    hidden = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
    assert len(hidden) == (2 if rnn_type == "lstm" else 1)
    for h in hidden:
        assert h.shape == (2, 2, 12)
        assert (h == 0).all()
    assert (state.att_vec == 0).all()


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_linear_bridge_depends_on_source(rnn_type):
    model = build(model_config(rnn_type=rnn_type))
    b = batch([0, 1])
    with torch.no_grad():
        _, state = model.encode(b.src, b.src_lens)
    h = state.hidden[0] if isinstance(state.hidden, tuple) else state.hidden
    assert h.shape == (2, 2, 12)
    assert not torch.allclose(h[:, 0], h[:, 1])


def test_linear_combine_is_the_tanh_combine_without_tanh_plus_a_bias():
    """combine=linear: W [h; ctx] + b, the same product the tanh variant squashes (first step)."""
    squashed = build(model_config())
    linear = build(with_decoder(model_config(), combine="linear"))
    assert squashed.decoder.combine.bias is None and linear.decoder.combine.bias.shape == (12,)
    state = {**squashed.state_dict()}
    state["decoder.combine.weight"] = state["decoder.combine.weight"] * 100  # out of tanh's linear range
    squashed.load_state_dict(state)
    linear.load_state_dict({**state, "decoder.combine.bias": torch.zeros(12)})
    b = batch([0, 1, 2, 3])
    with torch.no_grad():
        outs = []
        for model in (squashed, linear):
            memory, start = model.encode(b.src, b.src_lens)
            outs.append(model.decoder.step(b.tgt_in[:, 0], start, memory)[1].att_vec)
        torch.testing.assert_close(torch.tanh(outs[1]), outs[0], atol=ATOL, rtol=0)
        assert not torch.allclose(outs[1], outs[0], atol=1e-3)
        forced = linear.logits(linear(b.src, b.src_lens, b.tgt_in))
        stepped, _ = step_loop(linear, b)
    torch.testing.assert_close(forced, stepped, atol=ATOL, rtol=0)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied-output"])
def test_model_loss_gives_the_textbook_gradients(tied):
    """The training step's fused loss: same loss and parameter gradients as cross-entropy over model.logits."""
    import torch.nn.functional as F

    cfg = model_config(embedding_dim=12, tie_target_embeddings=tied)
    b = batch([0, 1, 2, 3])
    fused, textbook = build(cfg), build(cfg)
    loss = fused.loss(fused(b.src, b.src_lens, b.tgt_in), b.tgt_out, smoothing=0.1).loss
    logits = textbook.logits(textbook(b.src, b.src_lens, b.tgt_in))
    expected = F.cross_entropy(
        logits.reshape(-1, VOCAB.size), b.tgt_out.reshape(-1), ignore_index=VOCAB.pad, reduction="sum", label_smoothing=0.1
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    expected.backward()
    for (name, got), (_, want) in zip(fused.named_parameters(), textbook.named_parameters()):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("attention", ["bahdanau", "luong-general", "multihead-additive"])
def test_cpu_training_steps_the_lstm_by_hand_with_the_same_gradients(attention, monkeypatch):
    # Training on CPU runs the decoder LSTM through nmt.stepped_lstm; nn.LSTM per step is the reference.
    from nmt.decoder import AttentionDecoder

    model = build(
        model_config(
            attention,
            embedding_dropout=0.0,
            encoder=EncoderConfig(hidden_size=6, num_layers=2, dropout=0.0),
            decoder=DecoderConfig(hidden_size=12, num_layers=2, dropout=0.0, hidden_dropout=0.0),
        )
    ).train()
    b = batch([0, 1, 2, 3])
    params = list(model.parameters())

    def gradients():
        loss = model.loss(model(b.src, b.src_lens, b.tgt_in), b.tgt_out).loss
        return loss.detach(), torch.autograd.grad(loss, params)

    calls = []
    original = AttentionDecoder._stepped_lstm
    monkeypatch.setattr(AttentionDecoder, "_stepped_lstm", lambda self, like: calls.append(1) or original(self, like))
    got_loss, got = gradients()
    assert calls and original(model.decoder, b.src) is not None
    monkeypatch.setattr(AttentionDecoder, "_stepped_lstm", lambda self, like: None)
    want_loss, want = gradients()
    torch.testing.assert_close(got_loss, want_loss, atol=1e-5, rtol=0)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
