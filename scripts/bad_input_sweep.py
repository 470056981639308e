#!/usr/bin/env python3
"""Try bad values on every config key and every numeric CLI option; print what each one did.

For each config key (found by walking the config dataclasses, so a new key is swept too) and each
option of nmt-translate / nmt-eval / nmt-average, the values a user gets wrong: non-finite and
negative numbers, zero, huge numbers, fractions for integers, unknown choices, lists of the wrong
length, missing files and directories. Each command runs on the tiny config and a toy corpus
(training 2 updates when a value is accepted) under a 6 GB address-space limit, so an absurd
allocation fails instead of taking the machine down.

Outcomes: `error` (exit 2, exactly one `PROG: error: ...` line: the promise), `accepted` (exit 0:
fine for most values, listed for review), `BAD` (a traceback, another exit code, more lines, a
time-out, or a non-finite number accepted). Exits 1 if any case is BAD.

    python scripts/bad_input_sweep.py --workdir /tmp/sweep [--only config translate eval average]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import shutil
import subprocess
import sys
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = ROOT / "configs" / "tiny.yaml"
NON_FINITE = ("nan", "inf", "-inf", ".nan", ".inf")
FLOATS = (*NON_FINITE[:3], "-1", "0", "1e30")
INTS = ("-1", "0", "2147483648", "99999999999999999999", "1.5", ".nan")
OPTIONS = {  # CLI option -> bad values
    "translate": {
        "--beam": ("0", "-1", "100000"),
        "--nbest": ("0", "-2"),
        "--length-penalty": FLOATS,
        "--min-len": ("-1", "1000000"),
        "--max-len-a": FLOATS,
        "--max-len-b": ("-1", "-100"),
        "--max-tokens": ("0", "-5", "1"),
        "--plot-first": ("-1",),
        "--device": ("gpu", "cuda:x", "cpu:3"),
        "--checkpoint": ("worst",),
    },
    "eval": {"--tokenize": ("nope", "13A", ""), "--metrics": ("bleu nope",), "--beam": ("0", "-3")},
    "average": {"--last": ("0", "-1", "100"), "--best": ("0", "100")},
}


@dataclasses.dataclass
class Case:
    command: str
    key: str
    value: str
    argv: list[str]
    outcome: str = ""
    message: str = ""


def leaf_keys(cls: type, prefix: str = "") -> list[tuple[str, typing.Any]]:
    """(dotted key, type hint) of every leaf key of a config dataclass."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)] or [hint]
        if dataclasses.is_dataclass(inner[0]):
            keys += leaf_keys(inner[0], f"{prefix}{f.name}.")
        else:
            keys.append((f"{prefix}{f.name}", hint))
    return keys


def bad_values(key: str, hint: typing.Any) -> tuple[str, ...]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return FLOATS
    if hint is int:
        return INTS
    if hint is bool:
        return ("maybe", "2")
    if origin is typing.Literal:
        return ("nope", "1")
    if origin is tuple and args[-1] is Ellipsis:
        return ("[bleu, nope]", "[]")
    if origin is tuple:
        return ("[0.9]", "[0.9, 1.5]", "[.nan, 0.9]", "[-0.1, 0.9]", "[0.9, 0.999, 0.5]")
    if key == "train.max_time":
        return ("-5", ".nan", "1e400", "8 hours")
    if key.endswith((".src", ".tgt", "model_file")):
        return ("missing.txt", ".", "''")
    return ("''",)


def config_cases(work: Path) -> list[Case]:
    sys.path.insert(0, str(ROOT))
    from nmt.config import Config

    toy = work / "toy"
    corpus = [f"data.{s}.{side}={toy}/{s}.{side}" for s in ("train", "valid") for side in ("src", "tgt")]
    cases = []
    for key, hint in leaf_keys(Config):
        for value in bad_values(key, hint):
            run_dir = work / "runs" / f"{key}={value}".replace("/", "_")
            base = [*corpus, "train.max_steps=2", "train.eval_every_steps=2", "train.log_every_steps=1"]
            base = [item for item in base if item.split("=")[0] != key]
            argv = ["nmt-train", "--config", str(TINY), f"run_dir={run_dir}", *base, f"{key}={value}"]
            cases.append(Case("nmt-train", key, value, argv))
    return cases


def option_cases(work: Path, command: str) -> list[Case]:
    model, toy = work / "model", work / "toy"
    fixed = {
        "translate": ["--model", str(model), "--input", f"{toy}/test.src", "--output", str(work / "out.txt")],
        "eval": ["--model", str(model), "--src", f"{toy}/test.src", "--ref", f"{toy}/test.tgt"],
        "average": ["--model", str(model), "--output", str(work / "avg.pt")],
    }[command]
    cases = []
    for option, values in OPTIONS[command].items():
        for value in values:
            args = [*fixed, option, *value.split(" ")]
            if command == "eval" and option != "--beam":
                args = ["--hyp", f"{toy}/test.tgt", "--ref", f"{toy}/test.tgt", option, *value.split(" ")]
            cases.append(Case(f"nmt-{command}", option, value, [f"nmt-{command}", *args]))
    return cases


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def run(case: Case, work: Path) -> Case:
    try:
        result = subprocess.run(
            [str(BIN / case.argv[0]), *case.argv[1:]],
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
            cwd=work,
            preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        case.outcome, case.message = "BAD", "timed out after 180 s"
        return case
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    (work / "avg.pt").unlink(missing_ok=True)
    if result.returncode == 0:
        case.outcome = "BAD" if case.value in NON_FINITE else "accepted"
        case.message = lines[-1] if lines else ""
    elif result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{case.argv[0]}: error: "):
        case.outcome, case.message = "error", lines[0]
    else:
        case.outcome = "BAD"
        case.message = f"exit {result.returncode}: " + (lines[-1] if lines else "(no stderr)")
    return case


def prepare(work: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_toy_corpus

    make_toy_corpus.write_corpus(work / "toy", seed=0)
    if not (work / "model" / "checkpoints" / "best.pt").exists():
        toy = work / "toy"
        corpus = [f"data.{s}.{side}={toy}/{s}.{side}" for s in ("train", "valid") for side in ("src", "tgt")]
        argv = ["--config", str(TINY), f"run_dir={work / 'model'}", *corpus, "train.max_steps=40", "train.eval_every_steps=20"]
        subprocess.run([str(BIN / "nmt-train"), *argv], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--only", nargs="+", choices=["config", *OPTIONS], default=["config", *OPTIONS])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work / "runs", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    prepare(work)
    cases = [c for part in args.only for c in (config_cases(work) if part == "config" else option_cases(work, part))]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda case: run(case, work), cases))
    for case in done:
        print(f"{case.outcome:8} {case.command:13} {case.key}={case.value}\t{case.message[:220]}")
    counts = {name: sum(c.outcome == name for c in done) for name in ("error", "accepted", "BAD")}
    print(f"\n{len(done)} cases: {counts['error']} one-line errors, {counts['accepted']} accepted, {counts['BAD']} BAD")
    return 1 if counts["BAD"] else 0


if __name__ == "__main__":
    sys.exit(main())
