#!/usr/bin/env bash
# Joey NMT 2.3.0 baseline on CPU: model M1 (joey_m1.yaml) on Multi30k de->en.
#
#   bash benchmarks/peers/run_joey.sh
#
# 1. installs the venv $PEERS_ENV/joey if missing (torch 2.13.0 CPU wheel, then
#    joeynmt 2.3.0 + importlib-metadata, versions pinned by joey_freeze.txt)
# 2. prepares the data if missing (prepare_data.sh)
# 3. trains STEPS updates (batch 64 sentences), logging every step, and derives
#    time-to-first-step, throughput after WARMUP steps and peak memory
# 4. translates test_2016_flickr (1000 sentences) with beam 5 and with greedy,
#    timing both, and scores BLEU (sacrebleu 13a on sentencepiece-decoded output)
# Results: $RESULTS/joey_${TAG}_*.json and logs next to them.
#
# Env: PEERS_ENV ($HOME/.cache/nmt-peers/env) PEERS_DATA ($HOME/.cache/nmt-peers/data)
#      RESULTS ($PEERS_DATA/results) STEPS (500) WARMUP (20) TAG (cpu) names the run
#      SMOKE=1 / TEST_LINES=N: translate only the first 20 / N test sentences (common.sh)
#      SKIP_TRAIN=1: translate with the run of an earlier call (same TAG)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
peers_driver_defaults
VENV="$PEERS_ENV/joey"
PY="$VENV/bin/python"

if ! "$PY" -c "import joeynmt.training, joeynmt.prediction" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch==2.13.0
    # joeynmt 2.3.0 imports importlib_metadata but does not declare it
    "$VENV/bin/pip" install -q -c "$HERE/joey_freeze.txt" joeynmt==2.3.0 importlib-metadata
fi
[ -f "$SP/train.de" ] || PEERS_ENV="$PEERS_ENV" PEERS_DATA="$PEERS_DATA" bash "$HERE/prepare_data.sh"
SPM_PY="$PEERS_ENV/spm/bin/python"

mkdir -p "$RESULTS"
peers_test_set
RUN="$PEERS_DATA/runs/joey_${TAG}"
CFG="$RESULTS/joey_${TAG}_train.yaml"
"$PY" "$PB" override "$HERE/joey_m1.yaml" "$CFG" \
    name=joey_${TAG} model_dir="$RUN/model" \
    data.train="$SP/train" data.dev="$SP/val" data.test="$SP/test" \
    data.src.voc_file="$SP/vocab.txt" data.trg.voc_file="$SP/vocab.txt" \
    use_cuda=false fp16=false \
    training.updates="$STEPS" training.logging_freq=1 training.validation_freq=100000000

if peers_train_run "$RUN"; then
    # ---- training: throughput, time to first step, peak RSS -------------------
    "$PY" "$PB" run --json "$RESULTS/joey_${TAG}_train.run.json" --log "$RESULTS/joey_${TAG}_train.log" -- \
        "$PY" -m joeynmt train "$CFG" --skip-test
    "$PY" "$PB" train-stats --toolkit joey --log "$RESULTS/joey_${TAG}_train.log" \
        --run "$RESULTS/joey_${TAG}_train.run.json" --warmup "$WARMUP" --batch 64 \
        --stats "$SP/stats.tsv" --out "$RESULTS/joey_${TAG}_train.json"
fi

# ---- translation of test_2016 (1000 sentences; see SMOKE): beam 5 and greedy
CKPT="$RUN/model/latest.ckpt"
for beam in 5 1; do
    name="joey_${TAG}_test_beam$beam"
    "$PY" "$PB" override "$CFG" "$RESULTS/$name.yaml" \
        testing.load_model="$CKPT" testing.beam_size="$beam"
    # `translate -o FILE` crashes in joeynmt 2.3.0 (args.n_best); hypotheses go to stdout
    "$PY" "$PB" run --json "$RESULTS/$name.run.json" -- bash -c \
        "'$PY' -m joeynmt translate '$RESULTS/$name.yaml' < '$TEST_SP_DE' > '$RESULTS/$name.pieces' 2> '$RESULTS/$name.log'"
    "$PY" "$PB" trans-stats --toolkit joey --what "$TEST_WHAT beam=$beam batch=64 sents" \
        --run "$RESULTS/$name.run.json" --hyp "$RESULTS/$name.pieces" \
        --toolkit-log "$RESULTS/$name.log" --out "$RESULTS/$name.json"
    "$SPM_PY" "$PB" bleu --hyp "$RESULTS/$name.pieces" --ref "$TEST_REF" \
        --spm "$SP/spm.bpe8000.model" --detok-out "$RESULTS/$name.detok" --out "$RESULTS/$name.bleu.json"
done
"$PY" "$PB" table --dir "$RESULTS" --tag "$TAG" --toolkits joey
