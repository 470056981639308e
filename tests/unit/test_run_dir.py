"""Tests for nmt.run_dir: nmt-train writes only its own names and never a file it did not write."""

from __future__ import annotations

import json

import pytest

from nmt import run_dir
from nmt.errors import CheckpointError

FILES = {run_dir.CONFIG_FILE: b"seed: 1\n", "spm.model": None, run_dir.LOG_FILE: None}


def test_a_fresh_directory_with_a_users_files_is_refused_and_left_alone(tmp_path):
    (tmp_path / "spm.model").write_bytes(b"the user's model")
    (tmp_path / "train.log").write_text("my notes")
    (tmp_path / "config.yaml").write_text("# a config kept in its run dir: not one of nmt's names")
    with pytest.raises(CheckpointError) as info:
        run_dir.check_free(tmp_path, FILES, resumed=False)
    assert str(info.value).startswith(f"{tmp_path}: spm.model, train.log are not nmt-train's")
    assert "move them out of the run directory or set another run_dir" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "spm.model", "train.log"]


def test_names_nmt_recorded_are_its_own(tmp_path):
    run_dir.record(tmp_path, [*FILES, run_dir.CHECKPOINTS])
    for name in FILES:
        (tmp_path / name).write_bytes(b"written by an earlier start")
    run_dir.check_free(tmp_path, FILES, resumed=False)
    listed = json.loads((tmp_path / run_dir.MANIFEST).read_text())["written_by_nmt"]
    assert listed == sorted([*FILES, run_dir.CHECKPOINTS])


def test_a_resumed_run_owns_its_names_without_a_manifest(tmp_path):
    # run directories of nmt versions before nmt-run.json: the resumable checkpoint vouches for them
    for name in FILES:
        (tmp_path / name).write_bytes(b"x")
    run_dir.check_free(tmp_path, FILES, resumed=True)


def test_a_file_that_already_holds_what_nmt_writes_is_accepted_and_not_rewritten(tmp_path):
    model = tmp_path / "spm.model"
    model.write_bytes(b"the configured tokenizer")
    before = model.stat().st_mtime_ns
    run_dir.check_free(tmp_path, {"spm.model": b"the configured tokenizer"}, resumed=False)
    run_dir.write_file(tmp_path, "spm.model", b"the configured tokenizer")
    assert model.stat().st_mtime_ns == before
    with pytest.raises(CheckpointError, match="spm.model is not nmt-train's"):
        run_dir.check_free(tmp_path, {"spm.model": b"another tokenizer"}, resumed=False)


def test_an_unreadable_manifest_claims_nothing(tmp_path):
    (tmp_path / run_dir.MANIFEST).write_text("{not json")
    (tmp_path / "train.log").write_text("whose?")
    with pytest.raises(CheckpointError, match="train.log is not nmt-train's"):
        run_dir.check_free(tmp_path, FILES, resumed=False)


def test_prepare_creates_the_directory_and_leaves_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    run_dir.prepare(target)
    assert target.is_dir() and list(target.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="run_dir is an existing file"):
        run_dir.prepare(tmp_path / "file")
