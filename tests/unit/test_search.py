"""Tests for nmt.search: greedy and beam search against hand-set and brute-forced expectations."""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

import pytest
import torch

import nmt.search
from nmt.batching import collate, pad_source
from nmt.config import AttentionConfig, DecodeConfig, DecoderConfig, EncoderConfig, ModelConfig
from nmt.model import Seq2Seq
from nmt.search import Hypothesis, beam_search, greedy_search, length_penalty, top_k_rows
from nmt.tokenizer import Vocab
from nmt.translator import Translator, _reorder

Table = Callable[[int, tuple[int, ...]], list[float]]  # (sentence, output so far) -> log-probs [V]


class FakeModel:
    """A step function over log-prob tables, with no model behind it.

    The state is (sentence id [N], tokens fed so far [N, t]); the next-token distribution of a
    row is `table(sentence, output so far)`. Attention is a one-hot vector that also depends on
    the sentence and the output so far, so misplaced rows show up in the attention history.
    """

    def __init__(self, table: Table, vocab: int, src_len: int = 5) -> None:
        self.table = table
        self.vocab = vocab
        self.src_len = src_len
        self.calls = 0

    def initial(self, sentences: list[int]):
        return torch.tensor(sentences), torch.empty(len(sentences), 0, dtype=torch.long)

    def attention_for(self, sent: int, prefix: tuple[int, ...]) -> int:
        return zlib.crc32(repr((sent, prefix)).encode()) % self.src_len

    def step(self, prev: torch.Tensor, state):
        self.calls += 1
        sents, fed = state
        fed = torch.cat([fed, prev.unsqueeze(1)], dim=1)
        rows = [(s, tuple(f[1:])) for s, f in zip(sents.tolist(), fed.tolist())]
        log_probs = torch.tensor([self.table(s, p) for s, p in rows], dtype=torch.float32)
        attn = torch.zeros(len(rows), self.src_len)
        for i, (s, p) in enumerate(rows):
            attn[i, self.attention_for(s, p)] = 1.0
        return log_probs, (sents, fed), attn

    @staticmethod
    def reorder(state, rows: torch.Tensor):
        sents, fed = state
        return sents[rows], fed[rows]


def log_probs_from(probs: dict[int, float], vocab: int, rest: float = 1e-6) -> list[float]:
    out = [math.log(rest)] * vocab
    for token, p in probs.items():
        out[token] = math.log(p)
    return out


def random_table(vocab: int, seed: int, sharpness: float = 2.0) -> Table:
    """A fixed, normalised pseudo-random distribution for every (sentence, prefix)."""
    cache: dict = {}

    def table(sent: int, prefix: tuple[int, ...]) -> list[float]:
        key = (sent, prefix)
        if key not in cache:
            gen = torch.Generator().manual_seed(zlib.crc32(repr((seed, sent, prefix)).encode()))
            cache[key] = (
                torch.log_softmax(sharpness * torch.randn(vocab, generator=gen, dtype=torch.float64), -1).float().tolist()
            )
        return list(cache[key])

    return table


def brute_force(
    table: Table, sent: int, vocab: int, eos: int, cap: int, alpha: float = 0.0, min_len: int = 0
) -> list[tuple[float, float, list[int]]]:
    """Every output the search may produce, as (score, log_prob, tokens), best first."""
    results = []
    others = [t for t in range(vocab) if t != eos]
    for length in range(min_len, cap):
        for tokens in itertools.product(others, repeat=length):
            log_prob = sum(table(sent, tokens[:t])[tok] for t, tok in enumerate(tokens))
            log_prob += table(sent, tokens)[eos]
            results.append((log_prob / length_penalty(length + 1, alpha), log_prob, list(tokens)))
    results.sort(key=lambda r: r[0], reverse=True)
    return results


def run_greedy(model: FakeModel, sentences: list[int], caps: list[int], bos: int, eos: int, **kwargs) -> list[Hypothesis]:
    return greedy_search(model.step, model.reorder, model.initial(sentences), bos, eos, torch.tensor(caps), **kwargs)


def run_beam(
    model: FakeModel, sentences: list[int], caps: list[int], bos: int, eos: int, k: int, **kwargs
) -> list[list[Hypothesis]]:
    return beam_search(model.step, model.reorder, model.initial(sentences), bos, eos, torch.tensor(caps), beam_size=k, **kwargs)


# ---------------------------------------------------------------------------------------------
# greedy


V, BOS, EOS = 6, 2, 3


def test_length_penalty_formula():
    assert length_penalty(7, 0.0) == 1.0
    assert length_penalty(1, 0.6) == pytest.approx(1.0)
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert length_penalty(13, 0.5) == pytest.approx(math.sqrt(3.0))


def test_greedy_picks_argmax_and_stops_at_eos():
    steps = {
        0: {5: 0.6, 4: 0.3, EOS: 0.1},
        1: {4: 0.5, 5: 0.2, EOS: 0.3},
        2: {EOS: 0.7, 0: 0.3},
        3: {1: 0.99},  # never reached: eos came first
    }
    model = FakeModel(lambda s, prefix: log_probs_from(steps[len(prefix)], V), V)
    (hyp,) = run_greedy(model, [0], [10], BOS, EOS)
    assert hyp.tokens == [5, 4]
    assert hyp.log_prob == pytest.approx(math.log(0.6) + math.log(0.5) + math.log(0.7), abs=1e-5)
    assert hyp.score == hyp.log_prob
    assert model.calls == 3


def test_greedy_first_step_eos_gives_empty_output():
    model = FakeModel(lambda s, prefix: log_probs_from({EOS: 0.9, 4: 0.1}, V), V)
    (hyp,) = run_greedy(model, [0], [10], BOS, EOS)
    assert hyp.tokens == []
    assert hyp.log_prob == pytest.approx(math.log(0.9))


def test_greedy_feeds_its_own_choices():
    # The distribution depends on the previous output: follow the chain 0 -> 1 -> 4 -> eos.
    chain = {(): 0, (0,): 1, (0, 1): 4, (0, 1, 4): EOS}
    model = FakeModel(lambda s, prefix: log_probs_from({chain.get(prefix, EOS): 0.9}, V), V)
    assert run_greedy(model, [0], [10], BOS, EOS)[0].tokens == [0, 1, 4]


def test_greedy_batch_finishes_at_different_times():
    lengths = {0: 1, 1: 4, 2: 0}
    model = FakeModel(lambda s, prefix: log_probs_from({EOS if len(prefix) >= lengths[s] else 5: 0.9}, V), V)
    hyps = run_greedy(model, [0, 1, 2], [10, 10, 10], BOS, EOS)
    assert [h.tokens for h in hyps] == [[5], [5, 5, 5, 5], []]


# ---------------------------------------------------------------------------------------------
# beam search against brute force


SMALL_V, SMALL_BOS, SMALL_EOS = 4, 2, 3  # outputs 0, 1, 2 (bos too) and eos


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_exhaustive_beam_equals_brute_force(seed, alpha):
    table = random_table(SMALL_V, seed)
    cap = 4  # at most 3 outputs + eos: 40 sequences
    expected = brute_force(table, 0, SMALL_V, SMALL_EOS, cap, alpha)
    nbest = 5
    assert expected[nbest - 1][0] - expected[nbest][0] > 1e-4, "test needs a clear ranking"
    # 36 candidates at most per step: a beam of 40 never drops anything.
    (hyps,) = run_beam(FakeModel(table, SMALL_V), [0], [cap], SMALL_BOS, SMALL_EOS, k=40, nbest=nbest, alpha=alpha)
    assert [h.tokens for h in hyps] == [tokens for _, _, tokens in expected[:nbest]]
    for hyp, (score, log_prob, _) in zip(hyps, expected):
        assert hyp.score == pytest.approx(score, abs=1e-5)
        assert hyp.log_prob == pytest.approx(log_prob, abs=1e-5)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_beam_best_is_never_worse_than_greedy_or_better_than_optimum(seed):
    table = random_table(SMALL_V, seed, sharpness=1.0)
    optimum = brute_force(table, 0, SMALL_V, SMALL_EOS, 5)[0]
    greedy = run_greedy(FakeModel(table, SMALL_V), [0], [5], SMALL_BOS, SMALL_EOS)[0]
    for k in (2, 3, 5):
        best = run_beam(FakeModel(table, SMALL_V), [0], [5], SMALL_BOS, SMALL_EOS, k=k)[0][0]
        assert best.log_prob <= optimum[1] + 1e-5
    assert greedy.log_prob <= optimum[1] + 1e-5


def test_nbest_sorted_distinct_and_bounded():
    table = random_table(SMALL_V, 7)
    (hyps,) = run_beam(FakeModel(table, SMALL_V), [0], [6], SMALL_BOS, SMALL_EOS, k=4, nbest=3)
    assert 1 <= len(hyps) <= 3
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
    for hyp in hyps:
        assert SMALL_EOS not in hyp.tokens
        assert len(hyp.tokens) <= 5
        recomputed = sum(table(0, tuple(hyp.tokens[:t]))[tok] for t, tok in enumerate(hyp.tokens))
        recomputed += table(0, tuple(hyp.tokens))[SMALL_EOS]
        assert hyp.log_prob == pytest.approx(recomputed, abs=1e-5)


def test_beam_escapes_the_greedy_garden_path():
    # Greedy takes 4 (0.5) and then finds only flat continuations; beam 2 keeps 5 (0.4) whose
    # eos has probability 0.9: 0.36 beats anything after 4 (at most 0.5 * 0.34).
    def table(sent, prefix):
        if prefix == ():
            return log_probs_from({4: 0.5, 5: 0.4, EOS: 0.1}, V)
        if prefix[0] == 5:
            return log_probs_from({EOS: 0.9, 0: 0.1}, V)
        return log_probs_from({EOS: 0.34, 0: 0.33, 1: 0.33}, V)

    greedy = run_greedy(FakeModel(table, V), [0], [6], BOS, EOS)[0]
    beam = run_beam(FakeModel(table, V), [0], [6], BOS, EOS, k=2)[0][0]
    assert greedy.tokens == [4]
    assert beam.tokens == [5]
    assert beam.log_prob == pytest.approx(math.log(0.36), abs=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_beam_size_one_equals_greedy(seed):
    table = random_table(V, seed + 100, sharpness=1.5)
    sentences, caps = [0, 1, 2, 3], [3, 8, 1, 6]
    greedy = run_greedy(FakeModel(table, V), sentences, caps, BOS, EOS)
    beam = run_beam(FakeModel(table, V), sentences, caps, BOS, EOS, k=1)
    for g, (b,) in zip(greedy, beam):
        assert b.tokens == g.tokens
        assert b.log_prob == pytest.approx(g.log_prob, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# length penalty, caps, min_len, forbidden tokens


def short_or_long(sent, prefix):
    """eos now: log-prob -1.0; one more token first: -0.5 - 0.6 = -1.1 in total."""
    if prefix == ():
        return [math.log(1e-6)] * EOS + [-1.0] + [-0.5] + [math.log(1e-6)]
    if prefix == (4,):
        return [math.log(1e-6)] * EOS + [-0.6] + [math.log(1e-6)] * 2
    return [math.log(1e-6)] * EOS + [-0.01] + [math.log(1e-6)] * 2


def test_without_length_penalty_shorter_wins():
    (hyps,) = run_beam(FakeModel(short_or_long, V), [0], [6], BOS, EOS, k=3, nbest=2, alpha=0.0)
    assert [h.tokens for h in hyps] == [[], [4]]
    assert hyps[0].score == pytest.approx(-1.0, abs=1e-5)
    assert hyps[1].score == pytest.approx(-1.1, abs=1e-5)


@pytest.mark.parametrize("alpha", [0.8, 1.0, 2.0])
def test_length_penalty_lets_longer_win(alpha):
    (hyps,) = run_beam(FakeModel(short_or_long, V), [0], [6], BOS, EOS, k=3, nbest=2, alpha=alpha)
    assert [h.tokens for h in hyps] == [[4], []]
    # GNMT: score = log P / ((5 + |Y|) / 6) ** alpha, |Y| counting the eos
    assert hyps[0].score == pytest.approx(-1.1 / ((5 + 2) / 6) ** alpha, abs=1e-5)
    assert hyps[1].score == pytest.approx(-1.0 / ((5 + 1) / 6) ** alpha, abs=1e-5)
    assert hyps[0].log_prob == pytest.approx(-1.1, abs=1e-5)


def test_small_alpha_is_not_enough():
    # -1.1 / (7/6)^a > -1.0 needs a > ln(1.1) / ln(7/6) = 0.618
    (hyps,) = run_beam(FakeModel(short_or_long, V), [0], [6], BOS, EOS, k=3, nbest=1, alpha=0.5)
    assert hyps[0].tokens == []


def never_eos(sent, prefix):
    return log_probs_from({4: 0.6, 5: 0.39, EOS: 0.01}, V)


def test_max_lens_cap_greedy():
    hyps = run_greedy(FakeModel(never_eos, V), [0, 1, 2, 3], [1, 2, 5, 9], BOS, EOS)
    assert [len(h.tokens) for h in hyps] == [0, 1, 4, 8]
    assert hyps[2].tokens == [4, 4, 4, 4]
    assert hyps[2].log_prob == pytest.approx(4 * math.log(0.6) + math.log(0.01), abs=1e-5)


def test_max_lens_cap_beam():
    results = run_beam(FakeModel(never_eos, V), [0, 1, 2, 3], [1, 2, 5, 9], BOS, EOS, k=3, nbest=3)
    for hyps, cap in zip(results, [1, 2, 5, 9]):
        assert hyps
        assert all(len(h.tokens) <= cap - 1 for h in hyps)
        assert max(len(h.tokens) for h in hyps) == cap - 1, "the forced eos at the cap ends the live beams"


def eos_first(sent, prefix):
    return log_probs_from({EOS: 0.7, 4: 0.2, 5: 0.1}, V)


@pytest.mark.parametrize("min_len", [1, 3])
def test_min_len_forbids_early_eos(min_len):
    greedy = run_greedy(FakeModel(eos_first, V), [0, 1], [10, 10], BOS, EOS, min_len=min_len)
    assert [h.tokens for h in greedy] == [[4] * min_len] * 2
    (beam,) = run_beam(FakeModel(eos_first, V), [0], [10], BOS, EOS, k=3, nbest=3, min_len=min_len)
    assert beam[0].tokens == [4] * min_len
    assert all(len(h.tokens) >= min_len for h in beam)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_max_lens_wins_over_min_len(search):
    # The cap is the hard limit (eos included). With min_len beyond it (decode.min_len larger than
    # a short sentence's a * len + b) the search must still end at the cap with a finite score,
    # not run past it on -inf rows or return no hypothesis at all.
    model = FakeModel(eos_first, V)
    if search == "greedy":
        hyps = run_greedy(model, [0], [2], BOS, EOS, min_len=4)
    else:
        (hyps,) = run_beam(model, [0], [2], BOS, EOS, k=2, nbest=1, min_len=4)
    assert len(hyps) == 1
    assert len(hyps[0].tokens) <= 1
    assert math.isfinite(hyps[0].log_prob)


def test_forbidden_tokens_never_appear():
    table = random_table(V, 11, sharpness=3.0)
    forbid = (BOS, 4)
    greedy = run_greedy(FakeModel(table, V), [0, 1, 2], [8, 8, 8], BOS, EOS, forbid=forbid)
    beams = run_beam(FakeModel(table, V), [0, 1, 2], [8, 8, 8], BOS, EOS, k=3, nbest=3, forbid=forbid)
    tokens = [t for h in greedy for t in h.tokens] + [t for hyps in beams for h in hyps for t in h.tokens]
    assert tokens and not set(forbid) & set(tokens)


@pytest.mark.parametrize("view", ["expanded", "row"])
@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_step_outputs_are_not_modified(search, view):
    # A hand-set step function may hand out views of one shared table: the same row expanded to
    # N rows, or (one row) a plain slice. The search must treat the log-probs it receives as
    # read-only: writing -inf into them crashes on the expanded view and silently corrupts the
    # table through the slice (a later search with the same table then sees eos forbidden).
    table = torch.log_softmax(torch.tensor([[0.1, 0.2, 0.0, 1.0, 0.5, 0.3]] * 12), dim=-1)
    original = table.clone()

    def step(prev, step_no):
        rows = table[step_no].expand(prev.size(0), -1) if view == "expanded" else table[step_no : step_no + 1]
        return rows, step_no + 1, None

    caps = torch.tensor([6] if view == "row" else [6, 6])
    if search == "greedy":
        greedy_search(step, lambda s, rows: s, 0, BOS, EOS, caps, min_len=2, forbid=(BOS,))
    else:
        k = 1 if view == "row" else 2
        beam_search(step, lambda s, rows: s, 0, BOS, EOS, caps, beam_size=k, min_len=2, forbid=(BOS,))
    assert torch.equal(table, original)


# ---------------------------------------------------------------------------------------------
# block top-k (the beam step's selection over a real-sized vocabulary)


@pytest.mark.parametrize("cols", [8001, 4096, 700])  # a short last block, none, too narrow for blocks
@pytest.mark.parametrize("k", [1, 10])
def test_top_k_rows_equals_topk(cols, k):
    x = torch.randn(37, cols, generator=torch.Generator().manual_seed(cols + k))
    x[3] = float("-inf")
    x[3, cols - 1] = 0.0  # a row that is -inf but for its last column (a capped beam row: eos only)
    x[4, : cols // 2] += 10.0  # the best values bunched in a few blocks
    values, columns = top_k_rows(x, k)
    expected = x.topk(k, dim=-1)
    assert torch.equal(values, expected.values)
    assert torch.equal(columns[torch.isfinite(values)], expected.indices[torch.isfinite(values)])


def test_top_k_rows_ties_keep_the_values():
    # bf16-rounded log-probs tie often: the values must still be exactly the k largest, each
    # column once, and each value the one at its column.
    x = torch.randn(64, 8001, generator=torch.Generator().manual_seed(5)).mul(4).round().div(4)
    values, columns = top_k_rows(x, 10)
    assert torch.equal(values, x.topk(10, dim=-1).values)
    assert torch.equal(x.gather(1, columns), values)
    assert all(len(set(row)) == 10 for row in columns.tolist())


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_over_large_vocabulary_equals_full_topk(monkeypatch, alpha):
    # The beam step takes each row's 2K best tokens before the sentence's 2K best candidates;
    # the straightforward selection (topk over all K x V sums) must find the same hypotheses.
    vocab, bos, eos = 3000, 2, 3
    table = random_table(vocab, 31, sharpness=3.0)
    sentences, caps = [0, 1, 2], [6, 4, 7]

    def search():
        return run_beam(FakeModel(table, vocab), sentences, caps, bos, eos, k=4, nbest=3, alpha=alpha, min_len=1)

    blocked = search()
    monkeypatch.setattr(nmt.search, "top_k_rows", lambda x, k: x.topk(k, dim=-1))
    full = search()
    for got, want in zip(blocked, full):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        assert [h.score for h in got] == [h.score for h in want]


# ---------------------------------------------------------------------------------------------
# batches and attention


@pytest.mark.parametrize("k", [1, 3])
def test_results_do_not_depend_on_batch_mates(k):
    table = random_table(V, 21, sharpness=1.5)
    sentences, caps = [0, 1, 2], [7, 3, 5]
    together = run_beam(FakeModel(table, V), sentences, caps, BOS, EOS, k=k, nbest=k)
    greedy_together = run_greedy(FakeModel(table, V), sentences, caps, BOS, EOS)
    for sent, cap, hyps, g in zip(sentences, caps, together, greedy_together):
        alone = run_beam(FakeModel(table, V), [sent], [cap], BOS, EOS, k=k, nbest=k)[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-6)
        greedy_alone = run_greedy(FakeModel(table, V), [sent], [cap], BOS, EOS)[0]
        assert g.tokens == greedy_alone.tokens


def check_attention(model: FakeModel, sent: int, hyp: Hypothesis) -> None:
    assert hyp.attention is not None
    assert hyp.attention.shape == (len(hyp.tokens) + 1, model.src_len)
    for t in range(len(hyp.tokens) + 1):
        expected = model.attention_for(sent, tuple(hyp.tokens[:t]))
        assert int(hyp.attention[t].argmax()) == expected, f"step {t} attention belongs to another row"


def test_greedy_attention_history():
    model = FakeModel(random_table(V, 31, sharpness=1.0), V)
    hyps = run_greedy(model, [0, 1, 2], [6, 4, 8], BOS, EOS, return_attention=True)
    for sent, hyp in enumerate(hyps):
        check_attention(model, sent, hyp)


@pytest.mark.parametrize("greedy", [False, True])
def test_nan_scores_end_at_the_length_cap(greedy):
    # A diverged model (or an fp16 overflow) gives NaN log-probs: no beam ever looks dead or
    # beaten, but the search must still stop at the cap instead of running forever.
    model = FakeModel(lambda sent, prefix: [math.nan] * V, V)
    if greedy:
        results = [[h] for h in run_greedy(model, [0, 1], [4, 6], BOS, EOS)]
    else:
        results = run_beam(model, [0, 1], [4, 6], BOS, EOS, k=3)
    assert len(results) == 2 and model.calls <= 6


def test_beam_attention_history_follows_reordering():
    model = FakeModel(random_table(V, 32, sharpness=1.0), V)
    results = run_beam(model, [0, 1, 2], [6, 4, 8], BOS, EOS, k=3, nbest=3, return_attention=True)
    for sent, hyps in enumerate(results):
        for hyp in hyps:
            check_attention(model, sent, hyp)


def test_no_attention_unless_asked():
    model = FakeModel(random_table(V, 33), V)
    assert run_greedy(model, [0], [5], BOS, EOS)[0].attention is None
    assert all(h.attention is None for h in run_beam(model, [0], [5], BOS, EOS, k=2, nbest=2)[0])


# ---------------------------------------------------------------------------------------------
# a real (random, untrained) model


VOCAB = Vocab(size=20, pad=0, unk=1, bos=2, eos=3)


ATTENTIONS = {
    "bahdanau": AttentionConfig(type="bahdanau", hidden_size=6),
    "multihead-additive": AttentionConfig(type="multihead", head_score="additive", heads=2, hidden_size=6),
    "multihead-scaled_dot": AttentionConfig(type="multihead", head_score="scaled_dot", heads=3, hidden_size=6),
}


@pytest.fixture(scope="module", params=list(ATTENTIONS))
def tiny_model(request) -> Seq2Seq:
    cfg = ModelConfig(
        embedding_dim=8,
        encoder=EncoderConfig(hidden_size=6, num_layers=1),
        attention=ATTENTIONS[request.param],
        decoder=DecoderConfig(hidden_size=10, num_layers=1),
    )
    torch.manual_seed(0)
    return Seq2Seq(cfg, VOCAB, VOCAB).eval()


def sources(count: int, seed: int) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(4, 20, (int(n),), generator=gen).tolist() for n in torch.randint(1, 9, (count,), generator=gen)]


def model_search(
    model: Seq2Seq,
    seqs: list[list[int]],
    k: int,
    nbest: int = 1,
    greedy: bool = False,
    caps: list[int] | None = None,
    rows_seen: list[int] | None = None,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    def step(prev, state):
        if rows_seen is not None:
            rows_seen.append(prev.numel())
        dec_state, memory = state
        logits, dec_state, attn = model.decoder.step(prev, dec_state, memory)
        return torch.log_softmax(logits.float(), -1), (dec_state, memory), attn

    src, lens = pad_source(seqs, VOCAB.pad, VOCAB.eos)
    with torch.no_grad():
        memory, state = model.encode(src, lens)
        caps = (1.5 * (lens - 1) + 5).long() if caps is None else torch.tensor(caps)
        reorder = partial(_reorder, group=1 if greedy else k)
        common = {"bos": VOCAB.bos, "eos": VOCAB.eos, "max_lens": caps, "return_attention": return_attention}
        if greedy:
            return [[h] for h in greedy_search(step, reorder, (state, memory), **common)]
        return beam_search(step, reorder, (state, memory), beam_size=k, nbest=nbest, **common)


def test_real_model_beam_scores_at_least_greedy(tiny_model):
    # Not a theorem (the greedy prefix can fall off the beam), but what beam search is for; with
    # this near-uniform untrained model it holds for every sentence and many seeds. A failure here
    # after a search change is worth a look.
    seqs = sources(8, 0)
    greedy = model_search(tiny_model, seqs, 1, greedy=True)
    beam = model_search(tiny_model, seqs, 4)
    for (g,), (b, *_) in zip(greedy, beam):
        assert b.log_prob >= g.log_prob - 1e-5


def test_real_model_beam_one_equals_greedy(tiny_model):
    seqs = sources(6, 1)
    for (g,), (b,) in zip(model_search(tiny_model, seqs, 1, greedy=True), model_search(tiny_model, seqs, 1)):
        assert b.tokens == g.tokens
        assert b.log_prob == pytest.approx(g.log_prob, abs=1e-5)


def test_real_model_first_beam_step_runs_one_row_per_sentence(tiny_model):
    rows_seen: list[int] = []
    model_search(tiny_model, sources(3, 4), 4, rows_seen=rows_seen)
    assert rows_seen[0] == 3 and rows_seen[1] == 12


def test_real_model_sentences_ending_at_step_0_leave_the_right_memory(tiny_model):
    # Sentences 0 and 2 are capped at one piece, so they end at step 0 and 2 sentences x 2 beams
    # = 4 rows go on: as many rows as step 0 had. Each live row must still attend to its own
    # sentence: the results equal searching the two live sentences alone.
    seqs = sources(4, 5)
    together = model_search(tiny_model, seqs, 2, nbest=2, caps=[1, 6, 1, 6])
    alone = model_search(tiny_model, [seqs[1], seqs[3]], 2, nbest=2, caps=[6, 6])
    for got, want in zip([together[1], together[3]], alone):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        assert [h.log_prob for h in got] == pytest.approx([h.log_prob for h in want], abs=1e-5)


def test_real_model_log_prob_matches_teacher_forcing(tiny_model):
    seqs = sources(4, 2)
    results = model_search(tiny_model, seqs, 3, nbest=2)
    for i, hyps in enumerate(results):
        for hyp in hyps:
            b = collate([0], [seqs[i]], [hyp.tokens], VOCAB.pad, VOCAB.bos, VOCAB.eos)
            with torch.no_grad():
                lprobs = torch.log_softmax(tiny_model.logits(tiny_model(b.src, b.src_lens, b.tgt_in)), -1)
            total = lprobs[0].gather(-1, b.tgt_out[0].unsqueeze(-1)).sum().item()
            assert hyp.log_prob == pytest.approx(total, abs=1e-4)


@pytest.mark.parametrize("greedy", [False, True])
def test_real_model_attention_is_the_teacher_forced_attention(tiny_model, greedy):
    # What plots and alignments show: per output step the decoder's weights over the source (for
    # multihead the heads' mean), those of the hypothesis's own prefix, whatever the beam reordering.
    seqs = sources(4, 6)
    k = 1 if greedy else 3
    results = model_search(tiny_model, seqs, k, nbest=k, greedy=greedy, return_attention=True)
    width = max(map(len, seqs)) + 1  # the batch's source length, eos included
    for i, hyps in enumerate(results):
        for hyp in hyps:
            b = collate([0], [seqs[i]], [hyp.tokens], VOCAB.pad, VOCAB.bos, VOCAB.eos)
            with torch.no_grad():
                memory, state = tiny_model.encode(b.src, b.src_lens)
                _, weights = tiny_model.decoder(b.tgt_in, state, memory)  # [1, T, S]
            assert hyp.attention.shape == (len(hyp.tokens) + 1, width)
            torch.testing.assert_close(hyp.attention[:, : b.src.size(1)], weights[0], atol=1e-5, rtol=0)
            assert (hyp.attention[:, b.src.size(1) :] == 0).all()  # batch padding


def test_translator_batches_do_not_change_results(tiny_model):
    side = SimpleNamespace(vocab=VOCAB)
    translator = Translator(tiny_model, SimpleNamespace(src=side, tgt=side), SimpleNamespace(), torch.device("cpu"))
    options = DecodeConfig(beam_size=3, nbest=2, max_len_a=1.5, max_len_b=5, max_tokens=60)  # 20 tokens per batch
    seqs = sources(7, 3)
    seqs.insert(2, [])  # an empty input gets no hypotheses
    together = translator.search_ids(seqs, options)
    assert together[2] == []
    for ids, hyps in zip(seqs, together):
        if not ids:
            continue
        alone = translator.search_ids([ids], options)[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-4)
