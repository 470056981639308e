"""benchmarks/peers/peerbench.py rounds: the table translate_rounds.sh prints."""

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
