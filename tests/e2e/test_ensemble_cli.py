"""Ensembles end to end on CPU: two tiny runs of different seeds, translated and scored as one system.

The runs train 60 steps each: quality does not matter, and their stored decode.min_len keeps
the outputs from being empty. The toy corpus gives both the same sentencepiece model, which an
ensemble needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def runs(toy, tmp_path_factory, tiny_train) -> dict:
    """Two run directories of the tiny config, seeds 1 and 2 (last.pt only), and a 30-line test set."""
    tmp = tmp_path_factory.mktemp("ensemble")
    dirs = []
    for seed in (1, 2):
        run_dir = tmp / f"run{seed}"
        overrides = (f"seed={seed}", "train.max_steps=60", "train.eval_every_steps=60", "decode.min_len=3")
        command = tiny_train(run_dir, toy, *overrides, valid=False)
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        dirs.append(run_dir)
    for side in ("src", "tgt"):
        lines = (toy / f"test.{side}").read_text(encoding="utf-8").splitlines()[:30]
        (tmp / f"test.{side}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return {"dirs": dirs, "src": tmp / "test.src", "ref": tmp / "test.tgt"}


def _run(*argv: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _translate(models: list[Path], src: Path, out: Path, *options: str) -> list[str]:
    _run("nmt-translate", "--model", *map(str, models), "--input", str(src), "--output", str(out), *options)
    return out.read_text(encoding="utf-8").splitlines()


def test_translate_eval_and_the_python_api_agree_on_an_ensemble(runs, tmp_path):
    from nmt import Translator

    dirs, src, ref = runs["dirs"], runs["src"], runs["ref"]
    hyps = _translate(dirs, src, tmp_path / "hyp.txt", "--alignments", str(tmp_path / "align.txt"))
    sources = src.read_text(encoding="utf-8").splitlines()
    assert len(hyps) == len(sources) and all(hyps)
    alignments = (tmp_path / "align.txt").read_text(encoding="utf-8").splitlines()
    assert len(alignments) == len(sources) and all(alignments)
    assert all(
        src_pos.isdigit() and tgt_pos.isdigit() for a in alignments for src_pos, tgt_pos in (p.split("-") for p in a.split())
    )

    assert Translator.from_run_dir(dirs, device="cpu").translate(sources) == hyps  # the config's beam, as the CLI

    _run("nmt-eval", "--model", *map(str, dirs), "--src", str(src), "--ref", str(ref), "--json", str(tmp_path / "s.json"))
    refs = ref.read_text(encoding="utf-8").splitlines()
    reported = json.loads((tmp_path / "s.json").read_text())["bleu"]["score"]
    assert reported == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)


def test_tune_decoding_tunes_an_ensemble(runs):
    dirs = list(map(str, runs["dirs"]))
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tune_decoding.py"), "--model", *dirs]
        + ["--src", str(runs["src"]), "--ref", str(runs["ref"]), "--beams", "1", "--alphas", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.rstrip().endswith(f"nmt-translate --model {' '.join(dirs)} --beam 1 --length-penalty 0")
