/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'kd-core', rootDir: __dirname };
