#!/usr/bin/env node
/**
 * Builds the Fashion-MNIST subset shipped inside @tfkd/datasets:
 *   packages/datasets/data/fashion-mnist-subset/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
 * holding the FIRST 6000 training and the FIRST 2000 test examples of the official files, byte for
 * byte (same IDX headers apart from the count), plus the MIT LICENSE of Fashion-MNIST and a README.
 *
 * Usage: node tools/make-fashion-subset.js [sourceDir] [outDir]
 *   sourceDir defaults to /usr/share/datasets/fashion-mnist (Debian package), outDir to the package.
 * Output is reproducible: gzip level 9 with a zero mtime, so re-running gives identical bytes.
 * Only Node built-ins are used.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const TRAIN_COUNT = 6000;
const TEST_COUNT = 2000;
const MAX_TOTAL_BYTES = 4 * 1024 * 1024;

const sourceDir = process.argv[2] || '/usr/share/datasets/fashion-mnist';
const outDir =
  process.argv[3] || path.join(__dirname, '..', 'packages', 'datasets', 'data', 'fashion-mnist-subset');

const FILES = [
  { name: 'train-images-idx3-ubyte.gz', count: TRAIN_COUNT },
  { name: 'train-labels-idx1-ubyte.gz', count: TRAIN_COUNT },
  { name: 't10k-images-idx3-ubyte.gz', count: TEST_COUNT },
  { name: 't10k-labels-idx1-ubyte.gz', count: TEST_COUNT },
];

function fail(message) {
  console.error(`make-fashion-subset: ${message}`);
  process.exit(1);
}

/** Reads an IDX file (gzip or raw) and returns { header: Buffer, dims: number[], payload: Buffer }. */
function readIdx(file) {
  if (!fs.existsSync(file))
    fail(`${file} does not exist (install the fashion-mnist data package or pass sourceDir)`);
  let buf = fs.readFileSync(file);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08) {
    fail(
      `${file}: expected an IDX ubyte file (magic 00 00 08 nn), found ${buf.subarray(0, 4).toString('hex')}`,
    );
  }
  const ndims = buf[3];
  const dims = [];
  for (let i = 0; i < ndims; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const headerLength = 4 + 4 * ndims;
  const expected = dims.reduce((a, b) => a * b, 1);
  const payload = buf.subarray(headerLength);
  if (payload.length !== expected)
    fail(`${file}: expected ${expected} payload bytes, found ${payload.length}`);
  return { dims, payload };
}

function writeIdx(file, dims, payload) {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const gz = zlib.gzipSync(Buffer.concat([header, payload]), { level: 9 });
  fs.writeFileSync(file, gz);
  return gz.length;
}

const LICENSE = `The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`;

function readme(sizes, counts) {
  const rows = FILES.map((f) => `| \`${f.name}\` | ${f.count} | ${sizes[f.name]} |`).join('\n');
  const total = Object.values(sizes).reduce((a, b) => a + b, 0);
  const balance = counts.map((c, i) => `${i}: ${c}`).join(', ');
  return `# Fashion-MNIST subset (shipped with @tfkd/datasets)

A small, unmodified slice of [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist)
(Xiao, Rasul & Vollgraf, 2017; Zalando SE) so that tfkd examples and tests run without a download:

- the **first ${TRAIN_COUNT}** images and labels of the official training set, and
- the **first ${TEST_COUNT}** images and labels of the official test set (t10k),

in the original gzipped IDX format and under the original file names. Pixels and labels are
byte-for-byte those of the official files; only the count in each IDX header differs. Images are
28x28 greyscale (ubyte), labels 0-9.

| file | examples | bytes |
| --- | ---: | ---: |
${rows}

Total: ${total} bytes. Training labels per class (${TRAIN_COUNT}): ${balance}.

## How it was made

\`\`\`sh
node tools/make-fashion-subset.js /usr/share/datasets/fashion-mnist
\`\`\`

The script reads the four official files (here from the Debian \`fashion-mnist\` data package),
keeps the first N records of each, and writes them with gzip level 9 (zero mtime, so the output is
reproducible). Re-running it must give identical files.

## Licence

Fashion-MNIST is distributed under the MIT licence, Copyright (c) 2017 Zalando SE: see
[LICENSE](./LICENSE) in this folder. This licence covers these data files only; the surrounding
package is Apache-2.0.
`;
}

function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const sizes = {};
  let trainLabels = null;
  for (const f of FILES) {
    const { dims, payload } = readIdx(path.join(sourceDir, f.name));
    if (dims[0] < f.count) fail(`${f.name} has only ${dims[0]} records, need ${f.count}`);
    const perRecord = dims.slice(1).reduce((a, b) => a * b, 1);
    const slice = payload.subarray(0, f.count * perRecord);
    sizes[f.name] = writeIdx(path.join(outDir, f.name), [f.count, ...dims.slice(1)], slice);
    if (f.name === 'train-labels-idx1-ubyte.gz') trainLabels = slice;
  }
  const counts = new Array(10).fill(0);
  for (const l of trainLabels) counts[l]++;
  fs.writeFileSync(path.join(outDir, 'LICENSE'), LICENSE);
  fs.writeFileSync(path.join(outDir, 'README.md'), readme(sizes, counts));
  const total = fs.readdirSync(outDir).reduce((a, n) => a + fs.statSync(path.join(outDir, n)).size, 0);
  console.log(`wrote ${outDir}`);
  for (const f of FILES) console.log(`  ${f.name}: ${f.count} records, ${sizes[f.name]} bytes`);
  console.log(`  total on disk (incl. LICENSE, README.md): ${total} bytes`);
  console.log(`  train class counts: ${counts.join(' ')}`);
  if (total > MAX_TOTAL_BYTES)
    fail(`total ${total} bytes exceeds the ${MAX_TOTAL_BYTES}-byte budget; lower the counts`);
}

main();
