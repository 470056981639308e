"""Ensemble search (nmt.translator): several models stepped as one, their next-token probabilities averaged."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest
import torch

from nmt.batching import collate, pad_source
from nmt.config import AttentionConfig, DecodeConfig, DecoderConfig, EncoderConfig, ModelConfig
from nmt.model import Seq2Seq
from nmt.search import Hypothesis, beam_search, greedy_search
from nmt.tokenizer import Vocab
from nmt.translator import Translator, _reorder, _step

VOCAB = Vocab(size=20, pad=0, unk=1, bos=2, eos=3)
ATTENTIONS = {
    "bahdanau": AttentionConfig(type="bahdanau", hidden_size=6),
    "multihead": AttentionConfig(type="multihead", head_score="scaled_dot", heads=2, hidden_size=6),
}


def tiny_model(seed: int, attention: str = "bahdanau") -> Seq2Seq:
    """A random (untrained) model; models of one vocabulary but any architecture can be ensembled."""
    cfg = ModelConfig(
        embedding_dim=8,
        encoder=EncoderConfig(hidden_size=6, num_layers=1),
        attention=ATTENTIONS[attention],
        decoder=DecoderConfig(hidden_size=10, num_layers=1),
    )
    torch.manual_seed(seed)
    return Seq2Seq(cfg, VOCAB, VOCAB).eval()


def translator(*models: Seq2Seq) -> Translator:
    side = SimpleNamespace(vocab=VOCAB)
    return Translator(list(models), SimpleNamespace(src=side, tgt=side), SimpleNamespace(), torch.device("cpu"))


def sources(count: int, seed: int) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(4, 20, (int(n),), generator=gen).tolist() for n in torch.randint(1, 9, (count,), generator=gen)]


def options(beam: int, **extra) -> DecodeConfig:
    return DecodeConfig(beam_size=beam, nbest=beam, max_len_a=1.5, max_len_b=5, **extra)


def single_model_search(model: Seq2Seq, ids: list[int], beam: int) -> list[Hypothesis]:
    """The plain one-model search of one sentence: the model's own log-softmax, no ensemble code."""

    def step(prev, state):
        dec_state, memory = state
        logits, dec_state, attn = model.decoder.step(prev, dec_state, memory)
        return torch.log_softmax(logits.float(), -1), (dec_state, memory), attn

    src, lens = pad_source([ids], VOCAB.pad, VOCAB.eos)
    with torch.no_grad():
        memory, state = model.encode(src, lens)
        common = {"bos": VOCAB.bos, "eos": VOCAB.eos, "max_lens": (1.5 * (lens - 1) + 5).long()}
        reorder = partial(_reorder, group=beam)
        if beam == 1:
            return greedy_search(step, reorder, (state, memory), **common)
        return beam_search(step, reorder, (state, memory), beam_size=beam, nbest=beam, **common)[0]


@pytest.mark.parametrize("beam", [1, 3])
def test_an_ensemble_of_one_is_the_single_model(beam):
    model = tiny_model(0)
    seqs = sources(5, 1)
    found = translator(model).search_ids(seqs, options(beam, max_tokens=1))  # a batch per sentence, as below
    for ids, hyps in zip(seqs, found):
        want = single_model_search(model, ids, beam)
        assert [h.tokens for h in hyps] == [h.tokens for h in want]
        assert [h.score for h in hyps] == [h.score for h in want]  # exactly: no mixture for one model


@pytest.mark.parametrize("beam", [1, 3])
def test_an_ensemble_of_a_model_with_itself_is_the_model(beam):
    model = tiny_model(0)
    seqs = sources(6, 2)
    alone = translator(model).search_ids(seqs, options(beam))
    twice = translator(model, model).search_ids(seqs, options(beam))
    for want, got in zip(alone, twice):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


def test_the_step_averages_the_probabilities_and_keeps_the_first_models_attention():
    models = [tiny_model(0), tiny_model(1, "multihead"), tiny_model(2)]
    src, lens = pad_source(sources(3, 3), VOCAB.pad, VOCAB.eos)
    prev = torch.tensor([VOCAB.bos, 7, 11])
    with torch.no_grad():
        states = [(state, memory) for memory, state in (m.encode(src, lens) for m in models)]
        log_probs, next_states, attn = _step([m.decoder for m in models], prev, states)
        alone = [m.decoder.step(prev, state, memory) for m, (state, memory) in zip(models, states)]
    probs = torch.stack([torch.softmax(logits.double(), -1) for logits, _, _ in alone])  # [M, N, V]
    torch.testing.assert_close(log_probs, probs.mean(0).log().float(), atol=1e-6, rtol=0)
    assert log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3))
    assert torch.equal(attn, alone[0][2])
    for (state, memory), (_, own_state, _), (_, own_memory) in zip(next_states, alone, states):
        assert torch.equal(state.att_vec, own_state.att_vec) and memory is own_memory


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("second", list(ATTENTIONS))
def test_ensemble_results_do_not_depend_on_batch_mates(beam, second):
    ensemble = translator(tiny_model(0), tiny_model(1, second))
    seqs = sources(7, 4)
    together = ensemble.search_ids(seqs, options(beam, max_tokens=60))  # 20 tokens per beam-3 batch
    for ids, hyps in zip(seqs, together):
        alone = ensemble.search_ids([ids], options(beam))[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-4)


@pytest.mark.parametrize("beam", [1, 3])
def test_ensemble_attention_is_the_first_models_teacher_forced_attention(beam):
    # What --alignments and --attention-plots show: the first model's weights over the source for
    # the ensemble's own output, row by row through the beam reordering.
    first = tiny_model(0)
    seqs = sources(4, 5)
    results = translator(first, tiny_model(1, "multihead")).search_ids(seqs, options(beam), return_attention=True)
    for ids, hyps in zip(seqs, results):
        for hyp in hyps:
            b = collate([0], [ids], [hyp.tokens], VOCAB.pad, VOCAB.bos, VOCAB.eos)
            with torch.no_grad():
                memory, state = first.encode(b.src, b.src_lens)
                _, weights = first.decoder(b.tgt_in, state, memory)  # [1, T, S]
            torch.testing.assert_close(hyp.attention[:, : b.src.size(1)], weights[0], atol=1e-5, rtol=0)


def test_int8_ensemble_searches_each_model_in_int8():
    seqs = sources(4, 6)
    models = [tiny_model(0), tiny_model(1, "multihead")]
    fp32 = translator(*models).search_ids(seqs, options(3))
    int8 = translator(*models).search_ids(seqs, options(3, amp="int8"))
    for want, got in zip(fp32, int8):
        # An untrained model's near-uniform choices may differ; each score stays near fp32's.
        assert got[0].log_prob == pytest.approx(want[0].log_prob, abs=0.5)
    alone = translator(models[0]).search_ids(seqs, options(3, amp="int8"))
    twice = translator(models[0], models[0]).search_ids(seqs, options(3, amp="int8"))
    assert [[h.tokens for h in hyps] for hyps in twice] == [[h.tokens for h in hyps] for hyps in alone]
