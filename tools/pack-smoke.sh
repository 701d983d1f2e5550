#!/usr/bin/env bash
# Publishing smoke test: pack every package (npm pack: only dist, types, README, LICENSE, data),
# install the tarballs into an empty folder with no workspace links (tfjs peers from the registry),
# and run a small spec through the installed `kd`. Needs a build first (npm run build).
# Usage: tools/pack-smoke.sh [work-dir]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK/tarballs" "$WORK/app"
# The repository's packages (git's index): a test may have a temporary package in packages/.
for f in $(git -C "$ROOT" ls-files 'packages/*/package.json'); do
  (cd "$ROOT/$(dirname "$f")" && npm pack --silent --pack-destination "$WORK/tarballs" >/dev/null)
done
cd "$WORK/app"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error "$WORK"/tarballs/*.tgz \
  @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-layers@4.22.0 @tensorflow/tfjs-backend-cpu@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 >/dev/null
test ! -L node_modules/@tfkd/kd-core   # real installs, not workspace links
cat > spec.yaml <<'YAML'
seed: 1
data: { name: fashion-mnist, subset: true, limit: { train: 512, test: 256 } }
teacher: { model: mlp, options: { hidden: [64] }, seed: 1, train: { epochs: 1 } }
student: { model: mlp-student }
train: { epochs: 1, batchSize: 64, optimizer: { name: adam, lr: 0.001, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
    weight: 0.1
  - use: loss/hinton-kd
    weight: 0.9
eval: [accuracy, ece]
YAML
npx kd run spec.yaml --out run --quiet >/dev/null
node -e "const m=require('./run/metrics.json'); if(m.status!=='completed'||!(m.eval.student.accuracy>0.3)) {console.error(m); process.exit(1)} console.log('pack smoke ok: student', m.eval.student.accuracy, 'on', m.backend.name, 'from', m.dataset.source)"
