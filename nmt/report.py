"""nmt-report: the facts of one training run, gathered from what the run wrote (drawn by nmt.report_render).

Everything comes from the run directory: `config.resolved.yaml`; `train.log` for the device,
versions, wall clock and how training stopped; the TensorBoard scalars for the curves; the
checkpoints for the best step and its scores. Training logs no BLEU by source length and keeps its
attention heatmaps only as TensorBoard images, so the report translates the first validation
sentences once with the best checkpoint, by the run's own validation search
(`decode.valid_beam_size`) unless told otherwise: given the sentences validation used, its BLEU
is the best checkpoint's validation BLEU.

Curves come from the TensorBoard event files, not from train.log lines: after a kill and a resume
the event reader drops what the killed process logged past its last checkpoint (the writer's
purge_step), so each step appears once, while train.log keeps both copies; the events also hold
full-precision values where the log rounds them.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmt import run_dir as layout
from nmt.errors import ConfigError, NmtError

EVENTS = "events.out.tfevents.*"
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.*)$")


@dataclass
class Curve:
    steps: list[int]
    values: list[float]


@dataclass
class LogFacts:
    """What train.log says about the run as a whole (the last value where it says it again on resume)."""

    device: str | None = None  # e.g. "cpu, amp off"
    versions: str | None = None  # absent from logs of nmt versions before the report
    parameters: str | None = None
    started: str | None = None  # the first and last time stamps
    ended: str | None = None
    sessions: int = 0  # processes that trained: the first and each resume
    stopped: str | None = None  # how the last session ended, if it did


@dataclass
class Checkpoint:
    name: str  # best.pt or last.pt, and the step file it is a link to
    step: int
    epoch: int | None
    train_seconds: float | None  # in the training loop, over all sessions so far
    scores: dict[str, Any]


@dataclass
class Example:
    source: str
    reference: str
    hypothesis: str
    attention: Any  # [T, S] weights, output pieces (eos included) down, source pieces across
    src_pieces: list[str]
    tgt_pieces: list[str]


@dataclass
class Translated:
    """The first validation sentences, translated with the best checkpoint."""

    sentences: int
    complete: bool  # all of the validation set (else its first `sentences`)
    of: str  # where they come from, e.g. "data.valid (data/val.de)"
    beam: int
    bleu: str  # sacrebleu's line
    signature: str
    buckets: list[tuple[str, int, float]]  # (source words, sentences, BLEU)
    examples: list[Example]
    seconds: float


@dataclass
class RunFacts:
    run_dir: Path
    config_text: str | None
    log: LogFacts
    curves: dict[str, Curve]  # TensorBoard tag -> curve
    best: Checkpoint | None
    last: Checkpoint | None
    translated: Translated | None
    made_with: str  # the versions of the environment that made the report
    notes: list[str] = field(default_factory=list)  # what could not be shown, and why


def make_report(
    run_dir: Path,
    html: Path | None = None,
    markdown: Path | None = None,
    sentences: int = 500,
    examples: int = 3,
    beam: int | None = None,
    device: str | None = None,
) -> tuple[Path, Path]:
    """Check the run and the outputs, gather, write the page and its Markdown twin; returns both paths.

    `html` defaults to RUN_DIR/report.html, `markdown` to `html` with .md; the Markdown's images go
    to a NAME_files/ folder beside it (nmt.report_render). Every check comes before torch loads.
    """
    from nmt.paths import check_paths
    from nmt.report_render import image_dir, write_report

    check_run_dir(run_dir)
    if "-" in (str(html), str(markdown)):
        raise NmtError("the report is files, not a stream (the Markdown twin and images go beside it); give --output FILE.html")
    html = html or run_dir / "report.html"
    markdown = markdown or html.with_suffix(".md")
    config = load_run_config(run_dir)
    valid = config.data.valid if config is not None else None
    files = [valid.src, valid.tgt] if valid is not None and valid.dataset is None else []
    check_paths({"RUN_DIR": run_inputs(run_dir), "data.valid": files}, {"--output": html, "--markdown": markdown})
    if image_dir(markdown).exists() and not image_dir(markdown).is_dir():
        raise NmtError(
            f"{image_dir(markdown)}: is a file, where the Markdown report keeps its images; move it or give another --markdown"
        )
    write_report(gather(run_dir, config, sentences, examples, beam, device), html, markdown)
    return html, markdown


def check_run_dir(run_dir: Path) -> None:
    """Refuse, in one line, a path that is not the directory of a run with logs."""
    if not run_dir.exists():
        raise NmtError(f"{run_dir}: no such run directory; give the run_dir an nmt-train run wrote")
    if not run_dir.is_dir():
        raise NmtError(f"{run_dir}: is a file, not a run directory; give the run_dir an nmt-train run wrote")
    if not (run_dir / layout.LOG_FILE).is_file() and not _event_files(run_dir / layout.TENSORBOARD):
        raise NmtError(
            f"{run_dir}: no {layout.LOG_FILE} or {layout.TENSORBOARD}/ event files, so nothing to report; "
            "give the run_dir of an nmt-train run (train first: nmt-train --config CONFIG run_dir=DIR)"
        )


def run_inputs(run_dir: Path) -> list[Path]:
    """The run's files the report reads (no output may replace one of them)."""
    from nmt.paths import checkpoint_files

    named = [run_dir / layout.CONFIG_FILE, run_dir / layout.LOG_FILE]
    return [p for p in named if p.exists()] + _event_files(run_dir / layout.TENSORBOARD) + checkpoint_files(run_dir)


def load_run_config(run_dir: Path):
    """The run's resolved config (a Config), or None where the run has none."""
    from nmt.config import load_config

    path = run_dir / layout.CONFIG_FILE
    return load_config(path) if path.is_file() else None


def gather(run_dir: Path, config, sentences: int, examples: int, beam: int | None, device: str | None) -> RunFacts:
    """Every fact of the report; `config` from load_run_config."""
    from nmt.tracking import software_versions

    notes: list[str] = []
    log_path = run_dir / layout.LOG_FILE
    log = read_log(log_path) if log_path.is_file() else LogFacts()
    if not log_path.is_file():
        notes.append(f"no {layout.LOG_FILE}: device, versions and wall clock unknown")
    curves = read_curves(run_dir / layout.TENSORBOARD)
    if not curves:
        notes.append(f"no scalars in {layout.TENSORBOARD}/: no curves")
    best_path, last_path = run_dir / layout.CHECKPOINTS / "best.pt", run_dir / layout.CHECKPOINTS / "last.pt"
    best = _read_checkpoint(best_path, notes)
    same = best is not None and last_path.is_file() and last_path.samefile(best_path)  # hard links: read it once
    last = best if same else _read_checkpoint(last_path, notes)
    config_path = run_dir / layout.CONFIG_FILE
    config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else None
    translated = None
    if config is None:
        notes.append(f"no {layout.CONFIG_FILE}: no config, and no validation data to translate")
    elif best is not None:
        translated = translate_valid(best_path, config, sentences, examples, beam, device, notes)
    return RunFacts(run_dir, config_text, log, curves, best, last, translated, software_versions(), notes)


def read_log(path: Path) -> LogFacts:
    """The facts of train.log's lines (see Trainer._fit for the lines it writes)."""
    facts = LogFacts()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LOG_LINE.match(line)
        if not match:
            continue
        stamp, message = match.groups()
        facts.started = facts.started or stamp
        facts.ended = stamp
        if device := re.match(r"run .*: device (.+)$", message):
            facts.device = device.group(1)
            facts.sessions += 1
            facts.stopped = None
        elif message.startswith("versions: "):
            facts.versions = message.removeprefix("versions: ")
        elif message.startswith("model: "):
            facts.parameters = message.removeprefix("model: ")
        elif message.startswith(("training stopped", "stopped by", "training already")):
            facts.stopped = message
    return facts


def read_curves(directory: Path) -> dict[str, Curve]:
    """Every TensorBoard scalar of the run, each step once (see the module docstring)."""
    if not _event_files(directory):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # 0 keeps every scalar; the attention images are not needed, keep one of each
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0, "images": 1})
    logger = logging.getLogger("tensorboard")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the purge after a resume is expected, not worth its warning
    try:
        events.Reload()
    finally:
        logger.setLevel(level)
    curves = {}
    for tag in events.Tags()["scalars"]:
        points = events.Scalars(tag)
        curves[tag] = Curve([p.step for p in points], [p.value for p in points])
    return curves


def _event_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(EVENTS))


def _read_checkpoint(path: Path, notes: list[str]) -> Checkpoint | None:
    """best.pt or last.pt with its counters and scores; None (and a note) if missing or unusable."""
    from nmt.checkpoint import load_checkpoint, step_files

    if not path.is_file():
        notes.append(f"no {layout.CHECKPOINTS}/{path.name}")
        return None
    try:
        state = load_checkpoint(path)
    except NmtError as err:
        notes.append(str(err))
        return None
    same = [p.name for p in step_files(path.parent) if p.samefile(path)]
    counters = state["state"]
    return Checkpoint(
        name=f"{path.name} (= {same[0]})" if same else path.name,
        step=counters["step"],
        epoch=counters.get("epoch"),  # the schema guarantees only the step
        train_seconds=counters.get("train_seconds"),
        scores=state["scores"],
    )


def translate_valid(
    best: Path, config, sentences: int, examples: int, beam: int | None, device: str | None, notes: list[str]
) -> Translated | None:
    """BLEU by source length and attention heatmaps of the first validation sentences; None (and a
    note) where the run has no validation data or it cannot be read from here."""
    from nmt.metrics import evaluate
    from nmt.translator import Translator

    if config.data.valid is None:
        notes.append("the run has no validation data (data.valid): no BLEU by source length, no attention heatmaps")
        return None
    corpus = config.data.valid
    try:
        sources, references = _first_pairs(corpus, sentences)
    except NmtError as err:
        notes.append(f"data.valid cannot be read from here ({err}); run nmt-report in the directory nmt-train ran in")
        return None
    translator = Translator.from_checkpoint(best, device)
    beam = beam or translator.config.decode.valid_beam_size
    amp = _precision(translator, notes)
    start = time.perf_counter()
    results = translator.translate_detailed(sources, return_attention=True, source="data.valid", beam_size=beam, nbest=1, amp=amp)
    seconds = time.perf_counter() - start
    hyps = [r.text for r in results]
    evals = translator.config.eval
    report = evaluate(hyps, [references], ("bleu",), evals.bleu_tokenize, evals.lowercase, sources)
    bleu = report.scores["bleu"]
    pairs = [(s, r, result) for s, r, result in zip(sources, references, results) if result.hypotheses]  # not empty lines
    drawn = [_example(translator, *pair) for pair in pairs[:examples]]
    where = corpus.src if corpus.dataset is None else f"{corpus.dataset} {corpus.split}"
    complete = not sentences or len(sources) < sentences
    return Translated(
        len(sources), complete, f"data.valid ({where})", beam, bleu.text, bleu.signature, report.buckets, drawn, seconds
    )


def _precision(translator, notes: list[str]) -> str:
    """The run's decode.amp, or fp32 where this device cannot search in it (fp16 of a GPU run, on a CPU)."""
    from nmt.translator import check_precision

    amp = translator.config.decode.amp
    try:
        check_precision(amp, translator.device)
    except ConfigError:
        notes.append(f"the run's decode.amp {amp} cannot search on {translator.device}: translated in fp32")
        return "off"
    return amp


def _first_pairs(corpus, count: int) -> tuple[list[str], list[str]]:
    """The first `count` pairs of a corpus (0: all), read no further than needed."""
    from nmt.data import iter_corpus, read_corpus

    if not count:
        return read_corpus(corpus, "data.valid", _warn)
    return next(iter_corpus(corpus, "data.valid", _warn, chunk=count))


def _warn(message: str) -> None:
    """The reader's warnings about the validation files (CRLF line ends, ...) go where nmt-eval's go."""
    print(message, file=sys.stderr)


def _example(translator, source: str, reference: str, result) -> Example:
    tgt, hyp = translator.tokenizer.tgt, result.hypotheses[0]
    pieces = tgt.pieces(hyp.tokens) + tgt.pieces([tgt.vocab.eos])
    return Example(source, reference, result.text, hyp.attention, result.src_pieces, pieces)
