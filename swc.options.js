// SWC options for running the TypeScript sources directly: jest (jest.preset.js) and the tests'
// child processes (packages/cli/src/__fixtures__/register-source.js) transpile the same way.
module.exports = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
};
