"""Tests for nmt.checkpoint: atomic saves, last/best pointers, pruning, corrupt files, resolution."""

from __future__ import annotations

import errno
import os
import pickle
import random
from pathlib import Path

import pytest
import torch

from nmt.atomic import write_atomic
from nmt.checkpoint import (
    CKPT_DIR,
    FORMAT,
    average_checkpoints,
    check_resumable,
    find_latest,
    load_checkpoint,
    resolve_checkpoint,
    save_averaged,
    save_checkpoint,
    select_checkpoints,
    step_files,
)
from nmt.errors import CheckpointError


def state(step: int) -> dict:
    """What the trainer stores, in miniature (everything must load with weights_only=True)."""
    torch.manual_seed(step)
    return {
        "scores": {},
        "config": {"seed": 1, "train": {"betas": [0.9, 0.999], "lr": 1e-3}, "data": {"valid": None}},
        "tokenizer": {"joint": b"\x0a\x01serialized-model-bytes"},
        "model": {"w": torch.randn(3, 4), "b": torch.randn(4)},
        "optimizer": {"state": {0: {"step": torch.tensor(float(step))}}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
        "schedule": {"plateau_scale": 1.0, "plateau_best": None, "plateau_bad": 0},
        "scaler": {},
        "state": {"step": step, "epoch": 1, "best_score": None, "stopped": ""},
        "rng": [{"python": (3, tuple(range(5)), None), "torch": torch.get_rng_state()}],
    }


def ckpt_dir(run_dir: Path) -> Path:
    return run_dir / CKPT_DIR


def saved_step(path: Path) -> int:
    return load_checkpoint(path)["state"]["step"]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "tmp" in p.name)


def test_round_trip(tmp_path):
    original = state(100)
    path = save_checkpoint(tmp_path, original, step=100, is_best=True, keep=3)
    assert path == ckpt_dir(tmp_path) / "step_00000100.pt"
    loaded = load_checkpoint(path)
    assert loaded["format"] == FORMAT
    assert loaded["config"] == original["config"]
    assert loaded["tokenizer"] == original["tokenizer"]
    assert loaded["state"] == original["state"]
    assert loaded["schedule"] == original["schedule"]
    assert loaded["rng"][0]["python"] == original["rng"][0]["python"]
    for key in ("w", "b"):
        assert torch.equal(loaded["model"][key], original["model"][key])
    assert torch.equal(loaded["rng"][0]["torch"], original["rng"][0]["torch"])


def test_real_model_state_round_trips(tmp_path):
    from nmt.config import AttentionConfig, DecoderConfig, EncoderConfig, ModelConfig
    from nmt.model import Seq2Seq
    from nmt.tokenizer import Vocab

    vocab = Vocab(size=12, pad=0, unk=1, bos=2, eos=3)
    cfg = ModelConfig(
        embedding_dim=4,
        encoder=EncoderConfig(hidden_size=3, num_layers=1),
        attention=AttentionConfig(hidden_size=3),
        decoder=DecoderConfig(hidden_size=5, num_layers=1),
    )
    model = Seq2Seq(cfg, vocab, vocab)
    optimizer = torch.optim.Adam(model.parameters())
    model.src_embed.weight.sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path, {**state(1), "model": model.state_dict(), "optimizer": optimizer.state_dict()}, 1, True, 1)
    loaded = load_checkpoint(ckpt_dir(tmp_path) / "last.pt")
    fresh = Seq2Seq(cfg, vocab, vocab)
    fresh.load_state_dict(loaded["model"])
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    torch.optim.Adam(fresh.parameters()).load_state_dict(loaded["optimizer"])


def test_trainer_rng_state_survives_weights_only_load(tmp_path):
    import random as py_random

    import numpy as np

    from nmt.resume import rng_state as _rng_state
    from nmt.resume import set_rng_state as _set_rng_state

    save_checkpoint(tmp_path, {**state(1), "rng": [_rng_state()]}, 1, True, 1)
    expected = (py_random.random(), float(np.random.rand()), torch.rand(1).item())
    _set_rng_state(load_checkpoint(ckpt_dir(tmp_path) / "last.pt")["rng"][0])
    assert (py_random.random(), float(np.random.rand()), torch.rand(1).item()) == expected


def test_last_and_best_point_at_right_steps(tmp_path):
    save_checkpoint(tmp_path, state(1), 1, is_best=True, keep=5)
    save_checkpoint(tmp_path, state(2), 2, is_best=False, keep=5)
    save_checkpoint(tmp_path, state(3), 3, is_best=True, keep=5)
    save_checkpoint(tmp_path, state(4), 4, is_best=False, keep=5)
    d = ckpt_dir(tmp_path)
    assert saved_step(d / "last.pt") == 4
    assert saved_step(d / "best.pt") == 3
    assert [p.name for p in step_files(d)] == [f"step_{n:08d}.pt" for n in (4, 3, 2, 1)]
    assert leftovers(d) == []


def test_no_best_until_one_is_best(tmp_path):
    save_checkpoint(tmp_path, state(1), 1, is_best=False, keep=5)
    assert not (ckpt_dir(tmp_path) / "best.pt").exists()
    assert saved_step(ckpt_dir(tmp_path) / "last.pt") == 1


def test_pruning_keeps_n_and_last_best_readable(tmp_path):
    save_checkpoint(tmp_path, state(10), 10, is_best=True, keep=2)
    for step in (20, 30, 40, 50):
        save_checkpoint(tmp_path, state(step), step, is_best=False, keep=2)
    d = ckpt_dir(tmp_path)
    assert [p.name for p in step_files(d)] == ["step_00000050.pt", "step_00000040.pt"]
    assert saved_step(d / "best.pt") == 10, "best survives pruning of its step file"
    assert saved_step(d / "last.pt") == 50
    assert sorted(p.name for p in d.iterdir()) == ["best.pt", "last.pt", "step_00000040.pt", "step_00000050.pt"]


def test_keep_zero_leaves_only_pointers(tmp_path):
    save_checkpoint(tmp_path, state(1), 1, is_best=True, keep=0)
    save_checkpoint(tmp_path, state(2), 2, is_best=False, keep=0)
    d = ckpt_dir(tmp_path)
    assert step_files(d) == []
    assert saved_step(d / "last.pt") == 2
    assert saved_step(d / "best.pt") == 1


def test_step_files_sorted_numerically(tmp_path):
    for name in ("step_9.pt", "step_10.pt", "step_00000002.pt", "step_x.pt", "last.pt", "step_3.pt.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in step_files(tmp_path)] == ["step_10.pt", "step_9.pt", "step_00000002.pt"]


# ---------------------------------------------------------------------------------------------
# unreadable files


def test_truncated_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path, state(1), 1, is_best=False, keep=3)
    data = path.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(broken)
    assert str(broken) in str(info.value)
    assert "\n" not in str(info.value)


GARBAGE = {
    "empty": b"",
    "text": b"hello, not a checkpoint\n",
    "yaml": b"seed: 1\ntrain:\n  max_steps: 10\n",
    "json": b'{"format": "nmt-checkpoint-v1"}',
    "random-2": random.Random(2).randbytes(512),
    "random-20": random.Random(20).randbytes(512),
    "random-3": random.Random(3).randbytes(512),
    "pickled-list": pickle.dumps([1, 2, 3], protocol=2),
}


@pytest.mark.parametrize("content", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_file(tmp_path, content):
    # e.g. `nmt-translate --model config.yaml`: must be a one-line CheckpointError, not a traceback.
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(path)


def test_torch_file_without_marker(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not an nmt checkpoint"):
        load_checkpoint(path)


def test_plain_tensor_file(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="not an nmt checkpoint"):
        load_checkpoint(path)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


# ---------------------------------------------------------------------------------------------
# find_latest


def test_find_latest_none_without_checkpoints(tmp_path):
    assert find_latest(tmp_path, print) is None
    ckpt_dir(tmp_path).mkdir()
    assert find_latest(tmp_path, print) is None


def test_find_latest_reads_last(tmp_path):
    for step in (1, 2):
        save_checkpoint(tmp_path, state(step), step, is_best=step == 1, keep=3)
    messages = []
    path, found = find_latest(tmp_path, messages.append)
    assert path.name == "last.pt" and found["state"]["step"] == 2
    assert messages == []


def test_find_latest_falls_back_when_last_is_replaced_by_garbage(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, state(step), step, is_best=False, keep=5)
    last = ckpt_dir(tmp_path) / "last.pt"
    last.unlink()
    last.write_bytes(b"corrupt")
    messages = []
    path, found = find_latest(tmp_path, messages.append)
    assert path.name == "step_00000003.pt" and found["state"]["step"] == 3
    assert len(messages) == 1 and "last.pt" in messages[0]


def test_find_latest_falls_back_to_older_step_when_newest_is_truncated(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, state(step), step, is_best=False, keep=5)
    d = ckpt_dir(tmp_path)
    newest = d / "step_00000003.pt"
    data = newest.read_bytes()
    with open(d / "last.pt", "r+b") as handle:  # in place: a hard-linked step file is torn with it
        handle.truncate(len(data) // 3)
    expected = 2 if os.path.samefile(d / "last.pt", newest) else 3
    messages = []
    _, found = find_latest(tmp_path, messages.append)
    assert found["state"]["step"] == expected
    assert messages and all("trying an older checkpoint" in m for m in messages)


def test_find_latest_refuses_a_folder_of_unreadable_checkpoints(tmp_path):
    # Starting over would write over them: the run must stop and say what it found.
    for step in (1, 2):
        save_checkpoint(tmp_path, state(step), step, is_best=step == 1, keep=5)
    for path in ckpt_dir(tmp_path).iterdir():
        path.unlink()
        path.write_bytes(b"x")
    with pytest.raises(CheckpointError) as info:
        find_latest(tmp_path, lambda m: None)
    message = str(info.value)
    assert message.startswith(f"{ckpt_dir(tmp_path)}: no checkpoint there can be resumed")
    assert "last.pt, step_00000002.pt, step_00000001.pt, best.pt: unreadable or truncated checkpoint" in message
    assert "nothing was changed" in message and "set a new run_dir" in message and "\n" not in message


def test_find_latest_names_a_newer_format_and_reads_each_hard_link_once(tmp_path):
    newer = {**state(7), "format": "nmt-checkpoint-v2"}
    write_atomic(tmp_path / "x.pt", lambda handle: torch.save(newer, handle))  # save_checkpoint stamps v1
    ckpt_dir(tmp_path).mkdir()
    os.replace(tmp_path / "x.pt", ckpt_dir(tmp_path) / "step_00000007.pt")
    os.link(ckpt_dir(tmp_path) / "step_00000007.pt", ckpt_dir(tmp_path) / "last.pt")
    messages = []
    with pytest.raises(CheckpointError, match=r"last.pt, step_00000007.pt: checkpoint format 'nmt-checkpoint-v2'"):
        find_latest(tmp_path, messages.append)
    assert len(messages) == 1, "the hard-linked step file is not read twice"
    assert "this one reads 'nmt-checkpoint-v1'" in messages[0]


def test_find_latest_falls_back_to_best_and_skips_an_averaged_checkpoint(tmp_path):
    save_checkpoint(tmp_path, state(3), 3, is_best=True, keep=0)  # best.pt and last.pt only
    save_checkpoint(tmp_path, {**state(9), "averaged_from": ["a", "b"]}, 9, is_best=False, keep=0)
    messages = []
    path, found = find_latest(tmp_path, messages.append)
    assert path.name == "best.pt" and found["state"]["step"] == 3
    assert "an averaged checkpoint" in messages[0] and "training cannot resume from it" in messages[0]


def test_find_latest_refuses_a_file_named_checkpoints(tmp_path):
    (tmp_path / CKPT_DIR).write_text("my notes")
    with pytest.raises(CheckpointError, match="is a file, where nmt keeps a run's checkpoints"):
        find_latest(tmp_path, print)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda s: s.pop("config"), "incomplete nmt checkpoint (no 'config')"),
        (lambda s: [s.pop("model"), s.pop("state")], "incomplete nmt checkpoint (no 'model', 'state')"),
        (lambda s: s.update(config=["not", "a", "mapping"]), "'config' is list"),
        (lambda s: s.update(tokenizer={"src": b"x"}), "tokenizer has no tgt sentencepiece model"),
        (lambda s: s.update(tokenizer={"joint": "text"}), "tokenizer has no joint sentencepiece model"),
        (lambda s: s["state"].pop("step"), "state.step is None"),
        (lambda s: s["state"].update(step=-1), "state.step is -1"),
        (lambda s: s.update(scores={"value": 3.0}), "scores lack a numeric 'value' with 'higher_is_better'"),
    ],
    ids=["no-config", "no-model-state", "config-list", "tokenizer-side", "tokenizer-text", "no-step", "negative-step", "scores"],
)
def test_load_checkpoint_checks_the_schema_once(tmp_path, change, expected):
    broken = state(1)
    change(broken)
    path = save_checkpoint(tmp_path, broken, 1, is_best=False, keep=1)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value), str(info.value)


def test_resuming_needs_the_training_fields(tmp_path):
    partial = state(1)
    del partial["optimizer"], partial["rng"]
    path = save_checkpoint(tmp_path, partial, 1, is_best=False, keep=1)
    load_checkpoint(path)  # enough to translate with
    with pytest.raises(CheckpointError, match=r"not a training checkpoint \(no 'optimizer', 'rng'\)"):
        check_resumable(load_checkpoint(path), path)


def test_find_latest_without_last(tmp_path):
    for step in (5, 6):
        save_checkpoint(tmp_path, state(step), step, is_best=False, keep=5)
    (ckpt_dir(tmp_path) / "last.pt").unlink()
    assert find_latest(tmp_path, print)[1]["state"]["step"] == 6


# ---------------------------------------------------------------------------------------------
# failures while writing


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, state(1), 1, is_best=True, keep=3)
    real_save = torch.save

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 partial checkpoint bytes" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(tmp_path, state(2), 2, is_best=True, keep=3)
    monkeypatch.setattr(torch, "save", real_save)
    message = str(info.value)
    assert "step_00000002.pt" in message and "No space left" in message
    d = ckpt_dir(tmp_path)
    assert saved_step(d / "last.pt") == 1
    assert saved_step(d / "best.pt") == 1
    assert leftovers(d) == [], "no temporary files left behind"
    assert not (d / "step_00000002.pt").exists()
    assert find_latest(tmp_path, print)[1]["state"]["step"] == 1


def test_failed_write_with_non_os_error_keeps_previous(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, state(1), 1, is_best=True, keep=3)

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, state(2), 2, is_best=False, keep=3)
    monkeypatch.undo()
    d = ckpt_dir(tmp_path)
    assert saved_step(d / "last.pt") == 1
    assert leftovers(d) == []


def test_unwritable_run_dir(tmp_path):
    blocker = tmp_path / "run"
    blocker.write_text("a file where the run dir should be")
    with pytest.raises((CheckpointError, OSError)):
        save_checkpoint(blocker, state(1), 1, is_best=True, keep=3)


# ---------------------------------------------------------------------------------------------
# resolve_checkpoint


def test_resolve_file(tmp_path):
    path = save_checkpoint(tmp_path, state(1), 1, is_best=True, keep=3)
    assert resolve_checkpoint(path) == path


def test_resolve_run_dir_prefers_best(tmp_path):
    save_checkpoint(tmp_path, state(1), 1, is_best=True, keep=3)
    save_checkpoint(tmp_path, state(2), 2, is_best=False, keep=3)
    best = resolve_checkpoint(tmp_path)
    assert best == ckpt_dir(tmp_path) / "best.pt"
    assert saved_step(best) == 1
    last = resolve_checkpoint(tmp_path, prefer="last")
    assert last == ckpt_dir(tmp_path) / "last.pt"
    assert saved_step(last) == 2
    assert resolve_checkpoint(str(ckpt_dir(tmp_path))) == ckpt_dir(tmp_path) / "best.pt"


def test_resolve_falls_back_to_last_then_step_files(tmp_path):
    save_checkpoint(tmp_path, state(1), 1, is_best=False, keep=3)
    save_checkpoint(tmp_path, state(2), 2, is_best=False, keep=3)
    assert resolve_checkpoint(tmp_path) == ckpt_dir(tmp_path) / "last.pt"
    (ckpt_dir(tmp_path) / "last.pt").unlink()
    assert resolve_checkpoint(tmp_path) == ckpt_dir(tmp_path) / "step_00000002.pt"


def test_resolve_nothing(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(CheckpointError):
        resolve_checkpoint(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# averaging


def scored_state(step: int, value: float, model: dict | None = None) -> dict:
    full = state(step)
    full["config"]["model"] = {"embedding_dim": 4}
    full["scores"] = {"metric": "bleu", "value": value, "higher_is_better": True}
    if model is not None:
        full["model"] = model
    return full


def test_average_checkpoints_is_the_mean(tmp_path):
    models = [{"w": torch.full((2, 3), float(i)), "n": torch.tensor([7])} for i in (1, 2, 6)]
    paths = [save_checkpoint(tmp_path, scored_state(s, 0.0, m), s, False, 5) for s, m in zip((1, 2, 3), models)]
    averaged = average_checkpoints(paths)
    assert torch.equal(averaged["model"]["w"], torch.full((2, 3), 3.0))
    assert averaged["model"]["w"].dtype == torch.float32
    assert torch.equal(averaged["model"]["n"], torch.tensor([7])), "integer buffers are copied, not averaged"
    assert averaged["format"] == FORMAT
    assert averaged["averaged_from"] == [str(p) for p in paths]
    out = tmp_path / "avg.pt"
    save_averaged(out, averaged)
    assert torch.equal(load_checkpoint(out)["model"]["w"], averaged["model"]["w"])


def test_average_refuses_different_models(tmp_path):
    a = save_checkpoint(tmp_path, scored_state(1, 0.0), 1, False, 5)
    other = scored_state(2, 0.0)
    other["config"]["model"] = {"embedding_dim": 8}
    b = save_checkpoint(tmp_path, other, 2, False, 5)
    with pytest.raises(CheckpointError, match="step_00000002.pt"):
        average_checkpoints([a, b])


def test_save_averaged_never_overwrites(tmp_path):
    out = tmp_path / "avg.pt"
    out.write_bytes(b"precious")
    with pytest.raises(CheckpointError, match="already exists"):
        save_averaged(out, {"format": FORMAT})
    assert out.read_bytes() == b"precious"


def test_select_last_and_best(tmp_path):
    for step, value in ((1, 10.0), (2, 30.0), (3, 20.0), (4, 5.0)):
        save_checkpoint(tmp_path, scored_state(step, value), step, False, 10)
    d = ckpt_dir(tmp_path)
    assert select_checkpoints(tmp_path, 2, "last") == [d / "step_00000004.pt", d / "step_00000003.pt"]
    assert select_checkpoints(tmp_path, 2, "best") == [d / "step_00000002.pt", d / "step_00000003.pt"]
    with pytest.raises(CheckpointError, match="only 4"):
        select_checkpoints(tmp_path, 5, "last")


def test_ranks_that_found_different_checkpoints_refuse_to_resume(tmp_path):
    from nmt.errors import CheckpointError
    from nmt.resume import check_ranks_agree

    check_ranks_agree(tmp_path, [None, None])  # a fresh run everywhere
    check_ranks_agree(tmp_path, [500, 500, 500])
    with pytest.raises(CheckpointError, match=r"rank 0: step 500, rank 1: none\); put run_dir on storage every node"):
        check_ranks_agree(tmp_path, [500, None])
