#!/usr/bin/env bash
# OpenNMT-py 3.5.1 on a WMT-size corpus (issue 19): start-up, peak memory and tokens/s of model M1,
# for comparison with nmt's benchmarks/corpus_scale.py on the same corpus and machine.
#
#   CORPUS=/tmp/scale_data/wmt_like_4500000 bash benchmarks/peers/run_onmt_scale.sh
#
# OpenNMT-py reads the RAW corpus (CORPUS.de / CORPUS.en) with its on-the-fly transforms
# [sentencepiece, filtertoolong], as a user of it would; everything else is onmt_m1.yaml (batches
# of 64 sentences, like corpus_scale.py's nmt_m1.yaml), with OpenNMT-py's own defaults for the
# data pipeline: num_workers 2 (spawned DataLoader processes), bucket_size 262144 examples per
# worker (bucket_size_init -1: the first bucket is full size), prefetch_factor 200 batches.
#
# 1. the onmt venv (common.sh: peers_onmt_venv) plus sentencepiece for the transform
# 2. the joint sentencepiece model: SPM_MODEL if given (e.g. the spm.model of nmt's run on this
#    corpus), else trained once by nmt's own code (nmt.tokenizer.build_tokenizer: BPE 8000, a
#    sample of 1M lines of both sides), timed, and kept in $PEERS_DATA/scale/ for later runs.
#    nmt trains it inside its start-up; OpenNMT-py needs it beforehand, so the table shows
#    both times. The vocabulary file = the model's real pieces (peerbench.py spm-vocab).
# 3. trains STEPS updates, logging every step. peerbench.py run reads /proc/PID/status of the
#    process tree (main process + data-loader workers) every 0.2 s, as corpus_scale.py does for
#    nmt: peak RssAnon of the main process (nmt's figure) and of the tree (the workers hold the
#    buckets), peak VmRSS of the tree; no PSS (smaps_rollup of GB-sized processes costs CPU).
#    Start to first step = process start to the `Step 1` line's time stamp; tokens/s = target
#    tokens (pieces + </s>) of the steps after WARMUP over their wall time (peerbench train-stats).
# Results: $RESULTS/onmt_scale_$TAG_{train.json,train.log,train.yaml,env.txt,table.md}.
#
# Env: CORPUS (required) prefix of the .de / .en files   SPM_MODEL (trained if unset)
#      STEPS (60) WARMUP (20: tokens/s counts the steps after it)   TAG (basename of CORPUS)
#      ONMT_EXTRA ("") extra key=value overrides, e.g. "num_workers=0 bucket_size=32768"
#      PEERS_ENV PEERS_DATA RESULTS NMT_PY: as for run_onmt.sh / run_nmt.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
: "${CORPUS:?set CORPUS to the corpus prefix (CORPUS.de, CORPUS.en)}"
STEPS="${STEPS:-60}"
TAG="${TAG:-$(basename "$CORPUS")}"
peers_driver_defaults
for l in de en; do [ -f "$CORPUS.$l" ] || { echo "$CORPUS.$l not found" >&2; exit 1; }; done

peers_onmt_venv
"$PY" -c "import sentencepiece" 2>/dev/null || "$VENV/bin/pip" install -q -c "$HERE/spm_freeze.txt" sentencepiece
mkdir -p "$RESULTS" "$PEERS_DATA/scale"
OUT="$RESULTS/onmt_scale_$TAG"
peers_machine_lines "$REPO" > "${OUT}_env.txt"

# ---- sentencepiece model and vocabulary ------------------------------------------------------
SPM_TIME=null
if [ -z "${SPM_MODEL:-}" ]; then
    SPM_MODEL="$PEERS_DATA/scale/$(basename "$CORPUS").spm.model"
    if [ ! -f "$SPM_MODEL" ]; then
        peers_nmt_py "$REPO"
        "$NMT_PY" "$PB" run --json "$SPM_MODEL.run.json" --log "$SPM_MODEL.log" -- "$NMT_PY" -c '
import sys, pathlib
from nmt.config import load_config
from nmt.data import iter_side
from nmt.tokenizer import build_tokenizer
prefix, config, out = sys.argv[1:]
cfg = load_config(config, ["tokenizer.model_file=null", f"data.train.src={prefix}.de", f"data.train.tgt={prefix}.en"])
sides = [iter_side(cfg.data.train[0], "data.train", side) for side in ("src", "tgt")]
pathlib.Path(out).write_bytes(build_tokenizer(cfg.tokenizer, *sides, print).protos()["joint"])
' "$CORPUS" "$HERE/nmt_m1.yaml" "$SPM_MODEL"
    fi
    SPM_TIME="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["wall_s"])' "$SPM_MODEL.run.json")"
fi
VOCAB="$RESULTS/onmt_scale_${TAG}_vocab.txt"
"$PY" "$PB" spm-vocab --spm "$SPM_MODEL" --out "$VOCAB"

# ---- config: onmt_m1.yaml on the raw corpus ---------------------------------------------------
# No validation set; num_workers is dropped so OpenNMT-py's default applies. filtertoolong keeps
# targets of at most tgt_seq_length - 2 pieces (room for <s> </s>): 102 keeps the pairs of up to
# 100 pieces per side, nmt's data.max_len 100.
RUN="$PEERS_DATA/runs/onmt_scale_$TAG"
CFG="${OUT}_train.yaml"
# shellcheck disable=SC2086
"$PY" "$PB" override --drop data.valid --drop num_workers "$HERE/onmt_m1.yaml" "$CFG" \
    save_data="$RUN/data" save_model="$RUN/model" src_vocab="$VOCAB" tgt_vocab="$VOCAB" \
    data.corpus_1.path_src="$CORPUS.de" data.corpus_1.path_tgt="$CORPUS.en" \
    "data.corpus_1.transforms=[sentencepiece, filtertoolong]" \
    src_subword_model="$SPM_MODEL" tgt_subword_model="$SPM_MODEL" \
    src_seq_length=100 tgt_seq_length=102 \
    train_steps="$STEPS" save_checkpoint_steps="$STEPS" report_every=1 \
    valid_steps=100000000 model_dtype=fp32 ${ONMT_EXTRA:-}

# ---- training ---------------------------------------------------------------------------------
peers_train_run "$RUN" || exit 0
"$PY" "$PB" run --poll 0.2 --no-pss --json "${OUT}_train.run.json" --log "${OUT}_train.log" -- \
    "$VENV/bin/onmt_train" -config "$CFG"
"$PY" "$PB" train-stats --toolkit onmt --log "${OUT}_train.log" --run "${OUT}_train.run.json" \
    --warmup "$WARMUP" --batch 64 --out "${OUT}_train.json" \
    --field corpus="$CORPUS" --field corpus_lines="$(wc -l < "$CORPUS.de")" \
    --field spm_model="$SPM_MODEL" --field spm_train_s="$SPM_TIME" > /dev/null
"$PY" "$PB" scale-table "${OUT}_train.json" | tee "${OUT}_table.md"
