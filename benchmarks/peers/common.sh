# Sourced by run_joey.sh, run_onmt.sh, run_onmt_scale.sh, run_nmt.sh, run_all.sh and translate_rounds.sh
# (not run by itself).
#
# peers_driver_defaults: the drivers' settings (PEERS_ENV, PEERS_DATA, RESULTS, STEPS, WARMUP,
#   TAG; their defaults are in the drivers' headers) and paths: PB (peerbench.py), SP (the
#   sentencepiece-encoded data).
#
# peers_onmt_venv: OpenNMT-py 3.5.1 in $PEERS_ENV/onmt, installed if missing; sets VENV and PY.
#   opennmt-py 3.5.1 pins torch<2.3, so: torch 2.13.0 CPU wheel, then `pip install --no-deps
#   opennmt-py==3.5.1`, then by hand the dependencies its import chain needs (onmt.transforms
#   imports every transform module at start-up: pyonmttok, spacy, pyahocorasick, rapidfuzz,
#   fasttext). Left out: ctranslate2, flask, waitress (converter / REST server only). Versions:
#   onmt_freeze.txt. torch>=2.6 defaults torch.load(weights_only=True), which cannot read
#   OpenNMT-py checkpoints (argparse.Namespace inside), so TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 is
#   exported (no code change).
#
# peers_nmt_py REPO: NMT_PY (unless set) = REPO's .venv, else a venv $PEERS_ENV/nmt with the
#   dependencies of pyproject.toml; exports PYTHONPATH=REPO (and PYTHONSAFEPATH=1) so the working tree's code runs.
#
# peers_machine_lines REPO: date, host, CPU, load and REPO's commit, for a run's env file.
#
# peers_train_run RUN: whether the driver trains. Normally yes, into an emptied RUN; with
#   SKIP_TRAIN=1 no: RUN must hold the trained run of an earlier call with the same TAG, and the
#   driver only translates with it (translate_rounds.sh times translation this way).
#
# peers_test_set: which test sentences the drivers translate and score.
#   Default: all of test_2016_flickr (1000 sentences).
#   TEST_LINES=N: only its first N sentences; SMOKE=1 means TEST_LINES=20 unless set.
# Needs SP, PEERS_DATA and RESULTS; sets
#   TEST_SP_DE   source, sentencepiece pieces (Joey NMT, OpenNMT-py)
#   TEST_RAW_DE  source, raw text (nmt applies sentencepiece itself)
#   TEST_REF     raw English reference (BLEU)
#   TEST_WHAT    label for the result files, e.g. "test_2016" or "test_2016[:20]"
PEERS_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

peers_driver_defaults() {
    PEERS_ENV="${PEERS_ENV:-$HOME/.cache/nmt-peers/env}"
    PEERS_DATA="${PEERS_DATA:-$HOME/.cache/nmt-peers/data}"
    RESULTS="${RESULTS:-$PEERS_DATA/results}"
    STEPS="${STEPS:-500}"
    WARMUP="${WARMUP:-20}"
    TAG="${TAG:-cpu}"
    PB="$PEERS_HERE/peerbench.py"
    SP="$PEERS_DATA/sp"
}

peers_test_set() {
    local n="${TEST_LINES:-}"
    if [ -z "$n" ] && [ "${SMOKE:-0}" = 1 ]; then n=20; fi
    TEST_SP_DE="$SP/test.de"
    TEST_RAW_DE="$PEERS_DATA/raw/test_2016_flickr.de"
    TEST_REF="$PEERS_DATA/raw/test_2016_flickr.en"
    TEST_WHAT="test_2016"
    if [ -n "$n" ] && [ "$n" != 0 ]; then
        local d="$RESULTS/test_first$n"
        mkdir -p "$d"
        head -n "$n" "$TEST_SP_DE" > "$d/test.sp.de"
        head -n "$n" "$TEST_RAW_DE" > "$d/test.de"
        head -n "$n" "$TEST_REF" > "$d/test.en"
        TEST_SP_DE="$d/test.sp.de"
        TEST_RAW_DE="$d/test.de"
        TEST_REF="$d/test.en"
        TEST_WHAT="test_2016[:$n]"
    fi
}

peers_train_run() {
    local run="$1"
    if [ "${SKIP_TRAIN:-0}" = 1 ]; then
        [ -d "$run" ] || { echo "SKIP_TRAIN=1 but $run does not exist: train it first (same TAG, without SKIP_TRAIN)" >&2; exit 1; }
        return 1
    fi
    rm -rf "$run"
    mkdir -p "$run"
}

peers_machine_lines() {
    local repo="$1"
    echo "date $(date -Is)"
    echo "host $(uname -srm); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "repo $(git -C "$repo" rev-parse --short HEAD 2>/dev/null)$(git -C "$repo" status --porcelain -- nmt 2>/dev/null | grep -q . && echo ' (nmt/ has uncommitted changes)')"
}

peers_onmt_venv() {
    VENV="$PEERS_ENV/onmt"
    PY="$VENV/bin/python"
    export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
    if ! "$PY" -c "import onmt.bin.train, onmt.bin.translate" 2>/dev/null; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q torch==2.13.0
        "$VENV/bin/pip" install -q --no-deps opennmt-py==3.5.1
        "$VENV/bin/pip" install -q -c "$PEERS_HERE/onmt_freeze.txt" configargparse pyyaml sacrebleu \
            tensorboard six pyonmttok rapidfuzz pyahocorasick fasttext-wheel spacy
    fi
}

peers_nmt_py() {
    local repo="$1"
    if [ -z "${NMT_PY:-}" ]; then
        if [ -x "$repo/.venv/bin/python" ]; then
            NMT_PY="$repo/.venv/bin/python"
        else
            NMT_PY="$PEERS_ENV/nmt/bin/python"
            if ! "$NMT_PY" -c "import torch, sentencepiece, sacrebleu, yaml, tqdm" 2>/dev/null; then
                python3 -m venv "$PEERS_ENV/nmt"
                "$PEERS_ENV/nmt/bin/pip" install -q torch==2.13.0
                # the dependencies of pyproject.toml; the code itself comes from PYTHONPATH below
                "$PEERS_ENV/nmt/bin/pip" install -q "$repo"
            fi
        fi
    fi
    # The working tree's code, whether or not the package is installed in NMT_PY.
    export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
    # ... and not an nmt/ in the current directory, which `python -c` would put first (Python >= 3.11)
    export PYTHONSAFEPATH=1
}
