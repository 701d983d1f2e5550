/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'samplers-unix', rootDir: __dirname };
