#!/usr/bin/env bash
# The Fashion-MNIST protocol (docs/results.md): for each example spec given, seeds 1 2 3, into
# runs/protocol/<spec>-seed<N>. The teacher is trained once (seed 1) and reused from .kd-cache.
# Usage: tools/protocol.sh examples/fashion-scratch.yaml examples/fashion-kd.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
for spec in "$@"; do
  name=$(basename "$spec" .yaml)
  for seed in ${SEEDS:-1 2 3}; do
    out="runs/protocol/${name}-seed${seed}"
    if [ -f "$out/metrics.json" ]; then echo "skip $out (done)"; continue; fi
    node packages/cli/dist/bin.js run "$spec" --set seed="$seed" --out "$out" --quiet
  done
done
