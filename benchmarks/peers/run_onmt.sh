#!/usr/bin/env bash
# OpenNMT-py 3.5.1 baseline on CPU: model M1 (onmt_m1.yaml) on Multi30k de->en.
#
#   bash benchmarks/peers/run_onmt.sh
#
# 1. installs the venv $PEERS_ENV/onmt if missing (common.sh: peers_onmt_venv)
# 2. prepares the data if missing (prepare_data.sh)
# 3. trains STEPS updates (batch 64 sentences), reporting every step, and
#    derives time-to-first-step, throughput after WARMUP steps and peak memory
# 4. translates test_2016_flickr with beam 5 and greedy (timed) + BLEU
# Results: $RESULTS/onmt_*.json and logs next to them.
#
# Env: PEERS_ENV ($HOME/.cache/nmt-peers/env) PEERS_DATA ($HOME/.cache/nmt-peers/data)
#      RESULTS ($PEERS_DATA/results) STEPS (500) WARMUP (20)
#      ONMT_EXTRA ("")  extra key=value overrides of onmt_m1.yaml, e.g.
#                       "num_workers=0 bucket_size=32768"; TAG (cpu) names the run
#      SMOKE=1 / TEST_LINES=N: translate only the first 20 / N test sentences (common.sh)
#      SKIP_TRANSLATE=1: train only; SKIP_TRAIN=1: translate with the run of an earlier call (same TAG)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
peers_driver_defaults
peers_onmt_venv
[ -f "$SP/train.de" ] || PEERS_ENV="$PEERS_ENV" PEERS_DATA="$PEERS_DATA" bash "$HERE/prepare_data.sh"
SPM_PY="$PEERS_ENV/spm/bin/python"

mkdir -p "$RESULTS"
peers_test_set
RUN="$PEERS_DATA/runs/onmt_$TAG"
CFG="$RESULTS/onmt_${TAG}_train.yaml"
# shellcheck disable=SC2086
"$PY" "$PB" override "$HERE/onmt_m1.yaml" "$CFG" \
    save_data="$RUN/data" save_model="$RUN/model" \
    src_vocab="$SP/vocab.txt" tgt_vocab="$SP/vocab.txt" \
    data.corpus_1.path_src="$SP/train.de" data.corpus_1.path_tgt="$SP/train.en" \
    data.valid.path_src="$SP/val.de" data.valid.path_tgt="$SP/val.en" \
    train_steps="$STEPS" save_checkpoint_steps="$STEPS" report_every=1 \
    valid_steps=100000000 model_dtype=fp32 ${ONMT_EXTRA:-}

if peers_train_run "$RUN"; then
    # ---- training: throughput, time to first step, peak RSS -------------------
    "$PY" "$PB" run --json "$RESULTS/onmt_${TAG}_train.run.json" --log "$RESULTS/onmt_${TAG}_train.log" -- \
        "$VENV/bin/onmt_train" -config "$CFG"
    "$PY" "$PB" train-stats --toolkit onmt --log "$RESULTS/onmt_${TAG}_train.log" \
        --run "$RESULTS/onmt_${TAG}_train.run.json" --warmup "$WARMUP" --batch 64 \
        --stats "$SP/stats.tsv" --out "$RESULTS/onmt_${TAG}_train.json"
fi

[ "${SKIP_TRANSLATE:-0}" = 1 ] && exit 0
# ---- translation of test_2016 (1000 sentences; see SMOKE): beam 5 and greedy
CKPT="$RUN/model_step_${STEPS}.pt"
for beam in 5 1; do
    name="onmt_${TAG}_test_beam$beam"
    "$PY" "$PB" run --json "$RESULTS/$name.run.json" --log "$RESULTS/$name.log" -- \
        "$VENV/bin/onmt_translate" -model "$CKPT" -src "$TEST_SP_DE" \
        -output "$RESULTS/$name.pieces" -beam_size "$beam" -batch_size 64 -batch_type sents \
        -max_length 100 -max_length_ratio 0 -length_penalty none -report_time
    "$PY" "$PB" trans-stats --toolkit onmt --what "$TEST_WHAT beam=$beam batch=64 sents" \
        --run "$RESULTS/$name.run.json" --hyp "$RESULTS/$name.pieces" \
        --toolkit-log "$RESULTS/$name.log" --out "$RESULTS/$name.json"
    "$SPM_PY" "$PB" bleu --hyp "$RESULTS/$name.pieces" --ref "$TEST_REF" \
        --spm "$SP/spm.bpe8000.model" --detok-out "$RESULTS/$name.detok" --out "$RESULTS/$name.bleu.json"
done
"$PY" "$PB" table --dir "$RESULTS" --tag "$TAG" --toolkits onmt
