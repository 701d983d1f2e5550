#!/usr/bin/env bash
# Publishing smoke test, by hand and without a registry: pack every package (npm pack: only dist,
# types, README, LICENSE, data), install the tarballs into an empty folder with no workspace links
# (tfjs peers from the registry), and run a small spec through the installed `kd`. Needs a build
# first (npm run build). `npm test` runs packages/cli/src/registry.spec.ts instead, which covers this
# through a real local registry (changeset publish, npm create @tfkd/plugin, one copy of kd-core).
# Usage: tools/pack-smoke.sh [work-dir]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK/tarballs" "$WORK/app"
# The repository's packages (git's index) and the workspace packages they depend on (a new one before
# its first commit) — not whatever else is in packages/: a test may have a temporary package there.
DIRS=$(cd "$ROOT" && git ls-files 'packages/*/package.json' | node -e '
  const fs = require("fs"), path = require("path");
  const all = new Map(fs.readdirSync("packages").filter((d) => fs.existsSync(`packages/${d}/package.json`))
    .map((d) => { const j = JSON.parse(fs.readFileSync(`packages/${d}/package.json`, "utf8")); return [j.name, { d, j }]; }));
  const keep = new Set(fs.readFileSync(0, "utf8").split("\n").filter(Boolean).map((f) => JSON.parse(fs.readFileSync(f, "utf8")).name));
  for (const n of keep) for (const f of ["dependencies", "peerDependencies", "optionalDependencies"])
    for (const dep of Object.keys(all.get(n)?.j[f] ?? {})) if (all.has(dep)) keep.add(dep);
  console.log([...keep].filter((n) => !all.get(n).j.private).map((n) => all.get(n).d).join("\n"));')
for d in $DIRS; do
  (cd "$ROOT/packages/$d" && npm pack --silent --pack-destination "$WORK/tarballs" >/dev/null)
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
