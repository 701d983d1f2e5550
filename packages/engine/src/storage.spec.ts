import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Storage } from '@tfkd/kd-core';
import { sha256Hex } from './hash';
import { nodeStorage } from './node/storage';
import { memoryStorage } from './storage';

describe('sha256Hex (platform-neutral)', () => {
  it("gives Node crypto's digests, so cache keys and spec hashes made before the move are found", () => {
    const text = JSON.stringify({ v: 1, model: 'cnn-large', seed: 1, train: { epochs: 8 } });
    expect(sha256Hex(text)).toBe(createHash('sha256').update(text).digest('hex'));
    const parts = [new Uint8Array([1, 2, 3]), new Uint8Array(new Float32Array([0.5, -2]).buffer)];
    const h = createHash('sha256');
    parts.forEach((p) => h.update(p));
    expect(sha256Hex(...parts)).toBe(h.digest('hex'));
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

// The same behaviour from both implementations of the port.
describe.each([
  ['memoryStorage', () => ({ s: memoryStorage() as Storage, root: '/work', done: () => undefined })],
  [
    'nodeStorage',
    () => {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-storage-'));
      return { s: nodeStorage, root, done: () => fs.rmSync(root, { recursive: true, force: true }) };
    },
  ],
])('%s', (_name, make) => {
  it('writes, renames a folder whole, removes it; resolves against a base', () => {
    const { s, root, done } = make();
    try {
      const dir = s.join(root, 'teachers', 'abc.tmp-1');
      s.mkdirp(dir);
      s.writeText(s.join(dir, 'teacher.json'), '{"a":1}');
      expect(s.exists(s.join(dir, 'teacher.json'))).toBe(true);
      const final = s.join(root, 'teachers', 'abc');
      s.rename(dir, final);
      expect(s.exists(dir)).toBe(false);
      expect(s.readText(s.join(final, 'teacher.json'))).toBe('{"a":1}');
      expect(s.dirname(final)).toBe(s.join(root, 'teachers'));
      expect(s.resolve(root, 'teachers/abc')).toBe(final);
      expect(s.resolve(root, final)).toBe(final);
      s.remove(s.join(root, 'teachers'));
      expect(s.exists(final)).toBe(false);
      expect(() => s.readText(s.join(final, 'teacher.json'))).toThrow();
      expect(s.uniqueSuffix()).not.toBe(s.uniqueSuffix());
    } finally {
      done();
    }
  });
});
