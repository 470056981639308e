"""Greedy and beam search over a model-agnostic step function, batched over sentences and beams.

A `step_fn(prev [N], state) -> (log_probs [N, V], state, attention [N, S] | None)` advances N
rows by one token; `reorder_fn(state, rows [N']) -> state` selects rows (beam reordering and
dropping finished sentences). Nothing here imports model code, so tests drive it with
hand-set probabilities. Shape legend: B sentences, K beam, N = rows (B x K), V vocabulary,
S source length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any, torch.Tensor | None]]
ReorderFn = Callable[[Any, torch.Tensor], Any]
NEG_INF = float("-inf")


@dataclass
class Hypothesis:
    tokens: list[int]  # output ids, without bos and eos
    score: float  # the ranking score: log_prob / length_penalty
    log_prob: float  # sum of the log-probabilities of the tokens and the final eos
    attention: torch.Tensor | None = None  # [len(tokens) + 1, S] on CPU, when asked for


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al. 2016, Eq. 14); 1 when alpha = 0."""
    return ((5.0 + length) / 6.0) ** alpha if alpha else 1.0


def top_k_rows(x: torch.Tensor, k: int, block: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, V] -> the k largest values of each row [N, k], sorted, and their columns [N, k].

    Same as x.topk(k) up to the order of equal values. torch.topk on CPU costs about 1 ns per
    element (10% of a beam step over 8,000 pieces); here one max pass over blocks of `block`
    columns finds each row's k best blocks, which hold its k largest values (a value outside them
    is beaten by the k block maxima), and topk runs on those k x block values only.
    """
    cols = x.size(-1)
    full = cols // block * block
    if full < 4 * k * block:  # too narrow to pay for the extra passes
        return x.topk(k, dim=-1)
    maxima = x[:, :full].unflatten(1, (-1, block)).amax(-1)  # [N, V // block]
    if full < cols:
        maxima = torch.cat([maxima, x[:, full:].amax(-1, keepdim=True)], dim=1)
    blocks = maxima.topk(k, dim=-1).indices  # [N, k]
    columns = (blocks.unsqueeze(-1) * block + torch.arange(block, device=x.device)).flatten(1)  # [N, k * block]
    outside = columns >= cols  # the short last block's overhang
    values = x.gather(1, columns.clamp_(max=cols - 1)).masked_fill_(outside, NEG_INF)
    top, pos = values.topk(k, dim=-1)
    return top, columns.gather(1, pos)


def _mask_log_probs(
    log_probs: torch.Tensor,
    step: int,
    max_lens: torch.Tensor,
    shortest_cap: int,
    eos: int,
    min_len: int,
    forbid: tuple[int, ...],
) -> torch.Tensor:
    """Forbid tokens, forbid eos before `min_len`, force eos at each row's max length.

    log_probs [N, V], max_lens [N] (output length cap per row, eos included; none below
    `shortest_cap`) -> log_probs, or a masked copy (the step function's output is read-only: a
    hand-set one may hand out a shared table); the cap wins over `min_len`, so every row ends by
    its cap.
    """
    if step + 1 < shortest_cap and step >= min_len and not forbid:
        return log_probs  # the usual step: nothing to mask, so no pass over [N, V]
    log_probs = log_probs.clone()
    eos_column = log_probs[:, eos].clone()  # [N]
    at_limit = step + 1 >= max_lens  # [N]
    if forbid:
        log_probs[:, list(forbid)] = NEG_INF
    if step + 1 >= shortest_cap:  # known on the host: no [N, V] pass (nor device sync) before any row can be capped
        log_probs.masked_fill_(at_limit.unsqueeze(1), NEG_INF)  # rows at their cap: eos only (restored below)
    if step < min_len:
        eos_column.masked_fill_(~at_limit, NEG_INF)
    log_probs[:, eos] = eos_column
    return log_probs


def greedy_search(
    step_fn: StepFn,
    reorder_fn: ReorderFn,
    state: Any,
    bos: int,
    eos: int,
    max_lens: torch.Tensor,
    min_len: int = 0,
    forbid: tuple[int, ...] = (),
    return_attention: bool = False,
) -> list[Hypothesis]:
    """Pick the most probable token at every step; finished sentences leave the batch.

    max_lens [B] (on the search device): output length cap per sentence, eos included. The step
    loop is vectorised over sentences; results reach the host once, at the end.
    """
    batch = max_lens.size(0)
    device = max_lens.device
    longest, shortest = int(max_lens.max()), int(max_lens.min())
    alive = torch.arange(batch, device=device)  # original sentence of each live row
    prev = torch.full((batch,), bos, dtype=torch.long, device=device)
    tokens = torch.full((batch, longest), eos, dtype=torch.long, device=device)  # [B, T_max]
    lengths = torch.zeros(batch, dtype=torch.long, device=device)  # output length incl. eos
    log_prob = torch.zeros(batch, device=device)
    attention: torch.Tensor | None = None  # [B, T_max, S]
    step = 0
    while alive.numel():
        log_probs, state, attn = step_fn(prev, state)
        log_probs = _mask_log_probs(log_probs.float(), step, max_lens[alive], shortest, eos, min_len, forbid)
        best, prev = log_probs.max(dim=-1)  # [N]
        tokens[alive, step] = prev
        log_prob[alive] += best
        if return_attention and attn is not None:
            if attention is None:
                attention = attn.new_zeros(batch, longest, attn.size(-1), dtype=torch.float)
            attention[alive, step] = attn.float()
        is_eos = prev == eos  # [N]
        lengths[alive[is_eos]] = step + 1
        if bool(is_eos.any()):  # one host sync per step: decides whether the batch shrinks
            keep = (~is_eos).nonzero().squeeze(1)
            alive, prev = alive[keep], prev[keep]
            if keep.numel():
                state = reorder_fn(state, keep)
        step += 1
    lengths_host, scores = lengths.tolist(), log_prob.tolist()
    rows = tokens.tolist()
    attention = None if attention is None else attention.cpu()
    return [
        Hypothesis(
            tokens=rows[i][: lengths_host[i] - 1],
            score=scores[i],
            log_prob=scores[i],
            attention=None if attention is None else attention[i, : lengths_host[i]],
        )
        for i in range(batch)
    ]


@dataclass
class _Beams:
    """The live part of a beam search: rows are (sentence, beam) pairs, K per sentence."""

    sents: torch.Tensor  # [B'] original sentence index of each live sentence
    scores: torch.Tensor  # [B', K] summed log-probs
    tokens: torch.Tensor  # [B' * K, t] output so far
    attention: torch.Tensor | None  # [B' * K, t, S]


def beam_search(
    step_fn: StepFn,
    reorder_fn: ReorderFn,
    state: Any,
    bos: int,
    eos: int,
    max_lens: torch.Tensor,
    beam_size: int,
    nbest: int = 1,
    alpha: float = 0.0,
    min_len: int = 0,
    forbid: tuple[int, ...] = (),
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Beam search for B sentences at once; returns the `nbest` best hypotheses per sentence.

    `state` holds B rows (one per sentence); it grows to B x K rows after the first step (whose K
    beams would all hold the same empty prefix, so it is computed once per sentence). A sentence stops
    when it has `nbest` finished hypotheses and no live beam can still outscore the worst of
    them (a live beam's score can only fall; the best it can reach is its current log-prob
    divided by the length penalty at the sentence's length cap).
    """
    k = beam_size
    batch = max_lens.size(0)
    device = max_lens.device
    scores = torch.full((batch, k), NEG_INF, device=device)
    scores[:, 0] = 0.0  # all beams start identical: only one may expand at step 0
    beams = _Beams(
        sents=torch.arange(batch, device=device),
        scores=scores,
        tokens=torch.empty(batch * k, 0, dtype=torch.long, device=device),
        attention=None,
    )
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    kept = torch.full((batch, nbest), NEG_INF, device=device)  # [B, nbest] best finished scores, sorted
    lp_at_cap = ((5.0 + max_lens.float()) / 6.0) ** alpha  # [B] length penalty at each cap
    shortest = int(max_lens.min())
    prev = torch.full((batch,), bos, dtype=torch.long, device=device)
    step = 0
    while beams.sents.numel():
        log_probs, state, attn = step_fn(prev, state)
        group = 1 if step == 0 else k  # rows per sentence in `state`
        row_caps = max_lens[beams.sents].repeat_interleave(group)
        log_probs = _mask_log_probs(log_probs.float(), step, row_caps, shortest, eos, min_len, forbid)
        step_attn = attn if return_attention else None
        if group < k:  # the K beams of step 0 share their row; beams 2..K score -inf, so only beam 1 expands
            log_probs = log_probs.repeat_interleave(k, dim=0)
            step_attn = None if step_attn is None else step_attn.repeat_interleave(k, dim=0)
        old = beams
        beams, rows, prev, finals = _expand(old, log_probs, step_attn, eos, k)
        _collect_finished(old, finals, step_attn, finished, step, alpha)
        capped = step + 1 >= max_lens[beams.sents]  # [B'] normally dead by now; NaN scores would never die
        live = _live_sentences(beams, finals, kept, lp_at_cap, length_penalty(step + 1, alpha), capped)
        state_rows = rows // (k // group)  # [B' * K] rows of `state`
        if live is None:
            state = reorder_fn(state, state_rows)
        else:
            keep_rows = (live.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            state = reorder_fn(state, state_rows[keep_rows])
            prev = prev[keep_rows]
            beams = _Beams(
                sents=beams.sents[live],
                scores=beams.scores[live],
                tokens=beams.tokens[keep_rows],
                attention=None if beams.attention is None else beams.attention[keep_rows],
            )
        step += 1
    for hyps in finished:
        hyps.sort(key=lambda h: h.score, reverse=True)
    return [hyps[:nbest] for hyps in finished]


@dataclass
class _Finals:
    """This step's eos candidates: where they are, their scores and which rows they extend."""

    is_final: torch.Tensor  # [B', 2K] bool
    scores: torch.Tensor  # [B', 2K] summed log-probs
    rows: torch.Tensor  # [B', 2K] row in the previous step's beams


def _expand(
    beams: _Beams, log_probs: torch.Tensor, attn: torch.Tensor | None, eos: int, k: int
) -> tuple[_Beams, torch.Tensor, torch.Tensor, _Finals]:
    """One beam step over log_probs [B' * K, V], each row's next-token log-probs.

    Takes the 2K best continuations (beam score plus log-prob) per sentence: those ending in eos
    among the first K are finished (fairseq's rule), the K best others continue. Returns the new
    beams, the rows they continue [B' * K], their last tokens [B' * K] and the finished candidates.
    """
    live = beams.sents.numel()
    device = log_probs.device
    # A sentence's 2K best continuations are among each of its rows' 2K best tokens: no [N, V] sum.
    per_row = min(2 * k, log_probs.size(-1))
    row_best, row_tok = top_k_rows(log_probs, per_row)  # [B' * K, 2K]
    cand = (beams.scores.view(-1, 1) + row_best).view(live, k * per_row)  # [B', K * 2K]
    top_scores, top_idx = cand.topk(2 * k, dim=-1)  # [B', 2K]
    base = torch.arange(live, device=device).unsqueeze(1) * k
    top_rows, top_tok = base + top_idx // per_row, row_tok.view(live, -1).gather(1, top_idx)  # [B', 2K]
    is_eos = top_tok == eos
    is_final = is_eos & (torch.arange(2 * k, device=device) < k) & (top_scores > NEG_INF)
    new_scores, pick = top_scores.masked_fill(is_eos, NEG_INF).topk(k, dim=-1)  # [B', K]
    rows = top_rows.gather(1, pick).view(-1)  # [B' * K]
    last = top_tok.gather(1, pick).view(-1)  # [B' * K]
    tokens = torch.cat([beams.tokens[rows], last.unsqueeze(1)], dim=1)  # [B' * K, t + 1]
    attention = None
    if attn is not None:
        attention = _extend_attention(beams.attention, attn, rows)
    new = _Beams(sents=beams.sents, scores=new_scores, tokens=tokens, attention=attention)
    return new, rows, last, _Finals(is_final=is_final, scores=top_scores, rows=top_rows)


def _extend_attention(history: torch.Tensor | None, attn: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """history [N, t, S] (or None at t = 0) and this step's attn [N, S] -> [len(rows), t + 1, S]."""
    step_attn = attn[rows].float().unsqueeze(1)
    return step_attn if history is None else torch.cat([history[rows], step_attn], dim=1)


def _collect_finished(
    old: _Beams, finals: _Finals, attn: torch.Tensor | None, finished: list[list[Hypothesis]], step: int, alpha: float
) -> None:
    """Move this step's finished candidates into `finished` (one host transfer per step)."""
    hits = finals.is_final.nonzero()[:, 0].tolist()  # sentence position of each, row-major
    if not hits:
        return
    sents = old.sents.tolist()
    penalty = length_penalty(step + 1, alpha)
    rows = finals.rows[finals.is_final]
    scores = finals.scores[finals.is_final].tolist()
    history = old.tokens[rows].tolist()
    attention = _extend_attention(old.attention, attn, rows).cpu() if attn is not None else None
    for i, pos in enumerate(hits):
        finished[sents[pos]].append(
            Hypothesis(
                tokens=history[i],
                score=scores[i] / penalty,
                log_prob=scores[i],
                attention=None if attention is None else attention[i],
            )
        )


def _live_sentences(
    beams: _Beams, finals: _Finals, kept: torch.Tensor, lp_at_cap: torch.Tensor, penalty: float, capped: torch.Tensor
) -> torch.Tensor | None:
    """Positions of the sentences still searching, or None when all are (vectorised over sentences).

    Updates `kept` [B, nbest] with this step's finished scores. A sentence is done when it reached
    its length cap (`capped` [B']), when its best live beam is dead, or when it has nbest finished
    hypotheses and even that beam, at the sentence's length cap, could not beat the worst of them.
    """
    final_scores = finals.scores.masked_fill(~finals.is_final, NEG_INF) / penalty  # [B', 2K]
    merged = torch.cat([kept[beams.sents], final_scores], dim=1).topk(kept.size(1), dim=1).values  # [B', nbest]
    kept[beams.sents] = merged
    best_live = beams.scores[:, 0]  # [B'] scores are sorted: column 0 is the best live beam
    worst_kept = merged[:, -1]
    bound = best_live / lp_at_cap[beams.sents]
    done = capped | (best_live == NEG_INF) | ((worst_kept > NEG_INF) & (bound <= worst_kept))  # [B']
    if not bool(done.any()):
        return None
    return (~done).nonzero().squeeze(1)
