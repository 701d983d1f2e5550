#!/usr/bin/env bash
# Run example specs over seeds, one run folder each: <OUT_ROOT>/<spec>-seed<N> (default
# runs/protocol). Teachers are trained once and reused from .kd-cache. Finished runs are skipped.
# Usage: [SEEDS="1 2 3"] [OUT_ROOT=runs/protocol] [EXTRA="--set train.epochs=5"] tools/protocol.sh SPEC...
set -euo pipefail
cd "$(dirname "$0")/.."
for spec in "$@"; do
  name=$(basename "$spec" .yaml)
  for seed in ${SEEDS:-1 2 3}; do
    out="${OUT_ROOT:-runs/protocol}/${name}-seed${seed}"
    if [ -f "$out/metrics.json" ]; then echo "skip $out (done)"; continue; fi
    # shellcheck disable=SC2086
    node packages/cli/dist/bin.js run "$spec" --set seed="$seed" --out "$out" --quiet ${EXTRA:-}
  done
done
