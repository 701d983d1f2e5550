/** Versions recorded in every output. */
export function versions(): Record<string, string> {
  const v = (name: string): string => {
    try {
      return (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      return 'absent';
    }
  };
  return {
    '@tfkd/cli': (require('../package.json') as { version: string }).version,
    '@tensorflow/tfjs-core': v('@tensorflow/tfjs-core'),
    '@tensorflow/tfjs-layers': v('@tensorflow/tfjs-layers'),
    '@tensorflow/tfjs-backend-wasm': v('@tensorflow/tfjs-backend-wasm'),
    node: process.version,
  };
}
