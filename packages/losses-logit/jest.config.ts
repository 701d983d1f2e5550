/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'losses-logit', rootDir: __dirname };
