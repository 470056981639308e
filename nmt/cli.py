"""Entry points nmt-train, nmt-translate, nmt-eval, nmt-average, nmt-report: parse, one library call, exit code.

Errors a user can fix print one line on stderr and exit with code 2. Torch is imported only
after the arguments and config are known to be good, so mistakes fail fast.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, get_args, get_type_hints

from nmt.config import DecodeConfig, check_option
from nmt.errors import ConfigError, NmtError, TrainingError


def _run(prog: str, body: Callable[[], int]) -> int:
    try:
        return body()
    except TrainingError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except NmtError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout left (`| head`): stop quietly, like other filters
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141  # what a shell reports for a filter ended by SIGPIPE


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line errors of the rest of the toolkit (no usage block before them)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def train_main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="nmt-train", description="Train (or resume) a model from a YAML config.")
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. train.max_steps=200")
    args = parser.parse_args(argv)

    def body() -> int:
        from nmt.config import load_config

        config = load_config(args.config, args.overrides)
        from nmt.trainer import Trainer

        Trainer(config, args.config).fit()
        return 0

    code = _run("nmt-train", body)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a torchrun worker
        from nmt.distributed import exit_worker

        exit_worker(code)
    return code


def _read_file(path: str, option: str, reports: dict | None = None) -> list[str]:
    """Lines of a file named on the command line; a missing file names the option, not the config.

    Suspicious content (bare CRs, NUL bytes, inner byte order marks) is warned about on stderr,
    or, given `reports`, its ReadReport is kept there (by path) for the caller to warn later.
    """
    from nmt.data import ReadReport, read_lines

    if not Path(path).exists():
        raise NmtError(f"{path}: file not found; check the {option} path")
    if Path(path).is_dir():
        raise NmtError(f"{path}: is a directory; give a text file as {option}")
    report = ReadReport()
    lines = read_lines(path, report)
    if reports is None:
        _warn(report.warnings(path))
    else:
        reports[path] = report
    return lines


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(warning, file=sys.stderr, flush=True)


def _stdin_chunks(settle: float = 0.05) -> Iterator[list[str]]:
    """Lines of stdin, in chunks as they arrive, without line ends.

    A chunk is everything readable until the input pauses for `settle` seconds, so a file piped
    in comes as a few large chunks (batched like a file) and a person typing, or a program
    writing one line and waiting for its translation, gets each line back at once. Lines are
    read as files are (nmt.data.decode_lines: LF ends a line, CRLF too); suspicious content is
    warned about once, at the end of the input.
    """
    from nmt.data import InvalidUtf8, ReadReport, decode_lines

    fd = sys.stdin.fileno()
    report = ReadReport()
    pending, done, eof = b"", 0, False  # pending: an unfinished last line; done: lines yielded
    while not eof:
        parts = [pending]
        select.select([fd], [], [])  # wait for the next input (or its end)
        while True:
            data = os.read(fd, 1 << 20)
            if not data:
                eof = True
                break
            parts.append(data)
            if not select.select([fd], [], [], settle)[0]:
                break
        data = b"".join(parts)
        cut = len(data) if eof else data.rfind(b"\n") + 1  # at the end, a last line without a line end too
        try:
            lines = decode_lines(data[:cut], done + 1, report)
        except InvalidUtf8 as err:
            fix = {
                "gzip": "it is gzip-compressed: pipe it through zcat, or give the .gz file as --input",
                "UTF-16": "it is UTF-16: pipe it through iconv -f UTF-16 -t UTF-8",
            }.get(err.kind(), "send UTF-8 text")
            raise NmtError(f"<stdin>:{err.number}: invalid UTF-8 (byte {err.start} of the line); {fix}") from None
        pending = data[cut:]
        done += len(lines)
        if lines:
            yield lines
    _warn(report.warnings("<stdin>"))


def _write_output(path: str, lines: list[str]) -> None:
    """Write lines to a file (atomically; through a symlink, its target) or to stdout ('-').

    /dev/null, a FIFO and the descriptor links /dev/stdout, /dev/fd/N are written into (appended
    to), never replaced: renaming a file over /dev/stdout would replace the link itself.
    """
    text = "".join(line + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from nmt.atomic import write_bytes_atomic
    from nmt.paths import write_through

    try:
        if write_through(path):
            sys.stdout.flush()  # what was printed comes first, as on a terminal
            sys.stderr.flush()
            with open(path, "ab") as handle:
                handle.write(text.encode("utf-8"))
        else:
            write_bytes_atomic(Path(path), text.encode("utf-8"), follow_symlinks=True)
    except OSError as err:
        raise NmtError(f"{path}: cannot write ({err.strerror}); check the directory exists and is writable") from None


# nmt-translate's search options: the argparse attribute and the decode.* key each one sets
_SEARCH_OPTIONS = {
    "--beam": ("beam", "decode.beam_size"),
    "--nbest": ("nbest", "decode.nbest"),
    "--length-penalty": ("length_penalty", "decode.length_penalty"),
    "--min-len": ("min_len", "decode.min_len"),
    "--max-len-a": ("max_len_a", "decode.max_len_a"),
    "--max-len-b": ("max_len_b", "decode.max_len_b"),
    "--max-tokens": ("max_tokens", "decode.max_tokens"),
}


def _check_search_options(args: argparse.Namespace) -> None:
    """Each search option obeys the range rule of its decode.* key, before anything is read or loaded
    (the checks that need the model's config, such as --nbest above the beam, come after loading)."""
    for flag, (attribute, key) in _SEARCH_OPTIONS.items():
        check_option(flag, key, getattr(args, attribute))
    if args.plot_first < 0:
        raise ConfigError(f"--plot-first {args.plot_first}: must be an integer >= 0 (the sentences to draw)")


def _check_paths(inputs: dict, outputs: dict) -> None:
    """No output may replace an input or another output, and each must be writable (nmt.paths)."""
    from nmt.paths import check_paths

    check_paths(inputs, outputs)


def _model_files(models: str | list[str] | None) -> list:
    """The checkpoint files --model may load: of one run directory or checkpoint, or of an ensemble's."""
    from nmt.paths import checkpoint_files

    names = [models] if isinstance(models, str) else models or []
    return [path for name in names for path in checkpoint_files(name)]


def translate_main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="nmt-translate", description="Translate raw text with a trained model.")
    parser.add_argument(
        "--model",
        required=True,
        nargs="+",
        help="run directory or checkpoint file; several: an ensemble (they must share their sentencepiece models)",
    )
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best", help="which checkpoint of a run directory")
    parser.add_argument(
        "--input", default="-", help="input file (UTF-8, one sentence per line, may be .gz); - = stdin, translated as it arrives"
    )
    parser.add_argument("--output", default="-", help="output file; - = stdout")
    parser.add_argument("--beam", type=int, help="beam size, 1 = greedy (default: the model config's decode.beam_size)")
    parser.add_argument("--nbest", type=int, help="hypotheses per input line, written as TSV: line number, rank, score, text")
    parser.add_argument("--length-penalty", type=float, help="GNMT length penalty alpha (0 = off)")
    parser.add_argument("--min-len", type=int, help="output pieces before end of sentence is allowed")
    parser.add_argument("--max-len-a", type=float, help="output cap: a * source pieces + b")
    parser.add_argument("--max-len-b", type=int, help="output cap: a * source pieces + b")
    parser.add_argument("--no-unk", action="store_true", help="never output the unknown piece")
    parser.add_argument("--max-tokens", type=int, help="source tokens per batch")
    parser.add_argument(
        "--amp",
        choices=get_args(get_type_hints(DecodeConfig)["amp"]),
        help="search precision: bf16 (CPU/GPU), fp16 (GPU), int8 (CPU)",
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--alignments", help="write attention alignments here: 'src-tgt' piece index pairs per line")
    parser.add_argument("--attention-plots", metavar="DIR", help="save attention heatmaps (PNG) of the first sentences here")
    parser.add_argument("--plot-first", type=int, default=10, help="how many sentences --attention-plots draws")
    args = parser.parse_args(argv)

    def body() -> int:
        _check_search_options(args)
        if args.input == "-" and sys.stdin is None:  # started with stdin closed (<&-)
            raise NmtError("standard input is closed; give --input FILE or pipe text in")
        plots = _plot_files(args.attention_plots, args.plot_first)
        _check_paths(
            {"--input": args.input, "--model": _model_files(args.model)},
            {"--output": args.output, "--alignments": args.alignments, "--attention-plots": plots},
        )
        # a file is read before the model loads (a bad path fails at once); stdin is translated as it arrives
        chunks = _stdin_chunks() if args.input == "-" else iter([_read_file(args.input, "--input")])
        from nmt.checkpoint import resolve_checkpoint
        from nmt.translator import Translator

        start = time.perf_counter()
        translator = Translator.from_checkpoint([resolve_checkpoint(m, args.checkpoint) for m in args.model], args.device)
        loaded = time.perf_counter()
        decode = {
            "beam_size": args.beam,
            "nbest": args.nbest,
            "length_penalty": args.length_penalty,
            "min_len": args.min_len,
            "max_len_a": args.max_len_a,
            "max_len_b": args.max_len_b,
            "max_tokens": args.max_tokens,
            "allow_unk": False if args.no_unk else None,
            "amp": args.amp,
        }
        options = translator.decode_config(**decode)
        attention = bool(args.alignments or args.attention_plots)
        results, decode_s = [], 0.0
        for lines in chunks:
            began, first_line = time.perf_counter(), len(results) + 1
            part = _translate_with_progress(translator, lines, attention, args.input, decode, first_line)
            decode_s += time.perf_counter() - began
            if args.output == "-":  # each chunk as soon as it is done; a file is written once, atomically
                _write_output("-", _format_translations(part, options.nbest, first_line))
            results += part
        if args.output != "-":
            _write_output(args.output, _format_translations(results, options.nbest))
        if args.alignments:
            _write_output(args.alignments, [_alignment_line(r) for r in results])
        if args.attention_plots:
            _save_plots(Path(args.attention_plots), results[: args.plot_first], translator)
        pieces = sum(len(r.hypotheses[0].tokens) + 1 for r in results if r.hypotheses)
        decode_s = max(decode_s, 1e-9)
        print(
            f"nmt-translate: {len(results)} sentences, {pieces} output tokens; load {loaded - start:.2f} s, "
            f"decode {decode_s:.2f} s: {len(results) / decode_s:.1f} sentences/s, {pieces / decode_s:.0f} tokens/s",
            file=sys.stderr,
        )
        return 0

    return _run("nmt-translate", body)


def _translate_with_progress(translator, lines: list[str], attention: bool, path: str, decode: dict, first_line: int):
    from tqdm import tqdm

    source = "<stdin>" if path == "-" else path
    with tqdm(total=len(lines), unit="sent", disable=path == "-" or None, file=sys.stderr) as bar:
        return translator.translate_detailed(
            lines, return_attention=attention, progress=bar.update, source=source, first_line=first_line, **decode
        )


def _format_translations(results, nbest: int, first_line: int = 1) -> list[str]:
    """One line per input (nbest 1), or `nbest` TSV rows per input: line, rank, score, text."""
    if nbest == 1:
        return [r.text for r in results]
    rows = []
    for number, result in enumerate(results, start=first_line):
        if not result.hypotheses:  # an empty input line still gets its row
            rows.append(f"{number}\t1\t0.0000\t")
        for rank, (text, hyp) in enumerate(zip(result.texts, result.hypotheses), start=1):
            rows.append(f"{number}\t{rank}\t{hyp.score:.4f}\t{text}")
    return rows


def _alignment_line(result) -> str:
    """'i-j' pairs: output piece j attends most to source piece i (eos steps excluded)."""
    if not result.hypotheses:
        return ""
    hyp = result.hypotheses[0]
    best = hyp.attention[: len(hyp.tokens)].argmax(dim=-1).tolist()
    return " ".join(f"{src}-{tgt}" for tgt, src in enumerate(best))


def _plot_name(directory: Path, number: int) -> Path:
    return directory / f"attention_{number:04d}.png"


def _plot_files(directory: str | None, count: int) -> list[Path]:
    """The files --attention-plots may write, for the path check; refuses a DIR that is a file."""
    if not directory:
        return []
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise NmtError(f"--attention-plots {directory} is a file, not a directory; give a directory for the PNG files")
    if not path.is_dir():
        return []  # created later: nothing in it can be an input yet
    return [_plot_name(path, number) for number in range(1, count + 1)]


def _save_plots(directory: Path, results, translator) -> None:
    from nmt.plotting import save_attention_plot

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NmtError(f"{directory}: cannot create plot directory ({err.strerror})") from None
    eos = translator.tokenizer.tgt.pieces([translator.tokenizer.tgt.vocab.eos])
    for number, result in enumerate(results, start=1):
        if result.hypotheses:
            hyp = result.hypotheses[0]
            tgt_pieces = translator.tokenizer.tgt.pieces(hyp.tokens) + eos
            path = _plot_name(directory, number)
            try:
                save_attention_plot(path, hyp.attention, result.src_pieces, tgt_pieces)
            except OSError as err:
                raise NmtError(f"{path}: cannot write plot ({err.strerror}); check --attention-plots") from None


def eval_main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="nmt-eval", description="Score translations with sacrebleu (BLEU, chrF, TER).")
    parser.add_argument("--hyp", help="hypothesis file (detokenized text)")
    parser.add_argument("--ref", nargs="+", required=True, help="reference file(s)")
    parser.add_argument(
        "--model", nargs="+", help="run directory or checkpoint (several: an ensemble): translate --src first, then score"
    )
    parser.add_argument("--src", help="source file: translated with --model; with --hyp, used for the length buckets")
    parser.add_argument("--beam", type=int, help="beam size with --model")
    parser.add_argument("--compare", metavar="OTHER_HYP", help="paired bootstrap test against another system's output")
    parser.add_argument("--metrics", nargs="+", choices=["bleu", "chrf", "ter"], default=["bleu", "chrf", "ter"])
    parser.add_argument(
        "--tokenize", default="13a", help="sacrebleu BLEU tokenizer (default 13a; a wrong name lists sacrebleu's)"
    )
    parser.add_argument("--lowercase", action="store_true", help="case-insensitive scores")
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--markdown", help="also write the report as Markdown tables here")
    args = parser.parse_args(argv)

    def body() -> int:
        check_option("--beam", "decode.beam_size", args.beam)
        from nmt.data import line_count_hint
        from nmt.metrics import check_bleu_tokenize, evaluate

        if bool(args.hyp) == bool(args.model):
            raise NmtError("give either --hyp FILE or --model RUN_DIR with --src FILE")
        if args.model and not args.src:
            raise NmtError("--model needs --src FILE to translate")
        check_bleu_tokenize(args.tokenize, "--tokenize")  # BLEU also scores the length buckets, whatever --metrics
        _check_paths(
            {
                "--hyp": args.hyp,
                "--ref": args.ref,
                "--src": args.src,
                "--compare": args.compare,
                "--model": _model_files(args.model),
            },
            {"--json": args.json, "--markdown": args.markdown},
        )
        # every file is read before a translation starts: a bad one fails at once; warnings wait
        # until the files agree (a mismatch caused by bare CRs says so in its one error line)
        reports: dict = {}
        sources = _read_file(args.src, "--src", reports) if args.src else None
        hyps = _read_file(args.hyp, "--hyp", reports) if args.hyp else None
        named = [(path, _read_file(path, "--ref", reports)) for path in args.ref]
        compare = (args.compare, _read_file(args.compare, "--compare", reports)) if args.compare else None
        hyp_name = args.hyp or f"translation of {args.src}"
        count = len(hyps) if hyps is not None else len(sources)  # a translation has a line per source line
        if sources is not None:
            named.append((args.src, sources))
        if compare is not None:
            named.append(compare)
        for path, lines in named:
            if len(lines) != count:
                hint = line_count_hint(*((p, reports[p]) for p in (args.hyp, path) if p in reports))
                raise NmtError(f"{hyp_name} has {count} lines but {path} has {len(lines)}; they must match line by line{hint}")
        if not count:
            raise NmtError(f"{hyp_name} and {args.ref[0]} are empty; there is nothing to score")
        for path, read in reports.items():
            _warn(read.warnings(path))
        if hyps is None:
            from nmt.checkpoint import resolve_checkpoint
            from nmt.translator import Translator

            translator = Translator.from_checkpoint([resolve_checkpoint(m) for m in args.model])
            hyps = translator.translate(sources, beam_size=args.beam)
        refs = [lines for _, lines in named[: len(args.ref)]]
        report = evaluate(hyps, refs, args.metrics, args.tokenize, args.lowercase, sources, compare)
        print(report.to_text())
        if args.json:
            _write_output(args.json, [json.dumps(report.to_json(), indent=2)])
        if args.markdown:
            _write_output(args.markdown, [report.to_markdown()])
        return 0

    return _run("nmt-eval", body)


def average_main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="nmt-average", description="Average the weights of a run's last or best N checkpoints.")
    parser.add_argument("--model", required=True, help="run directory")
    parser.add_argument("--last", type=int, help="average the N newest step checkpoints")
    parser.add_argument("--best", type=int, help="average the N step checkpoints with the best validation score")
    parser.add_argument("--output", required=True, help="new checkpoint file (must not exist)")
    args = parser.parse_args(argv)

    def body() -> int:
        count = args.last if args.last is not None else args.best
        if (args.last is None) == (args.best is None) or count < 1:
            raise NmtError("give exactly one of --last N or --best N, with N >= 1")
        _check_paths({"--model": _model_files(args.model)}, {"--output": args.output})
        if os.path.lexists(args.output):  # found before the checkpoints load (nmt.checkpoint checks again)
            raise NmtError(f"{args.output}: already exists; choose another --output")
        from nmt.checkpoint import average_checkpoints, save_averaged, select_checkpoints

        paths = select_checkpoints(Path(args.model), count, "last" if args.last is not None else "best")
        save_averaged(Path(args.output), average_checkpoints(paths))
        print(f"nmt-average: wrote {args.output} from {', '.join(p.name for p in paths)}", file=sys.stderr)
        return 0

    return _run("nmt-average", body)


def report_main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="nmt-report",
        description="One self-contained HTML page (and a Markdown twin) that shows a training run.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by nmt-train")
    parser.add_argument("--output", help="HTML file (default: RUN_DIR/report.html)")
    parser.add_argument(
        "--markdown", help="Markdown twin (default: --output with .md); its images go to a NAME_files/ folder beside it"
    )
    parser.add_argument(
        "--sentences", type=int, default=500, help="validation sentences translated for BLEU by source length (0 = all)"
    )
    parser.add_argument("--examples", type=int, default=3, help="validation sentences whose attention is drawn")
    parser.add_argument("--beam", type=int, help="beam size (default: the run's decode.valid_beam_size, as in validation)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_args(argv)

    def body() -> int:
        check_option("--beam", "decode.beam_size", args.beam)
        for flag, value in (("--sentences", args.sentences), ("--examples", args.examples)):
            if value < 0:
                raise ConfigError(f"{flag} {value}: must be an integer >= 0")
        from nmt.report import make_report

        start = time.perf_counter()
        output = Path(args.output) if args.output else None
        markdown = Path(args.markdown) if args.markdown else None
        html, md = make_report(Path(args.run_dir), output, markdown, args.sentences, args.examples, args.beam, args.device)
        print(f"nmt-report: wrote {html} and {md} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return 0

    return _run("nmt-report", body)
