"""Shared by the end-to-end tests: load the repository's scripts/ as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
