"""Tests for nmt.plotting: a heatmap of a real search's attention, multi-head attention included."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nmt.config import AttentionConfig, DecodeConfig, DecoderConfig, EncoderConfig, ModelConfig
from nmt.model import Seq2Seq
from nmt.plotting import attention_figure, save_attention_plot
from nmt.tokenizer import Vocab
from nmt.translator import Translator

VOCAB = Vocab(size=20, pad=0, unk=1, bos=2, eos=3)


@pytest.mark.parametrize("attention", ["bahdanau", "multihead"])
def test_heatmap_of_a_searched_sentence(tmp_path, attention):
    cfg = ModelConfig(
        embedding_dim=8,
        encoder=EncoderConfig(hidden_size=6, num_layers=1),
        attention=AttentionConfig(type=attention, heads=2, hidden_size=6),
        decoder=DecoderConfig(hidden_size=10, num_layers=1),
    )
    torch.manual_seed(0)
    side = SimpleNamespace(vocab=VOCAB)
    translator = Translator(Seq2Seq(cfg, VOCAB, VOCAB).eval(), SimpleNamespace(src=side, tgt=side), None, torch.device("cpu"))
    (hyp,) = translator.search_ids([[5, 6, 7, 8]], DecodeConfig(beam_size=2, nbest=1), return_attention=True)[0]
    weights = hyp.attention  # [T, S]: for multihead the heads' mean, still a distribution per row
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.size(0)))
    src_pieces = [f"s{i}" for i in range(weights.size(1))]
    tgt_pieces = [f"t{i}" for i in range(weights.size(0))]
    figure = attention_figure(weights, src_pieces, tgt_pieces)
    image = figure.axes[0].images[0].get_array()
    assert image.shape == tuple(weights.shape)
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == src_pieces
    path = tmp_path / "attention.png"
    save_attention_plot(path, weights, src_pieces, tgt_pieces)
    assert path.read_bytes().startswith(b"\x89PNG")
