import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import IORedis, { type Redis } from 'ioredis';
import { KdError } from '@tfkd/kd-core';

const INSTALL = 'apt-get install -y redis-server';

/** `redis-server` on PATH (or `TFKD_REDIS_SERVER`); a coded error with the install line when missing. */
export function findRedisServer(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TFKD_REDIS_SERVER) {
    if (fs.existsSync(env.TFKD_REDIS_SERVER)) return env.TFKD_REDIS_SERVER;
  } else {
    for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
      const f = path.join(dir, 'redis-server');
      try {
        fs.accessSync(f, fs.constants.X_OK);
        return f;
      } catch {
        // next PATH entry
      }
    }
  }
  throw new KdError('KD_REDIS_MISSING', `redis-server is not installed (looked for ${env.TFKD_REDIS_SERVER ?? 'redis-server on PATH'}); kd sweep starts a private one when no --redis is given`, {
    path: 'redis-server',
    fix: `install it (Debian/Ubuntu: \`${INSTALL}\`), or give --redis redis://host:port of a running Redis`,
  });
}

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** ioredis options BullMQ needs (`maxRetriesPerRequest: null`), for a connection that is known to work. */
export function connection(url: string): Redis {
  return new IORedis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

/**
 * Check that a Redis answers at `url` (one try, `timeoutMs`): otherwise `KD_REDIS_UNAVAILABLE`.
 * BullMQ would retry forever; a sweep that cannot submit should say so at once.
 */
export async function probeRedis(url: string, timeoutMs = 3000): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
    if (!/^rediss?:$/.test(parsed.protocol)) throw new Error(`scheme ${parsed.protocol}`);
  } catch (e) {
    throw new KdError('KD_REDIS_UNAVAILABLE', `--redis ${url} is not a Redis URL (${(e as Error).message})`, { path: '--redis', fix: 'write it as redis://host:port (or redis://:password@host:port/db)' });
  }
  const client = new IORedis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    throw new KdError('KD_REDIS_UNAVAILABLE', `no Redis answers at ${url}: ${(e as Error).message}`, {
      path: '--redis',
      fix: 'start Redis there (e.g. `redis-server --bind 0.0.0.0 --protected-mode no` on a trusted network) or correct --redis; without --redis, kd sweep starts a private one',
    });
  } finally {
    client.disconnect();
  }
}

export interface EmbeddedRedis {
  url: string;
  pid: number;
  /** A server this folder already ran (a `kd sweep` still attached, or one killed hard) was reused. */
  reused: boolean;
  /** Save the data (AOF) and stop the server. */
  stop(): Promise<void>;
}

/**
 * A private `redis-server` for one sweep: loopback only, a free port, its data (append-only file) in
 * `dir` — so a sweep stopped and started again finds its queue where it was. A server this folder
 * already runs (a previous `kd sweep` killed hard) is reused.
 */
export async function startEmbeddedRedis(dir: string, opts: { log?: (l: string) => void } = {}): Promise<EmbeddedRedis> {
  const bin = findRedisServer();
  fs.mkdirSync(dir, { recursive: true });
  const infoFile = path.join(dir, 'server.json');
  const previous = readJson<{ url: string; pid: number }>(infoFile);
  if (previous && alive(previous.pid)) {
    try {
      await probeRedis(previous.url, 1000);
      opts.log?.(`reusing the sweep's redis-server at ${previous.url} (pid ${previous.pid})`);
      return { url: previous.url, pid: previous.pid, reused: true, stop: () => shutdown(previous.url, previous.pid) };
    } catch {
      // not ours any more: start a new one
    }
  }
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', path.resolve(dir), '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no', '--logfile', 'redis.log', '--protected-mode', 'yes'];
  const child = spawn(bin, args, { stdio: 'ignore', detached: true });
  child.unref();
  const url = `redis://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const early = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 50))]);
    if (early !== undefined) {
      const log = fs.existsSync(path.join(dir, 'redis.log')) ? fs.readFileSync(path.join(dir, 'redis.log'), 'utf8').split('\n').slice(-5).join('\n') : '';
      throw new KdError('KD_REDIS_UNAVAILABLE', `redis-server exited (code ${early}) before accepting connections:\n${log}`, { path: path.join(dir, 'redis.log'), fix: 'read the log; a corrupt appendonly file is repaired by `redis-check-aof --fix`' });
    }
    try {
      await probeRedis(url, 500);
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw e;
      }
    }
  }
  fs.writeFileSync(infoFile, JSON.stringify({ url, pid: child.pid }) + '\n');
  opts.log?.(`started redis-server ${url} (pid ${child.pid}, data in ${dir})`);
  return { url, pid: child.pid as number, reused: false, stop: () => shutdown(url, child.pid as number) };
}

async function shutdown(url: string, pid: number): Promise<void> {
  const client = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.call('SHUTDOWN');
  } catch {
    // SHUTDOWN closes the connection: an error is the expected answer
  } finally {
    client.disconnect();
  }
  const deadline = Date.now() + 5000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}
