"""Entry points nmt-train, nmt-translate, nmt-eval, nmt-average: parse, one library call, exit code.

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


def _read_file(path: str, option: str) -> list[str]:
    """Lines of a file named on the command line; a missing file names the option, not the config."""
    from nmt.data import read_lines

    if not Path(path).exists():
        raise NmtError(f"{path}: file not found; check the {option} path")
    return read_lines(path)


def _stdin_chunks(settle: float = 0.05) -> Iterator[list[str]]:
    """Lines of stdin, in chunks as they arrive, without line ends.

    A chunk is everything readable until the input pauses for `settle` seconds, so a file piped
    in comes as a few large chunks (batched like a file) and a person typing, or a program
    writing one line and waiting for its translation, gets each line back at once.
    """
    fd = sys.stdin.fileno()
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
        *complete, pending = b"".join(parts).split(b"\n")
        if eof and pending:  # a last line without a line end
            complete, pending = [*complete, pending], b""
        lines = [_decode_stdin_line(raw, done + number) for number, raw in enumerate(complete, start=1)]
        done += len(lines)
        if lines:
            yield lines


def _decode_stdin_line(raw: bytes, number: int) -> str:
    try:
        return raw.decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError as err:
        raise NmtError(f"<stdin>:{number}: invalid UTF-8 (byte {err.start} of the line); send UTF-8 text") from None


def _write_output(path: str, lines: list[str]) -> None:
    """Write lines to a file (atomically) or to stdout ('-')."""
    text = "".join(line + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from nmt.atomic import write_bytes_atomic

    target = Path(path)
    try:
        if target.exists() and not target.is_file():  # /dev/null, a FIFO: write through, never replace it
            with open(target, "wb") as handle:
                handle.write(text.encode("utf-8"))
        else:
            write_bytes_atomic(target, text.encode("utf-8"))
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


def translate_main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="nmt-translate", description="Translate raw text with a trained model.")
    parser.add_argument("--model", required=True, help="run directory or checkpoint file")
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
        # a file is read before the model loads (a bad path fails at once); stdin is translated as it arrives
        chunks = _stdin_chunks() if args.input == "-" else iter([_read_file(args.input, "--input")])
        from nmt.checkpoint import resolve_checkpoint
        from nmt.translator import Translator

        start = time.perf_counter()
        translator = Translator.from_checkpoint(resolve_checkpoint(args.model, args.checkpoint), args.device)
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
            save_attention_plot(directory / f"attention_{number:04d}.png", hyp.attention, result.src_pieces, tgt_pieces)


def eval_main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="nmt-eval", description="Score translations with sacrebleu (BLEU, chrF, TER).")
    parser.add_argument("--hyp", help="hypothesis file (detokenized text)")
    parser.add_argument("--ref", nargs="+", required=True, help="reference file(s)")
    parser.add_argument("--model", help="run directory or checkpoint: translate --src first, then score")
    parser.add_argument("--src", help="source file: translated with --model; with --hyp, used for the length buckets")
    parser.add_argument("--beam", type=int, help="beam size with --model")
    parser.add_argument("--compare", metavar="OTHER_HYP", help="paired bootstrap test against another system's output")
    parser.add_argument("--metrics", nargs="+", choices=["bleu", "chrf", "ter"], default=["bleu", "chrf", "ter"])
    parser.add_argument("--tokenize", default="13a", help="sacrebleu BLEU tokenizer (default 13a)")
    parser.add_argument("--lowercase", action="store_true", help="case-insensitive scores")
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--markdown", help="also write the report as Markdown tables here")
    args = parser.parse_args(argv)

    def body() -> int:
        check_option("--beam", "decode.beam_size", args.beam)
        from nmt.metrics import evaluate

        if bool(args.hyp) == bool(args.model):
            raise NmtError("give either --hyp FILE or --model RUN_DIR with --src FILE")
        if args.model and not args.src:
            raise NmtError("--model needs --src FILE to translate")
        sources = _read_file(args.src, "--src") if args.src else None
        if args.model:
            from nmt.checkpoint import resolve_checkpoint
            from nmt.translator import Translator

            hyps = Translator.from_checkpoint(resolve_checkpoint(args.model)).translate(sources, beam_size=args.beam)
            hyp_name = f"translation of {args.src}"
        else:
            hyps, hyp_name = _read_file(args.hyp, "--hyp"), args.hyp
        named = [(path, _read_file(path, "--ref")) for path in args.ref]
        if sources is not None:
            named.append((args.src, sources))
        compare = (args.compare, _read_file(args.compare, "--compare")) if args.compare else None
        if compare is not None:
            named.append(compare)
        for path, lines in named:
            if len(lines) != len(hyps):
                raise NmtError(f"{hyp_name} has {len(hyps)} lines but {path} has {len(lines)}; they must match line by line")
        if not hyps:
            raise NmtError(f"{hyp_name} and {args.ref[0]} are empty; there is nothing to score")
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
        from nmt.checkpoint import average_checkpoints, save_averaged, select_checkpoints

        paths = select_checkpoints(Path(args.model), count, "last" if args.last is not None else "best")
        save_averaged(Path(args.output), average_checkpoints(paths))
        print(f"nmt-average: wrote {args.output} from {', '.join(p.name for p in paths)}", file=sys.stderr)
        return 0

    return _run("nmt-average", body)
