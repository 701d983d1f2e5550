#!/usr/bin/env node
// `npm test`: every package's jest suite in one run, then the plain totals line CI reads.
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const report = path.join(os.tmpdir(), `tfkd-jest-${process.pid}.json`);
const args = ['jest', '--ci', '--maxWorkers=2', '--json', `--outputFile=${report}`, ...process.argv.slice(2)];
const r = spawnSync('npx', args, { stdio: 'inherit', cwd: path.join(__dirname, '..') });
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
console.log(`${passed} passed, ${failed} failed`);
process.exit(r.status === 0 && failed === 0 ? 0 : 1);
