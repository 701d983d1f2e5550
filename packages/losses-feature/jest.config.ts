/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'losses-feature', rootDir: __dirname };
