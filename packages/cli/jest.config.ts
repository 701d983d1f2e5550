/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'cli', rootDir: __dirname };
