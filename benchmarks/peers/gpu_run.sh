#!/usr/bin/env bash
# Peer baselines (Joey NMT 2.3.0, OpenNMT-py 3.5.1) of model M1 on one GPU, and nmt (this
# repository, TOOLKITS=nmt) measured the same way.
#
# Run from the repository root (benchmarks/peers/whl and benchmarks/peers/data built beforehand
# by make_gpu_bundle.sh):
#     OUT=/some/dir bash benchmarks/peers/gpu_run.sh        # the peers; OUT [benchmarks/peers/out]
#     OUT=/some/dir TOOLKITS=nmt bash benchmarks/peers/gpu_run.sh   # nmt, same budgets
#
# The machine is expected to have python3 with torch (CUDA), sentencepiece,
# sacrebleu, tensorboard, pyyaml, tqdm, numpy, matplotlib, pandas ... and no
# network: everything else comes from peers/whl and is installed with
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
#         --upgrade --target /tmp/site benchmarks/peers/whl/*.whl   (PYTHONPATH=/tmp/site)
# nmt needs no wheel: it runs from the repository's working tree (PYTHONPATH=<repo>) with the
# machine's torch, sentencepiece, sacrebleu, pyyaml, tqdm, numpy, tensorboard, matplotlib.
# For each toolkit, independently (one failing does not stop the other):
#   train M1 with fp16 AMP for a wall budget (TRAIN_BUDGET_S, default 200 s
#   including start-up; then SIGINT), log throughput and peak GPU memory
#   (torch.cuda.max_memory_* via gpu_hooks/sitecustomize.py, and
#   nvidia-smi polling), translate test_2016 (1000 sentences) with beam 5
#   (timed), then greedy if time is left, and score BLEU (sacrebleu 13a on the
#   sentencepiece-decoded output). Working files (checkpoints, logs) go to $WORK;
#   $OUT receives only a few files (few files, so they travel back easily):
#   summary.md, results.json, logs.tgz (all logs/configs/hypotheses, no
#   checkpoints), env.txt, console.txt. The table is printed at the end.
#   The whole script keeps itself under TOTAL_BUDGET_S (565 s).
#
# Env switches (defaults in brackets):
#   OUT [<this folder>/out]  WORK [/tmp/peers_work]  USE_CUDA [1] (0 = CPU test mode: no CUDA, no fp16)
#   TOOLKITS ["joey onmt"] (any of joey onmt nmt; each extra toolkit shares TOTAL_BUDGET_S,
#   so run nmt in its own call to give it the peers' 200 s)  TRAIN_BUDGET_S [200]  TOTAL_BUDGET_S [565]
#   LOG_EVERY [100] WARMUP [200] (throughput window starts at this step)
#   CKPT_EVERY [500] (OpenNMT-py saves only every N steps; SIGINT loses the rest)
#   PYTHON [python3]  SITE [/tmp/site]  WHL_DIR [<this folder>/whl]  DATA_DIR [<this folder>/data]
#   NMT_EXTRA [""] extra key=value overrides for nmt's training (not train.amp: set here, fp16 then bf16; e.g. train.label_smoothing=0.2)
#   NMT_TRANSLATE_EXTRA [""] extra nmt-translate options (e.g. --max-tokens 32000)
#   NMT_ONE_BATCH [1] after nmt's beam-5 and greedy searches (decode.max_tokens batches, as on
#   CPU), time once more beam 5 with the whole test set in one batch (--max-tokens 10000000):
#   the GPU decode figure; the summary lists it below the table (0 = skip)
#   NMT_TIME_MARGIN_S [""] if set, nmt also gets train.max_time = its wall budget minus this, so it
#   ends by itself with a final checkpoint and a budget-driven schedule (NMT_EXTRA="train.schedule=
#   linear train.decay_fraction=0.2") finishes its decay; the SIGINT at the budget stays the hard stop
#   Pipeline check (e.g. USE_CUDA=0 on a CPU machine): MAX_STEPS [0 = none] stops training after
#   that many updates (and saves OpenNMT-py's checkpoint there); SMOKE=1 translates only the
#   first 20 test sentences (TEST_LINES=N: the first N), see common.sh
set -x
set -u
T0=$(date +%s)
ROOT="$(pwd)"
PEERS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$PEERS/../.." && pwd)"
OUT="${OUT:-$PEERS/out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="${WORK:-/tmp/peers_work}"
case "$(cd "$WORK" 2>/dev/null && pwd)" in
    /|"$ROOT"|"$PEERS"|"$REPO"|"$HOME"|"$OUT") echo "WORK=$WORK would be wiped: choose another"; exit 2;;
esac
rm -rf "$WORK"
mkdir -p "$WORK"
exec > >(tee "$OUT/console.txt") 2>&1
PY="${PYTHON:-python3}"
SITE="${SITE:-/tmp/site}"
WHL_DIR="${WHL_DIR:-$PEERS/whl}"
DATA="${DATA_DIR:-$PEERS/data}"
USE_CUDA="${USE_CUDA:-1}"
TOOLKITS="${TOOLKITS:-joey onmt}"
TRAIN_BUDGET_S="${TRAIN_BUDGET_S:-200}"
TOTAL_BUDGET_S="${TOTAL_BUDGET_S:-565}"
POST_RESERVE_S="${POST_RESERVE_S:-80}"   # kept per toolkit for checkpoint + translation + BLEU
LOG_EVERY="${LOG_EVERY:-100}"
WARMUP="${WARMUP:-200}"
CKPT_EVERY="${CKPT_EVERY:-500}"
PB="$PEERS/peerbench.py"
SP="$DATA/sp"
MAX_STEPS="${MAX_STEPS:-0}"
MAX_UPDATES=100000000
if [ "$MAX_STEPS" -gt 0 ]; then
    MAX_UPDATES=$MAX_STEPS
    [ "$MAX_STEPS" -lt "$CKPT_EVERY" ] && CKPT_EVERY=$MAX_STEPS
fi
# test set (all 1000 sentences unless SMOKE / TEST_LINES): TEST_SP_DE, TEST_RAW_DE, TEST_REF
# shellcheck source=common.sh
. "$PEERS/common.sh"
PEERS_DATA="$DATA" RESULTS="$WORK" peers_test_set
REF="$TEST_REF"
if [ "$USE_CUDA" = 1 ]; then FP16=true; else FP16=false; fi

remaining() { echo $(( TOTAL_BUDGET_S - ($(date +%s) - T0) )); }

# ---------------------------------------------------------------- install
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHL_DIR"/*.whl > "$WORK/pip_install.log" 2>&1 \
    || { echo "WARNING: pip install failed:"; tail -n 20 "$WORK/pip_install.log"; }
export PYTHONPATH="$SITE:$PEERS/gpu_hooks${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONSAFEPATH=1  # `python -c` must not import an nmt/ from the current directory before $REPO's
# torch>=2.6 loads checkpoints with weights_only=True; OpenNMT-py 3.5.1 checkpoints
# hold an argparse.Namespace, so allow the full unpickler (our own files only).
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
export PYTHONUNBUFFERED=1
(nvidia-smi || true) > "$WORK/nvidia-smi.txt" 2>&1
"$PY" - > "$OUT/env.txt" 2>&1 <<'EOF'
import sys, importlib.metadata as md
import torch
print("python", sys.version.split()[0])
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
for d in ("joeynmt", "OpenNMT-py", "pyonmttok", "sentencepiece", "sacrebleu", "numpy", "PyYAML", "tqdm",
          "tensorboard", "matplotlib"):
    try:
        print(d, md.version(d))
    except md.PackageNotFoundError:
        print(d, "MISSING")
EOF
cat "$OUT/env.txt"

n_left=$(echo "$TOOLKITS" | wc -w)
train_budget() {
    local r=$(remaining)
    local b=$(( r / n_left - POST_RESERVE_S ))
    [ "$b" -gt "$TRAIN_BUDGET_S" ] && b=$TRAIN_BUDGET_S
    [ "$b" -lt 30 ] && b=30
    echo "$b"
}
cap() {  # cap WANTED by what is left minus RESERVE
    local want=$1 reserve=$2 r
    r=$(( $(remaining) - reserve ))
    [ "$r" -lt "$want" ] && want=$r
    [ "$want" -lt 5 ] && want=5
    echo "$want"
}

translate_and_score() {  # toolkit name beam budget cmd... (cmd writes $WORK/$name.pieces)
    local tk=$1 name=$2 beam=$3 budget=$4; shift 4
    "$PY" "$PB" run --json "$WORK/$name.run.json" --budget "$budget" --grace 5 -- "$@"
    "$PY" "$PB" trans-stats --toolkit "$tk" --what "$TEST_WHAT beam=$beam batch=64 sents ${WHAT_EXTRA:-}" \
        --run "$WORK/$name.run.json" --hyp "$WORK/$name.pieces" \
        --toolkit-log "$WORK/$name.log" --out "$WORK/$name.json"
    "$PY" "$PB" bleu --hyp "$WORK/$name.pieces" --ref "$REF" --spm "$SP/spm.bpe8000.model" \
        --detok-out "$WORK/$name.detok" --out "$WORK/$name.bleu.json"
}

# ------------------------------------------------------------------ Joey NMT
run_joey() {
    local d="$WORK/joey" cfg="$WORK/joey_gpu_train.yaml" budget
    rm -rf "$d"; mkdir -p "$d"
    # Joey 2.3.0 clips gradients before GradScaler.unscale_ (it never unscales),
    # i.e. it would clip the *scaled* gradients under fp16: clipping is switched
    # off for its fp16 run (kept at 5.0 in fp32 / CPU mode).
    local clip=5.0
    [ "$FP16" = true ] && clip=null
    "$PY" "$PB" override "$PEERS/joey_m1.yaml" "$cfg" \
        name=joey_gpu model_dir="$d/model" \
        data.train="$SP/train" data.dev="$SP/val" data.test="$SP/test" \
        data.src.voc_file="$SP/vocab.txt" data.trg.voc_file="$SP/vocab.txt" \
        use_cuda="$([ "$USE_CUDA" = 1 ] && echo true || echo false)" fp16="$FP16" \
        training.clip_grad_norm="$clip" training.updates="$MAX_UPDATES" training.epochs=1000 \
        training.logging_freq="$LOG_EVERY" training.validation_freq=$(( LOG_EVERY * 1000000 )) || return 1
    budget=$(train_budget)
    PEERS_CUDA_MEM_OUT="$WORK/joey_gpu_train.cudamem.json" \
    "$PY" "$PB" run --json "$WORK/joey_gpu_train.run.json" --log "$WORK/joey_gpu_train.log" \
        --budget "$budget" --grace 60 -- "$PY" -m joeynmt train "$cfg" --skip-test
    "$PY" "$PB" train-stats --toolkit joey --log "$WORK/joey_gpu_train.log" \
        --run "$WORK/joey_gpu_train.run.json" --warmup "$WARMUP" --batch 64 \
        --stats "$SP/stats.tsv" --cuda-mem "$WORK/joey_gpu_train.cudamem.json" \
        --out "$WORK/joey_gpu_train.json"
    [ -e "$d/model/latest.ckpt" ] || { echo "joey: no checkpoint"; return 1; }
    local beam name
    for beam in 5 1; do
        name="joey_gpu_test_beam$beam"
        if [ "$beam" = 1 ] && [ "$(remaining)" -lt $(( 40 + (n_left - 1) * (TRAIN_BUDGET_S / 2) )) ]; then
            echo "joey: skipping greedy (time)"; continue
        fi
        # joeynmt 2.3.0 beam search + fp16 + init_hidden "bridge" crashes on CUDA
        # (search.py applies the fp32 bridge layer to the fp16 encoder state outside
        # autocast: "mat1 and mat2 must have the same dtype"), so beam search runs
        # in fp32; greedy (bridge inside the autocast region) runs in fp16.
        local tr_fp16="$FP16"
        [ "$beam" -gt 1 ] && tr_fp16=false
        "$PY" "$PB" override "$cfg" "$WORK/$name.yaml" fp16="$tr_fp16" \
            testing.load_model="$d/model/latest.ckpt" testing.beam_size="$beam" || continue
        # `translate -o FILE` crashes in joeynmt 2.3.0 (args.n_best): use stdout
        PEERS_CUDA_MEM_OUT="$WORK/$name.cudamem.json" WHAT_EXTRA="fp16=$tr_fp16" \
        translate_and_score joey "$name" "$beam" "$(cap 120 $(( (n_left - 1) * 150 )))" \
            bash -c "'$PY' -m joeynmt translate '$WORK/$name.yaml' < '$TEST_SP_DE' > '$WORK/$name.pieces' 2> '$WORK/$name.log'"
    done
}

# --------------------------------------------------------------- OpenNMT-py
run_onmt() {
    local d="$WORK/onmt" cfg="$WORK/onmt_gpu_train.yaml" budget gpu_opts=""
    rm -rf "$d"; mkdir -p "$d"
    [ "$USE_CUDA" = 1 ] && gpu_opts="gpu_ranks=[0] world_size=1"
    # shellcheck disable=SC2086
    "$PY" "$PB" override "$PEERS/onmt_m1.yaml" "$cfg" \
        save_data="$d/data" save_model="$d/model" \
        src_vocab="$SP/vocab.txt" tgt_vocab="$SP/vocab.txt" \
        data.corpus_1.path_src="$SP/train.de" data.corpus_1.path_tgt="$SP/train.en" \
        data.valid.path_src="$SP/val.de" data.valid.path_tgt="$SP/val.en" \
        model_dtype="$([ "$FP16" = true ] && echo fp16 || echo fp32)" \
        train_steps="$MAX_UPDATES" valid_steps=100000000 save_checkpoint_steps="$CKPT_EVERY" \
        keep_checkpoint=2 report_every="$LOG_EVERY" $gpu_opts || return 1
    budget=$(train_budget)
    PEERS_CUDA_MEM_OUT="$WORK/onmt_gpu_train.cudamem.json" \
    "$PY" "$PB" run --json "$WORK/onmt_gpu_train.run.json" --log "$WORK/onmt_gpu_train.log" \
        --budget "$budget" --grace 20 --signal-main-only -- "$PY" -m onmt.bin.train -config "$cfg"
    "$PY" "$PB" train-stats --toolkit onmt --log "$WORK/onmt_gpu_train.log" \
        --run "$WORK/onmt_gpu_train.run.json" --warmup "$WARMUP" --batch 64 \
        --stats "$SP/stats.tsv" --cuda-mem "$WORK/onmt_gpu_train.cudamem.json" \
        --out "$WORK/onmt_gpu_train.json"
    # newest checkpoint that loads (a SIGINT during torch.save can leave a torn file)
    local ckpt="" c
    for c in $(ls -1 "$d"/model_step_*.pt 2>/dev/null | sort -V -r); do
        if "$PY" -c "import sys, torch; torch.load(sys.argv[1], map_location='cpu', weights_only=False)" "$c"; then
            ckpt="$c"; break
        fi
    done
    [ -n "$ckpt" ] || { echo "onmt: no usable checkpoint"; return 1; }
    echo "$ckpt" > "$WORK/onmt_gpu_checkpoint_used.txt"
    local beam name tr_opts="" tr_prec=fp32
    [ "$USE_CUDA" = 1 ] && { tr_opts="-gpu 0 -precision fp16"; tr_prec=fp16; }
    for beam in 5 1; do
        name="onmt_gpu_test_beam$beam"
        if [ "$beam" = 1 ] && [ "$(remaining)" -lt $(( 40 + (n_left - 1) * (TRAIN_BUDGET_S / 2) )) ]; then
            echo "onmt: skipping greedy (time)"; continue
        fi
        # shellcheck disable=SC2086
        PEERS_CUDA_MEM_OUT="$WORK/$name.cudamem.json" WHAT_EXTRA="precision=$tr_prec" \
        translate_and_score onmt "$name" "$beam" "$(cap 120 $(( (n_left - 1) * 150 )))" \
            bash -c "'$PY' -m onmt.bin.translate -model '$ckpt' -src '$TEST_SP_DE' \
                -output '$WORK/$name.pieces' -beam_size $beam -batch_size 64 -batch_type sents \
                -max_length 100 -max_length_ratio 0 -length_penalty none -report_time $tr_opts \
                > '$WORK/$name.log' 2>&1"
    done
}

# ------------------------------------------------------- nmt (this repository)
run_nmt() {
    local d="$WORK/nmt" budget device=cpu amp=off nmt_pp="$REPO:$PYTHONPATH" train_amp time_opt
    [ "$USE_CUDA" = 1 ] && { device=cuda; amp=fp16; }
    # the config is passed on the command line (nmt_m1.yaml + overrides, like run_nmt.sh); nmt
    # reads the raw text and applies the shared sentencepiece model itself. A SIGINT (budget)
    # makes nmt finish the current update, save checkpoints/last.pt and exit. fp16 training has
    # never run on a GPU here: if it fails, bf16 gets what is left of the budget.
    for train_amp in $amp $([ "$amp" = fp16 ] && echo bf16); do
        rm -rf "$d"
        budget=$(train_budget)
        time_opt=""
        if [ -n "${NMT_TIME_MARGIN_S:-}" ]; then
            if [ "$budget" -gt "$NMT_TIME_MARGIN_S" ]; then
                time_opt="train.max_time=$(( budget - NMT_TIME_MARGIN_S ))"
            else
                echo "nmt: NMT_TIME_MARGIN_S=$NMT_TIME_MARGIN_S leaves nothing of a $budget s budget; no train.max_time, the SIGINT stops it"
            fi
        fi
        # shellcheck disable=SC2086
        PEERS_CUDA_MEM_OUT="$WORK/nmt_gpu_train.cudamem.json" \
        "$PY" "$PB" run --json "$WORK/nmt_gpu_train.run.json" --log "$WORK/nmt_gpu_train.log" \
            --budget "$budget" --grace 60 -- env PYTHONPATH="$nmt_pp" "$PY" -c \
            "import sys; from nmt.cli import train_main; sys.exit(train_main())" \
            --config "$PEERS/nmt_m1.yaml" run_dir="$d" tokenizer.model_file="$SP/spm.bpe8000.model" \
            data.train.src="$DATA/raw/train.de" data.train.tgt="$DATA/raw/train.en" data.valid=null \
            train.device="$device" train.amp="$train_amp" train.max_steps="$MAX_UPDATES" \
            train.max_sentences=64 train.max_tokens=100000 train.early_stopping_patience=0 \
            train.log_every_steps="$LOG_EVERY" train.eval_every_steps=100000000 $time_opt ${NMT_EXTRA:-} && break
        [ "$train_amp" = fp16 ] && echo "nmt: fp16 training failed; again with bf16"
    done
    amp=$train_amp  # search in the training precision (fp16 on the GPU, like OpenNMT-py's -precision fp16)
    cp "$d/config.resolved.yaml" "$WORK/nmt_gpu_train.yaml" 2>/dev/null
    "$PY" "$PB" train-stats --toolkit nmt --log "$d/train.log" \
        --run "$WORK/nmt_gpu_train.run.json" --warmup "$WARMUP" --batch 64 \
        --stats "$SP/stats.tsv" --cuda-mem "$WORK/nmt_gpu_train.cudamem.json" \
        --out "$WORK/nmt_gpu_train.json"
    [ -e "$d/checkpoints/last.pt" ] || { echo "nmt: no checkpoint"; return 1; }
    local beam prec
    for beam in 5 1; do
        if [ "$beam" = 1 ] && [ "$(remaining)" -lt $(( 40 + (n_left - 1) * (TRAIN_BUDGET_S / 2) )) ]; then
            echo "nmt: skipping greedy (time)"; continue
        fi
        # fp16 search has never run on a GPU here: if it fails, the same search in fp32 keeps the
        # figures of a scarce GPU lease (the table says which precision ran)
        for prec in $amp $([ "$amp" = off ] || echo off); do
            # shellcheck disable=SC2086
            nmt_search "nmt_gpu_test_beam$beam" "$beam" "$prec" ${NMT_TRANSLATE_EXTRA:-} && break
            [ "$prec" = off ] || echo "nmt: beam $beam search with --amp $prec failed; again in fp32"
        done
        nmt_scores "nmt_gpu_test_beam$beam" "$beam" "$prec" "${NMT_TRANSLATE_EXTRA:-}"
    done
    # decode.max_tokens (about 90 sentences per beam-5 batch) suits a CPU; a GPU decodes fastest
    # with the whole test set in one batch, which is what the decode target (7,000 sentences/s) needs
    if [ "${NMT_ONE_BATCH:-1}" = 1 ] && [ "$(remaining)" -ge $(( 30 + (n_left - 1) * (TRAIN_BUDGET_S / 2) )) ]; then
        nmt_search nmt_gpu_test_beam5_onebatch 5 "$prec" --max-tokens 10000000
        nmt_scores nmt_gpu_test_beam5_onebatch 5 "$prec" "--max-tokens 10000000"
    fi
}

# called from run_nmt, whose locals device, nmt_pp and n_left they read
nmt_search() {  # nmt_search NAME BEAM PRECISION [nmt-translate options]: test_2016 -> $WORK/NAME.detok, timed
    local name="$1" beam="$2" prec="$3"
    shift 3
    # output is detokenized text
    PEERS_CUDA_MEM_OUT="$WORK/$name.cudamem.json" \
    "$PY" "$PB" run --json "$WORK/$name.run.json" --log "$WORK/$name.log" \
        --budget "$(cap 120 $(( (n_left - 1) * 150 )))" --grace 5 -- env PYTHONPATH="$nmt_pp" "$PY" -c \
        "import sys; from nmt.cli import translate_main; sys.exit(translate_main())" \
        --model "$WORK/nmt" --checkpoint last --input "$TEST_RAW_DE" \
        --output "$WORK/$name.detok" --beam "$beam" --length-penalty 0 --max-len-a 0 --max-len-b 100 \
        --device "$device" --amp "$prec" "$@"
}

nmt_scores() {  # nmt_scores NAME BEAM PRECISION OPTIONS: speed and BLEU of nmt_search NAME
    local name="$1" beam="$2" prec="$3" opts="$4"
    "$PY" "$PB" trans-stats --toolkit nmt --what "$TEST_WHAT beam=$beam batches of decode.max_tokens precision=${prec/off/fp32}${opts:+ $opts}" \
        --run "$WORK/$name.run.json" --hyp "$WORK/$name.detok" --spm "$SP/spm.bpe8000.model" \
        --toolkit-log "$WORK/$name.log" --out "$WORK/$name.json"
    "$PY" "$PB" bleu --hyp "$WORK/$name.detok" --ref "$REF" --out "$WORK/$name.bleu.json"
}

for tk in $TOOLKITS; do
    echo "=== $tk: start at +$(( $(date +%s) - T0 ))s, remaining $(remaining)s"
    ( "run_$tk" ) > "$WORK/$tk.console" 2>&1
    rc=$?
    echo "=== $tk: exit $rc at +$(( $(date +%s) - T0 ))s (full trace: $tk.console in logs.tgz)"
    [ "$rc" = 0 ] || tail -n 25 "$WORK/$tk.console"
    n_left=$(( n_left - 1 ))
done

set +x
echo
echo "total wall: $(( $(date +%s) - T0 )) s"
# shellcheck disable=SC2086
"$PY" "$PB" summary --dir "$WORK" --mode gpu --toolkits $TOOLKITS | tee "$OUT/summary.md"
"$PY" "$PB" merge --dir "$WORK" --out "$OUT/results.json"
tar -C "$WORK" -czf "$OUT/logs.tgz" --exclude='*.pt' --exclude='*.ckpt' --exclude='*/data' . \
    || echo "WARNING: could not pack logs"
ls -la "$OUT"
