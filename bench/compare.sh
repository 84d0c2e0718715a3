#!/usr/bin/env bash
# Side by side in one run: the table for this build and for another authd binary, alternated
# twice so that both see the machine in the same state.
#   bench/compare.sh /path/to/older/authd
# BENCH_SECS, BENCH_USERS and BENCH_EVENTS pass through (the lists default to off here).
set -euo pipefail
cd "$(dirname "$0")/.."
other=${1:?usage: bench/compare.sh OTHER_AUTHD_BINARY}
export BENCH_USERS=${BENCH_USERS:-0} BENCH_EVENTS=${BENCH_EVENTS:-0}
table=$(cargo bench --locked --bench table --no-run 2>&1 | grep -oE 'target/release/deps/table-[0-9a-f]+' | tail -1)
for round in 1 2; do
  echo "## round $round: this build"
  "$table" --bench
  echo "## round $round: $other"
  BENCH_AUTHD=$other "$table" --bench
done
