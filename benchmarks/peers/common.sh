# Sourced by run_joey.sh, run_onmt.sh, run_nmt.sh, run_all.sh and translate_rounds.sh (not run by itself).
#
# peers_driver_defaults: the drivers' settings (PEERS_ENV, PEERS_DATA, RESULTS, STEPS, WARMUP,
#   TAG; their defaults are in the drivers' headers) and paths: PB (peerbench.py), SP (the
#   sentencepiece-encoded data).
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
