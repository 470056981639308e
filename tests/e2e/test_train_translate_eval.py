"""End to end on CPU: train the tiny config on a toy reverse task, kill it, resume, translate, score.

The run is killed with SIGKILL after its first checkpoints (not stopped politely), the same
command resumes it, and the finished model must have clearly learned the task.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sacrebleu
import torch

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, scripts, tiny_train) -> dict:
    """Train with a SIGKILL in the middle; returns paths and the resume log."""
    tmp = tmp_path_factory.mktemp("e2e")
    data = tmp / "toy"
    scripts("make_toy_corpus").write_corpus(data, seed=0)
    run_dir = tmp / "run"
    command = tiny_train(run_dir, data)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_after = _kill_after_checkpoint(first, run_dir / "checkpoints", min_step=200)
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    return {"data": data, "run_dir": run_dir, "killed_after": killed_after, "log": (run_dir / "train.log").read_text()}


def _kill_after_checkpoint(process: subprocess.Popen, ckpt_dir: Path, min_step: int) -> int:
    """SIGKILL `process` once a checkpoint of step >= min_step exists; returns that step."""
    deadline = time.time() + 300
    while time.time() < deadline:
        steps = [int(p.stem.split("_")[1]) for p in ckpt_dir.glob("step_*.pt")] if ckpt_dir.exists() else []
        if steps and max(steps) >= min_step:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return max(steps)
        if process.poll() is not None:
            pytest.fail(f"training exited before it could be killed: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("no checkpoint appeared within 300 s")


def test_resume_continues_from_checkpoint(trained_run):
    log = trained_run["log"]
    resumed = [line for line in log.splitlines() if "resuming from step" in line]
    assert len(resumed) == 1
    step = int(resumed[0].split("resuming from step ")[1].split()[0])
    assert step >= trained_run["killed_after"] and step % 100 == 0 and step < 800
    assert "training stopped at step 800" in log
    ckpt = torch.load(trained_run["run_dir"] / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["state"]["step"] == 800


def test_model_learned_the_task_and_scores_match_sacrebleu(trained_run, tmp_path):
    data, run_dir = trained_run["data"], trained_run["run_dir"]
    hyp = tmp_path / "test.hyp"
    translate = subprocess.run(
        [
            str(BIN / "nmt-translate"),
            "--model",
            str(run_dir),
            "--input",
            str(data / "test.src"),
            "--output",
            str(hyp),
            "--beam",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert translate.returncode == 0, translate.stderr
    hyps = hyp.read_text(encoding="utf-8").splitlines()
    refs = (data / "test.tgt").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == len(refs)
    exact = sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    assert exact >= 0.8, f"only {exact:.0%} of test sentences reversed exactly"

    evaluation = subprocess.run(
        [str(BIN / "nmt-eval"), "--hyp", str(hyp), "--ref", str(data / "test.tgt"), "--json", str(tmp_path / "scores.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluation.returncode == 0, evaluation.stderr
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score
    reported = json.loads((tmp_path / "scores.json").read_text())
    assert reported["bleu"]["score"] == pytest.approx(expected)
    assert reported["bleu"]["score"] > 80
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in reported["bleu"]["signature"]


def test_run_dir_has_logs_and_tensorboard(trained_run):
    run_dir = trained_run["run_dir"]
    assert (run_dir / "config.resolved.yaml").exists() and (run_dir / "spm.model").exists()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert "validation at step 800" in trained_run["log"]


def _run(*args: str, stdin: bytes | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], input=stdin, capture_output=True, timeout=timeout)


def test_validation_bleu_equals_nmt_eval(trained_run, tmp_path):
    """The best checkpoint's validation BLEU is what nmt-eval reports for it on the same data."""
    data, run_dir = trained_run["data"], trained_run["run_dir"]
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    report = tmp_path / "valid.json"
    result = _run(
        "nmt-eval",
        "--model",
        str(run_dir),
        "--src",
        str(data / "valid.src"),
        "--ref",
        str(data / "valid.tgt"),
        "--beam",
        "1",
        "--json",
        str(report),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(report.read_text())["bleu"]["score"] == pytest.approx(best["scores"]["bleu"], abs=1e-9)


def test_translate_keeps_one_line_per_input(trained_run, tmp_path):
    """Empty lines, an over-long line and non-Latin text: same line count, warning for the long line."""
    lines = ["apple river", "", "石 river κόσμος", " ".join(["stone"] * 200), "", "lamp green"]
    source = tmp_path / "mixed.src"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    for extra in ([], ["--beam", "1"], ["--amp", "int8"]):
        result = _run("nmt-translate", "--model", str(trained_run["run_dir"]), "--input", str(source), *extra)
        assert result.returncode == 0, result.stderr.decode()
        out = result.stdout.decode("utf-8").split("\n")
        assert out[-1] == "" and len(out) - 1 == len(lines)
        assert out[1] == "" and out[4] == ""
        assert out[0] == "river apple" and out[5] == "green lamp"
        assert f"warning: {source}:4: " in result.stderr.decode()


def test_translate_stdin_nbest_and_alignments(trained_run, tmp_path):
    result = _run(
        "nmt-translate",
        "--model",
        str(trained_run["run_dir"]),
        "--beam",
        "4",
        "--nbest",
        "3",
        "--alignments",
        str(tmp_path / "align.txt"),
        "--attention-plots",
        str(tmp_path / "plots"),
        stdin=b"apple river stone\n\n",
    )
    assert result.returncode == 0, result.stderr.decode()
    rows = [row.split("\t") for row in result.stdout.decode().splitlines()]
    assert [r[:2] for r in rows] == [["1", "1"], ["1", "2"], ["1", "3"], ["2", "1"]]
    scores = [float(r[2]) for r in rows[:3]]
    assert scores == sorted(scores, reverse=True) and rows[0][3] == "stone river apple"
    alignment = (tmp_path / "align.txt").read_text().splitlines()
    assert len(alignment) == 2 and alignment[1] == ""
    assert all(len(pair.split("-")) == 2 for pair in alignment[0].split())
    assert (tmp_path / "plots" / "attention_0001.png").stat().st_size > 1000


def test_translate_streams_stdin(trained_run):
    """Each line on stdin is translated while the input is still open; n-best line numbers run on."""
    process = subprocess.Popen(
        [str(BIN / "nmt-translate"), "--model", str(trained_run["run_dir"]), "--beam", "3", "--nbest", "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered pipes: select sees every byte not yet read
    )
    try:
        rows = []
        for number, line in enumerate([b"apple river stone\n", b"lamp green\n"], start=1):
            process.stdin.write(line)
            process.stdin.flush()
            rows += [_read_row(process) for _ in range(2)]
            assert process.poll() is None  # still reading stdin
            assert [r[:2] for r in rows[-2:]] == [[str(number), "1"], [str(number), "2"]]
        process.stdin.write(b"stone apple")  # a last line without a line end
        process.stdin.close()
        rows += [row.split("\t") for row in process.stdout.read().decode().splitlines()]
        assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    finally:
        process.kill()
    assert [r[3] for r in rows[::2]] == ["stone river apple", "green lamp", "apple stone"]
    assert [r[0] for r in rows] == ["1", "1", "2", "2", "3", "3"]
    assert "3 sentences" in process.stderr.read().decode()


def test_translate_stops_quietly_when_the_reader_leaves(trained_run):
    """`nmt-translate | head -1`: once the pipe's reader is gone, no traceback, the shell's SIGPIPE code."""
    process = subprocess.Popen(
        [str(BIN / "nmt-translate"), "--model", str(trained_run["run_dir"]), "--beam", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    try:
        process.stdin.write(b"apple river\n")
        assert _read_row(process) == ["river apple"]
        process.stdout.close()  # the reader leaves
        process.stdin.write(b"lamp green\n")
        process.stdin.close()
        assert process.wait(timeout=60) == 141
    finally:
        process.kill()
    err = process.stderr.read().decode()
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def _read_row(process: subprocess.Popen, timeout: float = 120) -> list[str]:
    """One TSV row of `process`'s stdout, failing (not hanging) if none comes within `timeout` s."""
    if not select.select([process.stdout], [], [], timeout)[0]:
        pytest.fail("nmt-translate wrote nothing while its input stayed open")
    return process.stdout.readline().decode().rstrip("\n").split("\t")


def test_eval_rejects_mismatched_line_counts(trained_run, tmp_path):
    short = tmp_path / "short.hyp"
    short.write_text("one line\n")
    result = _run("nmt-eval", "--hyp", str(short), "--ref", str(trained_run["data"] / "test.tgt"))
    err = result.stderr.decode()
    assert result.returncode == 2 and len(err.strip().splitlines()) == 1
    assert "has 1 lines" in err and "has 100" in err and "Traceback" not in err


def test_eval_compare_and_buckets(trained_run, tmp_path):
    data = trained_run["data"]
    worse = tmp_path / "worse.hyp"
    worse.write_text("".join("apple\n" for _ in range(100)))
    report = tmp_path / "report.json"
    result = _run(
        "nmt-eval",
        "--hyp",
        str(data / "test.tgt"),
        "--ref",
        str(data / "test.tgt"),
        "--src",
        str(data / "test.src"),
        "--compare",
        str(worse),
        "--json",
        str(report),
        "--markdown",
        str(tmp_path / "report.md"),
    )
    assert result.returncode == 0, result.stderr.decode()
    parsed = json.loads(report.read_text())
    assert parsed["bleu"]["score"] == pytest.approx(100.0)
    assert sum(row["sentences"] for row in parsed["buckets"]["rows"]) == 100
    bleu_row = next(r for r in parsed["paired_bootstrap"]["rows"] if r["metric"] == "bleu")
    assert bleu_row["p_value"] < 0.05 and bleu_row["this"] > bleu_row["other"]
    assert "| bleu |" in (tmp_path / "report.md").read_text()


def test_average_checkpoints_and_python_api(trained_run, tmp_path):
    from nmt import Translator

    run_dir = trained_run["run_dir"]
    averaged = tmp_path / "avg.pt"
    result = _run("nmt-average", "--model", str(run_dir), "--last", "2", "--output", str(averaged))
    assert result.returncode == 0, result.stderr.decode()
    again = _run("nmt-average", "--model", str(run_dir), "--last", "2", "--output", str(averaged))
    assert again.returncode == 2 and "already exists" in again.stderr.decode()
    steps = sorted((run_dir / "checkpoints").glob("step_*.pt"))[-2:]
    weights = [torch.load(p, weights_only=True)["model"] for p in steps]
    avg = torch.load(averaged, weights_only=True)["model"]
    name = "decoder.output.weight"
    assert torch.allclose(avg[name], (weights[0][name] + weights[1][name]) / 2)
    translator = Translator.from_checkpoint(averaged, device="cpu")
    assert translator.translate(["apple river stone", ""], beam_size=3) == ["stone river apple", ""]


def test_tune_decoding_scores_every_setting_and_agrees_with_validation(trained_run):
    """scripts/tune_decoding.py: a row per (beam, alpha); its greedy row is the validation BLEU."""
    run_dir = trained_run["run_dir"]
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    result = _tune_decoding(trained_run, "--beams", "1", "3", "--alphas", "0", "1")
    rows = [line.split("|")[1:4] for line in result.stdout.splitlines() if line.startswith("| ") and "beam" not in line]
    table = {(int(beam), float(alpha)): float(bleu) for beam, alpha, bleu in rows}
    assert sorted(table) == [(1, 0.0), (1, 1.0), (3, 0.0), (3, 1.0)]
    assert table[(1, 0.0)] == pytest.approx(best["scores"]["bleu"], abs=0.005)
    top = max(table, key=table.get)
    assert f"--beam {top[0]} --length-penalty {top[1]:g}" in result.stdout


def test_tune_decoding_in_int8_prints_flags_that_search_in_int8(trained_run):
    result = _tune_decoding(trained_run, "--amp", "int8", "--beams", "3", "--alphas", "0")
    run_dir = trained_run["run_dir"]
    assert result.stdout.rstrip().endswith(f"nmt-translate --model {run_dir} --beam 3 --length-penalty 0 --amp int8")


def _tune_decoding(trained_run, *options: str) -> subprocess.CompletedProcess:
    """scripts/tune_decoding.py on the trained run and the toy validation set; must exit 0."""
    data, run_dir = trained_run["data"], trained_run["run_dir"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tune_decoding.py"), "--model", str(run_dir)]
        + ["--src", str(data / "valid.src"), "--ref", str(data / "valid.tgt"), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result
