import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { connection, startEmbeddedRedis, type EmbeddedRedis } from '../redis';

/**
 * A real redis-server for one spec file, in a temporary folder (removed afterwards), started in
 * `beforeAll` and stopped in `afterAll`: `redis()` is a client of it, `url()` its address, `at(...)`
 * a path in the folder.
 */
export function redisServerFixture(prefix: string): { redis: () => ReturnType<typeof connection>; url: () => string; at: (...p: string[]) => string } {
  let tmp = '';
  let server: EmbeddedRedis | null = null;
  let client: ReturnType<typeof connection> | null = null;
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    server = await startEmbeddedRedis(path.join(tmp, 'redis'));
    client = connection(server.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  return {
    redis: () => client as ReturnType<typeof connection>,
    url: () => (server as EmbeddedRedis).url,
    at: (...p: string[]) => path.join(tmp, ...p),
  };
}
