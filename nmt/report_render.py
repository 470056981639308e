"""nmt-report's pages: one self-contained HTML file and its Markdown twin, from nmt.report's facts.

The HTML embeds its PNG images as data URIs and loads nothing else (no scripts, fonts or style
sheets from elsewhere), so it opens offline and can be mailed as one file. The Markdown twin
links the same PNGs, written to a NAME_files/ folder beside it, rather than embedding them:
common Markdown viewers (GitHub among them) do not show data-URI images, and the text stays
readable and diffable. Both pages are built from the same rows, so they say the same.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
from pathlib import Path

from nmt.atomic import write_bytes_atomic
from nmt.errors import NmtError
from nmt.report import Curve, RunFacts

# the curve panels: title, TensorBoard tags drawn in it, logarithmic y axis
PANELS = (
    ("loss per target token", ("train/loss", "valid/loss"), False),
    ("perplexity", ("train/ppl", "valid/ppl"), True),
    ("validation BLEU", ("valid/bleu",), False),
    ("learning rate", ("train/lr",), False),
    ("target tokens/s", ("train/tgt_tokens_per_s",), False),
    ("gradient norm", ("train/grad_norm",), False),
)

# legends where train and valid measure different things: training loss is the objective
# (label smoothing included), validation loss the plain negative log-likelihood
LEGEND = {"train/loss": "train objective", "valid/loss": "valid NLL"}

Rows = list[tuple[str, ...]]


def image_dir(markdown: Path) -> Path:
    """Where the Markdown twin's PNG files go: report.md -> report_files/."""
    return markdown.with_name(f"{markdown.stem}_files")


def write_report(facts: RunFacts, html_path: Path, markdown_path: Path) -> None:
    """Write the HTML page, the Markdown twin and its images (each file atomically)."""
    images = figures(facts)
    folder = image_dir(markdown_path)
    try:
        if images:
            folder.mkdir(exist_ok=True)
        for name, png in images.items():
            write_bytes_atomic(folder / name, png)
        write_bytes_atomic(markdown_path, to_markdown(facts, images, folder.name).encode("utf-8"))
        write_bytes_atomic(html_path, to_html(facts, images).encode("utf-8"))
    except OSError as err:
        raise NmtError(f"{err.filename or html_path}: cannot write the report ({err.strerror})") from None


# ---------------------------------------------------------------------------------------------
# figures


def figures(facts: RunFacts) -> dict[str, bytes]:
    """PNG file name -> bytes: the curves, then one attention heatmap per example."""
    from nmt.plotting import attention_figure

    images = {}
    if facts.curves:
        images["curves.png"] = _png(_curves_figure(facts))
    for number, example in enumerate(facts.translated.examples if facts.translated else [], start=1):
        images[f"attention_{number}.png"] = _png(attention_figure(example.attention, example.src_pieces, example.tgt_pieces))
    return images


def _curves_figure(facts: RunFacts):
    """One panel per PANELS entry that has data; a dotted line marks the best checkpoint's step."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    panels = [(title, tags, log) for title, tags, log in PANELS if any(tag in facts.curves for tag in tags)]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, (title, tags, log) in zip(axes.flat, panels):
        for tag in tags:
            if tag in facts.curves:
                _draw(ax, tag, facts.curves[tag])
        if facts.best is not None:
            ax.axvline(facts.best.step, color="0.6", linestyle=":", linewidth=1)
        ax.set_xlim(left=0)  # one step axis for every panel, validations included
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)  # a flat or slowly moving curve is not blown up into noise
        if len(tags) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _draw(ax, tag: str, curve: Curve) -> None:
    marker = "o" if tag.startswith("valid/") else None  # validations are few: show each
    label = LEGEND.get(tag, tag.split("/")[0])
    ax.plot(curve.steps, curve.values, marker=marker, markersize=3, linewidth=1.2, label=label)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# the rows both pages show


def summary_rows(facts: RunFacts) -> Rows:
    log, last = facts.log, facts.last
    steps = f"{last.step:,}" + (f" (epoch {last.epoch})" if last.epoch else "") if last else "unknown (no last.pt)"
    seconds = last.train_seconds if last else None
    return [
        ("steps", steps),
        ("stopped", log.stopped or "not recorded (still running, or killed)"),
        ("training time", "unknown" if seconds is None else f"{_duration(seconds)} in the training loop, all processes"),
        ("log span", f"{log.started} to {log.ended}, {_processes(log.sessions)}" if log.started else "unknown"),
        ("device", log.device or "unknown"),
        ("model", log.parameters or "unknown"),
        ("versions", log.versions or "not recorded in train.log (a run of an earlier nmt)"),
    ]


def best_rows(facts: RunFacts) -> Rows:
    best = facts.best
    if best is None:
        return []
    rows = [("file", best.name), ("step", f"{best.step:,}"), ("training time", _duration(best.train_seconds))]
    scores = best.scores
    if scores:
        direction = "higher" if scores["higher_is_better"] else "lower"
        rows.append(("selected by", f"validation {_SCORES.get(scores['metric'], scores['metric'])} ({direction} is better)"))
        rows += [(f"validation {label}", f"{scores[name]:.2f}") for name, label in _SCORES.items() if name in scores]
    else:
        rows.append(("selected by", "no validation data: the last checkpoint"))
    return rows


_SCORES = {"bleu": "BLEU", "loss": "loss", "ppl": "perplexity"}  # a checkpoint's score names, as shown


def validation_rows(facts: RunFacts) -> Rows:
    """One row per validation: step, loss, perplexity, BLEU; the best step marked."""
    names = ("valid/loss", "valid/ppl", "valid/bleu")
    by_step: dict[int, dict[str, float]] = {}
    for name in names:
        curve = facts.curves.get(name, Curve([], []))
        for step, value in zip(curve.steps, curve.values):
            by_step.setdefault(step, {})[name] = value
    best = facts.best.step if facts.best else None
    return [
        (f"{step:,}" + (" (best)" if step == best else ""), *(_number(values.get(n)) for n in names))
        for step, values in sorted(by_step.items())
    ]


def bucket_rows(facts: RunFacts) -> Rows:
    buckets = facts.translated.buckets if facts.translated else []
    return [(label, str(count), f"{bleu:.2f}") for label, count, bleu in buckets]


def translated_line(facts: RunFacts) -> str:
    t = facts.translated
    which = f"All {t.sentences}" if t.complete else f"The first {t.sentences}"
    return f"{which} sentences of {t.of}, translated with the best checkpoint (beam {t.beam}, {t.seconds:.1f} s): {t.bleu}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _processes(count: int) -> str:
    return f"{count} nmt-train process{'' if count == 1 else 'es'}" + (" (resumed)" if count > 1 else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 60 else f"{int(minutes // 60)} h {int(minutes % 60):02d} min"


def _made() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------------------------
# HTML

_STYLE = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; max-width: 1280px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ccc; padding: .25em .7em; text-align: left; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
.meta, .sig { color: #666; font-size: .9em; } .notes { background: #fff6dd; padding: .5em 1em; border-left: 4px solid #e0b000; }
img { max-width: 100%; } figure { margin: 1em 0; } dl.example dt { font-weight: bold; float: left; width: 6em; } dl.example dd { margin-left: 6.5em; }
"""


def to_html(facts: RunFacts, images: dict[str, bytes]) -> str:
    e = html.escape
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>nmt run report: {e(str(facts.run_dir))}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Run report: {e(str(facts.run_dir))}</h1>",
        f'<p class="meta">made {_made()} by nmt-report ({e(facts.made_with)})</p>',
    ]
    if facts.notes:
        parts.append('<div class="notes"><ul>' + "".join(f"<li>{e(n)}</li>" for n in facts.notes) + "</ul></div>")
    parts += ["<h2>Summary</h2>", _html_table(("", ""), summary_rows(facts), header=False)]
    if facts.best is not None:
        parts += ["<h2>Best checkpoint</h2>", _html_table(("", ""), best_rows(facts), header=False)]
    if validation_rows(facts):
        parts += ["<h2>Validations</h2>", _html_table(("step", "loss", "perplexity", "BLEU"), validation_rows(facts))]
    if "curves.png" in images:
        parts += ["<h2>Curves</h2>", _html_image(images["curves.png"], "training and validation curves")]
    if facts.translated is not None:
        parts += ["<h2>BLEU by source length</h2>", f"<p>{e(translated_line(facts))}</p>"]
        parts += [_html_table(("source words", "sentences", "BLEU"), bucket_rows(facts))]
        parts += [f'<p class="sig">{e(facts.translated.signature)}</p>', "<h2>Attention</h2>"]
        parts += [_html_example(number, example, images) for number, example in enumerate(facts.translated.examples, start=1)]
    if facts.config_text is not None:
        parts += ["<h2>Config (config.resolved.yaml)</h2>", f"<pre>{e(facts.config_text)}</pre>"]
    return "\n".join(parts) + "\n</body></html>\n"


def _html_table(headers: tuple[str, ...], rows: Rows, header: bool = True) -> str:
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(_html_cell(i, cell, header) for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _html_cell(index: int, cell: str, numeric_columns: bool) -> str:
    if not numeric_columns and index == 0:
        return f"<th>{html.escape(cell)}</th>"  # a key column
    kind = ' class="num"' if numeric_columns and index > 0 else ""
    return f"<td{kind}>{html.escape(cell)}</td>"


def _html_image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _html_example(number: int, example, images: dict[str, bytes]) -> str:
    e = html.escape
    text = "".join(
        f"<dt>{name}</dt><dd>{e(value)}</dd>"
        for name, value in (("source", example.source), ("reference", example.reference), ("output", example.hypothesis))
    )
    image = _html_image(images[f"attention_{number}.png"], f"attention of validation sentence {number}")
    return f'<figure><dl class="example">{text}</dl>{image}</figure>'


# ---------------------------------------------------------------------------------------------
# Markdown


def to_markdown(facts: RunFacts, images: dict[str, bytes], folder: str) -> str:
    parts = [f"# Run report: {facts.run_dir}", "", f"made {_made()} by nmt-report ({facts.made_with})", ""]
    parts += [f"- note: {note}" for note in facts.notes] + ([""] if facts.notes else [])
    parts += ["## Summary", "", _md_table(("", ""), summary_rows(facts)), ""]
    if facts.best is not None:
        parts += ["## Best checkpoint", "", _md_table(("", ""), best_rows(facts)), ""]
    if validation_rows(facts):
        parts += ["## Validations", "", _md_table(("step", "loss", "perplexity", "BLEU"), validation_rows(facts)), ""]
    if "curves.png" in images:
        parts += ["## Curves", "", f"![training and validation curves]({folder}/curves.png)", ""]
    if facts.translated is not None:
        parts += ["## BLEU by source length", "", translated_line(facts), ""]
        parts += [_md_table(("source words", "sentences", "BLEU"), bucket_rows(facts)), "", f"`{facts.translated.signature}`"]
        parts += ["", "## Attention", ""]
        for number, example in enumerate(facts.translated.examples, start=1):
            parts += [f"- source: {example.source}", f"- reference: {example.reference}", f"- output: {example.hypothesis}", ""]
            parts += [f"![attention of validation sentence {number}]({folder}/attention_{number}.png)", ""]
    if facts.config_text is not None:
        parts += ["## Config (config.resolved.yaml)", "", "```yaml", facts.config_text.rstrip("\n"), "```", ""]
    return "\n".join(parts)


def _md_table(headers: tuple[str, ...], rows: Rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
