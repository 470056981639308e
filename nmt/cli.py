"""Entry points nmt-train, nmt-translate, nmt-eval: parse, one library call, exit code.

Errors a user can fix print one line on stderr and exit with code 2. Torch is imported only
after the arguments and config are known to be good, so mistakes fail fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from nmt.errors import NmtError


def _run(prog: str, body: Callable[[], int]) -> int:
    try:
        return body()
    except NmtError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nmt-train", description="Train (or resume) a model from a YAML config.")
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. train.max_steps=200")
    args = parser.parse_args(argv)

    def body() -> int:
        from nmt.config import load_config

        config = load_config(args.config, args.overrides)
        from nmt.trainer import Trainer

        Trainer(config, args.config).fit()
        return 0

    return _run("nmt-train", body)


def _read_input(path: str) -> list[str]:
    from nmt.data import read_lines

    if path == "-":
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            raise NmtError(f"<stdin>:{line}: invalid UTF-8 (byte {err.start}); send UTF-8 text") from None
        lines = text.split("\n")
        if lines[-1] == "":  # the final line end closes the last line; it does not open a new one
            lines.pop()
        return [line.removesuffix("\r") for line in lines]
    return read_lines(path)


def translate_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nmt-translate", description="Translate raw text with a trained model.")
    parser.add_argument("--model", required=True, help="run directory or checkpoint file")
    parser.add_argument("--input", default="-", help="input file (UTF-8, one sentence per line); - = stdin")
    parser.add_argument("--output", default="-", help="output file; - = stdout")
    parser.add_argument("--beam", type=int, default=None, help="beam size (1 = greedy); default: the config's decode.beam_size")
    parser.add_argument(
        "--nbest", type=int, default=1, help="write the N best translations per input line (TSV: line, rank, score, text)"
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="source tokens per batch")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best", help="which checkpoint of a run directory")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.beam is not None and args.beam < 1:
            raise NmtError(f"--beam must be >= 1, got {args.beam}")
        if args.nbest < 1 or (args.beam is not None and args.nbest > args.beam):
            raise NmtError(f"--nbest {args.nbest} must be between 1 and the beam size")
        lines = _read_input(args.input)
        from nmt.checkpoint import resolve_checkpoint
        from nmt.translator import Translator

        start = time.perf_counter()
        translator = Translator.from_checkpoint(resolve_checkpoint(args.model, args.checkpoint), args.device)
        results = translator.translate_detailed(lines, args.beam, args.nbest, max_tokens=args.max_tokens)
        out_lines = []
        for number, result in enumerate(results, start=1):
            if args.nbest == 1:
                out_lines.append(result.texts[0] if result.texts else "")
            else:
                for rank, (text, hyp) in enumerate(zip(result.texts, result.hypotheses), start=1):
                    out_lines.append(f"{number}\t{rank}\t{hyp.score:.4f}\t{text}")
        _write_output(args.output, out_lines)
        elapsed = time.perf_counter() - start
        print(
            f"nmt-translate: {len(lines)} sentences in {elapsed:.1f}s ({len(lines) / max(elapsed, 1e-9):.1f} sent/s)",
            file=sys.stderr,
        )
        return 0

    return _run("nmt-translate", body)


def _write_output(path: str, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from nmt.atomic import write_bytes_atomic

    try:
        write_bytes_atomic(Path(path), text.encode("utf-8"))
    except OSError as err:
        raise NmtError(f"{path}: cannot write output ({err.strerror})") from None


def eval_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nmt-eval", description="Score translations with sacrebleu (BLEU, chrF, TER).")
    parser.add_argument("--hyp", help="hypothesis file (detokenized text)")
    parser.add_argument("--ref", nargs="+", required=True, help="reference file(s)")
    parser.add_argument("--model", help="run directory or checkpoint: translate --src first")
    parser.add_argument("--src", help="source file to translate with --model")
    parser.add_argument("--beam", type=int, default=None, help="beam size with --model")
    parser.add_argument("--metrics", nargs="+", choices=["bleu", "chrf", "ter"], default=["bleu", "chrf", "ter"])
    parser.add_argument("--tokenize", default="13a", help="sacrebleu BLEU tokenizer (default 13a)")
    parser.add_argument("--json", help="also write the scores as JSON here")
    args = parser.parse_args(argv)

    def body() -> int:
        from nmt.data import read_lines

        if bool(args.hyp) == bool(args.model):
            raise NmtError("give either --hyp FILE or --model RUN_DIR with --src FILE")
        if args.model and not args.src:
            raise NmtError("--model needs --src FILE to translate")
        refs = [read_lines(path) for path in args.ref]
        if args.model:
            from nmt.translator import Translator

            hyps = Translator.from_run_dir(args.model).translate(read_lines(args.src), args.beam)
            hyp_name = f"{args.model} on {args.src}"
        else:
            hyps, hyp_name = read_lines(args.hyp), args.hyp
        for path, ref in zip(args.ref, refs):
            if len(ref) != len(hyps):
                raise NmtError(f"{hyp_name} has {len(hyps)} lines but {path} has {len(ref)}; they must match line by line")
        from nmt.metrics import score_corpus

        scores = score_corpus(hyps, refs, args.metrics, args.tokenize)
        for score in scores.values():
            print(f"{score.text}\n  signature: {score.signature}")
        if args.json:
            report = {name: {"score": s.score, "signature": s.signature} for name, s in scores.items()}
            _write_output(args.json, [json.dumps(report, indent=2)])
        return 0

    return _run("nmt-eval", body)
