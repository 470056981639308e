"""benchmarks/peers/peerbench.py: the tables translate_rounds.sh and gpu_run.sh print."""

import json
import subprocess
import sys
import time
from pathlib import Path

PEERBENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "peers" / "peerbench.py"


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _rounds_table(tmp_path: Path) -> dict[tuple[str, str], list[str]]:
    out = subprocess.run(
        [sys.executable, str(PEERBENCH), "rounds", "--dir", str(tmp_path), "--tag", "t", "--toolkits", "onmt", "nmt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.strip("|").split("|") for line in out.splitlines()[2:] if line.startswith("|")]
    return {(cells[0].strip(), cells[1].strip()): [c.strip() for c in cells[2:]] for cells in rows}


def test_rounds_gives_median_speed_and_ratio_within_each_round(tmp_path: Path) -> None:
    speeds = {"onmt": [50.0, 60.0, 40.0], "nmt": [100.0, 240.0, 160.0]}  # per round, beam 5
    for tk, values in speeds.items():
        for number, value in enumerate(values, start=1):
            _write(tmp_path / f"r{number}" / f"{tk}_t_test_beam5.json", {"sents_per_s_decode_only": value})
            _write(tmp_path / f"r{number}" / f"{tk}_t_test_beam5.bleu.json", {"bleu": 21.5 if tk == "nmt" else 23.0})
    table = _rounds_table(tmp_path)
    speeds_cell, median, ratios, median_ratio, bleu = table[("nmt", "5")]
    assert speeds_cell == "100.0 / 240.0 / 160.0"
    assert median == "160.0"
    assert ratios == "2.00 / 4.00 / 4.00"
    assert median_ratio == "4.00"  # the median of the rounds' ratios, not 160 / 50
    assert bleu == "21.50"
    assert table[("onmt", "5")][3] == "1.00"
    # greedy was not run: no figures, no crash
    assert table[("nmt", "1")][1] == "-"


def test_rounds_shows_every_bleu_when_rounds_disagree(tmp_path: Path) -> None:
    for number, bleu in ((1, 21.5), (2, 21.6)):
        for tk in ("onmt", "nmt"):
            _write(tmp_path / f"r{number}" / f"{tk}_t_test_beam5.json", {"sents_per_s_decode_only": 10.0})
            _write(tmp_path / f"r{number}" / f"{tk}_t_test_beam5.bleu.json", {"bleu": bleu})
    assert _rounds_table(tmp_path)[("nmt", "5")][4] == "21.50 / 21.60"


def test_summary_lists_extra_searches_below_the_table(tmp_path: Path) -> None:
    _write(tmp_path / "nmt_gpu_train.json", {"last_step": 3, "tgt_tok_per_s_with_eos_logged": 900.0})
    for name, speed, bleu in (("beam5", 100.0, 30.1), ("beam5_onebatch", 400.0, 30.2)):
        _write(tmp_path / f"nmt_gpu_test_{name}.json", {"sents_per_s_decode_only": speed, "what": name, "returncode": 0})
        _write(tmp_path / f"nmt_gpu_test_{name}.bleu.json", {"bleu": bleu})
    _write(tmp_path / "nmt_gpu_test_beam5_onebatch.run.json", {"wall_s": 2.0})  # the raw run: not a search
    out = subprocess.run(
        [sys.executable, str(PEERBENCH), "summary", "--dir", str(tmp_path), "--mode", "gpu", "--toolkits", "nmt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = next(line for line in out.splitlines() if line.startswith("| nmt "))
    assert "| 100.0 | 30.10 |" in row  # the standard beam-5 search stays in the table
    extra = [line for line in out.splitlines() if line.startswith("nmt beam5_")]
    assert extra == ["nmt beam5_onebatch: beam5_onebatch; decode - s / wall - s, 400.0 sentences/s (decode), BLEU 30.20; rc 0"]


def _peerbench(*args: str) -> str:
    return subprocess.run([sys.executable, str(PEERBENCH), *args], capture_output=True, text=True, check=True).stdout


def test_run_counts_the_anonymous_memory_of_child_processes(tmp_path: Path) -> None:
    # a parent that starts a child holding ~200 MB (like OpenNMT-py's data-loader workers)
    child = "x = b'1' * (200 << 20); import time; time.sleep(2)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    _peerbench("run", "--poll", "0.1", "--json", str(tmp_path / "run.json"), "--", sys.executable, "-c", parent)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["max_procs_in_tree"] >= 2
    assert run["peak_tree_rss_anon_mib_sampled"] > 150
    assert run["peak_main_rss_anon_mib_sampled"] < 100  # the parent's own heap


def test_override_replaces_and_drops_keys(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("data:\n  corpus_1: {path_src: a}\n  valid: {path_src: v}\nnum_workers: 2\nseed: 1\n")
    out = tmp_path / "out.yaml"
    sets = ["data.corpus_1.transforms=[sentencepiece, filtertoolong]", "seed=3"]
    _peerbench("override", "--drop", "data.valid", "--drop", "num_workers", str(base), str(out), *sets)
    expected = "data:\n  corpus_1:\n    path_src: a\n    transforms:\n    - sentencepiece\n    - filtertoolong\nseed: 3\n"
    assert out.read_text() == expected
    # a dropped key given again (ONMT_EXTRA="num_workers=0" in run_onmt_scale.sh) is kept
    _peerbench("override", "--drop", "num_workers", str(base), str(out), "num_workers=0")
    assert "num_workers: 0" in out.read_text()


def test_scale_table_reads_an_onmt_log_and_the_driver_fields(tmp_path: Path) -> None:
    start = time.mktime((2027, 1, 15, 10, 0, 0, 0, 0, -1))  # the log's stamps are local time
    lines = [
        f"[2027-01-15 10:00:{10 + 2 * step:02d},000 INFO] Step {step}/    3; acc: 1.0; ppl: 9.0; xent: 2.2; "
        f"lr: 0.00100; sents:      64; bsz: 1000/1100/64; 500/550 tok/s;     {step} sec;"
        for step in (1, 2, 3)
    ]
    (tmp_path / "train.log").write_text("\n".join(lines) + "\n")
    _write(
        tmp_path / "run.json",
        {
            "start_epoch": start,
            "wall_s": 20.0,
            "returncode": 0,
            "max_rss_mib_largest_proc": 900.0,
            "peak_tree_pss_mib_sampled": 1500.0,
            "peak_tree_rss_mib_sampled": 1700.0,
            "peak_tree_rss_anon_mib_sampled": 1400.0,
            "peak_main_rss_anon_mib_sampled": 700.0,
            "max_procs_in_tree": 3,
        },
    )
    out = tmp_path / "onmt_scale_t_train.json"
    _peerbench(
        "train-stats",
        "--toolkit",
        "onmt",
        "--log",
        str(tmp_path / "train.log"),
        "--run",
        str(tmp_path / "run.json"),
        "--warmup",
        "1",
        "--batch",
        "64",
        "--out",
        str(out),
        "--field",
        "corpus_lines=450000",
        "--field",
        "spm_train_s=null",
    )
    res = json.loads(out.read_text())
    assert res["corpus_lines"] == 450000 and res["spm_train_s"] is None
    assert res["time_to_first_logged_step_s"] == 12.0
    assert res["tgt_tok_per_s_with_eos_logged"] == 550.0  # two steps of 1100 target tokens in 4 s
    row = _peerbench("scale-table", str(out)).splitlines()[2]
    assert row == "| onmt_scale_t | 450000 | - | 12.0 | 700 / 1400 | 1700 (900) | 3 | 550 | 0.500 | 3 | 20.0 |"
