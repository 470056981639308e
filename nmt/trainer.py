"""Trainer.fit: data -> batches -> model -> loss -> update, with validation, checkpoints and resume.

Re-running `fit` on a run directory that holds checkpoints continues from the newest readable
one: weights, optimizer, schedule, GradScaler, RNG streams, step, epoch and the position inside
the epoch's batch list, best score and early-stopping patience.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from time import monotonic
from typing import Any

import numpy as np
import torch
import yaml

from nmt import run_dir
from nmt.batching import Batch, BatchList, corpus_batch, sampled_batch, sampling_seed
from nmt.checkpoint import find_latest, save_checkpoint
from nmt.config import Config, sampling_problem
from nmt.data import Corpus, FilterReport, encode_validation, iter_side, read_corpus
from nmt.distributed import Distributed, init_distributed, shutdown_distributed
from nmt.errors import CheckpointError, ConfigError, brief
from nmt.faults import BadStepGuard, GracefulStop
from nmt.metrics import check_bleu_tokenize
from nmt.mixing import epoch_counts
from nmt.model import Seq2Seq
from nmt.optim import LRSchedule, build_optimizer
from nmt.resume import check_ranks_agree, check_resume_config, check_resume_tokenizer, rng_state, seed_everything, set_rng_state
from nmt.store import CorpusStore, TrainingCorpus, ensure_store, find_store, return_freed_memory
from nmt.tokenizer import Tokenizer, build_tokenizer, file_names
from nmt.tracking import Tracker, software_versions
from nmt.train_stats import StatsWindow, train_line, train_scalars
from nmt.translator import check_precision
from nmt.validation import Validator, judge


@dataclass
class TrainState:
    """Counters saved in every checkpoint."""

    step: int = 0  # optimizer updates done
    epoch: int = 1
    batch_in_epoch: int = 0  # batches of this epoch already trained on
    best_score: float | None = None
    bad_validations: int = 0  # validations since the best one (early stopping)
    stopped: str = ""  # set by early stopping: a finished run is not continued
    train_seconds: float = 0.0  # wall time in the training loop, over all resumed runs (train.max_time)


Texts = tuple[list[str], list[str]]  # source and target lines of one corpus


class Trainer:
    def __init__(self, config: Config, source: str = "<config>") -> None:
        self.config = config
        self.source = source
        self.run_dir = Path(config.run_dir)
        self.dist = Distributed()
        self.device = torch.device("cpu")
        self.amp_dtype = None
        self._saved_step = -1
        self._clock = 0.0  # monotonic() at the last tick of the training loop

    # ----------------------------------------------------------------------------------------
    # set-up

    def fit(self) -> TrainState:
        """Train until max_steps, max_epochs, max_time or early stopping; returns the final counters.

        Every input (checkpoint, config changes, corpora, tokenizer) is checked before anything is
        printed or written, so a bad one fails with its single error line and changes nothing.
        """
        self.dist, self.device = init_distributed(self.config.train.device)
        try:
            if self.config.data.valid:  # validation BLEU: fail now, not at the first validation
                check_precision(self.config.decode.amp, self.device)
                check_bleu_tokenize(self.config.eval.bleu_tokenize, f"{self.source}: key 'eval.bleu_tokenize':")
            if self.dist.is_main:
                run_dir.prepare(self.run_dir)
            self.dist.barrier()
            notes: list[str] = []  # messages from before the log exists
            path, resume = find_latest(self.run_dir, notes.append) or (None, None)
            check_ranks_agree(self.run_dir, self.dist.gather(resume["state"]["step"] if resume else None))
            files = self._own_files()
            run_dir.check_free(self.run_dir, files, resumed=resume is not None)
            tokenizer = self._tokenizer(path, resume, notes.append)
            self._check_sampling(tokenizer)
            stores = self._training_stores(tokenizer, notes.append)
            train_data = self._filter(stores, notes.append)  # an empty corpus fails here, before any output
            return_freed_memory()
            valid_text = read_corpus(self.config.data.valid, "data.valid", notes.append) if self.config.data.valid else None
            step = resume["state"]["step"] if resume else 0
            if self.dist.is_main:
                run_dir.record(self.run_dir, [*files, run_dir.CHECKPOINTS, run_dir.TENSORBOARD, run_dir.STORE])
            self.tracker = Tracker(self.run_dir, resume_step=step, enabled=self.dist.is_main)
            try:
                for note in notes:
                    self.tracker.log(note)
                return self._fit(path, resume, train_data, valid_text, tokenizer)
            finally:
                self.tracker.close()
        finally:
            shutdown_distributed()

    def _own_files(self) -> dict[str, bytes | None]:
        """The files this run writes at the top of run_dir, with their content where it is known before set-up."""
        tok = self.config.tokenizer
        given = [tok.model_file] if tok.joint else [tok.src_model_file, tok.tgt_model_file]
        return {
            run_dir.CONFIG_FILE: self._resolved_config(),
            run_dir.LOG_FILE: None,
            **{name: _read_or_none(model) for name, model in zip(file_names(tok.joint), given)},
        }

    def _resolved_config(self) -> bytes:
        return yaml.safe_dump(self.config.to_dict(), sort_keys=False).encode()

    def _tokenizer(self, path: Path | None, resume: dict[str, Any] | None, note) -> Tokenizer:
        """A resumed run's tokenizer (after the resume checks), or a fresh run's, trained now by rank 0
        on the streamed training corpus; the other ranks receive the very same model."""
        cfg = self.config
        if resume is not None:
            check_resume_config(resume["config"], cfg, self.source, f"{path} (stored config)", note)
            tokenizer = Tokenizer.from_protos(resume["tokenizer"], str(path))
            check_resume_tokenizer(tokenizer, self.run_dir)
            return tokenizer
        sides = [self._train_side(side) for side in ("src", "tgt")]
        protos = build_tokenizer(cfg.tokenizer, *sides, note).protos() if self.dist.is_main else None
        return Tokenizer.from_protos(self.dist.broadcast(protos), "rank 0's tokenizer")

    def _check_sampling(self, tokenizer: Tokenizer) -> None:
        """tokenizer.sampling needs unigram or bpe models (known only once a model file is loaded)."""
        cfg = self.config.tokenizer
        files = [cfg.model_file] * 2 if cfg.joint else [cfg.src_model_file, cfg.tgt_model_file]
        for side, file in zip((tokenizer.src, tokenizer.tgt), files) if cfg.sampling else ():
            if problem := sampling_problem(side.model_type, cfg.sampling_nbest):
                key, message = problem
                where = file or "the run's sentencepiece model"
                raise ConfigError(f"{self.source}: key '{key}': {where}: {message}")

    def _train_side(self, side: str) -> Iterator[str]:
        """One side of every training corpus, streamed (for sentencepiece)."""
        for corpus, name in zip(self.config.data.train, self.config.data.train_names()):
            yield from iter_side(corpus, name, side)

    def _training_stores(self, tokenizer: Tokenizer, note) -> list[CorpusStore]:
        """Each training corpus encoded once into its store, which every rank maps.

        The first rank of each node builds (or finds) the stores while the others wait, so a
        node-local data.store_dir works; ranks of other nodes sharing one directory build no
        second copy unless they start at the same time (then the first complete one is kept).
        """
        data = self.config.data
        root = Path(data.store_dir) if data.store_dir else self.run_dir / run_dir.STORE
        corpora = list(zip(data.train, data.train_names()))
        text = self.config.tokenizer.sampling  # sampling encodes each batch again from its text
        if self.dist.is_local_main:
            log = note if self.dist.is_main else lambda message: None
            paths = [ensure_store(corpus, name, tokenizer, root, log, text) for corpus, name in corpora]
        self.dist.barrier()
        if not self.dist.is_local_main:
            paths = [find_store(corpus, name, tokenizer, root, text) for corpus, name in corpora]
        return [CorpusStore.open(path) for path in paths]

    def _fit(
        self,
        path: Path | None,
        resume: dict[str, Any] | None,
        train_data: TrainingCorpus,
        valid_text: Texts | None,
        tokenizer: Tokenizer,
    ) -> TrainState:
        cfg, log = self.config, self.tracker.log
        if self.dist.is_main:
            run_dir.write_file(self.run_dir, run_dir.CONFIG_FILE, self._resolved_config())
            tokenizer.save(self.run_dir)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        seed_everything(cfg.seed, cfg.train.deterministic)
        self.amp_dtype = self._amp_dtype(log)
        ranks = f", {self.dist.world_size} ranks (DDP)" if self.dist.enabled else ""
        log(f"run {self.run_dir}: device {self.device}, amp {self.amp_dtype or 'off'}{ranks}")
        log(f"versions: {software_versions()}")
        self.tokenizer = tokenizer
        self.train_data = train_data
        self.model = Seq2Seq(cfg.model, tokenizer.src.vocab, tokenizer.tgt.vocab).to(self.device)
        self.validator = None
        if valid_text:
            valid_data = self._encode(valid_text, "data.valid")
            self.validator = Validator(self.model, tokenizer, cfg, valid_data, self.device, self._autocast)
        self.net = self.model  # what training steps call: the model, or its DDP wrapper
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=device_ids)
            torch.manual_seed(cfg.seed * 1000 + self.dist.rank)  # same init everywhere, own dropout stream per rank
        log(
            f"model: {self.model.num_parameters():,} parameters; vocab {tokenizer.src.vocab.size} src, {tokenizer.tgt.vocab.size} tgt"
        )
        self.optimizer = build_optimizer(self.model.parameters(), cfg.train, fused=self.device.type == "cuda")
        self.schedule = LRSchedule(self.optimizer, cfg.train)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        state = TrainState()
        if resume is not None:
            state = self._restore(path, resume)
            log(f"resuming from step {state.step} (epoch {state.epoch}, batch {state.batch_in_epoch})")
        if state.stopped and self._patience_left(state):
            log(
                f"continuing a run that ended by {state.stopped!r}: train.early_stopping_patience is now {cfg.train.early_stopping_patience}"
            )
            state.stopped = ""
        if state.stopped:
            log(f"training already finished at step {state.step}: {state.stopped}")
            return state
        if self._reached_limit(state):
            log(
                f"training already complete at step {state.step}; "
                "raise train.max_steps, train.max_epochs or train.max_time to continue"
            )
            return state
        if cfg.train.max_seconds:
            used = state.train_seconds
            log(f"train.max_time={cfg.train.max_time}: {used:.0f} s used, {cfg.train.max_seconds - used:.0f} s left")
        return self._train(state)

    def _amp_dtype(self, log) -> torch.dtype | None:
        amp = self.config.train.amp
        if amp == "off":
            return None
        if self.device.type == "cpu" and amp == "bf16":
            return torch.bfloat16  # CPU autocast: bf16 matrix products (native on AVX512-BF16/AMX CPUs)
        if self.device.type != "cuda":
            log(f"note: train.amp={amp} needs CUDA; training in fp32 on {self.device} (train.amp=bf16 works on CPUs)")
            return None
        if amp == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"{self.source}: key 'train.amp': this GPU does not support bf16; use fp16")
        return torch.float16 if amp == "fp16" else torch.bfloat16

    def _filter(self, stores: list[CorpusStore], note) -> TrainingCorpus:
        """The training pairs the length filters keep (computed on the stores' length arrays)."""
        corpus, reports = TrainingCorpus.filtered(stores, self.config.data)
        names = self.config.data.train_names()
        for name, report, size in zip(names, reports, corpus.sizes()):
            self._check_kept(report, name, size, note)
        if corpus.weights is not None:
            counts = epoch_counts(corpus.sizes(), corpus.weights)
            for name, weight, size, count in zip(names, corpus.weights, corpus.sizes(), counts):
                note(f"{name}: weight {weight:g}: {count:,} pairs an epoch ({count / size:.2f} x its {size:,})")
        return corpus

    def _encode(self, text: Texts, name: str) -> Corpus:
        corpus, report = encode_validation(text, self.tokenizer, self.config.data)
        self._check_kept(report, name, len(corpus.src_ids), self.tracker.log)
        return corpus

    def _check_kept(self, report: FilterReport, name: str, kept: int, log) -> None:
        log(report.summary(name))
        if not kept:
            raise ConfigError(f"{self.source}: key '{name}': no usable sentence pairs left after filtering; check data.max_len")

    # ----------------------------------------------------------------------------------------
    # the loop

    def _train(self, state: TrainState) -> TrainState:
        cfg, tracker = self.config.train, self.tracker
        tracker.start_progress(cfg.max_steps or None, state.step)
        guard = BadStepGuard(cfg.max_bad_steps)
        window = StatsWindow()
        last_loss = "-"  # reading the loss every step would stall the GPU; it is shown at log steps
        self._clock = monotonic()  # start-up is not training time
        with GracefulStop() as stop:
            while True:
                batches = self._epoch_batches(state.epoch)
                per_update = cfg.accumulate_steps * self.dist.world_size
                while state.batch_in_epoch < len(batches):
                    group = batches[state.batch_in_epoch : state.batch_in_epoch + per_update]
                    lr = self.schedule.set_step(state.step + 1, self._progress(state, len(batches)))
                    stats = self._guarded_update(group, state, guard)
                    state.batch_in_epoch += len(group)
                    signalled = self._tick(state, bool(stop.requested))
                    if stats is not None:
                        state.step += 1
                        window.add(stats)
                        tracker.progress(1, loss=last_loss, **window.postfix(lr))
                        if state.step % cfg.log_every_steps == 0:
                            last_loss = f"{self._log_train(window, state, lr):.3f}"
                            window = StatsWindow()
                        if cfg.max_steps and state.step >= cfg.max_steps:
                            return self._finish(state, f"reached train.max_steps={cfg.max_steps}")
                        if cfg.max_seconds and state.train_seconds >= cfg.max_seconds:
                            return self._finish(state, f"reached train.max_time={cfg.max_time}")
                        if self.schedule.final_decay_ended(state.step):
                            state.stopped = f"early stopping: the final decay from step {self.schedule.decay_start} ended"
                            return self._finish(state, state.stopped)
                        if state.step % cfg.eval_every_steps == 0:
                            self._validate_and_save(state)
                            if state.stopped:
                                return self._finish(state, state.stopped)
                        elif cfg.save_every_steps and state.step % cfg.save_every_steps == 0:
                            self._save(state, {}, is_best=False)
                    if signalled:  # on every rank at the same step
                        self._save(state, {}, is_best=False)
                        tracker.log(f"stopped by {stop.requested} at step {state.step}; re-run the same command to resume")
                        return state
                if cfg.max_epochs and state.epoch >= cfg.max_epochs:
                    return self._finish(state, f"reached train.max_epochs={cfg.max_epochs}")
                state.epoch += 1
                state.batch_in_epoch = 0

    def _tick(self, state: TrainState, signalled: bool) -> bool:
        """Add the wall time since the last tick to `state.train_seconds`; True if any rank got a stop signal.

        The time is averaged over ranks so that every rank sees the same budget progress (and
        so the same learning rate under the linear schedule) and stops at the same step.
        """
        now = monotonic()
        local = state.train_seconds + now - self._clock
        self._clock = now
        flag, seconds = self.dist.sum([float(signalled), local])
        state.train_seconds = seconds / self.dist.world_size
        return bool(flag)

    def _progress(self, state: TrainState, epoch_batches: int) -> float:
        """Fraction of the training budget used: the largest of steps, epochs and time (0 without limits)."""
        cfg = self.config.train
        used = [0.0]
        if cfg.max_steps:
            used.append(state.step / cfg.max_steps)
        if cfg.max_epochs:
            used.append((state.epoch - 1 + state.batch_in_epoch / epoch_batches) / cfg.max_epochs)
        if cfg.max_seconds:
            used.append(state.train_seconds / cfg.max_seconds)
        return min(max(used), 1.0)

    def _guarded_update(self, group: BatchList, state: TrainState, guard: BadStepGuard) -> dict[str, Any] | None:
        """`_update`, or None when the step had to be skipped (out of memory, non-finite loss)."""
        where = f"batch {state.batch_in_epoch} of epoch {state.epoch} ({sum(len(b) for b in group)} sentences)"
        out_of_memory = False
        try:
            stats = self._update(group, state)
        except torch.cuda.OutOfMemoryError:
            if self.dist.enabled:
                raise  # the other ranks wait in all-reduce: let torchrun restart from the last checkpoint
            out_of_memory = True  # recover outside the handler: its traceback pins the batch's tensors
        if out_of_memory:
            self.optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.tracker.log(f"warning: out of memory on {where}; skipped it")
            guard.bad("CUDA out of memory", "Lower train.max_tokens (or set train.max_sentences) and re-run to resume.")
            return None
        if stats is None:
            self.tracker.log(f"warning: non-finite loss or gradient on {where}; skipped it")
            guard.bad("non-finite loss", "Lower train.lr, raise train.warmup_steps or check the data, then re-run to resume.")
            return None
        guard.ok()
        return stats

    def _finish(self, state: TrainState, reason: str) -> TrainState:
        """Validate and checkpoint the final step (unless just done), then report why training ended."""
        if self._saved_step != state.step:
            self._validate_and_save(state)
        self.tracker.log(f"training stopped at step {state.step}: {reason}")
        return state

    def _patience_left(self, state: TrainState) -> bool:
        """True when early stopping, as configured now, would not have stopped the run (patience raised or off).

        A run whose final decay has ended is finished whatever the patience.
        """
        patience = self.config.train.early_stopping_patience
        return self.schedule.decay_start is None and (patience == 0 or state.bad_validations < patience)

    def _reached_limit(self, state: TrainState) -> bool:
        """True when a resumed run has nothing left to do under the current limits."""
        cfg = self.config.train
        if cfg.max_steps and state.step >= cfg.max_steps:
            return True
        if cfg.max_seconds and state.train_seconds >= cfg.max_seconds:
            return True
        if not cfg.max_epochs or state.epoch < cfg.max_epochs:
            return False
        # the epoch's batch list is built only here, where it decides (an O(corpus) step at every start)
        return state.epoch > cfg.max_epochs or state.batch_in_epoch >= len(self._epoch_batches(state.epoch))

    def _epoch_batches(self, epoch: int) -> BatchList:
        cfg = self.config.train
        return self.train_data.epoch_batches(self.config.seed, epoch, cfg.max_tokens, cfg.max_sentences)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _update(self, group: BatchList, state: TrainState) -> dict[str, Any] | None:
        """One optimizer update over `group` (batches for all ranks and accumulation steps), the
        batches from `state.batch_in_epoch` of `state.epoch` on.

        Rank r takes its `accumulate_steps` batches of the group; the loss is normalised by the
        target tokens (or sentences: train.loss_normalization) of the whole group, so N ranks
        compute the same update as one process accumulating N times as many batches. Returns
        None, leaving the parameters unchanged, when the gradient is not finite (fp32/bf16).
        """
        cfg = self.config.train
        self.net.train()
        mine, weight = rank_share(group, self.dist.rank, cfg.accumulate_steps)
        first = state.batch_in_epoch + (self.dist.rank * cfg.accumulate_steps if weight else 0)
        batches = [self._batch(indices, state.epoch, first + k) for k, indices in enumerate(mine)]
        if cfg.loss_normalization == "sentences":
            denominator = sum(len(batch) for batch in group)
        elif self.config.tokenizer.sampling:  # the sampled lengths: each rank knows its own
            denominator = self.dist.sum([weight * sum(b.num_tgt_tokens for b in batches)])[0]
        else:
            denominator = sum(int(self.train_data.tgt_lens[batch].sum()) + len(batch) for batch in group)  # eos included
        scale = weight * self.dist.world_size / denominator  # DDP averages gradients over ranks
        loss_sum = nll_sum = 0.0
        for number, batch in enumerate(batches, start=1):
            sync = number == len(batches) or not self.dist.enabled
            with self._autocast(), nullcontext() if sync else self.net.no_sync():
                att_vecs = self.net(batch.src, batch.src_lens, batch.tgt_in, cfg.teacher_forcing_ratio)  # [B, T, H]
                out = self.model.loss(att_vecs, batch.tgt_out, cfg.label_smoothing)
                self.scaler.scale(out.loss * scale).backward()
            loss_sum = loss_sum + out.loss.detach() * weight
            nll_sum = nll_sum + out.nll * weight
        local_tokens = int(weight) * sum(b.num_tgt_tokens for b in batches)
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = cfg.clip_grad_norm if cfg.clip_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if not self.scaler.is_enabled() and not bool(torch.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return None  # fp32/bf16: skip the step; fp16 overflows are skipped by the GradScaler below
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        overflow = (~torch.isfinite(grad_norm)).float()  # counted on the device, read at log steps
        return {
            "loss": loss_sum,
            "nll": nll_sum,
            "tokens": local_tokens,
            "grad_norm": torch.nan_to_num(grad_norm),
            "overflow": overflow,
        }

    def _batch(self, indices: np.ndarray, epoch: int, position: int) -> Batch:
        """The training pairs at `indices`, the batch at `position` of `epoch`, on the device."""
        tok = self.config.tokenizer
        if not tok.sampling:
            return corpus_batch(self.train_data, indices, self.tokenizer, self.device)
        seed = sampling_seed(self.config.seed, epoch, position)
        return sampled_batch(self.train_data, indices, self.tokenizer, tok, seed, self.device)

    def _log_train(self, window: StatsWindow, state: TrainState, lr: float) -> float:
        """Log the window's statistics (summed over ranks); returns its loss per token."""
        stats = window.summary(self.dist)
        self.tracker.scalars(train_scalars(stats, lr), state.step)
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None
        self.tracker.log(train_line(stats, state.step, state.epoch, lr, self.dist.enabled, peak))
        return stats["loss"]

    # ----------------------------------------------------------------------------------------
    # validation and checkpoints

    def _validate_and_save(self, state: TrainState) -> None:
        """Rank 0 validates and decides (best, patience, plateau); every rank adopts its verdict."""
        verdict = self._validate_and_judge(state) if self.dist.is_main else None
        record, is_best, counters, schedule = self.dist.broadcast(verdict)
        state.best_score, state.bad_validations, state.stopped = counters
        self.schedule.load_state_dict(schedule)
        self._save(state, record, is_best)

    def _validate_and_judge(self, state: TrainState) -> tuple:
        cfg = self.config.train
        is_best = True  # without validation data the newest model is the best we know
        record: dict[str, Any] = {}
        if self.validator is not None:
            scores = self.validator.scores()
            self.tracker.scalars({f"valid/{k}": v for k, v in scores.items()}, state.step)
            for tag, figure in self.validator.attention_figures():
                self.tracker.figure(tag, figure, state.step)
            self.tracker.log(
                f"validation at step {state.step}: loss {scores['loss']:.3f} ppl {scores['ppl']:.2f} "
                f"bleu {scores['bleu']:.2f} (beam {self.config.decode.valid_beam_size})"
            )
            record, is_best = judge(scores, state.best_score, cfg)
            if is_best:
                state.best_score, state.bad_validations = record["value"], 0
            else:
                state.bad_validations += 1
            if self.schedule.observe(record["value"], record["higher_is_better"]):
                self.tracker.log(
                    f"validation {record['metric']} has not improved for {cfg.plateau_patience} validations: lowering lr"
                )
            if cfg.early_stopping_patience and state.bad_validations >= cfg.early_stopping_patience:
                self._stop_early(
                    state, f"early stopping: no {record['metric']} improvement in {cfg.early_stopping_patience} validations"
                )
        counters = (state.best_score, state.bad_validations, state.stopped)
        return record, is_best, counters, self.schedule.state_dict()

    def _stop_early(self, state: TrainState, reason: str) -> None:
        """Stop now, or, under a schedule that ends with a decay, start it (if the rate is still constant) and stop after it."""
        if state.stopped:  # the validation of a run that is ending anyway
            return
        if not self.schedule.ends_with_decay:
            state.stopped = reason
        elif (updates := self.schedule.start_final_decay(state.step)) is not None:
            self.tracker.log(
                f"{reason}: lowering lr to train.min_lr over the next {updates} updates "
                f"(train.decay_fraction={self.config.train.decay_fraction}), then stopping"
            )
        else:
            self.tracker.log(f"{reason}: the final decay is under way; training stops at its end")

    def _save(self, state: TrainState, scores: dict[str, Any], is_best: bool) -> None:
        """Every rank's RNG streams go into the checkpoint; rank 0 alone writes it."""
        rng = self.dist.gather(rng_state())
        if self.dist.is_main:
            keep = self.config.train.keep_checkpoints
            path = save_checkpoint(self.run_dir, self._checkpoint_state(state, scores, rng), state.step, is_best, keep)
            self.tracker.log(f"saved {path}" + (" (best)" if is_best else ""))
        self._saved_step = state.step

    def _checkpoint_state(self, state: TrainState, scores: dict[str, Any], rng: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "scores": scores,
            "config": self.config.to_dict(),
            "tokenizer": self.tokenizer.protos(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": asdict(state),
            "rng": rng,  # one entry per rank
        }

    def _restore(self, path: Path, ckpt: dict[str, Any]) -> TrainState:
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.schedule.load_state_dict(ckpt["schedule"])
            if ckpt["scaler"]:
                self.scaler.load_state_dict(ckpt["scaler"])
            state = TrainState(**ckpt["state"])
            self._restore_rng(ckpt["rng"], state.step)
        # what torch's load_state_dict, the dataclass and the RNG setters raise on a mismatch
        except (RuntimeError, ValueError, KeyError, IndexError, TypeError) as err:
            raise CheckpointError(
                f"{path}: its weights or training state do not fit the model its config builds ({brief(err)}); "
                "move the checkpoint out of the run's checkpoints/ folder to resume from an older one"
            ) from None
        return state

    def _restore_rng(self, streams: list[dict[str, Any]], step: int) -> None:
        if len(streams) == self.dist.world_size:
            set_rng_state(streams[self.dist.rank])
        else:  # another number of ranks: same data order, fresh (but seeded) dropout streams
            torch.manual_seed(self.config.seed * 1000 + self.dist.rank + step)
            self.tracker.log(
                f"note: checkpoint has RNG streams of {len(streams)} ranks, this run has {self.dist.world_size}: reseeded"
            )


def rank_share(group: Sequence, rank: int, per_rank: int) -> tuple[Sequence, float]:
    """Rank `rank`'s batches of an update's `group` (`per_rank` of them), and their loss weight.

    Over an epoch the ranks' shares cover every batch exactly once. The epoch's last group may be
    short: a rank with no batch left joins the all-reduce with a zero-weight copy of the first.
    """
    mine = group[rank * per_rank : (rank + 1) * per_rank]
    return (mine, 1.0) if len(mine) else (group[:1], 0.0)


def _read_or_none(path: str | None) -> bytes | None:
    """A configured file's bytes, or None (not configured, or unreadable: reported later, when it is loaded)."""
    try:
        return Path(path).read_bytes() if path else None
    except OSError:
        return None
