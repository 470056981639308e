#!/usr/bin/env python3
"""Corpus scale: memory, start-up and tokens/s of `nmt-train` against corpus size (M1 model, CPU).

    python benchmarks/corpus_scale.py --sizes 450000 4500000 18000000 --updates 200 --restart --json scale.json
    python benchmarks/corpus_scale.py --sizes 20000 200000 --updates 30 --restart          # a quick check
    python benchmarks/corpus_scale.py --sizes 450000 --ranks 2 --updates 100               # torchrun, gloo
    python benchmarks/corpus_scale.py --sizes --curve-updates 3000 --json curve.json      # RSS over a long Multi30k run
    python benchmarks/corpus_scale.py --sizes --repeated 4500000 --updates 200            # tokens/s: the data path alone

Each corpus (Multi30k train first, the baseline row, unless --no-multi30k; then a synthetic
WMT-like corpus per --sizes entry, made once into --data-dir by make_wmt_like.py and reused)
trains in a fresh run directory for --updates updates: `nmt-train` (or `torchrun --nproc_per_node
2`) with data.train = the corpus, validation off, sentencepiece trained on the corpus (as a first
run does; --spm FILE reuses a model instead), `train.log_every_steps=1`. While it runs, the
benchmark polls train.log every 0.05 s and samples /proc/PID/status of every training process
(for torchrun: each rank, found among the launcher's descendants) every --interval seconds.

Figures (see benchmarks/README.md):
- start to first update: wall time from just before the process is launched to the moment the
  first `step N` line appears in train.log (written after that update's optimizer step), as seen
  by the poll; it includes the interpreter and torch imports, reading the corpus, training
  sentencepiece, encoding, building the model and the first update itself. A second table
  gives the seconds at which the log's first line (corpus read, tokenizer ready), the
  `data.train:` line (corpus encoded), the `model:` line and, on a resume, `resuming from step`
  appeared.
- resume start to first update (--restart): the same command again on the same run directory
  with train.max_steps raised by --restart-updates, measured the same way.
- peak RssAnon: the largest sampled RssAnon (anonymous resident memory: heap, Python objects,
  torch tensors; not page cache nor file-backed mmap pages, which the kernel can drop) of the
  training process (each rank with --ranks 2). Sampled, so a spike shorter than --interval can
  be missed. "To the last update" stops at the last `step` line; "whole run" adds the final
  checkpoint save and exit. peak VmRSS: the largest of the sampled VmRSS and the kernel's VmHWM
  (total resident high-water mark, file-backed pages included) read at each sample.
- tokens/s: the mean and the median of the per-update target tokens/s that train.log reports,
  over the updates after --skip (warm-up); the median resists the stalls of a busy machine.
Caveats: the machine must be otherwise idle (each sample records the load average and the
process's CPU seconds, so a starved run shows); between `model built` and the first update come
the optimizer, the checkpoint restore, the epoch's batch list (built twice by today's trainer:
Trainer._reached_limit and Trainer._train) and the first update itself, whose first backward
(fresh buffers, kernel set-up) costs several times a later one; WMT-like lines are about twice as long as Multi30k's (1-3 joined
sentences), so their 64-sentence batches need more activation memory and attention per token:
compare corpus sizes against the smallest WMT-like row, and Multi30k only as the issue's baseline.
The JSON (--json) holds every sample (time, step, RssAnon, RssFile, VmRSS per process), the
log lines' arrival times and all per-update rates.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAKE_CORPUS = REPO.parent / "shared" / "scale" / "make_wmt_like.py"
ENTRY = "import sys; from nmt.cli import train_main; sys.exit(train_main())"
STEP = re.compile(r"step (\d+) epoch (\d+): .* (\d+) tgt tok/s")
PAIRS = re.compile(r"data\.train: (?:(\d+) pairs, none dropped|kept (\d+) of (\d+) pairs)")
STATUS_KEYS = ("RssAnon", "RssFile", "VmRSS", "VmHWM")
LOG_POLL = 0.05  # seconds between reads of train.log


# ----------------------------------------------------------------------------------------------
# /proc


def proc_status(pid: int) -> dict[str, int] | None:
    """RssAnon, RssFile, VmRSS, VmHWM of `pid` in kB, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in STATUS_KEYS:
            values[key] = int(rest.split()[0])
    if len(values) < len(STATUS_KEYS):
        return None  # a zombie has no memory lines
    try:  # CPU seconds used (utime + stime): a starved process shows it
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        values["cpu_s"] = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        pass
    return values


def descendants(root: int) -> list[int]:
    """Every live descendant of `root` (from /proc/*/stat parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def worker_rank(pid: int) -> int | None:
    """The RANK in a training process's environment (0 without torchrun); None: not a trainer."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"train_main" not in cmdline:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return 0


# ----------------------------------------------------------------------------------------------
# one nmt-train process, watched


def watch_run(command: list[str], log_path: Path, stderr_path: Path, interval: float, ranks: int) -> dict:
    """Launch `command`, follow train.log and sample memory until it exits; returns the raw record."""
    offset = log_path.stat().st_size if log_path.exists() else 0  # a resumed run appends to train.log
    lines: list[tuple[float, str]] = []  # (seconds since launch, line) as the poll first saw it
    samples: list[dict] = []
    workers: dict[int, int] = {}  # pid -> rank
    pending = b""
    step = 0
    with open(stderr_path, "wb") as err:
        start = time.monotonic()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        next_sample = start
        while True:
            done = child.poll() is not None
            now = time.monotonic()
            if log_path.exists():
                with open(log_path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
                offset += len(data)
                pending += data
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace")
                    lines.append((now - start, line))
                    if match := STEP.search(line):
                        step = int(match.group(1))
            if done:
                break
            if now >= next_sample:
                next_sample += interval
                if ranks > 1 and len(workers) < ranks:
                    for pid in descendants(child.pid):
                        if pid not in workers and (rank := worker_rank(pid)) is not None:
                            workers[pid] = rank
                watched = workers if ranks > 1 else {child.pid: 0}
                procs = {}
                for pid, rank in watched.items():
                    if (status := proc_status(pid)) is not None:
                        procs[str(rank)] = status
                if ranks > 1 and (status := proc_status(child.pid)) is not None:
                    procs["launcher"] = status
                if procs:
                    load = float(Path("/proc/loadavg").read_text().split()[0])
                    samples.append({"t": round(now - start, 3), "step": step, "load1": load, "procs": procs})
            time.sleep(LOG_POLL)
        wall = time.monotonic() - start
    return {"returncode": child.returncode, "wall_s": wall, "lines": lines, "samples": samples}


def summarize(raw: dict, skip: int, ranks: int) -> dict:
    """Start-up phases, first update, memory peaks and tokens/s of one watched run."""
    lines = raw["lines"]

    def first(pattern: str) -> float | None:
        return next((t for t, line in lines if re.search(pattern, line)), None)

    steps = [(t, int(m.group(1)), int(m.group(3))) for t, line in lines if (m := STEP.search(line))]
    first_step = steps[0][1] if steps else None
    steady = [rate for _, step, rate in steps if first_step is not None and step - first_step >= skip]
    peaks: dict[str, dict[str, float]] = {}
    last_update = steps[-1][0] if steps else float("inf")  # after it: the final checkpoint save, exit
    for sample in raw["samples"]:
        for name, status in sample["procs"].items():
            peak = peaks.setdefault(name, {"rss_anon_train_mb": 0.0, "rss_anon_mb": 0.0, "vm_rss_mb": 0.0})
            if sample["t"] <= last_update:
                peak["rss_anon_train_mb"] = max(peak["rss_anon_train_mb"], status["RssAnon"] / 1024)
            peak["rss_anon_mb"] = max(peak["rss_anon_mb"], status["RssAnon"] / 1024)
            peak["vm_rss_mb"] = max(peak["vm_rss_mb"], status["VmRSS"] / 1024, status["VmHWM"] / 1024)
    pairs = None
    for _, line in lines:
        if match := PAIRS.search(line):
            pairs = int(match.group(1) or match.group(2))
    return {
        "wall_s": raw["wall_s"],
        "first_update_s": steps[0][0] if steps else None,
        "first_update_step": first_step,
        "phases_s": {  # seconds since launch at which each milestone's log line appeared
            "log_opened (corpus read, tokenizer ready)": lines[0][0] if lines else None,
            "corpus encoded": first(r"^\S+ \S+ data\.train: "),
            "model built": first(r"^\S+ \S+ model: "),
            "checkpoint restored (resume)": first(r"^\S+ \S+ resuming from step "),
            "first update": steps[0][0] if steps else None,
        },
        "train_pairs_kept": pairs,
        "tokens_per_s": sum(steady) / len(steady) if steady else None,
        "tokens_per_s_median": sorted(steady)[len(steady) // 2] if steady else None,
        "steady_updates": len(steady),
        "rates": [rate for _, _, rate in steps],
        "epoch_starts": epoch_starts(lines),
        "peaks": peaks,
        "ranks": ranks,
    }


def epoch_starts(lines: list[tuple[float, str]]) -> dict[str, int]:
    """The first update logged in each epoch: {epoch: step}."""
    starts: dict[str, int] = {}
    for _, line in lines:
        if match := STEP.search(line):
            starts.setdefault(match.group(2), int(match.group(1)))
    return starts


# ----------------------------------------------------------------------------------------------
# a corpus: first run (and resume)


def make_corpus(pairs: int, data_dir: Path) -> tuple[Path, Path]:
    prefix = data_dir / f"wmt_like_{pairs}"
    src, tgt = Path(f"{prefix}.de"), Path(f"{prefix}.en")
    if not (src.exists() and tgt.exists()):
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"making {prefix}.de/.en ({pairs:,} pairs) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(MAKE_CORPUS), "--pairs", str(pairs), "--out", str(prefix)], check=True)
    return src, tgt


def repeat_corpus(files: tuple[Path, Path], pairs: int, data_dir: Path) -> tuple[Path, Path]:
    """Multi30k train repeated to `pairs` pairs: Multi30k's sentence lengths at a large corpus's
    size, so its tokens/s against Multi30k's measures the data path alone, not batch shapes."""
    prefix = data_dir / f"multi30k_repeated_{pairs}"
    out = (Path(f"{prefix}.de"), Path(f"{prefix}.en"))
    if not all(path.exists() for path in out):
        data_dir.mkdir(parents=True, exist_ok=True)
        for source, target in zip(files, out):
            with gzip.open(source, "rt", encoding="utf-8") as handle:
                lines = handle.read().splitlines(keepends=True)
            with open(f"{target}.tmp", "w", encoding="utf-8") as handle:
                for start in range(0, pairs, len(lines)):
                    handle.writelines(lines[: pairs - start])
            os.replace(f"{target}.tmp", target)
    return out


def train_command(args: argparse.Namespace, run_dir: Path, src: Path, tgt: Path, max_steps: int) -> list[str]:
    """The nmt-train (or torchrun) command line; --extra keys replace the benchmark's own."""
    keys = {
        "run_dir": str(run_dir),
        "data.train.src": str(src),
        "data.train.tgt": str(tgt),
        "data.valid": "null",
        "train.max_steps": str(max_steps),
        "train.max_epochs": "0",
        "train.log_every_steps": "1",  # the first update's line is the start-up signal
        "train.eval_every_steps": "1000000000",
        "train.save_every_steps": "0",
        "train.early_stopping_patience": "0",
        "tokenizer.model_file": args.spm or "null",
    }
    for item in args.extra:
        key, _, value = item.partition("=")
        keys[key] = value
    overrides = [f"{key}={value}" for key, value in keys.items()]
    if args.ranks > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.ranks), "--no-python"]
        return [*launcher, sys.executable, "-c", ENTRY, "--config", args.config, *overrides]
    return [sys.executable, "-c", ENTRY, "--config", args.config, *overrides]


def run_corpus(args: argparse.Namespace, name: str, src: Path, tgt: Path, pairs: int, updates: int, restart: bool) -> dict:
    for pattern in args.clear:
        for path in glob(pattern.format(src=src, tgt=tgt, prefix=src.with_suffix(""))):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    work = Path(tempfile.mkdtemp(prefix="corpus_scale_", dir=args.work_dir))
    run_dir = work / "run"
    result: dict = {"corpus": name, "pairs": pairs, "src": str(src), "tgt": str(tgt), "updates": updates}
    try:
        for phase, max_steps in (("first", updates), ("resume", updates + args.restart_updates)):
            if phase == "resume" and not restart:
                break
            command = train_command(args, run_dir, src, tgt, max_steps)
            print(f"[{time.strftime('%H:%M:%S')}] {name} {phase} run: {shlex.join(command)}", file=sys.stderr, flush=True)
            raw = watch_run(command, run_dir / "train.log", work / f"stderr.{phase}", args.interval, args.ranks)
            if raw["returncode"] != 0:  # reported in its row; the other corpora still run
                tail = (work / f"stderr.{phase}").read_text(errors="replace")[-3000:]
                print(f"{name} {phase} run failed (exit {raw['returncode']}):\n{tail}", file=sys.stderr, flush=True)
                result[phase] = {"command": command, "error": f"exit {raw['returncode']}", "stderr_tail": tail}
                result[phase].update(summarize(raw, args.skip, args.ranks), samples=raw["samples"], log=raw["lines"])
                break
            summary = summarize(raw, args.skip if phase == "first" else min(args.skip, args.restart_updates // 2), args.ranks)
            print(
                f"[{time.strftime('%H:%M:%S')}]   wall {summary['wall_s']:.1f} s, first update after "
                f"{_fmt(summary['first_update_s'], '.1f')} s",
                file=sys.stderr,
                flush=True,
            )
            result[phase] = {"command": command, **summary, "samples": raw["samples"], "log": raw["lines"]}
    finally:
        if args.keep_runs:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


# ----------------------------------------------------------------------------------------------
# report


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _per_rank(peaks: dict[str, dict[str, float]], *keys: str) -> str:
    ranks = sorted((name for name in peaks if name.isdigit()), key=int)
    return "; ".join(" / ".join(f"{peaks[name][key]:,.0f}" for key in keys) for name in ranks) or "-"


def print_table(results: list[dict], ranks: int) -> None:
    each = " (each rank)" if ranks > 1 else ""
    print(
        f"| corpus | pairs | start to first update (s) | resume start to first update (s) "
        f"| peak RssAnon (MB), to the last update / whole run{each} "
        f"| peak VmRSS (MB){each} | tokens/s, mean / median |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        first, resume = r["first"], r.get("resume")
        failed = "; ".join(
            f"{phase} run failed: {r[phase]['error']}" for phase in ("first", "resume") if "error" in r.get(phase, {})
        )
        print(
            f"| {r['corpus']}{' (' + failed + ')' if failed else ''} | {r['pairs']:,} | {_fmt(first['first_update_s'], '.1f')} "
            f"| {_fmt(resume['first_update_s'] if resume else None, '.1f')} "
            f"| {_per_rank(first['peaks'], 'rss_anon_train_mb', 'rss_anon_mb')} | {_per_rank(first['peaks'], 'vm_rss_mb')} "
            f"| {_fmt(first['tokens_per_s'], ',.0f')} / {_fmt(first['tokens_per_s_median'], ',.0f')} |"
        )


def print_phases(results: list[dict]) -> None:
    print("\nStart-up phases (s after launch at which train.log showed each; first run / resume):\n")
    names = list(results[0]["first"]["phases_s"])
    print("| corpus | " + " | ".join(names) + " | whole run wall (s) |")
    print("|---|" + "---|" * (len(names) + 1))
    for r in results:
        runs = [r["first"], *([r["resume"]] if "resume" in r else [])]
        cells = [" / ".join(_fmt(run["phases_s"][n], ".1f") for run in runs) for n in names]
        walls = " / ".join(f"{run['wall_s']:.0f}" for run in runs)
        print(f"| {r['corpus']} | " + " | ".join(cells) + f" | {walls} |")


def print_curve(result: dict, points: int = 10) -> None:
    """RssAnon / VmRSS of rank 0 at evenly spaced updates of a long run, and the drift after warm-up."""
    samples = [s for s in result["first"]["samples"] if s["step"] > 0 and "0" in s["procs"]]
    if not samples:
        return
    last = samples[-1]["step"]
    print(
        f"\nMemory over a {result['corpus']} run of {result['updates']} updates (rank 0, last sample at or before each update):\n"
    )
    print("| update | s since launch | RssAnon (MB) | VmRSS (MB) |")
    print("|---|---|---|---|")
    marks = sorted({max(1, round(last * k / points)) for k in range(points + 1)})
    chosen = []
    for mark in marks:
        at = [s for s in samples if s["step"] <= mark]
        if at:
            chosen.append((mark, at[-1]))
    for mark, s in chosen:
        status = s["procs"]["0"]
        print(f"| {mark} | {s['t']:.0f} | {status['RssAnon'] / 1024:,.0f} | {status['VmRSS'] / 1024:,.0f} |")
    # Growth after warm-up: from the first sample of epoch 2 on (every batch shape has been seen
    # once), or, for a run shorter than an epoch, from the second half on.
    second = result["first"]["epoch_starts"].get("2")
    since, what = (second, "the start of epoch 2") if second else (max(1, last // 2), "half-way")
    later = [s for s in samples if s["step"] >= since]
    if len(later) >= 2:
        a, b = later[0], later[-1]
        growth = (b["procs"]["0"]["RssAnon"] - a["procs"]["0"]["RssAnon"]) / 1024
        rate = f" ({growth / (b['step'] - a['step']) * 1000:+.1f} MB per 1,000 updates)" if b["step"] - a["step"] >= 500 else ""
        print(f"\nRssAnon change from update {a['step']} ({what}) to {b['step']}: {growth:+,.0f} MB{rate}")


def machine_line() -> str:
    import torch

    load = os.getloadavg()
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {int(memory) / 2**20:.0f} GiB RAM, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), python {platform.python_version()}; "
        f"load average at start {load[0]:.2f}"
    )


def import_seconds() -> float:
    """Wall time of a bare interpreter importing the trainer (torch included): part of every start."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import nmt.trainer"], check=True)
    return time.monotonic() - start


def default_config() -> str:
    return str(REPO / "benchmarks" / "peers" / "nmt_m1.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[450_000, 4_500_000, 18_000_000], help="WMT-like corpus sizes, pairs"
    )
    parser.add_argument(
        "--data-dir", default=str(REPO / "data" / "scale"), help="where the WMT-like corpora are made (and reused)"
    )
    parser.add_argument(
        "--multi30k",
        default=str(REPO.parent / "shared" / "data" / "multi30k"),
        help="Multi30k (train.de.gz / train.en.gz): the baseline row",
    )
    parser.add_argument("--no-multi30k", action="store_true", help="no baseline row")
    parser.add_argument(
        "--repeated",
        type=int,
        nargs="*",
        default=[],
        metavar="PAIRS",
        help="control corpora: Multi30k train repeated to this many pairs (Multi30k's lengths, a large corpus's size)",
    )
    parser.add_argument("--updates", type=int, default=200, help="updates per first run")
    parser.add_argument("--skip", type=int, default=20, help="updates left out of tokens/s (warm-up)")
    parser.add_argument(
        "--config", default=default_config(), help="nmt config (default: the M1 model, benchmarks/peers/nmt_m1.yaml)"
    )
    parser.add_argument(
        "--extra", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides (replace the benchmark's own)"
    )
    parser.add_argument("--spm", help="an existing sentencepiece model (tokenizer.model_file) instead of training one per corpus")
    parser.add_argument("--ranks", type=int, choices=(1, 2), default=1, help="2: torchrun --nproc_per_node 2 (gloo on CPU)")
    parser.add_argument("--restart", action="store_true", help="then resume each run (train.max_steps raised) and time its start")
    parser.add_argument("--restart-updates", type=int, default=10, help="updates the resumed run adds")
    parser.add_argument("--curve-updates", type=int, default=0, help="also a Multi30k run this long: its memory curve")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    parser.add_argument(
        "--clear",
        action="append",
        default=[],
        metavar="GLOB",
        help="paths removed before each corpus's first run ({src}, {tgt}, {prefix} = the corpus files): a cached store",
    )
    parser.add_argument("--work-dir", help="where the temporary run directories go (default: the system's temp dir)")
    parser.add_argument("--keep-runs", action="store_true", help="keep the run directories")
    parser.add_argument("--json", help="write every figure, sample and log line's arrival time here")
    args = parser.parse_args()
    if args.updates <= args.skip:
        parser.error(f"--updates {args.updates} must exceed --skip {args.skip}")
    if not MAKE_CORPUS.exists() and args.sizes:
        parser.error(f"{MAKE_CORPUS} not found: it makes the WMT-like corpora")

    header = machine_line()
    imports = import_seconds()
    corpora: list[tuple[str, Path, Path, int]] = []
    multi30k = (Path(args.multi30k) / "train.de.gz", Path(args.multi30k) / "train.en.gz")
    if not args.no_multi30k:
        corpora.append(("Multi30k", *multi30k, 0))
    for pairs in args.sizes:
        corpora.append((f"WMT-like {pairs:,}", *make_corpus(pairs, Path(args.data_dir)), pairs))
    for pairs in args.repeated:
        corpora.append((f"Multi30k repeated {pairs:,}", *repeat_corpus(multi30k, pairs, Path(args.data_dir)), pairs))
    results = []
    for name, src, tgt, pairs in corpora:
        result = run_corpus(args, name, src, tgt, pairs, args.updates, args.restart)
        if not pairs:
            result["pairs"] = result["first"]["train_pairs_kept"] or 0
        results.append(result)
    curve = None
    if args.curve_updates:
        curve = run_corpus(args, "Multi30k", *multi30k, 0, args.curve_updates, restart=False)

    print(f"`{shlex.join(['python', *sys.argv])}`\n")
    print(f"{header}; `import nmt.trainer` alone: {imports:.1f} s")
    print(
        f"config {args.config}{' + ' + ' '.join(args.extra) if args.extra else ''}; {args.updates} updates per run, "
        f"tokens/s = mean per-update rate after update {args.skip}; memory sampled every {args.interval} s"
        + (f"; resume adds {args.restart_updates} updates" if args.restart else "")
        + (f"; {args.ranks} ranks (torchrun, gloo)" if args.ranks > 1 else "")
        + (f"; memory curve: one Multi30k run of {args.curve_updates} updates" if args.curve_updates else "")
        + "\n"
    )
    if results:
        print_table(results, args.ranks)
        print_phases(results)
    if curve:
        print_curve(curve)
    if args.json:
        document = {"argv": sys.argv, "machine": header, "import_s": imports, "results": results, "curve": curve}
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")
    failed = [
        r["corpus"] for r in [*results, *([curve] if curve else [])] if any("error" in r.get(p, {}) for p in ("first", "resume"))
    ]
    if failed:
        raise SystemExit(f"failed runs: {', '.join(failed)} (see stderr above)")


if __name__ == "__main__":
    main()
