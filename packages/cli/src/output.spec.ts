import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';
import { StagedFolder, stagingFolderOf } from './output';

// Ownership of a run's staging folder (`<out>.incomplete/owner.json`): exactly one of several `kd run`s
// started on the same folder at the same instant gets it, also when they race to take over a dead
// run's folder. Real processes, released together by a wall-clock barrier.
jest.setTimeout(60_000);

const CLAIM = path.join(__dirname, '__fixtures__', 'claim.js');
const plainEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
delete plainEnv.FORCE_COLOR;

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-output-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The pid of a process that has exited (a claim naming it is stale). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

/** Starts `n` claimers on `staging`, released together ~4 s from now; resolves with their outputs. */
async function race(staging: string, n: number): Promise<string[]> {
  const startAt = Date.now() + 4000; // loading the sources through SWC takes 1–2 s per child
  const runs = Array.from({ length: n }, () =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [CLAIM, staging, String(startAt), '1500'], { env: plainEnv });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`claimer exited ${code}: ${err}`))));
    }),
  );
  const results = await Promise.all(runs);
  expect(Date.now()).toBeGreaterThan(startAt); // the barrier released them (none started late by > hold)
  return results;
}

const leftovers = (staging: string) => fs.readdirSync(staging).filter((f) => f !== 'owner.json');

describe('staging folder ownership', () => {
  it('six runs started together on a new folder: one owns it, five get KD_OUTPUT_WRITE', async () => {
    const staging = stagingFolderOf(path.join(tmp, 'run'));
    fs.mkdirSync(staging);
    const results = await race(staging, 6);
    expect(results.filter((r) => r === 'won')).toHaveLength(1);
    expect(results.filter((r) => r === 'KD_OUTPUT_WRITE')).toHaveLength(5);
    expect(leftovers(staging)).toEqual([]); // no temporary owner files or tombstones left
  });

  it("six runs taking over a dead run's folder together: one owns it, five get KD_OUTPUT_WRITE", async () => {
    const staging = stagingFolderOf(path.join(tmp, 'run'));
    fs.mkdirSync(staging);
    fs.writeFileSync(path.join(staging, 'owner.json'), JSON.stringify({ pid: deadPid(), startedAt: '2026-01-01T00:00:00.000Z' }));
    const results = await race(staging, 6);
    expect(results.filter((r) => r === 'won')).toHaveLength(1);
    expect(results.filter((r) => r === 'KD_OUTPUT_WRITE')).toHaveLength(5);
    expect(leftovers(staging)).toEqual([]);
  });

  it("a takeover tombstone left by a process that died mid-takeover blocks the folder only briefly", () => {
    const target = path.join(tmp, 'run');
    const staging = stagingFolderOf(target);
    fs.mkdirSync(staging);
    const stale = JSON.stringify({ pid: deadPid(), startedAt: 'then' });
    fs.writeFileSync(path.join(staging, 'owner.json'), stale);
    const tombstone = path.join(staging, `owner.json.takeover-${JSON.parse(stale).pid}-${Buffer.from(stale).toString('base64url').slice(-16)}`);
    fs.writeFileSync(tombstone, '1\n');
    // fresh: someone is taking over right now
    expect(() => new StagedFolder(target)).toThrow(expect.objectContaining({ code: 'KD_OUTPUT_WRITE' }));
    expect(fs.readFileSync(path.join(staging, 'owner.json'), 'utf8')).toBe(stale);
    // 11 s old: its process is gone; the folder is taken over and the tombstone removed
    const old = new Date(Date.now() - 11_000);
    fs.utimesSync(tombstone, old, old);
    new StagedFolder(target);
    expect(JSON.parse(fs.readFileSync(path.join(staging, 'owner.json'), 'utf8')).pid).toBe(process.pid);
    expect(fs.readdirSync(staging)).toEqual(['owner.json']);
  });

  it("StagedFolder takes over a dead owner's folder and clears it; refuses a live owner's, leaving it untouched", () => {
    const target = path.join(tmp, 'run');
    const staging = stagingFolderOf(target);
    fs.mkdirSync(staging);
    fs.writeFileSync(path.join(staging, 'owner.json'), JSON.stringify({ pid: deadPid(), startedAt: 'then' }));
    fs.writeFileSync(path.join(staging, 'metrics.json'), '{"half": ');
    const staged = new StagedFolder(target);
    expect(JSON.parse(fs.readFileSync(path.join(staging, 'owner.json'), 'utf8')).pid).toBe(process.pid);
    expect(fs.readdirSync(staging)).toEqual(['owner.json']);
    staged.write('metrics.json', '{}');
    staged.commit();
    expect(fs.readdirSync(target)).toEqual(['metrics.json']);

    // A live owner (the jest worker's parent process stands in for another kd run).
    const other = path.join(tmp, 'other');
    const otherStaging = stagingFolderOf(other);
    fs.mkdirSync(otherStaging);
    const owner = JSON.stringify({ pid: process.ppid, startedAt: 'now' });
    fs.writeFileSync(path.join(otherStaging, 'owner.json'), owner);
    fs.writeFileSync(path.join(otherStaging, 'weights.bin'), 'partial');
    let error: unknown;
    try {
      new StagedFolder(other);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KdError);
    expect((error as KdError).code).toBe('KD_OUTPUT_WRITE');
    expect((error as KdError).message).toContain(`pid ${process.ppid}`);
    expect((error as KdError).path).toBe(otherStaging);
    expect(fs.readFileSync(path.join(otherStaging, 'owner.json'), 'utf8')).toBe(owner);
    expect(fs.readdirSync(otherStaging).sort()).toEqual(['owner.json', 'weights.bin']);
  });
});
