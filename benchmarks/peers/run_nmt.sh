#!/usr/bin/env bash
# nmt (this repository) on CPU: model M1 (nmt_m1.yaml) on Multi30k de->en, measured exactly like
# run_joey.sh / run_onmt.sh measure the peers.
#
#   bash benchmarks/peers/run_nmt.sh
#
# 1. uses the repository's code (PYTHONPATH=<repo>) with NMT_PY: the repository's .venv if it
#    exists, else a venv $PEERS_ENV/nmt built from pyproject.toml (torch 2.13.0 CPU wheel first)
# 2. prepares the data if missing (prepare_data.sh) and reuses its sentencepiece model
#    ($PEERS_DATA/sp/spm.bpe8000.model) through tokenizer.model_file; nmt reads the RAW Multi30k
#    files and applies that model itself, so it trains on the same pieces as the peers
# 3. trains STEPS updates of 64 sentences, logging every LOG_EVERY updates, and derives
#    time-to-first-step, throughput after WARMUP steps (mean of the logged windows) and peak memory
# 4. translates test_2016_flickr with beam 5 and greedy (no length penalty, at most 100
#    pieces), timing both, and scores BLEU with the peers' sacrebleu call on nmt's (already
#    detokenized) output; nmt-eval's report (BLEU, chrF, TER) is written next to it
# Results: $RESULTS/nmt_${TAG}_*.json and logs next to them.
#
# Env: PEERS_ENV ($HOME/.cache/nmt-peers/env) PEERS_DATA ($HOME/.cache/nmt-peers/data)
#      RESULTS ($PEERS_DATA/results) STEPS (500) WARMUP (20) TAG (cpu) names the run
#      LOG_EVERY (1)  train.log_every_steps (the peers log every step on CPU too)
#      NMT_EXTRA ("")  extra key=value overrides for nmt-train, e.g. "train.amp=bf16"
#      NMT_TRANSLATE_EXTRA ("")  extra nmt-translate options, e.g. "--max-tokens 2000"
#      NMT_PY (see 1.)  SMOKE=1 / TEST_LINES=N: translate only the first 20 / N test sentences
#      SKIP_TRANSLATE=1: train only; SKIP_TRAIN=1: translate with the run of an earlier call (same TAG)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
peers_driver_defaults
LOG_EVERY="${LOG_EVERY:-1}"
RAW="$PEERS_DATA/raw"

peers_nmt_py "$REPO"
nmt_cli() {  # nmt_cli train|translate|eval ARGS...: the console scripts, without needing them installed
    local entry="$1"
    shift
    "$NMT_PY" -c "import sys; from nmt.cli import ${entry}_main; sys.exit(${entry}_main())" "$@"
}
[ -f "$SP/spm.bpe8000.model" ] && [ -f "$RAW/train.de" ] \
    || PEERS_ENV="$PEERS_ENV" PEERS_DATA="$PEERS_DATA" bash "$HERE/prepare_data.sh"
SPM_PY="$PEERS_ENV/spm/bin/python"

mkdir -p "$RESULTS"
peers_test_set
RUN="$PEERS_DATA/runs/nmt_$TAG"
if peers_train_run "$RUN"; then
    # ---- training: throughput, time to first step, peak RSS -------------------
    # shellcheck disable=SC2086
    "$NMT_PY" "$PB" run --json "$RESULTS/nmt_${TAG}_train.run.json" --log "$RESULTS/nmt_${TAG}_train.log" -- \
        "$NMT_PY" -c "import sys; from nmt.cli import train_main; sys.exit(train_main())" \
        --config "$HERE/nmt_m1.yaml" \
        run_dir="$RUN" tokenizer.model_file="$SP/spm.bpe8000.model" \
        data.train.src="$RAW/train.de" data.train.tgt="$RAW/train.en" data.valid=null \
        data.test.src="$RAW/test_2016_flickr.de" data.test.tgt="$RAW/test_2016_flickr.en" \
        train.device=cpu train.max_steps="$STEPS" train.max_sentences=64 train.max_tokens=100000 \
        train.early_stopping_patience=0 train.log_every_steps="$LOG_EVERY" train.eval_every_steps=100000000 \
        ${NMT_EXTRA:-}
    cp "$RUN/config.resolved.yaml" "$RESULTS/nmt_${TAG}_train.yaml"
    # train.log (the trainer's own log file) holds the same lines as the console log
    "$NMT_PY" "$PB" train-stats --toolkit nmt --log "$RUN/train.log" \
        --run "$RESULTS/nmt_${TAG}_train.run.json" --warmup "$WARMUP" --batch 64 \
        --stats "$SP/stats.tsv" --out "$RESULTS/nmt_${TAG}_train.json"
fi

[ "${SKIP_TRANSLATE:-0}" = 1 ] && exit 0
# ---- translation of test_2016 (1000 sentences; see SMOKE): beam 5 and greedy
for beam in 5 1; do
    name="nmt_${TAG}_test_beam$beam"
    # shellcheck disable=SC2086
    "$NMT_PY" "$PB" run --json "$RESULTS/$name.run.json" --log "$RESULTS/$name.log" -- \
        "$NMT_PY" -c "import sys; from nmt.cli import translate_main; sys.exit(translate_main())" \
        --model "$RUN" --checkpoint last --input "$TEST_RAW_DE" --output "$RESULTS/$name.detok" \
        --beam "$beam" --length-penalty 0 --max-len-a 0 --max-len-b 100 --device cpu \
        ${NMT_TRANSLATE_EXTRA:-}
    "$NMT_PY" "$PB" trans-stats --toolkit nmt \
        --what "$TEST_WHAT beam=$beam batches of decode.max_tokens${NMT_TRANSLATE_EXTRA:+ $NMT_TRANSLATE_EXTRA}" \
        --run "$RESULTS/$name.run.json" --hyp "$RESULTS/$name.detok" --spm "$SP/spm.bpe8000.model" \
        --toolkit-log "$RESULTS/$name.log" --out "$RESULTS/$name.json"
    # same scorer (sacrebleu 2.6.0 in the spm venv) and call as for the peers; no --spm: the
    # hypotheses are already detokenized text
    "$SPM_PY" "$PB" bleu --hyp "$RESULTS/$name.detok" --ref "$TEST_REF" --out "$RESULTS/$name.bleu.json"
    nmt_cli eval --hyp "$RESULTS/$name.detok" --ref "$TEST_REF" --json "$RESULTS/$name.nmt_eval.json" \
        > "$RESULTS/$name.nmt_eval.txt"
done
"$NMT_PY" "$PB" table --dir "$RESULTS" --tag "$TAG" --toolkits nmt
