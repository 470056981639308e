"""Never lose a run: exact resume after SIGKILL, graceful SIGTERM, skipped bad steps, storage faults."""

from __future__ import annotations

import errno
import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt.checkpoint import load_checkpoint
from nmt.config import load_config
from nmt.errors import CheckpointError, TrainingError
from nmt.model import Seq2Seq
from nmt.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _overrides(toy: Path, run_dir: Path, *extra: str) -> list[str]:
    corpus = [f"data.{split}.{side}={toy}/{split}.{side}" for split in ("train", "valid") for side in ("src", "tgt")]
    return [f"run_dir={run_dir}", *corpus, *extra]


def _trainer(toy: Path, run_dir: Path, *extra: str) -> Trainer:
    return Trainer(load_config(ROOT / "configs" / "tiny.yaml", _overrides(toy, run_dir, *extra)))


def test_killed_runs_resume_bit_identically(tmp_path, scripts):
    """SIGKILL at random moments and during checkpoint writes; final weights equal an uninterrupted run."""
    lines: list[str] = []
    identical = scripts("fault_inject").run_with_faults(tmp_path, kills=3, steps=100, seed=1, log=lines.append)
    assert identical, "\n".join(lines)
    assert any("during a checkpoint write" in line for line in lines), "\n".join(lines)


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(toy, tmp_path):
    run_dir = tmp_path / "run"
    command = [
        str(BIN / "nmt-train"),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        *_overrides(toy, run_dir, "train.max_steps=5000", "train.log_every_steps=5"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = run_dir / "train.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "step 20 " in log.read_text()):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "SIGTERM received" in stderr.decode()
    stopped = [line for line in log.read_text().splitlines() if "stopped by SIGTERM at step" in line]
    assert len(stopped) == 1
    step = int(stopped[0].split("at step ")[1].split(";")[0])
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["state"]["step"] == step >= 20
    resumed = subprocess.run([*command[:-2], f"train.max_steps={step + 10}"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from step {step} " in log.read_text()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["state"]["step"] == step + 10


def test_a_time_budget_stops_with_a_checkpoint_and_its_clock_resumes(monkeypatch, toy, tmp_path):
    """train.max_time counts training time over resumed runs; the linear schedule decays over it."""
    clock = iter(range(10**6))  # every reading of the trainer's clock is one second later
    monkeypatch.setattr("nmt.trainer.monotonic", lambda: float(next(clock)))
    run_dir = tmp_path / "run"
    extra = ("train.max_steps=0", "train.schedule=linear", "train.lr=0.005")
    assert _trainer(toy, run_dir, *extra, "train.max_time=10").fit().step == 10  # one reading per update
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert (ckpt["state"]["step"], ckpt["state"]["train_seconds"]) == (10, 10.0)
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.005 * (1 - 9 / 10))
    assert "training stopped at step 10: reached train.max_time=10" in (run_dir / "train.log").read_text()

    state = _trainer(toy, run_dir, *extra, "train.max_time=25s").fit()  # start-up of the resumed run not counted
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state.step == 25 and ckpt["state"]["train_seconds"] == 25.0
    assert "train.max_time=25s: 10 s used, 15 s left" in (run_dir / "train.log").read_text()
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.005 * (1 - 24 / 25))

    assert _trainer(toy, run_dir, *extra, "train.max_time=25s").fit().step == 25
    assert "training already complete at step 25" in (run_dir / "train.log").read_text()


class _StopAfter:
    """Stands in for GracefulStop: a SIGTERM arrives after `batches` batches."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def __enter__(self) -> _StopAfter:
        return self

    def __exit__(self, *exc) -> None:
        pass

    @property
    def requested(self) -> str:
        self.batches -= 1
        return "SIGTERM" if self.batches <= 0 else ""


def test_early_stopping_under_a_final_decay_schedule_decays_then_stops_and_resumes_mid_decay(monkeypatch, toy, tmp_path):
    """Patience runs out at step 30 (BLEU 10, 20, 15): the rate decays over 30 more updates, then the run ends."""
    bleu = itertools.chain([10.0, 20.0], itertools.repeat(15.0))  # one per validation, over the stopped and resumed runs
    monkeypatch.setattr("nmt.trainer.Validator.scores", lambda self: {"loss": 1.0, "ppl": 2.7, "bleu": next(bleu)})
    extra = (
        "train.max_steps=0",
        "train.schedule=linear",
        "train.decay_fraction=0.5",
        "train.early_stopping_patience=1",
        "train.eval_every_steps=10",
        "train.min_lr=0",
    )
    monkeypatch.setattr("nmt.trainer.GracefulStop", lambda: _StopAfter(45))
    interrupted = tmp_path / "interrupted"
    assert _trainer(toy, interrupted, *extra).fit().step == 45
    monkeypatch.undo()
    monkeypatch.setattr("nmt.trainer.Validator.scores", lambda self: {"loss": 1.0, "ppl": 2.7, "bleu": next(bleu)})
    state = _trainer(toy, interrupted, *extra).fit()
    log = (interrupted / "train.log").read_text()
    assert "early stopping: no bleu improvement in 1 validations: lowering lr to train.min_lr over the next 30 updates" in log
    assert state.step == 60 and state.stopped == "early stopping: the final decay from step 30 ended"
    assert log.count("the final decay is under way; training stops at its end") == 2  # validations at 40, 50
    ckpt = load_checkpoint(interrupted / "checkpoints" / "last.pt")
    assert ckpt["state"]["step"] == 60 and ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.005 / 30)
    assert "training already finished at step 60" in _rerun_log(toy, interrupted, extra)

    bleu = itertools.chain([10.0, 20.0], itertools.repeat(15.0))
    straight = tmp_path / "straight"
    assert _trainer(toy, straight, *extra).fit().step == 60
    weights = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(weights[k], ckpt["model"][k]) for k in weights), "the resumed decay differs"


def test_an_early_stopped_run_continues_when_patience_is_raised(monkeypatch, toy, tmp_path):
    bleu = itertools.chain([10.0, 20.0], itertools.repeat(15.0))
    monkeypatch.setattr("nmt.trainer.Validator.scores", lambda self: {"loss": 1.0, "ppl": 2.7, "bleu": next(bleu)})
    run_dir, extra = tmp_path / "run", ("train.max_steps=0", "train.eval_every_steps=10")
    assert _trainer(toy, run_dir, *extra, "train.early_stopping_patience=1").fit().step == 30
    assert "training already finished at step 30" in _rerun_log(toy, run_dir, (*extra, "train.early_stopping_patience=1"))
    state = _trainer(toy, run_dir, *extra, "train.early_stopping_patience=3").fit()  # two more validations at 15
    assert state.step == 50 and state.stopped == "early stopping: no bleu improvement in 3 validations"
    assert (
        "continuing a run that ended by 'early stopping: no bleu improvement in 1 validations'"
        in (run_dir / "train.log").read_text()
    )
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["state"]["step"] == 20


def _rerun_log(toy: Path, run_dir: Path, extra: tuple[str, ...]) -> str:
    _trainer(toy, run_dir, *extra).fit()
    return (run_dir / "train.log").read_text()


def _faulty_forward(monkeypatch, fault, bad_calls):
    """Make Seq2Seq.forward misbehave (raise or return NaN) on the call numbers in `bad_calls`."""
    original = Seq2Seq.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        calls["n"] += 1
        logits = original(self, *args, **kwargs)
        if self.training and bad_calls(calls["n"]):
            if fault == "oom":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
            return logits * float("nan")
        return logits

    monkeypatch.setattr(Seq2Seq, "forward", forward)


@pytest.mark.parametrize("fault, message", [("oom", "out of memory on batch"), ("nan", "non-finite loss or gradient on batch")])
def test_a_bad_step_is_skipped_and_training_goes_on(monkeypatch, toy, tmp_path, fault, message):
    _faulty_forward(monkeypatch, fault, lambda n: n in (7, 8))
    state = _trainer(toy, tmp_path / "run", "train.max_steps=30").fit()
    assert state.step == 30
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count(message) == 2
    weights = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize("fault, advice", [("oom", "Lower train.max_tokens"), ("nan", "Lower train.lr")])
def test_repeated_bad_steps_stop_with_last_checkpoint_intact(monkeypatch, toy, tmp_path, fault, advice):
    _faulty_forward(monkeypatch, fault, lambda n: n > 20)
    with pytest.raises(TrainingError, match=advice):
        _trainer(toy, tmp_path / "run", "train.max_steps=100", "train.save_every_steps=10", "train.max_bad_steps=3").fit()
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["state"]["step"] == 20
    assert all(torch.isfinite(w).all() for w in ckpt["model"].values())


def test_unwritable_run_dir_is_a_clear_error(toy, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(CheckpointError, match="not writable"):
        _trainer(toy, blocker / "run", "train.max_steps=5").fit()


def test_full_disk_during_save_keeps_the_previous_checkpoint(monkeypatch, toy, tmp_path):
    import nmt.checkpoint

    real_save = torch.save
    saves = {"n": 0}

    def failing_save(obj, handle):
        saves["n"] += 1
        if saves["n"] == 2:
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, handle)

    monkeypatch.setattr(nmt.checkpoint.torch, "save", failing_save)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is intact"):
        _trainer(toy, tmp_path / "run", "train.max_steps=40", "train.save_every_steps=10").fit()
    directory = tmp_path / "run" / "checkpoints"
    assert load_checkpoint(directory / "last.pt")["state"]["step"] == 10
    assert not [p for p in directory.iterdir() if ".tmp" in p.name]


def test_a_start_that_failed_before_its_first_checkpoint_starts_over_in_the_same_run_dir(monkeypatch, toy, tmp_path):
    # A corpus the filters empty fails before anything is written. A start that fails later (here
    # the model's allocation) wrote config.resolved.yaml, spm.model and train.log; they are nmt's
    # (listed in nmt-run.json), so the next start may replace them, unlike a user's files.
    from nmt.errors import ConfigError

    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match="no usable sentence pairs"):
        _trainer(toy, run_dir, "data.max_len=1", "train.max_tokens=100", "train.max_steps=5").fit()
    assert not (run_dir / "spm.model").exists() and not (run_dir / "train.log").exists()

    def out_of_memory(*args, **kwargs):
        raise MemoryError("model allocation")

    with monkeypatch.context() as patch:
        patch.setattr("nmt.trainer.Seq2Seq", out_of_memory)
        with pytest.raises(MemoryError):
            _trainer(toy, run_dir, "train.max_steps=5").fit()
    assert (run_dir / "spm.model").is_file() and not (run_dir / "checkpoints").exists()
    state = _trainer(toy, run_dir, "train.max_steps=5", "tokenizer.vocab_size=40").fit()
    assert state.step == 5
    assert "vocab_size: 40" in (run_dir / "config.resolved.yaml").read_text()


def test_an_epoch_budget_ends_at_the_epoch_end_and_a_raised_one_continues(toy, tmp_path):
    run_dir = tmp_path / "run"
    first = _trainer(toy, run_dir, "train.max_steps=0", "train.max_epochs=1", "train.eval_every_steps=1000").fit()
    assert first.epoch == 1 and first.step > 0
    again = _trainer(toy, run_dir, "train.max_steps=0", "train.max_epochs=1", "train.eval_every_steps=1000").fit()
    assert again.step == first.step
    assert f"training already complete at step {first.step}" in (run_dir / "train.log").read_text()
    second = _trainer(toy, run_dir, "train.max_steps=0", "train.max_epochs=2", "train.eval_every_steps=1000").fit()
    assert second.epoch == 2 and second.step > first.step
    assert "reached train.max_epochs=2" in (run_dir / "train.log").read_text()
