#!/usr/bin/env node
// `npm test`: every package's jest suite in one run, then the plain totals line CI reads.
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
// Type-check sources and specs first (jest runs them through SWC, which does not check types).
const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit', cwd: root });
const typeErrors = tsc.status === 0 ? 0 : 1;
if (typeErrors) console.error('typecheck failed (tsc -p tsconfig.json): counted as one failed test');

const report = path.join(os.tmpdir(), `tfkd-jest-${process.pid}.json`);
const args = ['jest', '--ci', '--maxWorkers=2', '--json', `--outputFile=${report}`, ...process.argv.slice(2)];
const r = spawnSync('npx', args, { stdio: 'inherit', cwd: root });
let passed = 0;
let failed = 0;
try {
  const j = JSON.parse(fs.readFileSync(report, 'utf8'));
  passed = j.numPassedTests;
  failed = j.numFailedTests + (j.numRuntimeErrorTestSuites || 0);
  fs.rmSync(report, { force: true });
} catch {
  failed = Math.max(1, failed);
}
failed += typeErrors;
passed += 1 - typeErrors;
console.log(`${passed} passed, ${failed} failed`);
process.exit(r.status === 0 && failed === 0 ? 0 : 1);
