/** Versions recorded in every output. */
export function versions(): Record<string, string> {
  const v = (name: string): string => {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- versions of whatever is installed
      return (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      return 'absent';
    }
  };
  return {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- our own version
    '@tfkd/cli': (require('../package.json') as { version: string }).version,
    '@tensorflow/tfjs-core': v('@tensorflow/tfjs-core'),
    '@tensorflow/tfjs-layers': v('@tensorflow/tfjs-layers'),
    '@tensorflow/tfjs-backend-wasm': v('@tensorflow/tfjs-backend-wasm'),
    node: process.version,
  };
}
