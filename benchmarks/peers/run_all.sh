#!/usr/bin/env bash
# Joey NMT 2.3.0, OpenNMT-py 3.5.1 and nmt (this repository) side by side on CPU: model M1 on
# the same sentencepiece-encoded Multi30k de->en, one toolkit after the other, then one table.
#
#   bash benchmarks/peers/run_all.sh                      # full run: 500 updates each
#   STEPS=3 WARMUP=1 SMOKE=1 TAG=smoke bash benchmarks/peers/run_all.sh   # pipeline check
#
# Steps: prepare_data.sh (sentencepiece model + encoded splits; cheap and deterministic, so
# always re-run), then run_joey.sh, run_onmt.sh, run_nmt.sh (each installs its own venv under
# $PEERS_ENV on first use). A toolkit that fails does not stop the others; the exit status is
# non-zero if any failed. Console output of each driver: $RESULTS/<toolkit>_$TAG.console.
# The Markdown table is printed at the end and written to $RESULTS/summary_$TAG.md.
#
# Env (defaults in brackets; all are passed on to the drivers):
#   STEPS [500] training updates   WARMUP [20] throughput counts the updates after this one
#   TAG [cpu] names runs and result files   TOOLKITS ["joey onmt nmt"]
#   SMOKE=1 translate only the first 20 test sentences (TEST_LINES=N: the first N)
#   PEERS_ENV [$HOME/.cache/nmt-peers/env]  PEERS_DATA [$HOME/.cache/nmt-peers/data]
#   RESULTS [$PEERS_DATA/results]  ONMT_EXTRA, NMT_EXTRA, NMT_TRANSLATE_EXTRA, LOG_EVERY, NMT_PY
#   (see the drivers' headers)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
export PEERS_ENV="${PEERS_ENV:-$HOME/.cache/nmt-peers/env}"
export PEERS_DATA="${PEERS_DATA:-$HOME/.cache/nmt-peers/data}"
export RESULTS="${RESULTS:-$PEERS_DATA/results}"
export STEPS="${STEPS:-500}" WARMUP="${WARMUP:-20}" TAG="${TAG:-cpu}"
TOOLKITS="${TOOLKITS:-joey onmt nmt}"
mkdir -p "$RESULTS"

bash "$HERE/prepare_data.sh" || { echo "prepare_data.sh failed"; exit 1; }

{
    peers_machine_lines "$REPO"
    echo "STEPS=$STEPS WARMUP=$WARMUP TAG=$TAG SMOKE=${SMOKE:-0} TEST_LINES=${TEST_LINES:-} ONMT_EXTRA=${ONMT_EXTRA:-} NMT_EXTRA=${NMT_EXTRA:-}"
} > "$RESULTS/env_$TAG.txt"

failed=""
for tk in $TOOLKITS; do
    echo "=== $tk: start $(date +%T)"
    if bash "$HERE/run_$tk.sh" > "$RESULTS/${tk}_$TAG.console" 2>&1; then
        echo "=== $tk: done $(date +%T)"
    else
        echo "=== $tk: FAILED (exit $?); last lines of $RESULTS/${tk}_$TAG.console:"
        tail -n 25 "$RESULTS/${tk}_$TAG.console"
        failed="$failed $tk"
    fi
done
for tk in joey onmt; do  # versions actually used (the venvs may predate the freeze files)
    py="$PEERS_ENV/$tk/bin/python"
    [ -x "$py" ] && "$py" -c "import importlib.metadata as m, sys; \
print('$tk venv: python', sys.version.split()[0], *(f'{d} {m.version(d)}' for d in sys.argv[1:]))" \
        torch "$([ "$tk" = joey ] && echo joeynmt || echo OpenNMT-py)" >> "$RESULTS/env_$TAG.txt" 2>&1
done
py="${NMT_PY:-$REPO/.venv/bin/python}"
[ -x "$py" ] || py="$PEERS_ENV/nmt/bin/python"
[ -x "$py" ] && "$py" -c "import importlib.metadata as m, sys; \
print('nmt ($(basename "$(dirname "$(dirname "$py")")")): python', sys.version.split()[0], 'torch', m.version('torch'))" \
    >> "$RESULTS/env_$TAG.txt" 2>&1
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESULTS/env_$TAG.txt"

echo
cat "$RESULTS/env_$TAG.txt"
echo
# shellcheck disable=SC2086
python3 "$HERE/peerbench.py" table --dir "$RESULTS" --tag "$TAG" --toolkits $TOOLKITS | tee "$RESULTS/summary_$TAG.md"
echo "results: $RESULTS (summary_$TAG.md, <toolkit>_${TAG}_*.json, logs)"
if [ -n "$failed" ]; then
    echo "failed:$failed"
    exit 1
fi
