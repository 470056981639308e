"""benchmarks/peers/peerbench.py: the tables translate_rounds.sh and gpu_run.sh print."""

import json
import subprocess
import sys
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
