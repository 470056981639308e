"""nmt-report on a tiny run that was killed and resumed: one self-contained page, its Markdown twin,
the curves read once per step, and (where Chromium is installed) the page as a browser shows it.

The run trains 60 steps of configs/tiny.yaml on the toy corpus; the checkpoints after step 20 are
then removed, as if the process had been killed there after logging up to step 60, and the same
command resumes it from step 20.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml

from nmt.cli import report_main
from nmt.report import read_curves, read_log

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _train(run_dir: Path, data: Path, tiny_train) -> None:
    command = tiny_train(
        run_dir, data, "train.max_steps=60", "train.eval_every_steps=20", "train.log_every_steps=10", "train.keep_checkpoints=5"
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def run(tmp_path_factory, toy, tiny_train) -> Path:
    """A tiny run, killed (in effect) after logging step 60 with its last checkpoint at step 20, then resumed."""
    run_dir = tmp_path_factory.mktemp("report") / "run"
    _train(run_dir, toy, tiny_train)
    checkpoints = run_dir / "checkpoints"
    for name in ("last.pt", "best.pt", "step_00000040.pt", "step_00000060.pt"):
        (checkpoints / name).unlink()
    os.link(checkpoints / "step_00000020.pt", checkpoints / "best.pt")  # the best when the process died
    _train(run_dir, toy, tiny_train)
    return run_dir


@pytest.fixture(scope="module")
def report(run, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("report_out")
    assert report_main([str(run), "--output", str(out / "report.html")]) == 0
    return {"html": out / "report.html", "md": out / "report.md", "page": (out / "report.html").read_text(encoding="utf-8")}


class _Links(HTMLParser):
    """Every tag and every attribute that can load something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [(tag, name, value or "") for name, value in attrs if name in ("src", "href", "srcset", "data", "poster")]


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_html_is_one_file_that_loads_nothing_else(report):
    links = _Links()
    links.feed(report["page"])
    assert not {"script", "link", "iframe", "object", "embed"} & set(links.tags)
    assert links.links and all(value.startswith("data:image/png;base64,") for _, _, value in links.links), links.links[:3]
    assert "url(" not in report["page"] and "@import" not in report["page"]
    images = _images(report["page"])
    assert len(images) == 1 + 3  # the curves, the attention of three validation sentences
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images)


def test_html_shows_config_curves_best_checkpoint_and_buckets(report, run):
    page = report["page"]
    assert html.escape((run / "config.resolved.yaml").read_text(encoding="utf-8")) in page
    assert "<h2>Curves</h2>" in page
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    step = best["state"]["step"]
    assert f"best.pt (= step_{step:08d}.pt)" in page
    assert f"<th>validation BLEU</th><td>{best['scores']['bleu']:.2f}</td>" in page
    validations = page.split("<h2>Validations</h2>")[1].split("<h2>")[0]
    assert re.findall(r"<tr><td>(\d+)", validations) == ["20", "40", "60"]
    assert f"<td>{step} (best)</td>" in validations
    assert "All 100 sentences of data.valid" in page and "<td>1-10</td>" in page
    assert "cpu, amp off" in page and "2 nmt-train processes (resumed)" in page and f"torch {torch.__version__}" in page
    assert "reached train.max_steps=60" in page


def test_markdown_twin_links_the_same_pngs(report):
    text = report["md"].read_text(encoding="utf-8")
    names = re.findall(r"\]\(report_files/([^)]+)\)", text)
    assert names == ["curves.png", "attention_1.png", "attention_2.png", "attention_3.png"]
    folder = report["md"].with_name("report_files")
    assert [(folder / name).read_bytes() for name in names] == _images(report["page"])
    assert "## BLEU by source length" in text and "| 1-10 | 100 |" in text


def test_curves_have_each_step_once_after_a_resume(run):
    log = (run / "train.log").read_text(encoding="utf-8")
    assert len(re.findall(r"step 30 epoch", log)) == 2  # the killed session's line and the resumed one's
    curves = read_curves(run / "tensorboard")
    assert curves["train/loss"].steps == [10, 20, 30, 40, 50, 60]
    assert curves["valid/bleu"].steps == [20, 40, 60]
    assert read_log(run / "train.log").sessions == 2


@pytest.mark.parametrize(
    "valid, note",
    [
        (None, "the run has no validation data (data.valid)"),
        ({"src": "no_such.src", "tgt": "no_such.tgt"}, "data.valid cannot be read from here (no_such.src"),
    ],
)
def test_a_run_without_readable_validation_data_is_reported_with_a_note(run, tmp_path, valid, note):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("store"))
    config = yaml.safe_load((copy / "config.resolved.yaml").read_text(encoding="utf-8"))
    config["data"]["valid"] = valid
    (copy / "config.resolved.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert report_main([str(copy)]) == 0
    page = (copy / "report.html").read_text(encoding="utf-8")
    assert html.escape(note) in page and "<h2>Curves</h2>" in page and "<h2>BLEU by source length</h2>" not in page
    assert len(_images(page)) == 1


def test_screenshot_in_chromium(request, scripts, tmp_path):
    """The page as a browser draws it offline: text and the curves' colours must be on the screenshot."""
    shooter = scripts("screenshot_report")
    if shooter.find_chromium() is None:
        pytest.skip("no Chromium installed (apt-get install -y chromium); the page's files are checked above")
    png = tmp_path / "report.png"
    shooter.screenshot(request.getfixturevalue("report")["html"], png, width=1200, height=3000)
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.shape[:2] == (3000, 1200)
    assert (pixels.mean(axis=-1) < 0.3).sum() > 5000  # text
    # the embedded images were drawn: the curves' colours (the page itself is black on white and
    # grey; with broken images a screenshot of this page has about 100 such pixels, with them 4,500)
    assert ((pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.3).sum() > 1000


def test_a_search_precision_this_device_lacks_falls_back_to_fp32(run, tmp_path):
    """A GPU run's fp16 validation search, reported on a CPU: translated in fp32, with a note."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("store"))
    best = copy / "checkpoints" / "best.pt"
    state = torch.load(best, weights_only=True)
    state["config"]["decode"]["amp"] = "fp16"
    best.unlink()  # a hard link: the step file keeps the original
    torch.save(state, best)
    assert report_main([str(copy), "--device", "cpu"]) == 0
    page = (copy / "report.html").read_text(encoding="utf-8")
    assert "the run&#x27;s decode.amp fp16 cannot search on cpu: translated in fp32" in page
    assert "<h2>BLEU by source length</h2>" in page
