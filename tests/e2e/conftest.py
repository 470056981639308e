"""Shared by the end-to-end tests: load the repository's scripts/ as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def scripts():
    """scripts("make_toy_corpus").write_corpus(...): a scripts/*.py file as a module."""
    return _load_script


@pytest.fixture(scope="module")
def toy(tmp_path_factory, scripts) -> Path:
    """A fresh toy reverse-task corpus (train/valid/test .src/.tgt) for one test module."""
    data = tmp_path_factory.mktemp("toy")
    scripts("make_toy_corpus").write_corpus(data, seed=3)
    return data


def _tiny_train_command(run_dir: Path, data: Path, *overrides: str, valid: bool = True) -> list[str]:
    """nmt-train on configs/tiny.yaml with the toy corpus at `data` (its valid split too, or none)."""
    splits = ("train", "valid") if valid else ("train",)
    corpus = [f"data.{split}.{side}={data}/{split}.{side}" for split in splits for side in ("src", "tgt")]
    none = [] if valid else ["data.valid=null"]
    config = str(ROOT / "configs" / "tiny.yaml")
    return [str(BIN / "nmt-train"), "--config", config, f"run_dir={run_dir}", *corpus, *none, *overrides]


@pytest.fixture(scope="session")
def tiny_train():
    """tiny_train(run_dir, data, *overrides, valid=True): the nmt-train command line of a toy run."""
    return _tiny_train_command
