import { main } from '../main';

/**
 * `fn()` in this process with stdout and stderr captured (nothing reaches the terminal): its result
 * and what it wrote to each. For in-process calls other than `main` (`runCommand`, …); see runMain.
 */
export async function captureOutput<T>(fn: () => Promise<T>): Promise<{ value: T; out: string; err: string }> {
  let out = '';
  let err = '';
  const write = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const value = await fn();
    return { value, out, err };
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
  }
}

/** `kd ARGS…` in this process (the CLI from source): its exit code and what it wrote to stdout and stderr. */
export async function runMain(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { value: code, out, err } = await captureOutput(() => main(args));
  return { code, out, err };
}
