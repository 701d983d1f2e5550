/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'engine', rootDir: __dirname };
