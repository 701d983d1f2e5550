// Child process for output.spec.ts: waits until the wall-clock instant argv[3] (ms), then tries to
// take ownership of the staging folder argv[2]; prints `won` or the error code, holds the folder
// for argv[4] ms (so that the losers see a live owner), and exits.
const path = require('path');
const { ROOT } = require('./register-source');
const { claimOwnership } = require(path.join(ROOT, 'packages', 'cli', 'src', 'output.ts'));

const [staging, startAt, holdMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
while (Date.now() < startAt) {
  /* spin: every child leaves this loop within a few ms of the others */
}
let result;
try {
  claimOwnership(staging);
  result = 'won';
} catch (e) {
  result = e.code ?? `raw ${e.message}`;
}
process.stdout.write(`${result}\n`);
setTimeout(() => process.exit(0), holdMs);
