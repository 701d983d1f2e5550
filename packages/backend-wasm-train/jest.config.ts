/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'backend-wasm-train', rootDir: __dirname };
