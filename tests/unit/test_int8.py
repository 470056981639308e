"""Tests for nmt.int8: int8 products equal their dequantized arithmetic and stay close to fp32."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from nmt import int8
from nmt.config import AttentionConfig, DecodeConfig, DecoderConfig, EncoderConfig, ModelConfig
from nmt.decoder import DecoderState
from nmt.errors import ConfigError
from nmt.int8 import Int8Linear, Int8LSTM, int8_decoder, quantize_rows
from nmt.model import Seq2Seq
from nmt.tokenizer import Vocab
from nmt.translator import Translator


def test_quantize_rows_round_trip_and_zero_rows():
    x = torch.randn(5, 37) * torch.tensor([1e-3, 1.0, 50.0, 0.0, 3.0]).unsqueeze(1)
    q, scale = quantize_rows(x)
    assert q.dtype == torch.int8 and scale.shape == (5, 1)
    assert int(q.abs().max()) == 127 and not torch.isnan(scale).any()
    assert torch.equal(q[3], torch.zeros(37, dtype=torch.int8))
    assert ((q.float() * scale - x).abs() <= scale / 2 + 1e-7).all()  # half a step at most


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("block_bytes", [1 << 20, 4 * 3 * 64])  # one block; 64-column blocks and a short tail
def test_int8_linear_equals_its_dequantized_arithmetic(monkeypatch, bias, block_bytes):
    monkeypatch.setattr(int8, "_BLOCK_BYTES", block_bytes)
    torch.manual_seed(0)
    linear = nn.Linear(48, 150, bias=bias)
    layer = Int8Linear.from_linear(linear, torch.float32)
    x = torch.randn(3, 2, 48)
    q_x, row_scale = quantize_rows(x.reshape(-1, 48))
    q_w, w_scale = quantize_rows(linear.weight.detach())
    want = (q_x.double() * row_scale.double()) @ (q_w.double() * w_scale.double()).t()
    if bias:
        want = want + linear.bias.detach().double()
    got = layer(x)
    assert got.shape == (3, 2, 150) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want.view(3, 2, 150), rtol=1e-5, atol=1e-5)


def test_int8_linear_close_to_fp32_and_keeps_out_dtype():
    torch.manual_seed(1)
    linear = nn.Linear(256, 300)
    x = torch.randn(40, 256)
    want = linear(x).detach()
    got = Int8Linear.from_linear(linear, torch.bfloat16)(x)
    assert got.dtype == torch.bfloat16
    assert ((got.float() - want).norm() / want.norm()) < 0.02


def test_int8_lstm_steps_close_to_nn_lstm():
    torch.manual_seed(2)
    rnn = nn.LSTM(12, 16, 2, batch_first=True).eval()
    cell = Int8LSTM(rnn)
    hidden = want_hidden = (torch.zeros(2, 5, 16), torch.zeros(2, 5, 16))
    with torch.no_grad():
        for _ in range(6):
            x = torch.randn(5, 1, 12)
            want, want_hidden = rnn(x, want_hidden)
            got, hidden = cell(x, hidden)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, atol=0.03, rtol=0)
        torch.testing.assert_close(hidden[1], want_hidden[1], atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="one position"):
        cell(torch.randn(5, 2, 12), hidden)


VOCAB = Vocab(size=40, pad=0, unk=1, bos=2, eos=3)


ATTENTIONS = {
    "bahdanau": AttentionConfig(type="bahdanau", hidden_size=12),
    "luong-general": AttentionConfig(type="luong", score="general"),
    "multihead-additive": AttentionConfig(type="multihead", head_score="additive", heads=3, hidden_size=12),
    "multihead-scaled_dot": AttentionConfig(type="multihead", head_score="scaled_dot", heads=2, hidden_size=12),
}


def tiny_model(rnn_type: str = "lstm", combine: str = "tanh", attention: str = "bahdanau") -> Seq2Seq:
    cfg = ModelConfig(
        embedding_dim=16,
        encoder=EncoderConfig(hidden_size=12, num_layers=1, rnn_type=rnn_type),
        attention=ATTENTIONS[attention],
        decoder=DecoderConfig(hidden_size=20, num_layers=2, rnn_type=rnn_type, combine=combine),
    )
    torch.manual_seed(3)
    return Seq2Seq(cfg, VOCAB, VOCAB).eval()


@pytest.mark.parametrize(
    "rnn_type,combine,attention",
    [("lstm", "tanh", "bahdanau"), ("gru", "tanh", "bahdanau"), ("lstm", "linear", "bahdanau")]
    + [("lstm", "tanh", attention) for attention in ATTENTIONS if attention != "bahdanau"],
)
def test_int8_decoder_step_close_to_the_original(rnn_type, combine, attention):
    model = tiny_model(rnn_type, combine, attention)
    decoder = int8_decoder(model.decoder)
    assert isinstance(model.decoder.output, nn.Linear)  # a copy: the model keeps its own layers
    assert isinstance(decoder.output, Int8Linear) and isinstance(decoder.combine, Int8Linear)
    assert isinstance(decoder.rnn, Int8LSTM if rnn_type == "lstm" else nn.GRU)
    src = torch.randint(4, 40, (3, 7))
    with torch.no_grad():
        memory, state = model.encode(src, torch.tensor([7, 5, 2]))
        prev = torch.randint(4, 40, (3,))
        want, want_state, want_attn = model.decoder.step(prev, state, memory)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as int8 search runs: what is not int8 in bf16
            got, got_state, got_attn = decoder.step(prev, state, memory)
    assert got.dtype == torch.float32  # logits stay fp32 for the log-softmax
    assert ((got - want).norm() / want.norm()) < 0.03
    torch.testing.assert_close(got_attn, want_attn, atol=0.01, rtol=0)
    assert isinstance(got_state, DecoderState)


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_int8_decoder_leaves_no_per_step_product_in_fp(attention):
    # int8_decoder swaps layers by attribute name: a per-step layer under a new name would silently
    # stay fp. The nn.Linear layers left are those run once per batch (keys and values, by the
    # model's own attention in encode) and the additive score's v, a reduction inside its
    # elementwise pass (kept bf16 as a whole).
    decoder = int8_decoder(tiny_model(attention=attention).decoder)
    left = {name for name, module in decoder.named_modules() if isinstance(module, nn.Linear)}
    assert left <= {"attention.key_layer", "attention.value_layer", "attention.v"}
    if hasattr(decoder.attention, "query_layer"):
        assert isinstance(decoder.attention.query_layer, Int8Linear)


def translator(device: str = "cpu", attention: str = "bahdanau") -> Translator:
    side = SimpleNamespace(vocab=VOCAB)
    model = tiny_model(attention=attention)
    return Translator(model, SimpleNamespace(src=side, tgt=side), SimpleNamespace(), torch.device(device))


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_translator_int8_search_scores_close_to_fp32(attention):
    seqs = [torch.randint(4, 40, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (3, 6, 9, 4)]
    options = DecodeConfig(beam_size=3, max_len_a=1.0, max_len_b=4)
    fp32 = translator(attention=attention).search_ids(seqs, options)
    int8_options = DecodeConfig(beam_size=3, max_len_a=1.0, max_len_b=4, amp="int8")
    quantized = translator(attention=attention).search_ids(seqs, int8_options)
    for want, got in zip(fp32, quantized):
        # An untrained model's near-uniform choices may differ; each score stays near fp32's.
        assert got[0].log_prob == pytest.approx(want[0].log_prob, abs=0.5)


def test_translator_int8_is_for_cpus():
    with pytest.raises(ConfigError, match=r"decode.amp \(--amp\) int8 is for CPUs, this is cuda"):
        translator("cuda").search_ids([[5, 6]], DecodeConfig(amp="int8"))
