"""Validation during training: what the model scores on held-out pairs, and whether that is progress.

`Validator` measures (teacher-forced loss and perplexity, BLEU of the configured search through
the same `Translator` as nmt-eval, attention heatmaps); `judge` turns a score into the training
decisions (best checkpoint, early-stopping patience).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch

from nmt.batching import corpus_batch, make_batches
from nmt.config import Config, TrainConfig
from nmt.data import Corpus
from nmt.metrics import score_corpus
from nmt.model import Seq2Seq
from nmt.tokenizer import Tokenizer
from nmt.translator import Translator


class Validator:
    def __init__(
        self,
        model: Seq2Seq,
        tokenizer: Tokenizer,
        config: Config,
        data: Corpus,
        device: torch.device,
        autocast: Callable[[], AbstractContextManager],
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.data = data
        self.device = device
        self.autocast = autocast  # the training precision, for the teacher-forced loss
        self.translator = Translator(model, tokenizer, config, device)

    @torch.no_grad()  # not inference_mode, for autocast's weight cache (see Translator.search_ids)
    def scores(self) -> dict[str, float]:
        """Validation loss per target token, perplexity and BLEU of `decode.valid_beam_size`."""
        self.model.eval()
        nll = tokens = 0.0
        for indices in make_batches(self.data.costs(), self.config.train.max_tokens):
            batch = corpus_batch(self.data, indices, self.tokenizer, self.device)
            with self.autocast():
                att_vecs = self.model(batch.src, batch.src_lens, batch.tgt_in)  # [B, T, H]
                nll += float(self.model.loss(att_vecs, batch.tgt_out).nll)
            tokens += batch.num_tgt_tokens
        # Same translator, detokenizer and sacrebleu call as nmt-eval, so the numbers agree.
        texts = self.translator.translate(self.data.src_text, beam_size=self.config.decode.valid_beam_size, nbest=1)
        evals = self.config.eval
        bleu = score_corpus(texts, [self.data.tgt_text], ("bleu",), evals.bleu_tokenize, evals.lowercase)["bleu"].score
        loss = nll / max(tokens, 1)
        return {"loss": loss, "ppl": math.exp(min(loss, 100.0)), "bleu": bleu}

    def attention_figures(self, count: int = 3) -> Iterator[tuple[str, Any]]:
        """(tag, matplotlib figure) heatmaps of the first `count` validation sentences."""
        from nmt.plotting import attention_figure

        examples = self.translator.translate_detailed(
            self.data.src_text[:count], return_attention=True, beam_size=self.config.decode.valid_beam_size, nbest=1
        )
        eos = self.tokenizer.tgt.pieces([self.tokenizer.tgt.vocab.eos])
        for i, example in enumerate(examples):
            if example.hypotheses and example.hypotheses[0].attention is not None:
                hyp = example.hypotheses[0]
                pieces = self.tokenizer.tgt.pieces(hyp.tokens) + eos
                yield f"attention/valid_{i}", attention_figure(hyp.attention, example.src_pieces, pieces)


def judge(scores: dict[str, float], best_score: float | None, cfg: TrainConfig) -> tuple[dict[str, Any], bool]:
    """The checkpoint record of a validation and whether it is the best so far (`train.early_stopping_metric`)."""
    metric = cfg.early_stopping_metric
    higher = metric == "bleu"
    score = scores[metric]
    record = {"metric": metric, "value": score, "higher_is_better": higher, **scores}
    is_best = best_score is None or (score > best_score if higher else score < best_score)
    return record, is_best
