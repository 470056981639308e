#!/usr/bin/env bash
# Translation speed side by side, in alternating rounds: each round runs every toolkit's
# beam-5 and greedy translation of test_2016 once, with the runs an earlier run_all.sh (same TAG)
# trained; the table gives each round's decode sentences/s, the median, and each toolkit's speed
# relative to the first one per round. A CPU whose speed drifts over minutes (a shared VM: 10-20%
# here) then slows all toolkits alike within a round, which one run after the other does not.
#
#   TAG=cpu bash benchmarks/peers/run_all.sh                   # trains (once)
#   TAG=cpu ROUNDS=3 bash benchmarks/peers/translate_rounds.sh  # then as often as wanted
#   NMT_TRANSLATE_EXTRA="--amp int8" TAG=cpu bash benchmarks/peers/translate_rounds.sh
#
# Env: ROUNDS [3]  TOOLKITS ["onmt nmt"]: the first is the reference of the ratios
#      OUT [$RESULTS/rounds_$TAG]: round r's result files go to $OUT/r<r>/ (the drivers' usual
#      names); the table is printed and written to $OUT/summary.md
#      and the drivers' own variables (TAG, STEPS, PEERS_ENV, PEERS_DATA, RESULTS, SMOKE,
#      TEST_LINES, NMT_TRANSLATE_EXTRA, ...); SKIP_TRAIN=1 is set for them
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
export PEERS_ENV="${PEERS_ENV:-$HOME/.cache/nmt-peers/env}"
export PEERS_DATA="${PEERS_DATA:-$HOME/.cache/nmt-peers/data}"
export TAG="${TAG:-cpu}" STEPS="${STEPS:-500}" SKIP_TRAIN=1
ROUNDS="${ROUNDS:-3}"
TOOLKITS="${TOOLKITS:-onmt nmt}"
OUT="${OUT:-${RESULTS:-$PEERS_DATA/results}/rounds_$TAG}"
rm -rf "$OUT"
mkdir -p "$OUT"
{
    peers_machine_lines "$HERE/../.."
    echo "TAG=$TAG ROUNDS=$ROUNDS TOOLKITS=$TOOLKITS NMT_TRANSLATE_EXTRA=${NMT_TRANSLATE_EXTRA:-}"
} > "$OUT/env.txt"

failed=""
for round in $(seq 1 "$ROUNDS"); do
    for tk in $TOOLKITS; do
        echo "=== round $round, $tk: $(date +%T)"
        if ! RESULTS="$OUT/r$round" bash "$HERE/run_$tk.sh" > "$OUT/r${round}_$tk.console" 2>&1; then
            echo "=== round $round, $tk: FAILED; last lines of $OUT/r${round}_$tk.console:"
            tail -n 15 "$OUT/r${round}_$tk.console"
            failed="$failed $tk"
        fi
    done
done
# shellcheck disable=SC2086
python3 "$HERE/peerbench.py" rounds --dir "$OUT" --tag "$TAG" --toolkits $TOOLKITS | tee "$OUT/summary.md"
cat "$OUT/env.txt"
[ -z "$failed" ] || { echo "failed:$failed"; exit 1; }
