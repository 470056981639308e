#!/usr/bin/env python3
"""Helpers shared by the peer-baseline drivers (run_joey.sh, run_onmt.sh, run_nmt.sh, gpu_run.sh).

Needs only the standard library, plus pyyaml (override), sentencepiece and
sacrebleu (bleu). Subcommands:

  override BASE OUT [--drop key.path] key.path=value ...
                                         copy a YAML config with keys replaced (or dropped)
  run --json J [--budget S] [--grace S] [--log F] [--poll S] [--no-pss] -- CMD ...
                                         run CMD in its own process group, record
                                         wall time, peak memory (RSS, PSS, RssAnon of the
                                         process tree, sampled; RssAnon of CMD itself), exit
                                         code; after
                                         --budget seconds send SIGINT (then TERM,
                                         KILL after --grace) -- a wall-clock budget
  train-stats --toolkit joey|onmt|nmt --log LOG --run J --warmup W --batch B
              [--stats stats.tsv] [--field KEY=VALUE ...] [--out OUT]
                                         throughput / time-to-first-step from logs
                                         (nmt = this repository's toolkit: its train.log)
  spm-vocab --spm M --out V             vocabulary file for the peers: M's real pieces, one a line
  scale-table FILE.json ...              run_onmt_scale.sh's table (one row per train result)
  bleu --hyp H --ref R [--spm M] [--out OUT] sentencepiece-decode H (with --spm; without it
                                         H is already detokenized text), sacrebleu vs R
  trans-stats --run J --hyp H [--toolkit-log L] --toolkit T [--spm M] --out OUT
  summary --dir D [--mode TAG] [--toolkits joey onmt nmt]
                                         markdown table of one run tag, one row per toolkit
  table --dir D [--tag TAG] [--toolkits ...]   the same table (all three toolkits by default)
  rounds --dir D [--tag TAG] [--toolkits ...]  translate_rounds.sh's table (rounds r1, r2, ... of D)
  table FILE.json ...                    one row per result file (every scalar field)
"""

import argparse
import datetime as dt
import glob
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time


# ----------------------------------------------------------------- override
def _parse_value(text):
    import yaml

    return yaml.safe_load(text)


def cmd_override(args):
    import yaml

    with open(args.base, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    for key in args.drop:  # first, so that a key can be dropped and given again
        *parents, last = key.split(".")
        node = cfg
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    for item in args.sets:
        key, _, value = item.partition("=")
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = _parse_value(value)
    with open(args.out, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------------- run
def _children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _tree(root):
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _proc_fields(path, names):
    """The named kB fields of a /proc file ({} once the process is gone)."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in names:
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _mem_kb(pid, pss):
    """(Rss, Pss or None, RssAnon) of one process in kB. RssAnon (its own heap and tensors, not
    file-backed or shared pages) and VmRSS come from /proc/PID/status, which is cheap; Pss (with
    pss=True) from smaps_rollup, which walks the page tables: tens of ms for a process of a few GB."""
    st = _proc_fields(f"/proc/{pid}/status", ("VmRSS", "RssAnon"))
    sm = _proc_fields(f"/proc/{pid}/smaps_rollup", ("Rss", "Pss")) if pss else {}
    return sm.get("Rss", st.get("VmRSS", 0)), sm.get("Pss", 0) if pss else None, st.get("RssAnon", 0)


def _nvsmi_used_mib():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10
        ).stdout
        return max(int(x) for x in out.split())
    except Exception:  # noqa: BLE001 - best effort probe
        return None


def cmd_run(args):
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    log = open(args.log, "w") if args.log else None
    t0 = time.time()
    # A shell starts background jobs with SIGINT ignored, and Python keeps an
    # inherited SIG_IGN (no KeyboardInterrupt): reset it so the budget SIGINT
    # reaches the toolkits' own interrupt handling (Joey saves a checkpoint).
    proc = subprocess.Popen(
        cmd,
        stdout=log or None,
        stderr=subprocess.STDOUT if log else None,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    peak = {"tree_rss_kb": 0, "tree_pss_kb": 0, "tree_anon_kb": 0, "main_anon_kb": 0, "gpu_used_mib": None, "nprocs": 0}
    use_nvsmi = bool(shutil.which("nvidia-smi")) and os.environ.get("PEERS_NVSMI", "1") == "1"
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            pids = _tree(proc.pid)
            mem = {p: _mem_kb(p, not args.no_pss) for p in pids}
            peak["tree_rss_kb"] = max(peak["tree_rss_kb"], sum(m[0] for m in mem.values()))
            if not args.no_pss:
                peak["tree_pss_kb"] = max(peak["tree_pss_kb"], sum(m[1] for m in mem.values()))
            # RssAnon: what corpus_scale.py reports for nmt; here summed over the tree too, since
            # OpenNMT-py's data-loader workers are separate processes with their own buckets
            peak["tree_anon_kb"] = max(peak["tree_anon_kb"], sum(m[2] for m in mem.values()))
            peak["main_anon_kb"] = max(peak["main_anon_kb"], mem[proc.pid][2] if proc.pid in mem else 0)
            peak["nprocs"] = max(peak["nprocs"], len(pids))
            if use_nvsmi:
                used = _nvsmi_used_mib()
                if used is not None:
                    peak["gpu_used_mib"] = max(peak["gpu_used_mib"] or 0, used)
            stop.wait(args.poll)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    interrupted = False
    try:
        proc.wait(timeout=args.budget if args.budget > 0 else None)
    except subprocess.TimeoutExpired:
        interrupted = True
        for sig, wait in ((signal.SIGINT, args.grace), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            try:
                if sig == signal.SIGINT and args.signal_main_only:
                    os.kill(proc.pid, sig)
                else:
                    os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    t1 = time.time()
    stop.set()
    th.join(timeout=15)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = {
        "cmd": cmd,
        "start_epoch": t0,
        "end_epoch": t1,
        "wall_s": round(t1 - t0, 3),
        "returncode": proc.returncode,
        "budget_interrupted": interrupted,
        # ru_maxrss of the children = what GNU time -v reports as
        # "Maximum resident set size": the largest single process
        "max_rss_mib_largest_proc": round(ru.ru_maxrss / 1024, 1),
        "peak_tree_rss_mib_sampled": round(peak["tree_rss_kb"] / 1024, 1),
        "peak_tree_pss_mib_sampled": None if args.no_pss else round(peak["tree_pss_kb"] / 1024, 1),
        "peak_tree_rss_anon_mib_sampled": round(peak["tree_anon_kb"] / 1024, 1),
        "peak_main_rss_anon_mib_sampled": round(peak["main_anon_kb"] / 1024, 1),
        "max_procs_in_tree": peak["nprocs"],
        "peak_gpu_used_mib_nvidia_smi": peak["gpu_used_mib"],
        "cpu_user_s": round(ru.ru_utime, 1),
        "cpu_sys_s": round(ru.ru_stime, 1),
    }
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "cmd"}))
    sys.exit(0 if (proc.returncode == 0 or interrupted) else proc.returncode or 1)


# -------------------------------------------------------------- train-stats
_TS = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
JOEY_STEP = re.compile(
    _TS + r" - INFO - joeynmt\.training - Epoch\s+\d+, Step:\s+(\d+), "
    r"Batch Loss:\s+([-\d.e+]+|nan|inf), Batch Acc: ([-\d.e+]+|nan), "
    r"Tokens per Sec:\s+([\d.e+]+|inf|nan), Lr: ([\d.e+-]+)"
)
ONMT_STEP = re.compile(
    r"\[" + _TS + r" INFO\] Step\s+(\d+)(?:/\s*\d+)?; acc:\s*([\d.]+); "
    r"ppl:\s*([\d.e+]+|nan|inf); xent:\s*([\d.e+]+|nan|inf); lr: ([\d.e+-]+); "
    r"sents:\s*(\d+); bsz:\s*(\d+)/\s*(\d+)/\s*(\d+);\s*(\d+)/\s*(\d+) tok/s;"
)
# this repository's toolkit (nmt/trainer.py): one line per window of train.log_every_steps updates,
# "2026-11-23 10:45:54 step 50 epoch 1: loss 6.404 ppl 381.50 lr 1.00e-03 grad_norm 1.57 1284 tgt tok/s"
# (target tokens = pieces + one </s> per sentence, over the window's own wall time)
NMT_STEP = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) step (\d+) epoch (\d+): loss ([-\d.e+]+|nan|inf) "
    r"ppl ([\d.e+]+|nan|inf) lr ([\d.e+-]+) grad_norm ([\d.e+]+|nan|inf) "
    r"([\d.e+]+|nan|inf) tgt tok/s"
)


def _epoch(ts):
    return time.mktime(dt.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S,%f").timetuple()) + int(ts[-3:]) / 1000.0


def _epoch_s(ts):
    """Epoch seconds of a local-time stamp with whole seconds (nmt's log)."""
    return time.mktime(dt.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S").timetuple())


def _read_stats(path):
    out = {}
    if path and os.path.exists(path):
        with open(path) as f:
            next(f)
            for line in f:
                split, lang, n, t, _ = line.split("\t")
                out[(split, lang)] = int(t) / int(n)
    return out


def _run_fields(args, run, logged_steps):
    """The fields every training summary starts with: the run's wall time, exit, memory."""
    res = {
        "toolkit": args.toolkit,
        "log": args.log,
        "logged_steps": logged_steps,
        "wall_s": run["wall_s"],
        "returncode": run["returncode"],
        "budget_interrupted": run.get("budget_interrupted"),
        "max_rss_mib_largest_proc": run["max_rss_mib_largest_proc"],
        "peak_tree_pss_mib_sampled": run["peak_tree_pss_mib_sampled"],
        "peak_tree_rss_mib_sampled": run["peak_tree_rss_mib_sampled"],
        "peak_tree_rss_anon_mib_sampled": run.get("peak_tree_rss_anon_mib_sampled"),
        "peak_main_rss_anon_mib_sampled": run.get("peak_main_rss_anon_mib_sampled"),
        "max_procs_in_tree": run.get("max_procs_in_tree"),
        "peak_gpu_used_mib_nvidia_smi": run.get("peak_gpu_used_mib_nvidia_smi"),
    }
    for item in args.field:  # the driver's own figures, e.g. the corpus size (values are JSON or text)
        key, _, value = item.partition("=")
        try:
            res[key] = json.loads(value)
        except ValueError:
            res[key] = value
    if args.cuda_mem and os.path.exists(args.cuda_mem):
        with open(args.cuda_mem) as f:
            res["torch_cuda"] = json.load(f)
    return res


def _corpus_estimates(res, st, sents, secs):
    """Pieces/s expected from the corpus means (random batches over the whole corpus); False without stats."""
    if not st:
        return False
    src_m, tgt_m = st[("train", "de")], st[("train", "en")]
    res["corpus_mean_pieces_per_sent"] = {"src": round(src_m, 3), "tgt": round(tgt_m, 3)}
    res["tgt_pieces_per_s_est"] = round(sents * tgt_m / secs, 1)
    res["src_plus_tgt_pieces_per_s_est"] = round(sents * (src_m + tgt_m) / secs, 1)
    return True


def cmd_train_stats(args):
    if args.toolkit == "nmt":
        return _train_stats_nmt(args)
    with open(args.run) as f:
        run = json.load(f)
    rows = []  # (step, epoch_time, src_tokens or None, tgt_tokens_with_eos or None, sents, loss)
    with open(args.log, encoding="utf-8", errors="replace") as f:
        prev_t = None
        for line in f:
            if args.toolkit == "joey":
                m = JOEY_STEP.search(line)
                if not m:
                    continue
                t = _epoch(m.group(1))
                step = int(m.group(2))
                tps = float(m.group(5))
                dt_ = (t - prev_t) if prev_t is not None else None
                tgt = tps * dt_ if dt_ is not None else None
                rows.append((step, t, None, tgt, None, float(m.group(3))))
                prev_t = t
            else:
                m = ONMT_STEP.search(line)
                if not m:
                    continue
                t = _epoch(m.group(1))
                sents = int(m.group(7))
                nb = sents / max(int(m.group(10)), 1)
                rows.append((int(m.group(2)), t, int(m.group(8)) * nb, int(m.group(9)) * nb, sents, float(m.group(5))))
    res = _run_fields(args, run, len(rows))
    if not rows:
        res["error"] = "no step lines found in log"
        _dump(res, args.out)
        return
    first = rows[0]
    res["first_logged_step"] = first[0]
    res["time_to_first_logged_step_s"] = round(first[1] - run["start_epoch"], 2)
    res["last_step"] = rows[-1][0]
    with open(args.log, encoding="utf-8", errors="replace") as f:
        ck = re.findall(r"(?:Checkpoint saved in \S*?/(\d+)\.ckpt|Saving checkpoint \S*?_step_(\d+)\.pt)", f.read())
    if ck:
        res["last_checkpoint_step"] = int(ck[-1][0] or ck[-1][1])
    res["last_loss"] = rows[-1][5]
    # throughput window: after warm-up step W to the last logged step
    win = [r for r in rows if r[0] >= args.warmup]
    if len(win) >= 2:
        a, b = win[0], win[-1]
        steps = b[0] - a[0]
        secs = b[1] - a[1]
        inner = win[1:]
        sents = steps * args.batch
        res.update(
            {
                "window_steps": [a[0], b[0]],
                "window_s": round(secs, 2),
                "steps_per_s": round(steps / secs, 3),
                "sents_per_s": round(sents / secs, 1),
            }
        )
        if inner and all(r[3] is not None for r in inner):
            tgt = sum(r[3] for r in inner)  # includes one </s> per sentence
            res["tgt_tok_per_s_with_eos_logged"] = round(tgt / secs, 1)
            res["tgt_pieces_per_s_logged"] = round((tgt - sents) / secs, 1)
        if inner and all(r[2] is not None for r in inner):
            src = sum(r[2] for r in inner)
            res["src_pieces_per_s_logged"] = round(src / secs, 1)
            res["src_plus_tgt_pieces_per_s_logged"] = round((src + res["tgt_pieces_per_s_logged"] * secs) / secs, 1)
        st = _read_stats(args.stats)
        _corpus_estimates(res, st, sents, secs)
        if "src_plus_tgt_pieces_per_s_logged" not in res and "tgt_pieces_per_s_logged" in res and st:
            # Joey logs target tokens only; add source pieces from the corpus mean
            res["src_plus_tgt_pieces_per_s_mixed"] = round(res["tgt_pieces_per_s_logged"] + sents * st[("train", "de")] / secs, 1)
    _dump(res, args.out)


def _train_stats_nmt(args):
    """nmt logs one line per window of N updates with that window's target tokens/s.

    Throughput = mean of the windows that start after step --warmup (for the default
    windows of one step, the same steps as the peers' window: warmup+1 .. last);
    steps/s and sentences/s come from the log's time stamps (whole seconds) between the
    last window ending at or before --warmup and the last window.
    """
    with open(args.run) as f:
        run = json.load(f)
    rows = []  # (step, epoch_time, window_steps, tgt_tok_per_s_with_eos, loss)
    with open(args.log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    prev_step = 0
    for m in NMT_STEP.finditer(text):
        step = int(m.group(2))
        rows.append((step, _epoch_s(m.group(1)), step - prev_step, float(m.group(8)), float(m.group(4))))
        prev_step = step
    res = _run_fields(args, run, len(rows))
    gpu = re.findall(r"peak GPU memory (\d+) MiB", text)
    if gpu:
        res["peak_gpu_allocated_mib_nmt_log"] = int(gpu[-1])
    if not rows:
        res["error"] = "no step lines found in log"
        _dump(res, args.out)
        return
    first = rows[0]
    res["first_logged_step"] = first[0]
    # the log has whole seconds: up to 1 s early
    res["time_to_first_logged_step_s"] = round(first[1] - run["start_epoch"], 2)
    res["last_step"] = rows[-1][0]
    ck = re.findall(r"saved \S*?step_0*(\d+)\.pt", text)
    if ck:
        res["last_checkpoint_step"] = int(ck[-1])
    res["last_loss"] = rows[-1][4]
    after = [r for r in rows if r[0] - r[2] >= args.warmup and r is not rows[0]]
    if after:
        rates = [r[3] for r in after]
        res["window_steps"] = [after[0][0] - after[0][2], after[-1][0]]
        res["windows_averaged"] = len(after)
        res["tgt_tok_per_s_with_eos_logged"] = round(sum(rates) / len(rates), 1)
        before = [r for r in rows if r[0] <= res["window_steps"][0]]
        if before:
            a, b = before[-1], rows[-1]
            steps, secs = b[0] - a[0], b[1] - a[1]
            if secs > 0:
                sents = steps * args.batch
                res.update(
                    {
                        "window_s": round(secs, 2),
                        "steps_per_s": round(steps / secs, 3),
                        "sents_per_s": round(sents / secs, 1),
                        "tgt_pieces_per_s_logged": round(res["tgt_tok_per_s_with_eos_logged"] - sents / secs, 1),
                    }
                )
                st = _read_stats(args.stats)
                if _corpus_estimates(res, st, sents, secs):
                    # like Joey: target pieces logged, source pieces from the corpus mean
                    res["src_plus_tgt_pieces_per_s_mixed"] = round(
                        res["tgt_pieces_per_s_logged"] + sents * st[("train", "de")] / secs, 1
                    )
    _dump(res, args.out)


def _dump(res, out):
    text = json.dumps(res, indent=1)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    print(text)


# ---------------------------------------------------------------- spm-vocab
def cmd_spm_vocab(args):
    """The peers' vocabulary file: every real piece of the model (no control pieces, no <unk>);
    the toolkits add their own <unk>/<pad>/<s>/</s>."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=args.spm)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    bad = [p for p in pieces if len(p.splitlines()) != 1 or " " in p or "\t" in p]
    if bad:
        raise SystemExit(f"pieces unsafe for one-token-per-line vocab files: {bad!r}")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(pieces) + "\n")
    print(f"{args.out}: {len(pieces)} pieces")


# --------------------------------------------------------------------- bleu
def _decode_pieces(path, spm_model):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_model)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return [sp.decode_pieces(line.split()) for line in lines]


def _read_lines(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return lines


def cmd_bleu(args):
    import sacrebleu

    # pieces (Joey, OpenNMT-py) are decoded with the sentencepiece model; without --spm
    # the hypotheses are already detokenized text (nmt writes detokenized output)
    hyps = _decode_pieces(args.hyp, args.spm) if args.spm else _read_lines(args.hyp)
    with open(args.ref, encoding="utf-8") as f:
        refs = f.read().split("\n")
    if refs and refs[-1] == "":
        refs = refs[:-1]
    if len(hyps) != len(refs):
        raise SystemExit(f"{args.hyp}: {len(hyps)} lines but {args.ref} has {len(refs)}")
    if args.detok_out:
        with open(args.detok_out, "w", encoding="utf-8") as f:
            f.write("\n".join(hyps) + "\n")
    bleu = sacrebleu.metrics.BLEU()  # default: 13a tokenisation, mixed case
    score = bleu.corpus_score(hyps, [refs])
    res = {
        "hyp": args.hyp,
        "ref": args.ref,
        "bleu": round(score.score, 2),
        "signature": str(bleu.get_signature()),
        "detail": str(score),
    }
    _dump(res, args.out)


# -------------------------------------------------------------- trans-stats
def cmd_trans_stats(args):
    with open(args.run) as f:
        run = json.load(f)
    if args.spm:
        # detokenized output (nmt): count pieces by re-encoding with the shared sentencepiece
        # model (may differ from the generated pieces by a piece here and there)
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=args.spm)
        hyps = [sp.encode(line, out_type=str) for line in _read_lines(args.hyp)]
    else:
        with open(args.hyp, encoding="utf-8") as f:
            hyps = [line.split() for line in f.read().split("\n")[:-1]]
    n = len(hyps)
    res = {
        "toolkit": args.toolkit,
        "what": args.what,
        "sentences": n,
        "wall_s_incl_startup": run["wall_s"],
        "returncode": run["returncode"],
        "sents_per_s_incl_startup": round(n / run["wall_s"], 1) if run["wall_s"] else None,
        "mean_output_pieces": round(sum(map(len, hyps)) / max(n, 1), 2),
        "max_output_pieces": max(map(len, hyps)) if hyps else 0,
        "max_rss_mib_largest_proc": run["max_rss_mib_largest_proc"],
        "peak_gpu_used_mib_nvidia_smi": run.get("peak_gpu_used_mib_nvidia_smi"),
    }
    decode_s = None
    if args.toolkit_log and os.path.exists(args.toolkit_log):
        with open(args.toolkit_log, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if args.toolkit == "joey":
            m = re.findall(r"Generation took ([\d.]+)\[sec\]", text)
        elif args.toolkit == "nmt":
            # "nmt-translate: 1000 sentences, 15171 output tokens; load 0.17 s, decode 9.42 s: ..."
            m = re.findall(r"decode ([\d.]+) s:", text)
            tok = re.findall(r"(\d+) sentences, (\d+) output tokens", text)
            if tok:
                res["output_tokens_with_eos_toolkit_reported"] = int(tok[-1][1])
        else:
            m = re.findall(r"Total translation time \(s\): ([\d.]+)", text)
        if m:
            decode_s = float(m[-1])
    if decode_s:
        res["decode_s_toolkit_reported"] = decode_s
        res["sents_per_s_decode_only"] = round(n / decode_s, 1)
    _dump(res, args.out)


# -------------------------------------------------------------------- table
def cmd_table(args):
    if args.dir:
        args.mode = args.tag
        cmd_summary(args)
        return
    if not args.files:
        raise SystemExit("table: give result FILE.json ... or --dir D [--tag TAG]")
    for path in args.files:
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            print(f"| {path} | unreadable: {e} |")
            continue
        keep = {k: v for k, v in r.items() if not isinstance(v, (dict, list)) or k in ("window_steps", "torch_cuda")}
        print(f"| {os.path.basename(path)} | " + "; ".join(f"{k}={v}" for k, v in keep.items()) + " |")


def cmd_scale_table(args):
    """run_onmt_scale.sh's table: start-up, peak memory and throughput, one row per result file."""
    print(
        "| run | corpus lines | spm training s | start to first step s | peak RssAnon MiB, main / tree "
        "| peak RSS MiB, tree (largest proc) | processes | tgt tok/s (pieces+EOS) | steps/s | steps | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.files:
        r = _load(path)
        cells = [
            os.path.basename(path).removesuffix("_train.json"),
            _fmt(r.get("corpus_lines")),
            _fmt(r.get("spm_train_s")),
            _fmt(r.get("time_to_first_logged_step_s")),
            f"{_fmt(r.get('peak_main_rss_anon_mib_sampled'), 0)} / {_fmt(r.get('peak_tree_rss_anon_mib_sampled'), 0)}",
            f"{_fmt(r.get('peak_tree_rss_mib_sampled'), 0)} ({_fmt(r.get('max_rss_mib_largest_proc'), 0)})",
            _fmt(r.get("max_procs_in_tree")),
            _fmt(r.get("tgt_tok_per_s_with_eos_logged"), 0),
            _fmt(r.get("steps_per_s"), 3),
            _fmt(r.get("last_step")),
            _fmt(r.get("wall_s")),
        ]
        print("| " + " | ".join(cells) + " |" + (f" {r['error']}" if r.get("error") else ""))


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _fmt(v, nd=1):
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def cmd_merge(args):
    """All result JSON files of a folder in one JSON object keyed by file name."""
    res = {}
    for name in sorted(os.listdir(args.dir)):
        if name.endswith(".json"):
            res[name] = _load(os.path.join(args.dir, name))
        elif name.endswith("_checkpoint_used.txt"):
            with open(os.path.join(args.dir, name)) as f:
                res[name] = f.read().strip()
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


TOOLKITS = ("joey", "onmt", "nmt")


def cmd_summary(args):
    """Markdown table of one mode's results (files <tk>_<mode>_*.json in --dir)."""
    d, m = args.dir, args.mode
    head = (
        "| toolkit | steps logged (ckpt used) | train wall s | time to first logged step s (step) "
        "| sents/s | tgt tok/s (pieces+EOS) | src+tgt pieces/s | peak mem MiB "
        "| beam5 s (decode / wall) | beam5 sents/s (decode) | BLEU beam5 "
        "| greedy s (decode / wall) | greedy sents/s (decode) | BLEU greedy |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    toolkits = args.toolkits
    for tk in toolkits:
        tr = _load(os.path.join(d, f"{tk}_{m}_train.json"))
        if not tr:
            print(f"| {tk} | no result |" + " |" * (head.count("|") - 3))
            continue
        cuda = tr.get("torch_cuda") or {}
        if cuda:
            mem = f"alloc {cuda.get('max_memory_allocated_mib')} / reserved {cuda.get('max_memory_reserved_mib')}"
            if tr.get("peak_gpu_used_mib_nvidia_smi"):
                mem += f" / nvidia-smi {tr['peak_gpu_used_mib_nvidia_smi']}"
        else:
            mem = f"RSS {tr.get('max_rss_mib_largest_proc')} (tree PSS {tr.get('peak_tree_pss_mib_sampled')})"
            if tr.get("peak_gpu_allocated_mib_nmt_log"):
                mem += f" / GPU alloc {tr['peak_gpu_allocated_mib_nmt_log']} (nmt log)"
        tgt = tr.get("tgt_tok_per_s_with_eos_logged")
        both = tr.get("src_plus_tgt_pieces_per_s_logged") or tr.get("src_plus_tgt_pieces_per_s_mixed")
        steps = _fmt(tr.get("last_step"))
        used = os.path.join(d, f"{tk}_{m}_checkpoint_used.txt")
        ck = tr.get("last_checkpoint_step")
        if os.path.exists(used):
            with open(used) as f:
                ck = re.sub(r".*_step_(\d+)\.pt$", r"\1", f.read().strip())
        if ck is not None:
            steps += f" (ckpt {ck})"
        cells = [
            tk,
            steps,
            _fmt(tr.get("wall_s")),
            f"{_fmt(tr.get('time_to_first_logged_step_s'))} ({tr.get('first_logged_step', '-')})",
            _fmt(tr.get("sents_per_s")),
            _fmt(tgt),
            _fmt(both),
            mem,
        ]
        for beam in (5, 1):
            ts = _load(os.path.join(d, f"{tk}_{m}_test_beam{beam}.json"))
            bl = _load(os.path.join(d, f"{tk}_{m}_test_beam{beam}.bleu.json"))
            cells += [
                f"{_fmt(ts.get('decode_s_toolkit_reported'))} / {_fmt(ts.get('wall_s_incl_startup'))}",
                _fmt(ts.get("sents_per_s_decode_only")),
                _fmt(bl.get("bleu"), 2),
            ]
        print("| " + " | ".join(cells) + " |")
    for tk in toolkits:
        for beam in (5, 1):
            ts = _load(os.path.join(d, f"{tk}_{m}_test_beam{beam}.json"))
            if ts:
                print(
                    f"\n{tk} beam {beam}: {ts.get('what')}; mean output pieces "
                    f"{ts.get('mean_output_pieces')}; rc {ts.get('returncode')}",
                    end="",
                )
    print()
    for tk in toolkits:  # extra searches, e.g. gpu_run.sh's beam 5 with the whole test set in one batch
        for path in sorted(glob.glob(os.path.join(d, f"{tk}_{m}_test_beam*_*.json"))):
            if path.endswith((".bleu.json", ".run.json", ".cudamem.json")):
                continue
            stem = path[: -len(".json")]
            ts, bl = _load(path), _load(stem + ".bleu.json")
            variant = os.path.basename(stem)[len(f"{tk}_{m}_test_") :]
            print(
                f"\n{tk} {variant}: {ts.get('what')}; "
                f"decode {_fmt(ts.get('decode_s_toolkit_reported'))} s / wall {_fmt(ts.get('wall_s_incl_startup'))} s, "
                f"{_fmt(ts.get('sents_per_s_decode_only'))} sentences/s (decode), BLEU {_fmt(bl.get('bleu'), 2)}; "
                f"rc {ts.get('returncode')}"
            )
    sig = None
    for tk in toolkits:
        sig = sig or _load(os.path.join(d, f"{tk}_{m}_test_beam5.bleu.json")).get("signature")
    if sig:
        print(f"\nBLEU signature: {sig}")


def cmd_rounds(args):
    """Markdown table of translate_rounds.sh: decode sentences/s per round (folders r1, r2, ...
    of --dir), their median, and the speed relative to the first toolkit within each round."""
    import statistics

    rounds = sorted((n for n in os.listdir(args.dir) if re.fullmatch(r"r\d+", n)), key=lambda n: int(n[1:]))
    ref = args.toolkits[0]

    def result(r, tk, beam, kind):  # kind: "json" (speed) or "bleu.json"
        return _load(os.path.join(args.dir, r, f"{tk}_{args.tag}_test_beam{beam}.{kind}"))

    print(
        f"| toolkit | beam | decode sents/s, rounds {', '.join(r[1:] for r in rounds)} | median "
        f"| x {ref}, per round | median x {ref} | BLEU |"
    )
    print("|---|---|---|---|---|---|---|")
    for beam in (5, 1):
        speed = {tk: [result(r, tk, beam, "json").get("sents_per_s_decode_only") for r in rounds] for tk in args.toolkits}
        for tk in args.toolkits:
            mine = speed[tk]
            ratios = [m / b if m and b else None for m, b in zip(mine, speed[ref])]
            bleus = {result(r, tk, beam, "bleu.json").get("bleu") for r in rounds}
            done = [v for v in mine if v]
            ok_ratios = [v for v in ratios if v]
            cells = [
                tk,
                str(beam),
                " / ".join(_fmt(v) for v in mine),
                _fmt(statistics.median(done)) if done else "-",
                " / ".join(_fmt(v, 2) for v in ratios),
                _fmt(statistics.median(ok_ratios), 2) if ok_ratios else "-",
                # one BLEU when every round translated the same (as it should)
                " / ".join(_fmt(b, 2) for b in sorted(bleus, key=lambda b: (b is None, b))),
            ]
            print("| " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd_name", required=True)
    p = sub.add_parser("override")
    p.add_argument("base")
    p.add_argument("out")
    p.add_argument("sets", nargs="*")
    p.add_argument("--drop", action="append", default=[], metavar="KEY", help="remove this key (dotted path)")
    p.set_defaults(func=cmd_override)
    p = sub.add_parser("run")
    p.add_argument("--json", required=True)
    p.add_argument("--log")
    p.add_argument("--budget", type=float, default=0)
    p.add_argument("--grace", type=float, default=60)
    p.add_argument("--poll", type=float, default=0.5)
    p.add_argument("--no-pss", action="store_true", help="skip PSS (smaps_rollup is costly for large processes)")
    p.add_argument(
        "--signal-main-only",
        action="store_true",
        help="send the budget SIGINT to the main process only (TERM/KILL go to the group)",
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("train-stats")
    p.add_argument("--toolkit", choices=["joey", "onmt", "nmt"], required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--stats")
    p.add_argument("--cuda-mem")
    p.add_argument("--field", action="append", default=[], metavar="KEY=VALUE", help="add this field to the result")
    p.add_argument("--out")
    p.set_defaults(func=cmd_train_stats)
    p = sub.add_parser("spm-vocab")
    p.add_argument("--spm", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_spm_vocab)
    p = sub.add_parser("scale-table")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_scale_table)
    p = sub.add_parser("bleu")
    p.add_argument("--hyp", required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--spm", help="sentencepiece model: decode pieces (leave out for detokenized text)")
    p.add_argument("--detok-out")
    p.add_argument("--out")
    p.set_defaults(func=cmd_bleu)
    p = sub.add_parser("trans-stats")
    p.add_argument("--toolkit", required=True)
    p.add_argument("--what", default="")
    p.add_argument("--run", required=True)
    p.add_argument("--hyp", required=True)
    p.add_argument("--toolkit-log")
    p.add_argument("--spm", help="hypotheses are detokenized text: count pieces with this model")
    p.add_argument("--out")
    p.set_defaults(func=cmd_trans_stats)
    p = sub.add_parser("merge")
    p.add_argument("--dir", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_merge)
    p = sub.add_parser("summary")
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", default="gpu")
    p.add_argument("--toolkits", nargs="+", default=list(TOOLKITS))
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("rounds")
    p.add_argument("--dir", required=True)
    p.add_argument("--tag", default="cpu")
    p.add_argument("--toolkits", nargs="+", default=["onmt", "nmt"])
    p.set_defaults(func=cmd_rounds)
    p = sub.add_parser("table")
    p.add_argument("files", nargs="*")
    p.add_argument("--dir", help="summary table of the results in this folder (see summary)")
    p.add_argument("--tag", default="cpu", help="run tag: files <toolkit>_<tag>_*.json")
    p.add_argument("--toolkits", nargs="+", default=list(TOOLKITS))
    p.set_defaults(func=cmd_table)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
