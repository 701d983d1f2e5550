#!/usr/bin/env node
// In-process ABAB: cnn-small teacher forward at b64 vs b48, mlp-student forward at b64 (UNIX's ranking pass), wasm x1.
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-layers');
const { initWasmBackend } = require('@tfkd/backend-wasm-train');
const { getModelDefinition } = require('@tfkd/models');
(async () => {
  await initWasmBackend({ threads: 1 }); await tf.setBackend('wasm');
  const mk = (id) => { const d = getModelDefinition(id); return d.build({ inputShape: [28, 28, 1], numClasses: 10, options: {} }, 1); };
  const teacher = mk('cnn-small'); const student = mk('mlp-student');
  const x64 = tf.randomUniform([64, 28, 28, 1]); const x48 = tf.slice(x64, 0, 48);
  const time = (m, x, n = 30) => { for (let i = 0; i < 5; i++) tf.tidy(() => m.predict(x).dataSync()); const t0 = process.hrtime.bigint(); for (let i = 0; i < n; i++) tf.tidy(() => m.predict(x).dataSync()); return Number(process.hrtime.bigint() - t0) / 1e6 / n; };
  const r = { t64: [], t48: [], s64: [] };
  for (let round = 0; round < 7; round++) { r.t64.push(time(teacher, x64)); r.t48.push(time(teacher, x48)); r.s64.push(time(student, x64)); }
  const med = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
  const ratio = r.t48.map((v, i) => v / r.t64[i]);
  console.log(JSON.stringify({ teacher64: med(r.t64), teacher48: med(r.t48), student64: med(r.s64), ratio48over64: med(ratio), ratios: ratio.map((v) => +v.toFixed(3)), load: require('os').loadavg() }));
})();
